//! A blocking rtnetlink socket: one request at a time, acknowledged or answered by a dump.
//!
//! rbuild changes links, addresses and routes a handful of times per container; a blocking
//! socket with sequence numbers is all that needs (no async runtime, no `ip` processes).

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use super::NetworkError;

/// An rtnetlink socket bound to the network namespace it was opened in.
pub(crate) struct Netlink {
    socket: Socket,
    seq: u32,
}

/// How a request is sent.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Create; fail when it exists.
    Create,
    /// Change or delete something that exists.
    Change,
    /// List everything of a kind.
    Dump,
}

impl Netlink {
    /// Opens a socket in the caller's current network namespace.
    pub(crate) fn open() -> Result<Netlink, NetworkError> {
        let err = |e: std::io::Error| NetworkError::Netlink {
            what: "open a netlink socket".into(),
            source: e,
        };
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(err)?;
        socket.bind_auto().map_err(err)?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(err)?;
        Ok(Netlink { socket, seq: 0 })
    }

    /// Sends `message` and collects the answers until the kernel's ACK (or end of dump).
    /// `what` names the request in errors.
    pub(crate) fn request(
        &mut self,
        message: RouteNetlinkMessage,
        kind: Kind,
        what: &str,
    ) -> Result<Vec<RouteNetlinkMessage>, NetworkError> {
        let err = |source: std::io::Error| NetworkError::Netlink {
            what: what.to_string(),
            source,
        };
        self.seq += 1;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST
            | match kind {
                Kind::Create => NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
                Kind::Change => NLM_F_ACK,
                Kind::Dump => NLM_F_DUMP,
            };
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket.send(&buf, 0).map_err(err)?;
        let mut answers = Vec::new();
        let mut receive = vec![0u8; 64 * 1024];
        loop {
            let size = self.socket.recv(&mut &mut receive[..], 0).map_err(err)?;
            let mut offset = 0;
            while offset < size {
                let reply =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(&receive[offset..size])
                        .map_err(|e| err(std::io::Error::other(e.to_string())))?;
                let length = reply.header.length as usize;
                if length == 0 {
                    return Ok(answers);
                }
                offset += length;
                if reply.header.sequence_number != self.seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(answers), // the ACK
                            Some(code) => Err(err(std::io::Error::from_raw_os_error(-code.get()))),
                        };
                    }
                    NetlinkPayload::Done(_) => return Ok(answers),
                    NetlinkPayload::InnerMessage(m) => answers.push(m),
                    _ => {}
                }
            }
        }
    }
}
