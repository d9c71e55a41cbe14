//! `build --annotation` (issue 14, "build flags CI uses"): OCI annotations in the manifest the
//! store keeps, in `-o type=oci|docker` archives (read by skopeo and by parsing) and in what
//! `push` sends (skopeo reads it back from a real registry); bad types are refused clearly.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::registry::Registry;
use common::{assert_failure, assert_success, TestEnv};
use serde_json::Value;

const TITLE: &str = "org.opencontainers.image.title";

fn context(env: &TestEnv) -> PathBuf {
    let ctx = env.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nCOPY a.txt /a.txt\n").unwrap();
    std::fs::write(ctx.join("a.txt"), "annotated\n").unwrap();
    ctx
}

fn build(env: &TestEnv, args: &[&str], ctx: &Path) -> std::process::Output {
    env.cmd()
        .args(["build", "--progress=plain"])
        .args(args)
        .arg(ctx)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn tool(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert_success(&format!("{cmd:?}"), &out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

/// The store's `index.json` entry for `name` (full name) and the manifest it points to.
fn store_manifest(env: &TestEnv, name: &str) -> (String, Value) {
    let root = env.root();
    let index = json(&std::fs::read(root.join("index.json")).unwrap());
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["io.containerd.image.name"] == name)
        .unwrap_or_else(|| panic!("{name} not in the store's index.json: {index}"))
        .clone();
    let digest = entry["digest"].as_str().unwrap().to_string();
    let blob = root
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    (digest, json(&std::fs::read(blob).unwrap()))
}

/// `tar` unpacked into a new directory.
fn untar(tar: &Path, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    tool(Command::new("tar").arg("-xf").arg(tar).arg("-C").arg(dir));
}

/// An OCI layout directory's `index.json` and the manifest its only entry points to.
fn layout_manifest(dir: &Path) -> (Value, Value) {
    let index = json(&std::fs::read(dir.join("index.json")).unwrap());
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let m = std::fs::read(
        dir.join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap();
    (index, json(&m))
}

/// Every annotation type rbuild writes, through every place it writes it: the manifest the
/// store keeps (and so what `push` sends, skopeo reads it back from the registry with the same
/// digest), the OCI archive (skopeo and parsing), the docker archive (its OCI view, which
/// skopeo reads; `load` still reads it as a docker archive). `index:` and
/// `manifest-descriptor:` go only into the archives' `index.json`.
#[test]
fn annotations_in_the_store_the_archives_and_the_registry() {
    let reg = Registry::plain();
    let env = TestEnv::with_base("busybox:latest");
    let ctx = context(&env);
    let name = format!("{}/ann:1", reg.host());
    let oci = env.path().join("img-oci.tar");
    let docker = env.path().join("img-docker.tar");
    let out = build(
        &env,
        &[
            "-t",
            &name,
            "--annotation",
            &format!("{TITLE}=The title"),
            "--annotation",
            "manifest:com.example.m=m1",
            "--annotation",
            "index:com.example.i=i1",
            "--annotation",
            "manifest-descriptor:com.example.d=d1",
            "-o",
            &format!("type=oci,dest={}", oci.display()),
            "-o",
            &format!(
                "type=docker,dest={},annotation.com.example.o=o1",
                docker.display()
            ),
            "--push",
        ],
        &ctx,
    );
    assert_success("build --annotation", &out);

    // The store's manifest: manifest annotations only (the -o one merged in).
    let (digest, manifest) = store_manifest(&env, &name);
    let a = &manifest["annotations"];
    assert_eq!(a[TITLE], "The title", "{manifest}");
    assert_eq!(a["com.example.m"], "m1");
    assert_eq!(a["com.example.o"], "o1");
    assert!(a.get("com.example.i").is_none() && a.get("com.example.d").is_none());

    // What the registry has: the same manifest bytes.
    let raw = tool(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{name}"),
    ]));
    assert_eq!(json(raw.as_bytes()), manifest);
    let pushed = tool(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &format!("docker://{name}"),
    ]));
    assert_eq!(pushed.trim(), digest);

    // The OCI archive: skopeo reads the annotated manifest; index.json has the others.
    let raw = tool(Command::new("skopeo").args([
        "inspect",
        "--raw",
        &format!("oci-archive:{}", oci.display()),
    ]));
    assert_eq!(json(raw.as_bytes()), manifest);
    let dir = env.path().join("oci-unpacked");
    untar(&oci, &dir);
    let (index, m) = layout_manifest(&dir);
    assert_eq!(m, manifest);
    assert_eq!(index["annotations"]["com.example.i"], "i1", "{index}");
    let entry = &index["manifests"][0]["annotations"];
    assert_eq!(entry["com.example.d"], "d1", "{index}");
    assert_eq!(entry["io.containerd.image.name"], name.as_str(), "{index}");

    // The docker archive: still a docker archive (manifest.json), also an OCI layout whose
    // manifest lists the archive's uncompressed layers and carries the annotations.
    let dir = env.path().join("docker-unpacked");
    untar(&docker, &dir);
    assert!(dir.join("manifest.json").is_file());
    let (index, m) = layout_manifest(&dir);
    assert_eq!(m["annotations"], manifest["annotations"], "{m}");
    assert_eq!(index["annotations"]["com.example.i"], "i1", "{index}");
    assert_eq!(index["manifests"][0]["annotations"]["com.example.d"], "d1");
    let diff_ids = env.inspect(&name)["RootFS"]["Layers"].clone();
    let layers: Vec<Value> = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].clone())
        .collect();
    assert_eq!(Value::Array(layers), diff_ids);
    let raw = tool(Command::new("skopeo").args([
        "inspect",
        "--raw",
        &format!("oci-archive:{}", docker.display()),
    ]));
    assert_eq!(json(raw.as_bytes()), m);
    let other = TestEnv::new();
    other.ok(&["load", "-i", docker.to_str().unwrap()]);
    assert_eq!(other.inspect(&name)["Id"], env.inspect(&name)["Id"]);
}

/// Annotations change the manifest (its digest), never the image ID; a build without them
/// writes a manifest without them again; an unannotated docker archive stays as it was (no
/// OCI view).
#[test]
fn annotations_change_the_manifest_not_the_image_id() {
    let env = TestEnv::with_base("busybox:latest");
    let ctx = context(&env);
    let id = |args: &[&str]| {
        let mut all = vec!["-q", "-t", "x:1"];
        all.extend_from_slice(args);
        let out = build(&env, &all, &ctx);
        assert_success("build", &out).trim().to_string()
    };
    let plain = id(&[]);
    let (d0, m0) = store_manifest(&env, "docker.io/library/x:1");
    assert!(m0.get("annotations").is_none(), "{m0}");
    let annotated = id(&["--annotation", "k=v"]);
    let (d1, m1) = store_manifest(&env, "docker.io/library/x:1");
    assert_eq!(plain, annotated, "the image ID stays");
    assert_ne!(d0, d1);
    assert_eq!(m1["annotations"]["k"], "v");
    assert_eq!(m1["layers"], m0["layers"]);
    id(&[]);
    assert_eq!(store_manifest(&env, "docker.io/library/x:1").0, d0);

    let tar = env.path().join("plain.tar");
    env.ok(&["save", "-o", tar.to_str().unwrap(), "x:1"]);
    let dir = env.path().join("plain");
    untar(&tar, &dir);
    assert!(!dir.join("index.json").exists() && !dir.join("oci-layout").exists());
}

/// A type rbuild does not write (or does not know) is an error naming it, before anything
/// is built; so is a platform rbuild does not build.
#[test]
fn bad_annotation_types_are_refused() {
    let env = TestEnv::with_base("busybox:latest");
    let ctx = context(&env);
    let fails = |args: &[&str]| {
        let out = build(&env, args, &ctx);
        assert_failure(&format!("build {args:?}"), &out)
    };
    let err = fails(&["--annotation", "layer:k=v"]);
    assert!(err.contains("unknown annotation type \"layer\""), "{err}");
    let err = fails(&["--annotation", "index-descriptor:k=v"]);
    assert!(
        err.contains("index-descriptor annotations have nowhere to go"),
        "{err}"
    );
    let err = fails(&["--annotation", "novalue"]);
    assert!(err.contains("expected [TYPE:]KEY=VALUE"), "{err}");
    let err = fails(&["--annotation", "manifest[windows/s390x]:k=v"]);
    assert!(err.contains("rbuild builds for linux/"), "{err}");
    let dest = env.path().join("o.tar");
    let err = fails(&[
        "-o",
        &format!("type=oci,dest={},annotation-blob.k=v", dest.display()),
    ]);
    assert!(err.contains("unknown annotation type \"blob\""), "{err}");
    assert!(!dest.exists());
    assert!(
        env.ok(&["images", "-q"]).lines().count() == 1,
        "nothing was built"
    );
}
