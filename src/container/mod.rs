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
pub mod commit;
pub mod config;
pub mod connect;
pub mod copy;
mod create;
pub mod diff;
pub mod env;
mod exec;
pub mod export;
pub mod inspect;
mod lifecycle;
pub mod limits;
mod links;
pub mod names;
pub mod network_join;
pub mod security;
mod seed;
pub mod size;
pub mod spec_file;
pub mod stats;
pub mod tmpfs;
pub mod view;
pub mod volumes;

pub use exec::{exec, ExecOptions};
pub use lifecycle::{
    find, kill, list, parse_restart, parse_signal, pause, prune, remove, rename, restartable,
    settle, stop, unpause, wait, DEFAULT_STOP_TIMEOUT,
};

pub mod attach;
pub mod attach_client;
pub mod detach_keys;
pub mod exec_holder;
pub mod health;
pub mod logs;
pub mod monitor;
mod running;
pub use volumes::{parse_mount, parse_volume};

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use rbuild_runtime::{
    ContainerSpec, ExitStatus, MountSpec, NetworkMode, RuntimeError, Stdio, UserError,
};

use crate::store::{ContainerRecord, HeldLease, RestartPolicy, Store, StoreError};
use create::{add_record, create};

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
    /// The monitor's message: why the container's process did not start.
    #[error("{0}")]
    StartFailed(String),
    #[error("container {0} is already running")]
    AlreadyRunning(String),
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error("invalid signal: {0}")]
    BadSignal(String),
    #[error(
        "invalid restart policy {0:?}: use no, always, unless-stopped or on-failure[:max-retries]"
    )]
    BadRestart(String),
    #[error("conflicting options: {0}")]
    Conflict(&'static str),
    #[error("create {0}: {0:?} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path")]
    BadVolumeName(String),
    #[error("invalid argument {spec:?} for \"--mount\" flag: {reason}")]
    BadMount { spec: String, reason: String },
    #[error("invalid --volumes-from {spec:?}: {reason}")]
    BadVolumesFrom { spec: String, reason: String },
    #[error("volume option {0:?} is not supported: rbuild's local volume driver takes no options")]
    VolumeOption(String),
    #[error("Duplicate mount point: {}", .0.display())]
    DuplicateMount(PathBuf),
    /// A `commit -c` change the config rules refuse.
    #[error(transparent)]
    Config(#[from] crate::image::config_rules::ConfigError),
    #[error(transparent)]
    Rootfs(#[from] rbuild_runtime::RootfsError),
    #[error(transparent)]
    Layer(#[from] crate::image::layer::LayerError),
    #[error("container {0} has no overlay filesystem")]
    NotOverlay(String),
    /// `cp`: the source does not exist (docker's wording).
    #[error("Could not find the file {path} in container {container}")]
    NoSuchPath { path: String, container: String },
    /// `cp`: the destination cannot take the source, as docker refuses it.
    #[error("{0}")]
    BadCopy(String),
    #[error(transparent)]
    Cgroup(#[from] rbuild_runtime::CgroupError),
    #[error("container {0} is already paused")]
    Paused(String),
    #[error("container {0} is not paused")]
    NotPaused(String),
    /// A resource limit flag docker would refuse too (its reason).
    #[error("invalid {flag} {value:?}: {reason}")]
    BadLimit {
        flag: String,
        value: String,
        reason: String,
    },
    #[error(transparent)]
    Network(#[from] crate::network::NetworkError),
    #[error(transparent)]
    Capability(#[from] rbuild_runtime::CapabilityError),
    /// A flag value docker would refuse too (cobra's wording, the reason).
    #[error("invalid argument {value:?} for \"{flag}\" flag: {reason}")]
    BadOption {
        flag: &'static str,
        value: String,
        reason: String,
    },
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
    /// Host binds and tmpfs mounts (`-v /HOST:CONTAINER[:ro]`, `--mount`), parsed with
    /// [`parse_volume`] or [`parse_mount`] and added with [`RunOptions::add_mount`].
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
    /// `-d` (and `create`): the container is run by a detached monitor ([`monitor`]), so it
    /// is recorded even with `--rm` (the monitor removes it when it ends).
    pub detach: bool,
    /// `--restart`, applied by the monitor.
    pub restart: RestartPolicy,
    /// `--stop-signal` (default: the image's STOPSIGNAL, else SIGTERM).
    pub stop_signal: Option<String>,
    /// `--stop-timeout` in seconds (default 10).
    pub stop_timeout: Option<u64>,
    /// Volumes (`-v NAME:/path`, `-v /path`, `--mount type=volume`), made on first use;
    /// added with [`RunOptions::add_mount`].
    pub volumes: Vec<volumes::VolumeRequest>,
    /// `--volumes-from CONTAINER[:ro|rw]`, as given.
    pub volumes_from: Vec<String>,
    /// `--health-*` and `--no-healthcheck`, over the image's HEALTHCHECK.
    pub health: health::HealthFlags,
    /// Cgroup limits (`-m`, `--cpus`, `--pids-limit` ...; see [`limits::resolve`]).
    pub resources: rbuild_runtime::Resources,
    /// rlimits: docker's defaults with `--ulimit` entries over them.
    pub rlimits: Vec<rbuild_runtime::Rlimit>,
    /// The rbuild network the container's namespace joins (with `network` `None`):
    /// `bridge` is the default one ([`crate::network`]); `None` leaves it loopback only.
    pub attach_network: Option<String>,
    /// `--dns`, `--dns-search`, `--add-host`, `--mac-address`.
    pub network_extras: crate::network::Extras,
    /// `--cap-add`, `--cap-drop`, `--privileged`, `--device`, `--shm-size`,
    /// `--security-opt no-new-privileges`.
    pub privileges: security::Privileges,
    /// `-p`: the ports to publish; `-P` adds the image's EXPOSEd ones (`publish_all`).
    pub ports: Vec<crate::network::ports::PortMapping>,
    pub publish_all: bool,
    /// `-i`: keep the process's stdin open (a detached container's takes input from
    /// `attach`).
    pub interactive: bool,
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
            detach: false,
            restart: RestartPolicy::No,
            stop_signal: None,
            stop_timeout: None,
            volumes: Vec::new(),
            volumes_from: Vec::new(),
            health: health::HealthFlags::default(),
            resources: rbuild_runtime::Resources::default(),
            rlimits: rbuild_runtime::default_rlimits(),
            attach_network: None,
            network_extras: crate::network::Extras::default(),
            privileges: security::Privileges::default(),
            ports: Vec::new(),
            publish_all: false,
            interactive: false,
        }
    }

    /// Whether the container gets a database record: all but unnamed foreground `--rm` ones.
    pub fn recorded(&self) -> bool {
        !self.remove || self.name.is_some() || self.detach
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

/// The store at an absolute root: the runtime wants absolute paths (a relative `--root` is
/// relative to our cwd, which the monitor does not share).
fn absolute(store: &Store) -> Result<Store, ContainerError> {
    let absolute = std::path::absolute(store.root()).map_err(io_err(store.root()))?;
    Ok(Store::open(&absolute)?)
}

/// Makes the container `options` asks for: the `--cidfile`, the container dir with its
/// lease (held while the returned value lives), the record and `spec.json` when
/// [`RunOptions::recorded`].
fn prepare(
    store: &Store,
    options: &RunOptions,
) -> Result<(ContainerRecord, ContainerSpec, HeldLease), ContainerError> {
    match options.attach_network.as_deref() {
        None | Some("bridge") => {}
        Some(name) => match name.strip_prefix(network_join::PREFIX) {
            Some(target) => drop(store.resolve_container(target)?),
            None => drop(crate::network::networks::find(name)?),
        },
    }
    options
        .network_extras
        .check(options.attach_network.as_deref())?;
    let cidfile = options
        .cidfile
        .as_deref()
        .map(CidFile::create)
        .transpose()?;
    let (mut record, spec, lease) = create(store, options)?;
    if let Some(file) = cidfile {
        file.write(&record.id)?;
    }
    if options.recorded() {
        let added = spec_file::save(&lease.dir, &spec)
            .and_then(|()| add_record(store, &mut record, options.name.is_some()));
        if let Err(e) = added {
            let _ = store.trash(&lease.dir);
            volumes::remove_anonymous_volumes(store, &record.anonymous_volumes);
            return Err(e);
        }
    }
    Ok((record, spec, lease))
}

/// `create` (and the first half of `run -d`): a recorded container that has not run yet
/// (`Created`); [`monitor::launch`] runs it.
pub fn create_container(
    store: &Store,
    options: &RunOptions,
) -> Result<ContainerRecord, ContainerError> {
    let store = &absolute(store)?;
    let options = RunOptions {
        detach: true,
        ..options.clone()
    };
    let (record, _spec, _lease) = prepare(store, &options)?;
    Ok(record)
}

/// Runs a container in the foreground and waits for it (see the module docs). `Err` means
/// the process never started (docker's 125); the process's own failures (126, 127, any
/// exit code, 128+N on signal N) come back in [`RunOutcome::status`].
pub fn run(
    store: &Store,
    options: &RunOptions,
    stdio: Stdio,
) -> Result<RunOutcome, ContainerError> {
    let store = &absolute(store)?;
    let (record, spec, lease) = prepare(store, options)?;
    let recorded = options.recorded();
    let id = record.id.clone();
    let executed = running::execute(
        store,
        &record,
        recorded.then_some(id.as_str()),
        &spec,
        stdio,
        || {},
        |_| (),
    );
    // Without --rm a container that failed to start stays ("Created"), as docker keeps it.
    let mut warnings = Vec::new();
    if options.remove {
        let result = if recorded {
            store.remove_container(&id)
        } else {
            store.trash(&lease.dir).map(|_| ())
        };
        match result {
            // As docker's --rm: the container's anonymous volumes go with it.
            Ok(()) => warnings.extend(volumes::remove_anonymous_volumes(
                store,
                &record.anonymous_volumes,
            )),
            Err(e) => warnings.push(format!("failed to remove container {id}: {e}")),
        }
    }
    drop(lease);
    let execution = executed?;
    warnings.extend(execution.warnings);
    Ok(RunOutcome {
        id,
        status: execution.status,
        warnings,
        notes: execution.notes,
    })
}
