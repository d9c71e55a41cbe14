//! Published ports of rootless containers (issue 12): rbuild run by uid 65534 publishes
//! `-p` and `-P` through its user-mode helper (pasta's `-t`/`-u` options, slirp4netns's
//! `add_hostfwd`), for detached and foreground containers, with either helper: a busybox
//! httpd answers on the host's loopback, a UDP echo answers, `port` and `ps` list what is
//! published, `restart` and `start` publish again, a taken port is a clear error before
//! anything runs, and after `rm -f` no helper is left and the ports are free.
//!
//! How rbuild runs as uid 65534 and where a test is skipped (with its reason printed):
//! [`common::rootless`]. Traffic stays on the host's loopback: 127.0.0.1, and 127.0.0.2 to
//! tell a port published on every address from one published on 127.0.0.1 only.

mod common;

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::published::{assert_udp_echo, free_port, http_get, start_udp_echo, HTTPD};
use common::rootless::{shell, Rootless, NOBODY};
use common::{assert_failure, assert_success};

/// The UDP echo server of [`start_udp_echo`]; a no-op test otherwise.
#[test]
#[ignore = "a helper process, run by udp_echo_through_a_published_port_*"]
fn rootless_udp_echo_helper() {
    common::published::serve_udp_echo();
}

/// Another loopback address of the host: a port published on every address answers there,
/// one published on 127.0.0.1 does not.
const OTHER_LOOPBACK: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// Rootless rbuild with `helper` chosen, failing the test (with its output) unless it
/// succeeds; returns its stdout.
fn ok(rl: &Rootless, helper: &str, args: &[&str]) -> String {
    let out = rl.run(Some(helper), args);
    assert_success(&format!("{helper}: rbuild {}", args.join(" ")), &out)
}

/// A `-v` value mounting a uid 65534 directory with `index.html` = `body` at `/www`.
fn www_volume(rl: &Rootless, body: &str) -> String {
    let www = rl.dir("www");
    std::fs::write(www.join("index.html"), body).unwrap();
    format!("{}:/www:ro", www.display())
}

/// Waits (up to 10 s) until each port (`tcp`, then `udp`) is free again on every address of
/// the host. Not at once: a process that is exiting no longer shows its environment (so no
/// test tag) a moment before the kernel closes its sockets.
fn assert_ports_free(tcp: &[u16], udp: &[u16]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let free = || {
        tcp.iter()
            .all(|p| TcpListener::bind((Ipv4Addr::UNSPECIFIED, *p)).is_ok())
            && udp
                .iter()
                .all(|p| std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, *p)).is_ok())
    };
    while !free() {
        assert!(
            Instant::now() < deadline,
            "ports {tcp:?} {udp:?} stay taken"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a TCP connection to `address` is refused (nothing listens there).
fn refused(address: SocketAddr) -> bool {
    TcpStream::connect_timeout(&address, Duration::from_secs(2))
        .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
}

/// A detached httpd published on 127.0.0.1:`local` and on every address at `all` answers
/// there (and not on 127.0.0.2:`local`); `port`, `ps` and inspect list both; `restart` and
/// `stop` + `start` publish them again; after `rm -f` the helper is gone and the ports are
/// free.
fn httpd_published_through(helper: &str) {
    let Some(rl) = Rootless::new(&format!("ports-httpd-{helper}")) else {
        return;
    };
    let www = www_volume(&rl, "hello-rootless-ports\n");
    let (local, all) = (free_port(), free_port());
    let local_spec = format!("127.0.0.1:{local}:80");
    let all_spec = format!("{all}:80");
    let publish = ["-p", &local_spec, "-p", &all_spec];
    let args = [
        &["run", "-d", "--name", "web"][..],
        &publish,
        &["-v", &www, "bb"],
        &HTTPD,
    ]
    .concat();
    let id = ok(&rl, helper, &args);
    let id = id.trim();
    let serves = || {
        for address in [
            SocketAddr::from((Ipv4Addr::LOCALHOST, local)),
            (Ipv4Addr::LOCALHOST, all).into(),
            (OTHER_LOOPBACK, all).into(),
        ] {
            assert_eq!(http_get(address), "hello-rootless-ports\n", "{address}");
        }
        assert!(refused((OTHER_LOOPBACK, local).into()), "127.0.0.1 only");
    };
    serves();
    assert_eq!(rl.helpers(helper).len(), 1, "{:?}", rl.tagged());
    assert_eq!(
        ok(&rl, helper, &["port", "web"]),
        format!("80/tcp -> 127.0.0.1:{local}\n80/tcp -> 0.0.0.0:{all}\n")
    );
    assert_eq!(
        ok(&rl, helper, &["port", "web", "80/tcp"]),
        format!("127.0.0.1:{local}\n0.0.0.0:{all}\n")
    );
    let ps = ok(&rl, helper, &["ps"]);
    assert!(ps.lines().next().unwrap().contains("PORTS"), "{ps}");
    assert!(
        ps.contains(&format!("127.0.0.1:{local}->80/tcp, 0.0.0.0:{all}->80/tcp")),
        "{ps}"
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(&rl, helper, &["inspect", "web"])).unwrap();
    assert_eq!(
        inspect[0]["NetworkSettings"]["Ports"]["80/tcp"],
        serde_json::json!([
            {"HostIp": "127.0.0.1", "HostPort": local.to_string()},
            {"HostIp": "0.0.0.0", "HostPort": all.to_string()},
        ])
    );
    // The ports come back with the container's next start, and only one helper runs.
    ok(&rl, helper, &["restart", "-t", "0", "web"]);
    serves();
    assert_eq!(rl.helpers(helper).len(), 1, "{:?}", rl.tagged());
    ok(&rl, helper, &["stop", "-t", "0", "web"]);
    assert_eq!(rl.helpers(helper), [], "no helper while stopped");
    assert_eq!(ok(&rl, helper, &["port", "web"]), "");
    assert_ports_free(&[local, all], &[]);
    ok(&rl, helper, &["start", "web"]);
    serves();
    ok(&rl, helper, &["rm", "-f", id]);
    assert_eq!(rl.wait_untagged(), [], "left after rm -f");
    assert_ports_free(&[local, all], &[]);
}

#[test]
fn httpd_published_through_pasta() {
    httpd_published_through("pasta");
}

#[test]
fn httpd_published_through_slirp4netns() {
    httpd_published_through("slirp4netns");
}

/// A foreground `run -p` publishes too, while it runs: the ports go when it ends
/// (here through `kill` from another rbuild).
fn foreground_published_through(helper: &str) {
    let Some(rl) = Rootless::new(&format!("ports-fg-{helper}")) else {
        return;
    };
    let www = www_volume(&rl, "hello-foreground\n");
    let port = free_port();
    let spec = format!("127.0.0.1:{port}:80");
    let args = [
        &["run", "--rm", "--name", "fg", "-p", &spec, "-v", &www, "bb"][..],
        &HTTPD,
    ]
    .concat();
    let mut child = rl
        .cmd(Some(helper), &args)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert_eq!(
        http_get((Ipv4Addr::LOCALHOST, port).into()),
        "hello-foreground\n"
    );
    // A foreground run records its start once the process is set up: it may serve first.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while ok(&rl, helper, &["ps", "--format", "{{.Names}}"]).trim() != "fg" {
        assert!(std::time::Instant::now() < deadline, "fg never listed");
        std::thread::sleep(Duration::from_millis(20));
    }
    ok(&rl, helper, &["kill", "fg"]);
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed: {status}");
    assert_eq!(rl.wait_untagged(), [], "left after the container ended");
    assert_ports_free(&[port], &[]);
}

#[test]
fn foreground_run_publishes_through_pasta() {
    foreground_published_through("pasta");
}

#[test]
fn foreground_run_publishes_through_slirp4netns() {
    foreground_published_through("slirp4netns");
}

/// `-p PORT:7/udp`: datagrams to the host's port reach an echo server in the container's
/// network namespace, and the echo comes back.
fn udp_echo_through(helper: &str) {
    let Some(rl) = Rootless::new(&format!("ports-udp-{helper}")) else {
        return;
    };
    let port = free_port();
    let spec = format!("{port}:7/udp");
    let id = ok(
        &rl,
        helper,
        &["run", "-d", "-p", &spec, "bb", "sleep", "300"],
    );
    let id = id.trim();
    let pid = ok(&rl, helper, &["inspect", "-f", "{{.State.Pid}}", id]);
    let mut echo = start_udp_echo(&pid, "rootless_udp_echo_helper", 7);
    assert_udp_echo((Ipv4Addr::LOCALHOST, port).into(), "ping rootless");
    assert_eq!(
        ok(&rl, helper, &["port", id]),
        format!("7/udp -> 0.0.0.0:{port}\n")
    );
    let _ = echo.kill();
    let _ = echo.wait();
    ok(&rl, helper, &["rm", "-f", id]);
    assert_eq!(rl.wait_untagged(), [], "left after rm -f");
}

#[test]
fn udp_echo_through_a_published_port_pasta() {
    udp_echo_through("pasta");
}

#[test]
fn udp_echo_through_a_published_port_slirp4netns() {
    udp_echo_through("slirp4netns");
}

/// `-P` publishes every `EXPOSE`d port on a free host port, listed by `port`, and the
/// listed TCP port serves.
fn publish_all_through(helper: &str) {
    let Some(rl) = Rootless::new(&format!("ports-all-{helper}")) else {
        return;
    };
    // Imported by root (the layer's snapshot is the one `bb` already has), then handed over.
    rl.env
        .import_base_with("exposing", &["EXPOSE 80", "EXPOSE 5353/udp"]);
    shell(&format!(
        "chown -R {NOBODY}:{NOBODY} '{}'",
        rl.env.root().display()
    ));
    let www = www_volume(&rl, "hello-all\n");
    let args = [&["run", "-d", "-P", "-v", &www, "exposing"][..], &HTTPD].concat();
    let id = ok(&rl, helper, &args);
    let id = id.trim();
    let listed = ok(&rl, helper, &["port", id]);
    let mut lines: Vec<&str> = listed.lines().collect();
    lines.sort();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(lines[0].starts_with("5353/udp -> 0.0.0.0:"), "{listed}");
    assert!(lines[1].starts_with("80/tcp -> 0.0.0.0:"), "{listed}");
    let tcp: u16 = lines[1].rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(http_get((Ipv4Addr::LOCALHOST, tcp).into()), "hello-all\n");
    ok(&rl, helper, &["rm", "-f", id]);
    assert_eq!(rl.wait_untagged(), [], "left after rm -f");
    assert_ports_free(&[tcp], &[]);
}

#[test]
fn publish_all_lists_free_ports_through_pasta() {
    publish_all_through("pasta");
}

#[test]
fn publish_all_lists_free_ports_through_slirp4netns() {
    publish_all_through("slirp4netns");
}

/// A host port that another program holds: `run` (detached and foreground) fails with
/// docker's exit code 125 and a message naming the port before the container's process
/// starts; no helper was started, the container stays `created`.
#[test]
fn taken_host_port_is_a_clear_error_rootless() {
    let Some(rl) = Rootless::new("ports-taken") else {
        return;
    };
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let spec = format!("127.0.0.1:{port}:80");
    for helper in ["pasta", "slirp4netns"] {
        for detach in [true, false] {
            let mut args = vec![
                "run", "--name", "late", "-p", &spec, "bb", "touch", "/started",
            ];
            if detach {
                args.insert(1, "-d");
            }
            let out = rl.run(Some(helper), &args);
            assert_eq!(
                out.status.code(),
                Some(125),
                "{helper} -d={detach}: {out:?}"
            );
            let stderr = assert_failure(helper, &out);
            assert!(
                stderr.contains(&format!("port 127.0.0.1:{port} is already in use")),
                "{helper}: {stderr}"
            );
            assert_eq!(ok(&rl, helper, &["ps", "-q"]), "");
            let status = ok(&rl, helper, &["inspect", "-f", "{{.State.Status}}", "late"]);
            assert_eq!(status.trim(), "created", "{helper} -d={detach}");
            ok(&rl, helper, &["rm", "late"]);
            assert_eq!(rl.wait_untagged(), [], "{helper}: left after the error");
        }
    }
}

/// A host port below the kernel's `ip_unprivileged_port_start` (1024 on Debian): the
/// error says why the user may not publish it, before anything runs.
#[test]
fn privileged_host_port_is_a_clear_error_rootless() {
    let start: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    if start <= 80 {
        eprintln!(
            "skipped: net.ipv4.ip_unprivileged_port_start is {start}: port 80 is free to bind"
        );
        return;
    }
    let Some(rl) = Rootless::new("ports-privileged") else {
        return;
    };
    let out = rl.run(
        Some("pasta"),
        &["run", "--rm", "-p", "127.0.0.1:80:80", "bb", "true"],
    );
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    let stderr = assert_failure("port 80", &out);
    assert!(
        stderr.contains("cannot publish 127.0.0.1:80/tcp")
            && stderr.contains("net.ipv4.ip_unprivileged_port_start"),
        "{stderr}"
    );
    assert_eq!(rl.wait_untagged(), []);
}

/// The processes of this test that are rbuild's UDP port forwarder.
fn forwarders(rl: &Rootless) -> Vec<u32> {
    rl.tagged()
        .into_iter()
        .map(|(pid, _)| pid)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.windows(24).any(|w| w == b"container-port-forwarder"))
        })
        .collect()
}

/// A foreground `run -p PORT:7/udp` serves through rbuild's forwarder process while it
/// runs; SIGKILL of that rbuild (once the echo answered) takes the forwarder and the helper
/// with it, and the port is free again.
#[test]
fn udp_forwarder_is_gone_after_sigkill_of_rbuild() {
    let Some(rl) = Rootless::new("ports-udp-sigkill") else {
        return;
    };
    let port = free_port();
    let spec = format!("{port}:7/udp");
    let args = [
        "run", "--rm", "--name", "fgu", "-p", &spec, "bb", "sleep", "300",
    ];
    let mut child = rl
        .cmd(Some("slirp4netns"), &args)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Running: `inspect` has its pid once the container started (and the forwarder serves).
    let deadline = Instant::now() + Duration::from_secs(20);
    let pid = loop {
        let out = rl.run(None, &["inspect", "-f", "{{.State.Pid}}", "fgu"]);
        let pid = common::stdout(&out);
        if out.status.success() && pid.trim() != "0" {
            break pid;
        }
        assert!(Instant::now() < deadline, "fgu did not start: {out:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(forwarders(&rl).len(), 1, "{:?}", rl.tagged());
    let mut echo = start_udp_echo(&pid, "rootless_udp_echo_helper", 7);
    assert_udp_echo((Ipv4Addr::LOCALHOST, port).into(), "ping foreground");
    let _ = echo.kill();
    let _ = echo.wait();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(rl.wait_untagged(), [], "left after SIGKILL of rbuild");
    assert_ports_free(&[], &[port]);
}

/// Regression: rootless `inspect CONTAINER` failed with "No such image" (its error was
/// "/run/rbuild/network/lock: Permission denied") wherever root had used the bridge, since
/// it opened root's host-wide address record for the container's network settings.
#[test]
fn rootless_inspect_failed_on_roots_network_lock() {
    use std::os::unix::fs::PermissionsExt;
    let Some(rl) = Rootless::new_with("ports-inspect-lock", false) else {
        return;
    };
    // Root's record, as the bridge leaves it (RBUILD_NETWORK_STATE: the test's own copy).
    let state = rl.env.path().join("network-state");
    std::fs::create_dir(&state).unwrap();
    std::fs::write(state.join("state.json"), "{}").unwrap();
    std::fs::write(state.join("lock"), "").unwrap();
    std::fs::set_permissions(state.join("lock"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let id = ok(&rl, "pasta", &["create", "--network", "none", "bb", "true"]);
    let out = rl
        .cmd(None, &["inspect", "-f", "{{.State.Status}}", id.trim()])
        .env("RBUILD_NETWORK_STATE", &state)
        .output()
        .unwrap();
    assert_eq!(assert_success("rootless inspect", &out).trim(), "created");
}
