//! rbuild's default network: a bridge on the host with NAT, and an address per container.
//!
//! As root, a RUN step or a `rbuild run` container on the default network (docker's
//! `bridge`) gets a private network namespace joined to the host's bridge (`rbuild0`,
//! 10.88.0.0/16 unless configured, see [`config`]) by a veth pair, an address from the
//! host-wide IPAM record ([`state`]), a default route via the bridge, and NAT (masquerade,
//! [`nat`]) for what leaves the host. The kernel work is the runtime's
//! ([`rbuild_runtime::network`]); this module decides and keeps the books.
//!
//! Lifetime: the first user sets the bridge up (nftables rules first, then the bridge, so an
//! existing bridge always has its rules); once the last one left ([`Attached`] dropped) both
//! stay for the bridge's linger (10 s unless configured), for the next user to reuse, and a
//! detached reaper removes them after ([`linger`]; linger 0: the last user removes them). A
//! container's veth goes with its network namespace. A killed rbuild leaves a stale lease
//! (its process is gone): the next rbuild that opens the record reclaims it and removes a
//! bridge no live lease uses ([`clean_leftovers`], run at every CLI start).

pub mod config;
pub mod connect;
mod dnat;
pub mod dns;
mod extras;
pub mod forwarder;
pub mod linger;
mod nat;
pub mod networks;
pub mod ports;
mod proxy;
pub mod publish;
pub mod rootless;
pub mod state;
pub mod subnet;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use rbuild_runtime::network::BridgeAttachment;

pub use extras::Extras;
use state::{BridgeRecord, Locked};
use subnet::Subnet;

/// Errors of network setup.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error(transparent)]
    Kernel(#[from] rbuild_runtime::network::NetworkError),
    #[error("nftables: {0}")]
    Nft(String),
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("network configuration: {0}")]
    Config(String),
    #[error("no free address left in {0}")]
    Exhausted(String),
    #[error(
        "the bridge network needs root (rootless containers use pasta or slirp4netns instead); \
         use --network none or --network host"
    )]
    Rootless,
    #[error("network {0} not found")]
    NoSuchNetwork(String),
    #[error("error while removing network: network {network} has active endpoints ({containers})")]
    InUse { network: String, containers: String },
    #[error(transparent)]
    UserMode(#[from] rootless::RootlessError),
    #[error(transparent)]
    Port(#[from] ports::PortError),
    #[error("port {0} is already in use")]
    PortInUse(String),
    #[error("Invalid address {0}: It does not belong to any of this network's subnets")]
    AddressOutside(Ipv4Addr),
    #[error("Address already in use: {0}")]
    AddressInUse(Ipv4Addr),
    #[error("endpoint with name {container} already exists in network {network}")]
    EndpointExists { container: String, network: String },
    #[error("container {container} is not connected to the network {network}")]
    NotConnected { container: String, network: String },
    /// A `network connect`/`disconnect` docker refuses, with docker's message.
    #[error("{0}")]
    Refused(&'static str),
    #[error("the port forwarder of a rootless container failed: {0}")]
    Forwarder(String),
}

/// Which address a holder takes on a bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// None: a hold that keeps the bridge up.
    Hold,
    /// The lowest free one.
    Any,
    /// This one (`network connect --ip`).
    Exactly(Ipv4Addr),
}

/// A container's (or RUN step's) place on a bridge, or a hold that keeps the bridge up;
/// released on drop (and the bridge removed when nothing else uses it).
#[derive(Debug)]
pub struct Attached {
    bridge: String,
    address: Option<Ipv4Addr>,
    /// What the runtime needs ([`rbuild_runtime::ContainerSpec::bridge`]); `None` for a hold.
    pub attachment: Option<BridgeAttachment>,
    /// A user network's name responder, answering while this holder lives.
    responder: Option<dns::Responder>,
    /// The lease now belongs to another process ([`connect::Connecting::hand_over`]).
    handed_over: bool,
    /// The lease carries names: its network (a user network) answers them.
    named: bool,
}

/// Gives `owner` an address on the default bridge, setting the bridge up when needed.
pub fn attach_default(store_root: &Path, owner: &str) -> Result<Attached, NetworkError> {
    let config = config::default_bridge(store_root)?;
    attach(&config, false, owner, Vec::new(), Want::Any)
}

/// Gives `owner` an address on the user-defined network `network`, which answers `names`
/// with it, setting the network's bridge up when needed; the returned value runs this
/// holder's share of the network's name responder ([`dns`]) while it lives.
pub fn attach_user(
    network: &networks::NetworkRecord,
    owner: &str,
    names: Vec<String>,
) -> Result<Attached, NetworkError> {
    let config = config::BridgeConfig {
        bridge: network.bridge(),
        subnet: Some(network.subnet),
        linger: config::linger(None)?,
    };
    let mut attached = attach(&config, network.internal, owner, names, Want::Any)?;
    attached.answer_names()?;
    Ok(attached)
}

/// Joins a container to `network` as its record names it: `bridge` (the default one, where
/// `names` only label the lease) or a user-defined network, which answers to `names`. The
/// container's name server is [`connect::name_server`]'s.
pub fn join(
    store_root: &Path,
    network: &str,
    owner: &str,
    names: Vec<String>,
) -> Result<Attached, NetworkError> {
    match network {
        "bridge" => attach(
            &config::default_bridge(store_root)?,
            false,
            owner,
            names,
            Want::Any,
        ),
        name => attach_user(&networks::find(name)?, owner, names),
    }
}

/// The name of the host end of the veth pair of the container with `address` (addresses
/// are unique across rbuild's bridges, whose subnets never overlap).
fn host_veth(address: Ipv4Addr) -> String {
    format!("rbuild{:08x}", u32::from(address))
}

/// The address of the live container `owner` on the default bridge, if it has one (what
/// `--link` points at).
pub fn default_bridge_address(
    store_root: &Path,
    owner: &str,
) -> Result<Option<Ipv4Addr>, NetworkError> {
    let bridge = config::default_bridge(store_root)?.bridge;
    Ok(state::read()?
        .leases
        .into_iter()
        .filter(|l| l.bridge == bridge && l.owner == owner && l.alive())
        .find_map(|l| l.address))
}

/// Keeps the default bridge up while the returned value lives (a build holds it between
/// its RUN steps, so that they do not set it up and tear it down each time).
pub fn hold_default(store_root: &Path) -> Result<Attached, NetworkError> {
    let config = config::default_bridge(store_root)?;
    attach(&config, false, "hold", Vec::new(), Want::Hold)
}

fn attach(
    config: &config::BridgeConfig,
    internal: bool,
    owner: &str,
    names: Vec<String>,
    want: Want,
) -> Result<Attached, NetworkError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(NetworkError::Rootless);
    }
    let bridge = config.bridge.clone();
    let mut locked = Locked::open(true)?.expect("created");
    locked.state.reclaim_stale();
    let up = Path::new("/sys/class/net").join(&bridge).exists();
    let record = match locked.state.bridges.get_mut(&bridge) {
        Some(r) if up => {
            linger::reused(r, config.linger);
            r.clone()
        }
        _ => {
            let record = set_up(&locked, config, internal)?;
            locked.state.bridges.insert(bridge.clone(), record.clone());
            record
        }
    };
    let address = match want {
        Want::Hold => {
            locked.state.add_lease(&bridge, None, owner);
            None
        }
        Want::Any => Some(locked.state.allocate(&bridge, owner, None)?),
        Want::Exactly(address) => Some(locked.state.allocate(&bridge, owner, Some(address))?),
    };
    let named = !names.is_empty();
    if let Some(lease) = locked.state.leases.last_mut() {
        lease.names = names; // the lease just added
    }
    locked.save()?;
    crate::killpoint::reached("network-attached");
    let attachment = address.map(|address| BridgeAttachment {
        bridge: bridge.clone(),
        host_veth: host_veth(address),
        address,
        prefix_len: record.subnet.prefix_len,
        gateway: record.gateway,
        mac: None,
    });
    Ok(Attached {
        bridge,
        address,
        attachment,
        responder: None,
        handed_over: false,
        named,
    })
}

/// Creates the NAT rules and the bridge (replacing a leftover of the same name) on a subnet
/// that no route of the host, no other rbuild bridge and no other user network covers.
fn set_up(
    locked: &Locked,
    config: &config::BridgeConfig,
    internal: bool,
) -> Result<BridgeRecord, NetworkError> {
    rbuild_runtime::network::delete_link(&config.bridge)?;
    let routed: Vec<Subnet> = rbuild_runtime::network::routed_ipv4_prefixes()?
        .into_iter()
        .map(|(a, len)| Subnet::new(a, len))
        .collect();
    let networks = networks::load()?;
    let taken = |s: &Subnet| {
        routed.iter().any(|r| r.overlaps(s))
            || locked
                .state
                .bridges
                .iter()
                .any(|(name, b)| name != &config.bridge && b.subnet.overlaps(s))
            || networks
                .iter()
                .any(|n| n.bridge() != config.bridge && n.subnet.overlaps(s))
    };
    let subnet = match config.subnet {
        Some(s) if taken(&s) => {
            return Err(NetworkError::Config(format!(
                "subnet {s} of {} overlaps a network the host already has",
                config.bridge
            )))
        }
        Some(s) => s,
        None => config::default_subnets()
            .find(|s| !taken(s))
            .ok_or_else(|| NetworkError::Exhausted("10.88.0.0/16 to 10.255.0.0/16".into()))?,
    };
    let gateway = networks
        .iter()
        .find(|n| n.bridge() == config.bridge)
        .map_or_else(|| subnet.first_host(), |n| n.gateway);
    nat::enable_forwarding()?;
    let _table = table_lock()?;
    nat::setup(&config.bridge, &subnet, internal)?;
    rbuild_runtime::network::ensure_bridge(&config.bridge, gateway, subnet.prefix_len)?;
    Ok(BridgeRecord {
        subnet,
        gateway,
        linger_ms: config.linger.as_millis() as u64,
        idle_since: None,
    })
}

/// Removes a leftover of `bridge` (set up, no longer used) and its rules: a network's,
/// when the network is removed.
fn forget_bridge(locked: &mut Locked, bridge: &str) -> Result<(), NetworkError> {
    if locked.state.bridges.contains_key(bridge) {
        tear_down(locked, bridge)?;
    }
    Ok(())
}

/// Removes `bridge` and its rules (the rules last: an existing bridge always has them), and
/// rbuild's table with the last bridge.
fn tear_down(locked: &mut Locked, bridge: &str) -> Result<(), NetworkError> {
    let _table = table_lock()?;
    rbuild_runtime::network::delete_link(bridge)?;
    locked.state.bridges.remove(bridge);
    nat::teardown(
        bridge,
        locked.state.bridges.is_empty() && !other_bridge_up(bridge),
    )
}

/// The lock on rbuild's nftables table, host-wide as the table is even where IPAM records
/// are not (`RBUILD_NETWORK_STATE`, as tests have): held from a bridge's rules to its link
/// when it is set up, and from its link to its rules when it is torn down, so that the last
/// bridge of one record never deletes the table under another record's new bridge.
fn table_lock() -> Result<std::fs::File, NetworkError> {
    Ok(state::lock_file(Path::new("/run/rbuild/nftables.lock"), true)?.expect("waited for"))
}

/// Whether a bridge of rbuild's other than `bridge` is up on the host: one of another IPAM
/// record's, whose rules share the table.
fn other_bridge_up(bridge: &str) -> bool {
    let Ok(links) = std::fs::read_dir("/sys/class/net") else {
        return false;
    };
    links.flatten().any(|link| {
        let name = link.file_name();
        let name = name.to_string_lossy();
        name.starts_with("rbuild") && name != bridge && link.path().join("bridge").exists()
    })
}

impl Attached {
    /// The container's address, when it has one.
    pub fn address(&self) -> Option<Ipv4Addr> {
        self.address
    }

    /// Runs this holder's share of its user network's name responder ([`dns`]) while it
    /// lives.
    fn answer_names(&mut self) -> Result<(), NetworkError> {
        if let Some(attachment) = &self.attachment {
            let responder = dns::Responder::start(self.bridge.clone(), attachment.gateway)?;
            self.responder = Some(responder);
        }
        Ok(())
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        if self.handed_over {
            return;
        }
        let Ok(Some(mut locked)) = Locked::open(false) else {
            return;
        };
        locked.state.release(&self.bridge, self.address);
        locked.state.reclaim_stale();
        if !locked.state.in_use(&self.bridge) {
            let _ = linger::left(&mut locked, &self.bridge);
        }
        let _ = locked.save();
    }
}

/// Reclaims the leases of dead processes and removes the bridges (and rules) no live lease
/// uses that do not linger: what a killed rbuild (or reaper) left, see [`linger::clean`].
/// Cheap when there is no record (no lock, one `stat`).
pub fn clean_leftovers() -> Result<(), NetworkError> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let Some(mut locked) = Locked::open(false)? else {
        return Ok(());
    };
    linger::clean_at_start(&mut locked)
}
