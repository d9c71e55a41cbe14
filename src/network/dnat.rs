//! The nftables side of published ports: DNAT from the host's addresses to a container.
//!
//! Per container, three chains in rbuild's table (`ip rbuild`, [`super::nat`]), named after
//! the first 12 hex digits of the container's ID so that they can be found again from its
//! address lease alone (after a killed rbuild: [`remove`] from the stale-lease reclaim):
//!
//! - `ports-ID-pre` (prerouting): what arrives for a local address and a published port
//!   goes to the container (from other hosts and from containers, as docker's DOCKER chain);
//! - `ports-ID-out` (output): the same for the host's own connections to its non-loopback
//!   addresses (loopback cannot be DNATed to another host without `route_localnet`: the
//!   userland proxy serves 127.0.0.1, as docker-proxy does);
//! - `ports-ID-post` (postrouting): a container reaching a published port of the bridge
//!   (hairpin) is masqueraded, so that the answer comes back through the host.

use std::net::Ipv4Addr;

use super::nat::{nft, TABLE};
use super::ports::PortMapping;
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
    let mut hairpins = Vec::new();
    for p in ports {
        let proto = p.proto.as_str();
        let (host_port, port) = (p.host_port, p.container_port);
        let to = format!("{proto} dport {host_port} dnat to {target}:{port}");
        if !p.host_ip.is_loopback() {
            let daddr = match p.host_ip.is_unspecified() {
                true => String::new(),
                false => format!("ip daddr {} ", p.host_ip),
            };
            script.push_str(&format!(
                "add rule {TABLE} {prefix}-pre fib daddr type local {daddr}{to}\n\
                 add rule {TABLE} {prefix}-out fib daddr type local ip daddr != 127.0.0.0/8 {daddr}{to}\n"
            ));
        }
        if hairpins.contains(&(p.proto, port)) {
            continue;
        }
        hairpins.push((p.proto, port));
        script.push_str(&format!(
            "add rule {TABLE} {prefix}-post iifname \"{bridge}\" oifname \"{bridge}\" \
             ip daddr {target} {proto} dport {port} ct status dnat masquerade\n"
        ));
    }
    nft(&script)
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
