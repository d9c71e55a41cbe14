//! The build cache and the garbage collector: `image prune` keeps what cache records use,
//! `builder prune` drops the records, and a record whose blob or snapshot is gone is no error.

mod build_support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use build_support::{cached_steps, path_str, BuildEnv};

const DOCKERFILE: &str = "FROM busybox
COPY a.txt /a.txt
RUN echo run-executed && cat /a.txt > /copy
";

fn ran(progress: &str) -> bool {
    progress.lines().any(|l| {
        let mut parts = l.splitn(3, ' ');
        let (_, t, text) = (parts.next(), parts.next(), parts.next());
        t.is_some_and(|t| t.parse::<f64>().is_ok()) && text == Some("run-executed")
    })
}

/// The entries of the store's blob and snapshot dirs.
fn store_files(b: &BuildEnv) -> HashSet<PathBuf> {
    let root = b.env.root();
    ["blobs/sha256", "snapshots"]
        .iter()
        .flat_map(|d| std::fs::read_dir(root.join(d)).unwrap())
        .map(|e| e.unwrap().path())
        .collect()
}

/// Makes `paths` look older than the collector's grace period.
fn age(paths: impl IntoIterator<Item = PathBuf>) {
    let old = filetime::FileTime::from_unix_time(1_000_000_000, 0);
    for p in paths {
        filetime::set_symlink_file_times(&p, old, old).unwrap();
    }
}

fn remove(path: &Path) {
    if path.is_dir() {
        std::fs::remove_dir_all(path).unwrap();
    } else {
        std::fs::remove_file(path).unwrap();
    }
}

fn setup() -> (BuildEnv, PathBuf, HashSet<PathBuf>) {
    let b = BuildEnv::new();
    let before = store_files(&b);
    let ctx = b.context("ctx", &[("a.txt", "a\n"), ("Dockerfile", DOCKERFILE)]);
    let p = b.build(&["-t", "c:1", path_str(&ctx)]);
    assert!(ran(&p), "{p}");
    (b, ctx, before)
}

#[test]
fn image_prune_keeps_build_cache() {
    let (b, ctx, _) = setup();
    b.env.ok(&["rmi", "c:1"]);
    age(store_files(&b));
    b.env.ok(&["image", "prune", "-f"]);
    let p = b.build(&["-t", "c:2", path_str(&ctx)]);
    assert!(!ran(&p), "{p}");
    assert_eq!(cached_steps(&p).len(), 2, "{p}");
    assert_eq!(b.image_file("c:2", "/copy").unwrap(), "a\n");
}

#[test]
fn builder_prune_drops_build_cache() {
    let (b, ctx, before) = setup();
    b.env.ok(&["rmi", "c:1"]);
    age(store_files(&b));
    // Without -a, records whose layers no image uses are dangling: all of them here.
    let out = b.env.ok(&["builder", "prune", "-f"]);
    assert!(out.contains("Deleted build cache records: 2"), "{out}");
    assert!(!out.contains("Total:\t0B"), "{out}");
    // Only the base image's blobs are left.
    let blobs = |files: HashSet<PathBuf>| -> HashSet<PathBuf> {
        files
            .into_iter()
            .filter(|p| p.to_string_lossy().contains("/blobs/"))
            .collect()
    };
    assert_eq!(blobs(store_files(&b)), blobs(before));
    let p = b.build(&["-t", "c:2", path_str(&ctx)]);
    assert!(ran(&p), "{p}");
    assert!(cached_steps(&p).is_empty(), "{p}");
}

#[test]
fn builder_prune_keeps_records_images_use_unless_all() {
    let (b, ctx, _) = setup();
    let out = b.env.ok(&["builder", "prune", "-f"]);
    assert!(out.contains("Deleted build cache records: 0"), "{out}");
    let p = b.build(&["-t", "c:2", path_str(&ctx)]);
    assert!(!ran(&p), "{p}");
    let context_cache = b.env.root().join("context-cache");
    assert!(context_cache.is_dir());
    let out = b.env.ok(&["builder", "prune", "-a", "-f"]);
    assert!(out.contains("Deleted build cache records: 2"), "{out}");
    assert!(
        !context_cache.exists(),
        "-a drops the context digest cache too"
    );
    let p = b.build(&["-t", "c:3", path_str(&ctx)]);
    assert!(ran(&p), "{p}");
    assert!(context_cache.is_dir());
}

#[test]
fn missing_blobs_make_a_cache_miss() {
    let (b, ctx, before) = setup();
    b.env.ok(&["rmi", "c:1"]);
    for p in store_files(&b).difference(&before) {
        remove(p);
    }
    let p = b.build(&["-t", "c:2", path_str(&ctx)]);
    assert!(ran(&p), "{p}");
    assert_eq!(b.image_file("c:2", "/copy").unwrap(), "a\n");
}

#[test]
fn missing_snapshots_are_unpacked_again() {
    let (b, ctx, before) = setup();
    b.env.ok(&["rmi", "c:1"]);
    let snapshots = b.env.root().join("snapshots");
    for p in store_files(&b).difference(&before) {
        if p.starts_with(&snapshots) {
            remove(p);
        }
    }
    let p = b.build(&["-t", "c:2", path_str(&ctx)]);
    assert!(!ran(&p), "{p}");
    assert_eq!(b.run_in("c:2", "cat /copy", &[]), "a\n");
}
