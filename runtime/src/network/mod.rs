//! Bridge networking through rtnetlink: the host's bridge, and a veth pair per container.
//!
//! The runner (rbuild's network module) owns the policy: which bridge, which address
//! (IPAM), NAT. This module only talks to the kernel:
//!
//! - host side, from the runner: [`ensure_bridge`] creates a bridge with the gateway
//!   address and brings it up, [`delete_link`] removes it, [`link_names`] and
//!   [`routed_ipv4_prefixes`] tell what the host already has;
//! - container side, from the monitor: with [`crate::ContainerSpec::bridge`] set, the monitor
//!   opens a netlink socket in the host's namespace before creating the container's network
//!   namespace, then creates the veth pair with its peer directly inside the new namespace
//!   (named `eth0` there, so no name is ever taken on the host), attaches the host end to
//!   the bridge and configures `eth0`: address, optional MAC, up, default route via the
//!   gateway. All this happens before PID 1 is forked, so the process never sees a
//!   namespace without its network. The host end disappears with the namespace: a container
//!   that ends, or a monitor that is killed, leaves no veth behind. More bridges
//!   ([`crate::ContainerSpec::extra_bridges`]) become `eth1`, `eth2`, … the same way;
//! - a running container, from the CLI (`network connect`): [`connect_running`] makes
//!   the same veth pair into the namespace of the container's PID 1, through a netlink
//!   socket a thread of ours opened there; deleting the host end removes both ends.
//!
//! Rootless containers get a user-mode network instead (pasta or slirp4netns, started by
//! the runner): see [`user_mode`].

pub mod conntrack;
pub mod forward;
mod netlink;
mod shared_udp;
pub mod user_mode;

use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use serde::{Deserialize, Serialize};

use netlink::{Kind, Netlink};
pub use shared_udp::{bind_shared_udp, upstream_name_servers};

/// Errors of network setup.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("netlink: failed to {what}")]
    Netlink {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("network interface {0} does not exist")]
    NoSuchLink(String),
    #[error("failed to join the network namespace of process {pid}")]
    Join {
        pid: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("user-mode network helper {program}: {what}")]
    Helper { program: String, what: String },
}

/// How a container is connected to a bridge on the host (set by the runner, which chose the
/// address).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeAttachment {
    /// The host's bridge (it must exist and be up).
    pub bridge: String,
    /// Name of the host end of the veth pair (at most 15 bytes; an old link of that name is
    /// replaced).
    pub host_veth: String,
    /// The container's address on the bridge's subnet.
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    /// The bridge's address: the container's default route.
    pub gateway: Ipv4Addr,
    /// `eth0`'s MAC address; the kernel picks a random one when `None`.
    pub mac: Option<[u8; 6]>,
}

const ENODEV: i32 = libc::ENODEV;
const EEXIST: i32 = libc::EEXIST;

fn os_code(e: &NetworkError) -> Option<i32> {
    match e {
        NetworkError::Netlink { source, .. } | NetworkError::Join { source, .. } => {
            source.raw_os_error()
        }
        NetworkError::NoSuchLink(_) => Some(ENODEV),
        NetworkError::Helper { .. } => None,
    }
}

/// A link message naming link `name` (the kernel looks links up by name too).
fn named(name: &str) -> LinkMessage {
    let mut message = LinkMessage::default();
    message
        .attributes
        .push(LinkAttribute::IfName(name.to_string()));
    message
}

fn link_by_name(nl: &mut Netlink, name: &str) -> Result<Option<LinkMessage>, NetworkError> {
    match nl.request(
        RouteNetlinkMessage::GetLink(named(name)),
        Kind::Change,
        &format!("look up {name}"),
    ) {
        Ok(answers) => Ok(answers.into_iter().find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(l),
            _ => None,
        })),
        Err(e) if os_code(&e) == Some(ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

fn link_index(nl: &mut Netlink, name: &str) -> Result<u32, NetworkError> {
    link_by_name(nl, name)?
        .map(|l| l.header.index)
        .ok_or_else(|| NetworkError::NoSuchLink(name.to_string()))
}

fn set_up(nl: &mut Netlink, index: u32, name: &str) -> Result<(), NetworkError> {
    let mut message = LinkMessage::default();
    message.header.index = index;
    message.header.flags = LinkFlags::Up;
    message.header.change_mask = LinkFlags::Up;
    nl.request(
        RouteNetlinkMessage::SetLink(message),
        Kind::Change,
        &format!("bring {name} up"),
    )?;
    Ok(())
}

fn ipv4_addresses(nl: &mut Netlink, index: u32) -> Result<Vec<(Ipv4Addr, u8)>, NetworkError> {
    let mut query = AddressMessage::default();
    query.header.family = AddressFamily::Inet;
    let answers = nl.request(
        RouteNetlinkMessage::GetAddress(query),
        Kind::Dump,
        "list addresses",
    )?;
    Ok(answers
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewAddress(a) if a.header.index == index => {
                a.attributes.iter().find_map(|attr| match attr {
                    AddressAttribute::Local(IpAddr::V4(ip))
                    | AddressAttribute::Address(IpAddr::V4(ip)) => Some((*ip, a.header.prefix_len)),
                    _ => None,
                })
            }
            _ => None,
        })
        .collect())
}

fn add_address(
    nl: &mut Netlink,
    index: u32,
    address: Ipv4Addr,
    prefix_len: u8,
) -> Result<(), NetworkError> {
    let mut message = AddressMessage::default();
    message.header.family = AddressFamily::Inet;
    message.header.prefix_len = prefix_len;
    message.header.index = index;
    let ip = IpAddr::V4(address);
    message.attributes.push(AddressAttribute::Local(ip));
    message.attributes.push(AddressAttribute::Address(ip));
    let host_bits = 32 - u32::from(prefix_len);
    let broadcast = u32::from(address) | ((1u64 << host_bits) - 1) as u32;
    message
        .attributes
        .push(AddressAttribute::Broadcast(Ipv4Addr::from(broadcast)));
    match nl.request(
        RouteNetlinkMessage::NewAddress(message),
        Kind::Create,
        &format!("add address {address}/{prefix_len}"),
    ) {
        Err(e) if os_code(&e) == Some(EEXIST) => Ok(()),
        other => other.map(drop),
    }
}

/// Creates bridge `name` with `gateway/prefix_len` unless it exists, adds the address when
/// missing and brings it up. Safe to call from several processes at once.
///
/// The bridge gets a MAC address of its own ([`bridge_mac`]), as docker gives its bridges:
/// one the kernel picked follows the lowest MAC of the bridge's ports, so it changed when
/// the container owning that port left, and the other containers, whose ARP entry for the
/// gateway stays valid for up to half a minute, sent to the old one, which nothing receives:
/// the gateway (its name responder, the host, the outside world) went silent for them.
pub fn ensure_bridge(name: &str, gateway: Ipv4Addr, prefix_len: u8) -> Result<(), NetworkError> {
    let mut nl = Netlink::open()?;
    if link_by_name(&mut nl, name)?.is_none() {
        let mut message = named(name);
        message
            .attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        // Set at creation, the kernel marks it as given (`addr_assign_type` 3): ports that
        // come and go no longer change it.
        message
            .attributes
            .push(LinkAttribute::Address(bridge_mac(gateway).to_vec()));
        match nl.request(
            RouteNetlinkMessage::NewLink(message),
            Kind::Create,
            &format!("create bridge {name}"),
        ) {
            Err(e) if os_code(&e) == Some(EEXIST) => {}
            other => other.map(drop)?,
        }
    }
    let index = link_index(&mut nl, name)?;
    if !ipv4_addresses(&mut nl, index)?.contains(&(gateway, prefix_len)) {
        add_address(&mut nl, index, gateway, prefix_len)?;
    }
    set_up(&mut nl, index, name)
}

/// The MAC address of the bridge whose gateway is `gateway`: locally administered, unicast,
/// and distinct for each of the host's bridges (their gateways differ).
fn bridge_mac(gateway: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = gateway.octets();
    [0x02, 0x52, a, b, c, d]
}

/// Deletes link `name` (a bridge takes its ports' links out of it, not down). `Ok(false)`
/// when there was none.
pub fn delete_link(name: &str) -> Result<bool, NetworkError> {
    let mut nl = Netlink::open()?;
    delete_link_with(&mut nl, name)
}

fn delete_link_with(nl: &mut Netlink, name: &str) -> Result<bool, NetworkError> {
    match nl.request(
        RouteNetlinkMessage::DelLink(named(name)),
        Kind::Change,
        &format!("delete {name}"),
    ) {
        Ok(_) => Ok(true),
        Err(e) if os_code(&e) == Some(ENODEV) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The names of the links of the caller's network namespace.
pub fn link_names() -> Result<Vec<String>, NetworkError> {
    link_names_with(&mut Netlink::open()?)
}

fn link_names_with(nl: &mut Netlink) -> Result<Vec<String>, NetworkError> {
    let answers = nl.request(
        RouteNetlinkMessage::GetLink(LinkMessage::default()),
        Kind::Dump,
        "list links",
    )?;
    Ok(answers
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => l.attributes.into_iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n),
                _ => None,
            }),
            _ => None,
        })
        .collect())
}

/// The IPv4 destinations (address, prefix length) of the main routing table, the default
/// route left out: subnets the host already reaches, which a new bridge must not shadow.
pub fn routed_ipv4_prefixes() -> Result<Vec<(Ipv4Addr, u8)>, NetworkError> {
    let mut nl = Netlink::open()?;
    let mut query = RouteMessage::default();
    query.header.address_family = AddressFamily::Inet;
    let answers = nl.request(
        RouteNetlinkMessage::GetRoute(query),
        Kind::Dump,
        "list routes",
    )?;
    Ok(answers
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewRoute(r)
                if r.header.table == RouteHeader::RT_TABLE_MAIN
                    && r.header.destination_prefix_length > 0 =>
            {
                r.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Destination(RouteAddress::Inet(ip)) => {
                        Some((*ip, r.header.destination_prefix_length))
                    }
                    _ => None,
                })
            }
            _ => None,
        })
        .collect())
}

/// Moves the caller into the network namespace of process `pid` (another container's, for
/// `--network container:NAME`).
pub(crate) fn join_netns(pid: u32) -> Result<(), NetworkError> {
    let err = |source| NetworkError::Join { pid, source };
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).map_err(err)?;
    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| err(std::io::Error::from(e)))
}

/// Monitor side, before the container's network namespace exists: a socket in the host's.
pub(crate) struct HostSide(Netlink);

impl HostSide {
    pub(crate) fn open() -> Result<HostSide, NetworkError> {
        Netlink::open().map(HostSide)
    }

    /// Run in the new network namespace (the caller's, now): connects it to `primary`'s
    /// bridge as `eth0` (with the default route) and to each of `extras` as `eth1`, `eth2`, …
    pub(crate) fn attach(
        mut self,
        primary: Option<&BridgeAttachment>,
        extras: &[BridgeAttachment],
    ) -> Result<(), NetworkError> {
        let mut inner = Netlink::open()?;
        let namespace = std::process::id();
        if let Some(attachment) = primary {
            add_veth(&mut self.0, &mut inner, namespace, attachment, "eth0", true)?;
        }
        for (i, attachment) in extras.iter().enumerate() {
            let name = format!("eth{}", i + 1);
            add_veth(&mut self.0, &mut inner, namespace, attachment, &name, false)?;
        }
        Ok(())
    }
}

/// Connects the network namespace of the running process `pid` (a container's PID 1) to
/// `attachment`'s bridge (docker's `network connect`): a veth pair whose inner end is the
/// first free `ethN` there, configured, with no route but its subnet's. Returns that name.
/// The host end, [`BridgeAttachment::host_veth`], removes both ends ([`delete_link`]).
pub fn connect_running(pid: u32, attachment: &BridgeAttachment) -> Result<String, NetworkError> {
    let mut inner = open_in_netns(pid)?;
    let taken = link_names_with(&mut inner)?;
    let name = (0..)
        .map(|i| format!("eth{i}"))
        .find(|n| !taken.contains(n))
        .expect("a free name");
    let mut host = Netlink::open()?;
    add_veth(&mut host, &mut inner, pid, attachment, &name, false)?;
    Ok(name)
}

/// A netlink socket in the network namespace of process `pid`, opened by a thread of ours
/// that moved there (a network namespace is per thread; the socket stays where it was made).
fn open_in_netns(pid: u32) -> Result<Netlink, NetworkError> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                join_netns(pid)?;
                Netlink::open()
            })
            .join()
            .unwrap_or_else(|_| {
                Err(NetworkError::Join {
                    pid,
                    source: std::io::Error::other("the thread panicked"),
                })
            })
    })
}

/// Creates the veth pair of `attachment`: the host end on its bridge, up; the other end,
/// `name`, in the network namespace of process `namespace` (which `inner` talks to), with
/// the address, the optional MAC, up, and with `default_route` the route via the gateway.
fn add_veth(
    host: &mut Netlink,
    inner: &mut Netlink,
    namespace: u32,
    attachment: &BridgeAttachment,
    name: &str,
    default_route: bool,
) -> Result<(), NetworkError> {
    let bridge = link_index(host, &attachment.bridge)?;
    delete_link_with(host, &attachment.host_veth)?; // a leftover of the same name
    let mut peer = LinkMessage::default();
    peer.attributes.push(LinkAttribute::IfName(name.into()));
    peer.attributes.push(LinkAttribute::NetNsPid(namespace));
    if let Some(mac) = attachment.mac {
        peer.attributes.push(LinkAttribute::Address(mac.to_vec()));
    }
    let mut veth = LinkMessage::default();
    veth.attributes
        .push(LinkAttribute::IfName(attachment.host_veth.clone()));
    veth.attributes.push(LinkAttribute::Controller(bridge));
    veth.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
    ]));
    host.request(
        RouteNetlinkMessage::NewLink(veth),
        Kind::Create,
        &format!("create veth pair {}", attachment.host_veth),
    )?;
    let host_index = link_index(host, &attachment.host_veth)?;
    set_up(host, host_index, &attachment.host_veth)?;
    let index = link_index(inner, name)?;
    add_address(inner, index, attachment.address, attachment.prefix_len)?;
    set_up(inner, index, name)?;
    if !default_route {
        return Ok(());
    }
    add_default_route(inner, attachment.gateway, Some(index))
}

/// Adds the default route via `gateway` (through interface `index`, else the one whose
/// subnet holds the gateway) to the namespace `inner` talks to.
fn add_default_route(
    inner: &mut Netlink,
    gateway: Ipv4Addr,
    index: Option<u32>,
) -> Result<(), NetworkError> {
    let mut route = RouteMessage::default();
    route.header.address_family = AddressFamily::Inet;
    route.header.table = RouteHeader::RT_TABLE_MAIN;
    route.header.protocol = RouteProtocol::Boot;
    route.header.scope = RouteScope::Universe;
    route.header.kind = RouteType::Unicast;
    route
        .attributes
        .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
    route.attributes.extend(index.map(RouteAttribute::Oif));
    inner.request(
        RouteNetlinkMessage::NewRoute(route),
        Kind::Create,
        &format!("add the default route via {gateway}"),
    )?;
    Ok(())
}

/// Gives the network namespace of the running process `pid` (a container's PID 1) a default
/// route via `gateway`, on a network it is connected to: the interface that had the route
/// was disconnected (docker moves the default gateway to a remaining network then).
pub fn set_default_route(pid: u32, gateway: Ipv4Addr) -> Result<(), NetworkError> {
    add_default_route(&mut open_in_netns(pid)?, gateway, None)
}
