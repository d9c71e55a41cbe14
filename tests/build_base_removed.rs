//! A base image removed (`rmi -f` from another process) while a build uses it: the build
//! fails naming the image and its missing layer, not only a blob digest (issue 10).

mod build_support;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use build_support::{path_str, BuildEnv};

/// A step that says it started (a file in a cache mount, which is a host dir in the store)
/// and then waits, without exec'ing anything (the base's files may be gone), for `go`.
const WAIT: &str =
    "RUN --mount=type=cache,target=/sig touch /sig/started; while [ ! -e /sig/go ]; do :; done";

/// The one cache mount dir of the store, once a build step made one.
fn cache_mount(root: &Path) -> Option<std::path::PathBuf> {
    std::fs::read_dir(root.join("cache-mounts"))
        .ok()?
        .next()
        .map(|e| e.unwrap().path())
}

/// busybox:latest saved to a tar (once), to load it again after a scenario removed it.
fn saved_base(b: &BuildEnv) -> std::path::PathBuf {
    let tar = b.env.path().join("busybox.tar");
    if !tar.exists() {
        b.env.ok(&["save", "-o", path_str(&tar), "busybox:latest"]);
    }
    tar
}

/// Builds `dockerfile` on busybox:latest, removing busybox:latest with `rmi -f` while the
/// WAIT step runs; returns the build's stderr (it must fail) and the removed image's ID.
fn build_while_base_is_removed(b: &BuildEnv, name: &str, dockerfile: &str) -> (String, String) {
    let id = b.inspect("busybox:latest")["Id"]
        .as_str()
        .unwrap()
        .to_string();
    saved_base(b);
    let ctx = b.context(name, &[("Dockerfile", dockerfile)]);
    let root = b.env.root();
    let mut child = b
        .env
        .cmd()
        .args(["build", "--progress=plain", "--no-cache", path_str(&ctx)])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let sig = loop {
        if let Some(dir) = cache_mount(&root).filter(|d| d.join("started").exists()) {
            break dir;
        }
        if child.try_wait().unwrap().is_some() || start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the wait step never started: {}",
                build_support::stderr(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    b.env.ok(&["rmi", "-f", "busybox:latest"]);
    std::fs::write(sig.join("go"), "").unwrap();
    let out = child.wait_with_output().unwrap();
    let err = build_support::stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    // Ready for the next scenario: no signals left, the base back.
    std::fs::remove_dir_all(&sig).unwrap();
    b.env.ok(&["load", "-i", path_str(&saved_base(b))]);
    (err, id)
}

#[test]
fn base_image_removed_during_the_build_is_named() {
    let b = BuildEnv::new();
    // The next step needs the base's snapshots.
    let (err, id) = build_while_base_is_removed(
        &b,
        "next-step",
        &format!("FROM busybox:latest\n{WAIT}\nRUN echo after\n"),
    );
    let named = format!(
        "base image busybox:latest ({id}) was removed from the store during the build: layer 1/1 blob sha256:"
    );
    assert!(err.contains(&named), "{err}");
    assert!(err.contains("Dockerfile:3: RUN echo after: "), "{err}");
    assert!(err.contains("is missing"), "{err}");
    // The export needs the base's blobs.
    let (err, id) =
        build_while_base_is_removed(&b, "export", &format!("FROM busybox:latest\n{WAIT}\n"));
    let named = format!(
        "base image busybox:latest ({id}) was removed from the store during the build: layer 1/1 blob sha256:"
    );
    assert!(err.contains(&named), "{err}");
    // Nothing was committed: only the reloaded base is there.
    assert_eq!(b.env.ok(&["images", "-q"]).lines().count(), 1);
}
