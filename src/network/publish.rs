//! Publishing a container's ports on the host, as root on the bridge: the sockets bound
//! first ([`super::proxy::bind`]: a taken port stops everything before the container
//! starts), then the DNAT rules ([`super::dnat`]) and the userland proxy. [`Published`]
//! lives in the process that runs the container (the foreground `run`, or the monitor) from
//! before the container starts until it ended; its drop removes the rules and closes the
//! sockets. When that process is killed, the sockets close with it and the rules go with
//! its address lease, at the next rbuild's stale-lease reclaim.
//!
//! Rootless, the user-mode helper forwards the ports instead ([`publish_rootless`]).

use super::ports::PortMapping;
use super::{dnat, proxy, rootless, Attached, NetworkError};

/// A container's published ports while they are forwarded.
pub struct Published {
    /// What is published, the host ports chosen.
    pub ports: Vec<PortMapping>,
    /// The container whose DNAT chains are installed.
    rules: Option<String>,
    _proxy: Option<proxy::Proxy>,
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
        _proxy: None,
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
    dnat::add(
        owner,
        &attachment.bridge,
        attachment.address,
        &published.ports,
    )?;
    crate::killpoint::reached("ports-published");
    published._proxy = Some(proxy::start(bound, attachment.address)?);
    Ok(published)
}

/// Publishes `requested` for a rootless container through the user-mode helper it gets
/// here ([`rootless::attach`]), which binds the host's sockets itself and lives as long as
/// the container. The host ports are chosen (and a taken one reported) by binding them as
/// the root path does, then closed again for the helper: a program that takes a port in
/// that moment makes the helper fail the start with its own message instead.
pub fn publish_rootless(
    spec: &mut rbuild_runtime::ContainerSpec,
    requested: &[PortMapping],
) -> Result<Published, NetworkError> {
    // The sockets close at the end of this statement; only the chosen ports are kept.
    let ports = match requested {
        [] => Vec::new(),
        _ => proxy::bind(requested).map_err(privileged_port)?.mappings,
    };
    let forwards: Vec<rootless::PortForward> = ports.iter().map(Into::into).collect();
    rootless::attach(spec, &forwards)?;
    Ok(Published {
        ports,
        rules: None,
        _proxy: None,
    })
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
        if let Some(owner) = self.rules.take() {
            let _ = dnat::remove(&owner);
        }
    }
}
