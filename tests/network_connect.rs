//! `network connect` / `network disconnect` (issue 12), as root on the real kernel with the
//! busybox image: a container connected to a second network reaches its members by name and
//! alias and they reach it, until it is disconnected (then the interface is gone too); a
//! stopped container's connection takes effect at its start (and again at a restart); docker's
//! refusals; `network rm` refuses a network a connected container is on; a connect killed
//! midway, and `rm -f`, leave no veth, lease, bridge or rule.
//!
//! Traffic stays between this test's containers. Each test has its own default bridge
//! (`RBUILD_BRIDGE`, 10.221-223.0.0/16) and its own networks (10.226.N.0/24).
//! busybox `wget -T` crashes (a busybox bug), so the tests wait for a server by retrying.

mod common;

use std::net::Ipv4Addr;

use common::bridge::{assert_nothing_left, fetch, leases_of, links, veth, Host};

impl Host {
    /// Runs `args`, asserts that it failed with `message` in its stderr.
    fn refused(&self, args: &[&str], message: &str) {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(message),
            "{args:?}: wanted {message:?}, got {out:?}"
        );
    }
}

#[test]
fn connect_reaches_the_other_network_by_name_and_alias_until_disconnect() {
    let s = Host::new("rbuildc1", 221);
    let bridge_a = s.network_on("rbt-cn-a", "10.226.1.0/24");
    let bridge_b = s.network_on("rbt-cn-b", "10.226.2.0/24");
    let bridge_c = s.network_on("rbt-cn-c", "10.226.3.0/24");
    s.httpd(
        "cweb",
        &["--network", "rbt-cn-b", "--network-alias", "webalias"],
    );
    let client = s.ok(&[
        "run",
        "-d",
        "--name",
        "client",
        "--network",
        "rbt-cn-a",
        "bb",
        "sleep",
        "600",
    ]);
    let client = client.trim().to_string();
    let web_address = s.address_on("cweb", "rbt-cn-b");
    // Two networks: isolated, and no name for the other's members.
    let out = s.exec(
        "client",
        &format!(
            "nc -w 2 {web_address} 80 </dev/null && echo reached; nslookup cweb || echo no-name"
        ),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("reached") && stdout.contains("no-name"),
        "{out:?}"
    );

    s.ok(&[
        "network", "connect", "--alias", "calias", "rbt-cn-b", "client",
    ]);
    let address = s.address_on("client", "rbt-cn-b");
    let eth1 = s.exec_ok("client", "ip -o -4 addr show eth1");
    assert!(eth1.contains(&format!("inet {address}/24")), "{eth1}");
    assert!(
        links().contains(&veth(address)),
        "the host end is on the host"
    );
    // By name and alias, through the client's own network's responder.
    for target in ["cweb", "webalias"] {
        let got = s.exec_ok("client", &fetch(&format!("http://{target}/")));
        assert_eq!(got, "hello-cweb\n", "{target}");
    }
    let lookup = s.exec_ok("client", "cat /etc/resolv.conf; nslookup webalias");
    assert!(lookup.starts_with("nameserver 10.226.1.1\n"), "{lookup}");
    assert!(
        lookup.contains(&format!("Address: {web_address}\n")),
        "{lookup}"
    );
    // And the other network's members reach the client by its name and its new alias.
    for target in ["client", "calias"] {
        let out = s.exec_ok("cweb", &format!("ping -c1 -W 5 {target}"));
        assert!(out.contains(&address.to_string()), "{target}: {out}");
    }
    let networks = s.addresses("client");
    assert_eq!(networks["rbt-cn-b"]["Aliases"][0], "calias", "{networks}");
    assert!(networks["rbt-cn-a"]["IPAddress"] != "", "{networks}");
    let inspect = s.ok(&["network", "inspect", "rbt-cn-b"]);
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v[0]["Containers"][&client]["Name"], "client", "{inspect}");

    // A network only a connected container is on cannot be removed.
    s.ok(&["network", "connect", "rbt-cn-c", "client"]);
    assert!(s.exec_ok("client", "ls /sys/class/net").contains("eth2"));
    s.refused(&["network", "rm", "rbt-cn-c"], "active endpoints");
    s.ok(&["network", "disconnect", "rbt-cn-c", "client"]);
    s.ok(&["network", "rm", "rbt-cn-c"]);

    s.ok(&["network", "disconnect", "rbt-cn-b", "client"]);
    let out = s.exec(
        "client",
        &format!(
            "ls /sys/class/net; nc -w 2 {web_address} 80 </dev/null && echo reached; \
             nslookup cweb || echo no-name"
        ),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("eth1") && !stdout.contains("reached") && stdout.contains("no-name"),
        "{out:?}"
    );
    assert!(!links().contains(&veth(address)), "the host end went too");
    assert!(
        !leases_of(&client)
            .iter()
            .any(|(b, _)| b.contains(&bridge_b)),
        "{:?}",
        leases_of(&client)
    );
    assert!(s.addresses("client").get("rbt-cn-b").is_none());
    s.refused(
        &["network", "disconnect", "rbt-cn-b", "client"],
        "container client is not connected to the network rbt-cn-b",
    );

    s.ok(&["rm", "-f", "client", "cweb"]);
    s.ok(&["network", "rm", "rbt-cn-a", "rbt-cn-b"]);
    assert_nothing_left(
        &[&bridge_a, &bridge_b, &bridge_c, s.net.bridge],
        &[veth(address)],
    );
}

#[test]
fn connect_of_a_stopped_container_takes_effect_at_start_and_docker_errors() {
    let s = Host::new("rbuildc2", 222);
    let bridge_s = s.network_on("rbt-cn-s", "10.226.4.0/24");
    s.httpd("sweb", &["--network", "rbt-cn-s"]);
    let web_address = s.address_on("sweb", "rbt-cn-s");
    s.ok(&["create", "--name", "late", "bb", "sleep", "600"]);
    s.ok(&[
        "network",
        "connect",
        "--ip",
        "10.226.4.50",
        "rbt-cn-s",
        "late",
    ]);
    // Recorded, with no address until it runs.
    let networks = s.addresses("late");
    assert_eq!(networks["rbt-cn-s"]["IPAddress"], "", "{networks}");
    s.ok(&["start", "late"]);
    for _ in 0..2 {
        let eth1 = s.exec_ok("late", "ip -o -4 addr show eth1; ip route");
        assert!(eth1.contains("inet 10.226.4.50/24"), "{eth1}");
        let route = format!("default via 10.{}.0.1 dev eth0", s.net.octet);
        assert!(eth1.contains(&route), "eth0 keeps the route: {eth1}");
        let got = s.exec_ok("late", &fetch(&format!("http://{web_address}/")));
        assert_eq!(got, "hello-sweb\n");
        // A restart joins it again, with the same address.
        s.ok(&["restart", "-t", "0", "late"]);
    }

    // docker's refusals.
    s.refused(
        &["network", "connect", "rbt-cn-s", "late"],
        "endpoint with name late already exists in network rbt-cn-s",
    );
    s.ok(&["run", "-d", "--name", "other", "bb", "sleep", "600"]);
    s.refused(
        &[
            "network",
            "connect",
            "--ip",
            &web_address.to_string(),
            "rbt-cn-s",
            "other",
        ],
        &format!("Address already in use: {web_address}"),
    );
    s.refused(
        &[
            "network",
            "connect",
            "--ip",
            "10.99.0.5",
            "rbt-cn-s",
            "other",
        ],
        "Invalid address 10.99.0.5: It does not belong to any of this network's subnets",
    );
    s.refused(
        &[
            "network",
            "connect",
            "--ip",
            "10.226.4.60",
            "bridge",
            "sweb",
        ],
        "user specified IP address is supported on user defined networks only",
    );
    s.refused(
        &["network", "connect", "--alias", "x", "bridge", "sweb"],
        "network-scoped alias is supported only for containers in user defined networks",
    );
    s.refused(
        &["network", "connect", "host", "other"],
        "container cannot be disconnected from host network or connected to host network",
    );
    s.refused(
        &["network", "connect", "rbt-cn-nosuch", "other"],
        "network rbt-cn-nosuch not found",
    );
    s.ok(&[
        "create",
        "--name",
        "isolated",
        "--network",
        "none",
        "bb",
        "true",
    ]);
    s.refused(
        &["network", "connect", "rbt-cn-s", "isolated"],
        "one of the networks in private (none) mode",
    );
    s.ok(&[
        "create",
        "--name",
        "onhost",
        "--network",
        "host",
        "bb",
        "true",
    ]);
    s.refused(
        &["network", "connect", "rbt-cn-s", "onhost"],
        "container sharing network namespace with another container or host cannot be connected",
    );
    s.refused(
        &["network", "disconnect", "rbt-cn-s", "other"],
        "container other is not connected to the network rbt-cn-s",
    );
    // The failed connects left no address behind.
    let other = s.ok(&["inspect", "--format", "{{.Id}}", "other"]);
    assert_eq!(
        leases_of(other.trim()).len(),
        1,
        "{:?}",
        leases_of(other.trim())
    );

    // A container on the network (connected or not) keeps it from being removed; stopped,
    // it does not (as docker: only running containers have endpoints).
    s.ok(&["rm", "-f", "sweb"]);
    s.refused(&["network", "rm", "rbt-cn-s"], "active endpoints");
    s.ok(&["stop", "-t", "0", "late"]);
    s.ok(&["network", "rm", "rbt-cn-s"]);
    s.refused(&["start", "late"], "network rbt-cn-s not found");
    s.ok(&["network", "disconnect", "-f", "rbt-cn-s", "late"]);
    s.ok(&["start", "late"]);
    s.ok(&["rm", "-f", "late", "other", "isolated", "onhost"]);
    assert_nothing_left(&[&bridge_s, s.net.bridge], &[veth(web_address)]);
}

#[test]
fn a_killed_connect_and_rm_f_leave_nothing() {
    let s = Host::new("rbuildc3", 223);
    let bridge_k = s.network_on("rbt-cn-k", "10.226.5.0/24");
    let c = s.ok(&["run", "-d", "--name", "victim", "bb", "sleep", "600"]);
    let c = c.trim().to_string();
    // Killed after the address was leased, and after the veth was made: the next rbuild
    // reclaims the lease, the interface in the container and the unused bridge.
    for point in ["network-attached:1", "network-connected:1"] {
        let out = s
            .net
            .cmd(&s.env, &["network", "connect", "rbt-cn-k", "victim"])
            .env("RBUILD_TEST_KILL_AT", point)
            .output()
            .unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(9),
            "{point}: {out:?}"
        );
        s.ok(&["ps"]);
        let interfaces = s.exec_ok("victim", "ls /sys/class/net");
        assert_eq!(interfaces, "eth0\nlo\n", "{point}");
        assert_eq!(leases_of(&c).len(), 1, "{point}: {:?}", leases_of(&c));
        assert!(!links().contains(&bridge_k), "{point}: the bridge went");
        assert!(s.addresses("victim").get("rbt-cn-k").is_none());
    }
    // Connected for real, then removed with rm -f: every lease of every network goes.
    s.ok(&["network", "connect", "rbt-cn-k", "victim"]);
    let own = s.exec_ok("victim", "ip -o -4 addr show eth0 | awk '{print $4}'");
    let own: Ipv4Addr = own.trim().split('/').next().unwrap().parse().unwrap();
    let connected = s.address_on("victim", "rbt-cn-k");
    assert_eq!(leases_of(&c).len(), 2, "{:?}", leases_of(&c));
    s.ok(&["rm", "-f", "victim"]);
    assert_eq!(leases_of(&c), Vec::new());
    s.ok(&["network", "rm", "rbt-cn-k"]);
    assert_nothing_left(&[&bridge_k, s.net.bridge], &[veth(own), veth(connected)]);
}
