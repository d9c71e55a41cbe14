//! Published ports (issue 12): `-p`, `-P`, `rbuild port`, `ps`'s PORTS and inspect's
//! `NetworkSettings.Ports`, as root on the bridge: a busybox httpd served to a client on the
//! host through the userland proxy (127.0.0.1) and through DNAT (the bridge's own address),
//! and to another container (hairpin); UDP; a taken port; nothing left after `rm -f` or a
//! SIGKILL (no DNAT chain, no proxy socket, no lease).
//!
//! Traffic stays on this machine (loopback and the test's own bridge). Each test has its
//! own bridge and subnet (`RBUILD_BRIDGE`, `RBUILD_BRIDGE_SUBNET`) so that tests running at
//! once do not see each other's objects.

mod common;

use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use common::bridge::Net;
use common::published::{assert_udp_echo, free_port, http_get, start_udp_echo};
use common::{assert_success, TestEnv};

/// The UDP echo server of [`common::published::start_udp_echo`]; a no-op test otherwise.
#[test]
#[ignore = "a helper process, run by publish_udp_reaches_an_echo_in_the_container"]
fn udp_echo_helper() {
    common::published::serve_udp_echo();
}

/// Checks of this file on a test's own bridge ([`Net`]: `cmd`, `run`, `ok` are shared).
impl Net {
    /// The bridge's own address: a local address of the host that DNAT serves.
    fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.octet, 0, 1)
    }

    /// The lines of `nft list table ip rbuild` that name `id`'s chains.
    fn port_chains(id: &str) -> Vec<String> {
        let out = Command::new("nft")
            .args(["list", "table", "ip", "rbuild"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(&format!("ports-{}", &id[..12])))
            .map(str::to_string)
            .collect()
    }

    /// Asserts that nothing of the test's ports is left: no DNAT chain of `id`, no lease
    /// on the bridge, every host port free again (the proxy's sockets closed).
    fn assert_nothing_left(&self, env: &TestEnv, id: &str, tcp: &[u16], udp: &[u16]) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let free = || {
            tcp.iter()
                .all(|p| TcpListener::bind((Ipv4Addr::UNSPECIFIED, *p)).is_ok())
                && udp
                    .iter()
                    .all(|p| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, *p)).is_ok())
        };
        while !free() {
            assert!(
                Instant::now() < deadline,
                "ports {tcp:?} {udp:?} stay taken"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(Self::port_chains(id), Vec::<String>::new(), "rules left");
        let inspect = self.ok(env, &["network", "inspect", "bridge"]);
        let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
        assert_eq!(v[0]["Containers"], serde_json::json!({}), "{inspect}");
    }
}

/// A store with busybox as `bb` and a www dir holding `hello-ports`.
fn env_with_www() -> (TestEnv, String) {
    let env = TestEnv::with_base("bb");
    let www = env.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello-ports\n").unwrap();
    let volume = format!("{}:/www:ro", www.display());
    (env, volume)
}

#[test]
fn publish_serves_httpd_to_the_host_and_to_other_containers() {
    let (env, www) = env_with_www();
    let net = Net {
        bridge: "rbuildp1",
        octet: 211,
    };
    let (local, all) = (free_port(), free_port());
    let local_spec = format!("127.0.0.1:{local}:80");
    let all_spec = format!("{all}:80");
    let id = net.ok(
        &env,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "-p",
            &local_spec,
            "-p",
            &all_spec,
            "-v",
            &www,
            "bb",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/www",
        ],
    );
    let id = id.trim();
    // From the host: loopback through the proxy, the bridge's address through DNAT.
    assert_eq!(
        http_get((Ipv4Addr::LOCALHOST, local).into()),
        "hello-ports\n"
    );
    assert_eq!(http_get((Ipv4Addr::LOCALHOST, all).into()), "hello-ports\n");
    assert_eq!(http_get((net.gateway(), all).into()), "hello-ports\n");
    // Only on 127.0.0.1: not on the bridge's address.
    assert!(TcpStream::connect((net.gateway(), local)).is_err());
    // From another container, through the host's published port (hairpin NAT).
    let url = format!("http://{}:{all}/", net.gateway());
    let got = net.ok(&env, &["run", "--rm", "bb", "wget", "-qO-", &url]);
    assert_eq!(got, "hello-ports\n");
    // What is published, as docker shows it.
    let listed = net.ok(&env, &["port", "web"]);
    assert_eq!(
        listed,
        format!("80/tcp -> 127.0.0.1:{local}\n80/tcp -> 0.0.0.0:{all}\n")
    );
    assert_eq!(
        net.ok(&env, &["port", "web", "80/tcp"]),
        format!("127.0.0.1:{local}\n0.0.0.0:{all}\n")
    );
    let out = net.run(&env, &["port", "web", "81"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no public port '81/tcp'"));
    let ps = net.ok(&env, &["ps"]);
    assert!(ps.lines().next().unwrap().contains("PORTS"), "{ps}");
    assert!(
        ps.contains(&format!("127.0.0.1:{local}->80/tcp, 0.0.0.0:{all}->80/tcp")),
        "{ps}"
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&net.ok(&env, &["inspect", "web"])).unwrap();
    assert_eq!(
        inspect[0]["NetworkSettings"]["Ports"]["80/tcp"],
        serde_json::json!([
            {"HostIp": "127.0.0.1", "HostPort": local.to_string()},
            {"HostIp": "0.0.0.0", "HostPort": all.to_string()},
        ])
    );
    assert_eq!(Net::port_chains(id).len(), 3, "three chains while it runs");
    // `restart` publishes the same ports again.
    net.ok(&env, &["restart", "-t", "0", "web"]);
    assert_eq!(
        http_get((Ipv4Addr::LOCALHOST, local).into()),
        "hello-ports\n"
    );
    assert_eq!(http_get((net.gateway(), all).into()), "hello-ports\n");
    net.ok(&env, &["rm", "-f", "web"]);
    net.assert_nothing_left(&env, id, &[local, all], &[]);
}

#[test]
fn publish_udp_reaches_an_echo_in_the_container() {
    let env = TestEnv::with_base("bb");
    let net = Net {
        bridge: "rbuildp2",
        octet: 212,
    };
    let port = free_port();
    let spec = format!("{port}:5353/udp");
    let id = net.ok(&env, &["run", "-d", "-p", &spec, "bb", "sleep", "300"]);
    let id = id.trim();
    let pid = net.ok(&env, &["inspect", "-f", "{{.State.Pid}}", id]);
    // The echo server, in the container's network namespace.
    let mut echo = start_udp_echo(&pid, "udp_echo_helper", 5353);
    for target in [Ipv4Addr::LOCALHOST, net.gateway()] {
        assert_udp_echo((target, port).into(), &format!("ping {target}"));
    }
    assert_eq!(
        net.ok(&env, &["port", id]),
        format!("5353/udp -> 0.0.0.0:{port}\n")
    );
    let _ = echo.kill();
    let _ = echo.wait();
    net.ok(&env, &["rm", "-f", id]);
    net.assert_nothing_left(&env, id, &[], &[port]);
}

#[test]
fn publish_all_picks_free_ports_listed_by_port() {
    let (env, www) = env_with_www();
    env.import_base_with("exposing", &["EXPOSE 80", "EXPOSE 5353/udp"]);
    let net = Net {
        bridge: "rbuildp3",
        octet: 213,
    };
    let id = net.ok(
        &env,
        &[
            "run", "-d", "-P", "-v", &www, "exposing", "httpd", "-f", "-p", "80", "-h", "/www",
        ],
    );
    let id = id.trim();
    let listed = net.ok(&env, &["port", id]);
    let mut lines: Vec<&str> = listed.lines().collect();
    lines.sort();
    assert_eq!(lines.len(), 2, "{listed}");
    let host_port = |line: &str| -> u16 { line.rsplit(':').next().unwrap().parse().unwrap() };
    assert!(lines[0].starts_with("5353/udp -> 0.0.0.0:"), "{listed}");
    assert!(lines[1].starts_with("80/tcp -> 0.0.0.0:"), "{listed}");
    let (udp, tcp) = (host_port(lines[0]), host_port(lines[1]));
    assert_eq!(http_get((Ipv4Addr::LOCALHOST, tcp).into()), "hello-ports\n");
    net.ok(&env, &["rm", "-f", id]);
    net.assert_nothing_left(&env, id, &[tcp], &[udp]);
}

#[test]
fn taken_host_port_is_a_clear_error_and_nothing_starts() {
    let env = TestEnv::with_base("bb");
    let net = Net {
        bridge: "rbuildp4",
        octet: 214,
    };
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let spec = format!("127.0.0.1:{port}:80");
    for detach in [true, false] {
        let mut args = vec![
            "run", "--name", "late", "-p", &spec, "bb", "touch", "/started",
        ];
        if detach {
            args.insert(1, "-d");
        }
        let out = net.run(&env, &args);
        assert_eq!(out.status.code(), Some(125), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("port 127.0.0.1:{port} is already in use")),
            "{stderr}"
        );
        // Created, never started (as docker): nothing runs, the process never ran.
        assert_eq!(net.ok(&env, &["ps", "-q"]), "");
        let status = net.ok(&env, &["inspect", "-f", "{{.State.Status}}", "late"]);
        assert_eq!(status.trim(), "created");
        let id = net.ok(&env, &["inspect", "-f", "{{.Id}}", "late"]);
        net.ok(&env, &["rm", "late"]);
        net.assert_nothing_left(&env, id.trim(), &[], &[]);
    }
    drop(taken);
}

/// SIGKILL of a foreground `run` right after its rules went in: the next rbuild removes
/// the rules, and the port is free.
#[test]
fn killed_rbuild_leaves_no_rule_proxy_or_lease() {
    let net = Net {
        bridge: "rbuildp5",
        octet: 215,
    };
    killed_publisher_leaves_nothing(&net, false, "ports-published:1");
}

/// Regression: a `-d` container's monitor killed while the container runs stays a zombie
/// until init reaps it (its parent, the `run -d`, has exited); its lease counted as alive
/// then, so the next rbuild kept the lease and the DNAT rules.
#[test]
fn bug_killed_monitor_zombie_kept_its_lease_and_rules() {
    let net = Net {
        bridge: "rbuildp6",
        octet: 216,
    };
    killed_publisher_leaves_nothing(&net, true, "monitor-running:1");
}

/// Runs a container publishing a port with the runner (foreground `run`, or the monitor
/// with `detach`) killing itself at `point`, then checks that the next rbuild cleans up.
fn killed_publisher_leaves_nothing(net: &Net, detach: bool, point: &str) {
    let env = TestEnv::with_base("bb");
    {
        let port = free_port();
        let spec = format!("{port}:80");
        let cidfile = env.path().join(format!("cid-{detach}"));
        let cid = cidfile.to_str().unwrap();
        let mut args = vec![
            "run",
            "--name",
            "killed",
            "--cidfile",
            cid,
            "-p",
            &spec,
            "bb",
            "sleep",
            "300",
        ];
        if detach {
            args.insert(1, "-d");
        }
        let out = net
            .cmd(&env, &args)
            .env("RBUILD_TEST_KILL_AT", point)
            .output()
            .unwrap();
        // Read without rbuild: every rbuild command starts by cleaning up after killed ones.
        let id = std::fs::read_to_string(&cidfile).unwrap();
        if detach {
            // The monitor told "started", then killed itself.
            assert_success("run -d", &out);
        } else {
            assert_eq!(
                std::os::unix::process::ExitStatusExt::signal(&out.status),
                Some(9),
                "{out:?}"
            );
        }
        // The kill point comes after the rules went in; they stay until the next rbuild
        // starts (any rbuild: tests running at once may already have removed them here).
        // The container dies with its runner: wait until the lease lock says so.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !net.ok(&env, &["ps", "-q"]).is_empty() {
            assert!(Instant::now() < deadline, "{point}: still running");
            std::thread::sleep(Duration::from_millis(50));
        }
        net.ok(&env, &["rm", "-f", "killed"]);
        net.assert_nothing_left(&env, &id, &[port], &[]);
    }
}

#[test]
fn publish_flags_parse_and_network_modes_as_docker() {
    let env = TestEnv::with_base("bb");
    for (spec, says) in [
        ("abc", "invalid containerPort: abc"),
        ("8080:80/sctp", "invalid proto: sctp"),
        ("8000-8001:80-82", "invalid ranges"),
    ] {
        let out = env.run(&["run", "--rm", "-p", spec, "bb", "true"]);
        assert_eq!(out.status.code(), Some(125), "{spec}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{spec}: {out:?}"
        );
    }
    // --network host: the ports are discarded with docker's warning, the container runs.
    let out = env.run(&[
        "run",
        "--rm",
        "--network",
        "host",
        "-p",
        "8080:80",
        "bb",
        "true",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("Published ports are discarded when using host network mode"));
    let out = env.run(&[
        "run",
        "--rm",
        "--network",
        "container:other",
        "-p",
        "8080:80",
        "bb",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("conflicting options: port publishing and the container type network mode"));
}
