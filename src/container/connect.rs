//! `network connect` and `network disconnect` of a container: docker's rules about which
//! containers can be connected, and the container's record (its
//! [`ContainerRecord::connected`] endpoints, and [`ContainerRecord::left_own_network`] once
//! its own network was disconnected). The network side, and how a running container
//! gets its new interface, is [`crate::network::connect`]'s. Also which name server the
//! container asks ([`configure_dns`]), which a connect or disconnect can change.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

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

/// The container's own network (`--network`, or `bridge`), unless `network disconnect`
/// took it off that one.
pub(super) fn own_network(record: &ContainerRecord) -> Option<&str> {
    record
        .network
        .as_deref()
        .filter(|_| !record.left_own_network)
}

/// The networks the container is on: its own, then those connected since.
fn on_networks(record: &ContainerRecord) -> impl Iterator<Item = &str> {
    own_network(record)
        .into_iter()
        .chain(record.connected.iter().map(|e| e.network.as_str()))
}

/// Makes the container's name server ([`net::name_server`]) that of its `spec` at a start,
/// unless `--dns` named servers (which are then asked directly: its networks' names do not
/// resolve).
pub(super) fn configure_dns(record: &ContainerRecord, spec: &mut rbuild_runtime::ContainerSpec) {
    if let (true, Some(server)) = (spec.dns.is_empty(), net::name_server(on_networks(record))) {
        spec.dns = vec![server.to_string()];
    }
}

/// Points the running container's (PID 1 `pid`) `/etc/resolv.conf` at its name server
/// after its record went from `before` to `after`, when that changed and `--dns` named no
/// servers: docker rewrites it too when a container gains or loses its embedded DNS (the
/// container's own changes to the file are lost then). Written in place, through the
/// container's root (`/proc/PID/root`, symlinks resolved inside it), so the file bound over
/// its `/etc/resolv.conf` is the one that changes.
fn follow_name_server(
    before: &ContainerRecord,
    after: &ContainerRecord,
    pid: u32,
) -> Result<(), ContainerError> {
    let now = net::name_server(on_networks(after));
    if !after.network_extras.dns.is_empty() || net::name_server(on_networks(before)) == now {
        return Ok(());
    }
    let servers: Vec<String> = now.iter().map(ToString::to_string).collect();
    let content =
        rbuild_runtime::container_resolv_conf(false, &servers, &after.network_extras.dns_search);
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    let path = super::view::resolve(&root, Path::new("/etc/resolv.conf"), true);
    std::fs::write(&path, content).map_err(super::io_err(path))
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
    let after = store.modify_container(&record.id, add)?;
    // Its lease goes to its runner, and a responder of its own answers there while it runs
    // (its runner answers only on the networks it joined at its start).
    connecting.hand_over(runner)?;
    if let Some(after) = after {
        follow_name_server(&record, &after, pid)?;
    }
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
    // Its own network, as docker allows: a later start does not join it, `connect` adds it
    // back (as a connected one).
    let own = own_network(&record) == Some(name.as_str());
    if !own && !record.connected.iter().any(|e| e.network == name) {
        return Err(NetworkError::NotConnected {
            container: record.name,
            network: name,
        }
        .into());
    }
    if own && crate::network::rootless::applies() {
        return Err(NetworkError::Rootless.into());
    }
    let running = store.container_running(&record);
    if running {
        match net::disconnect(store.root(), &name, &record.id, own) {
            Err(NetworkError::NoSuchNetwork(_)) if force => {}
            other => drop(other?),
        }
    }
    let after = store.modify_container(&record.id, |r| match own {
        // The ports were published there: their rules went with it.
        true => {
            r.left_own_network = true;
            r.published_ports.clear();
        }
        false => r.connected.retain(|e| e.network != name),
    })?;
    let pid = record.pid.and_then(|p| u32::try_from(p).ok());
    if let (true, Some(after), Some(pid)) = (running, after, pid) {
        // The default route went with the own network's eth0: the first connected network
        // takes it, as it would at the next start.
        if let (true, Some(next)) = (own, after.connected.first()) {
            net::route_via(store.root(), &next.network, pid)?;
        }
        follow_name_server(&record, &after, pid)?;
    }
    Ok(())
}
