//! docker's per-container network flags: `--dns`, `--dns-search`, `--add-host` (with
//! `host-gateway`) and `--mac-address`, applied to a container's spec once its network is
//! known.

use rbuild_runtime::ContainerSpec;

use super::NetworkError;

/// The flags as given; [`Extras::apply`] checks them against the container's network.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Extras {
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    /// `NAME:IP` entries (`IP` may be `host-gateway`), for `/etc/hosts`.
    pub add_hosts: Vec<String>,
    pub mac_address: Option<String>,
    /// `--network-alias`: more names the container answers to on a user network.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `--link NAME[:ALIAS]` as given (the default bridge only; see
    /// `crate::container::links`).
    #[serde(default)]
    pub links: Vec<String>,
}

impl Extras {
    /// Refuses what does not fit the container's `network` (`None`: none or host), before
    /// the container is made: aliases need a user network, links the default bridge (as
    /// docker's legacy links).
    pub fn check(&self, network: Option<&str>) -> Result<(), NetworkError> {
        let user = network.is_some_and(|n| n != "bridge" && !n.starts_with("container:"));
        if !self.aliases.is_empty() && !user {
            return Err(NetworkError::Config(
                "--network-alias is only supported for containers on user-defined networks".into(),
            ));
        }
        if !self.links.is_empty() && network != Some("bridge") {
            return Err(NetworkError::Config(
                "--link is only supported on the default bridge network".into(),
            ));
        }
        for link in &self.links {
            let (name, alias) = link.split_once(':').unwrap_or((link, link));
            if name.is_empty() || alias.is_empty() {
                return Err(NetworkError::Config(format!(
                    "--link {link:?}: expected NAME[:ALIAS]"
                )));
            }
        }
        Ok(())
    }

    /// Sets them on `spec` (after its network: `host-gateway` is the bridge's address, and
    /// a MAC address needs an interface to set it on).
    pub fn apply(&self, spec: &mut ContainerSpec) -> Result<(), NetworkError> {
        let bad = |m: String| Err(NetworkError::Config(m));
        for server in &self.dns {
            if server.parse::<std::net::IpAddr>().is_err() {
                return bad(format!("--dns {server:?} is not an IP address"));
            }
        }
        spec.dns = self.dns.clone();
        spec.dns_search = self.dns_search.clone();
        for entry in &self.add_hosts {
            let Some((name, ip)) = entry.split_once(':') else {
                return bad(format!("--add-host {entry:?}: expected NAME:IP"));
            };
            let ip = if ip == "host-gateway" {
                match &spec.bridge {
                    Some(b) => b.gateway.to_string(),
                    None => {
                        return bad(format!(
                            "--add-host {entry:?}: host-gateway needs the bridge network"
                        ))
                    }
                }
            } else if ip.parse::<std::net::IpAddr>().is_ok() {
                ip.to_string()
            } else {
                return bad(format!("--add-host {entry:?}: {ip:?} is not an IP address"));
            };
            if name.is_empty() {
                return bad(format!("--add-host {entry:?}: empty host name"));
            }
            spec.extra_hosts.push((name.to_string(), ip));
        }
        if let Some(mac) = &self.mac_address {
            let bytes: Vec<u8> = mac
                .split(':')
                .filter_map(|b| (b.len() == 2).then(|| u8::from_str_radix(b, 16).ok())?)
                .collect();
            let Ok(bytes) = <[u8; 6]>::try_from(bytes) else {
                return bad(format!("--mac-address {mac:?} is not a MAC address"));
            };
            if bytes[0] & 1 != 0 {
                return bad(format!("--mac-address {mac:?} is a multicast address"));
            }
            match spec.bridge.as_mut() {
                Some(b) => b.mac = Some(bytes),
                None => return bad("--mac-address needs the bridge network".into()),
            }
        }
        Ok(())
    }
}
