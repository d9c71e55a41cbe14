//! `ADD http(s)://…`: downloads from a small HTTP server in the test (name, mode, mtime,
//! no extraction, --checksum, errors, and the cache following the content).

mod build_support;

use std::os::unix::fs::MetadataExt;

use build_support::http::{route, serve, serve_counting, stalling_server, Routes, Served};
use build_support::{cached_steps, path_str, sha256_hex as sha256, BuildEnv};

/// A real .tar.gz holding one file (made by the system's tar).
fn tar_gz(b: &BuildEnv) -> Vec<u8> {
    let dir = b.context("tarsrc", &[("inside.txt", "inside\n")]);
    let out = b.env.path().join("tool.tar.gz");
    let status = std::process::Command::new("tar")
        .args(["czf", path_str(&out), "-C", path_str(&dir), "inside.txt"])
        .status()
        .expect("tar");
    assert!(status.success());
    std::fs::read(out).unwrap()
}

// Wed, 21 Oct 2015 07:28:00 GMT
const MODIFIED: &str = "Wed, 21 Oct 2015 07:28:00 GMT";
const MODIFIED_SECS: i64 = 1_445_412_480;

#[test]
fn add_url_names_modes_times_and_never_extracts() {
    let b = BuildEnv::new();
    let routes = Routes::default();
    let base = serve(routes.clone());
    route(
        &routes,
        "/files/hello.txt",
        b"hello from http\n",
        Some(MODIFIED),
    );
    route(&routes, "/plain/nodate.bin", b"no date\n", None);
    let tgz = tar_gz(&b);
    route(&routes, "/dl/tool.tar.gz", &tgz, None);
    let dockerfile = format!(
        "FROM busybox
ADD {base}/files/hello.txt /opt/
ADD {base}/files/hello.txt?x=1 /renamed.txt
ADD {base}/dl/tool.tar.gz /tools/
ADD --chown=1:2 --chmod=644 {base}/plain/nodate.bin /chmodded
"
    );
    let ctx = b.context("addurl", &[("Dockerfile", &dockerfile)]);
    let before = chrono::Utc::now().timestamp();
    b.build(&["-t", "addurl:v1", path_str(&ctx)]);
    let after = chrono::Utc::now().timestamp();

    let md = |path: &str| {
        let p = b
            .image_path("addurl:v1", path)
            .unwrap_or_else(|| panic!("{path} missing in the image"));
        std::fs::symlink_metadata(p).unwrap()
    };
    // Named by the URL's last segment in a directory destination; mode 0600, root, Last-Modified.
    assert_eq!(
        b.image_file("addurl:v1", "/opt/hello.txt").as_deref(),
        Some("hello from http\n")
    );
    let m = md("/opt/hello.txt");
    assert!(m.is_file());
    assert_eq!(m.mode() & 0o7777, 0o600);
    assert_eq!((m.uid(), m.gid()), (0, 0));
    assert_eq!(m.mtime(), MODIFIED_SECS);
    // A destination not ending in `/` is the file's path (the query is not in any name).
    assert_eq!(
        b.image_file("addurl:v1", "/renamed.txt").as_deref(),
        Some("hello from http\n")
    );
    assert!(b.image_path("addurl:v1", "/hello.txt").is_none());
    // A .tar.gz stays a file, byte for byte.
    let m = md("/tools/tool.tar.gz");
    assert!(m.is_file());
    let p = b.image_path("addurl:v1", "/tools/tool.tar.gz").unwrap();
    assert_eq!(std::fs::read(p).unwrap(), tgz);
    assert!(b.image_path("addurl:v1", "/tools/inside.txt").is_none());
    // --chown and --chmod apply; without Last-Modified the mtime is the build's.
    let m = md("/chmodded");
    assert_eq!(m.mode() & 0o7777, 0o644);
    assert_eq!((m.uid(), m.gid()), (1, 2));
    assert!(
        (before - 1..=after + 1).contains(&m.mtime()),
        "mtime {} not within the build ({before}..{after})",
        m.mtime()
    );
    assert_eq!(
        b.image_file("addurl:v1", "/chmodded").as_deref(),
        Some("no date\n")
    );
}

#[test]
fn add_url_checksum_and_errors() {
    let b = BuildEnv::new();
    let routes = Routes::default();
    let base = serve(routes.clone());
    let body = b"checked content\n";
    route(&routes, "/sum/file.txt", body, None);
    let good = sha256(body);
    let bad = sha256(b"something else");

    let ctx = b.context(
        "good",
        &[(
            "Dockerfile",
            &format!("FROM busybox\nADD --checksum=sha256:{good} {base}/sum/file.txt /file.txt\n"),
        )],
    );
    b.build(&["-t", "sum:good", path_str(&ctx)]);
    assert_eq!(
        b.image_file("sum:good", "/file.txt").as_deref(),
        Some("checked content\n")
    );

    let ctx = b.context(
        "bad",
        &[(
            "Dockerfile",
            &format!("FROM busybox\nADD --checksum=sha256:{bad} {base}/sum/file.txt /file.txt\n"),
        )],
    );
    let err = b.build_fails(&["-t", "sum:bad", path_str(&ctx)]);
    assert!(
        err.contains(&bad) && err.contains(&good) && err.contains("checksum"),
        "{err}"
    );

    let ctx = b.context(
        "missing",
        &[(
            "Dockerfile",
            &format!("FROM busybox\nADD {base}/nothing/here.txt /here.txt\n"),
        )],
    );
    let err = b.build_fails(&[path_str(&ctx)]);
    assert!(
        err.contains(&format!("{base}/nothing/here.txt")) && err.contains("404"),
        "{err}"
    );

    // COPY never downloads (as docker).
    let ctx = b.context(
        "copyurl",
        &[(
            "Dockerfile",
            &format!("FROM busybox\nCOPY {base}/sum/file.txt /file.txt\n"),
        )],
    );
    let err = b.build_fails(&[path_str(&ctx)]);
    assert!(err.contains("COPY") && err.contains("URL"), "{err}");
}

#[test]
fn add_url_cache_follows_the_content() {
    let b = BuildEnv::new();
    let routes = Routes::default();
    let served = Served::default();
    let base = serve_counting(routes.clone(), served.clone());
    let bodies = || {
        served
            .lock()
            .unwrap()
            .get("/c/data.txt")
            .copied()
            .unwrap_or(0)
    };
    route(&routes, "/c/data.txt", b"version one\n", Some(MODIFIED));
    let ctx = b.context(
        "cache",
        &[(
            "Dockerfile",
            &format!("FROM busybox\nADD {base}/c/data.txt /data/\n"),
        )],
    );
    let adds = |progress: &str| {
        cached_steps(progress)
            .into_iter()
            .filter(|s| s.contains("ADD"))
            .count()
    };
    let first = b.build(&["-t", "cache:1", path_str(&ctx)]);
    assert_eq!(adds(&first), 0, "{first}");
    assert_eq!(bodies(), 1);
    let second = b.build(&["-t", "cache:2", path_str(&ctx)]);
    assert_eq!(
        adds(&second),
        1,
        "unchanged download must be cached\n{second}"
    );
    // The rebuild asked whether the file changed (If-None-Match) and got no body again.
    assert_eq!(bodies(), 1, "an unchanged file is not downloaded again");
    assert_eq!(
        b.inspect("cache:1")["Id"],
        b.inspect("cache:2")["Id"],
        "a cached rebuild gives the same image"
    );

    route(&routes, "/c/data.txt", b"version two\n", Some(MODIFIED));
    let third = b.build(&["-t", "cache:3", path_str(&ctx)]);
    assert_eq!(adds(&third), 0, "changed content must re-run\n{third}");
    assert_eq!(bodies(), 2);
    assert_eq!(
        b.image_file("cache:3", "/data/data.txt").as_deref(),
        Some("version two\n")
    );

    // --no-cache downloads again, without asking; the content is the same, the step runs.
    let fourth = b.build(&["--no-cache", "-t", "cache:4", path_str(&ctx)]);
    assert_eq!(adds(&fourth), 0, "{fourth}");
    assert_eq!(bodies(), 3);
    // The kept download survives the garbage collector (blobs aged past its grace period):
    // the next build still only revalidates.
    b.env
        .ok(&["rmi", "cache:1", "cache:2", "cache:3", "cache:4"]);
    let old = filetime::FileTime::from_unix_time(1_000_000_000, 0);
    for e in std::fs::read_dir(b.env.root().join("blobs/sha256"))
        .unwrap()
        .flatten()
    {
        filetime::set_file_mtime(e.path(), old).unwrap();
    }
    b.env.ok(&["image", "prune", "-f"]);
    let fifth = b.build(&["-t", "cache:5", path_str(&ctx)]);
    assert_eq!(bodies(), 3, "{fifth}");
    assert_eq!(
        b.image_file("cache:5", "/data/data.txt").as_deref(),
        Some("version two\n")
    );
    // `builder prune -a` forgets it, as the rest of the build cache.
    b.env.ok(&["builder", "prune", "-a", "-f"]);
    b.build(&["-t", "cache:6", path_str(&ctx)]);
    assert_eq!(bodies(), 4);
}

/// Regression (issue 10, "hangs"): `ADD <url>` and `import <url>` waited forever on a server
/// that never answers or stalls mid-body; they now give up after RBUILD_REGISTRY_TIMEOUT.
#[test]
fn add_url_and_import_url_from_a_stalling_server_time_out() {
    let b = BuildEnv::new();
    let silent = stalling_server(b"");
    let midway = stalling_server(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly a part");
    for base in [&silent, &midway] {
        let url = format!("{base}/file.txt");
        let ctx = b.context(
            "stall",
            &[(
                "Dockerfile",
                &format!("FROM busybox\nADD {url} /file.txt\n"),
            )],
        );
        let build = ["build", "--progress=plain", path_str(&ctx)];
        let import = ["import", url.as_str(), "stalled:1"];
        for args in [&build[..], &import[..]] {
            let start = std::time::Instant::now();
            let out = b
                .env
                .cmd()
                .env("RBUILD_REGISTRY_TIMEOUT", "1")
                .args(args)
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            let err = build_support::stderr(&out);
            assert!(!out.status.success(), "{args:?}: {err}");
            assert!(
                start.elapsed().as_secs() < 20,
                "{args:?} took {:?}",
                start.elapsed()
            );
            assert!(
                err.contains(&url),
                "{args:?}: the error names the URL: {err}"
            );
        }
    }
    assert!(!b.env.ok(&["images"]).contains("stalled"));
}
