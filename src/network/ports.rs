//! Published ports: docker's `-p [ip:][hostPort:]containerPort[/tcp|/udp]` and `-P`.
//!
//! One owner for the port list of a container: parsed here from the flags (or from the
//! image's `EXPOSE`d ports for `-P`), stored in the container record, and handed to
//! whatever forwards them (the bridge's DNAT rules and userland proxy, `publish`;
//! rootless port forwarding). A host port of 0 means "any free port", chosen when the
//! container starts; [`PortMapping::host_port_last`] makes it "any free port of the range".

use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// A transport protocol a port is published for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }

    /// `tcp` or `udp` (docker's spelling, any case); docker's `sctp` is not supported.
    pub fn parse(s: &str) -> Result<Proto, PortError> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            _ => Err(PortError(format!(
                "invalid proto: {s} (rbuild publishes tcp and udp)"
            ))),
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One published port: connections to `host_ip:host_port` reach the container's
/// `container_port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// `0.0.0.0`: every address of the host (docker's default).
    pub host_ip: Ipv4Addr,
    /// 0: a free port, chosen at start (or one of `host_port..=host_port_last`).
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
    /// With `-p 8000-8010:80`: any free port of `host_port..=host_port_last`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port_last: Option<u16>,
}

/// A `-p` value or an exposed port that does not parse; the message is docker's where it
/// has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PortError(pub String);

/// `N` or `N-M` (inclusive, N ≤ M), ports 1–65535 (0 allowed when `zero_ok`: not given).
fn parse_range(s: &str, what: &str) -> Result<(u16, u16), PortError> {
    let bad = || PortError(format!("invalid {what}: {s}"));
    let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad);
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port(a)?, port(b)?);
            if a > b {
                return Err(bad());
            }
            Ok((a, b))
        }
        None => port(s).map(|p| (p, p)),
    }
}

/// Parses one `-p/--publish` value into its mappings (several for a range).
pub fn parse_publish(value: &str) -> Result<Vec<PortMapping>, PortError> {
    let (rest, proto) = match value.rsplit_once('/') {
        Some((rest, proto)) => (rest, Proto::parse(proto)?),
        None => (value, Proto::Tcp),
    };
    if rest.starts_with('[') {
        return Err(PortError(format!(
            "{value}: IPv6 host addresses are not supported (rbuild's bridge is IPv4)"
        )));
    }
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, container) = match parts.as_slice() {
        [c] => ("", "", *c),
        [h, c] => ("", *h, *c),
        [ip, h, c] => (*ip, *h, *c),
        _ => {
            return Err(PortError(format!(
                "invalid publish spec: {value} (expected [ip:][hostPort:]containerPort[/proto])"
            )))
        }
    };
    let host_ip = match ip {
        "" => Ipv4Addr::UNSPECIFIED,
        ip => ip.parse().map_err(|_| {
            PortError(format!(
                "invalid IP address {ip:?} in {value} (rbuild publishes on IPv4 addresses)"
            ))
        })?,
    };
    if container.is_empty() {
        return Err(PortError(format!("no port specified: {value}<empty>")));
    }
    let (c_first, c_last) = parse_range(container, "containerPort")?;
    let count = c_last - c_first;
    let mapping = |host_port, container_port, host_port_last| PortMapping {
        host_ip,
        host_port,
        container_port,
        proto,
        host_port_last,
    };
    if host.is_empty() {
        return Ok((c_first..=c_last).map(|c| mapping(0, c, None)).collect());
    }
    let (h_first, h_last) = parse_range(host, "hostPort")?;
    if h_last - h_first == count {
        Ok((c_first..=c_last)
            .map(|c| mapping(h_first + (c - c_first), c, None))
            .collect())
    } else if count == 0 {
        Ok(vec![mapping(h_first, c_first, Some(h_last))])
    } else {
        Err(PortError(format!(
            "invalid ranges specified for container and host Ports: {container} and {host}"
        )))
    }
}

/// `-P`: each of the image's `EXPOSE`d ports (`80/tcp`, `53/udp`, `8000-8002/tcp`) to a
/// free port on every host address.
pub fn publish_all<'a>(
    exposed: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<PortMapping>, PortError> {
    let mut all = Vec::new();
    for port in exposed {
        all.extend(parse_publish(port)?);
    }
    Ok(all)
}

/// The ports a new container publishes: `-p`'s, then (with `-P`) the image's `EXPOSE`d
/// ones that `-p` did not already publish.
pub fn requested<'a>(
    flags: &[PortMapping],
    all: bool,
    exposed: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<PortMapping>, PortError> {
    let mut ports = flags.to_vec();
    if all {
        for port in publish_all(exposed)? {
            let taken =
                |p: &PortMapping| (p.container_port, p.proto) == (port.container_port, port.proto);
            if !ports.iter().any(taken) {
                ports.push(port);
            }
        }
    }
    Ok(ports)
}

impl PortMapping {
    /// `80/tcp`: docker's key for the container side.
    pub fn private(&self) -> String {
        format!("{}/{}", self.container_port, self.proto)
    }

    /// `0.0.0.0:8080`: the host side, as `rbuild port` prints it.
    pub fn public(&self) -> String {
        format!("{}:{}", self.host_ip, self.host_port)
    }
}

/// `ps`'s PORTS cell: `0.0.0.0:8080->80/tcp, 127.0.0.1:5353->53/udp` (docker's format,
/// without its folding of consecutive ports into ranges).
pub fn ps_column(ports: &[PortMapping]) -> String {
    ports
        .iter()
        .map(|p| format!("{}->{}", p.public(), p.private()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// docker's `NetworkSettings.Ports` / `HostConfig.PortBindings`:
/// `{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}` (a port not chosen yet: `""`).
pub fn docker_ports(ports: &[PortMapping]) -> serde_json::Value {
    let mut map: std::collections::BTreeMap<String, Vec<serde_json::Value>> = Default::default();
    for p in ports {
        let host_port = match p.host_port {
            0 => String::new(),
            n => n.to_string(),
        };
        map.entry(p.private())
            .or_default()
            .push(serde_json::json!({"HostIp": p.host_ip.to_string(), "HostPort": host_port}));
    }
    serde_json::json!(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> PortMapping {
        let all = parse_publish(s).unwrap();
        assert_eq!(all.len(), 1, "{s}");
        all[0]
    }

    #[test]
    fn forms_as_docker() {
        let m = one("80");
        assert_eq!(
            (m.host_ip, m.host_port, m.container_port, m.proto),
            (Ipv4Addr::UNSPECIFIED, 0, 80, Proto::Tcp)
        );
        let m = one("8080:80/udp");
        assert_eq!(
            (m.host_port, m.container_port, m.proto),
            (8080, 80, Proto::Udp)
        );
        let m = one("127.0.0.1:8080:80");
        assert_eq!((m.host_ip, m.host_port), (Ipv4Addr::LOCALHOST, 8080));
        let m = one("127.0.0.1::80/TCP");
        assert_eq!(
            (m.host_ip, m.host_port, m.proto),
            (Ipv4Addr::LOCALHOST, 0, Proto::Tcp)
        );
    }

    #[test]
    fn ranges() {
        let all = parse_publish("8000-8002:80-82").unwrap();
        let pairs: Vec<_> = all
            .iter()
            .map(|m| (m.host_port, m.container_port))
            .collect();
        assert_eq!(pairs, [(8000, 80), (8001, 81), (8002, 82)]);
        let all = parse_publish("80-81").unwrap();
        assert!(all.iter().all(|m| m.host_port == 0));
        let m = one("8000-8010:80");
        assert_eq!((m.host_port, m.host_port_last), (8000, Some(8010)));
    }

    #[test]
    fn errors_are_clear() {
        for (bad, says) in [
            ("", "no port specified"),
            ("abc", "invalid containerPort: abc"),
            ("x:80", "invalid hostPort: x"),
            ("70000:80", "invalid hostPort: 70000"),
            ("0:80", "invalid hostPort: 0"),
            ("80/sctp", "invalid proto: sctp"),
            ("1.2.3:80:80", "invalid IP address"),
            ("[::1]:80:80", "IPv6"),
            ("8000-8001:80-82", "invalid ranges"),
            ("82-80", "invalid containerPort: 82-80"),
            ("1:2:3:4", "invalid publish spec"),
        ] {
            let err = parse_publish(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad:?}: {err}");
        }
    }

    #[test]
    fn exposed_ports_and_columns() {
        let all = publish_all(["53/udp", "80/tcp", "8000-8001/tcp"]).unwrap();
        assert_eq!(all.len(), 4);
        assert!(all.iter().all(|m| m.host_port == 0));
        let shown = ps_column(&[PortMapping {
            host_port: 8080,
            ..one("80")
        }]);
        assert_eq!(shown, "0.0.0.0:8080->80/tcp");
    }
}
