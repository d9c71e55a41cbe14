//! Namespaces: which ones a container gets, the user namespace's id maps, loopback, hostname.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::Command;

use nix::errno::Errno;
use nix::sched::{unshare, CloneFlags};

use crate::spec::NetworkMode;

/// Errors of namespace setup.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("failed to create {what} namespace")]
    Unshare {
        what: &'static str,
        #[source]
        source: Errno,
    },
    #[error("failed to write the id map of the user namespace ({what})")]
    IdMap {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to become root in the user namespace")]
    BecomeRoot(#[source] Errno),
    #[error("failed to set hostname {hostname:?}")]
    Hostname {
        hostname: String,
        #[source]
        source: Errno,
    },
    #[error("failed to bring up the loopback interface")]
    Loopback(#[source] Errno),
}

/// Creates the UTS, IPC, PID (for the next child) and network (unless `Host`) namespaces for
/// the calling process. The cgroup namespace comes later ([`unshare_cgroup`]), once the
/// container's PID 1 is in its own cgroup.
pub(crate) fn unshare_container(network: NetworkMode) -> Result<(), NamespaceError> {
    let mut flags = CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWPID;
    if network != NetworkMode::Host {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    unshare(flags).map_err(|source| NamespaceError::Unshare {
        what: "uts, ipc, pid or network",
        source,
    })
}

/// Creates a cgroup namespace rooted at the calling process's cgroup, where the kernel has
/// cgroup namespaces.
pub(crate) fn unshare_cgroup() -> Result<(), NamespaceError> {
    if !Path::new("/proc/self/ns/cgroup").exists() {
        return Ok(());
    }
    match unshare(CloneFlags::CLONE_NEWCGROUP) {
        Ok(()) | Err(Errno::EINVAL) => Ok(()), // EINVAL: no cgroup namespaces, go on without
        Err(source) => Err(NamespaceError::Unshare {
            what: "cgroup",
            source,
        }),
    }
}

/// Creates a new user namespace for the calling process (rootless mode).
pub(crate) fn unshare_user() -> Result<(), NamespaceError> {
    unshare(CloneFlags::CLONE_NEWUSER).map_err(|source| NamespaceError::Unshare {
        what: "user",
        source,
    })
}

/// Takes uid and gid 0 inside a freshly mapped user namespace.
pub(crate) fn become_root() -> Result<(), NamespaceError> {
    let root_uid = nix::unistd::Uid::from_raw(0);
    let root_gid = nix::unistd::Gid::from_raw(0);
    nix::unistd::setresgid(root_gid, root_gid, root_gid).map_err(NamespaceError::BecomeRoot)?;
    nix::unistd::setresuid(root_uid, root_uid, root_uid).map_err(NamespaceError::BecomeRoot)
}

/// The caller's subordinate id range from `/etc/subuid` or `/etc/subgid` (first match).
fn subordinate_range(file: &str, user: &str, id: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        let mut parts = line.split(':');
        let (owner, start, count) = (parts.next()?, parts.next()?, parts.next()?);
        if owner != user && owner != id.to_string() {
            return None;
        }
        Some((start.trim().parse().ok()?, count.trim().parse().ok()?))
    })
}

fn user_name(uid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() > 2 && fields[2] == uid.to_string()).then(|| fields[0].to_string())
    })
}

/// Writes the id maps of process `pid`'s new user namespace, from the runner (outside it):
/// the caller becomes root; with `newuidmap`/`newgidmap` and an `/etc/subuid`/`/etc/subgid`
/// range, uids and gids 1..=count map to that range. Without them only root exists inside.
pub(crate) fn write_id_maps(pid: i32) -> Result<(), NamespaceError> {
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    let name = user_name(uid).unwrap_or_default();
    let sub_uid = subordinate_range("/etc/subuid", &name, uid);
    let sub_gid = subordinate_range("/etc/subgid", &name, uid);
    let helpers =
        Path::new("/usr/bin/newuidmap").exists() && Path::new("/usr/bin/newgidmap").exists();
    if let (true, Some((us, uc)), Some((gs, gc))) = (helpers, sub_uid, sub_gid) {
        run_id_helper("newuidmap", pid, uid, us, uc)?;
        return run_id_helper("newgidmap", pid, gid, gs, gc);
    }
    let write = |file: &str, content: String| {
        let path = format!("/proc/{pid}/{file}");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(content.as_bytes()))
            .map_err(|source| NamespaceError::IdMap { what: path, source })
    };
    write("uid_map", format!("0 {uid} 1\n"))?;
    write("setgroups", "deny\n".to_string())?;
    write("gid_map", format!("0 {gid} 1\n"))
}

fn run_id_helper(
    helper: &str,
    pid: i32,
    own: u32,
    start: u64,
    count: u64,
) -> Result<(), NamespaceError> {
    let output = Command::new(helper)
        .args([pid.to_string(), "0".into(), own.to_string(), "1".into()])
        .args(["1".to_string(), start.to_string(), count.to_string()])
        .output()
        .map_err(|source| NamespaceError::IdMap {
            what: helper.to_string(),
            source,
        })?;
    if output.status.success() {
        return Ok(());
    }
    Err(NamespaceError::IdMap {
        what: format!(
            "{helper}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        source: std::io::Error::other(format!("{helper} exited with {}", output.status)),
    })
}

/// Sets the hostname of the current UTS namespace.
pub(crate) fn set_hostname(hostname: &str) -> Result<(), NamespaceError> {
    nix::unistd::sethostname(hostname).map_err(|source| NamespaceError::Hostname {
        hostname: hostname.to_string(),
        source,
    })
}

/// Sets `IFF_UP` on `lo` in the current network namespace.
pub(crate) fn loopback_up() -> Result<(), NamespaceError> {
    // SAFETY: plain socket(2) call; the returned descriptor is checked and owned below.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(NamespaceError::Loopback(Errno::last()));
    }
    // SAFETY: `raw` is a fresh descriptor nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is a plain C struct for which all-zero bytes are a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the name and writes the flags of `req`, a valid ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(NamespaceError::Loopback(Errno::last()));
    }
    // SAFETY: after SIOCGIFFLAGS the flags member of the union is the initialised one.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads `req`, a valid ifreq with name and flags set.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(NamespaceError::Loopback(Errno::last()));
    }
    Ok(())
}
