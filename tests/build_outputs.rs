//! `rbuild build -o` (issue 14, "build flags CI uses"): BuildKit's output types and layer
//! compression (zstd layers through a real registry, skopeo, podman and back).

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::registry::Registry;
use common::{assert_success, TestEnv};

const ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A context whose build adds a RUN layer and a COPY layer of compressible text.
fn context(env: &TestEnv) -> PathBuf {
    let ctx = env.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN echo zstd-ok > /hello\nCOPY text.txt /text.txt\n",
    )
    .unwrap();
    let text: String = (0..20000).map(|i| format!("line {i} of text\n")).collect();
    std::fs::write(ctx.join("text.txt"), text).unwrap();
    ctx
}

fn build(env: &TestEnv, args: &[&str], ctx: &Path) -> std::process::Output {
    let out = env
        .cmd()
        .args(["build", "--progress=plain"])
        .args(args)
        .arg(ctx)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_success(&format!("rbuild build {args:?}"), &out);
    out
}

fn tool(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert_success(&format!("{cmd:?}"), &out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn media_types(manifest: &serde_json::Value) -> Vec<String> {
    manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap().to_string())
        .collect()
}

/// The manifest the registry serves for `reference` (skopeo reads it).
fn registry_manifest(reference: &str) -> serde_json::Value {
    let raw = tool(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ]));
    serde_json::from_str(&raw).unwrap()
}

/// The manifest of image `name` in `env`'s store (an OCI layout skopeo reads).
fn store_manifest(env: &TestEnv, name: &str) -> serde_json::Value {
    let raw = tool(Command::new("skopeo").args([
        "inspect",
        "--raw",
        &format!("oci:{}:{name}", env.root().display()),
    ]));
    serde_json::from_str(&raw).unwrap()
}

/// `-o type=registry,…,compression=zstd,force-compression=true` pushes zstd layers (the base's
/// too); skopeo copies the image within the registry keeping them; rbuild pulls the copy into
/// a new store and runs it; `--metadata-file` names the digest the registry has.
#[test]
fn zstd_layers_pushed_copied_by_skopeo_pulled_back_and_run() {
    let reg = Registry::plain();
    let host = reg.host();
    let env = TestEnv::with_base("busybox:latest");
    let ctx = context(&env);
    let meta = env.path().join("meta.json");
    let name = format!("{host}/zz:1");
    build(
        &env,
        &[
            "-o",
            &format!("type=registry,name={name},compression=zstd,force-compression=true"),
            "--metadata-file",
            meta.to_str().unwrap(),
        ],
        &ctx,
    );
    let pushed = registry_manifest(&name);
    assert_eq!(media_types(&pushed), vec![ZSTD; 3], "{pushed}");
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    let digest = tool(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &format!("docker://{name}"),
    ]));
    assert_eq!(meta["containerimage.digest"], digest.trim(), "{meta}");
    assert_eq!(meta["image.name"], name.as_str());

    let copy = format!("{host}/zz:copy");
    tool(Command::new("skopeo").args([
        "copy",
        "-q",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{name}"),
        &format!("docker://{copy}"),
    ]));
    assert_eq!(media_types(&registry_manifest(&copy)), vec![ZSTD; 3]);

    let env2 = TestEnv::new();
    env2.ok(&["pull", &copy]);
    assert_eq!(media_types(&store_manifest(&env2, &copy)), vec![ZSTD; 3]);
    let out = env2.ok(&["run", "--rm", &copy, "cat", "/hello"]);
    assert_eq!(out.trim(), "zstd-ok");
    let lines = env2.ok(&["run", "--rm", &copy, "wc", "-l", "/text.txt"]);
    assert!(lines.trim().starts_with("20000"), "{lines}");
}

/// Without `force-compression`, the layers the build writes are zstd and the base's stay
/// gzip (BuildKit's rule); the OCI archive carries them as stored, rbuild loads and runs it,
/// and podman loads it (podman ≥ 4 reads zstd layers).
#[test]
fn zstd_without_force_keeps_the_base_layers_and_the_archive_loads_in_podman() {
    let env = TestEnv::with_base("busybox:latest");
    let ctx = context(&env);
    let archive = env.path().join("z.tar");
    build(
        &env,
        &[
            "-t",
            "z:1",
            "-o",
            &format!("type=oci,dest={},compression=zstd", archive.display()),
        ],
        &ctx,
    );
    assert_eq!(
        media_types(&store_manifest(&env, "z:1")),
        vec![GZIP, ZSTD, ZSTD]
    );
    let env2 = TestEnv::new();
    env2.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(
        media_types(&store_manifest(&env2, "z:1")),
        vec![GZIP, ZSTD, ZSTD],
        "the archive holds the layers as stored"
    );
    assert_eq!(
        env2.ok(&["run", "--rm", "z:1", "cat", "/hello"]).trim(),
        "zstd-ok"
    );

    let pm = env.path().join("podman");
    let out = tool(
        Command::new("podman")
            .arg("--root")
            .arg(pm.join("storage"))
            .arg("--runroot")
            .arg(pm.join("run"))
            .args(["--storage-driver", "vfs", "--events-backend", "file"])
            .args(["load", "-q", "-i"])
            .arg(&archive),
    );
    assert!(out.contains("z:1"), "{out}");
}

/// `type=tar,dest=-` writes the image's filesystem to stdout, `type=docker,dest=-` a docker
/// archive another store loads; `type=image,name=…,compression=uncompressed` stores the
/// image under the extra name with plain tar layers (the base's too when forced).
#[test]
fn tar_and_docker_outputs_to_stdout_and_uncompressed_image() {
    let env = TestEnv::with_base("busybox:latest");
    let ctx = context(&env);
    let out = build(&env, &["-o", "type=tar,dest=-"], &ctx);
    let mut tar = tar::Archive::new(&out.stdout[..]);
    let mut hello = String::new();
    for e in tar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_str() == Some("hello") {
            e.read_to_string(&mut hello).unwrap();
        }
    }
    assert_eq!(hello, "zstd-ok\n");

    let out = build(&env, &["-t", "d:1", "-o", "type=docker,dest=-"], &ctx);
    let env2 = TestEnv::new();
    let loaded = env2.run_with_stdin(&["load"], &out.stdout);
    assert_success("rbuild load", &loaded);
    assert_eq!(
        env2.ok(&["run", "--rm", "d:1", "cat", "/hello"]).trim(),
        "zstd-ok"
    );

    build(
        &env,
        &[
            "-o",
            "type=image,name=plain:1,compression=uncompressed,force-compression=true",
        ],
        &ctx,
    );
    assert_eq!(
        media_types(&store_manifest(&env, "plain:1")),
        vec!["application/vnd.oci.image.layer.v1.tar"; 3]
    );
    assert_eq!(
        env.ok(&["run", "--rm", "plain:1", "cat", "/hello"]).trim(),
        "zstd-ok"
    );

    let err = env.fails(&[
        "build",
        "-q",
        "-o",
        "type=tar,dest=-",
        ctx.to_str().unwrap(),
    ]);
    assert!(err.contains("stdout"), "{err}");
}
