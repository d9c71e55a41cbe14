//! `rbuild import URL`: a rootfs tarball downloaded over HTTP (a small server in the test).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::thread;

use common::{busybox_rootfs_tar, TestEnv};

/// Serves `body` at `/rootfs.tar` and 404 elsewhere, for `requests` connections.
fn serve(body: Vec<u8>, requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let mut stream = stream.expect("accept");
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut request_line = String::new();
            reader.read_line(&mut request_line).expect("request");
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            if request_line.starts_with("GET /rootfs.tar ") {
                write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .expect("write");
                stream.write_all(&body).expect("body");
            } else {
                stream
                    .write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    )
                    .expect("write");
            }
        }
    });
    format!("http://{addr}")
}

#[test]
fn import_from_url_streams_the_tarball() {
    let tar = std::fs::read(busybox_rootfs_tar()).expect("base tar");
    let base = serve(tar, 2);
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
