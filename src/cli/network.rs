//! `rbuild network create|ls|inspect|rm|prune|connect|disconnect`: rbuild's networks as
//! docker shows its own (see `crate::network`, `crate::network::networks` and
//! `crate::network::connect`).

use std::io::Write;

use clap::{Args, Subcommand};
use serde_json::json;

use super::common::{confirm_removal, open_store};
use super::Globals;
use crate::container::connect::{self, ConnectRequest};
use crate::network::networks::{self, CreateRequest, NetworkRecord};
use crate::network::state::{self, State};
use crate::network::{config, Extras};

/// `rbuild network …`
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// List networks
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Show a network's configuration and the containers with an address on it, as JSON
    Inspect(InspectArgs),
    /// Create a network (a bridge of its own, made when its first container starts)
    Create(CreateArgs),
    /// Remove networks (refused while a container is on one)
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove all networks no container is on
    Prune(PruneArgs),
    /// Connect a container to a network (a running one at once, a stopped one at its next start)
    Connect(ConnectArgs),
    /// Disconnect a container from a network (also the one it was created on)
    Disconnect(DisconnectArgs),
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Add network-scoped alias for the container
    #[arg(long = "alias", value_name = "ALIAS")]
    pub alias: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long, value_name = "IP")]
    pub ip: Option<String>,
    /// Network name or ID
    #[arg(value_name = "NETWORK")]
    pub network: String,
    /// Container name or ID
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

#[derive(Debug, Args)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network (also one removed since)
    #[arg(short, long)]
    pub force: bool,
    /// Network name or ID
    #[arg(value_name = "NETWORK")]
    pub network: String,
    /// Container name or ID
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only show network IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Don't truncate the network IDs
    #[arg(long)]
    pub no_trunc: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Network names or IDs
    #[arg(required = true, value_name = "NETWORK")]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Subnet in CIDR format (default: the first free 10.89.N.0/24)
    #[arg(long, value_name = "CIDR")]
    pub subnet: Option<String>,
    /// Gateway for the subnet (default: its first address)
    #[arg(long, value_name = "IP")]
    pub gateway: Option<String>,
    /// Restrict external access to the network (no NAT, no forwarding)
    #[arg(long)]
    pub internal: bool,
    /// Driver (only "bridge")
    #[arg(short, long, default_value = "bridge")]
    pub driver: String,
    /// Set metadata on the network (KEY=VALUE)
    #[arg(short, long = "label", value_name = "KEY[=VALUE]")]
    pub label: Vec<String>,
    /// Network name
    #[arg(value_name = "NAME")]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Do not fail on networks that do not exist
    #[arg(short, long)]
    pub force: bool,
    /// Network names or IDs
    #[arg(required = true, value_name = "NETWORK")]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Only networks with this label (label=KEY or label=KEY=VALUE)
    #[arg(long, value_name = "FILTER")]
    pub filter: Vec<String>,
}

/// `run`'s per-container network flags (docker's).
#[derive(Debug, Args)]
pub struct RunNetArgs {
    /// Set custom DNS servers
    #[arg(long = "dns", value_name = "IP")]
    pub dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search", value_name = "DOMAIN")]
    pub dns_search: Vec<String>,
    /// Add a custom host-to-IP mapping (NAME:IP; IP host-gateway: the bridge's address)
    #[arg(long = "add-host", value_name = "NAME:IP")]
    pub add_host: Vec<String>,
    /// Container MAC address (e.g., 92:d0:c6:0a:29:33)
    #[arg(long = "mac-address", value_name = "MAC")]
    pub mac_address: Option<String>,
    /// Add a network-scoped alias for the container (user-defined networks)
    #[arg(long = "network-alias", value_name = "ALIAS")]
    pub network_alias: Vec<String>,
    /// Add a link to another container (NAME[:ALIAS]; the default bridge)
    #[arg(long = "link", value_name = "NAME[:ALIAS]")]
    pub link: Vec<String>,
}

impl RunNetArgs {
    pub fn extras(&self) -> Extras {
        Extras {
            dns: self.dns.clone(),
            dns_search: self.dns_search.clone(),
            add_hosts: self.add_host.clone(),
            mac_address: self.mac_address.clone(),
            aliases: self.network_alias.clone(),
            links: self.link.clone(),
        }
    }
}

/// The networks every rbuild has, with their drivers (docker's three predefined ones).
const BUILTIN: [(&str, &str); 3] = [("bridge", "bridge"), ("host", "host"), ("none", "null")];

/// A predefined network's ID: fixed, derived from its name (docker's are random per host).
fn builtin_id(name: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(format!("rbuild network {name}")))
}

pub fn run(globals: &Globals, cmd: NetworkCommand) -> anyhow::Result<i32> {
    match cmd {
        NetworkCommand::Ls(args) => ls(&args),
        NetworkCommand::Inspect(args) => inspect(globals, &args),
        NetworkCommand::Create(args) => create(args),
        NetworkCommand::Rm(args) => rm(&args),
        NetworkCommand::Prune(args) => prune(&args),
        NetworkCommand::Connect(args) => connect(globals, args),
        NetworkCommand::Disconnect(args) => disconnect(globals, &args),
    }
}

fn connect(globals: &Globals, args: ConnectArgs) -> anyhow::Result<i32> {
    let store = open_store(globals)?;
    let ip = args
        .ip
        .map(|ip| ip.parse())
        .transpose()
        .map_err(|e| anyhow::anyhow!("invalid --ip: {e}"))?;
    let request = ConnectRequest {
        network: args.network,
        container: args.container,
        aliases: args.alias,
        ip,
    };
    connect::connect(&store, &request)?;
    Ok(0)
}

fn disconnect(globals: &Globals, args: &DisconnectArgs) -> anyhow::Result<i32> {
    let store = open_store(globals)?;
    connect::disconnect(&store, &args.network, &args.container, args.force)?;
    Ok(0)
}

fn create(args: CreateArgs) -> anyhow::Result<i32> {
    if args.driver != "bridge" {
        anyhow::bail!(
            "network driver {:?} is not supported: rbuild has \"bridge\"",
            args.driver
        );
    }
    let request = CreateRequest {
        name: args.name,
        subnet: args
            .subnet
            .map(|s| s.parse())
            .transpose()
            .map_err(anyhow::Error::msg)?,
        gateway: args
            .gateway
            .map(|g| g.parse())
            .transpose()
            .map_err(|e| anyhow::anyhow!("invalid --gateway: {e}"))?,
        internal: args.internal,
        labels: args
            .label
            .iter()
            .map(|l| match l.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (l.clone(), String::new()),
            })
            .collect(),
    };
    let record = networks::create(&request)?;
    println!("{}", record.id);
    Ok(0)
}

fn ls(args: &LsArgs) -> anyhow::Result<i32> {
    let mut rows: Vec<(String, String, &str)> = BUILTIN
        .iter()
        .map(|(name, driver)| (builtin_id(name), name.to_string(), *driver))
        .collect();
    rows.extend(
        networks::load()?
            .into_iter()
            .map(|r| (r.id, r.name, "bridge")),
    );
    rows.sort_by(|a, b| a.1.cmp(&b.1));
    let mut out = std::io::stdout().lock();
    if !args.quiet {
        writeln!(
            out,
            "{:<15}{:<20}{:<10}{:<10}",
            "NETWORK ID", "NAME", "DRIVER", "SCOPE"
        )?;
    }
    for (id, name, driver) in rows {
        let id = if args.no_trunc { &id[..] } else { &id[..12] };
        if args.quiet {
            writeln!(out, "{id}")?;
        } else {
            writeln!(out, "{id:<15}{name:<20}{driver:<10}{:<10}", "local")?;
        }
    }
    Ok(0)
}

/// The live containers with an address on `bridge`, docker's `Containers` map.
fn containers(record: &State, bridge: &str, prefix: u8) -> serde_json::Value {
    let map: serde_json::Map<String, serde_json::Value> = record
        .leases
        .iter()
        .filter(|l| l.bridge == bridge && l.alive())
        .filter_map(|l| {
            let address = l.address?;
            // A RUN step's lease is not a container's: its owner is not an ID.
            let key = if l.owner.len() == 64 {
                l.owner.clone()
            } else {
                format!("{}-{address}", l.owner)
            };
            Some((
                key,
                json!({
                    "Name": l.names.first().unwrap_or(&l.owner),
                    "EndpointID": "",
                    "MacAddress": "",
                    "IPv4Address": format!("{address}/{prefix}"),
                    "IPv6Address": "",
                    "Pid": l.pid,
                }),
            ))
        })
        .collect();
    map.into()
}

/// docker's shape of a user-defined network.
fn user_network(record: &NetworkRecord, state: &State) -> serde_json::Value {
    let created = chrono::DateTime::from_timestamp(record.created, 0)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default();
    let bridge = record.bridge();
    json!({
        "Name": record.name,
        "Id": record.id,
        "Created": created,
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv6": false,
        "IPAM": {
            "Driver": "default",
            "Options": {},
            "Config": [{"Subnet": record.subnet.to_string(), "Gateway": record.gateway.to_string()}],
        },
        "Internal": record.internal,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": containers(state, &bridge, record.subnet.prefix_len),
        "Options": {"com.docker.network.bridge.name": bridge},
        "Labels": record.labels,
    })
}

fn inspect(globals: &Globals, args: &InspectArgs) -> anyhow::Result<i32> {
    let store = open_store(globals)?;
    let record = state::read()?;
    let mut out = Vec::new();
    let mut code = 0;
    for name in &args.names {
        if let Some((_, driver)) = BUILTIN.iter().find(|(n, _)| n == name) {
            let mut value =
                json!({"Name": name, "Id": builtin_id(name), "Driver": driver, "Scope": "local"});
            if *name == "bridge" {
                let bridge = config::default_bridge(store.root())?.bridge;
                let up = record.bridges.get(&bridge);
                let ipam: Vec<_> = up
                    .map(|b| json!({"Subnet": b.subnet.to_string(), "Gateway": b.gateway.to_string()}))
                    .into_iter()
                    .collect();
                let prefix = up.map_or(32, |b| b.subnet.prefix_len);
                value["IPAM"] = json!({"Driver": "default", "Config": ipam});
                value["Options"] = json!({"com.docker.network.bridge.name": bridge});
                value["Containers"] = containers(&record, &bridge, prefix);
            }
            out.push(value);
            continue;
        }
        match networks::find(name) {
            Ok(network) => out.push(user_network(&network, &record)),
            Err(e) => {
                super::report::item_error(&e);
                code = 1;
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(code)
}

fn rm(args: &RmArgs) -> anyhow::Result<i32> {
    let mut code = 0;
    for name in &args.names {
        match networks::remove(name) {
            Ok(_) => println!("{name}"),
            Err(crate::network::NetworkError::NoSuchNetwork(_)) if args.force => {}
            Err(e) => {
                super::report::item_error(&e);
                code = 1;
            }
        }
    }
    Ok(code)
}

fn prune(args: &PruneArgs) -> anyhow::Result<i32> {
    if !args.force && !confirm_removal("all custom networks not used by at least one container") {
        return Ok(0);
    }
    let mut labels = Vec::new();
    for f in &args.filter {
        match f.strip_prefix("label=") {
            Some(label) => labels.push(label.split_once('=').unwrap_or((label, ""))),
            None => anyhow::bail!("invalid filter '{f}' (network prune takes label=…)"),
        }
    }
    let removed = networks::prune(|r| {
        labels.iter().all(|(k, v)| {
            r.labels
                .get(*k)
                .is_some_and(|have| v.is_empty() || have == v)
        })
    })?;
    if !removed.is_empty() {
        println!("Deleted Networks:");
        for name in removed {
            println!("{name}");
        }
    }
    Ok(0)
}
