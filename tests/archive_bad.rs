//! The bad-input corpus: crafted archives (and layer tarballs) that `load` and `import` must
//! reject with a message naming the problem, leaving the store and everything outside it
//! untouched. The archives are generated here; `RBUILD_WRITE_CORPUS=DIR cargo test --test
//! archive_bad` also writes them to DIR for inspection (see testdata/archives/README.md).

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use common::{busybox_rootfs_tar, sha256_hex as sha, TestEnv};

/// Where the symlink and absolute-path cases point: must never be created.
const OUTSIDE: &str = "/tmp/rbuild-corpus-outside";

/// One tar entry with exactly these name/link bytes (the tar crate's setters refuse `..`).
fn entry(b: &mut tar::Builder<Vec<u8>>, name: &str, kind: tar::EntryType, link: &str, data: &[u8]) {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_entry_type(kind);
    h.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_size(data.len() as u64);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn tar_of(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, link, data) in entries {
        entry(&mut b, name, *kind, link, data);
    }
    b.into_inner().unwrap()
}

/// A layer of one entry with a long name or link target (GNU long-name entries).
fn long_entry(name: &str, kind: tar::EntryType, link: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(0);
    if kind == tar::EntryType::Symlink {
        b.append_link(&mut h, name, link).unwrap();
    } else {
        b.append_data(&mut h, name, std::io::empty()).unwrap();
    }
    b.into_inner().unwrap()
}

fn reg<'a>(name: &'a str, data: &'a [u8]) -> (&'a str, tar::EntryType, &'a str, &'a [u8]) {
    (name, tar::EntryType::Regular, "", data)
}

fn good_layer() -> Vec<u8> {
    tar_of(&[
        ("etc", tar::EntryType::Directory, "", b""),
        reg("etc/hello", b"hi\n"),
    ])
}

fn config_for(diff_ids: &[String]) -> Vec<u8> {
    serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    })
    .to_string()
    .into_bytes()
}

/// A new-layout docker-archive around `layer`; `edit` may change the parts before writing.
struct DockerParts {
    layer: Vec<u8>,
    layer_name: String,
    config: Vec<u8>,
    config_name: String,
    manifest: Vec<u8>,
    extra: Vec<(String, Vec<u8>)>,
}

fn docker_parts(layer: Vec<u8>) -> DockerParts {
    let diff = format!("sha256:{}", sha(&layer));
    let config = config_for(&[diff]);
    let layer_name = format!("blobs/sha256/{}", sha(&layer));
    let config_name = format!("blobs/sha256/{}", sha(&config));
    let manifest = serde_json::json!([{"Config": config_name, "RepoTags": ["corpus:bad"], "Layers": [layer_name]}])
        .to_string()
        .into_bytes();
    DockerParts {
        layer,
        layer_name,
        config,
        config_name,
        manifest,
        extra: Vec::new(),
    }
}

fn docker_archive(p: &DockerParts) -> Vec<u8> {
    let mut e: Vec<(&str, tar::EntryType, &str, &[u8])> = vec![
        reg(&p.config_name, &p.config),
        reg(&p.layer_name, &p.layer),
        reg("manifest.json", &p.manifest),
    ];
    for (n, d) in &p.extra {
        e.push(reg(n, d));
    }
    tar_of(&e)
}

fn oci_archive(index_edit: impl Fn(&mut serde_json::Value), drop_manifest: bool) -> Vec<u8> {
    let layer = good_layer();
    let config = config_for(&[format!("sha256:{}", sha(&layer))]);
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{}", sha(&config)), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": format!("sha256:{}", sha(&layer)), "size": layer.len()}],
    })
    .to_string()
    .into_bytes();
    let mut index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": format!("sha256:{}", sha(&manifest)), "size": manifest.len(),
                       "annotations": {"org.opencontainers.image.ref.name": "corpus:oci"}}],
    });
    index_edit(&mut index);
    let index = index.to_string().into_bytes();
    let names = [
        format!("blobs/sha256/{}", sha(&layer)),
        format!("blobs/sha256/{}", sha(&config)),
        format!("blobs/sha256/{}", sha(&manifest)),
    ];
    let mut e = vec![
        reg("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
        reg("index.json", &index),
        reg(&names[0], &layer),
        reg(&names[1], &config),
    ];
    if !drop_manifest {
        e.push(reg(&names[2], &manifest));
    }
    tar_of(&e)
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// A bad input: file name, bytes, what the error must say, and whether `import` should be
/// tried too (for bad layer tarballs).
struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    want: &'static str,
    layer: Option<Vec<u8>>,
}

fn corpus() -> Vec<Case> {
    use tar::EntryType::{Directory, Link, Symlink};
    let abs = format!("{OUTSIDE}/abs-evil");
    let through = OUTSIDE.to_string();
    let bad_layers: Vec<(&'static str, Vec<u8>, &'static str)> = vec![
        (
            "layer-path-traversal",
            tar_of(&[reg("../../rbuild-corpus-evil", b"x")]),
            "`..`",
        ),
        (
            "layer-absolute-path",
            tar_of(&[reg(&abs, b"x")]),
            "absolute path",
        ),
        (
            "layer-symlink-then-write",
            tar_of(&[("link", Symlink, &through, b""), reg("link/evil", b"x")]),
            "through the symlink",
        ),
        (
            "layer-hardlink-outside",
            tar_of(&[
                ("etc", Directory, "", b""),
                ("etc/h", Link, "../../../etc/passwd", b""),
            ]),
            "points outside",
        ),
        (
            "layer-duplicate-entries",
            tar_of(&[reg("f", b"1"), reg("f", b"2")]),
            "more than once",
        ),
        // `run` spent 82 s unpacking this before failing with `File name too long`.
        (
            "layer-5000-level-path",
            long_entry(
                &format!("{}f", "d/".repeat(5000)),
                tar::EntryType::Regular,
                "",
            ),
            "its path is 10001 bytes; at most 3838 fit in Linux's PATH_MAX",
        ),
        (
            "layer-component-over-name-max",
            long_entry(
                &format!("etc/{}", "n".repeat(300)),
                tar::EntryType::Regular,
                "",
            ),
            "is 300 bytes; Linux allows at most 255 (NAME_MAX)",
        ),
        (
            "layer-symlink-target-over-path-max",
            long_entry("link", Symlink, &"t/".repeat(2500)),
            "its link target is 5000 bytes; Linux allows at most 4095",
        ),
    ];
    let mut out: Vec<Case> = bad_layers
        .into_iter()
        .map(|(name, layer, want)| Case {
            name,
            bytes: docker_archive(&docker_parts(layer.clone())),
            want,
            layer: Some(layer),
        })
        .collect();

    let good = docker_archive(&docker_parts(good_layer()));
    let mut p = docker_parts(good_layer());
    p.manifest = serde_json::json!([{"Config": p.config_name, "RepoTags": ["corpus:bad"], "Layers": [format!("blobs/sha256/{}", sha(b"missing"))]}]).to_string().into_bytes();
    out.push(Case {
        name: "manifest-missing-blob",
        bytes: docker_archive(&p),
        want: "which is not in the archive",
        layer: None,
    });

    let mut p = docker_parts(good_layer());
    p.layer_name = format!("blobs/sha256/{}", sha(b"something else"));
    p.manifest = serde_json::json!([{"Config": p.config_name, "RepoTags": ["corpus:bad"], "Layers": [p.layer_name]}]).to_string().into_bytes();
    out.push(Case {
        name: "blob-digest-mismatch",
        bytes: docker_archive(&p),
        want: "digest mismatch",
        layer: None,
    });

    let mut p = docker_parts(good_layer());
    p.config = config_for(&[format!("sha256:{}", sha(b"not the layer"))]);
    p.config_name = format!("{}.json", sha(&p.config));
    p.manifest = serde_json::json!([{"Config": p.config_name, "RepoTags": ["corpus:bad"], "Layers": [p.layer_name]}]).to_string().into_bytes();
    out.push(Case {
        name: "diffid-mismatch",
        bytes: docker_archive(&p),
        want: "DiffID listed in the config",
        layer: None,
    });

    let mut p = docker_parts(good_layer());
    p.config = b"this is not JSON {".to_vec();
    p.config_name = "config.json".into();
    p.manifest = serde_json::json!([{"Config": "config.json", "RepoTags": ["corpus:bad"], "Layers": [p.layer_name]}]).to_string().into_bytes();
    out.push(Case {
        name: "config-not-json",
        bytes: docker_archive(&p),
        want: "is not valid JSON",
        layer: None,
    });

    // A digest reference is no tag: stored as one, it could not be looked up or removed.
    let mut p = docker_parts(good_layer());
    p.manifest = serde_json::json!([{"Config": p.config_name, "RepoTags": [format!("corpus@sha256:{}", sha(b"x"))], "Layers": [p.layer_name]}]).to_string().into_bytes();
    out.push(Case {
        name: "repotag-is-a-digest",
        bytes: docker_archive(&p),
        want: "refusing to create a tag with a digest reference",
        layer: None,
    });
    out.push(Case {
        name: "oci-name-is-a-digest",
        bytes: oci_archive(
            |i| {
                i["manifests"][0]["annotations"]["io.containerd.image.name"] =
                    serde_json::json!(format!("docker.io/library/corpus:oci@sha256:{}", sha(b"x")))
            },
            false,
        ),
        want: "refusing to create a tag with a digest reference",
        layer: None,
    });

    let mut p = docker_parts(good_layer());
    p.extra.push(("manifest.json".into(), p.manifest.clone()));
    out.push(Case {
        name: "duplicate-entries",
        bytes: docker_archive(&p),
        want: "appears more than once",
        layer: None,
    });

    // 300,000 tags in a 1 MB archive made an 82 MB image index that slowed every `run`.
    let mut p = docker_parts(good_layer());
    let tags: Vec<String> = (0..300_000).map(|i| format!("corpus:t{i}")).collect();
    p.manifest =
        serde_json::json!([{"Config": p.config_name, "RepoTags": tags, "Layers": [p.layer_name]}])
            .to_string()
            .into_bytes();
    out.push(Case {
        name: "too-many-repotags",
        bytes: docker_archive(&p),
        want: "lists 300000 RepoTags; rbuild loads at most 1000",
        layer: None,
    });
    let mut p = docker_parts(good_layer());
    let layers = vec![p.layer_name.clone(); 501];
    p.manifest = serde_json::json!([{"Config": p.config_name, "RepoTags": ["corpus:bad"], "Layers": layers}]).to_string().into_bytes();
    out.push(Case {
        name: "too-many-layers",
        bytes: docker_archive(&p),
        want: "lists 501 layers; rbuild loads at most 500",
        layer: None,
    });
    let mut p = docker_parts(good_layer());
    let one = serde_json::json!({"Config": p.config_name, "Layers": [p.layer_name]});
    p.manifest = serde_json::json!(vec![one; 10_001])
        .to_string()
        .into_bytes();
    out.push(Case {
        name: "too-many-images",
        bytes: docker_archive(&p),
        want: "manifest.json lists 10001 images; rbuild loads at most 10000",
        layer: None,
    });
    out.push(Case {
        name: "oci-too-many-tags",
        bytes: oci_archive(
            |i| {
                let first = i["manifests"][0].clone();
                let entries: Vec<serde_json::Value> = (0..1001)
                    .map(|n| {
                        let mut e = first.clone();
                        e["annotations"]["org.opencontainers.image.ref.name"] =
                            serde_json::json!(format!("corpus:t{n}"));
                        e
                    })
                    .collect();
                i["manifests"] = serde_json::json!(entries);
            },
            false,
        ),
        want: "lists 1001 tags; rbuild loads at most 1000",
        layer: None,
    });

    let gz = gzip(&good);
    out.push(Case {
        name: "truncated-gzip",
        bytes: gz[..gz.len() / 2].to_vec(),
        want: "corrupt, truncated",
        layer: None,
    });
    out.push(Case {
        name: "truncated-tar",
        bytes: good[..good.len() - 1500].to_vec(),
        want: "corrupt, truncated",
        layer: None,
    });
    out.push(Case {
        name: "not-a-tar",
        bytes: "This is a text file, not an archive.\n"
            .repeat(100)
            .into_bytes(),
        want: "not a tar",
        layer: None,
    });
    out.push(Case {
        name: "archive-path-traversal",
        bytes: tar_of(&[
            reg("../rbuild-corpus-evil", b"x"),
            reg("manifest.json", b"[]"),
        ]),
        want: "`..`",
        layer: None,
    });
    out.push(Case {
        name: "archive-absolute-path",
        bytes: tar_of(&[reg(&abs, b"x"), reg("manifest.json", b"[]")]),
        want: "absolute path",
        layer: None,
    });
    out.push(Case {
        name: "no-manifest",
        bytes: tar_of(&[reg("hello.txt", b"hello")]),
        want: "neither manifest.json nor index.json",
        layer: None,
    });
    out.push(Case {
        name: "oci-missing-manifest",
        bytes: oci_archive(|_| {}, true),
        want: "which is not in the archive",
        layer: None,
    });
    out.push(Case {
        name: "oci-size-mismatch",
        bytes: oci_archive(|i| i["manifests"][0]["size"] = serde_json::json!(1), false),
        want: "size mismatch",
        layer: None,
    });
    out
}

fn blob_names(env: &TestEnv) -> BTreeSet<String> {
    std::fs::read_dir(env.root().join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            out.push(p.clone());
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                walk(&p, out);
            }
        }
    }
}

#[test]
fn corpus_is_rejected_and_changes_nothing() {
    if let Some(dir) = std::env::var_os("RBUILD_WRITE_CORPUS") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        for c in corpus() {
            std::fs::write(dir.join(format!("{}.tar", c.name)), &c.bytes).unwrap();
        }
    }
    let env = TestEnv::new();
    let tar = busybox_rootfs_tar().to_str().unwrap().to_string();
    env.ok(&["import", &tar, "busybox"]);
    // A good archive of the same construction loads: the corpus fails for its flaw only.
    let good = env.path().join("good.tar");
    std::fs::write(&good, docker_archive(&docker_parts(good_layer()))).unwrap();
    assert_eq!(
        env.ok(&["load", "-i", good.to_str().unwrap()]),
        "Loaded image: corpus:bad\n"
    );
    let oci = env.path().join("good-oci.tar");
    std::fs::write(&oci, oci_archive(|_| {}, false)).unwrap();
    assert_eq!(
        env.ok(&["load", "-i", oci.to_str().unwrap()]),
        "Loaded image: corpus:oci\n"
    );
    env.ok(&["rmi", "corpus:bad", "corpus:oci"]);

    let images_before = env.ok(&[
        "images",
        "--no-trunc",
        "--format",
        "{{.ID}} {{.Repository}}:{{.Tag}} {{.Size}}",
    ]);
    let blobs_before = blob_names(&env);
    for c in corpus() {
        let f = env.path().join(format!("{}.tar", c.name));
        std::fs::write(&f, &c.bytes).unwrap();
        let err = env.fails(&["load", "-i", f.to_str().unwrap()]);
        assert!(
            err.contains(c.want),
            "{}: error should mention {:?}, got:\n{err}",
            c.name,
            c.want
        );
        assert!(!err.contains("panicked"), "{}: {err}", c.name);
        if let Some(layer) = &c.layer {
            let lf = env.path().join(format!("{}-layer.tar", c.name));
            std::fs::write(&lf, layer).unwrap();
            let err = env.fails(&["import", lf.to_str().unwrap(), "corpus:import"]);
            assert!(
                err.contains(c.want),
                "import {}: want {:?}, got:\n{err}",
                c.name,
                c.want
            );
        }
        assert_eq!(
            env.ok(&[
                "images",
                "--no-trunc",
                "--format",
                "{{.ID}} {{.Repository}}:{{.Tag}} {{.Size}}"
            ]),
            images_before,
            "{}: images changed",
            c.name
        );
        assert_eq!(blob_names(&env), blobs_before, "{}: blobs changed", c.name);
        let tmp: Vec<_> = std::fs::read_dir(env.root().join("tmp")).unwrap().collect();
        assert!(tmp.is_empty(), "{}: temp files left behind", c.name);
    }
    assert!(
        !Path::new(OUTSIDE).exists(),
        "something was written to {OUTSIDE}"
    );
    let mut all = Vec::new();
    walk(env.path(), &mut all);
    assert!(
        !all.iter().any(|p| p.to_string_lossy().contains("evil")),
        "an entry of a bad archive was written: {:?}",
        all.iter()
            .filter(|p| p.to_string_lossy().contains("evil"))
            .collect::<Vec<_>>()
    );
    assert!(!Path::new("/tmp/rbuild-corpus-evil").exists());
}
