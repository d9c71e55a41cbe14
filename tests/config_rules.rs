//! The image config rules are one: `import -c` and a Dockerfile give the same config (issue
//! 11). Each test is named after a divergence `import -c` had from the build.

mod build_support;

use build_support::{path_str, BuildEnv};
use serde_json::json;

/// A one-file rootfs tarball to import (its content does not matter here).
fn rootfs_tar(b: &BuildEnv) -> String {
    let path = b.env.path().join("rootfs.tar");
    let mut tar = tar::Builder::new(std::fs::File::create(&path).unwrap());
    let mut header = tar::Header::new_gnu();
    header.set_size(3);
    header.set_mode(0o644);
    tar.append_data(&mut header, "hello.txt", &b"hi\n"[..])
        .unwrap();
    tar.finish().unwrap();
    path.to_str().unwrap().to_string()
}

/// `import -c CHANGES... TARBALL NAME` → the image's `Config`.
fn import_config(b: &BuildEnv, name: &str, changes: &[&str]) -> serde_json::Value {
    let tar = rootfs_tar(b);
    let mut args = vec!["import"];
    for c in changes {
        args.extend(["-c", c]);
    }
    args.extend([tar.as_str(), name]);
    b.env.ok(&args);
    b.inspect(name)["Config"].clone()
}

#[test]
fn import_expose_range_was_not_expanded() {
    let b = BuildEnv::new();
    let c = import_config(&b, "ports:1", &["EXPOSE 8000-8002/tcp 53/UDP"]);
    assert_eq!(
        c["ExposedPorts"],
        json!({"53/udp": {}, "8000/tcp": {}, "8001/tcp": {}, "8002/tcp": {}})
    );
}

#[test]
fn import_expose_was_not_validated() {
    let b = BuildEnv::new();
    let tar = &rootfs_tar(&b);
    for bad in ["EXPOSE abc", "EXPOSE 70000", "EXPOSE 80/icmp"] {
        let err = b.env.fails(&["import", "-c", bad, tar, "bad:1"]);
        assert!(err.contains("invalid EXPOSE port"), "{bad}: {err}");
    }
    // Nothing was written under the name.
    assert!(!b.env.run(&["inspect", "bad:1"]).status.success());
}

#[test]
fn import_entrypoint_did_not_reset_inherited_cmd() {
    let b = BuildEnv::new();
    // CMD set by the same change list stays, as in one Dockerfile stage.
    let c = import_config(&b, "both:1", &[r#"CMD ["a"]"#, r#"ENTRYPOINT ["b"]"#]);
    assert_eq!(
        (c["Cmd"].clone(), c["Entrypoint"].clone()),
        (json!(["a"]), json!(["b"]))
    );
    // ENTRYPOINT clears the CMD an image inherits, and CMD after it stays.
    let ctx = b.context(
        "entry",
        &[(
            "Dockerfile",
            "FROM both:1 AS first\nENTRYPOINT [\"c\"]\nFROM both:1 AS second\nCMD [\"d\"]\nENTRYPOINT [\"e\"]\n",
        )],
    );
    b.build(&["--target", "first", "-t", "entry:1", path_str(&ctx)]);
    let c = b.inspect("entry:1")["Config"].clone();
    assert_eq!(
        (c["Cmd"].clone(), c["Entrypoint"].clone()),
        (json!(null), json!(["c"]))
    );
    b.build(&["-t", "entry:2", path_str(&ctx)]);
    let c = b.inspect("entry:2")["Config"].clone();
    assert_eq!(
        (c["Cmd"].clone(), c["Entrypoint"].clone()),
        (json!(["d"]), json!(["e"]))
    );
}

#[test]
fn import_workdir_was_cleaned_differently_from_build() {
    let b = BuildEnv::new();
    let workdirs = ["WORKDIR /a/b/../c/", "WORKDIR d/./e//", "WORKDIR ../f"];
    let c = import_config(&b, "wd:1", &workdirs);
    assert_eq!(c["WorkingDir"], json!("/a/c/d/f"));
    let ctx = b.context(
        "wd",
        &[(
            "Dockerfile",
            &format!("FROM busybox\n{}\n", workdirs.join("\n")),
        )],
    );
    b.build(&["-t", "wd:2", path_str(&ctx)]);
    assert_eq!(b.inspect("wd:2")["Config"]["WorkingDir"], c["WorkingDir"]);
}

#[test]
fn import_env_expanded_pair_by_pair_unlike_a_dockerfile() {
    let b = BuildEnv::new();
    let changes = ["ENV C=old", "ENV C=new D=${C}-d", "LABEL l=$C"];
    let c = import_config(&b, "env:1", &changes);
    assert_eq!(c["Env"], json!(["C=new", "D=old-d"]));
    assert_eq!(c["Labels"], json!({"l": "new"}));
    let ctx = b.context(
        "env",
        &[(
            "Dockerfile",
            &format!("FROM scratch\n{}\n", changes.join("\n")),
        )],
    );
    b.build(&["-t", "env:2", path_str(&ctx)]);
    let built = b.inspect("env:2")["Config"].clone();
    assert_eq!(built["Labels"], c["Labels"]);
    assert_eq!(
        built["Env"].as_array().unwrap()[1..],
        c["Env"].as_array().unwrap()[..]
    );
}

#[test]
fn import_healthcheck_and_onbuild_were_refused() {
    let b = BuildEnv::new();
    let c = import_config(
        &b,
        "hc:1",
        &[
            "HEALTHCHECK --interval=5s CMD true",
            "ONBUILD RUN echo child",
        ],
    );
    assert_eq!(
        c["Healthcheck"],
        json!({"Interval": 5_000_000_000u64, "Test": ["CMD-SHELL", "true"]})
    );
    assert_eq!(c["OnBuild"], json!(["RUN echo child"]));
    let err = b
        .env
        .fails(&["import", "-c", "RUN true", &rootfs_tar(&b), "x:1"]);
    assert!(err.contains("not supported by import"), "{err}");
}
