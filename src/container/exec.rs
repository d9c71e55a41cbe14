//! `rbuild exec`: a new process in a running container, made from the container's recorded
//! runtime spec ([`super::spec_file`]) with the user's changes, joined by the runtime
//! ([`rbuild_runtime::exec`]).

use std::path::PathBuf;

use rbuild_runtime::{Container, ContainerSpec, Stdio};

use super::{env, spec_file, ContainerError};
use crate::store::{ContainerRecord, Store};

/// Everything `rbuild exec` was asked for.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// Name, ID or unique ID prefix of a running container.
    pub container: String,
    /// The command and its arguments.
    pub args: Vec<String>,
    /// `-e`: `KEY=value` entries over the container's environment (already expanded).
    pub env: Vec<String>,
    /// `-u`: resolved in the container's `/etc/passwd` and `/etc/group` now; default the
    /// container's user.
    pub user: Option<String>,
    /// `-w`: absolute path; default the container's working directory.
    pub workdir: Option<String>,
    /// `-t`: a pty on the process's stdin/stdout/stderr.
    pub tty: bool,
    /// `-d`: start the process and leave it running.
    pub detach: bool,
}

/// The record of running container `name` and its PID 1 (as the host sees it);
/// [`ContainerError::NotRunning`] when it is not running (docker's error for `exec`, `top`,
/// `stats`).
pub(super) fn running_container(
    store: &Store,
    name: &str,
) -> Result<(ContainerRecord, i32), ContainerError> {
    let record = super::find(store, name)?;
    match record.pid {
        Some(pid) if store.container_running(&record) => Ok((record, pid)),
        _ => Err(ContainerError::NotRunning(record.id)),
    }
}

/// Starts `options.args` in the running container `options.container`; [`Container::wait`]
/// gives its docker-style exit status (immediately 0 with `detach`). Errors: no such
/// container, [`ContainerError::NotRunning`], a user not in the container, setup failures.
pub fn exec(
    store: &Store,
    options: &ExecOptions,
    stdio: Stdio,
) -> Result<Container, ContainerError> {
    let (_, pid, spec) = prepare(store, options)?;
    Ok(rbuild_runtime::exec(pid, &spec, options.detach, stdio)?)
}

/// What [`exec`] starts: the container's record, its PID 1 (as the host sees it) and the
/// process's spec, checked (all of [`exec`]'s errors but the runtime's).
pub(super) fn prepare(
    store: &Store,
    options: &ExecOptions,
) -> Result<(ContainerRecord, i32, ContainerSpec), ContainerError> {
    if options.args.is_empty() {
        return Err(ContainerError::NoCommand);
    }
    if let Some(dir) = options.workdir.as_deref().filter(|d| !d.starts_with('/')) {
        return Err(ContainerError::BadWorkdir(dir.to_string()));
    }
    let (record, pid) = running_container(store, &options.container)?;
    let mut spec = spec_file::load(store, &record.id)?;
    if let Some(user) = &options.user {
        // Resolved in the running container's filesystem, as docker does.
        let root = PathBuf::from(format!("/proc/{pid}/root"));
        spec.process.user =
            rbuild_runtime::resolve_user(&root, user)?.with_primary_group_supplementary();
    }
    if let Some(dir) = &options.workdir {
        spec.process.cwd = PathBuf::from(dir);
    }
    env::overlay(&mut spec.process.env, &options.env);
    spec.process.args = options.args.clone();
    spec.process.terminal = options.tty;
    Ok((record, pid, spec))
}
