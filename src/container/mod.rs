//! `rbuild run`: one foreground container made from an image in the store, plus the small
//! lifecycle `ps` and `rm` need.
//!
//! [`run`] resolves the image, combines its config with the user's options ([`RunOptions`])
//! into a [`rbuild_runtime::ContainerSpec`] on an overlay of the image's snapshots and a fresh
//! upper dir under `<root>/containers/<id>/`, runs it with the caller's stdio and returns the
//! docker-style exit status. With `remove` (`--rm`) the container dir is deleted afterwards;
//! otherwise the container is recorded in the store ([`crate::store::ContainerRecord`]) and
//! its dir kept.
//!
//! ```no_run
//! use rbuild::container::{run, RunOptions};
//! use rbuild::store::Store;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Store::open("/var/lib/rbuild".as_ref())?;
//! let mut options = RunOptions::new("busybox", vec!["echo".into(), "hi".into()]);
//! options.remove = true;
//! let outcome = run(&store, &options, rbuild_runtime::Stdio::inherit())?;
//! std::process::exit(outcome.status.code);
//! # }
//! ```

pub mod command;
mod create;
pub mod env;
mod lifecycle;
pub mod names;
pub mod security;
pub mod spec_file;
mod volumes;

pub use lifecycle::remove;
pub use volumes::parse_volume;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use rbuild_runtime::{ExitStatus, MountSpec, NetworkMode, RuntimeError, Stdio, UserError};

use crate::store::{ContainerStatus, Store, StoreError};
use create::{add_record, create, now};

/// What can go wrong before the container's process starts (docker's exit status 125).
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The user or group of `-u`/`USER` is not in the image (its message names it, as docker's).
    #[error(transparent)]
    User(#[from] UserError),
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("invalid environment variable {value:?}: {reason}")]
    BadEnv { value: String, reason: String },
    #[error("{}:{line}: {reason}", path.display())]
    BadEnvFile {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("invalid volume specification {spec:?}: {reason}")]
    BadVolume { spec: String, reason: String },
    #[error("the working directory {0:?} is invalid, it needs to be an absolute path")]
    BadWorkdir(String),
    #[error("invalid --security-opt {value:?}: {reason}")]
    BadSecurityOpt { value: String, reason: String },
    #[error(transparent)]
    Seccomp(#[from] rbuild_runtime::SeccompError),
    #[error("invalid container name {0:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    BadName(String),
    #[error("container ID file found, make sure the other container isn't running or delete {}", .0.display())]
    CidFileExists(PathBuf),
    #[error("no command specified")]
    NoCommand,
    #[error(
        "cannot remove container \"/{0}\": container is running: stop the container before removing or force remove"
    )]
    Running(String),
    #[error("failed to kill container {id}: {error}")]
    Kill {
        id: String,
        error: nix::errno::Errno,
    },
    #[error(transparent)]
    Network(#[from] crate::network::NetworkError),
    #[error("network {0} not found")]
    NoSuchNetwork(String),
}

fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ContainerError {
    let path = path.into();
    move |error| ContainerError::Io { path, error }
}

/// Everything `rbuild run` was asked for, resolved from the flags.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Image name, tag or ID.
    pub image: String,
    /// What follows the image on the command line: replaces the image's CMD.
    pub args: Vec<String>,
    /// `--entrypoint` (`Some("")` clears the image's ENTRYPOINT); see [`command::combine`].
    pub entrypoint: Option<String>,
    /// `KEY=value` entries from `--env-file` then `-e`, already expanded
    /// ([`env::parse_env_arg`], [`env::read_env_file`]).
    pub env: Vec<String>,
    /// `-w`: absolute path; default the image's WorkingDir, else `/`.
    pub workdir: Option<String>,
    /// `-u`: name, uid, `name:group`, `uid:gid`; default the image's User, else root.
    pub user: Option<String>,
    pub network: NetworkMode,
    /// Default: the first 12 hex digits of the container ID.
    pub hostname: Option<String>,
    pub init: bool,
    /// `-v HOST:CONTAINER[:ro]`, parsed with [`parse_volume`].
    pub mounts: Vec<MountSpec>,
    pub read_only: bool,
    /// Default: a generated `adjective_surname` ([`names`]); a `--rm` container without a
    /// name is not recorded and goes by its short ID.
    pub name: Option<String>,
    /// `--rm`: delete the container (dir and record) when it exits.
    pub remove: bool,
    /// `-t`: a pty on the process's stdin/stdout/stderr.
    pub tty: bool,
    /// `-l/--label KEY=VALUE`, over the image's labels.
    pub labels: BTreeMap<String, String>,
    /// `--cidfile`: created (it must not exist, as docker) before the container, then
    /// given the full ID once the container exists; removed when it could not be created.
    pub cidfile: Option<PathBuf>,
    /// The system call filter (`--security-opt seccomp=`): docker's default profile, a
    /// profile file, or `None` for `unconfined`.
    pub seccomp: Option<rbuild_runtime::SeccompProfile>,
    /// The rbuild network the container's namespace joins (with `network` `None`):
    /// `bridge` is the default one ([`crate::network`]); `None` leaves it loopback only.
    pub attach_network: Option<String>,
    /// `--dns`, `--dns-search`, `--add-host`, `--mac-address`.
    pub network_extras: crate::network::Extras,
}

impl RunOptions {
    /// Options for running `image` with `args` and every other setting at its default
    /// (network none, no tty, kept after exit).
    pub fn new(image: &str, args: Vec<String>) -> RunOptions {
        RunOptions {
            image: image.to_string(),
            args,
            entrypoint: None,
            env: Vec::new(),
            workdir: None,
            user: None,
            network: NetworkMode::None,
            hostname: None,
            init: false,
            mounts: Vec::new(),
            read_only: false,
            name: None,
            remove: false,
            tty: false,
            labels: BTreeMap::new(),
            cidfile: None,
            seccomp: Some(rbuild_runtime::SeccompProfile::default_profile()),
            attach_network: None,
            network_extras: crate::network::Extras::default(),
        }
    }
}

/// How a run ended.
#[derive(Debug)]
pub struct RunOutcome {
    /// The container's ID (64 hex digits).
    pub id: String,
    /// The process's docker-style exit status.
    pub status: ExitStatus,
    /// Problems after the process ended (record update, cleanup) that do not change the
    /// exit status; the CLI prints them as warnings.
    pub warnings: Vec<String>,
    /// What the container went without (no pids limit where cgroups cannot be created, for
    /// one); the CLI shows them at debug level.
    pub notes: Vec<String>,
}

/// The `--cidfile` being written: created empty before the container, removed on drop
/// unless [`CidFile::write`] filled it (docker leaves no empty file behind a failed run).
struct CidFile {
    path: PathBuf,
    file: Option<fs::File>,
}

impl CidFile {
    fn create(path: &Path) -> Result<CidFile, ContainerError> {
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|error| match error.kind() {
                std::io::ErrorKind::AlreadyExists => {
                    ContainerError::CidFileExists(path.to_path_buf())
                }
                _ => ContainerError::Io {
                    path: path.to_path_buf(),
                    error,
                },
            })?;
        Ok(CidFile {
            path: path.to_path_buf(),
            file: Some(file),
        })
    }

    fn write(mut self, id: &str) -> Result<(), ContainerError> {
        let mut file = self.file.take().expect("written once");
        if let Err(error) = std::io::Write::write_all(&mut file, id.as_bytes()) {
            let _ = fs::remove_file(&self.path);
            return Err(ContainerError::Io {
                path: self.path.clone(),
                error,
            });
        }
        Ok(())
    }
}

impl Drop for CidFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// The address of the container on the network `options` name, when it has one.
fn attach_network(
    store: &Store,
    options: &RunOptions,
    id: &str,
) -> Result<Option<crate::network::Attached>, ContainerError> {
    match options.attach_network.as_deref() {
        None => Ok(None),
        Some("bridge") => Ok(Some(crate::network::attach_default(store.root(), id)?)),
        Some(other) => Err(ContainerError::NoSuchNetwork(other.to_string())),
    }
}

/// Runs a container in the foreground and waits for it (see the module docs). `Err` means
/// the process never started (docker's 125); the process's own failures (126, 127, any
/// exit code, 128+N on signal N) come back in [`RunOutcome::status`].
pub fn run(
    store: &Store,
    options: &RunOptions,
    stdio: Stdio,
) -> Result<RunOutcome, ContainerError> {
    // The runtime wants absolute paths (a relative --root is relative to our cwd).
    let absolute = std::path::absolute(store.root()).map_err(io_err(store.root()))?;
    let store = &Store::open(&absolute)?;
    if let Some(name) = options.attach_network.as_deref().filter(|n| *n != "bridge") {
        return Err(ContainerError::NoSuchNetwork(name.to_string()));
    }
    let cidfile = options
        .cidfile
        .as_deref()
        .map(CidFile::create)
        .transpose()?;
    let (record, spec, lease) = create(store, options)?;
    if let Some(file) = cidfile {
        file.write(&record.id)?;
    }
    let id = record.id.clone();
    let dir = lease.dir.clone();
    let recorded = !options.remove || options.name.is_some();
    let cleanup = |warnings: &mut Vec<String>| {
        if options.remove {
            let result = if recorded {
                store.remove_container(&id)
            } else {
                store.trash(&dir).map(|_| ())
            };
            if let Err(e) = result {
                warnings.push(format!("failed to remove container {id}: {e}"));
            }
        }
    };
    let mut record = record;
    if recorded {
        let added = spec_file::save(&dir, &spec)
            .and_then(|()| add_record(store, &mut record, options.name.is_some()));
        if let Err(e) = added {
            let _ = store.trash(&dir);
            return Err(e);
        }
    }
    // Released (and the bridge removed when this was its last user) after the container.
    let attached = match attach_network(store, options, &id) {
        Ok(attached) => attached,
        Err(e) => {
            cleanup(&mut Vec::new());
            return Err(e);
        }
    };
    let mut spec = spec;
    spec.bridge = attached.as_ref().and_then(|a| a.attachment.clone());
    if let Err(e) = options.network_extras.apply(&mut spec) {
        cleanup(&mut Vec::new());
        return Err(e.into());
    }
    let container = match rbuild_runtime::spawn(&spec, stdio) {
        Ok(c) => c,
        Err(e) => {
            // Without --rm the record stays ("Created"), as docker keeps a container that
            // failed to start.
            let mut warnings = Vec::new();
            cleanup(&mut warnings);
            return Err(e.into());
        }
    };
    let mut warnings = Vec::new();
    if recorded {
        record.status = ContainerStatus::Running;
        record.runner_pid = Some(std::process::id());
        record.pid = Some(container.pid());
        if let Err(e) = store.update_container(&record) {
            warnings.push(format!("failed to record container {}: {e}", record.id));
        }
    }
    crate::killpoint::reached("container-started");
    let notes = container.notes().to_vec();
    let status = container.wait()?;
    if recorded && !options.remove {
        record.status = ContainerStatus::Exited;
        record.exit_code = Some(status.code);
        record.finished = Some(now());
        record.pid = None;
        if let Err(e) = store.update_container(&record) {
            warnings.push(format!("failed to record container {}: {e}", record.id));
        }
    }
    drop(attached);
    cleanup(&mut warnings);
    drop(lease);
    Ok(RunOutcome {
        id: record.id,
        status,
        warnings,
        notes,
    })
}
