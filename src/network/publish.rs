//! Publishing a container's ports on the host, as root on the bridge: the sockets bound
//! first ([`super::proxy::bind`]: a taken port stops everything before the container
//! starts), then the DNAT rules ([`super::dnat`]) and the userland proxy. [`Published`]
//! lives in the process that runs the container (the foreground `run`, or the monitor) from
//! before the container starts until it ended; its drop removes the rules and closes the
//! sockets. When that process is killed, the sockets close with it and the rules go with
//! its address lease, at the next rbuild's stale-lease reclaim.

use super::ports::PortMapping;
use super::{dnat, proxy, Attached, NetworkError};

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

impl Drop for Published {
    fn drop(&mut self) {
        if let Some(owner) = self.rules.take() {
            let _ = dnat::remove(&owner);
        }
    }
}
