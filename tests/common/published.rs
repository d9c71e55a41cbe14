//! Clients and servers for published-port tests (root on the bridge, and rootless through
//! pasta or slirp4netns): free host ports, `GET /` retried until the container's server
//! answers, and a UDP echo server run in a container's network namespace with its client.

use std::io::{BufRead, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The environment variable that makes a test binary's echo test ([`serve_udp_echo`]) serve.
pub const UDP_ECHO_ENV: &str = "RBUILD_TEST_UDP_ECHO";

/// busybox httpd in the foreground on port 80, serving `/www` (mount the content there).
pub const HTTPD: [&str; 6] = ["httpd", "-f", "-p", "80", "-h", "/www"];

/// A port that is free now (the kernel's pick).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /` from `address`, retried until the server answers (it may still be starting);
/// returns the body.
pub fn http_get(address: SocketAddr) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let attempt = (|| -> std::io::Result<String> {
            let mut s = TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")?;
            let mut response = String::new();
            s.read_to_string(&mut response)?;
            Ok(response)
        })();
        match attempt {
            Ok(r) if r.starts_with("HTTP/1.") && r.contains("200") => {
                return r.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
            }
            other => {
                assert!(Instant::now() < deadline, "GET {address}: {other:?}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// The body of a test binary's UDP echo test (busybox's nc has no UDP): with
/// [`UDP_ECHO_ENV`] set, echoes every datagram on that port and never returns; a no-op
/// otherwise (the test is `#[ignore]`d and run by [`start_udp_echo`]).
pub fn serve_udp_echo() {
    let Ok(port) = std::env::var(UDP_ECHO_ENV) else {
        return;
    };
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port.parse().unwrap())).unwrap();
    println!("ready");
    std::io::stdout().flush().unwrap();
    let mut buf = [0u8; 1500];
    loop {
        let (n, from) = socket.recv_from(&mut buf).unwrap();
        socket.send_to(&buf[..n], from).unwrap();
    }
}

/// Runs this test binary's helper test `test` (an ignored test that serves when `var` is
/// set) with `var` = `value` in the network namespace of process `pid` (a container's),
/// returning once it printed "ready".
pub fn start_helper_in(pid: &str, test: &str, var: &str, value: &str) -> Child {
    let mut child = Command::new("nsenter")
        .arg(format!("--net=/proc/{}/ns/net", pid.trim()))
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", test, "--ignored", "--nocapture"])
        .env(var, value)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // libtest prints its own lines ("running 1 test") before the helper's: wait for the
    // helper's line, printed once its socket is bound (a datagram sent earlier is lost).
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.is_ok_and(|l| l.trim() == "ready")),
        "{test} did not start"
    );
    child
}

/// Runs this test binary's echo test `test` ([`serve_udp_echo`]) on `port` in the network
/// namespace of process `pid` (a container's), returning once its socket is bound.
pub fn start_udp_echo(pid: &str, test: &str, port: u16) -> Child {
    start_helper_in(pid, test, UDP_ECHO_ENV, &port.to_string())
}

/// Sends `message` to `target` and asserts that it comes back. UDP has no handshake:
/// resend until an echo comes back (or 10 tries of 500 ms).
pub fn assert_udp_echo(target: SocketAddr, message: &str) {
    let client = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
    let mut buf = [0u8; 100];
    client
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut reply = None;
    for _ in 0..10 {
        client.send_to(message.as_bytes(), target).unwrap();
        if let Ok((n, _)) = client.recv_from(&mut buf) {
            reply = Some(n);
            break;
        }
    }
    let n = reply.unwrap_or_else(|| panic!("no echo via {target}"));
    assert_eq!(&buf[..n], message.as_bytes(), "via {target}");
}
