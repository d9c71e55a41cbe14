//! The default network (issue 12): RUN steps and containers reach a server outside the host
//! through the bridge and NAT with no flag; `--network none` cannot; nothing is left on the
//! host afterwards, not even after a SIGKILL of rbuild (needs root, as CI).
//!
//! Traffic stays on this machine: the "outside" is a network namespace each test creates,
//! joined to the host by a veth pair on a /30 of 198.18.0.0/15 (the benchmarking range).
//! Each test uses its own bridge (`RBUILD_BRIDGE`) and subnet (`RBUILD_BRIDGE_SUBNET`), so
//! tests running at once (and other tests on `rbuild0`) do not see each other's objects.

mod common;

use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::bridge::Net;
use common::{assert_success, TestEnv};

/// A server in a namespace of its own: busybox httpd serving `hello-outside`.
struct Outside {
    ns: String,
    server: Child,
    address: Ipv4Addr,
}

fn sh(script: &str) -> Output {
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert_success(script, &out);
    out
}

fn sh_quiet(script: &str) -> std::io::Result<std::process::ExitStatus> {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stderr(Stdio::null())
        .status()
}

impl Outside {
    /// Namespace `rbt-<tag>`, host side 198.18.`n`.1/30, server on 198.18.`n`.2:8080.
    fn start(env: &TestEnv, tag: &str, n: u8) -> Outside {
        let ns = format!("rbt-{tag}");
        let host_if = format!("rbt-{tag}h");
        // Leftovers of an earlier run of this test.
        let _ = sh_quiet(&format!("ip netns del {ns}; ip link del {host_if}"));
        sh(&format!(
            "ip netns add {ns} && ip link add {host_if} type veth peer name eth0 netns {ns} && \
             ip addr add 198.18.{n}.1/30 dev {host_if} && ip link set {host_if} up && \
             ip -n {ns} addr add 198.18.{n}.2/30 dev eth0 && ip -n {ns} link set eth0 up && \
             ip -n {ns} link set lo up"
        ));
        let www = env.path().join("www");
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(www.join("index.html"), "hello-outside\n").unwrap();
        let address = Ipv4Addr::new(198, 18, n, 2);
        let server = Command::new("ip")
            .args(["netns", "exec", &ns, "busybox", "httpd", "-f", "-p"])
            .arg(format!("{address}:8080"))
            .arg("-h")
            .arg(&www)
            .spawn()
            .unwrap();
        // Wait for the listener (reached from the host through the veth).
        let deadline = Instant::now() + Duration::from_secs(10);
        let target = SocketAddrV4::new(address, 8080).into();
        while TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "httpd in {ns} did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Outside {
            ns,
            server,
            address,
        }
    }

    fn url(&self) -> String {
        format!("http://{}:8080/", self.address)
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// Checks of this file on a test's own bridge ([`Net`]: `cmd`, `run`, `ok` are shared).
impl Net {
    /// Prefix of the host-side veth names on this subnet (`rbuild` + the address in hex).
    fn veth_prefix(&self) -> String {
        format!("rbuild0a{:02x}", self.octet)
    }

    /// Asserts that no link, nftables chain or lease of this network is left on the host.
    fn assert_nothing_left(&self, env: &TestEnv) {
        // The kernel destroys a dead namespace's veth pair asynchronously (its netns is
        // cleaned up in a workqueue): give it a few seconds before calling a link left over.
        let ours = |links: &str| {
            links.lines().any(|line| {
                let name = line.split(':').nth(1).unwrap_or("").trim();
                name == self.bridge || name.starts_with(&self.veth_prefix())
            })
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while ours(&String::from_utf8_lossy(&sh("ip -o link").stdout)) && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let links = sh("ip -o link").stdout;
        let links = String::from_utf8_lossy(&links);
        for line in links.lines() {
            let name = line.split(':').nth(1).unwrap_or("").trim();
            assert!(
                name != self.bridge && !name.starts_with(&self.veth_prefix()),
                "left on the host: {line}"
            );
        }
        let table = Command::new("nft")
            .args(["list", "table", "ip", "rbuild"])
            .output()
            .unwrap();
        let table = String::from_utf8_lossy(&table.stdout);
        assert!(!table.contains(self.bridge), "rules left: {table}");
        let inspect = self.ok(env, &["network", "inspect", "bridge"]);
        let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
        assert_eq!(
            v[0]["Options"]["com.docker.network.bridge.name"],
            self.bridge
        );
        assert_eq!(v[0]["Containers"], serde_json::json!({}), "{inspect}");
        assert_eq!(v[0]["IPAM"]["Config"], serde_json::json!([]), "{inspect}");
    }
}

#[test]
fn default_network_reaches_an_outside_server_through_nat() {
    let env = TestEnv::with_base("bb");
    let outside = Outside::start(&env, "nat", 4);
    let net = Net {
        bridge: "rbuildt1",
        octet: 231,
    };
    let url = outside.url();
    // A container, no flag.
    let got = net.ok(&env, &["run", "--rm", "bb", "wget", "-qO-", &url]);
    assert_eq!(got, "hello-outside\n");
    // Its address is on the bridge's subnet, its route goes via the bridge.
    let route = net.ok(&env, &["run", "--rm", "bb", "ip", "route"]);
    assert!(route.contains("default via 10.231.0.1 dev eth0"), "{route}");
    // --network none: loopback only.
    let none = net.run(
        &env,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "bb",
            "nc",
            "-w",
            "2",
            "198.18.4.2",
            "8080",
        ],
    );
    assert!(!none.status.success());
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("Network is unreachable"),
        "{none:?}"
    );
    // A RUN step, no flag; RUN --network=none cannot.
    let ctx = env.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM bb\nRUN wget -qO- {url} > /got\n\
             RUN --network=none if nc -w 2 198.18.4.2 8080 </dev/null; then exit 1; fi\n"
        ),
    )
    .unwrap();
    net.ok(
        &env,
        &["build", "-q", "-t", "fetched", ctx.to_str().unwrap()],
    );
    let got = net.ok(&env, &["run", "--rm", "fetched", "cat", "/got"]);
    assert_eq!(got, "hello-outside\n");
    // build --network none: the step fails.
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM bb\nRUN wget -qO- {url} > /got2\n"),
    )
    .unwrap();
    let out = net.run(
        &env,
        &[
            "build",
            "--network",
            "none",
            "-t",
            "x",
            ctx.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    net.assert_nothing_left(&env);
}

#[test]
fn twenty_parallel_containers_get_distinct_addresses() {
    let env = TestEnv::with_base("bb");
    let net = Net {
        bridge: "rbuildt2",
        octet: 232,
    };
    // Each container waits until all 20 have written their file: all run at once.
    let barrier = env.path().join("barrier");
    std::fs::create_dir_all(&barrier).unwrap();
    let volume = format!("{}:/b", barrier.display());
    let script = "ip -o -4 addr show eth0 | awk '{print $4}' > /b/$HOSTNAME; \
                  n=0; while [ $(ls /b | wc -l) -lt 20 ]; do n=$((n+1)); [ $n -lt 1200 ] || exit 9; \
                  sleep 0.05; done; cat /b/$HOSTNAME";
    let children: Vec<Child> = (0..20)
        .map(|i| {
            let hostname = format!("c{i}");
            net.cmd(
                &env,
                &[
                    "run",
                    "--rm",
                    "--hostname",
                    &hostname,
                    "-v",
                    &volume,
                    "bb",
                    "sh",
                    "-c",
                    script,
                ],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let outputs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    // All failures at once: one container that never started makes the others time out
    // (exit 9), and the first in order is not the one that says why.
    let failed: Vec<String> = outputs
        .iter()
        .enumerate()
        .filter(|(_, o)| !o.status.success())
        .map(|(i, o)| format!("c{i}: {}: {}", o.status, String::from_utf8_lossy(&o.stderr)))
        .collect();
    assert!(
        failed.is_empty(),
        "parallel runs failed:\n{}",
        failed.join("\n")
    );
    let mut addresses: Vec<String> = outputs
        .iter()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .collect();
    for a in &addresses {
        assert!(a.starts_with("10.232.") && a.ends_with("/16"), "{a}");
    }
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), 20, "{addresses:?}");
    net.assert_nothing_left(&env);
}

/// SIGKILL of rbuild with the address leased and the bridge up (before the container), and
/// with the container running: the next rbuild start removes the lease, bridge and rules.
#[test]
fn killed_rbuild_leaves_nothing_after_the_next_start() {
    let env = TestEnv::with_base("bb");
    let net = Net {
        bridge: "rbuildt3",
        octet: 233,
    };
    // A record of its own: another test's command would clean up what the kill left (any
    // command does) before this one could see it left.
    let state = env.path().join("network-state");
    for point in ["network-attached:1", "container-started:1"] {
        let out = net
            .cmd(&env, &["run", "--rm", "bb", "sleep", "30"])
            .env("RBUILD_NETWORK_STATE", &state)
            .env("RBUILD_TEST_KILL_AT", point)
            .output()
            .unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(9),
            "{point}: {out:?}"
        );
        // Left behind: the bridge (the container's veth goes with its namespace).
        let bridge = format!("/sys/class/net/{}", net.bridge);
        assert!(std::path::Path::new(&bridge).exists(), "{point}");
        // The container (a child of the killed rbuild) is gone once its monitor is: wait for
        // the veth of its namespace to go.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let links = String::from_utf8_lossy(&sh("ip -o link").stdout).into_owned();
            if !links.contains(&net.veth_prefix()) {
                break;
            }
            assert!(Instant::now() < deadline, "{point}: veth stays: {links}");
            std::thread::sleep(Duration::from_millis(20));
        }
        let record = || std::fs::read_to_string(state.join("state.json")).unwrap();
        assert!(record().contains(net.bridge), "{point}: {}", record());
        let images = net
            .cmd(&env, &["images"])
            .env("RBUILD_NETWORK_STATE", &state)
            .output()
            .unwrap();
        assert_success("images", &images);
        assert!(!record().contains(net.bridge), "{point}: {}", record());
        net.assert_nothing_left(&env);
    }
}

/// `--dns`, `--dns-search`, `--add-host` (and `host-gateway`), `--mac-address` for run, and
/// `--add-host` for build.
#[test]
fn dns_add_host_and_mac_address_flags() {
    let env = TestEnv::with_base("bb");
    let net = Net {
        bridge: "rbuildt4",
        octet: 234,
    };
    let out = net.ok(
        &env,
        &[
            "run",
            "--rm",
            "--dns",
            "192.0.2.53",
            "--dns-search",
            "ex.test",
            "--add-host",
            "db:10.1.2.3",
            "--add-host",
            "gw:host-gateway",
            "--mac-address",
            "02:42:ac:11:00:09",
            "bb",
            "sh",
            "-c",
            "cat /etc/resolv.conf /etc/hosts /sys/class/net/eth0/address",
        ],
    );
    assert!(
        out.contains("search ex.test\nnameserver 192.0.2.53\n"),
        "{out}"
    );
    assert!(!out.contains("nameserver 10.255.255.53"), "{out}");
    assert!(out.contains("10.1.2.3\tdb\n"), "{out}");
    assert!(out.contains("10.234.0.1\tgw\n"), "{out}");
    assert!(out.ends_with("02:42:ac:11:00:09\n"), "{out}");
    // Without an interface there is no MAC address to set, nor a gateway.
    for args in [
        &["--mac-address", "02:42:ac:11:00:09"][..],
        &["--add-host", "gw:host-gateway"][..],
    ] {
        let mut full = vec!["run", "--rm", "--network", "none"];
        full.extend(args);
        full.extend(["bb", "true"]);
        let out = net.run(&env, &full);
        assert_eq!(out.status.code(), Some(125), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("needs the bridge network"));
    }
    let ctx = env.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM bb\nRUN cat /etc/hosts > /hosts\n",
    )
    .unwrap();
    let ctx = ctx.to_str().unwrap();
    net.ok(
        &env,
        &[
            "build",
            "-q",
            "--add-host",
            "db:10.1.2.3",
            "--add-host",
            "gw:host-gateway",
            "-t",
            "h",
            ctx,
        ],
    );
    let hosts = net.ok(&env, &["run", "--rm", "h", "cat", "/hosts"]);
    assert!(
        hosts.contains("10.1.2.3\tdb\n") && hosts.contains("10.234.0.1\tgw\n"),
        "{hosts}"
    );
    net.assert_nothing_left(&env);
}

/// Regression (merge of the network and the detached containers): the address lease belongs to
/// the process that runs the container. A `-d` container's is its monitor's, so it keeps its
/// network after the CLI exited, gets it again on `restart`, and leaves nothing when removed.
#[test]
fn bug_detached_container_lost_its_network_with_the_cli() {
    let env = TestEnv::with_base("bb");
    let outside = Outside::start(&env, "det", 5);
    let net = Net {
        bridge: "rbuildt5",
        octet: 235,
    };
    let url = outside.url();
    let script = format!("while true; do wget -qO- {url} && sleep 100; sleep 0.2; done");
    let id = net.ok(&env, &["run", "-d", "bb", "sh", "-c", &script]);
    let id = id.trim();
    let fetched = |runs: usize| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let logs = net.ok(&env, &["logs", id]);
            if logs.matches("hello-outside").count() >= runs {
                break;
            }
            assert!(Instant::now() < deadline, "no fetch #{runs}: {logs}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    fetched(1);
    let route = net.ok(&env, &["exec", id, "ip", "route"]);
    assert!(route.contains("default via 10.235.0.1 dev eth0"), "{route}");
    net.ok(&env, &["restart", "-t", "0", id]);
    fetched(2);
    net.ok(&env, &["rm", "-f", id]);
    net.assert_nothing_left(&env);
}
