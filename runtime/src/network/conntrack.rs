//! Deleting connection-tracking entries through ctnetlink (`NETLINK_NETFILTER`), what
//! `conntrack -D -p udp --dport PORT` does, without the `conntrack` program.
//!
//! Why: a UDP "connection" has no end, so the kernel keeps its conntrack entry (and the NAT
//! decision in it) as long as datagrams keep coming. A client that sends to a published port
//! from one socket keeps reaching the address the container had when the first datagram went
//! through DNAT, even after the container restarted with another address (docker deletes
//! these entries when it sets a port up, for the same reason).
//!
//! How: the kernel deletes an entry only by its exact original tuple, so the table is dumped
//! (`IPCTNL_MSG_CT_GET` with `NLM_F_DUMP`), the matching entries picked here, and each
//! deleted (`IPCTNL_MSG_CT_DELETE` with the tuple attribute copied from the dump). An entry
//! that went away in between is not an error.

use std::net::Ipv4Addr;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use super::NetworkError;

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const AF_INET: u8 = 2;
const NLA_TYPE_MASK: u16 = 0x3fff;

const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_DST: u16 = 2;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_DST_PORT: u16 = 3;

/// IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;

/// Which entries to delete: those whose original direction goes to `port` with `protocol`,
/// to `address` when given (else to any address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flows {
    pub protocol: u8,
    pub address: Option<Ipv4Addr>,
    pub port: u16,
}

/// Deletes the IPv4 conntrack entries of each of `flows` in the caller's network namespace;
/// returns how many went.
pub fn delete_flows(flows: &[Flows]) -> Result<usize, NetworkError> {
    if flows.is_empty() {
        return Ok(0);
    }
    let mut socket = Ctnetlink::open()?;
    let tuples: Vec<Vec<u8>> = socket
        .dump()?
        .iter()
        .filter_map(|entry| original_tuple(entry))
        .filter(|(_, tuple)| flows.iter().any(|f| f.matches(tuple)))
        .map(|(raw, _)| raw.to_vec())
        .collect();
    let mut deleted = 0;
    for raw in &tuples {
        match socket.delete(raw) {
            Ok(()) => deleted += 1,
            Err(NetworkError::Netlink { source, .. })
                if source.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}

/// What an entry's original tuple says, as far as [`Flows`] looks.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tuple {
    destination: Option<Ipv4Addr>,
    protocol: Option<u8>,
    destination_port: Option<u16>,
}

impl Flows {
    fn matches(&self, tuple: &Tuple) -> bool {
        tuple.protocol == Some(self.protocol)
            && tuple.destination_port == Some(self.port)
            && self.address.is_none_or(|a| tuple.destination == Some(a))
    }
}

/// The attributes (type without flags, payload) in `bytes`, padded to 4 bytes each.
fn attributes(mut bytes: &[u8]) -> impl Iterator<Item = (u16, &[u8], &[u8])> {
    std::iter::from_fn(move || {
        let len = usize::from(u16::from_ne_bytes([*bytes.first()?, *bytes.get(1)?]));
        let kind = u16::from_ne_bytes([*bytes.get(2)?, *bytes.get(3)?]) & NLA_TYPE_MASK;
        if len < 4 || len > bytes.len() {
            return None;
        }
        let (whole, payload) = (&bytes[..len], &bytes[4..len]);
        bytes = &bytes[len.next_multiple_of(4).min(bytes.len())..];
        Some((kind, payload, whole))
    })
}

fn find(bytes: &[u8], wanted: u16) -> Option<&[u8]> {
    attributes(bytes)
        .find(|(kind, _, _)| *kind == wanted)
        .map(|(_, payload, _)| payload)
}

/// The raw `CTA_TUPLE_ORIG` attribute (header included) of an entry's attributes, and what
/// it says.
fn original_tuple(entry: &[u8]) -> Option<(&[u8], Tuple)> {
    let (_, payload, whole) = attributes(entry).find(|(kind, _, _)| *kind == CTA_TUPLE_ORIG)?;
    let ip = find(payload, CTA_TUPLE_IP);
    let proto = find(payload, CTA_TUPLE_PROTO);
    let tuple = Tuple {
        destination: ip
            .and_then(|ip| find(ip, CTA_IP_V4_DST))
            .and_then(|a| <[u8; 4]>::try_from(a).ok())
            .map(Ipv4Addr::from),
        protocol: proto
            .and_then(|p| find(p, CTA_PROTO_NUM))
            .and_then(|n| n.first().copied()),
        destination_port: proto
            .and_then(|p| find(p, CTA_PROTO_DST_PORT))
            .and_then(|n| <[u8; 2]>::try_from(n).ok())
            .map(u16::from_be_bytes),
    };
    Some((whole, tuple))
}

/// A netfilter netlink socket, one request at a time.
struct Ctnetlink {
    socket: Socket,
    seq: u32,
}

fn netlink_err(what: &str) -> impl Fn(std::io::Error) -> NetworkError + '_ {
    move |source| NetworkError::Netlink {
        what: what.to_string(),
        source,
    }
}

impl Ctnetlink {
    fn open() -> Result<Ctnetlink, NetworkError> {
        let err = netlink_err("open a ctnetlink socket");
        let mut socket = Socket::new(NETLINK_NETFILTER).map_err(&err)?;
        socket.bind_auto().map_err(&err)?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(&err)?;
        Ok(Ctnetlink { socket, seq: 0 })
    }

    /// Every IPv4 entry's attributes.
    fn dump(&mut self) -> Result<Vec<Vec<u8>>, NetworkError> {
        self.request(
            IPCTNL_MSG_CT_GET,
            NLM_F_DUMP,
            &[],
            "dump the conntrack table",
        )
    }

    /// Deletes the entry whose `CTA_TUPLE_ORIG` attribute is `tuple`.
    fn delete(&mut self, tuple: &[u8]) -> Result<(), NetworkError> {
        self.request(
            IPCTNL_MSG_CT_DELETE,
            NLM_F_ACK,
            tuple,
            "delete a conntrack entry",
        )
        .map(drop)
    }

    /// Sends a ctnetlink request with `attributes` after the netfilter header and collects
    /// the answers' attributes until the ACK or the end of the dump.
    fn request(
        &mut self,
        kind: u16,
        flags: u16,
        attributes: &[u8],
        what: &str,
    ) -> Result<Vec<Vec<u8>>, NetworkError> {
        let err = netlink_err(what);
        self.seq += 1;
        let packet = message(
            NFNL_SUBSYS_CTNETLINK << 8 | kind,
            NLM_F_REQUEST | flags,
            self.seq,
            attributes,
        );
        self.socket.send(&packet, 0).map_err(&err)?;
        let mut answers = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let size = self.socket.recv(&mut &mut buf[..], 0).map_err(&err)?;
            let mut rest = &buf[..size];
            while rest.len() >= 16 {
                let word = |at: usize| u32::from_ne_bytes(rest[at..at + 4].try_into().unwrap());
                let len = word(0) as usize;
                let kind = u16::from_ne_bytes([rest[4], rest[5]]);
                let seq = word(8);
                if len < 16 || len > rest.len() {
                    return Err(err(std::io::Error::other("a truncated netlink message")));
                }
                let body = &rest[16..len];
                rest = &rest[len.next_multiple_of(4).min(rest.len())..];
                if seq != self.seq {
                    continue;
                }
                match kind {
                    NLMSG_DONE => return Ok(answers),
                    NLMSG_ERROR => {
                        let code = body
                            .get(..4)
                            .map_or(0, |c| i32::from_ne_bytes(c.try_into().unwrap()));
                        return match code {
                            0 => Ok(answers),
                            code => Err(err(std::io::Error::from_raw_os_error(-code))),
                        };
                    }
                    // An entry: the netfilter header (4 bytes), then its attributes.
                    _ => answers.push(body.get(4..).unwrap_or_default().to_vec()),
                }
            }
        }
    }
}

/// A netlink message: header, netfilter header (IPv4, version 0, resource 0), `attributes`.
fn message(kind: u16, flags: u16, seq: u32, attributes: &[u8]) -> Vec<u8> {
    let len = 16 + 4 + attributes.len();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&[AF_INET, 0, 0, 0]);
    out.extend_from_slice(attributes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attribute(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = ((4 + payload.len()) as u16).to_ne_bytes().to_vec();
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(payload);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
        out
    }

    /// An entry as the kernel dumps it: the original tuple (nested attributes, with the
    /// nested flag), then another attribute.
    fn entry(destination: [u8; 4], protocol: u8, port: u16) -> Vec<u8> {
        let ip = [
            attribute(1, &[10, 0, 0, 9]),
            attribute(CTA_IP_V4_DST, &destination),
        ]
        .concat();
        let proto = [
            attribute(CTA_PROTO_NUM, &[protocol]),
            attribute(2, &4000u16.to_be_bytes()),
            attribute(CTA_PROTO_DST_PORT, &port.to_be_bytes()),
        ]
        .concat();
        let tuple = [
            attribute(CTA_TUPLE_IP | 0x8000, &ip),
            attribute(CTA_TUPLE_PROTO | 0x8000, &proto),
        ]
        .concat();
        [
            attribute(CTA_TUPLE_ORIG | 0x8000, &tuple),
            attribute(3, &[7, 7, 7, 7]),
        ]
        .concat()
    }

    #[test]
    fn picks_the_original_tuple_and_matches_protocol_port_and_address() {
        let e = entry([10, 88, 0, 1], IPPROTO_UDP, 5353);
        let (raw, tuple) = original_tuple(&e).unwrap();
        assert_eq!(raw, &e[..raw.len()], "the whole attribute, header included");
        assert_eq!(
            tuple,
            Tuple {
                destination: Some(Ipv4Addr::new(10, 88, 0, 1)),
                protocol: Some(IPPROTO_UDP),
                destination_port: Some(5353),
            }
        );
        let any = Flows {
            protocol: IPPROTO_UDP,
            address: None,
            port: 5353,
        };
        assert!(any.matches(&tuple));
        let on = |a| Flows {
            address: Some(a),
            ..any
        };
        assert!(on(Ipv4Addr::new(10, 88, 0, 1)).matches(&tuple));
        assert!(!on(Ipv4Addr::new(10, 88, 0, 2)).matches(&tuple));
        let tcp = original_tuple(&entry([10, 88, 0, 1], 6, 5353)).unwrap().1;
        assert!(!any.matches(&tcp));
        let other = original_tuple(&entry([10, 88, 0, 1], IPPROTO_UDP, 53))
            .unwrap()
            .1;
        assert!(!any.matches(&other));
    }

    #[test]
    fn a_message_has_its_length_type_and_netfilter_header() {
        let m = message(
            NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_DELETE,
            NLM_F_REQUEST | NLM_F_ACK,
            7,
            &[1, 2, 3, 4],
        );
        assert_eq!(m.len(), 24);
        assert_eq!(u32::from_ne_bytes(m[..4].try_into().unwrap()), 24);
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), 0x102);
        assert_eq!(u16::from_ne_bytes([m[6], m[7]]), 5);
        assert_eq!(&m[16..], &[AF_INET, 0, 0, 0, 1, 2, 3, 4]);
    }

    #[test]
    fn truncated_attributes_end_the_walk() {
        let mut e = entry([10, 88, 0, 1], IPPROTO_UDP, 5353);
        e.truncate(10);
        assert!(original_tuple(&e).is_none());
        assert_eq!(attributes(&[8, 0]).count(), 0);
    }
}
