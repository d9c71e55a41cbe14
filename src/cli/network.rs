//! `rbuild network ls|inspect`: rbuild's networks as docker shows its own (see
//! `crate::network`).

use clap::{Args, Subcommand};
use serde_json::json;

use super::common::open_store;
use super::Globals;
use crate::network::{config, state, Extras};

/// `rbuild network …`
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// List networks
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Show a network's configuration and the containers with an address on it, as JSON
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only show network names
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Network names
    #[arg(required = true, value_name = "NETWORK")]
    pub names: Vec<String>,
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
}

impl RunNetArgs {
    pub fn extras(&self) -> Extras {
        Extras {
            dns: self.dns.clone(),
            dns_search: self.dns_search.clone(),
            add_hosts: self.add_host.clone(),
            mac_address: self.mac_address.clone(),
        }
    }
}

/// The networks every rbuild has, with their drivers (docker's three predefined ones).
const BUILTIN: [(&str, &str); 3] = [("bridge", "bridge"), ("host", "host"), ("none", "null")];

pub fn run(globals: &Globals, cmd: NetworkCommand) -> anyhow::Result<i32> {
    let store = open_store(globals)?;
    match cmd {
        NetworkCommand::Ls(args) => {
            if !args.quiet {
                println!("{:<20}{:<10}{:<10}", "NAME", "DRIVER", "SCOPE");
            }
            for (name, driver) in BUILTIN {
                if args.quiet {
                    println!("{name}");
                } else {
                    println!("{name:<20}{driver:<10}{:<10}", "local");
                }
            }
            Ok(0)
        }
        NetworkCommand::Inspect(args) => {
            let record = state::read()?;
            let mut out = Vec::new();
            let mut code = 0;
            for name in &args.names {
                let Some((_, driver)) = BUILTIN.iter().find(|(n, _)| n == name) else {
                    eprintln!("rbuild: error: network {name} not found");
                    code = 1;
                    continue;
                };
                let mut value = json!({"Name": name, "Driver": driver, "Scope": "local"});
                if *name == "bridge" {
                    let bridge = config::default_bridge(store.root())?.bridge;
                    let ipam: Vec<_> = record
                        .bridges
                        .get(&bridge)
                        .map(|b| json!({"Subnet": b.subnet.to_string(), "Gateway": b.gateway.to_string()}))
                        .into_iter()
                        .collect();
                    let prefix = record.bridges.get(&bridge).map(|b| b.subnet.prefix_len);
                    let containers: serde_json::Map<String, serde_json::Value> = record
                        .leases
                        .iter()
                        .filter(|l| l.bridge == bridge && l.alive())
                        .filter_map(|l| {
                            let address = l.address?;
                            Some((
                                format!("{}-{address}", l.owner),
                                json!({
                                    "Name": l.owner,
                                    "IPv4Address": format!("{address}/{}", prefix.unwrap_or(32)),
                                    "Pid": l.pid,
                                }),
                            ))
                        })
                        .collect();
                    value["IPAM"] = json!({"Driver": "default", "Config": ipam});
                    value["Options"] = json!({"com.docker.network.bridge.name": bridge});
                    value["Containers"] = containers.into();
                }
                out.push(value);
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(code)
        }
    }
}
