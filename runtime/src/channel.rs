//! The socket between the runner and the container's setup processes: one message per
//! `SOCK_SEQPACKET` datagram, JSON-encoded, with an optional file descriptor attached.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use serde::{Deserialize, Serialize};

/// Largest message (the spec itself travels in a memfd, not here).
const MAX_MESSAGE: usize = 256 * 1024;

/// What the runner hands the monitor (through a memfd): the spec and, in terminal mode, the
/// runner terminal's size (rows, columns) for the pty, set before the process starts.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Launch {
    pub(crate) spec: crate::spec::ContainerSpec,
    pub(crate) window: Option<(u16, u16)>,
    /// The seccomp filters to install, compiled by the runner (see `seccomp::pack`); the
    /// spec's profile itself is not sent.
    pub(crate) seccomp: Vec<Vec<u64>>,
    /// Set for `exec`: join this running container instead of creating one.
    #[serde(default)]
    pub(crate) join: Option<crate::exec::Join>,
}

/// What the runner and the container's setup processes tell each other.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Message {
    /// Setup → runner: write the id maps of my new user namespace (rootless).
    NeedIdMap,
    /// Runner → setup: the id maps are written.
    IdMapDone,
    /// Setup → runner: the container's PID 1, as seen from the runner.
    Pid(i32),
    /// Setup → runner: mount points created in the rootfs (relative paths), to remove later.
    Created(Vec<PathBuf>),
    /// Setup → runner: the pty master is attached.
    Pty,
    /// Setup → runner: setup is complete, the process is being executed.
    Ready,
    /// Setup → runner: setup failed.
    Error(String),
    /// Setup → runner: something the container goes without (no cgroup limits, say), for
    /// the runner's debug output.
    Note(String),
    /// Setup (monitor) → runner: the container's network namespace exists; start the
    /// spec's user-mode network helper on the monitor's pid.
    AttachNetwork,
    /// Runner → setup (PID 1): the user-mode network is configured; go on.
    NetworkReady,
    /// Setup → runner: the container's PID 1 ended.
    /// `oom_killed`: the kernel's OOM killer killed a process of the container's cgroup.
    Exit {
        code: i32,
        signal: Option<i32>,
        #[serde(default)]
        oom_killed: bool,
    },
}

/// One end of the socket pair.
#[derive(Debug)]
pub(crate) struct Channel(OwnedFd);

impl Channel {
    /// A connected pair, both ends close-on-exec.
    pub(crate) fn pair() -> Result<(Channel, Channel), Errno> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        Ok((Channel(a), Channel(b)))
    }

    /// Takes ownership of an inherited descriptor.
    ///
    /// # Safety
    /// `fd` must be an open socket descriptor that nothing else owns.
    pub(crate) unsafe fn from_raw(fd: RawFd) -> Channel {
        // SAFETY: guaranteed by the caller.
        Channel(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// The descriptor, for handing this end to another process.
    pub(crate) fn into_fd(self) -> OwnedFd {
        self.0
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// Sends `message`, with `fd` attached when given.
    pub(crate) fn send_with(&self, message: &Message, fd: Option<RawFd>) -> Result<(), Errno> {
        let bytes = serde_json::to_vec(message).map_err(|_| Errno::EINVAL)?;
        let iov = [IoSlice::new(&bytes)];
        let fds;
        let cmsgs: &[ControlMessage] = match fd {
            Some(fd) => {
                fds = [fd];
                &[ControlMessage::ScmRights(&fds)]
            }
            None => &[],
        };
        loop {
            match sendmsg::<()>(self.raw(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
                Err(Errno::EINTR) => continue,
                other => return other.map(drop),
            }
        }
    }

    pub(crate) fn send(&self, message: &Message) -> Result<(), Errno> {
        self.send_with(message, None)
    }

    /// The next message and any descriptor attached to it; `None` once every sender is gone.
    pub(crate) fn recv(&self) -> Result<Option<(Message, Option<OwnedFd>)>, Errno> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        let (len, fd) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.raw(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
                Ok(msg) => {
                    let mut fd = None;
                    for c in msg.cmsgs().map_err(|_| Errno::EBADMSG)? {
                        if let ControlMessageOwned::ScmRights(fds) = c {
                            for raw in fds {
                                // SAFETY: SCM_RIGHTS just installed `raw` in this process;
                                // nothing else owns it.
                                let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                                fd.get_or_insert(owned);
                            }
                        }
                    }
                    break (msg.bytes, fd);
                }
            }
        };
        if len == 0 {
            return Ok(None);
        }
        let message = serde_json::from_slice(&buf[..len]).map_err(|_| Errno::EBADMSG)?;
        Ok(Some((message, fd)))
    }
}
