//! Published UDP ports of rootless containers: rbuild's own forwarder process instead of the
//! user-mode helper, because neither helper of Debian 12 answers a client on the host's
//! loopback: pasta (0.0~git20230309) loses the replies of a UDP port published on another
//! port number than the container's, and slirp4netns drops replies to a loopback client
//! once `--disable-host-loopback` (which keeps the host's loopback services out of the
//! container's reach) is set. TCP ports stay with the helper ([`super::rootless`]).
//!
//! The forwarder is `rbuild` itself ([`COMMAND`], hidden), started by the process that runs
//! the container once the container's namespaces exist. It receives the host sockets that
//! the runner bound before the container started (a taken port already failed the start),
//! joins the container's user and network namespaces (its user created them) and serves the
//! sockets with the userland proxy of the root path ([`super::proxy`]), which then sends
//! each client's datagrams to the container's 127.0.0.1 from a socket of its own inside the
//! container (as podman's rootlessport). It dies with the runner (parent-death signal) and is
//! killed when the container ends ([`Forwarder`]'s drop).

use std::io::{BufRead, BufReader, Read};
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};

use rbuild_runtime::network::forward;

use super::ports::PortMapping;
use super::{proxy, NetworkError};

/// The hidden subcommand that runs the forwarder.
pub const COMMAND: &str = "container-port-forwarder";

/// What the forwarder prints once it serves.
const READY: &str = "ready";

/// A running forwarder; dropping it kills and reaps it (its sockets close with it).
pub struct Forwarder {
    child: Child,
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn failed(what: impl std::fmt::Display) -> NetworkError {
    NetworkError::Forwarder(what.to_string())
}

/// Starts the forwarder of `bound` into the namespaces of the container's process `pid`
/// and returns once it serves.
pub(super) fn start(bound: proxy::Bound, pid: i32) -> Result<Forwarder, NetworkError> {
    let (mappings, fds) = bound.into_fds();
    let ports = serde_json::to_string(&mappings).map_err(failed)?;
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg(COMMAND)
        .arg(std::process::id().to_string())
        .arg(pid.to_string())
        .arg(ports)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = forward::spawn_with_sockets(&mut cmd, &fds).map_err(failed)?;
    drop(fds); // the forwarder holds them now
    let mut line = String::new();
    let stdout = child.stdout.take().expect("piped");
    let _ = BufReader::new(stdout).read_line(&mut line);
    if line.trim_end() != READY {
        let _ = child.kill();
        let status = child.wait();
        let mut stderr = String::new();
        if let Some(mut err) = child.stderr.take() {
            let _ = err.read_to_string(&mut stderr);
        }
        return Err(failed(format!(
            "{} ({status:?})",
            stderr.trim().lines().last().unwrap_or("it ended")
        )));
    }
    Ok(Forwarder { child })
}

/// The forwarder's proxy while it serves.
pub struct Serving(#[allow(dead_code)] proxy::Proxy);

/// The forwarder process's work (single-threaded until here): takes the sockets of
/// `mappings` from its parent `parent`, joins the namespaces of the container's process
/// `pid` and serves them; the caller then says [`ready`] and waits to be killed.
pub fn serve(parent: u32, pid: u32, mappings: Vec<PortMapping>) -> Result<Serving, NetworkError> {
    let fds = forward::inherited(mappings.len());
    forward::enter_user_and_network_of(pid)?;
    forward::die_with_parent(parent).map_err(failed)?;
    let bound = proxy::Bound::from_fds(mappings, fds);
    Ok(Serving(proxy::start(bound, Ipv4Addr::LOCALHOST)?))
}

/// The line the forwarder prints when it serves (read by [`start`]).
pub fn ready() -> &'static str {
    READY
}
