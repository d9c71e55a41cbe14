//! `--isolation`: chroot isolation builds the same image as namespaces (same layers, same
//! digest with SOURCE_DATE_EPOCH), `RUN --mount`s work in it and leave nothing behind, and the
//! flag and `RBUILD_ISOLATION` are honoured.

mod build_support;

use build_support::{path_str, testdata, BuildEnv};

/// Builds testdata/chroot with `isolation` and a secret; returns (image ID, progress).
fn build(env: &BuildEnv, isolation: &str) -> (String, String) {
    let secret = env.env.path().join("token");
    std::fs::write(&secret, "s3cret-value").unwrap();
    let out = env
        .env
        .cmd()
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["--log-level", "info", "build", "--progress=plain"])
        .args(["--isolation", isolation])
        .args(["--secret", &format!("id=tok,src={}", path_str(&secret))])
        .args(["-t", "iso:1", "--iidfile", "iid"])
        .arg(testdata("chroot"))
        .output()
        .unwrap();
    build_support::assert_success("rbuild build", &out);
    let progress = build_support::stderr(&out);
    let id = std::fs::read_to_string(env.env.path().join("iid")).unwrap();
    (id.trim().to_string(), progress)
}

#[test]
fn chroot_and_namespaces_build_the_same_image() {
    let ns = BuildEnv::new();
    let chroot = BuildEnv::same_base_as(&ns);
    let (ns_id, ns_progress) = build(&ns, "namespaces");
    let (chroot_id, chroot_progress) = build(&chroot, "chroot");
    assert!(
        ns_progress.contains("isolation: namespaces"),
        "{ns_progress}"
    );
    assert!(
        chroot_progress.contains("isolation: chroot"),
        "{chroot_progress}"
    );
    assert_eq!(
        ns.inspect("iso:1")["RootFS"],
        chroot.inspect("iso:1")["RootFS"],
        "layers differ"
    );
    assert_eq!(ns_id, chroot_id);
    // What the steps did is there (the mounts were reachable) ...
    for (path, want) in [
        ("/out/count-seen", "c\n"),
        ("/out/secret-length", "12\n"),
        ("/out/from-bind", "hello\n"),
        ("/home/app/mine", "mine\n"),
    ] {
        assert_eq!(
            chroot.image_file("iso:1", path).as_deref(),
            Some(want),
            "{path}"
        );
    }
    let id = chroot.image_file("iso:1", "/home/app/id").unwrap();
    assert!(id.starts_with("uid=1000(app) gid=1000(app)"), "{id}");
    // ... and the mounts themselves, and what the runtime put in the root, are not.
    for path in [
        "/run/secrets",
        "/root/.cache",
        "/scratch",
        "/mnt/ctx",
        "/etc/hosts",
    ] {
        assert!(
            chroot.image_path("iso:1", path).is_none(),
            "{path} in the image"
        );
    }
}

#[test]
fn chroot_cache_mount_keeps_its_content_between_builds() {
    let env = BuildEnv::new();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN --mount=type=cache,target=/var/cache/x echo run >> /var/cache/x/log && wc -l < /var/cache/x/log > /seen\n",
        )],
    );
    for want in ["1\n", "2\n"] {
        env.build(&[
            "--isolation=chroot",
            "--no-cache",
            "-t",
            "c:1",
            path_str(&ctx),
        ]);
        assert_eq!(env.image_file("c:1", "/seen").as_deref(), Some(want));
        assert!(env.image_path("c:1", "/var/cache/x").is_none());
    }
    // The cache directory went back to the store after each run.
    let caches = std::fs::read_dir(env.env.root().join("cache-mounts")).unwrap();
    assert_eq!(caches.count(), 1);
}

#[test]
fn rbuild_isolation_env_selects_chroot_and_bad_values_are_refused() {
    let env = BuildEnv::new();
    let ctx = env.context("ctx", &[("Dockerfile", "FROM busybox\nRUN echo x > /x\n")]);
    let out = env
        .env
        .cmd()
        .env("RBUILD_ISOLATION", "chroot")
        .args([
            "--log-level",
            "info",
            "build",
            "--progress=plain",
            path_str(&ctx),
        ])
        .output()
        .unwrap();
    build_support::assert_success("build", &out);
    let progress = build_support::stderr(&out);
    assert!(progress.contains("isolation: chroot"), "{progress}");
    assert!(progress.contains("chroot: root copied in"), "{progress}");
    let out = env
        .env
        .run(&["build", "--isolation", "jail", path_str(&ctx)]);
    let err = build_support::assert_failure("build --isolation jail", &out);
    assert!(err.contains("jail") && err.contains("chroot"), "{err}");
}

#[test]
fn chroot_step_failure_reports_the_exit_code_and_output() {
    let env = BuildEnv::new();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo about-to-fail && exit 3\n",
        )],
    );
    let err = env.build_fails(&["--isolation=chroot", path_str(&ctx)]);
    assert!(err.contains("exit code: 3"), "{err}");
    assert!(err.contains("about-to-fail"), "{err}");
}
