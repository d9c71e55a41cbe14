//! docker's `network connect` and `network disconnect`: more networks for a container than
//! the one it was created on, kept in its record as [`Endpoint`]s.
//!
//! At each start a container joins its own network (its `--network`, `eth0`, with the
//! default route and, on a user network, that network's name responder as its name server)
//! and then its endpoints in order ([`join`]): `eth1`, `eth2`, … with their subnet's route
//! only, made by the runtime before PID 1 runs ([`rbuild_runtime::ContainerSpec::extra_bridges`]).
//!
//! A running container is connected by the CLI ([`connect_running`]): it takes the lease as
//! its own (so that a CLI killed midway leaves a stale lease, reclaimed with its veth by the
//! next rbuild: see [`super::state`]), makes the veth into the container's namespace, and,
//! once the container's record names the endpoint, hands the lease to the container's runner
//! (the monitor, or the foreground `run`), whose lease it then is: released when the
//! container's process ends ([`leave`]), or reclaimed when the runner dies. Disconnecting
//! ([`disconnect`]) deletes the host end of the veth (the kernel removes both ends) and the
//! lease, whoever holds it.
//!
//! Names: on a user network the endpoint's lease carries the container's name, its
//! endpoint aliases and its short ID, which every responder of that network answers with.
//! A responder answers a container with the addresses of the containers on any network the
//! asking container is on ([`super::dns`]), so a container reaches a connected network's
//! members by name through the responder it asks: that of its first user network
//! ([`name_server`]), also when its own network is the default bridge, which has none.
//!
//! The network a container was created on can be disconnected too (docker allows it): a
//! later start joins only the connected networks, the first of them as `eth0`, and a running
//! container's default route moves to that one at once ([`route_via`]).

use std::net::Ipv4Addr;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::state::Locked;
use super::{config, networks, Attached, NetworkError, Want};

/// A network the container was connected to after it was created (`network connect`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The network's name (`bridge` for the default one).
    pub network: String,
    /// `--alias`: more names the container answers to on this network.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `--ip`: the address it gets there at each start (any free one when `None`).
    #[serde(default)]
    pub ip: Option<Ipv4Addr>,
}

/// A network as `connect` sees it: its bridge, and its record for a user network.
struct Target {
    config: config::BridgeConfig,
    user: Option<networks::NetworkRecord>,
}

fn target(store_root: &Path, network: &str) -> Result<Target, NetworkError> {
    Ok(match network {
        "bridge" => Target {
            config: config::default_bridge(store_root)?,
            user: None,
        },
        name => {
            let record = networks::find(name)?;
            Target {
                config: config::BridgeConfig {
                    bridge: record.bridge(),
                    subnet: Some(record.subnet),
                    linger: config::linger(None)?,
                },
                user: Some(record),
            }
        }
    })
}

/// The canonical name of `network` (a user network's name for its ID or ID prefix), after
/// refusing what docker refuses for `endpoint`: an address or aliases on the default bridge,
/// an address outside the network's subnet.
pub fn check(store_root: &Path, endpoint: &Endpoint) -> Result<String, NetworkError> {
    let target = target(store_root, &endpoint.network)?;
    let Some(record) = target.user else {
        if endpoint.ip.is_some() {
            return Err(NetworkError::Refused(
                "user specified IP address is supported on user defined networks only",
            ));
        }
        if !endpoint.aliases.is_empty() {
            return Err(NetworkError::Refused(
                "network-scoped alias is supported only for containers in user defined networks",
            ));
        }
        return Ok("bridge".to_string());
    };
    match endpoint.ip {
        Some(ip) if !record.subnet.hosts().any(|h| h == ip) => {
            return Err(NetworkError::AddressOutside(ip))
        }
        Some(ip) if ip == record.gateway => return Err(NetworkError::AddressInUse(ip)),
        _ => {}
    }
    Ok(record.name)
}

/// An address for `owner` on `endpoint`'s network; on a user network, with `responder`,
/// this process also runs its share of the network's name responder while the value lives
/// (a container's runner does; the CLI's `network connect`, which hands the lease over,
/// does not).
fn attach_endpoint(
    store_root: &Path,
    endpoint: &Endpoint,
    owner: &str,
    names: Vec<String>,
    responder: bool,
) -> Result<Attached, NetworkError> {
    let target = target(store_root, &endpoint.network)?;
    let internal = target.user.as_ref().is_some_and(|r| r.internal);
    // Names are answered on user networks only, as on the container's own network.
    let names = if target.user.is_some() {
        names
    } else {
        Vec::new()
    };
    let want = endpoint.ip.map_or(Want::Any, Want::Exactly);
    let mut attached = super::attach(&target.config, internal, owner, names, want)?;
    if responder && target.user.is_some() {
        attached.answer_names()?;
    }
    Ok(attached)
}

/// Joins `owner` at a start: to its `own` network (with the names it answers to there;
/// `None` when `network disconnect` took it off that one) and then to its `endpoints`, in
/// order; `names(endpoint)` are the names it answers to there. Returns the primary
/// attachment (its own network's, else the first endpoint's: `eth0`, with the default
/// route, [`rbuild_runtime::ContainerSpec::bridge`]) and the others
/// ([`rbuild_runtime::ContainerSpec::extra_bridges`]); each lease is released when its value
/// is dropped.
pub fn join(
    store_root: &Path,
    own: Option<(&str, Vec<String>)>,
    endpoints: &[Endpoint],
    owner: &str,
    names: impl Fn(&Endpoint) -> Vec<String>,
) -> Result<(Option<Attached>, Vec<Attached>), NetworkError> {
    let mut joined = Vec::new();
    if let Some((network, own_names)) = own {
        joined.push(super::join(store_root, network, owner, own_names)?);
    }
    for endpoint in endpoints {
        joined.push(attach_endpoint(
            store_root,
            endpoint,
            owner,
            names(endpoint),
            true,
        )?);
    }
    let mut joined = joined.into_iter();
    Ok((joined.next(), joined.collect()))
}

/// The name server of a container on `networks` (in order: its own network unless it left
/// it, then the connected ones): the responder of the first user network among them, on
/// that network's gateway (docker's embedded DNS serves a container that has any user
/// network, also one on the default bridge); `None` for the host's servers. A network
/// removed since is skipped. Its runner answers there ([`join`] starts a responder on each
/// user network), and so do the other members' runners.
pub fn name_server<'a>(networks: impl IntoIterator<Item = &'a str>) -> Option<Ipv4Addr> {
    networks
        .into_iter()
        .filter(|n| *n != "bridge")
        .find_map(|n| networks::find(n).ok())
        .map(|record| record.gateway)
}

/// A running container's new place on a network, its lease still this process's.
pub struct Connecting {
    attached: Attached,
    /// The interface made in the container (`eth1`, …).
    pub interface: String,
}

/// Connects the running container `owner` (PID 1 `pid`) to `endpoint`'s network: an address
/// (the lease held by this process until [`Connecting::hand_over`]) and a veth into its
/// namespace. Dropped before the hand-over, both are removed.
pub fn connect_running(
    store_root: &Path,
    endpoint: &Endpoint,
    owner: &str,
    names: Vec<String>,
    pid: u32,
) -> Result<Connecting, NetworkError> {
    let attached = attach_endpoint(store_root, endpoint, owner, names, false)?;
    let attachment = attached
        .attachment
        .as_ref()
        .expect("an address was asked for");
    let made = rbuild_runtime::network::connect_running(pid, attachment);
    let interface = match made {
        Ok(interface) => interface,
        Err(e) => {
            let _ = rbuild_runtime::network::delete_link(&attachment.host_veth);
            return Err(e.into());
        }
    };
    crate::killpoint::reached("network-connected");
    Ok(Connecting {
        attached,
        interface,
    })
}

impl Connecting {
    /// The container's address on the network.
    pub fn address(&self) -> Ipv4Addr {
        self.attached.address.expect("an address")
    }

    /// Makes the lease the container runner's (process `runner`): it lives as long as the
    /// container's process, see [`leave`].
    pub fn hand_over(mut self, runner: u32) -> Result<(), NetworkError> {
        let mut locked = Locked::open(true)?.expect("created");
        let address = self.address();
        locked
            .state
            .hand_over(&self.attached.bridge, address, runner);
        locked.save()?;
        self.attached.handed_over = true;
        drop(locked);
        if let (true, Some(attachment)) = (self.attached.named, &self.attached.attachment) {
            let (bridge, gateway) = (&self.attached.bridge, attachment.gateway);
            super::dns::serve_detached(bridge, gateway, address, runner)?;
        }
        Ok(())
    }
}

impl Drop for Connecting {
    /// Not handed over (the record could not be changed): the interface goes with the lease.
    fn drop(&mut self) {
        if let (false, Some(attachment)) = (self.attached.handed_over, &self.attached.attachment) {
            let _ = rbuild_runtime::network::delete_link(&attachment.host_veth);
        }
    }
}

/// Removes the leases of `bridge` that `remove` selects, and the bridge when nothing else
/// uses it; returns how many there were.
fn release(
    locked: &mut Locked,
    bridge: &str,
    remove: impl Fn(&super::state::IpLease) -> bool,
) -> Result<usize, NetworkError> {
    let before = locked.state.leases.len();
    locked
        .state
        .leases
        .retain(|l| !(l.bridge == bridge && remove(l)));
    let removed = before - locked.state.leases.len();
    locked.state.reclaim_stale();
    if removed > 0 && !locked.state.in_use(bridge) {
        super::linger::left(locked, bridge)?;
    }
    Ok(removed)
}

/// Takes the running container `owner` off `network`: its interface there, its lease
/// (whichever process holds it) and the bridge when it was the last; and, when it is the
/// container's `own` network (where its ports are published), its DNAT rules. `false` when
/// it had no address there.
pub fn disconnect(
    store_root: &Path,
    network: &str,
    owner: &str,
    own: bool,
) -> Result<bool, NetworkError> {
    let bridge = target(store_root, network)?.config.bridge;
    if own {
        super::dnat::remove(owner)?;
    }
    let Some(mut locked) = Locked::open(false)? else {
        return Ok(false);
    };
    let addresses: Vec<Ipv4Addr> = locked
        .state
        .leases
        .iter()
        .filter(|l| l.bridge == bridge && l.owner == owner)
        .filter_map(|l| l.address)
        .collect();
    for address in &addresses {
        rbuild_runtime::network::delete_link(&super::host_veth(*address))?;
    }
    let removed = release(&mut locked, &bridge, |l| l.owner == owner)?;
    locked.save()?;
    Ok(removed > 0)
}

/// Moves the default route of the running container (PID 1 `pid`) to `network`, which it
/// is connected to: the one it had went with the network that was disconnected.
pub fn route_via(store_root: &Path, network: &str, pid: u32) -> Result<(), NetworkError> {
    let bridge = target(store_root, network)?.config.bridge;
    let Some(up) = super::state::read()?.bridges.remove(&bridge) else {
        return Ok(()); // not set up: the container is not on it (a connect killed midway)
    };
    Ok(rbuild_runtime::network::set_default_route(pid, up.gateway)?)
}

/// Releases the leases `network connect` handed to this process for container `owner`
/// (its process ended: the interfaces went with its namespace).
pub fn leave(owner: &str) -> Result<(), NetworkError> {
    let Some(mut locked) = Locked::open(false)? else {
        return Ok(());
    };
    let me = std::process::id();
    let bridges: Vec<String> = locked
        .state
        .leases
        .iter()
        .filter(|l| l.owner == owner && l.pid == me)
        .map(|l| l.bridge.clone())
        .collect();
    if bridges.is_empty() {
        return Ok(());
    }
    for bridge in &bridges {
        release(&mut locked, bridge, |l| l.owner == owner && l.pid == me)?;
    }
    locked.save()
}

/// docker's `NetworkSettings.Networks` of container `owner`: each of `networks` (its own
/// network first, then its endpoints) with the aliases it has there and, while it runs, its
/// address.
pub fn settings(
    store_root: &Path,
    owner: &str,
    networks: &[(String, Vec<String>)],
) -> Result<Value, NetworkError> {
    // A rootless container has no lease in the host-wide record, which only root may open.
    let state = match super::rootless::applies() {
        true => super::state::State::default(),
        false => super::state::read()?,
    };
    let mut out = serde_json::Map::new();
    for (network, aliases) in networks {
        // A network removed since (a stopped container's) shows without its ID.
        let target = match target(store_root, network) {
            Err(NetworkError::NoSuchNetwork(_)) => None,
            other => Some(other?),
        };
        let bridge = target.as_ref().map(|t| t.config.bridge.as_str());
        let lease = state
            .leases
            .iter()
            .find(|l| Some(l.bridge.as_str()) == bridge && l.owner == owner && l.alive());
        let up = bridge.and_then(|b| state.bridges.get(b));
        let (address, prefix, gateway) = match (lease.and_then(|l| l.address), up) {
            (Some(a), Some(b)) => (a.to_string(), b.subnet.prefix_len, b.gateway.to_string()),
            _ => (String::new(), 0, String::new()),
        };
        let id = target
            .and_then(|t| t.user)
            .map_or_else(String::new, |r| r.id);
        out.insert(
            network.clone(),
            json!({
                "Aliases": aliases,
                "NetworkID": id,
                "EndpointID": "",
                "Gateway": gateway,
                "IPAddress": address,
                "IPPrefixLen": prefix,
                "MacAddress": "",
            }),
        );
    }
    Ok(out.into())
}
