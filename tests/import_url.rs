//! `rbuild import URL`: a rootfs tarball downloaded over HTTP (a small server in the test).

mod common;

use common::http::{route, serve, Routes};
use common::{busybox_rootfs_tar, TestEnv};

#[test]
fn import_from_url_streams_the_tarball() {
    let tar = std::fs::read(busybox_rootfs_tar()).expect("base tar");
    let routes = Routes::default();
    route(&routes, "/rootfs.tar", &tar, None);
    let base = serve(routes);
    let env = TestEnv::new();
    let from_url = env.ok(&["import", &format!("{base}/rootfs.tar"), "fromurl:v1"]);
    let from_file = env.ok(&[
        "import",
        busybox_rootfs_tar().to_str().expect("utf-8"),
        "fromfile:v1",
    ]);
    let diff = |name: &str| {
        let out = env.ok(&["inspect", "-f", "{{json .RootFS}}", name]);
        out.trim().to_string()
    };
    assert_eq!(
        diff("fromurl:v1"),
        diff("fromfile:v1"),
        "same layer either way"
    );
    assert!(from_url.trim().starts_with("sha256:"), "{from_url}");
    assert!(from_file.trim().starts_with("sha256:"));

    // A missing file is a clear error naming the URL and status; nothing is stored.
    let before = env.ok(&["images", "-q"]);
    let err = env.fails(&["import", &format!("{base}/missing.tar"), "nope:v1"]);
    assert!(err.contains("missing.tar") && err.contains("404"), "{err}");
    assert_eq!(env.ok(&["images", "-q"]), before);
}
