//! save / load round trips: docker-archive (new and old layouts), oci-archive, oci-dir,
//! compressed archives, stdin/stdout streaming, several images with shared layers.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};

use common::{busybox_rootfs_tar, ok_cmd, sha256sum_hex, TestEnv};
use serde_json::Value;

fn setup() -> (TestEnv, String) {
    let env = TestEnv::new();
    let id = env.import_base_with("busybox", &["CMD [\"sh\"]"]);
    env.ok(&["tag", "busybox", "localhost:5000/bb:v1"]);
    (env, id)
}

/// name → content of every regular file in a tar.
fn tar_files(path: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
    let mut a = tar::Archive::new(std::fs::File::open(path).unwrap());
    let mut out = BTreeMap::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if e.header().entry_type().is_file() {
            let mut buf = Vec::new();
            e.read_to_end(&mut buf).unwrap();
            out.insert(e.path().unwrap().display().to_string(), buf);
        }
    }
    out
}

fn id_of(env: &TestEnv, name: &str) -> String {
    env.ok(&["inspect", "-f", "{{.Id}}", name])
        .trim()
        .to_string()
}

#[test]
fn docker_archive_save_load_save_is_identical() {
    let (env, id) = setup();
    let tar = busybox_rootfs_tar().to_str().unwrap().to_string();
    let other = env
        .ok(&["import", "-c", "CMD [\"true\"]", &tar, "other:2"])
        .trim()
        .to_string();
    let a = env.path().join("a.tar");
    env.ok(&[
        "save",
        "-o",
        a.to_str().unwrap(),
        "busybox",
        "localhost:5000/bb:v1",
        "other:2",
    ]);
    let files = tar_files(&a);
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let m = manifest.as_array().unwrap();
    assert_eq!(m.len(), 2, "two images: {manifest}");
    assert_eq!(
        m[0]["RepoTags"],
        serde_json::json!(["busybox:latest", "localhost:5000/bb:v1"])
    );
    assert_eq!(m[1]["RepoTags"], serde_json::json!(["other:2"]));
    assert_eq!(m[0]["Layers"], m[1]["Layers"], "same rootfs, same layer");
    let layer_path = m[0]["Layers"][0].as_str().unwrap();
    // The layer is stored once, uncompressed, named by its DiffID.
    let layer = &files[layer_path];
    let diff: String = env.ok(&["inspect", "-f", "{{json .RootFS.Layers}}", "busybox"]);
    let digest = format!("sha256:{}", sha256sum_hex(layer));
    assert!(diff.contains(&digest), "{diff} vs {digest}");
    assert_eq!(
        files.len(),
        2 + 1 + 2,
        "2 configs, 1 layer, manifest.json, repositories"
    );
    assert!(files.contains_key("repositories"));

    let env2 = TestEnv::new();
    let out = env2.ok(&["load", "-i", a.to_str().unwrap()]);
    assert_eq!(
        out,
        "Loaded image: busybox:latest\nLoaded image: localhost:5000/bb:v1\nLoaded image: other:2\n"
    );
    assert_eq!(id_of(&env2, "busybox"), id);
    assert_eq!(id_of(&env2, "other:2"), other);
    let b = env2.path().join("b.tar");
    env2.ok(&[
        "save",
        "-o",
        b.to_str().unwrap(),
        "busybox",
        "localhost:5000/bb:v1",
        "other:2",
    ]);
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        "save → load → save differs"
    );
}

#[test]
fn streams_through_pipes_and_compressors() {
    let (env, id) = setup();
    for (tool, args) in [
        ("gzip", vec!["-c"]),
        ("zstd", vec!["-c", "-q"]),
        ("xz", vec!["-c", "-0"]),
        ("bzip2", vec!["-c"]),
    ] {
        // rbuild save busybox | TOOL > f
        let mut save = env
            .cmd()
            .args(["save", "busybox"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = Command::new(tool)
            .args(&args)
            .stdin(save.stdout.take().unwrap())
            .output()
            .unwrap();
        assert!(
            save.wait().unwrap().success() && out.status.success(),
            "{tool}"
        );
        let f = env.path().join(format!("a.tar.{tool}"));
        std::fs::write(&f, &out.stdout).unwrap();
        let env2 = TestEnv::new();
        let got = env2.ok(&["load", "-q", "-i", f.to_str().unwrap()]);
        assert_eq!(got, "Loaded image: busybox:latest\n", "{tool}");
        assert_eq!(id_of(&env2, "busybox"), id, "{tool}");
        // and from stdin
        let env3 = TestEnv::new();
        ok_cmd(
            env3.cmd()
                .arg("load")
                .stdin(std::fs::File::open(&f).unwrap()),
        );
        assert_eq!(id_of(&env3, "busybox"), id);
    }
}

#[test]
fn save_by_id_loads_untagged() {
    let (env, id) = setup();
    let f = env.path().join("id.tar");
    env.ok(&["save", "-o", f.to_str().unwrap(), &id[7..19]]);
    let manifest: Value = serde_json::from_slice(&tar_files(&f)["manifest.json"]).unwrap();
    assert_eq!(manifest[0]["RepoTags"], Value::Null);
    let env2 = TestEnv::new();
    assert_eq!(
        env2.ok(&["load", "-i", f.to_str().unwrap()]),
        format!("Loaded image ID: {id}\n")
    );
    assert!(env2.ok(&["images"]).contains("<none>"));
}

#[test]
fn oci_archive_and_dir_round_trip() {
    let (env, id) = setup();
    let a = env.path().join("oci.tar");
    env.ok(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        a.to_str().unwrap(),
        "busybox",
        "localhost:5000/bb:v1",
    ]);
    let files = tar_files(&a);
    assert!(files.contains_key("oci-layout"));
    let index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
    let names: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(names, vec!["busybox:latest", "localhost:5000/bb:v1"]);
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    // layers are kept compressed, as stored
    let env2 = TestEnv::new();
    let out = env2.ok(&["load", "-i", a.to_str().unwrap()]);
    assert_eq!(
        out,
        "Loaded image: busybox:latest\nLoaded image: localhost:5000/bb:v1\n"
    );
    assert_eq!(id_of(&env2, "busybox"), id);
    let b = env2.path().join("oci2.tar");
    env2.ok(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        b.to_str().unwrap(),
        "busybox",
        "localhost:5000/bb:v1",
    ]);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let inspect: Value = serde_json::from_str(&env2.ok(&["inspect", "busybox"])).unwrap();
    assert_eq!(
        inspect[0]["Manifest"]["Digest"], manifest_digest,
        "manifest digest kept"
    );

    let dir = env.path().join("layout");
    env.ok(&[
        "save",
        "--format",
        "oci-dir",
        "-o",
        dir.to_str().unwrap(),
        "busybox",
    ]);
    assert!(dir.join("oci-layout").is_file());
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], manifest_digest);
    let err = env.fails(&["save", "--format", "oci-dir", "busybox"]);
    assert!(err.contains("-o DIR"), "{err}");
}

/// Rewrites a new-layout docker-archive into docker's old layout (`<id>.json`,
/// `<layer>/layer.tar`, `<layer>/VERSION`, `<layer>/json`), with a second image whose layer is
/// a symlink to the first one's, as `docker save` before v25 wrote them.
#[test]
fn loads_old_docker_archive_layout_with_symlinked_layers() {
    let (env, id) = setup();
    let a = env.path().join("a.tar");
    env.ok(&["save", "-o", a.to_str().unwrap(), "busybox"]);
    let files = tar_files(&a);
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let config = &files[manifest[0]["Config"].as_str().unwrap()];
    let layer = &files[manifest[0]["Layers"][0].as_str().unwrap()];
    let old = env.path().join("old.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&old).unwrap());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    };
    let l1 = "1111111111111111111111111111111111111111111111111111111111111111";
    let l2 = "2222222222222222222222222222222222222222222222222222222222222222";
    add(&format!("{l1}/layer.tar"), layer);
    add(&format!("{l1}/VERSION"), b"1.0");
    add(&format!("{l1}/json"), b"{}");
    add(&format!("{}.json", &id[7..]), config);
    let m = serde_json::json!([
        {"Config": format!("{}.json", &id[7..]), "RepoTags": ["old:1"], "Layers": [format!("{l1}/layer.tar")]},
        {"Config": format!("{}.json", &id[7..]), "RepoTags": ["old:2"], "Layers": [format!("{l2}/layer.tar")]},
    ]);
    add("manifest.json", m.to_string().as_bytes());
    add("repositories", b"{}");
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(
        &mut h,
        format!("{l2}/layer.tar"),
        format!("../{l1}/layer.tar"),
    )
    .unwrap();
    b.into_inner().unwrap();
    let env2 = TestEnv::new();
    let out = env2.ok(&["load", "-i", old.to_str().unwrap()]);
    assert_eq!(out, "Loaded image: old:1\nLoaded image: old:2\n");
    assert_eq!(id_of(&env2, "old:1"), id);
    assert_eq!(id_of(&env2, "old:2"), id);
}

/// A layer above 4 MiB is stored as several gzip members and decompressed in parallel by
/// `save`; `load` then re-checks its DiffID, so any mistake in the order would fail here.
#[test]
fn multi_member_gzip_layers_save_exactly() {
    let env = TestEnv::new();
    let rootfs = env.path().join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    let mut text = String::new();
    let mut i = 0u64;
    while text.len() < (13 << 20) {
        text.push_str(&format!(
            "line {i} {}\n",
            i.wrapping_mul(0x9E3779B97F4A7C15)
        ));
        i += 1;
    }
    std::fs::write(rootfs.join("big.txt"), &text).unwrap();
    let tar = env.path().join("rootfs.tar");
    assert!(Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap()
        .success());
    let id = env
        .ok(&["import", tar.to_str().unwrap(), "big:1"])
        .trim()
        .to_string();
    let a = env.path().join("big.tar");
    env.ok(&["save", "-o", a.to_str().unwrap(), "big:1"]);
    let env2 = TestEnv::new();
    env2.ok(&["load", "-i", a.to_str().unwrap()]);
    assert_eq!(id_of(&env2, "big:1"), id);
    let files = tar_files(&a);
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let layer = &files[manifest[0]["Layers"][0].as_str().unwrap()];
    let mut ar = tar::Archive::new(&layer[..]);
    let mut found = false;
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().ends_with("big.txt") {
            let mut got = String::new();
            e.read_to_string(&mut got).unwrap();
            assert!(got == text, "content differs");
            found = true;
        }
    }
    assert!(found);
}

/// zstd layers (OCI, on request) are kept as zstd in oci-archive and decompressed for
/// docker-archive.
#[test]
fn zstd_layers_save_in_both_formats() {
    use rbuild::image::compress::Compression;
    use rbuild::image::layer::{LayerOptions, LayerSource};
    use rbuild::image::oci::{self, ImageConfig, RootFs};
    use rbuild::image::Reference;
    use rbuild::store::Store;

    let env = TestEnv::new();
    let rootfs = env.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(rootfs.join("etc/motd"), "zstd layer\n").unwrap();
    let store = Store::open(&env.root()).unwrap();
    let opts = LayerOptions {
        compression: Compression::Zstd,
        mtime: Some(0),
        ..LayerOptions::default()
    };
    let layer = store
        .write_layer(&LayerSource::Dir(&rootfs), &opts)
        .unwrap();
    assert_eq!(layer.media_type, oci::MEDIA_LAYER_ZSTD);
    let config = ImageConfig {
        architecture: oci::host_architecture().into(),
        os: "linux".into(),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![layer.diff_id.clone()],
        },
        ..ImageConfig::default()
    };
    let id = store
        .commit_image(
            &config,
            std::slice::from_ref(&layer),
            &[Reference::parse("z:1").unwrap()],
        )
        .unwrap();
    for format in ["docker-archive", "oci-archive"] {
        let f = env.path().join(format!("{format}.tar"));
        env.ok(&["save", "--format", format, "-o", f.to_str().unwrap(), "z:1"]);
        let env2 = TestEnv::new();
        assert_eq!(
            env2.ok(&["load", "-i", f.to_str().unwrap()]),
            "Loaded image: z:1\n"
        );
        assert_eq!(id_of(&env2, "z:1"), id.to_string(), "{format}");
        let v: Value = serde_json::from_str(&env2.ok(&["inspect", "z:1"])).unwrap();
        let files = tar_files(&f);
        if format == "oci-archive" {
            assert!(
                files.contains_key(&format!("blobs/sha256/{}", layer.digest.hex())),
                "zstd blob kept"
            );
        } else {
            assert!(
                files.contains_key(&format!("blobs/sha256/{}", layer.diff_id.hex())),
                "tar named by DiffID"
            );
        }
        assert_eq!(v[0]["RootFS"]["Layers"][0], layer.diff_id.to_string());
    }
}

/// `save --format oci-dir` into a directory that holds symlinks replaces the links; it never
/// writes through them to files outside the directory.
#[test]
fn oci_dir_save_does_not_write_through_symlinks() {
    let (env, _) = setup();
    let outside = env.path().join("outside");
    std::fs::write(&outside, "keep me").unwrap();
    let dir = env.path().join("layout");
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("index.json")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("oci-layout")).unwrap();
    let out = dir.to_str().unwrap();
    env.ok(&["save", "--format", "oci-dir", "-o", out, "busybox"]);
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "keep me");
    assert!(dir.join("index.json").symlink_metadata().unwrap().is_file());
    assert!(dir.join("oci-layout").symlink_metadata().unwrap().is_file());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("index.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);

    // A symlinked blobs directory would put the blobs elsewhere: refused.
    let dir2 = env.path().join("layout2");
    let elsewhere = env.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::create_dir(&dir2).unwrap();
    std::os::unix::fs::symlink(&elsewhere, dir2.join("blobs")).unwrap();
    let err = env.fails(&[
        "save",
        "--format",
        "oci-dir",
        "-o",
        dir2.to_str().unwrap(),
        "busybox",
    ]);
    assert!(err.contains("blobs") && err.contains("symlink"), "{err}");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}
