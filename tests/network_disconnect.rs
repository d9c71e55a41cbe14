//! `network disconnect` of the network a container was created on, and name resolution for
//! a default-bridge container connected to a user network (issue 12), as root on the real
//! kernel with the busybox image, as docker behaves:
//!
//! - disconnecting a container's own network (`bridge`, or its `--network NAME`), running
//!   or stopped, takes that interface away (the default route moves to the first connected
//!   network), drops it from inspect's `Networks`, and a later start does not join it;
//!   `network connect` adds it back;
//! - a container on the default bridge that is connected to a user network resolves that
//!   network's names and aliases through the network's responder (its `/etc/resolv.conf`
//!   names it), until it is disconnected;
//! - a bridge keeps its MAC address as members leave, so the others keep reaching the
//!   gateway and its responder.
//!
//! Traffic stays between this test's containers. Each test has its own default bridge
//! (`RBUILD_BRIDGE`, 10.201-202.0.0/16) and its own networks (10.227.N.0/24).

mod common;

use common::bridge::{assert_nothing_left, fetch, leases_of, links, veth, Host};

impl Host {
    /// The interfaces, addresses and routes in container `name`.
    fn interfaces(&self, name: &str) -> String {
        self.exec_ok(name, "ls /sys/class/net; ip -o -4 addr; ip route")
    }
}

#[test]
fn disconnect_of_the_own_network_running_and_stopped_and_connect_adds_it_back() {
    let s = Host::new("rbuildnd1", 201);
    let bridge_n = s.network_on("rbt-nd-own", "10.227.1.0/24");
    let id = s.ok(&["run", "-d", "--name", "a", "bb", "sleep", "600"]);
    let id = id.trim().to_string();
    s.ok(&["network", "connect", "rbt-nd-own", "a"]);
    let on_bridge = s.address_on("a", "bridge");
    let on_n = s.address_on("a", "rbt-nd-own");

    // Running: eth0 (the default bridge, with the default route) goes, eth1 stays and
    // takes the default route.
    s.ok(&["network", "disconnect", "bridge", "a"]);
    let now = s.interfaces("a");
    assert!(
        !now.contains("eth0") && !now.contains(&on_bridge.to_string()),
        "{now}"
    );
    assert!(now.contains(&format!("inet {on_n}/24")), "{now}");
    assert!(now.contains("default via 10.227.1.1 dev eth1"), "{now}");
    assert!(!links().contains(&veth(on_bridge)), "the host end went too");
    assert!(
        !leases_of(&id).iter().any(|(b, _)| b.contains(s.net.bridge)),
        "{:?}",
        leases_of(&id)
    );
    let networks = s.addresses("a");
    assert!(networks.get("bridge").is_none(), "{networks}");
    assert!(networks.get("rbt-nd-own").is_some(), "{networks}");
    let mode = s.ok(&["inspect", "-f", "{{.HostConfig.NetworkMode}}", "a"]);
    assert_eq!(mode.trim(), "bridge", "the mode stays, as docker's");
    s.refused_disconnect("bridge", "a");

    // A restart does not join it: the connected network is eth0 now, with the route.
    s.ok(&["restart", "-t", "0", "a"]);
    let now = s.interfaces("a");
    assert!(now.contains("eth0") && !now.contains("eth1"), "{now}");
    assert!(now.contains("inet 10.227.1."), "{now}");
    assert!(now.contains("default via 10.227.1.1 dev eth0"), "{now}");
    assert!(!now.contains("inet 10.201."), "{now}");
    assert!(s.addresses("a").get("bridge").is_none());

    // `network connect` adds it back, at once.
    s.ok(&["network", "connect", "bridge", "a"]);
    let back = s.address_on("a", "bridge");
    let now = s.interfaces("a");
    assert!(
        now.contains(&format!("inet {back}/16")) && now.contains("eth1"),
        "{now}"
    );
    s.refused_connect("bridge", "a");

    // Stopped, on its own user network: the start joins nothing (loopback only).
    s.ok(&[
        "create",
        "--name",
        "b",
        "--network",
        "rbt-nd-own",
        "bb",
        "sleep",
        "600",
    ]);
    s.ok(&["network", "disconnect", "rbt-nd-own", "b"]);
    assert_eq!(s.addresses("b"), serde_json::json!({}));
    s.ok(&["start", "b"]);
    assert_eq!(s.exec_ok("b", "ls /sys/class/net"), "lo\n");
    s.ok(&["network", "connect", "rbt-nd-own", "b"]);
    let b_address = s.address_on("b", "rbt-nd-own");
    let now = s.interfaces("b");
    assert!(now.contains(&format!("inet {b_address}/24")), "{now}");
    // The two reach each other there again.
    let out = s.exec_ok("a", &format!("ping -c1 -W 5 {b_address}"));
    assert!(out.contains("1 packets received"), "{out}");

    s.ok(&["rm", "-f", "a", "b"]);
    s.ok(&["network", "rm", "rbt-nd-own"]);
    assert_nothing_left(
        &[&bridge_n, s.net.bridge],
        &[veth(on_bridge), veth(on_n), veth(back), veth(b_address)],
    );
}

impl Host {
    /// Disconnecting `network` from `container` again is docker's error.
    fn refused_disconnect(&self, network: &str, container: &str) {
        let out = self.run(&["network", "disconnect", network, container]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let wanted = format!("container {container} is not connected to the network {network}");
        assert!(!out.status.success() && stderr.contains(&wanted), "{out:?}");
    }

    /// Connecting `network` to `container` again is docker's error.
    fn refused_connect(&self, network: &str, container: &str) {
        let out = self.run(&["network", "connect", network, container]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let wanted = format!("endpoint with name {container} already exists in network {network}");
        assert!(!out.status.success() && stderr.contains(&wanted), "{out:?}");
    }
}

#[test]
fn a_default_bridge_container_connected_to_a_user_network_resolves_its_names() {
    let s = Host::new("rbuildnd2", 202);
    let bridge_n = s.network_on("rbt-nd-dns", "10.227.2.0/24");
    s.httpd(
        "dweb",
        &["--network", "rbt-nd-dns", "--network-alias", "dalias"],
    );
    let client = s.ok(&["run", "-d", "--name", "dclient", "bb", "sleep", "600"]);
    let client = client.trim().to_string();
    let host_servers = s.exec_ok("dclient", "cat /etc/resolv.conf");
    assert!(!host_servers.contains("10.227.2.1"), "{host_servers}");

    // Running: connected, it asks the network's responder, for names and aliases.
    s.ok(&["network", "connect", "rbt-nd-dns", "dclient"]);
    let resolv = s.exec_ok("dclient", "cat /etc/resolv.conf");
    assert!(resolv.contains("nameserver 10.227.2.1\n"), "{resolv}");
    for target in ["dweb", "dalias"] {
        let got = s.exec_ok("dclient", &fetch(&format!("http://{target}/")));
        assert_eq!(got, "hello-dweb\n", "{target}");
    }
    // Disconnected: the host's servers again, and the names are gone.
    let address = s.address_on("dclient", "rbt-nd-dns");
    s.ok(&["network", "disconnect", "rbt-nd-dns", "dclient"]);
    assert_eq!(s.exec_ok("dclient", "cat /etc/resolv.conf"), host_servers);
    let out = s.exec("dclient", "nslookup dweb || echo no-name");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no-name"),
        "{out:?}"
    );

    // Connected while stopped: the start names the responder.
    s.ok(&["stop", "-t", "0", "dclient"]);
    s.ok(&["network", "connect", "rbt-nd-dns", "dclient"]);
    s.ok(&["start", "dclient"]);
    let got = s.exec_ok("dclient", &fetch("http://dalias/"));
    assert_eq!(got, "hello-dweb\n");
    let own = s.address_on("dclient", "rbt-nd-dns");

    s.ok(&["rm", "-f", "dweb", &client]);
    s.ok(&["network", "rm", "rbt-nd-dns"]);
    assert_nothing_left(&[&bridge_n, s.net.bridge], &[veth(address), veth(own)]);
}

/// A running default-bridge container connected to a user network and disconnected again,
/// then stopped, connected while stopped, started, and used the network's names (a fetch by
/// name): its own runner answers on that network once it is the only member left. This
/// failed in about one run of two while the bridge's MAC address followed its ports (see
/// `bug_the_gateway_went_silent_when_the_container_that_lent_the_bridge_its_mac_left`).
#[test]
fn own_runner_answers_on_a_network_connected_while_stopped() {
    let s = Host::new("rbuildnd5", 205);
    let bridge_n = s.network_on("rbt-nd-own2", "10.227.5.0/24");
    s.httpd("oweb", &["--network", "rbt-nd-own2"]);
    s.ok(&["run", "-d", "--name", "oclient", "bb", "sleep", "600"]);
    s.ok(&["network", "connect", "rbt-nd-own2", "oclient"]);
    s.ok(&["network", "disconnect", "rbt-nd-own2", "oclient"]);
    s.ok(&["stop", "-t", "0", "oclient"]);
    s.ok(&["network", "connect", "rbt-nd-own2", "oclient"]);
    s.ok(&["start", "oclient"]);
    assert_eq!(s.exec_ok("oclient", &fetch("http://oweb/")), "hello-oweb\n");
    s.ok(&["rm", "-f", "oweb"]);
    let own = s.address_on("oclient", "rbt-nd-own2");
    let lookup = s.exec_ok("oclient", "cat /etc/resolv.conf; nslookup oclient");
    assert!(lookup.starts_with("nameserver 10.227.5.1\n"), "{lookup}");
    assert!(lookup.contains(&format!("Address: {own}\n")), "{lookup}");
    s.ok(&["rm", "-f", "oclient"]);
    s.ok(&["network", "rm", "rbt-nd-own2"]);
    assert_nothing_left(&[&bridge_n, s.net.bridge], &[veth(own)]);
}

/// The processes whose command line is rbuild's `network-responder` for `bridge`.
fn responders_of(bridge: &str) -> Vec<i32> {
    common::pids_with_args(|args| {
        args.iter().any(|a| a == "network-responder") && args.iter().any(|a| a == bridge)
    })
}

/// Regression: a running container connected to a user network where no other container
/// runs had its resolv.conf pointed at that network's gateway, where nothing answered (its
/// runner answers only on the networks it joined when it started, and `connect` ends at
/// once): it lost every name server. `connect` now leaves a responder of the container's own
/// there, which answers its names at once and ends with its address there (disconnect).
#[test]
fn bug_connect_to_a_network_with_no_running_member_left_no_name_server() {
    let s = Host::new("rbuildnd3", 203);
    let bridge_n = s.network_on("rbt-nd-empty", "10.227.3.0/24");
    s.ok(&["run", "-d", "--name", "lone", "bb", "sleep", "600"]);
    let servers = s.exec_ok("lone", "cat /etc/resolv.conf");
    s.ok(&[
        "network",
        "connect",
        "--alias",
        "lonely",
        "rbt-nd-empty",
        "lone",
    ]);
    assert_eq!(
        responders_of(&bridge_n).len(),
        1,
        "one responder for the connect"
    );
    let own = s.address_on("lone", "rbt-nd-empty");
    let lookup = s.exec_ok(
        "lone",
        "cat /etc/resolv.conf; nslookup lone; nslookup lonely",
    );
    assert!(lookup.starts_with("nameserver 10.227.3.1\n"), "{lookup}");
    assert_eq!(
        lookup.matches(&format!("Address: {own}\n")).count(),
        2,
        "{lookup}"
    );

    // Disconnected: its servers come back, its responder ends (within its poll).
    s.ok(&["network", "disconnect", "rbt-nd-empty", "lone"]);
    assert_eq!(s.exec_ok("lone", "cat /etc/resolv.conf"), servers);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !responders_of(&bridge_n).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the responder outlived the address"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    s.ok(&["rm", "-f", "lone"]);
    s.ok(&["network", "rm", "rbt-nd-empty"]);
    assert_nothing_left(&[&bridge_n, s.net.bridge], &[veth(own)]);
}

/// Regression: a bridge had the MAC address the kernel gave it, which follows the lowest
/// MAC of its ports. When the container owning that port left, the gateway's MAC changed
/// under the other members, whose ARP entry for the gateway (valid for up to half a minute)
/// still named the old one, which nothing received: the gateway went silent for them, its
/// name responder first (a lookup timed out in about one run of two, see
/// `own_runner_answers_on_a_network_connected_while_stopped`). The bridge has an address of
/// its own now, none of its ports', that members coming and going leave as it is.
#[test]
fn bug_the_gateway_went_silent_when_the_container_that_lent_the_bridge_its_mac_left() {
    let s = Host::new("rbuildnd6", 206);
    let bridge_n = s.network_on("rbt-nd-mac", "10.227.6.0/24");
    s.httpd("mweb", &["--network", "rbt-nd-mac"]);
    let client = ["run", "-d", "--name", "mclient", "--network", "rbt-nd-mac"];
    s.ok(&[&client[..], &["bb", "sleep", "600"]].concat());
    // The client asks the gateway (its responder) and so learns its MAC address.
    assert_eq!(s.exec_ok("mclient", &fetch("http://mweb/")), "hello-mweb\n");
    let mac = link_mac(&bridge_n);
    let ports = port_macs(&bridge_n);
    assert_eq!(ports.len(), 2, "{ports:?}");
    assert!(!ports.contains(&mac), "the bridge has a port's MAC {mac}");
    let neigh = s.exec_ok("mclient", "ip neigh show 10.227.6.1");
    assert!(neigh.contains(&mac), "{neigh} {mac}");

    s.ok(&["rm", "-f", "mweb"]);
    assert_eq!(link_mac(&bridge_n), mac, "the gateway's MAC changed");
    let own = s.address_on("mclient", "rbt-nd-mac");
    let lookup = s.exec_ok("mclient", "nslookup mclient");
    assert!(lookup.contains(&format!("Address: {own}\n")), "{lookup}");
    s.ok(&["rm", "-f", "mclient"]);
    s.ok(&["network", "rm", "rbt-nd-mac"]);
    assert_nothing_left(&[&bridge_n, s.net.bridge], &[veth(own)]);
}

/// The MAC address of the host's link `name`.
fn link_mac(name: &str) -> String {
    let path = format!("/sys/class/net/{name}/address");
    std::fs::read_to_string(&path).unwrap().trim().to_string()
}

/// The MAC addresses of the ports of bridge `bridge`.
fn port_macs(bridge: &str) -> Vec<String> {
    std::fs::read_dir(format!("/sys/class/net/{bridge}/brif"))
        .unwrap()
        .map(|port| link_mac(&port.unwrap().file_name().to_string_lossy()))
        .collect()
}
