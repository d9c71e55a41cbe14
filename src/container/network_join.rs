//! docker's `--network container:NAME`: the container shares the network namespace of
//! another, running one (its interfaces, addresses, ports and routes), instead of getting
//! one of its own. The namespace is looked up at each start (the other container's PID 1);
//! the name server follows: on a user network it is that network's responder.

use rbuild_runtime::ContainerSpec;

use super::ContainerError;
use crate::store::Store;

/// The network mode's prefix (`container:NAME`).
pub const PREFIX: &str = "container:";

/// Points `spec` at the network namespace of the running container `target`.
pub(super) fn apply(
    store: &Store,
    target: &str,
    spec: &mut ContainerSpec,
) -> Result<(), ContainerError> {
    let target = store.resolve_container(target)?;
    let pid = target
        .pid
        .and_then(|pid| u32::try_from(pid).ok())
        .filter(|_| store.container_running(&target))
        .ok_or_else(|| {
            ContainerError::StartFailed(format!(
                "cannot join the network of container {}: it is not running",
                target.name
            ))
        })?;
    spec.join_network = Some(pid);
    spec.bridge = None;
    let user_network = target.network.as_deref().filter(|n| *n != "bridge");
    if let (true, Some(network)) = (spec.dns.is_empty(), user_network) {
        spec.dns = vec![crate::network::networks::find(network)?.gateway.to_string()];
    }
    Ok(())
}
