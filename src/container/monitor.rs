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
//!    ([`super::logs`]);
//! 3. tells the starter `started` (or the error) on its stdout, one line: the starter then
//!    prints the ID and returns (the protocol is [`launch`]'s and [`serve`]'s alone);
//! 4. when the process exits, applies the restart policy (docker's: a growing delay from
//!    100 ms between restarts, none after a `stop`/`kill`), and for `run -d --rm` removes
//!    the container.
//!
//! Resources that must live exactly as long as the container's process (published ports'
//! listeners, for one) belong in [`RunResources`]: acquired when the process started,
//! dropped when it exited, once per run.

use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rbuild_runtime::{Container, ContainerSpec, Io, Stdio};

use super::logs::{self, LogWriter};
use super::{health, io_err, running, spec_file, ContainerError};
use crate::store::{ContainerRecord, RestartPolicy, Store};

/// The hidden subcommand that runs a monitor: `rbuild --root ROOT container-monitor ID`.
pub const SUBCOMMAND: &str = "container-monitor";

/// The monitor's own messages (warnings, why it gave up), in the container dir.
pub const MONITOR_LOG: &str = "monitor.log";

const STARTED: &str = "started";

/// Starts a monitor for the created or stopped container `id` (program `exe`, normally the
/// running `rbuild`; `args` are global options put before the subcommand) and returns once
/// the container's process runs; `Err` with the monitor's message when it could not start it.
pub fn launch(
    store: &Store,
    id: &str,
    exe: &Path,
    args: &[OsString],
) -> Result<(), ContainerError> {
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
        .arg(SUBCOMMAND)
        .arg(id)
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(log);
    rbuild_runtime::detach::new_session(&mut cmd);
    let mut child = cmd.spawn().map_err(io_err(exe))?;
    let stdout = child.stdout.take().expect("piped");
    let mut line = String::new();
    let _ = std::io::BufReader::new(stdout).read_line(&mut line);
    // The monitor goes on alone: not waited for (init reaps it once we exit).
    drop(child);
    let line = line.trim_end();
    match line.strip_prefix("error: ") {
        _ if line == STARTED => Ok(()),
        Some(message) => Err(ContainerError::StartFailed(message.to_string())),
        None => Err(ContainerError::StartFailed(format!(
            "the container monitor ended before the container started (see {})",
            log_path.display()
        ))),
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

/// The monitor's work (see the module docs) for container `id`: `ready` gets one line for
/// [`launch`] (`started`, or the error), `warn` the problems that do not stop the container.
/// Returns when the container ended for good.
pub fn serve(
    store: &Store,
    id: &str,
    mut ready: impl Write,
    mut warn: impl FnMut(String),
) -> Result<(), ContainerError> {
    let mut ready_sent = false;
    let mut report = |result: Result<(), &ContainerError>| {
        let line = match result {
            Ok(()) => STARTED.to_string(),
            Err(e) => format!("error: {}", error_chain(e)),
        };
        let _ = writeln!(ready, "{line}").and_then(|()| ready.flush());
    };
    let result = serve_runs(
        store,
        id,
        &mut || {
            report(Ok(()));
            ready_sent = true;
        },
        &mut warn,
    );
    if let Err(e) = &result {
        if !ready_sent {
            report(Err(e));
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
    ready: &mut dyn FnMut(),
    warn: &mut dyn FnMut(String),
) -> Result<(), ContainerError> {
    let Some(lease) = store.hold_lease(id)? else {
        return Err(ContainerError::AlreadyRunning(id.to_string()));
    };
    let spec = spec_file::load(store, id)?;
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
        let (stdio, copies) = log_pipes(&log)?;
        let executed = running::execute(store, &record, Some(id), &spec, stdio, |container| {
            let held = RunResources::acquire(store, &record, &spec, container);
            if first {
                ready();
                crate::killpoint::reached("monitor-running");
            }
            held
        });
        for copy in copies {
            let _ = copy.join();
        }
        let execution = match executed {
            Ok(e) => e,
            Err(e) => break Err(e),
        };
        first = false;
        execution.warnings.into_iter().for_each(&mut *warn);
        let Some(latest) = current(store, id)? else {
            break Ok(()); // removed (`rm -f`)
        };
        if !restarts(&latest, execution.status.code) {
            break Ok(());
        }
        // A restart joins the networks connected since (`network connect`).
        record.connected = latest.connected;
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
    drop(lease);
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

type Copies = Vec<std::thread::JoinHandle<()>>;

/// Pipes for the container's stdout and stderr whose other ends are copied into `log`.
fn log_pipes(log: &Arc<Mutex<LogWriter>>) -> Result<(Stdio, Copies), ContainerError> {
    let pipe = || std::io::pipe().map_err(io_err("pipe"));
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let copies = vec![
        logs::copy_stream(out_r, "stdout", log.clone()),
        logs::copy_stream(err_r, "stderr", log.clone()),
    ];
    let stdio = Stdio {
        stdin: Io::Null,
        stdout: Io::Fd(out_w.into()),
        stderr: Io::Fd(err_w.into()),
    };
    Ok((stdio, copies))
}
