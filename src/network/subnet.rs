//! IPv4 subnets in CIDR notation: parsing, overlap, the addresses a network hands out.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An IPv4 subnet, `10.88.0.0/16`; the base address has no host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet {
    pub base: Ipv4Addr,
    pub prefix_len: u8,
}

impl Subnet {
    /// The subnet of `address/prefix_len` (host bits cleared).
    pub fn new(address: Ipv4Addr, prefix_len: u8) -> Subnet {
        let prefix_len = prefix_len.min(32);
        Subnet {
            base: Ipv4Addr::from(u32::from(address) & mask(prefix_len)),
            prefix_len,
        }
    }

    pub fn contains(&self, address: Ipv4Addr) -> bool {
        u32::from(address) & mask(self.prefix_len) == u32::from(self.base)
    }

    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.contains(other.base) || other.contains(self.base)
    }

    /// The first host address: the gateway (the bridge's address) by default, as docker.
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) + 1)
    }

    /// The host addresses, broadcast and network address left out.
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> {
        let base = u32::from(self.base);
        let size = 1u64 << (32 - u32::from(self.prefix_len));
        (1..size.saturating_sub(1)).map(move |i| Ipv4Addr::from(base + i as u32))
    }
}

fn mask(prefix_len: u8) -> u32 {
    if prefix_len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix_len))
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix_len)
    }
}

impl FromStr for Subnet {
    type Err = String;

    fn from_str(s: &str) -> Result<Subnet, String> {
        let bad = || format!("invalid subnet {s:?}: expected an IPv4 CIDR such as 10.88.0.0/16");
        let (address, len) = s.split_once('/').ok_or_else(bad)?;
        let address: Ipv4Addr = address.parse().map_err(|_| bad())?;
        let len: u8 = len.parse().map_err(|_| bad())?;
        if !(8..=30).contains(&len) {
            return Err(format!(
                "invalid subnet {s:?}: the prefix length must be between 8 and 30"
            ));
        }
        Ok(Subnet::new(address, len))
    }
}

impl TryFrom<String> for Subnet {
    type Error = String;

    fn try_from(s: String) -> Result<Subnet, String> {
        s.parse()
    }
}

impl From<Subnet> for String {
    fn from(s: Subnet) -> String {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_overlaps_and_lists_hosts() {
        let s: Subnet = "10.88.3.4/16".parse().unwrap();
        assert_eq!(s.to_string(), "10.88.0.0/16");
        assert!(s.overlaps(&"10.88.200.0/24".parse().unwrap()));
        assert!(!s.overlaps(&"10.89.0.0/16".parse().unwrap()));
        let small: Subnet = "192.168.5.0/30".parse().unwrap();
        let hosts: Vec<_> = small.hosts().map(|h| h.to_string()).collect();
        assert_eq!(hosts, ["192.168.5.1", "192.168.5.2"]);
        assert!("10.0.0.0".parse::<Subnet>().is_err());
        assert!("10.0.0.0/31".parse::<Subnet>().is_err());
    }
}
