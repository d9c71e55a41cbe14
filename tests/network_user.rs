//! User-defined networks, name resolution and `--link` (issue 12), as root on the real
//! kernel with the busybox image: containers on a network reach each other by name, alias
//! and short ID through the network's DNS responder, not on the default bridge; two networks
//! cannot reach each other; `--link` gives docker's variables and hosts entry; `network rm`
//! is refused while a container is on the network; nothing is left on the host afterwards.
//!
//! Traffic stays on this machine, between containers of the test. Each test has its own
//! default bridge (`RBUILD_BRIDGE`, `RBUILD_BRIDGE_SUBNET`) and its own networks on explicit
//! subnets (10.240-245.0.0/24), so tests running at once do not see each other's objects.
//! They share the host's IPAM record and nftables table, as every rbuild does (a private
//! record would let one test delete the table under another's chains).
//! busybox `wget -T` crashes (a busybox bug), so the tests wait for a server by retrying.

mod common;

use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::bridge::{fetch, Host};

impl Host {
    /// Creates network `name` on `subnet`; returns its ID.
    fn network(&self, name: &str, subnet: &str) -> String {
        // A leftover of an earlier, interrupted run of this test.
        let _ = self.run(&["network", "rm", name]);
        let id = self.ok(&["network", "create", "--subnet", subnet, name]);
        id.trim().to_string()
    }

    /// Asserts that `run FLAG VALUE` fails before the container starts (125), per value.
    fn refused(&self, flag: &str, values: &[&str]) {
        for value in values {
            let out = self.run(&["run", "--rm", flag, value, "bb", "true"]);
            assert_eq!(out.status.code(), Some(125), "{flag} {value}: {out:?}");
        }
    }

    /// The address of container `id` on network `network`, from `network inspect`.
    fn address(&self, network: &str, id: &str) -> Ipv4Addr {
        let inspect = self.ok(&["network", "inspect", network]);
        let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
        let cidr = v[0]["Containers"][id]["IPv4Address"]
            .as_str()
            .unwrap_or_else(|| panic!("{id} not on {network}: {inspect}"));
        cidr.split('/').next().unwrap().parse().unwrap()
    }
}

fn ip_links() -> String {
    let out = Command::new("ip").args(["-o", "link"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts that network `id` (`veth_prefix`: the host-side veth names on its subnet, `rbuild`
/// + the address bytes in hex) left no bridge, veth, nftables chain or set element, and no lease.
fn assert_network_left_nothing(id: &str, veth_prefix: &str) {
    let bridge = format!("rbuild-{}", &id[..8]);
    let ours = |links: &str| {
        links
            .lines()
            .find(|line| {
                let name = line.split(':').nth(1).unwrap_or("").trim();
                name == bridge || name.starts_with(veth_prefix)
            })
            .map(str::to_string)
    };
    // The kernel removes a dead namespace's veth asynchronously: wait for it a little.
    let deadline = Instant::now() + Duration::from_secs(10);
    while ours(&ip_links()).is_some() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(ours(&ip_links()), None, "left on the host");
    let table = Command::new("nft")
        .args(["list", "table", "ip", "rbuild"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(!table.contains(&bridge), "rules left: {table}");
    let state = std::fs::read_to_string("/run/rbuild/network/state.json").unwrap_or_default();
    assert!(
        !state.contains(&bridge),
        "lease or bridge record left: {state}"
    );
}

#[test]
fn containers_on_a_user_network_reach_each_other_by_name_alias_and_short_id() {
    let host = Host::new("rbuildu1", 246);
    host.network("rbt-names", "10.241.0.0/24");
    let web = host.httpd("web", &["--network", "rbt-names", "--network-alias", "www"]);
    for target in ["web", "www", &web[..12]] {
        let got = host.ok(&[
            "run",
            "--rm",
            "--network",
            "rbt-names",
            "bb",
            "sh",
            "-c",
            &fetch(&format!("http://{target}/")),
        ]);
        assert_eq!(got, "hello-web\n", "{target}");
    }
    // The answers come from the network's responder, the container's only name server.
    let out = host.ok(&[
        "run",
        "--rm",
        "--network",
        "rbt-names",
        "bb",
        "sh",
        "-c",
        "cat /etc/resolv.conf; nslookup www; ping -c1 -W 5 WEB",
    ]);
    let address = host.address("rbt-names", &web);
    assert!(out.starts_with("nameserver 10.241.0.1\n"), "{out}");
    assert!(out.contains(&format!("Address: {address}\n")), "{out}");
    assert!(out.contains("1 packets received"), "{out}");
    let inspect = host.ok(&["network", "inspect", "rbt-names"]);
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v[0]["Containers"][&web]["Name"], "web", "{inspect}");
    assert_eq!(v[0]["IPAM"]["Config"][0]["Gateway"], "10.241.0.1");

    // The default bridge has no name resolution (as docker's): no responder on its gateway,
    // no hosts entry. `--dns 127.0.0.1` keeps the lookup inside the container.
    let plain = host.httpd("plain", &[]);
    let out = host.run(&[
        "run",
        "--rm",
        "--dns",
        "127.0.0.1",
        "bb",
        "sh",
        "-c",
        "nslookup plain 10.246.0.1 || echo no-responder; ping -c1 -W 2 plain || echo no-name",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("no-responder") && stdout.contains("no-name"),
        "{out:?}"
    );
    // ... while the address works: it is the name that is missing.
    let plain_address = host.address("bridge", &plain);
    let got = host.ok(&[
        "run",
        "--rm",
        "bb",
        "sh",
        "-c",
        &fetch(&format!("http://{plain_address}/")),
    ]);
    assert_eq!(got, "hello-plain\n");
    // --network-alias needs a user network.
    host.refused("--network-alias", &["x"]);
    host.ok(&["rm", "-f", "web", "plain"]);
    host.ok(&["network", "rm", "rbt-names"]);
}

#[test]
fn two_user_networks_are_isolated_from_each_other_and_from_the_default_bridge() {
    let host = Host::new("rbuildu2", 247);
    host.network("rbt-iso-a", "10.242.0.0/24");
    host.network("rbt-iso-b", "10.243.0.0/24");
    let a = host.httpd("a", &["--network", "rbt-iso-a"]);
    let address = host.address("rbt-iso-a", &a);
    // From its own network: reached (this also waits for the server).
    let url = format!("http://{address}/");
    let got = host.ok(&[
        "run",
        "--rm",
        "--network",
        "rbt-iso-a",
        "bb",
        "sh",
        "-c",
        &fetch(&url),
    ]);
    assert_eq!(got, "hello-a\n");
    // From the other network and from the default bridge: dropped (a timeout, not a refusal).
    for network in ["rbt-iso-b", "bridge"] {
        let out = host.run(&[
            "run",
            "--rm",
            "--network",
            network,
            "bb",
            "nc",
            "-w",
            "2",
            &address.to_string(),
            "80",
        ]);
        assert!(!out.status.success(), "{network}: {out:?}");
    }
    host.ok(&["rm", "-f", "a"]);
    host.ok(&["network", "rm", "rbt-iso-a", "rbt-iso-b"]);
}

#[test]
fn link_gives_docker_env_vars_and_hosts_entry() {
    let host = Host::new("rbuildu3", 248);
    host.env.import_base_with(
        "bbdb",
        &["EXPOSE 5432", "EXPOSE 53/udp", "ENV PGUSER=admin"],
    );
    let db = host.ok(&[
        "run",
        "-d",
        "--name",
        "db",
        "-e",
        "SECRET=s3",
        "bbdb",
        "sleep",
        "60",
    ]);
    let db = db.trim();
    let address = host.address("bridge", db);
    let out = host.ok(&[
        "run",
        "--rm",
        "--name",
        "client",
        "--link",
        "db:my-db",
        "--link",
        "db",
        "bb",
        "sh",
        "-c",
        "env | sort; cat /etc/hosts; ping -c1 -W 5 my-db",
    ]);
    for var in [
        "MY_DB_NAME=/client/my-db".to_string(),
        format!("MY_DB_PORT=udp://{address}:53"),
        format!("MY_DB_PORT_5432_TCP=tcp://{address}:5432"),
        format!("MY_DB_PORT_5432_TCP_ADDR={address}"),
        "MY_DB_PORT_5432_TCP_PORT=5432".to_string(),
        "MY_DB_PORT_5432_TCP_PROTO=tcp".to_string(),
        format!("MY_DB_PORT_53_UDP=udp://{address}:53"),
        "MY_DB_ENV_PGUSER=admin".to_string(),
        "MY_DB_ENV_SECRET=s3".to_string(),
        "DB_NAME=/client/db".to_string(),
        format!("DB_PORT_5432_TCP_ADDR={address}"),
    ] {
        assert!(out.lines().any(|l| l == var), "{var} missing:\n{out}");
    }
    assert!(!out.contains("MY_DB_ENV_PATH="), "{out}");
    assert!(
        out.contains(&format!("{address}\tmy-db {} db\n", &db[..12])),
        "{out}"
    );
    assert!(
        out.contains(&format!("{address}\tdb {}\n", &db[..12])),
        "{out}"
    );
    assert!(out.contains("1 packets received"), "{out}");
    // A link to a container that does not run, or does not exist, is refused.
    host.ok(&["stop", "-t", "0", "db"]);
    host.refused("--link", &["db", "nosuch"]);
    host.ok(&["rm", "-f", "db"]);
}

#[test]
fn network_rm_is_refused_while_in_use_and_nothing_is_left_after() {
    let host = Host::new("rbuildu4", 249);
    // Both labelled, so that prune below can be limited to them.
    let create = |name: &str, subnet: &str| {
        let _ = host.run(&["network", "rm", name]);
        let id = host.ok(&[
            "network", "create", "--subnet", subnet, "-l", "rbt-rm", name,
        ]);
        id.trim().to_string()
    };
    let id = create("rbt-rm", "10.244.0.0/24");
    let keep = create("rbt-rm-kept", "10.245.0.0/24");
    let c = host.ok(&["run", "-d", "--network", "rbt-rm", "bb", "sleep", "60"]);
    let c = c.trim();
    let bridge = format!("rbuild-{}", &id[..8]);
    assert!(
        ip_links().contains(&bridge),
        "the first container made the bridge"
    );
    let out = host.run(&["network", "rm", "rbt-rm"]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("active endpoints"),
        "{out:?}"
    );
    // prune keeps a network in use, removes an unused one.
    // (Only this test's networks: other tests' networks may be unused for a moment.)
    let pruned = host.ok(&["network", "prune", "-f", "--filter", "label=rbt-rm"]);
    assert!(
        pruned.contains("rbt-rm-kept") && !pruned.contains("rbt-rm\n"),
        "{pruned}"
    );
    host.ok(&["rm", "-f", c]);
    // A SIGKILLed rbuild right after taking the address and setting the bridge up: the next
    // rbuild start cleans up.
    common::killed_at(
        &mut host.cmd(&["run", "--rm", "--network", "rbt-rm", "bb", "true"]),
        "network-attached:1",
    );
    host.ok(&["network", "rm", "rbt-rm"]);
    let ls = host.ok(&["network", "ls"]);
    assert!(!ls.contains("rbt-rm"), "{ls}");
    assert_network_left_nothing(&id, "rbuild0af400");
    assert_network_left_nothing(&keep, "rbuild0af500");
}

#[test]
fn twenty_parallel_containers_on_a_user_network_get_distinct_addresses() {
    let host = Host::new("rbuildu5", 250);
    let id = host.network("rbt-par", "10.240.0.0/24");
    // All 20 run at once, and each reaches the next one by name through the responder.
    let barrier = host.env.path().join("barrier");
    std::fs::create_dir_all(&barrier).unwrap();
    let volume = format!("{}:/b", barrier.display());
    let children: Vec<Child> = (0..20)
        .map(|i| {
            let name = format!("p{i}");
            // Two barriers: all have an address before the pings, none leaves before all
            // pinged (a container that ended has no name any more).
            let script = format!(
                "ip -o -4 addr show eth0 | awk '{{print $4}}' > /b/{name}; \
                 wait_for() {{ n=0; while [ $(ls /b | grep -c \"$1\") -lt 20 ]; do n=$((n+1)); \
                 [ $n -lt 1200 ] || exit 9; sleep 0.05; done; }}; \
                 wait_for '^p'; ping -c1 -W 5 p{} >/dev/null || exit 8; touch /b/done-{name}; \
                 wait_for '^done-'; cat /b/{name}",
                (i + 1) % 20
            );
            host.cmd(&[
                "run",
                "--rm",
                "--name",
                &name,
                "--network",
                "rbt-par",
                "-v",
                &volume,
                "bb",
                "sh",
                "-c",
                &script,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let outputs = common::wait_all_succeeded(children);
    let mut addresses: Vec<String> = outputs
        .iter()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .collect();
    for a in &addresses {
        assert!(a.starts_with("10.240.0.") && a.ends_with("/24"), "{a}");
    }
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), 20, "{addresses:?}");
    host.ok(&["network", "rm", "rbt-par"]);
    assert_network_left_nothing(&id, "rbuild0af000");
}

/// `--network container:NAME` shares the other container's namespace: its address, its
/// loopback services and its network's name server.
#[test]
fn network_container_joins_another_containers_namespace() {
    let host = Host::new("rbuildu6", 251);
    let id = host.network("rbt-join", "10.239.0.0/24");
    let script =
        "mkdir /www && echo shared > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www";
    let target = host.ok(&[
        "run",
        "-d",
        "--name",
        "target",
        "--network",
        "rbt-join",
        "bb",
        "sh",
        "-c",
        script,
    ]);
    let address = host.address("rbt-join", target.trim());
    let out = host.ok(&[
        "run",
        "--rm",
        "--network",
        "container:target",
        "bb",
        "sh",
        "-c",
        &format!(
            "ip -o -4 addr show eth0; cat /etc/resolv.conf; ({}); ping -c1 -W 5 target",
            fetch("http://127.0.0.1:8080/")
        ),
    ]);
    assert!(out.contains(&format!("inet {address}/24")), "{out}");
    assert!(out.contains("nameserver 10.239.0.1\n"), "{out}");
    assert!(out.contains("shared\n"), "{out}");
    assert!(out.contains("1 packets received"), "{out}");
    // Not running, or not there: refused before anything starts.
    host.ok(&["stop", "-t", "0", "target"]);
    host.refused("--network", &["container:target", "container:nosuch"]);
    host.ok(&["rm", "-f", "target"]);
    host.ok(&["network", "rm", "rbt-join"]);
    assert_network_left_nothing(&id, "rbuild0aef00");
}
