//! Name resolution on user-defined networks: a small DNS responder on the network's gateway
//! address, port 53, in the spirit of podman's aardvark-dns and docker's embedded DNS.
//!
//! Why a responder and not `/etc/hosts` entries: the hosts file of a running container would
//! have to be rewritten (inside its mount namespace) by whoever starts or stops another
//! member, and tools that ask DNS directly (`nslookup`, `dig`, many language runtimes'
//! resolvers) would not see them; a responder answers from the host-wide IPAM record
//! ([`super::state`]), which is right the moment a lease is taken or released.
//!
//! rbuild has no daemon, so every process that holds a container on the network (the
//! foreground `run`, or a detached container's monitor) runs one responder thread, all
//! bound to the same address with `SO_REUSEPORT` ([`rbuild_runtime::network::bind_shared_udp`]):
//! the kernel hands each query to one of them, and each answers the same, from the record.
//! The responder lives as long as its holder's lease, so the network answers while any
//! container is on it. A running container that `network connect` adds to a user network
//! gets a responder of its own in a small detached process ([`serve_detached`]): its runner
//! started before it was on that network, and the `connect` command ends at once.
//!
//! A query for the A record of a container's name, one of its `--network-alias`es or its
//! short ID (case-insensitive) gets the addresses of the live
//! containers on this network that answer to it (authoritative), or, when none does, those
//! on the other networks the asking container is connected to (`network connect`: the
//! container asks its own network's responder only); another type for such a
//! name gets an empty answer. Any other query is forwarded, as is, to the host's name servers
//! (those a container on the default bridge would use), and their answer relayed; SERVFAIL when
//! none answers in time. The container's `/etc/resolv.conf` names the gateway alone.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::NetworkError;

/// How often the serving thread looks at its stop flag.
const POLL: Duration = Duration::from_millis(200);

/// How long a forwarded query waits for an upstream server.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);

/// The TTL of our answers: short, containers come and go.
const TTL: u32 = 10;

/// One holder's responder thread; stopped (within [`POLL`]) when dropped.
#[derive(Debug)]
pub(super) struct Responder {
    stop: Arc<AtomicBool>,
}

impl Responder {
    /// Starts answering for the network of `bridge` on `gateway`:53.
    pub(super) fn start(bridge: String, gateway: Ipv4Addr) -> Result<Responder, NetworkError> {
        let address = SocketAddrV4::new(gateway, 53);
        let io = |error| NetworkError::Io {
            path: format!("udp socket {address}").into(),
            error,
        };
        let socket = rbuild_runtime::network::bind_shared_udp(address).map_err(io)?;
        socket.set_read_timeout(Some(POLL)).map_err(io)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("dns".into())
            .spawn(move || serve(&socket, &bridge, &flag))
            .map_err(io)?;
        Ok(Responder { stop })
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(socket: &UdpSocket, bridge: &str, stop: &AtomicBool) {
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let Ok((len, from)) = socket.recv_from(&mut buf) else {
            continue; // the poll timeout, or a transient error
        };
        let packet = &buf[..len];
        let Some(query) = Query::parse(packet) else {
            continue; // not a query we understand: as a server, stay silent
        };
        let asker = match from.ip() {
            IpAddr::V4(a) => a,
            IpAddr::V6(_) => continue,
        };
        let members = members(bridge, &query.name, asker);
        if !members.is_empty() {
            let addresses = if query.qtype == TYPE_A {
                members
            } else {
                Vec::new()
            };
            let _ = socket.send_to(&query.answer(packet, &addresses), from);
            continue;
        }
        // Forwarded in a thread of its own: a slow upstream must not hold other queries up.
        let (Ok(reply_socket), packet) = (socket.try_clone(), packet.to_vec()) else {
            continue;
        };
        std::thread::spawn(move || {
            let reply = forward(&packet).unwrap_or_else(|| query.failure(&packet));
            let _ = reply_socket.send_to(&reply, from);
        });
    }
}

/// The addresses of the live containers on `bridge` that answer to `name`; when there are
/// none, those on the other bridges that `asker` (an address on `bridge`) has an address on.
fn members(bridge: &str, name: &str, asker: Ipv4Addr) -> Vec<Ipv4Addr> {
    let Ok(state) = super::state::read() else {
        return Vec::new();
    };
    let live = || state.leases.iter().filter(|l| l.alive());
    let on = |bridge: &str| -> Vec<Ipv4Addr> {
        live()
            .filter(|l| l.bridge == bridge && l.names.iter().any(|n| n.eq_ignore_ascii_case(name)))
            .filter_map(|l| l.address)
            .collect()
    };
    let here = on(bridge);
    if !here.is_empty() {
        return here;
    }
    let Some(owner) = live()
        .find(|l| l.bridge == bridge && l.address == Some(asker))
        .map(|l| &l.owner)
    else {
        return Vec::new();
    };
    live()
        .filter(|l| &l.owner == owner && l.bridge != bridge && l.address.is_some())
        .flat_map(|l| on(&l.bridge))
        .collect()
}

/// Asks the host's name servers, in turn, and returns the first answer.
fn forward(packet: &[u8]) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], 0))).ok()?;
    socket.set_read_timeout(Some(UPSTREAM_TIMEOUT)).ok()?;
    let mut buf = [0u8; 4096];
    for server in rbuild_runtime::network::upstream_name_servers() {
        let IpAddr::V4(_) = server else { continue };
        if socket.send_to(packet, (server, 53)).is_err() {
            continue;
        }
        while let Ok((len, from)) = socket.recv_from(&mut buf) {
            // The reply to this query, from this server (same ID).
            if from.ip() == server && len >= 2 && buf[..2] == packet[..2] {
                return Some(buf[..len].to_vec());
            }
        }
    }
    None
}

const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;
const RCODE_SERVFAIL: u16 = 2;

/// A standard query with one question.
#[derive(Debug)]
struct Query {
    /// Lower case, without the trailing dot.
    name: String,
    qtype: u16,
    /// Where the question ends in the packet.
    question_end: usize,
}

impl Query {
    fn parse(packet: &[u8]) -> Option<Query> {
        let word = |at: usize| Some(u16::from_be_bytes([*packet.get(at)?, *packet.get(at + 1)?]));
        let flags = word(2)?;
        let is_query = flags & 0x8000 == 0 && (flags >> 11) & 0xf == 0;
        if !is_query || word(4)? != 1 {
            return None;
        }
        let mut at = 12;
        let mut labels = Vec::new();
        loop {
            let len = usize::from(*packet.get(at)?);
            at += 1;
            if len == 0 {
                break;
            }
            if len > 63 {
                return None; // a compression pointer: not in a question
            }
            let label = packet.get(at..at + len)?;
            labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
            at += len;
        }
        let qtype = word(at)?;
        let qclass = word(at + 2)?;
        (qclass == CLASS_IN && !labels.is_empty()).then(|| Query {
            name: labels.join("."),
            qtype,
            question_end: at + 4,
        })
    }

    /// The header of a response to `packet` with `rcode` and `answers` answer records.
    fn header(&self, packet: &[u8], authoritative: bool, rcode: u16, answers: u16) -> Vec<u8> {
        let rd = u16::from_be_bytes([packet[2], packet[3]]) & 0x0100;
        let aa = if authoritative { 0x0400 } else { 0 };
        let flags = 0x8000 | aa | rd | 0x0080 | rcode;
        let mut out = packet[..2].to_vec();
        for word in [flags, 1, answers, 0, 0] {
            out.extend_from_slice(&word.to_be_bytes());
        }
        out.extend_from_slice(&packet[12..self.question_end]);
        out
    }

    /// The authoritative answer: `addresses` as A records of the question's name.
    fn answer(&self, packet: &[u8], addresses: &[Ipv4Addr]) -> Vec<u8> {
        let mut out = self.header(packet, true, 0, addresses.len() as u16);
        for address in addresses {
            out.extend_from_slice(&[0xc0, 0x0c]); // the name: the question's
            out.extend_from_slice(&TYPE_A.to_be_bytes());
            out.extend_from_slice(&CLASS_IN.to_be_bytes());
            out.extend_from_slice(&TTL.to_be_bytes());
            out.extend_from_slice(&4u16.to_be_bytes());
            out.extend_from_slice(&address.octets());
        }
        out
    }

    fn failure(&self, packet: &[u8]) -> Vec<u8> {
        self.header(packet, false, RCODE_SERVFAIL, 0)
    }
}

/// The hidden subcommand that runs [`serve_while_held`] (see [`serve_detached`]).
pub const COMMAND: &str = "network-responder";

/// How often a detached responder looks whether the lease it answers for is still held.
const HELD_POLL: Duration = Duration::from_secs(1);

/// Starts a detached process that answers for `bridge`'s network on `gateway` while the
/// runner `runner` (a live process) holds the lease of `address` there: a running
/// container that `network connect` put on a user network, whose runner answers only on the
/// networks it joined when it started. Returns once it answers, so that a name asked right
/// after `connect` finds it.
pub(super) fn serve_detached(
    bridge: &str,
    gateway: Ipv4Addr,
    address: Ipv4Addr,
    runner: u32,
) -> Result<(), NetworkError> {
    let exe = "/proc/self/exe";
    let mut cmd = std::process::Command::new(exe);
    cmd.arg(COMMAND)
        .args([
            bridge.to_string(),
            gateway.to_string(),
            address.to_string(),
            runner.to_string(),
        ])
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    rbuild_runtime::detach::orphan(&mut cmd);
    let io = |error| NetworkError::Io {
        path: exe.into(),
        error,
    };
    let mut child = cmd.spawn().map_err(io)?;
    child.wait().map_err(io)?; // the child that forked the responder, not the responder
    let mut ready = String::new();
    if let Some(out) = child.stdout.take() {
        std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut ready).map_err(io)?;
    }
    match ready.trim() {
        "ready" => Ok(()),
        _ => Err(NetworkError::Io {
            path: exe.into(),
            error: std::io::Error::other("the name responder did not start"),
        }),
    }
}

/// Answers for `bridge`'s network on `gateway` (calling `ready` once it does) until the
/// lease of `address` there is no longer held by the live process `runner` (the container
/// stopped or was disconnected).
pub fn serve_while_held(
    bridge: String,
    gateway: Ipv4Addr,
    address: Ipv4Addr,
    runner: u32,
    ready: impl FnOnce(),
) -> Result<(), NetworkError> {
    let held = || {
        super::state::read().is_ok_and(|state| {
            state.leases.iter().any(|l| {
                l.bridge == bridge && l.address == Some(address) && l.pid == runner && l.alive()
            })
        })
    };
    let _responder = Responder::start(bridge.clone(), gateway)?;
    ready();
    while held() {
        std::thread::sleep(HELD_POLL);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query for `name`, type `qtype`, ID 0x1234, recursion desired, with an EDNS record.
    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
        for label in name.split('.') {
            p.push(label.len() as u8);
            p.extend_from_slice(label.as_bytes());
        }
        p.push(0);
        p.extend_from_slice(&qtype.to_be_bytes());
        p.extend_from_slice(&CLASS_IN.to_be_bytes());
        p.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]); // OPT
        p
    }

    #[test]
    fn answers_a_query_with_the_question_and_a_records() {
        let packet = query("Web", 1);
        let q = Query::parse(&packet).unwrap();
        assert_eq!(q.name, "web");
        assert_eq!(q.qtype, TYPE_A);
        let reply = q.answer(&packet, &[Ipv4Addr::new(10, 89, 0, 2)]);
        // ID, flags (response, AA, RD, RA), one question, one answer, nothing else.
        assert_eq!(
            &reply[..12],
            &[0x12, 0x34, 0x85, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]
        );
        assert_eq!(&reply[12..q.question_end], &packet[12..q.question_end]);
        let rr = &reply[q.question_end..];
        assert_eq!(
            rr,
            &[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 10, 0, 4, 10, 89, 0, 2]
        );
        let fail = q.failure(&packet);
        assert_eq!(&fail[2..8], &[0x81, 0x82, 0, 1, 0, 0]);
    }

    #[test]
    fn ignores_responses_and_compressed_questions() {
        let mut packet = query("web", 1);
        packet[2] |= 0x80;
        assert!(Query::parse(&packet).is_none());
        let mut packet = query("web", 1);
        packet[12] = 0xc0;
        assert!(Query::parse(&packet).is_none());
        assert!(Query::parse(&[0; 5]).is_none());
    }
}
