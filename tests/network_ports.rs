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

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::bridge::Net;
use common::published::{assert_udp_echo, free_port, http_get, start_helper_in, start_udp_echo};
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
    // Its own network as docker lists it, with the address the host reaches it at; also at
    // the top of NetworkSettings, where scripts read it.
    let settings = &inspect[0]["NetworkSettings"];
    assert_eq!(inspect[0]["HostConfig"]["NetworkMode"], "bridge");
    let bridge = &settings["Networks"]["bridge"];
    assert_eq!(bridge["Gateway"], net.gateway().to_string(), "{settings}");
    assert_eq!(settings["IPAddress"], bridge["IPAddress"], "{settings}");
    let address: Ipv4Addr = bridge["IPAddress"].as_str().unwrap().parse().unwrap();
    assert_eq!(http_get((address, 80).into()), "hello-ports\n");
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

/// A detached container on its own bridge (`bridge`, 10.`octet`.0.0/16) with container port
/// 5353/udp published on a free host port and a UDP echo served there from the container's
/// network namespace: the store, the bridge, the container ID, the host port, the echo.
fn udp_echo_container(bridge: &'static str, octet: u8) -> (TestEnv, Net, String, u16, Child) {
    let env = TestEnv::with_base("bb");
    let net = Net { bridge, octet };
    let port = free_port();
    let spec = format!("{port}:5353/udp");
    let id = net.ok(&env, &["run", "-d", "-p", &spec, "bb", "sleep", "300"]);
    let id = id.trim().to_string();
    let pid = net.ok(&env, &["inspect", "-f", "{{.State.Pid}}", &id]);
    let echo = start_udp_echo(&pid, "udp_echo_helper", 5353);
    (env, net, id, port, echo)
}

#[test]
fn publish_udp_reaches_an_echo_in_the_container() {
    let (env, net, id, port, mut echo) = udp_echo_container("rbuildp2", 212);
    let id = id.as_str();
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
    // inspect names the mode and lists it under Networks, with no address, as docker.
    for mode in ["none", "host"] {
        env.ok(&["create", "--name", mode, "--network", mode, "bb", "true"]);
        let inspect: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", mode])).unwrap();
        assert_eq!(inspect[0]["HostConfig"]["NetworkMode"], mode);
        let networks = &inspect[0]["NetworkSettings"]["Networks"];
        assert_eq!(networks.as_object().unwrap().len(), 1, "{networks}");
        assert_eq!(networks[mode]["IPAddress"], "", "{networks}");
    }
}

/// The test binary run as a TCP server on port `RBUILD_TEST_TCP_PEER` that answers each
/// connection with the port it came from (started in a container's network namespace with
/// `nsenter`: [`common::published::start_helper_in`]); a no-op test otherwise.
#[test]
#[ignore = "a helper process, run by published_loopback_is_forwarded_by_the_kernel"]
fn tcp_peer_helper() {
    let Ok(port) = std::env::var("RBUILD_TEST_TCP_PEER") else {
        return;
    };
    let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port.parse().unwrap())).unwrap();
    println!("ready");
    std::io::stdout().flush().unwrap();
    for conn in listener.incoming() {
        let mut conn = conn.unwrap();
        let peer = conn.peer_addr().unwrap();
        let _ = writeln!(conn, "{}", peer.port());
    }
}

/// The host's connections to 127.0.0.1 reach a published port through DNAT (the bridge's
/// `route_localnet` on, as docker with `--userland-proxy=false`), not the userland proxy:
/// the container sees the client's own source port (masqueraded to the bridge's address),
/// where the proxy would connect from a port of its own. Both `127.0.0.1:PORT` and
/// `0.0.0.0:PORT` publishing; the port on the bridge's address as before.
#[test]
fn published_loopback_is_forwarded_by_the_kernel() {
    let env = TestEnv::with_base("bb");
    let net = Net {
        bridge: "rbuildnb2",
        octet: 218,
    };
    let (local, all) = (free_port(), free_port());
    let (local_spec, all_spec) = (format!("127.0.0.1:{local}:7000"), format!("{all}:7000"));
    let id = net.ok(
        &env,
        &[
            "run",
            "-d",
            "-p",
            &local_spec,
            "-p",
            &all_spec,
            "bb",
            "sleep",
            "300",
        ],
    );
    let id = id.trim();
    let pid = net.ok(&env, &["inspect", "-f", "{{.State.Pid}}", id]);
    let mut server = start_helper_in(&pid, "tcp_peer_helper", "RBUILD_TEST_TCP_PEER", "7000");
    let localnet = format!("/proc/sys/net/ipv4/conf/{}/route_localnet", net.bridge);
    assert_eq!(std::fs::read_to_string(&localnet).unwrap().trim(), "1");
    for (ip, port) in [
        (Ipv4Addr::LOCALHOST, local),
        (Ipv4Addr::LOCALHOST, all),
        (net.gateway(), all),
    ] {
        let mut conn = TcpStream::connect((ip, port)).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut seen = String::new();
        conn.read_to_string(&mut seen).unwrap();
        let ours = conn.local_addr().unwrap().port();
        assert_eq!(seen.trim(), ours.to_string(), "via {ip}:{port}");
    }
    let _ = server.kill();
    let _ = server.wait();
    net.ok(&env, &["rm", "-f", id]);
    net.assert_nothing_left(&env, id, &[local, all], &[]);
}

/// Regression (issue 12): a single datagram to a published UDP port, on 127.0.0.1 and on
/// the bridge's address, comes back from an echo in the container; no resend. (It was lost
/// when the test's echo was not bound yet: the test took libtest's own output for the
/// helper's "ready"; the container's kernel answered port unreachable.)
#[test]
fn bug_udp_lone_first_datagram_was_lost() {
    let (env, net, id, port, mut echo) = udp_echo_container("rbuildnb1", 217);
    let id = id.as_str();
    for target in [Ipv4Addr::LOCALHOST, net.gateway()] {
        let client = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let message = format!("one datagram to {target}");
        client.send_to(message.as_bytes(), (target, port)).unwrap();
        let mut buf = [0u8; 100];
        let (n, _) = client
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("no echo via {target}: {e}"));
        assert_eq!(&buf[..n], message.as_bytes(), "via {target}");
    }
    let _ = echo.kill();
    let _ = echo.wait();
    net.ok(&env, &["rm", "-f", id]);
    net.assert_nothing_left(&env, id, &[], &[port]);
}

/// Publishing turns the bridge's `route_localnet` on (see
/// [`published_loopback_is_forwarded_by_the_kernel`]); that must not let a container reach
/// the host's loopback-only services by routing 127.0.0.0/8 to the bridge (what a container
/// with CAP_NET_ADMIN can do in its namespace, done here with `nsenter`): the bridge's guard
/// chain drops it.
#[test]
fn route_localnet_does_not_open_the_hosts_loopback_to_containers() {
    let env = TestEnv::with_base("bb");
    let net = Net {
        bridge: "rbuildnb3",
        octet: 219,
    };
    let spec = format!("{}:80", free_port());
    let id = net.ok(&env, &["run", "-d", "-p", &spec, "bb", "sleep", "300"]);
    let id = id.trim();
    let pid = net.ok(&env, &["inspect", "-f", "{{.State.Pid}}", id]);
    let private = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let private_port = private.local_addr().unwrap().port();
    let in_container = |script: &str| {
        Command::new("nsenter")
            .arg(format!("--net=/proc/{}/ns/net", pid.trim()))
            .args(["sh", "-c", script])
            .output()
            .unwrap()
    };
    let gateway = net.gateway();
    let route = in_container(&format!(
        "ip addr flush dev lo && ip route add 127.0.0.0/8 via {gateway} dev eth0 && \
         echo 1 > /proc/sys/net/ipv4/conf/eth0/route_localnet && ip route get 127.0.0.1"
    ));
    assert_success("routing 127.0.0.0/8 to the bridge", &route);
    assert!(String::from_utf8_lossy(&route.stdout).contains(&format!("via {gateway}")));
    // Dropped, so the connection attempt never completes: a connection made is the failure.
    let reached = in_container(&format!(
        "timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/{private_port}' && echo connected"
    ));
    assert!(
        !String::from_utf8_lossy(&reached.stdout).contains("connected"),
        "a container reached the host's 127.0.0.1:{private_port}"
    );
    drop(private);
    net.ok(&env, &["rm", "-f", id]);
    net.assert_nothing_left(&env, id, &[], &[]);
}

/// UDP to a port published on 127.0.0.1 keeps reaching the container after a restart that
/// gave it another address, from the same client socket (a resolver's, a syslog sender's):
/// the userland proxy serves it (a new socket per start).
#[test]
fn udp_on_loopback_follows_the_container_to_its_new_address_after_a_restart() {
    let net = Net {
        bridge: "rbuildnb4",
        octet: 220,
    };
    udp_follows_a_restart(&net, "127.0.0.1:", Ipv4Addr::LOCALHOST);
}

/// Regression (issue 12): UDP through DNAT (to the bridge's address, a local address of the
/// host) from one client socket kept going to the address the container had before a
/// restart: the flow's conntrack entry outlived the container and kept its NAT. rbuild now
/// deletes the UDP entries of a published port when it sets the port up (as docker's
/// `conntrack -D -p udp --dport`) and when it takes it down.
#[test]
fn bug_udp_dnat_kept_a_stale_conntrack_entry_across_a_restart() {
    let net = Net {
        bridge: "rbuildnd4",
        octet: 204,
    };
    udp_follows_a_restart(&net, "", net.gateway());
}

/// Publishes container port 5353/udp on `host_ip` (`127.0.0.1:`, or empty for every
/// address) and a free port, and sends to it at `target` from one client socket (one flow)
/// before and after a restart that gives the container another address (another container
/// takes the one it had): the echo in the container answers both times.
fn udp_follows_a_restart(net: &Net, host_ip: &str, target: Ipv4Addr) {
    let env = TestEnv::with_base("bb");
    let port = free_port();
    let spec = format!("{host_ip}{port}:5353/udp");
    let id = net.ok(&env, &["run", "-d", "-p", &spec, "bb", "sleep", "300"]);
    let id = id.trim();
    let client = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut addresses = Vec::new();
    for round in ["first start", "after the restart"] {
        let pid = net.ok(&env, &["inspect", "-f", "{{.State.Pid}}", id]);
        let address = net.ok(
            &env,
            &["inspect", "-f", "{{.NetworkSettings.IPAddress}}", id],
        );
        addresses.push(address.trim().to_string());
        let mut echo = start_udp_echo(&pid, "udp_echo_helper", 5353);
        // The echo may still be binding: the client keeps sending from its one socket (the
        // same flow) until an answer comes, as a resolver would.
        let message = format!("datagram, {round}");
        let deadline = Instant::now() + Duration::from_secs(10);
        let answer = loop {
            client.send_to(message.as_bytes(), (target, port)).unwrap();
            let mut buf = [0u8; 100];
            if let Ok((n, _)) = client.recv_from(&mut buf) {
                break Some(buf[..n].to_vec());
            }
            if Instant::now() > deadline {
                break None;
            }
        };
        // The helper holds the namespace: it goes before the container stops.
        let _ = echo.kill();
        let _ = echo.wait();
        assert_eq!(
            answer.as_deref(),
            Some(message.as_bytes()),
            "no echo {round} (addresses {addresses:?})"
        );
        if round == "first start" {
            net.ok(&env, &["stop", "-t", "0", id]);
            // Another container takes the address the first one had.
            net.ok(
                &env,
                &["run", "-d", "--name", "taker", "bb", "sleep", "300"],
            );
            net.ok(&env, &["start", id]);
        }
    }
    assert_ne!(addresses[0], addresses[1], "the restart kept the address");
    net.ok(&env, &["rm", "-f", id, "taker"]);
    net.assert_nothing_left(&env, id, &[], &[port]);
}
