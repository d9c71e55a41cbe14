//! `network connect` and `network disconnect` of a container: docker's rules about which
//! containers can be connected, and the container's record (its
//! [`ContainerRecord::connected`] endpoints). The network side, and how a running container
//! gets its new interface, is [`crate::network::connect`]'s.

use std::net::Ipv4Addr;

use rbuild_runtime::NetworkMode;

use super::{spec_file, ContainerError};
use crate::network::connect::{self as net, Endpoint};
use crate::network::NetworkError;
use crate::store::{ContainerRecord, Store};

/// What `network connect` was asked for.
#[derive(Debug, Clone)]
pub struct ConnectRequest {
    /// Network name or ID (prefix).
    pub network: String,
    /// Container name or ID (prefix).
    pub container: String,
    pub aliases: Vec<String>,
    pub ip: Option<Ipv4Addr>,
}

/// Refuses containers that docker cannot connect: those sharing another's or the host's
/// network namespace, and those with `--network none`.
fn check_mode(store: &Store, record: &ContainerRecord) -> Result<(), ContainerError> {
    let shared = record
        .network
        .as_deref()
        .is_some_and(|n| n.starts_with(super::network_join::PREFIX));
    let host = record.network.is_none()
        && spec_file::load(store, &record.id)?.network == NetworkMode::Host;
    if shared || host {
        return Err(NetworkError::Refused(
            "container sharing network namespace with another container or host cannot be \
             connected to any other network",
        )
        .into());
    }
    if record.network.is_none() {
        return Err(no_network().into());
    }
    Ok(())
}

fn no_network() -> NetworkError {
    NetworkError::Refused(
        "container cannot be connected to multiple networks with one of the networks in \
         private (none) mode",
    )
}

/// The networks the container is on: its own, then those connected since.
fn on_networks(record: &ContainerRecord) -> impl Iterator<Item = &str> {
    record
        .network
        .as_deref()
        .into_iter()
        .chain(record.connected.iter().map(|e| e.network.as_str()))
}

/// `network connect`: adds the network to the container's record; a running container gets
/// its interface, address and names there at once, a stopped one at its next start.
/// Returns the interface made in a running container.
pub fn connect(store: &Store, request: &ConnectRequest) -> Result<Option<String>, ContainerError> {
    match request.network.as_str() {
        "host" => {
            return Err(NetworkError::Refused(
                "container cannot be disconnected from host network or connected to host network",
            )
            .into())
        }
        "none" => return Err(no_network().into()),
        _ => {}
    }
    let record = super::find(store, &request.container)?;
    check_mode(store, &record)?;
    let mut endpoint = Endpoint {
        network: request.network.clone(),
        aliases: request.aliases.clone(),
        ip: request.ip,
    };
    endpoint.network = net::check(store.root(), &endpoint)?;
    if on_networks(&record).any(|n| n == endpoint.network) {
        return Err(NetworkError::EndpointExists {
            container: record.name,
            network: endpoint.network,
        }
        .into());
    }
    let add = |r: &mut ContainerRecord| {
        if !r.connected.iter().any(|e| e.network == endpoint.network) {
            r.connected.push(endpoint.clone());
        }
    };
    let (Some(pid), Some(runner), true) = (
        record.pid.and_then(|p| u32::try_from(p).ok()),
        record.runner_pid,
        store.container_running(&record),
    ) else {
        store.modify_container(&record.id, add)?;
        return Ok(None);
    };
    let names = super::running::dns_names(&record, &endpoint.aliases);
    let connecting = net::connect_running(store.root(), &endpoint, &record.id, names, pid)?;
    let interface = connecting.interface.clone();
    store.modify_container(&record.id, add)?;
    connecting.hand_over(runner)?;
    Ok(Some(interface))
}

/// `network disconnect`: removes the network from the container's record and, when it runs,
/// its interface, address and names there. With `force`, a network that no longer exists is
/// still taken off the record.
pub fn disconnect(
    store: &Store,
    network: &str,
    container: &str,
    force: bool,
) -> Result<(), ContainerError> {
    let record = super::find(store, container)?;
    let probe = Endpoint {
        network: network.to_string(),
        aliases: Vec::new(),
        ip: None,
    };
    let name = match net::check(store.root(), &probe) {
        Ok(name) => name,
        Err(NetworkError::NoSuchNetwork(_)) if force => network.to_string(),
        Err(e) => return Err(e.into()),
    };
    if record.network.as_deref() == Some(name.as_str()) {
        return Err(NetworkError::Config(format!(
            "container {} was created on network {name}: rbuild disconnects only the networks \
             `network connect` added (re-create the container with another --network)",
            record.name
        ))
        .into());
    }
    if !record.connected.iter().any(|e| e.network == name) {
        return Err(NetworkError::NotConnected {
            container: record.name,
            network: name,
        }
        .into());
    }
    if store.container_running(&record) {
        match net::disconnect(store.root(), &name, &record.id) {
            Err(NetworkError::NoSuchNetwork(_)) if force => {}
            other => drop(other?),
        }
    }
    store.modify_container(&record.id, |r| r.connected.retain(|e| e.network != name))?;
    Ok(())
}
