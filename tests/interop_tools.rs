//! Interop with the real tools from Debian packages: skopeo, umoci, podman (and docker when an
//! engine runs). What rbuild writes they read; what they write rbuild loads.

mod common;

use std::path::Path;
use std::process::Command;

use common::{ok_cmd as tool, sha256sum_hex, TestEnv};
use serde_json::Value;

fn setup() -> (TestEnv, String) {
    let env = TestEnv::new();
    let id = env.import_base_with("busybox", &["CMD [\"/bin/sh\"]"]);
    env.ok(&["tag", "busybox", "localhost:5000/team/app:v1"]);
    (env, id)
}

fn skopeo_inspect(target: &str) -> Value {
    serde_json::from_str(&tool(Command::new("skopeo").args(["inspect", target]))).unwrap()
}

fn skopeo_config(target: &str) -> Value {
    serde_json::from_str(&tool(
        Command::new("skopeo").args(["inspect", "--config", target]),
    ))
    .unwrap()
}

/// `rbuild save --format oci-dir -o DIR/layout NAME`; returns that layout directory.
fn save_oci_dir(env: &TestEnv, name: &str) -> std::path::PathBuf {
    let layout = env.path().join("layout");
    env.ok(&[
        "save",
        "--format",
        "oci-dir",
        "-o",
        layout.to_str().unwrap(),
        name,
    ]);
    layout
}

fn diff_ids(env: &TestEnv, name: &str) -> Value {
    env.inspect(name)["RootFS"]["Layers"].clone()
}

#[test]
fn skopeo_reads_every_format_rbuild_writes() {
    let (env, id) = setup();
    let layers = diff_ids(&env, "busybox");
    let d = env.path().join("d.tar");
    env.ok(&["save", "-o", d.to_str().unwrap(), "busybox"]);
    let v = skopeo_inspect(&format!("docker-archive:{}", d.display()));
    assert_eq!(v["Os"], "linux");
    // docker-archive layers are uncompressed: their digests are the DiffIDs
    assert_eq!(v["Layers"], layers);
    let cfg = skopeo_config(&format!("docker-archive:{}", d.display()));
    assert_eq!(cfg["config"]["Cmd"], serde_json::json!(["/bin/sh"]));

    let o = env.path().join("o.tar");
    env.ok(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        o.to_str().unwrap(),
        "busybox",
    ]);
    let v = skopeo_inspect(&format!("oci-archive:{}", o.display()));
    assert_eq!(v["Layers"].as_array().unwrap().len(), 1);
    assert_eq!(
        skopeo_config(&format!("oci-archive:{}", o.display()))["rootfs"]["diff_ids"],
        layers
    );

    // The store root itself is an OCI layout; tags are the familiar names.
    let root = env.root().display().to_string();
    for name in ["busybox:latest", "localhost:5000/team/app:v1"] {
        let v = skopeo_inspect(&format!("oci:{root}:{name}"));
        assert_eq!(v["Layers"].as_array().unwrap().len(), 1, "{name}");
        let cfg = tool(Command::new("skopeo").args([
            "inspect",
            "--raw",
            "--config",
            &format!("oci:{root}:{name}"),
        ]));
        let digest = format!("sha256:{}", sha256sum_hex(cfg.as_bytes()));
        assert_eq!(digest, id, "{name}: config digest is the image ID");
    }
}

#[test]
fn umoci_unpacks_rbuild_output_and_store() {
    let (env, _) = setup();
    let layout = save_oci_dir(&env, "busybox");
    for (src, bundle) in [
        (
            format!("{}:busybox:latest", layout.display()),
            env.path().join("b1"),
        ),
        (
            format!("{}:busybox:latest", env.root().display()),
            env.path().join("b2"),
        ),
    ] {
        tool(
            Command::new("umoci")
                .args(["unpack", "--image", &src])
                .arg(&bundle),
        );
        let rootfs = bundle.join("rootfs");
        assert!(rootfs.join("bin/busybox").is_file(), "{src}");
        assert_eq!(
            std::fs::read_link(rootfs.join("bin/sh")).unwrap(),
            Path::new("busybox")
        );
        assert_eq!(
            std::fs::read_to_string(rootfs.join("etc/issue")).unwrap(),
            "rbuild-test-busybox\n"
        );
        let config: Value =
            serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
        assert_eq!(config["process"]["args"], serde_json::json!(["/bin/sh"]));
    }
    // umoci lists the store's tags
    let tags = tool(
        Command::new("umoci")
            .args(["ls", "--layout"])
            .arg(env.root()),
    );
    assert!(tags.lines().any(|l| l == "busybox:latest"), "{tags}");
}

/// podman with a throwaway store under `dir` (vfs driver: no overlay mounts needed).
fn podman(dir: &Path) -> Command {
    let mut c = Command::new("podman");
    c.arg("--root")
        .arg(dir.join("storage"))
        .arg("--runroot")
        .arg(dir.join("run"))
        .args([
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
        ]);
    c
}

#[test]
fn podman_loads_rbuild_archives_and_rbuild_loads_podmans() {
    let (env, id) = setup();
    let pm = env.path().join("podman");
    let d = env.path().join("d.tar");
    env.ok(&[
        "save",
        "-o",
        d.to_str().unwrap(),
        "busybox",
        "localhost:5000/team/app:v1",
    ]);
    let out = tool(podman(&pm).args(["load", "-q", "-i"]).arg(&d));
    assert!(out.contains("busybox:latest"), "{out}");
    let ids = tool(podman(&pm).args([
        "images",
        "--no-trunc",
        "--format",
        "{{.ID}} {{.Repository}}:{{.Tag}}",
    ]));
    assert!(
        ids.contains(&format!("{} localhost:5000/team/app:v1", id)) || ids.contains(&id[7..]),
        "{ids}"
    );

    for (format, file) in [("docker-archive", "p-d.tar"), ("oci-archive", "p-o.tar")] {
        let f = env.path().join(file);
        tool(
            podman(&pm)
                .args(["save", "-q", "--format", format, "-o"])
                .arg(&f)
                .arg("localhost:5000/team/app:v1"),
        );
        let env2 = TestEnv::new();
        let out = env2.ok(&["load", "-i", f.to_str().unwrap()]);
        assert!(
            out.contains("Loaded image: localhost:5000/team/app:v1"),
            "{format}: {out}"
        );
        let got = env2.ok(&["inspect", "-f", "{{.Id}}", "localhost:5000/team/app:v1"]);
        assert_eq!(
            got.trim(),
            id,
            "{format}: podman keeps the config, so the ID is the same"
        );
        assert_eq!(
            diff_ids(&env2, "localhost:5000/team/app:v1"),
            diff_ids(&env, "busybox")
        );
    }
}

#[test]
fn rbuild_loads_what_skopeo_copy_writes() {
    let (env, id) = setup();
    let root = env.root().display().to_string();
    for (kind, file) in [("docker-archive", "s-d.tar"), ("oci-archive", "s-o.tar")] {
        let f = env.path().join(file);
        tool(Command::new("skopeo").args([
            "copy",
            "-q",
            &format!("oci:{root}:busybox:latest"),
            &format!("{kind}:{}:example.com/copied:v2", f.display()),
        ]));
        let env2 = TestEnv::new();
        let out = env2.ok(&["load", "-i", f.to_str().unwrap()]);
        assert!(out.contains("Loaded image"), "{kind}: {out}");
        let listed = env2.ok(&[
            "images",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.Repository}}:{{.Tag}}",
        ]);
        assert!(listed.contains(&id), "{kind}: {listed}");
        if kind == "docker-archive" {
            assert!(listed.contains("example.com/copied:v2"), "{listed}");
        }
    }
}

#[test]
fn docker_load_when_an_engine_runs() {
    let docker = Path::new("/usr/bin/docker");
    let running = docker.exists()
        && Command::new(docker)
            .arg("info")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
    if !running {
        println!("skipped: no Docker engine answers /usr/bin/docker info (start one with /work/shared/bench/peers.sh)");
        return;
    }
    let (env, id) = setup();
    let d = env.path().join("d.tar");
    env.ok(&[
        "save",
        "-o",
        d.to_str().unwrap(),
        "localhost:5000/team/app:v1",
    ]);
    let out = tool(Command::new(docker).args(["load", "-i"]).arg(&d));
    assert!(
        out.contains("Loaded image: localhost:5000/team/app:v1"),
        "{out}"
    );
    let got = tool(Command::new(docker).args([
        "image",
        "inspect",
        "-f",
        "{{.Id}}",
        "localhost:5000/team/app:v1",
    ]));
    assert_eq!(got.trim(), id);
    // and back: docker's own (old layout) docker-archive loads into rbuild with the same ID
    let back = env.path().join("from-docker.tar");
    tool(
        Command::new(docker)
            .args(["save", "-o"])
            .arg(&back)
            .arg("localhost:5000/team/app:v1"),
    );
    let _ = Command::new(docker)
        .args(["rmi", "localhost:5000/team/app:v1"])
        .output();
    let env2 = TestEnv::new();
    let out = env2.ok(&["load", "-i", back.to_str().unwrap()]);
    assert_eq!(out, "Loaded image: localhost:5000/team/app:v1\n");
    let got = env2.ok(&["inspect", "-f", "{{.Id}}", "localhost:5000/team/app:v1"]);
    assert_eq!(got.trim(), id);
}

/// Layers above 4 MiB are gzip-compressed in parallel as several gzip members; Go readers
/// (umoci, skopeo) must read them back bit for bit.
#[test]
fn umoci_reads_parallel_gzip_layers() {
    let env = TestEnv::new();
    let rootfs = env.path().join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    let mut data = Vec::with_capacity(10 << 20);
    let mut x: u64 = 0x9E3779B97F4A7C15;
    while data.len() < (10 << 20) + 777 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes()[..3]);
        data.extend_from_slice(b"text");
    }
    std::fs::write(rootfs.join("big"), &data).unwrap();
    let tar = env.path().join("rootfs.tar");
    tool(
        Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
    );
    env.ok(&["import", tar.to_str().unwrap(), "big:1"]);
    assert!(env.inspect("big:1")["Size"].as_u64().unwrap() > 10 << 20);
    let layout = save_oci_dir(&env, "big:1");
    let bundle = env.path().join("bundle");
    tool(
        Command::new("umoci")
            .args(["unpack", "--image", &format!("{}:big:1", layout.display())])
            .arg(&bundle),
    );
    assert!(
        std::fs::read(bundle.join("rootfs/big")).unwrap() == data,
        "content differs after umoci unpack"
    );
}
