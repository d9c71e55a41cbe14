//! The process plumbing of a rootless port forwarder: a process of the runner's user that
//! holds listening sockets bound in the host's network namespace and, after joining a
//! rootless container's user and network namespaces, opens its connections to the container
//! from inside (as podman's rootlessport does). The runner's policy (which ports, the
//! copying) is rbuild's `network` module; this module only passes the sockets on, joins the
//! namespaces and ties the forwarder's life to its parent.
//!
//! A separate process because `setns` into a user namespace needs a single-threaded caller;
//! the joined user namespace is one the runner's user created, so no privilege is needed.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

use super::NetworkError;

/// The descriptor of the forwarder's first inherited socket (the others follow).
const FIRST_FD: RawFd = 3;

/// Starts `cmd` with `sockets` as its descriptors 3, 4, … (in order; see [`inherited`]).
pub fn spawn_with_sockets(cmd: &mut Command, sockets: &[OwnedFd]) -> std::io::Result<Child> {
    // Copies numbered above the target range first, so that no `dup2` below overwrites a
    // socket that is still to be moved.
    let above = FIRST_FD + sockets.len() as RawFd;
    let copies = sockets
        .iter()
        .map(|s| nix::fcntl::fcntl(s.as_raw_fd(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(above)))
        .map(|r| {
            // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
            r.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
                .map_err(std::io::Error::from)
        })
        .collect::<std::io::Result<Vec<OwnedFd>>>()?;
    let raw: Vec<RawFd> = copies.iter().map(|c| c.as_raw_fd()).collect();
    // SAFETY: the closure runs between fork and exec and only calls dup2 (async-signal-safe)
    // on integers; `raw` was allocated before the fork and is only read.
    unsafe {
        cmd.pre_exec(move || {
            for (i, fd) in raw.iter().enumerate() {
                // dup2 clears close-on-exec on the new descriptor.
                if libc::dup2(*fd, FIRST_FD + i as RawFd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn();
    drop(copies);
    child
}

/// In the forwarder: the `count` sockets its parent passed ([`spawn_with_sockets`]).
pub fn inherited(count: usize) -> Vec<OwnedFd> {
    (0..count)
        .map(|i| {
            // SAFETY: descriptors 3.. were set up by spawn_with_sockets for this process,
            // which takes each once, here.
            unsafe { OwnedFd::from_raw_fd(FIRST_FD + i as RawFd) }
        })
        .collect()
}

/// Moves the (single-threaded) caller into the user and network namespaces of process
/// `pid`, which its own user created; sockets opened afterwards belong to that network
/// namespace, those opened before stay in the host's.
pub fn enter_user_and_network_of(pid: u32) -> Result<(), NetworkError> {
    let err = |source| NetworkError::Join { pid, source };
    let user = std::fs::File::open(format!("/proc/{pid}/ns/user")).map_err(err)?;
    let net = std::fs::File::open(format!("/proc/{pid}/ns/net")).map_err(err)?;
    nix::sched::setns(user, nix::sched::CloneFlags::CLONE_NEWUSER)
        .map_err(|e| err(std::io::Error::from(e)))?;
    nix::sched::setns(net, nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| err(std::io::Error::from(e)))
}

/// Makes the kernel kill the caller when the thread of `parent` that started it ends
/// (SIGKILL of the runner included); exits at once when `parent` is already gone. Called
/// after [`enter_user_and_network_of`], since a change of credentials clears the setting.
pub fn die_with_parent(parent: u32) -> std::io::Result<()> {
    crate::process::kill_with_parent()?;
    if nix::unistd::getppid().as_raw() as u32 != parent {
        std::process::exit(1);
    }
    Ok(())
}
