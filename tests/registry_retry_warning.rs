//! Retried registry requests: the library reports them through the retry sink the CLI gives
//! it, and the CLI shows them as warnings on stderr (not printed by library code).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::TestEnv;

/// A registry on 127.0.0.1 that fails every other `GET /v2/` with `503` (`Retry-After: 0`)
/// and answers the next with `200`; every other path is `404`. It speaks plain HTTP only: a
/// TLS hello is hung up on, so the client falls back to HTTP.
struct FlakyPing {
    port: u16,
    pings: Arc<AtomicUsize>,
}

impl FlakyPing {
    fn start() -> FlakyPing {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let pings = Arc::new(AtomicUsize::new(0));
        let counter = pings.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let counter = counter.clone();
                std::thread::spawn(move || answer(conn, &counter));
            }
        });
        FlakyPing { port, pings }
    }
}

fn answer(mut conn: TcpStream, pings: &AtomicUsize) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        // Not HTTP (a TLS hello): hang up.
        if !head[0].is_ascii_uppercase() {
            return;
        }
    }
    let request = String::from_utf8_lossy(&head);
    let line = request.lines().next().unwrap_or_default();
    let response: &[u8] = if line.starts_with("GET /v2/ ") {
        if pings.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) {
            b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        } else {
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
        }
    } else {
        b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 60\r\nConnection: close\r\n\r\n{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\",\"message\":\"unknown\"}]}"
    };
    let _ = conn.write_all(response);
}

#[test]
fn retried_registry_request_warns_on_stderr_through_the_cli_sink() {
    let server = FlakyPing::start();
    let env = TestEnv::new();
    let image = format!("127.0.0.1:{}/retry/img:1", server.port);

    // The ping is retried once (the 503), then the manifest is not found.
    let stderr = env.fails(&["pull", &image]);
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("WARNING: "))
        .collect();
    assert_eq!(warnings.len(), 1, "one retry, one warning:\n{stderr}");
    assert!(
        warnings[0].starts_with("WARNING: ping: ")
            && warnings[0].contains("503")
            && warnings[0].ends_with("retrying in 0.0s"),
        "{stderr}"
    );
    assert_eq!(server.pings.load(Ordering::SeqCst), 2);
    assert!(stderr.contains("rbuild: error: "), "{stderr}");

    // Below warn level the CLI does not show it; the request is retried all the same, and
    // the error is still reported.
    let stderr = env.fails(&["--log-level=error", "pull", &image]);
    assert!(!stderr.contains("retrying"), "{stderr}");
    assert!(!stderr.contains("WARNING"), "{stderr}");
    assert!(stderr.contains("rbuild: error: "), "{stderr}");
    assert_eq!(server.pings.load(Ordering::SeqCst), 4);
}

/// A FROM image pulled during a build retried silently: the build's base pull was not given
/// the CLI's retry sink. It now warns as `pull` does.
#[test]
fn bug_build_base_pull_retried_silently() {
    let server = FlakyPing::start();
    let env = TestEnv::new();
    let ctx = env.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let image = format!("127.0.0.1:{}/retry/base:1", server.port);
    std::fs::write(ctx.join("Dockerfile"), format!("FROM {image}\n")).unwrap();

    let stderr = env.fails(&["build", "--progress=plain", ctx.to_str().unwrap()]);
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("WARNING: ping: ") && l.contains("retrying in"))
        .collect();
    assert_eq!(warnings.len(), 1, "one retry, one warning:\n{stderr}");
    assert_eq!(server.pings.load(Ordering::SeqCst), 2);
}
