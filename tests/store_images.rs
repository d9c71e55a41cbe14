//! import / images / tag / rmi / inspect / history / image prune against a real store root,
//! through the real binary; plus the store's library API (snapshots, commit_image) and two
//! rbuild processes sharing one root.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{busybox_rootfs_tar, ok_cmd, TestEnv};
use serde_json::Value;

fn import(env: &TestEnv, name: Option<&str>) -> String {
    let tar = busybox_rootfs_tar().to_str().unwrap().to_string();
    let mut args = vec![
        "import",
        "-c",
        r#"CMD ["/bin/sh"]"#,
        "-m",
        "base image",
        &tar,
    ];
    if let Some(n) = name {
        args.push(n);
    }
    let out = env.ok(&args);
    let id = out.trim().to_string();
    assert!(
        id.starts_with("sha256:") && id.len() == 71,
        "import printed {out:?}"
    );
    id
}

fn blob_count(env: &TestEnv) -> usize {
    std::fs::read_dir(env.root().join("blobs/sha256"))
        .unwrap()
        .count()
}

#[test]
fn import_lists_inspects_and_shows_history() {
    let env = TestEnv::new();
    let id = import(&env, Some("busybox"));
    let out = env.ok(&["images"]);
    let mut lines = out.lines();
    let header = lines.next().unwrap();
    for col in ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"] {
        assert!(header.contains(col), "{header}");
    }
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..3], &["busybox", "latest", &id[7..19]]);
    assert!(row.last().unwrap().ends_with("MB"), "{row:?}");
    assert_eq!(env.ok(&["images", "-q"]).trim(), &id[7..19]);
    assert_eq!(env.ok(&["image", "ls", "-q"]).trim(), &id[7..19]);
    assert!(env.ok(&["images", "--no-trunc"]).contains(&id));
    assert!(env.ok(&["images", "--digests"]).contains("DIGEST"));
    assert_eq!(
        env.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .trim(),
        "busybox:latest"
    );
    let json: Value = serde_json::from_str(env.ok(&["images", "--format", "json"]).trim()).unwrap();
    assert_eq!(json["ID"], id[7..19]);

    let v = env.inspect("busybox");
    assert_eq!(v["Id"], id);
    assert_eq!(v["RepoTags"], serde_json::json!(["busybox:latest"]));
    assert_eq!(v["Config"]["Cmd"], serde_json::json!(["/bin/sh"]));
    assert_eq!(v["RootFS"]["Type"], "layers");
    assert_eq!(v["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    assert!(v["Size"].as_u64().unwrap() > 1_000_000);
    assert_eq!(v["History"][0]["comment"], "base image");
    assert_eq!(v["Os"], "linux");
    // the same image by ID prefix and full ID
    assert_eq!(env.inspect(&id[7..15])["Id"], id);
    assert_eq!(env.inspect(&id)["Id"], id);
    assert_eq!(
        env.ok(&[
            "inspect",
            "-f",
            "{{.Id}}",
            "docker.io/library/busybox:latest"
        ])
        .trim(),
        id
    );
    let err = env.fails(&["inspect", "nosuch"]);
    assert!(err.contains("No such image: nosuch"), "{err}");

    let hist = env.ok(&["history", "busybox"]);
    let mut lines = hist.lines();
    assert!(lines.next().unwrap().contains("CREATED BY"));
    let row = lines.next().unwrap();
    assert!(
        row.starts_with(&id[7..19]) && row.contains("base image"),
        "{hist}"
    );
}

#[test]
fn import_autodetects_compression_and_reads_stdin() {
    let env = TestEnv::new();
    let tar = busybox_rootfs_tar();
    let plain = import(&env, Some("plain"));
    let diff = env.inspect(&plain)["RootFS"]["Layers"][0].clone();
    for (tool, ext) in [
        ("gzip", "gz"),
        ("bzip2", "bz2"),
        ("xz", "xz"),
        ("zstd", "zst"),
    ] {
        let out = env.path().join(format!("rootfs.tar.{ext}"));
        let data = Command::new(tool).arg("-c").arg(tar).output().unwrap();
        assert!(data.status.success(), "{tool} failed");
        std::fs::write(&out, &data.stdout).unwrap();
        let id = env.ok(&["import", out.to_str().unwrap(), &format!("c:{ext}")]);
        let v = env.inspect(id.trim());
        assert_eq!(
            v["RootFS"]["Layers"][0], diff,
            "{tool}: same DiffID as the plain tar"
        );
    }
    ok_cmd(
        env.cmd()
            .args(["import", "-", "fromstdin"])
            .stdin(std::fs::File::open(tar).unwrap()),
    );
    assert_eq!(env.inspect("fromstdin")["RootFS"]["Layers"][0], diff);
    assert_eq!(
        env.inspect("fromstdin")["History"][0]["comment"],
        "Imported from -"
    );

    std::fs::write(env.path().join("junk"), vec![b'x'; 4096]).unwrap();
    let err = env.fails(&["import", env.path().join("junk").to_str().unwrap(), "junk"]);
    assert!(
        err.contains("not a tar") || err.contains("corrupt"),
        "{err}"
    );
    assert!(env.fails(&["inspect", "junk"]).contains("No such image"));
}

#[test]
fn tag_and_rmi_follow_docker_semantics() {
    let env = TestEnv::new();
    let id = import(&env, Some("busybox"));
    env.ok(&["tag", "busybox", "a:1"]);
    env.ok(&["tag", &id[7..19], "localhost:5000/b:2"]);
    assert_eq!(env.inspect("a:1")["Id"], id);
    let out = env.ok(&["rmi", "a:1"]);
    assert_eq!(out, "Untagged: a:1\n");
    assert!(env.fails(&["inspect", "a:1"]).contains("No such image"));
    let err = env.fails(&["rmi", &id[7..19]]);
    assert!(err.contains("must be forced"), "{err}");
    assert_eq!(env.inspect("busybox")["Id"], id);
    let out = env.ok(&["rmi", "-f", &id[7..19]]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.contains(&"Untagged: busybox:latest"), "{out}");
    assert!(lines.contains(&"Untagged: localhost:5000/b:2"), "{out}");
    assert!(lines.contains(&format!("Deleted: {id}").as_str()), "{out}");
    assert_eq!(env.ok(&["images", "-q"]), "");
    assert_eq!(blob_count(&env), 0, "all blobs of the only image are gone");
    let err = env.fails(&["rmi", "busybox"]);
    assert!(err.contains("No such image"), "{err}");
    let err = env.fails(&["tag", "busybox", "x"]);
    assert!(err.contains("No such image"), "{err}");
    let err = env.fails(&["tag", &id, "Bad:Name"]);
    assert!(err.contains("invalid reference"), "{err}");
}

/// Regression (issue 11): `tag busybox:1 index.docker.io/busybox:2` names `busybox:2`, as
/// docker normalises Docker Hub's legacy host name.
#[test]
fn tag_with_docker_hubs_legacy_host_names_the_short_form() {
    let env = TestEnv::new();
    let id = import(&env, Some("busybox:1"));
    env.ok(&["tag", "busybox:1", "index.docker.io/busybox:2"]);
    assert_eq!(env.inspect("busybox:2")["Id"], id);
    assert_eq!(env.inspect("docker.io/library/busybox:2")["Id"], id);
    let listed = env.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    let mut names: Vec<&str> = listed.lines().collect();
    names.sort();
    assert_eq!(names, ["busybox:1", "busybox:2"], "{listed}");
}

#[test]
fn shared_layers_survive_rmi_and_dangling_images_can_be_removed() {
    let env = TestEnv::new();
    let x = import(&env, Some("x"));
    std::thread::sleep(std::time::Duration::from_millis(20));
    let y = import(&env, Some("y"));
    assert_ne!(x, y, "different created time, different config");
    let layer = env.inspect("x")["RootFS"]["Layers"][0].clone();
    assert_eq!(env.inspect("y")["RootFS"]["Layers"][0], layer);
    // 2 configs + 2 manifests + 1 shared layer
    assert_eq!(blob_count(&env), 5);
    let out = env.ok(&["rmi", "x"]);
    assert!(out.contains(&format!("Deleted: {x}")), "{out}");
    assert_eq!(blob_count(&env), 3, "the shared layer stays");
    env.ok(&[
        "save",
        "-o",
        env.path().join("y.tar").to_str().unwrap(),
        "y",
    ]);

    let dangling = import(&env, None);
    let out = env.ok(&["images"]);
    assert!(out.lines().any(|l| l.starts_with("<none>")), "{out}");
    let q = env.ok(&["images", "-q", "-f", "dangling=true"]);
    assert_eq!(q.trim(), &dangling[7..19]);
    let out = env.ok(&["rmi", q.trim()]);
    assert_eq!(out, format!("Deleted: {dangling}\n"));

    let d2 = import(&env, None);
    let out = env.ok(&["image", "prune", "-f"]);
    assert!(out.starts_with("Deleted Images:\n"), "{out}");
    assert!(out.contains(&format!("deleted: {d2}")), "{out}");
    assert!(out.contains("Total reclaimed space: "), "{out}");
    assert_eq!(env.ok(&["images", "-q"]).trim(), &y[7..19]);
    let out = env.ok(&["image", "prune", "-a", "-f"]);
    assert!(out.contains("untagged: y:latest"), "{out}");
    assert_eq!(env.ok(&["images", "-q"]), "");
    assert_eq!(blob_count(&env), 0);
}

#[test]
fn filters_select_images() {
    let env = TestEnv::new();
    let tar = busybox_rootfs_tar().to_str().unwrap().to_string();
    env.ok(&["import", &tar, "first:1"]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.ok(&["import", "-c", "LABEL team=infra", &tar, "second:1"]);
    let names = |filter: &str| -> Vec<String> {
        let mut v: Vec<String> = env
            .ok(&["images", "-f", filter, "--format", "{{.Repository}}"])
            .lines()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    assert_eq!(names("reference=sec*"), vec!["second"]);
    assert_eq!(names("reference=*:1"), vec!["first", "second"]);
    assert_eq!(names("label=team"), vec!["second"]);
    assert_eq!(names("label=team=infra"), vec!["second"]);
    assert!(names("label=team=other").is_empty());
    assert_eq!(names("before=second:1"), vec!["first"]);
    assert_eq!(names("since=first:1"), vec!["second"]);
    assert_eq!(names("dangling=false"), vec!["first", "second"]);
    let err = env.fails(&["images", "-f", "bogus=1"]);
    assert!(err.contains("invalid filter"), "{err}");
    let out = env.ok(&["images", "first"]);
    assert_eq!(out.lines().count(), 2, "{out}");
}

#[test]
fn two_processes_share_one_root() {
    let env = TestEnv::new();
    let tar = busybox_rootfs_tar();
    // Several rounds of parallel imports and tags into the same (initially missing) root.
    for round in 0..3 {
        let children: Vec<_> = (0..4)
            .map(|i| {
                env.cmd()
                    .args(["import", tar.to_str().unwrap(), &format!("p{i}:r{round}")])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "parallel import failed: {}",
                common::stderr(&out)
            );
        }
    }
    let out = env.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(out.lines().count(), 12, "{out}");
    // Parallel tag + rmi + save on the same images.
    let a = env
        .cmd()
        .args(["tag", "p0:r0", "shared:a"])
        .output()
        .unwrap();
    let b = env
        .cmd()
        .args(["rmi", "p1:r0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let c = env
        .cmd()
        .args(["save", "-o", "/dev/null", "p2:r0"])
        .output()
        .unwrap();
    assert!(a.status.success() && c.status.success());
    // Regression: `save -o` onto a device writes into it instead of renaming over it.
    use std::os::unix::fs::FileTypeExt;
    let null = std::fs::metadata("/dev/null").unwrap();
    assert!(
        null.file_type().is_char_device(),
        "save -o /dev/null replaced the device"
    );
    let b = b.wait_with_output().unwrap();
    assert!(b.status.success());
    assert!(common::stdout(&b).starts_with("Untagged: p1:r0\n"));
    let index: Value =
        serde_json::from_slice(&std::fs::read(env.root().join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"].as_array().unwrap().len(),
        12,
        "index.json follows the database"
    );
}

#[test]
fn library_commit_and_snapshots() {
    use rbuild::image::layer::{LayerOptions, LayerSource};
    use rbuild::image::oci::{History, ImageConfig, RootFs};
    use rbuild::image::Reference;
    use rbuild::store::Store;

    let env = TestEnv::new();
    import(&env, Some("busybox"));
    let store = Store::open(&env.root()).unwrap();
    let base = store.resolve_image("busybox").unwrap();
    let is_root = nix::unistd::Uid::effective().is_root();

    // A second layer made from an overlay upper dir: one new file, one whiteout.
    let upper = env.path().join("upper");
    std::fs::create_dir_all(upper.join("etc")).unwrap();
    std::fs::write(upper.join("etc/added"), "hi").unwrap();
    if is_root {
        nix::sys::stat::mknod(
            &upper.join("etc/issue"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
    }
    let layer = store
        .write_layer(&LayerSource::OverlayUpper(&upper), &LayerOptions::default())
        .unwrap();
    assert!(store.has_blob(&layer.digest));
    let mut config: ImageConfig = store.image_config(&base.id).unwrap();
    config.rootfs = RootFs {
        kind: "layers".into(),
        diff_ids: vec![base.layers[0].diff_id.clone(), layer.diff_id.clone()],
    };
    config.history.push(History {
        created_by: Some("RUN touch /etc/added".into()),
        ..History::default()
    });
    let layers = vec![base.layers[0].clone(), layer];
    let id = store
        .commit_image(&config, &layers, &[Reference::parse("child:v1").unwrap()])
        .unwrap();
    assert_eq!(store.resolve_image("child:v1").unwrap().id, id);
    // A digest reference is refused as a tag, by commit and by tag.
    let digest_ref = Reference::parse(&format!("child@{id}")).unwrap();
    let err = store
        .commit_image(&config, &layers, std::slice::from_ref(&digest_ref))
        .unwrap_err();
    assert!(err.to_string().contains("digest reference"), "{err}");
    let err = store.tag("child:v1", &digest_ref).unwrap_err();
    assert!(err.to_string().contains("digest reference"), "{err}");
    assert_eq!(store.image_tags(&id).unwrap().len(), 1);
    let out = env.ok(&["history", "child:v1"]);
    assert!(out.contains("RUN touch /etc/added"), "{out}");

    if !is_root {
        eprintln!("skipping snapshot checks: unpacking device-node whiteouts needs root");
        return;
    }
    let dirs = store.snapshot_dirs(&id).unwrap();
    assert_eq!(dirs.len(), 2);
    assert!(dirs[0].join("bin/busybox").is_file());
    assert!(dirs[0].starts_with(env.root().join("snapshots")));
    assert_eq!(
        std::fs::read_to_string(dirs[1].join("etc/added")).unwrap(),
        "hi"
    );
    let wh = std::fs::symlink_metadata(dirs[1].join("etc/issue")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(
        &wh.file_type()
    ));
    // The base image shares the bottom snapshot.
    assert_eq!(
        store.snapshot_dirs(&base.id).unwrap(),
        vec![dirs[0].clone()]
    );
    // Removing the child keeps the shared snapshot, drops its own.
    env.ok(&["rmi", "child:v1"]);
    assert!(dirs[0].is_dir());
    assert!(!dirs[1].exists());
    assert!(Path::new(&dirs[0])
        .join("bin/sh")
        .symlink_metadata()
        .is_ok());
}

#[test]
fn prune_collects_files_left_by_a_crash_after_a_grace_period() {
    let env = TestEnv::new();
    import(&env, Some("busybox"));
    let blobs_before = blob_count(&env);
    let root = env.root();
    let hour_ago = filetime::FileTime::from_unix_time(chrono::Utc::now().timestamp() - 7200, 0);
    let stale_blob = root.join("blobs/sha256").join("a".repeat(64));
    let fresh_blob = root.join("blobs/sha256").join("b".repeat(64));
    let stale_tmp = root.join("tmp/work-crashed");
    let stale_snap = root.join("snapshots").join("c".repeat(64));
    std::fs::write(&stale_blob, "orphan").unwrap();
    std::fs::write(&fresh_blob, "being written by someone").unwrap();
    std::fs::create_dir_all(&stale_tmp).unwrap();
    std::fs::create_dir_all(&stale_snap).unwrap();
    for p in [&stale_blob, &stale_tmp, &stale_snap] {
        filetime::set_file_mtime(p, hour_ago).unwrap();
    }
    let out = env.ok(&["image", "prune", "-f"]);
    assert!(out.contains("Total reclaimed space: 6B"), "{out}");
    assert!(!stale_blob.exists() && !stale_tmp.exists() && !stale_snap.exists());
    assert!(
        fresh_blob.exists(),
        "files younger than the grace period stay"
    );
    assert_eq!(blob_count(&env), blobs_before + 1);
    assert_eq!(
        env.ok(&["images", "-q"]).lines().count(),
        1,
        "tagged images stay"
    );
}
