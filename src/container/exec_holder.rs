//! `exec -it` that can be detached (docker's detach keys on an exec): the exec'd process
//! belongs to a small *holder*, not to the `exec` command, which is the holder's attached
//! client.
//!
//! A process started by `exec` directly is the command's own: the runtime kills it when its
//! runner goes (parent-death signal), and its pty is copied by the runner. To leave it
//! running when the client detaches, something that outlives the client must hold it: the
//! holder is the `rbuild` binary run as the hidden subcommand [`SUBCOMMAND`], started as a
//! container's monitor is ([`super::monitor::launch_serving`]: a session of its own, its
//! stderr in the container's `monitor.log`, `listening`/`started` on a pipe to the client).
//! It listens on `exec-<client pid>.sock` in the container's dir and serves it as the monitor
//! serves `attach.sock` ([`super::attach`]), without a log and without dropping a slow client
//! (the client's terminal paces the output as it would pace the process's own), waits for
//! the client, starts the process with [`rbuild_runtime::exec`] (joined as every `exec`),
//! and when the process ends sends its exit status to the client (if one is still there)
//! and exits. After a detach the output goes nowhere and the process runs until it ends
//! (or its container stops), as docker's.
//!
//! The client checks and prepares the process's spec itself ([`super::exec::prepare`]: the
//! errors of a missing or stopped container, a bad user, are its own) and hands it to the
//! holder in `exec-<client pid>.json`, which the holder reads and removes.

use std::io::Write;
use std::path::Path;

use rbuild_runtime::ContainerSpec;
use serde::{Deserialize, Serialize};

use super::attach::{AttachRequest, Server, FLUSH_WAIT};
use super::attach_client::Attachment;
use super::monitor::{self, ATTACH_WAIT, LISTENING, STARTED};
use super::{io_err, ContainerError, ExecOptions};
use crate::store::Store;

/// The hidden subcommand that runs a holder: `rbuild --root ROOT exec-holder ID TOKEN`.
pub const SUBCOMMAND: &str = "exec-holder";

/// What the client hands the holder.
#[derive(Debug, Serialize, Deserialize)]
struct Held {
    /// The container's PID 1, as the host sees it.
    pid: i32,
    spec: ContainerSpec,
}

fn socket_name(token: &str) -> String {
    format!("{token}.sock")
}

fn spec_name(token: &str) -> String {
    format!("{token}.json")
}

/// Starts `options` (with `-i -t`) in its container under a holder (program `exe`; `args`
/// are global options put before the subcommand) with us attached as `request` says;
/// returns the attachment and the holder's PID (signals for the process go there) once the
/// process runs. Errors: [`super::exec`]'s; [`ContainerError::StartFailed`] when the holder
/// could not start the process (docker's "OCI runtime exec failed").
pub fn launch_attached(
    store: &Store,
    options: &ExecOptions,
    exe: &Path,
    args: &[std::ffi::OsString],
    request: &AttachRequest,
) -> Result<(Attachment, u32), ContainerError> {
    let (record, pid, spec) = super::exec::prepare(store, options)?;
    let token = format!("exec-{}", std::process::id());
    let spec_path = store.container_dir(&record.id).join(spec_name(&token));
    let json = serde_json::to_vec(&Held { pid, spec }).expect("a spec serializes");
    std::fs::write(&spec_path, json).map_err(io_err(&spec_path))?;
    let command = [SUBCOMMAND, record.id.as_str(), token.as_str()];
    let launched = monitor::launch_serving(
        store,
        &record.id,
        exe,
        args,
        &command,
        &socket_name(&token),
        request,
    );
    // The holder removed it already, unless it failed before.
    let _ = std::fs::remove_file(&spec_path);
    launched
}

/// The holder's work (see the module docs) for the exec `token` in container `id`: `ready`
/// gets the lines for [`launch_attached`]. Returns the process's exit status.
pub fn serve(
    store: &Store,
    id: &str,
    token: &str,
    ready: impl Write,
) -> Result<i32, ContainerError> {
    monitor::telling(ready, |tell| {
        let dir = store.container_dir(id);
        let spec_path = dir.join(spec_name(token));
        let json = std::fs::read(&spec_path).map_err(io_err(&spec_path))?;
        let _ = std::fs::remove_file(&spec_path);
        let Held { pid, mut spec } = serde_json::from_slice(&json)
            .map_err(|e| ContainerError::StartFailed(format!("bad exec spec: {e}")))?;
        let server = Server::bind_at(&dir, &socket_name(token), spec.process.terminal, true)?;
        tell(LISTENING);
        spec.process.console_size = server.wait_client(ATTACH_WAIT)?;
        let (stdio, copies) = server.stdio(None, true)?;
        let process = rbuild_runtime::exec(pid, &spec, false, stdio)?;
        server.started(&process);
        tell(STARTED);
        let status = process.wait();
        for copy in copies {
            let _ = copy.join();
        }
        server.ended(status.as_ref().ok().map(|s| s.code));
        server.flush(FLUSH_WAIT);
        Ok(status?.code)
    })
}
