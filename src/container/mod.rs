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
pub mod env;
pub mod names;
pub mod security;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use rbuild_runtime::{
    ContainerSpec, ExitStatus, MountKind, MountSpec, NetworkMode, Rootfs, RuntimeError, Stdio,
    UserError,
};

use crate::store::{ContainerRecord, ContainerStatus, HeldLease, Lease, Store, StoreError};

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

/// Parses `-v HOST:CONTAINER[:OPTIONS]`: `HOST` must be an absolute path (named volumes are
/// not supported) and is created as a directory when missing; `CONTAINER` must be absolute
/// and not `/`; `OPTIONS` is a comma-separated list of `ro`, `rw` (and SELinux/propagation
/// options, accepted and ignored).
pub fn parse_volume(spec: &str) -> Result<MountSpec, ContainerError> {
    let bad = |reason: &str| ContainerError::BadVolume {
        spec: spec.to_string(),
        reason: reason.to_string(),
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (host, target, options) = match parts.as_slice() {
        [h, t] => (*h, *t, ""),
        [h, t, o] => (*h, *t, *o),
        _ => return Err(bad("expected HOST-DIR:CONTAINER-DIR[:OPTIONS]")),
    };
    if !host.starts_with('/') {
        return Err(bad(
            "the host path must be absolute (named volumes are not supported)",
        ));
    }
    if !target.starts_with('/')
        || Path::new(target)
            .components()
            .all(|c| c == Component::RootDir)
    {
        return Err(bad("the container path must be absolute and not \"/\""));
    }
    let mut readonly = false;
    for option in options.split(',').filter(|o| !o.is_empty()) {
        match option {
            "ro" => readonly = true,
            "rw" => readonly = false,
            "z" | "Z" | "rprivate" | "private" | "rshared" | "shared" | "rslave" | "slave"
            | "nocopy" => {}
            other => return Err(bad(&format!("unknown option {other:?}"))),
        }
    }
    let source = PathBuf::from(host);
    if !source.exists() {
        fs::create_dir_all(&source).map_err(io_err(&source))?;
    }
    Ok(MountSpec {
        destination: PathBuf::from(target),
        kind: MountKind::Bind { source },
        readonly,
    })
}

fn random_bytes<const N: usize>() -> Result<[u8; N], ContainerError> {
    let mut bytes = [0u8; N];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(io_err("/dev/urandom"))?;
    Ok(bytes)
}

/// A new random container ID: 64 hex digits.
fn new_id() -> Result<String, ContainerError> {
    Ok(hex::encode(random_bytes::<32>()?))
}

/// Records a new container; one run without `--name` gets a generated name not in use.
fn add_record(
    store: &Store,
    record: &mut ContainerRecord,
    named: bool,
) -> Result<(), ContainerError> {
    if named {
        return Ok(store.add_container(record)?);
    }
    let random = || random_bytes::<8>().map(u64::from_le_bytes);
    names::claim(random, |name| {
        record.name = name.to_string();
        store.add_container(record)
    })?;
    Ok(())
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
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
        if let Err(e) = add_record(store, &mut record, options.name.is_some()) {
            let _ = store.trash(&dir);
            return Err(e);
        }
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
    cleanup(&mut warnings);
    drop(lease);
    Ok(RunOutcome {
        id: record.id,
        status,
        warnings,
        notes,
    })
}

/// Resolves the image and options into a container record (status `Created`) and a runtime
/// spec, and creates the container's dir (upper and work dirs) with its lease, held while
/// the returned [`HeldLease`] lives.
fn create(
    store: &Store,
    options: &RunOptions,
) -> Result<(ContainerRecord, ContainerSpec, HeldLease), ContainerError> {
    if let Some(name) = &options.name {
        if !valid_name(name) {
            return Err(ContainerError::BadName(name.clone()));
        }
    }
    if let Some(dir) = &options.workdir {
        if !dir.starts_with('/') {
            return Err(ContainerError::BadWorkdir(dir.clone()));
        }
    }
    // A tag is one point lookup in the database (a read, no fsync): the cost does not grow
    // with the number of tags in the store.
    let image = store.resolve_image(&options.image)?;
    let image_id = image.id.clone();
    let config = store.image_config(&image.id)?;
    let lowers = store.layer_snapshot_dirs(&image.layers)?;
    let cc = config.config.unwrap_or_default();
    let mut labels = cc.labels.clone().unwrap_or_default();
    labels.extend(options.labels.clone());
    let args = command::combine(
        cc.entrypoint.as_deref(),
        cc.cmd.as_deref(),
        options.entrypoint.as_deref(),
        &options.args,
    );
    if args.is_empty() {
        return Err(ContainerError::NoCommand);
    }
    let user_name = options
        .user
        .clone()
        .or_else(|| cc.user.clone())
        .unwrap_or_default();
    let user = if user_name.is_empty() {
        // Docker's default user is root with the groups /etc/group lists root in; the
        // home stays /root even in an image without /etc/passwd.
        let groups = rbuild_runtime::resolve_user_in_layers(&lowers, "")?.additional_gids;
        rbuild_runtime::UserSpec {
            additional_gids: groups,
            ..rbuild_runtime::UserSpec::root()
        }
    } else {
        rbuild_runtime::resolve_user_in_layers(&lowers, &user_name)?
    }
    .with_primary_group_supplementary();
    let id = new_id()?;
    let hostname = options
        .hostname
        .clone()
        .unwrap_or_else(|| id[..12].to_string());
    let cwd = options
        .workdir
        .clone()
        .or(cc.working_dir.clone())
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".to_string());
    let env = env::merge(
        &hostname,
        options.tty,
        cc.env.as_deref().unwrap_or_default(),
        &options.env,
    );

    // The container dir appears with its lease, which keeps the snapshots from `rmi` and
    // the collectors; a snapshot removed before that is unpacked again.
    let lease = Lease {
        image_id: image.id.clone(),
        layers: image.layers.iter().map(|l| l.digest.clone()).collect(),
        chains: image.chain_ids(),
        recorded: !options.remove || options.name.is_some(),
    };
    let mut held = None;
    for _ in 0..3 {
        held = store.lease_container(&id, &lease, &["upper", "work", "empty"])?;
        if held.is_some() {
            break;
        }
        store.layer_snapshot_dirs(&image.layers)?;
    }
    let held = held.ok_or_else(|| {
        StoreError::Conflict(format!(
            "the layers of {} keep being removed while the container starts",
            image.id.short()
        ))
    })?;
    let dir = held.dir.clone();
    let upper = dir.join("upper");
    let work = dir.join("work");
    let lowers = if lowers.is_empty() {
        // An image without layers: overlayfs needs at least one lower dir.
        vec![dir.join("empty")]
    } else {
        lowers
    };
    let mut spec = ContainerSpec::new(
        Rootfs::Overlay {
            lowers,
            upper,
            work,
        },
        args.clone(),
    );
    spec.process.env = env;
    spec.process.cwd = PathBuf::from(cwd);
    spec.process.user = user;
    spec.process.terminal = options.tty;
    spec.hostname = hostname;
    spec.network = options.network;
    spec.init = options.init;
    spec.readonly_rootfs = options.read_only;
    spec.mounts = options.mounts.clone();
    spec.seccomp = options.seccomp.clone();
    // The container's cgroup is rbuild/<id>.
    spec.id = Some(id.clone());
    // A --rm container's upper dir is deleted right after: no need to sync it.
    spec.volatile_overlay = options.remove;

    let record = ContainerRecord {
        name: options.name.clone().unwrap_or_else(|| id[..12].to_string()),
        id,
        image: options.image.clone(),
        image_id,
        command: args,
        created: now(),
        status: ContainerStatus::Created,
        exit_code: None,
        finished: None,
        runner_pid: None,
        pid: None,
        labels,
    };
    Ok((record, spec, held))
}

/// `rm`: deletes a stopped container (record and dir); with `force` a running one is killed
/// (SIGKILL) first. Returns the container's ID.
pub fn remove(store: &Store, name: &str, force: bool) -> Result<String, ContainerError> {
    let record = store.resolve_container(name)?;
    if record.is_running() {
        if !force {
            return Err(ContainerError::Running(record.name));
        }
        if let Some(pid) = record.pid {
            let target = nix::unistd::Pid::from_raw(pid);
            match nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGKILL) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                Err(error) => {
                    return Err(ContainerError::Kill {
                        id: record.id,
                        error,
                    })
                }
            }
            // The overlay is mounted in the container's mount namespace: wait for it to go.
            let proc_dir = PathBuf::from(format!("/proc/{pid}"));
            for _ in 0..200 {
                if !proc_dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    store.remove_container(&record.id)?;
    Ok(record.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("new/dir");
        let spec = format!("{}:/data:ro", host.display());
        let mount = parse_volume(&spec).unwrap();
        assert!(host.is_dir(), "a missing host dir is created");
        assert_eq!(mount.destination, PathBuf::from("/data"));
        assert!(mount.readonly);
        assert_eq!(
            mount.kind,
            MountKind::Bind {
                source: host.clone()
            }
        );
        let rw = parse_volume(&format!("{}:/data:rw,z", host.display())).unwrap();
        assert!(!rw.readonly);
        for bad in [
            "named:/data",
            "/host",
            "/host:relative",
            "/host:/",
            "/host:/data:bogus",
            "/a:/b:ro:extra",
        ] {
            let err = parse_volume(bad).unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn names() {
        assert!(valid_name("web-1.a_b"));
        assert!(!valid_name(""));
        assert!(!valid_name("-x"));
        assert!(!valid_name("a/b"));
    }
}
