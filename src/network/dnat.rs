//! The nftables side of published ports: DNAT from the host's addresses to a container.
//!
//! Per container, three chains in rbuild's table (`ip rbuild`, [`super::nat`]), named after
//! the first 12 hex digits of the container's ID so that they can be found again from its
//! address lease alone (after a killed rbuild: [`remove`] from the stale-lease reclaim):
//!
//! - `ports-ID-pre` (prerouting): what arrives for a local address and a published port
//!   goes to the container (from other hosts and from containers, as docker's DOCKER chain);
//! - `ports-ID-out` (output): the same for the host's own connections to its addresses,
//!   TCP to 127.0.0.1 included (as docker with `--userland-proxy=false`): the kernel
//!   forwards them, at about twice the userland proxy's throughput. Loopback addresses may
//!   leave through the bridge only with its `route_localnet` on ([`enable_route_localnet`]),
//!   which this turns on; the bridge's guard chain ([`super::nat`]) drops what a container
//!   sends to 127.0.0.0/8 through it. UDP to 127.0.0.1 ([`loopback_by_kernel`]), and TCP
//!   where `route_localnet` cannot be set, are the userland proxy's ([`super::proxy`]),
//!   which also serves flows that began before the rules went in;
//! - `ports-ID-post` (postrouting): a container reaching a published port of the bridge
//!   (hairpin), or the host from a loopback address, is masqueraded, so that the answer
//!   comes back through the host.

use std::net::Ipv4Addr;

use super::nat::{nft, TABLE};
use super::ports::{PortMapping, Proto};
use super::NetworkError;

/// The chains' common prefix for `owner` (a container ID), `None` for owners that are not
/// containers (a RUN step publishes nothing).
fn prefix(owner: &str) -> Option<String> {
    let id = owner.get(..12)?;
    id.bytes()
        .all(|b| b.is_ascii_hexdigit())
        .then(|| format!("ports-{id}"))
}

const HOOKS: [(&str, &str); 3] = [
    ("pre", "type nat hook prerouting priority -100"),
    ("out", "type nat hook output priority -100"),
    ("post", "type nat hook postrouting priority 100"),
];

/// Installs (or replaces) `owner`'s chains forwarding `ports` (host ports chosen) to
/// `target` on `bridge`, in one transaction.
pub(super) fn add(
    owner: &str,
    bridge: &str,
    target: Ipv4Addr,
    ports: &[PortMapping],
) -> Result<(), NetworkError> {
    let Some(prefix) = prefix(owner) else {
        return Ok(());
    };
    let mut script = format!("add table {TABLE}\n");
    for (suffix, hook) in HOOKS {
        script.push_str(&format!(
            "add chain {TABLE} {prefix}-{suffix} {{ {hook}; policy accept; }}\n\
             flush chain {TABLE} {prefix}-{suffix}\n"
        ));
    }
    let localnet = ports.iter().any(loopback_by_kernel) && enable_route_localnet(bridge);
    let mut hairpins = Vec::new();
    for p in ports {
        let proto = p.proto.as_str();
        let (host_port, port) = (p.host_port, p.container_port);
        let to = format!("{proto} dport {host_port} dnat to {target}:{port}");
        let daddr = match p.host_ip.is_unspecified() {
            true => String::new(),
            false => format!("ip daddr {} ", p.host_ip),
        };
        if !p.host_ip.is_loopback() {
            script.push_str(&format!(
                "add rule {TABLE} {prefix}-pre fib daddr type local {daddr}{to}\n"
            ));
        }
        let loopback = localnet && loopback_by_kernel(p);
        let out = match (loopback, p.host_ip.is_loopback()) {
            (true, _) => Some(""),
            (false, false) => Some("ip daddr != 127.0.0.0/8 "),
            (false, true) => None, // the userland proxy's
        };
        if let Some(not_loopback) = out {
            script.push_str(&format!(
                "add rule {TABLE} {prefix}-out fib daddr type local {not_loopback}{daddr}{to}\n"
            ));
        }
        if hairpins.contains(&(p.proto, port)) {
            continue;
        }
        hairpins.push((p.proto, port));
        let what = format!("ip daddr {target} {proto} dport {port} ct status dnat masquerade");
        script.push_str(&format!(
            "add rule {TABLE} {prefix}-post iifname \"{bridge}\" oifname \"{bridge}\" {what}\n"
        ));
        // Any of the port's mappings may be the loopback one.
        if localnet && p.proto == Proto::Tcp {
            script.push_str(&format!(
                "add rule {TABLE} {prefix}-post oifname \"{bridge}\" ip saddr 127.0.0.0/8 {what}\n"
            ));
        }
    }
    nft(&script)
}

/// Whether the host's connections to `p` on 127.0.0.1 are DNATed: TCP ones published on
/// loopback or every address. UDP stays with the userland proxy: a UDP flow's conntrack
/// entry outlives the container (30 s and more after its last datagram) and would keep
/// sending a client's datagrams to the old container's address after a restart, where the
/// proxy's flows end with the container.
fn loopback_by_kernel(p: &PortMapping) -> bool {
    p.proto == Proto::Tcp && (p.host_ip.is_unspecified() || p.host_ip.is_loopback())
}

/// Lets packets from and to 127.0.0.0/8 be routed through `bridge` (the host's connections
/// to its loopback, DNATed to a container); false when the kernel refuses (the userland
/// proxy serves them then). Stays on while the bridge exists: it goes with the bridge.
fn enable_route_localnet(bridge: &str) -> bool {
    let path = format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet");
    std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == "1")
        || std::fs::write(&path, "1").is_ok()
}

/// Removes `owner`'s chains; none there (never published, or already removed with the
/// table) is fine, and does not create the table again.
pub(super) fn remove(owner: &str) -> Result<(), NetworkError> {
    let Some(prefix) = prefix(owner) else {
        return Ok(());
    };
    let mut script = String::new();
    for (suffix, _) in HOOKS {
        script.push_str(&format!(
            "flush chain {TABLE} {prefix}-{suffix}\ndelete chain {TABLE} {prefix}-{suffix}\n"
        ));
    }
    match nft(&script) {
        Err(NetworkError::Nft(message)) if message.contains("No such file or directory") => Ok(()),
        other => other,
    }
}
