//! User-mode networking for rootless containers: a helper program (pasta, from Debian's
//! `passt`, or slirp4netns) that gives the container's network namespace a tap interface and
//! carries its traffic through ordinary sockets of the runner's user on the host.
//!
//! The runner (rbuild's network module) decides which helper and with which options
//! ([`UserNetwork`]); this module starts it at the right moment and ties its life to the
//! container's:
//!
//! - **When:** the monitor creates the network namespace and tells the runner
//!   (`Message::AttachNetwork`); the runner starts the helper on the monitor's pid (the
//!   helper joins the monitor's user and network namespaces) and waits until the helper has
//!   configured the interface, address and default route. Meanwhile PID 1 mounts the rootfs;
//!   before it executes anything it waits for `Message::NetworkReady`, so the process never
//!   sees a namespace without its network.
//! - **Ready:** the helper writes to an inherited pipe (descriptor 3): slirp4netns through
//!   `--ready-fd=3`, pasta through its PID file option pointed at `/proc/self/fd/3` (pasta
//!   writes that file only after it configured the namespace and bound its forwarded ports).
//!   No polling of the namespace and no file on disk.
//! - **How long:** the helper runs in the foreground as a child of the runner's thread that
//!   started the container, with `PR_SET_PDEATHSIG` = SIGKILL: when the container ends, the
//!   runner kills and reaps it (with the monitor); when the runner is killed (SIGKILL
//!   included), the kernel kills it. Neither helper quits by itself when the namespace's
//!   processes end (it holds the namespace open), so that tie is what keeps none behind.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde::{Deserialize, Serialize};

use super::NetworkError;

/// How long a helper may take to configure the namespace.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Which helper program [`UserNetwork::program`] is; it decides how readiness is signalled
/// and whether requests go to an API socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserNetworkKind {
    /// pasta (Debian package `passt`).
    Pasta,
    /// slirp4netns.
    Slirp4netns,
}

/// A user-mode network for a container's private network namespace, started by the runner
/// ([`crate::ContainerSpec::user_network`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserNetwork {
    pub kind: UserNetworkKind,
    /// The helper's executable.
    pub program: PathBuf,
    /// Its arguments; the element equal to [`UserNetwork::TARGET`] is replaced by the pid of
    /// a process in the container's namespaces. The runtime puts its readiness option (and,
    /// with `api_requests`, `--api-socket`) in front.
    pub args: Vec<String>,
    /// slirp4netns only: JSON requests (`add_hostfwd` and the like) sent to its API socket
    /// once it is ready, before the container's process starts; a reply with `error` fails
    /// the start.
    pub api_requests: Vec<String>,
}

impl UserNetwork {
    /// Placeholder in [`UserNetwork::args`] for the target pid.
    pub const TARGET: &'static str = "{pid}";
}

/// A running helper; dropping it kills and reaps it and removes its directory.
#[derive(Debug)]
pub(crate) struct Helper {
    child: Child,
    dir: PathBuf,
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A private directory for the helper's output and API socket.
fn helper_dir() -> std::io::Result<PathBuf> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = std::env::temp_dir();
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("rbuild-net-{}-{n}", std::process::id()));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            other => return other.map(|()| dir),
        }
    }
}

fn failed(net: &UserNetwork, what: String) -> NetworkError {
    NetworkError::Helper {
        program: net.program.display().to_string(),
        what,
    }
}

/// What the helper printed (its last lines), for an error message.
fn output_of(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("output")).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("Failed to send"))
        .collect();
    lines[lines.len().saturating_sub(5)..].join("; ")
}

/// Starts `net`'s helper on the namespaces of process `target` and returns once it has
/// configured the namespace (and answered its API requests).
pub(crate) fn start(net: &UserNetwork, target: i32) -> Result<Helper, NetworkError> {
    let io = |what: &str| {
        let what = what.to_string();
        move |e: std::io::Error| failed(net, format!("{what}: {e}"))
    };
    let dir = helper_dir().map_err(io("create its directory"))?;
    let output = File::create(dir.join("output")).map_err(io("create its output file"))?;
    let (mut ready_r, ready_w) = std::io::pipe().map_err(io("create a pipe"))?;
    let api = dir.join("api");
    let mut cmd = Command::new(&net.program);
    match net.kind {
        UserNetworkKind::Pasta => cmd.args(["--pid", "/proc/self/fd/3"]),
        UserNetworkKind::Slirp4netns => cmd.arg("--ready-fd=3"),
    };
    if !net.api_requests.is_empty() {
        cmd.arg("--api-socket").arg(&api);
    }
    let target = target.to_string();
    cmd.args(net.args.iter().map(|a| {
        if a == UserNetwork::TARGET {
            target.as_str()
        } else {
            a.as_str()
        }
    }))
    .stdin(Stdio::null())
    .stdout(output.try_clone().map_err(io("open its output file"))?)
    .stderr(output);
    let ready_fd = ready_w.as_raw_fd();
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs between fork and exec and only calls async-signal-safe
    // functions (dup2, fcntl, prctl, getppid, _exit) on integers; it does not allocate
    // (an error is built from errno without allocating).
    unsafe {
        cmd.pre_exec(move || {
            if ready_fd == 3 {
                if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(ready_fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            crate::process::kill_with_parent()?;
            // The runner died before the line above: nobody would kill this helper.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(io("start it"))?;
    drop(ready_w);
    let mut helper = Helper { child, dir };
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let mut fds = [PollFd::new(ready_r.as_fd(), PollFlags::POLLIN)];
        let waited = poll(&mut fds, PollTimeout::from(100u16));
        if let Ok(n) = waited.as_ref() {
            if *n > 0 {
                let mut byte = [0u8; 16];
                if ready_r.read(&mut byte).unwrap_or(0) > 0 {
                    break;
                }
            }
        }
        if let Ok(Some(status)) = helper.child.try_wait() {
            return Err(failed(
                net,
                format!(
                    "it exited ({status}) before the network was configured: {}",
                    output_of(&helper.dir)
                ),
            ));
        }
        if Instant::now() > deadline {
            return Err(failed(
                net,
                format!(
                    "the network was not configured within {} s: {}",
                    READY_TIMEOUT.as_secs(),
                    output_of(&helper.dir)
                ),
            ));
        }
    }
    for request in &net.api_requests {
        let reply = api_call(&api, request, deadline)
            .map_err(|e| failed(net, format!("API request {request}: {e}")))?;
        if reply.contains("\"error\"") || !reply.contains("\"return\"") {
            return Err(failed(net, format!("API request {request}: {reply}")));
        }
    }
    Ok(helper)
}

/// One request on slirp4netns's API socket (one connection each; the socket may appear a
/// moment after the ready signal).
fn api_call(socket: &Path, request: &str, deadline: Instant) -> std::io::Result<String> {
    let mut stream = loop {
        match std::os::unix::net::UnixStream::connect(socket) {
            Ok(s) => break s,
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    };
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(request.as_bytes())?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    Ok(reply)
}
