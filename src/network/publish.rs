//! Publishing a container's ports on the host, as root on the bridge: the sockets bound
//! first ([`super::proxy::bind`]: a taken port stops everything before the container
//! starts), then the DNAT rules ([`super::dnat`]) and the userland proxy. The rules go in on
//! a thread of their own while the container is set up (an `nft` run takes about as long as
//! the container's setup): [`Published::installed`] waits for them before the container is
//! recorded as running, so the ports answer once `run -d` returns. [`Published`]
//! lives in the process that runs the container (the foreground `run`, or the monitor) from
//! before the container starts until it ended; its drop removes the rules and closes the
//! sockets. When that process is killed, the sockets close with it and the rules go with
//! its address lease, at the next rbuild's stale-lease reclaim.
//!
//! Rootless, the user-mode helper (TCP) and rbuild's forwarder process (UDP) forward the
//! ports instead ([`publish_rootless`]).

use super::ports::{PortMapping, Proto};
use super::{dnat, forwarder, proxy, rootless, Attached, NetworkError};

/// A container's published ports while they are forwarded.
pub struct Published {
    /// What is published, the host ports chosen.
    pub ports: Vec<PortMapping>,
    /// The container whose DNAT chains are installed.
    rules: Option<String>,
    /// The thread installing them, until [`Published::installed`] (or the drop) joins it.
    installing: Option<std::thread::JoinHandle<Result<(), NetworkError>>>,
    _proxy: Option<proxy::Proxy>,
    /// Rootless: the UDP sockets bound for the forwarder, until it takes them.
    udp: Option<proxy::Bound>,
    _forwarder: Option<forwarder::Forwarder>,
}

/// Publishes `requested` for container `owner` attached at `attached` (nothing to do
/// without ports, or without a bridge attachment: host and none networks publish nothing).
pub fn publish(
    owner: &str,
    requested: &[PortMapping],
    attached: Option<&Attached>,
) -> Result<Published, NetworkError> {
    let mut published = Published {
        ports: Vec::new(),
        rules: None,
        installing: None,
        _proxy: None,
        udp: None,
        _forwarder: None,
    };
    let Some(attachment) = attached.and_then(|a| a.attachment.as_ref()) else {
        return Ok(published);
    };
    if requested.is_empty() {
        return Ok(published);
    }
    let bound = proxy::bind(requested)?;
    published.ports = bound.mappings.clone();
    published.rules = Some(owner.to_string());
    let (owner, bridge, address) = (
        owner.to_string(),
        attachment.bridge.clone(),
        attachment.address,
    );
    let ports = published.ports.clone();
    published.installing = Some(std::thread::spawn(move || {
        dnat::add(&owner, &bridge, address, &ports)?;
        // After the rules: a client's next datagram finds them, not a NAT to an old address.
        forget_udp_flows(&ports)
    }));
    published._proxy = Some(proxy::start(bound, attachment.address)?);
    Ok(published)
}

/// Deletes the host's conntrack entries of the UDP ports in `ports` (docker's
/// `conntrack -D -p udp --dport`): a UDP flow's entry lives as long as datagrams keep
/// coming, and keeps the NAT it got first, so a client sending from one socket would keep
/// reaching the address the container had before a restart, or no one after it ended.
fn forget_udp_flows(ports: &[PortMapping]) -> Result<(), NetworkError> {
    use rbuild_runtime::network::conntrack::{delete_flows, Flows, IPPROTO_UDP};
    let flows: Vec<Flows> = ports
        .iter()
        .filter(|p| p.proto == Proto::Udp)
        .map(|p| Flows {
            protocol: IPPROTO_UDP,
            address: Some(p.host_ip).filter(|a| !a.is_unspecified()),
            port: p.host_port,
        })
        .collect();
    delete_flows(&flows)?;
    Ok(())
}

/// Publishes `requested` for a rootless container: TCP ports through the user-mode helper
/// it gets here ([`rootless::attach`]), which binds the host's sockets itself and lives as
/// long as the container; UDP ports through rbuild's forwarder ([`super::forwarder`]), which
/// [`Published::forward_into`] starts once the container's namespaces exist. The host ports
/// are chosen (and a taken one reported) by binding them as the root path does; the UDP
/// sockets stay bound for the forwarder, the TCP ones are closed again for the helper: a
/// program that takes such a port in that moment makes the helper fail the start with its
/// own message instead.
pub fn publish_rootless(
    spec: &mut rbuild_runtime::ContainerSpec,
    requested: &[PortMapping],
) -> Result<Published, NetworkError> {
    let (ports, udp) = match requested {
        [] => (Vec::new(), None),
        _ => {
            let bound = proxy::bind(requested).map_err(privileged_port)?;
            (bound.mappings.clone(), Some(bound.only(Proto::Udp)))
        }
    };
    let tcp: Vec<rootless::PortForward> = ports
        .iter()
        .filter(|p| p.proto == Proto::Tcp)
        .map(Into::into)
        .collect();
    rootless::attach(spec, &tcp)?;
    Ok(Published {
        ports,
        rules: None,
        installing: None,
        _proxy: None,
        udp: udp.filter(|b| !b.mappings.is_empty()),
        _forwarder: None,
    })
}

impl Published {
    /// Waits until the DNAT rules are in (nothing to wait for without them): the ports
    /// answer from here on. A failure leaves the caller to drop everything, the container
    /// included, before it is recorded.
    pub fn installed(&mut self) -> Result<(), NetworkError> {
        if let Some(installing) = self.installing.take() {
            installing.join().map_err(|_| {
                NetworkError::Nft("the thread adding the port rules panicked".into())
            })??;
            crate::killpoint::reached("ports-published");
        }
        Ok(())
    }

    /// Rootless: starts forwarding the UDP ports into the namespaces of the container's
    /// process `pid`, now that they exist (nothing to do otherwise).
    pub fn forward_into(&mut self, pid: i32) -> Result<(), NetworkError> {
        if let Some(udp) = self.udp.take() {
            self._forwarder = Some(forwarder::start(udp, pid)?);
        }
        Ok(())
    }
}

/// A port the user may not bind (below the kernel's `ip_unprivileged_port_start`, 1024 by
/// default): said so, rather than a bare "Permission denied".
fn privileged_port(error: NetworkError) -> NetworkError {
    match error {
        NetworkError::Io { path, error }
            if error.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            NetworkError::Config(format!(
                "cannot publish {}: {error}; ports below net.ipv4.ip_unprivileged_port_start \
                 need root (docker's rootless mode has the same limit)",
                path.display()
            ))
        }
        other => other,
    }
}

impl Drop for Published {
    fn drop(&mut self) {
        // Rules still going in are removed once they are.
        if let Some(installing) = self.installing.take() {
            let _ = installing.join();
        }
        if let Some(owner) = self.rules.take() {
            let _ = dnat::remove(&owner);
            let _ = forget_udp_flows(&self.ports);
        }
    }
}
