//! The monitor of a detached container (`run -d`, `start`, `restart`): a small process,
//! in the spirit of podman's conmon, that outlives the CLI which started it.
//!
//! It is the `rbuild` binary itself, run as the hidden subcommand [`SUBCOMMAND`] in a
//! session of its own (the starter's Ctrl-C or hang-up do not reach it), with its stderr in
//! `<container dir>/monitor.log` and its stdout a pipe to the starter. It
//!
//! 1. takes the container's lease lock ([`Store::hold_lease`]): the lock is the "is it
//!    running" truth for everyone else ([`Store::container_running`]); when the monitor dies,
//!    even by SIGKILL, the kernel releases it, and the container dies with it (the runtime's
//!    processes have the parent-death signal), so a record saying "running" with a free
//!    lock is a container that was killed ([`super::lifecycle::settle`] records it so);
//! 2. runs the container from its `spec.json` and the kept upper dir through
//!    [`super::running::execute`], the code path the foreground `run` uses, so the record is
//!    written the same way; the process's stdout and stderr go to the json-file log
//!    ([`super::logs`]) and to the clients of the attach socket ([`super::attach`]), which
//!    also feed the stdin of a `-i` container and size its pty (with [`ATTACHED_FLAG`],
//!    from [`launch_attached`], the first client is awaited before the process starts);
//! 3. tells the starter `started` (or the error) on its stdout, one line: the starter then
//!    prints the ID and returns (the protocol is [`launch`]'s and [`serve`]'s alone;
//!    `listening` comes first for [`launch_attached`]);
//! 4. when the process exits, applies the restart policy (docker's: a growing delay from
//!    100 ms between restarts, none after a `stop`/`kill`), and for `run -d --rm` removes
//!    the container;
//! 5. lets go of the lease, then gives its attach clients up to [`attach::FLUSH_WAIT`] to
//!    take what is still queued for them, the exit code last.
//!
//! Resources that must live exactly as long as the container's process (published ports'
//! listeners, for one) belong in [`RunResources`]: acquired when the process started,
//! dropped when it exited, once per run.

use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rbuild_runtime::{Container, ContainerSpec};

use super::attach::{self, AttachRequest};
use super::attach_client::Attachment;
use super::logs::{self, LogWriter};
use super::{health, io_err, running, spec_file, ContainerError};
use crate::store::{ContainerRecord, RestartPolicy, Store};

/// The hidden subcommand that runs a monitor: `rbuild --root ROOT container-monitor ID`.
pub const SUBCOMMAND: &str = "container-monitor";

/// The monitor's own messages (warnings, why it gave up), in the container dir.
pub const MONITOR_LOG: &str = "monitor.log";

pub(super) const STARTED: &str = "started";
/// With [`ATTACHED_FLAG`]: the attach socket listens, a client is awaited.
pub(super) const LISTENING: &str = "listening";
/// The monitor subcommand's flag for [`launch_attached`].
pub const ATTACHED_FLAG: &str = "--attached";
/// How long a monitor started for a client waits for it to connect.
pub(super) const ATTACH_WAIT: Duration = Duration::from_secs(60);

/// Starts a monitor for the created or stopped container `id` (program `exe`, normally the
/// running `rbuild`; `args` are global options put before the subcommand) and returns once
/// the container's process runs; `Err` with the monitor's message when it could not start it.
pub fn launch(
    store: &Store,
    id: &str,
    exe: &Path,
    args: &[OsString],
) -> Result<(), ContainerError> {
    Starting::spawn(store, id, exe, args, &[SUBCOMMAND, id])?.expect(STARTED)
}

/// As [`launch`], with a client attached before the process starts (`start -a`, the
/// foreground `run -it`): the monitor listens, the client connects and sends `request`,
/// then the process starts, so the client sees all of its output.
pub fn launch_attached(
    store: &Store,
    id: &str,
    exe: &Path,
    args: &[OsString],
    request: &AttachRequest,
) -> Result<Attachment, ContainerError> {
    let command = [SUBCOMMAND, id, ATTACHED_FLAG];
    launch_serving(store, id, exe, args, &command, attach::SOCKET, request).map(|(a, _)| a)
}

/// Starts `command` (the hidden subcommand of a helper that outlives us: a monitor, an
/// `exec`'s holder) and attaches to it before its process starts: it says `listening` once
/// socket `socket` of container `id`'s dir listens, then `started` (the protocol of
/// [`serve`]). Returns the attachment and the helper's PID.
pub(super) fn launch_serving(
    store: &Store,
    id: &str,
    exe: &Path,
    args: &[OsString],
    command: &[&str],
    socket: &str,
    request: &AttachRequest,
) -> Result<(Attachment, u32), ContainerError> {
    let mut starting = Starting::spawn(store, id, exe, args, command)?;
    starting.expect(LISTENING)?;
    let attachment = Attachment::connect_at(store, id, socket, request)?;
    starting.expect(STARTED)?;
    Ok((attachment, starting.pid))
}

/// A monitor being started: its first lines tell how it went.
struct Starting {
    lines: std::io::BufReader<std::process::ChildStdout>,
    log_path: std::path::PathBuf,
    pid: u32,
}

impl Starting {
    fn spawn(
        store: &Store,
        id: &str,
        exe: &Path,
        args: &[OsString],
        command: &[&str],
    ) -> Result<Starting, ContainerError> {
        let root = std::path::absolute(store.root()).map_err(io_err(store.root()))?;
        let dir = store.container_dir(id);
        let log_path = dir.join(MONITOR_LOG);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io_err(&log_path))?;
        let mut cmd = std::process::Command::new(exe);
        cmd.args(args)
            .arg("--root")
            .arg(&root)
            .args(command)
            .current_dir("/")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(log);
        rbuild_runtime::detach::new_session(&mut cmd);
        let mut child = cmd.spawn().map_err(io_err(exe))?;
        let stdout = child.stdout.take().expect("piped");
        let pid = child.id();
        // The monitor goes on alone: not waited for (init reaps it once we exit).
        drop(child);
        Ok(Starting {
            lines: std::io::BufReader::new(stdout),
            log_path,
            pid,
        })
    }

    /// Reads the monitor's next line: `Ok` when it is `want`.
    fn expect(&mut self, want: &str) -> Result<(), ContainerError> {
        let mut line = String::new();
        let _ = self.lines.read_line(&mut line);
        let line = line.trim_end();
        match line.strip_prefix("error: ") {
            _ if line == want => Ok(()),
            Some(message) => Err(ContainerError::StartFailed(message.to_string())),
            None => Err(ContainerError::StartFailed(format!(
                "the container monitor ended before the container started (see {})",
                self.log_path.display()
            ))),
        }
    }
}

/// What the monitor holds for one run of the container's process: acquired right after the
/// process started, dropped right after it exited (before a restart acquires it anew).
/// Per-container resources that must not outlive the process go here (published ports'
/// listeners and forwarders: [`Container::connect_tcp`] reaches the container's network
/// namespace while `container` runs). The health checks are the first such resource.
pub(super) struct RunResources {
    _health: Option<health::Checker>,
}

impl RunResources {
    fn acquire(
        store: &Store,
        record: &ContainerRecord,
        spec: &ContainerSpec,
        container: &Container,
    ) -> RunResources {
        let health = record.healthcheck.clone().map(|check| {
            health::Checker::start(store, &record.id, check, container.pid(), spec.clone())
        });
        RunResources { _health: health }
    }
}

/// The monitor's work (see the module docs) for container `id`: `ready` gets the lines
/// for [`launch`] (`started`, or the error; before them `listening` when `attached`),
/// `warn` the problems that do not stop the container. Returns when the container ended
/// for good.
pub fn serve(
    store: &Store,
    id: &str,
    attached: bool,
    ready: impl Write,
    mut warn: impl FnMut(String),
) -> Result<(), ContainerError> {
    telling(ready, |tell| {
        serve_runs(store, id, attached, tell, &mut warn)
    })
}

/// Runs `work` with `tell`, which writes the starter's lines to `ready`; an error before
/// `started` was told goes to the starter as `error: MESSAGE` ([`Starting::expect`]).
pub(super) fn telling<T>(
    mut ready: impl Write,
    work: impl FnOnce(&mut dyn FnMut(&str)) -> Result<T, ContainerError>,
) -> Result<T, ContainerError> {
    let mut ready_sent = false;
    let result = work(&mut |line: &str| {
        ready_sent |= line == STARTED;
        let _ = writeln!(ready, "{line}").and_then(|()| ready.flush());
    });
    if let Err(e) = &result {
        if !ready_sent {
            let _ = writeln!(ready, "error: {}", error_chain(e)).and_then(|()| ready.flush());
        }
    }
    result
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text.replace('\n', " ")
}

fn serve_runs(
    store: &Store,
    id: &str,
    attached: bool,
    tell: &mut dyn FnMut(&str),
    warn: &mut dyn FnMut(String),
) -> Result<(), ContainerError> {
    let Some(lease) = store.hold_lease(id)? else {
        return Err(ContainerError::AlreadyRunning(id.to_string()));
    };
    let mut spec = spec_file::load(store, id)?;
    let mut attach = attach::Server::bind(&lease.dir, spec.process.terminal)?;
    if attached {
        tell(LISTENING);
        spec.process.console_size = attach.wait_client(ATTACH_WAIT)?;
    }
    let Some(mut record) = store.modify_container(id, |r| r.manually_stopped = false)? else {
        return Err(crate::store::StoreError::NoSuchContainer(id.to_string()).into());
    };
    let log = Arc::new(Mutex::new(LogWriter::open(
        logs::log_path(&lease.dir, id),
        logs::MAX_SIZE,
    )?));
    let mut first = true;
    let mut delay = Duration::from_millis(100);
    let result = loop {
        let (stdio, copies) = attach.stdio(Some(&log), record.open_stdin)?;
        // `started` as soon as the start's record is certain (`ps` after `run -d` waits for it).
        let announce = || {
            if first {
                tell(STARTED);
            }
        };
        let executed = running::execute(store, &record, Some(id), &spec, stdio, announce, |c| {
            attach.started(c);
            if first {
                crate::killpoint::reached("monitor-running");
            }
            RunResources::acquire(store, &record, &spec, c)
        });
        for copy in copies {
            let _ = copy.join();
        }
        attach.ended(executed.as_ref().ok().map(|e| e.status.code));
        let execution = match executed {
            Ok(e) => e,
            Err(e) => break Err(e),
        };
        first = false;
        execution.warnings.into_iter().for_each(&mut *warn);
        let latest = match execution.record {
            Some(latest) => Some(latest),
            None => current(store, id)?,
        };
        let Some(latest) = latest else {
            break Ok(()); // removed (`rm -f`)
        };
        if !restarts(&latest, execution.status.code) {
            break Ok(());
        }
        // A restart joins the networks connected since (`network connect`).
        record.connected = latest.connected;
        record.left_own_network = latest.left_own_network;
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_secs(60));
        // A `stop` during the delay finds no process to signal: it set the flag, and waits.
        let again = store.modify_container(id, |r| {
            if !r.manually_stopped {
                r.restart_count += 1;
            }
        })?;
        if again.is_none_or(|r| r.manually_stopped) {
            break Ok(());
        }
    };
    // `run -d --rm`: removed while the lease is still held, so that whoever waits for the
    // container to stop (`wait`, `stop`) finds it gone, as the foreground `run --rm` does.
    if record.auto_remove && (result.is_ok() || first) {
        match store.remove_container(id) {
            // As docker's --rm: the container's anonymous volumes go with it.
            Ok(()) => super::volumes::remove_anonymous_volumes(store, &record.anonymous_volumes)
                .into_iter()
                .for_each(&mut *warn),
            Err(e) => warn(format!("failed to remove container {id}: {e}")),
        }
    }
    attach.close();
    drop(lease);
    // The clients still get what is queued for them, the exit code last: a slow one would
    // otherwise lose it and ask the record instead (which `--rm` removed). The container is
    // not waited for meanwhile: `wait`, `stop` and `ps` see it exited (the lease is free).
    attach.flush(attach::FLUSH_WAIT);
    result
}

fn current(store: &Store, id: &str) -> Result<Option<ContainerRecord>, ContainerError> {
    match store.resolve_container(id) {
        Ok(r) => Ok(Some(r)),
        Err(crate::store::StoreError::NoSuchContainer(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Docker's rules: never after a `stop`/`kill`; `on-failure[:N]` after a non-zero exit, at
/// most N times.
fn restarts(record: &ContainerRecord, code: i32) -> bool {
    if record.manually_stopped {
        return false;
    }
    match record.restart {
        RestartPolicy::No => false,
        RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        RestartPolicy::OnFailure { max } => code != 0 && (max == 0 || record.restart_count < max),
    }
}
