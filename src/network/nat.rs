//! NAT and forwarding for rbuild's bridges, through nftables (the `nft` binary, Debian's
//! `nftables` package, fed a ruleset on stdin: one atomic transaction per change).
//!
//! Everything lives in the table `ip rbuild`: per bridge `B`, a chain `post-B` (masquerade
//! what leaves the bridge's subnet for another interface) and a chain `fwd-B` (accept
//! forwarding from the bridge and replies to it, for hosts whose forward policy is drop).
//! The table goes when its last bridge goes.
//!
//! Isolation between networks, as docker's: the set `bridges` names every rbuild bridge, and
//! `fwd-B` first drops what comes from `B` for another of them (each direction is dropped by
//! its sender's chain). An `--internal` network has no masquerade and drops all forwarding
//! to and from other interfaces.
//!
//! A chain `guard-B` (prerouting, before conntrack) drops what arrives from `B` for
//! 127.0.0.0/8: published ports turn the bridge's `route_localnet` on ([`super::dnat`]), which
//! would otherwise let a container reach the host's loopback-only services.

use std::io::Write;
use std::process::{Command, Stdio};

use super::subnet::Subnet;
use super::NetworkError;

pub(super) const TABLE: &str = "ip rbuild";

/// The guard chain's hook: before conntrack, so that it sees the packets' own destination
/// (answers to DNATed loopback connections come to the bridge's address).
const GUARD_HOOK: &str = "type filter hook prerouting priority raw; policy accept;";

/// Adds (or resets) the chains of `bridge` (see the module docs for `internal`).
pub(super) fn setup(bridge: &str, subnet: &Subnet, internal: bool) -> Result<(), NetworkError> {
    let mut script = format!(
        "add table {TABLE}\n\
         add set {TABLE} bridges {{ type ifname; }}\n\
         add element {TABLE} bridges {{ \"{bridge}\" }}\n\
         add chain {TABLE} post-{bridge} {{ type nat hook postrouting priority srcnat; policy accept; }}\n\
         flush chain {TABLE} post-{bridge}\n\
         add chain {TABLE} fwd-{bridge} {{ type filter hook forward priority filter; policy accept; }}\n\
         flush chain {TABLE} fwd-{bridge}\n\
         add rule {TABLE} fwd-{bridge} iifname \"{bridge}\" oifname != \"{bridge}\" oifname @bridges drop\n\
         add chain {TABLE} guard-{bridge} {{ {GUARD_HOOK} }}\n\
         flush chain {TABLE} guard-{bridge}\n\
         add rule {TABLE} guard-{bridge} iifname \"{bridge}\" ip daddr 127.0.0.0/8 drop\n"
    );
    if internal {
        script.push_str(&format!(
            "add rule {TABLE} fwd-{bridge} iifname \"{bridge}\" oifname != \"{bridge}\" drop\n\
             add rule {TABLE} fwd-{bridge} oifname \"{bridge}\" iifname != \"{bridge}\" drop\n"
        ));
    } else {
        script.push_str(&format!(
            "add rule {TABLE} post-{bridge} ip saddr {subnet} oifname != \"{bridge}\" masquerade\n\
             add rule {TABLE} fwd-{bridge} iifname \"{bridge}\" accept\n\
             add rule {TABLE} fwd-{bridge} oifname \"{bridge}\" ct state established,related accept\n"
        ));
    }
    nft(&script)
}

/// Removes the chains of `bridge`, and the whole table when `last` (no other bridge of
/// rbuild's is in use). Nothing there is fine.
pub(super) fn teardown(bridge: &str, last: bool) -> Result<(), NetworkError> {
    // `add` first: deleting what does not exist fails, adding what exists does not.
    let script = if last {
        format!("add table {TABLE}\ndelete table {TABLE}\n")
    } else {
        format!(
            "add table {TABLE}\n\
             add chain {TABLE} post-{bridge} {{ type nat hook postrouting priority srcnat; policy accept; }}\n\
             flush chain {TABLE} post-{bridge}\n\
             delete chain {TABLE} post-{bridge}\n\
             add chain {TABLE} fwd-{bridge} {{ type filter hook forward priority filter; policy accept; }}\n\
             flush chain {TABLE} fwd-{bridge}\n\
             delete chain {TABLE} fwd-{bridge}\n\
             add chain {TABLE} guard-{bridge} {{ {GUARD_HOOK} }}\n\
             flush chain {TABLE} guard-{bridge}\n\
             delete chain {TABLE} guard-{bridge}\n\
             add set {TABLE} bridges {{ type ifname; }}\n\
             add element {TABLE} bridges {{ \"{bridge}\" }}\n\
             delete element {TABLE} bridges {{ \"{bridge}\" }}\n"
        )
    };
    nft(&script)
}

pub(super) fn nft(script: &str) -> Result<(), NetworkError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| NetworkError::Nft(format!("cannot run nft (Debian package nftables): {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| NetworkError::Nft(e.to_string()))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| NetworkError::Nft(e.to_string()))?;
    if !output.status.success() {
        return Err(NetworkError::Nft(
            String::from_utf8_lossy(&output.stderr).trim().to_string(),
        ));
    }
    Ok(())
}

/// Turns on IPv4 forwarding (containers' traffic leaves through the host), as docker does.
pub(super) fn enable_forwarding() -> Result<(), NetworkError> {
    let path = "/proc/sys/net/ipv4/ip_forward";
    if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    std::fs::write(path, "1").map_err(|e| NetworkError::Io {
        path: path.into(),
        error: e,
    })
}
