//! Chroot isolation: running a process in a plain directory without namespaces or mounts.
//!
//! This is for the place where nothing else works: an unprivileged container (docker's or
//! podman's default seccomp profile and capabilities) may not create namespaces or mount
//! anything, but root in it may `chroot` (`CAP_SYS_CHROOT` is in both default sets). The
//! caller materialises the root directory (a writable copy of the image's files); this
//! module prepares what the process expects to find there, runs it, and puts things back:
//!
//! - `/dev`, `/proc`, `/sys`: where a mount namespace can be created (root outside such a
//!   container, `--isolation chroot` chosen by hand), the host's are bind-mounted
//!   recursively in a private mount namespace of the process, as Buildah's chroot isolation
//!   does. Where it cannot, `/proc` and `/sys` stay empty directories; `/dev` gets the
//!   usual nodes (`null`, `zero`, `full`, `random`, `urandom`, `tty`) made with `mknod` when
//!   `CAP_MKNOD` allows (docker's default set has it, podman's does not), else an empty
//!   regular file for `null` only, plus the `fd`/`stdin`/`stdout`/`stderr` symlinks.
//! - `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`: written into the root (created when
//!   missing, then removed again), the host's network view, since the process shares the
//!   host's network (there is no network namespace).
//! - [`crate::MountSpec`]s are *placed*, not mounted: a directory source is moved (renamed)
//!   to the destination and moved back afterwards (so it must be on the root's
//!   filesystem: cache mounts and staged binds are), a file source is copied there and
//!   removed afterwards, a tmpfs is an empty directory removed afterwards. Something already
//!   at the destination is renamed aside meanwhile and restored.
//!
//! Paths the module created are removed after the run, as the namespaced runtime removes its
//! mount points; the caller leaves `/dev`, `/proc`, `/sys`, the three `/etc` files and the
//! mount destinations out of the change set.
//!
//! The process runs with the runner's capabilities (root) or none (another user), without
//! seccomp filter, rlimits, cgroup or PID namespace of its own: the build container is the
//! security boundary, as with Kaniko.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::OnceLock;

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use serde::{Deserialize, Serialize};

use crate::paths::{ensure_mountpoint, resolve_in_root};
use crate::process::{to_std, ExitStatus, ProcessError, Stdio};
use crate::spec::{ContainerSpec, MountKind, Rootfs};
use crate::RuntimeError;

/// Names the hidden environment variable that makes [`crate::init_hook`] run
/// [`child_main`]: the process that chroots and executes the step.
pub(crate) const CHROOT_ENV: &str = "_RBUILD_CHROOT_INIT";

/// The paths (relative to the root) that [`spawn`] sets up itself; their contents are the
/// host's or the runtime's, never the process's changes.
pub const RUNTIME_PATHS: [&str; 6] = [
    "dev",
    "proc",
    "sys",
    "etc/hosts",
    "etc/hostname",
    "etc/resolv.conf",
];

/// What the chroot child reads from [`CHROOT_ENV`].
#[derive(Serialize, Deserialize)]
struct Launch {
    spec: ContainerSpec,
    bind_host: bool,
}

/// Whether this process may create the namespaces the namespaced runtime needs (UTS, IPC,
/// network, PID and mount; a user namespace too when `rootless`) and change mount
/// propagation in them: a forked child tries it and exits. The answer is cached for the
/// life of the process; `Err` carries the errno (`EPERM` under a default seccomp profile).
pub fn namespaces_allowed(rootless: bool) -> Result<(), Errno> {
    static ROOT: OnceLock<Result<(), Errno>> = OnceLock::new();
    static USER: OnceLock<Result<(), Errno>> = OnceLock::new();
    let base = libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNS;
    if rootless {
        *USER.get_or_init(|| probe(base | libc::CLONE_NEWUSER))
    } else {
        *ROOT.get_or_init(|| probe(base))
    }
}

/// Whether a private mount namespace with bind mounts is possible here (cached).
fn mounts_allowed() -> bool {
    static MOUNTS: OnceLock<bool> = OnceLock::new();
    *MOUNTS.get_or_init(|| probe(libc::CLONE_NEWNS).is_ok())
}

fn probe(flags: libc::c_int) -> Result<(), Errno> {
    let mut cmd = Command::new("/proc/self/exe");
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: between fork and exec the closure calls only async-signal-safe syscalls
    // (unshare, mount with static strings, _exit) and does not allocate. It never returns
    // Ok: the child ends in `_exit(0)` without executing anything, or reports the errno.
    unsafe {
        cmd.pre_exec(move || {
            if libc::unshare(flags) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let root = c"/";
            let flags = (libc::MS_REC | libc::MS_PRIVATE) as libc::c_ulong;
            let rc = libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                flags,
                std::ptr::null(),
            );
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::_exit(0)
        });
    }
    match cmd.spawn() {
        Ok(mut child) => {
            let _ = child.wait();
            Ok(())
        }
        Err(e) => Err(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EPERM))),
    }
}

/// Clones `src`'s data into `dst` (`FICLONE`: shared extents, copy-on-write) where the
/// filesystem allows it (btrfs, XFS with reflink, bcachefs); fails with `EOPNOTSUPP`,
/// `EXDEV` or `EINVAL` elsewhere (ext4, tmpfs), and the caller copies instead.
pub fn reflink(src: &File, dst: &File) -> std::io::Result<()> {
    // SAFETY: FICLONE takes the source descriptor as its integer argument.
    let rc = unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE as _, src.as_raw_fd()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Something placed in the root for one [`crate::MountSpec`], undone after the run.
#[derive(Debug)]
enum Placed {
    /// A directory moved in from `source`: moved back.
    Moved { source: PathBuf, dest: PathBuf },
    /// A copied file or a fresh directory: removed.
    Made { dest: PathBuf },
    /// What was at `dest` before, renamed to `aside`: renamed back.
    Aside { aside: PathBuf, dest: PathBuf },
}

/// A process running in chroot isolation. Dropping it without [`Chroot::wait`] kills it.
#[derive(Debug)]
pub struct Chroot {
    child: Option<Child>,
    root: PathBuf,
    created: Vec<PathBuf>,
    placed: Vec<Placed>,
    notes: Vec<String>,
}

fn setup_err(what: String) -> impl FnOnce(std::io::Error) -> RuntimeError {
    move |e| RuntimeError::Setup(format!("chroot isolation: {what}: {e}"))
}

/// Starts `spec` (whose rootfs must be [`Rootfs::Dir`]) in chroot isolation; see the module
/// docs for what the process finds in its root. `spec.network`, `hostname` aside,
/// namespaces, seccomp, rlimits and resources do not apply.
pub fn spawn(spec: &ContainerSpec, stdio: Stdio) -> Result<Chroot, RuntimeError> {
    let Rootfs::Dir(root) = &spec.rootfs else {
        return Err(RuntimeError::InvalidSpec(
            "chroot isolation needs a directory rootfs".into(),
        ));
    };
    if spec.process.args.is_empty() || !spec.process.cwd.is_absolute() || !root.is_absolute() {
        return Err(RuntimeError::InvalidSpec(
            "chroot isolation needs args, an absolute cwd and an absolute root".into(),
        ));
    }
    let bind_host = mounts_allowed();
    let mut chroot = Chroot {
        child: None,
        root: root.clone(),
        created: Vec::new(),
        placed: Vec::new(),
        notes: Vec::new(),
    };
    if !bind_host {
        chroot.notes.push(
            "no mount allowed: /proc and /sys are empty, /dev holds copies of the basic nodes"
                .into(),
        );
    }
    chroot.prepare(spec, bind_host)?;
    let launch = serde_json::to_string(&Launch {
        spec: spec.clone(),
        bind_host,
    })
    .map_err(|e| RuntimeError::InvalidSpec(e.to_string()))?;
    let exe = crate::process::current_exe();
    let mut cmd = Command::new(&exe);
    cmd.arg0("rbuild-chroot-init")
        .env(CHROOT_ENV, launch)
        .stdin(to_std(stdio.stdin))
        .stdout(to_std(stdio.stdout))
        .stderr(to_std(stdio.stderr));
    let child = cmd
        .spawn()
        .map_err(|source| ProcessError::Spawn { exe, source })?;
    chroot.child = Some(child);
    Ok(chroot)
}

impl Chroot {
    /// What the runtime could not provide (shown to the user once).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Waits for the process, then undoes what [`spawn`] placed in the root.
    pub fn wait(mut self) -> Result<ExitStatus, RuntimeError> {
        let status = match self.child.take() {
            Some(mut child) => child.wait().map_err(ProcessError::Wait)?,
            None => return Err(RuntimeError::InvalidSpec("no process".into())),
        };
        self.undo()?;
        use std::os::unix::process::ExitStatusExt;
        Ok(match (status.code(), status.signal()) {
            (Some(code), _) => ExitStatus {
                code,
                signal: None,
                oom_killed: false,
            },
            (None, signal) => ExitStatus {
                code: 128 + signal.unwrap_or(0),
                signal,
                oom_killed: false,
            },
        })
    }

    fn prepare(&mut self, spec: &ContainerSpec, bind_host: bool) -> Result<(), RuntimeError> {
        let root = self.root.clone();
        for dir in ["/dev", "/proc", "/sys"] {
            ensure_mountpoint(&root, Path::new(dir), true, &mut self.created)
                .map_err(setup_err(format!("creating {dir}")))?;
        }
        if !bind_host {
            populate_dev(&resolve_in_root(&root, Path::new("/dev")));
        }
        let files = [
            (
                "hosts",
                crate::rootfs::hosts_file(true, &spec.hostname, &spec.extra_hosts),
            ),
            ("hostname", format!("{}\n", spec.hostname)),
            (
                "resolv.conf",
                crate::rootfs::resolv_conf(
                    true,
                    &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
                ),
            ),
        ];
        for (name, text) in files {
            let dest = Path::new("/etc").join(name);
            // Written only where it is a plain file of the root's own `/etc` (a symlink
            // elsewhere is left alone: its target would change).
            let path = ensure_mountpoint(&root, &dest, false, &mut self.created)
                .map_err(setup_err(format!("creating {}", dest.display())))?;
            if path == root.join("etc").join(name) {
                std::fs::write(&path, text).map_err(setup_err(format!("writing {name}")))?;
            }
        }
        for (i, m) in spec.mounts.iter().enumerate() {
            let dest = resolve_in_root(&root, &m.destination);
            if let Some(parent) = dest.parent().and_then(|p| p.strip_prefix(&root).ok()) {
                ensure_mountpoint(&root, &Path::new("/").join(parent), true, &mut self.created)
                    .map_err(setup_err(format!("creating {}", parent.display())))?;
            }
            if std::fs::symlink_metadata(&dest).is_ok() {
                let mut name = dest.file_name().unwrap_or(OsStr::new("")).to_owned();
                name.push(format!(".rbuild-aside-{}-{i}", std::process::id()));
                let aside = dest.with_file_name(name);
                std::fs::rename(&dest, &aside)
                    .map_err(setup_err(format!("moving {} aside", dest.display())))?;
                self.placed.push(Placed::Aside {
                    aside,
                    dest: dest.clone(),
                });
            }
            let what = format!("placing {}", m.destination.display());
            match &m.kind {
                MountKind::Bind { source } if source.is_dir() => {
                    std::fs::rename(source, &dest).map_err(setup_err(what))?;
                    self.placed.push(Placed::Moved {
                        source: source.clone(),
                        dest,
                    });
                }
                MountKind::Bind { source } => {
                    std::fs::copy(source, &dest).map_err(setup_err(what))?;
                    self.placed.push(Placed::Made { dest });
                }
                MountKind::Tmpfs { mode, .. } => {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::create_dir(&dest).map_err(setup_err(what.clone()))?;
                    let mode = std::fs::Permissions::from_mode(mode.unwrap_or(0o1777));
                    std::fs::set_permissions(&dest, mode).map_err(setup_err(what))?;
                    self.placed.push(Placed::Made { dest });
                }
            }
        }
        Ok(())
    }

    /// Puts back what was placed (last first) and removes what was created.
    fn undo(&mut self) -> Result<(), RuntimeError> {
        let mut first_error = None;
        for placed in std::mem::take(&mut self.placed).into_iter().rev() {
            let result = match &placed {
                Placed::Moved { source, dest } => std::fs::rename(dest, source),
                Placed::Made { dest } => match std::fs::symlink_metadata(dest) {
                    Ok(m) if m.is_dir() => std::fs::remove_dir_all(dest),
                    Ok(_) => std::fs::remove_file(dest),
                    Err(_) => Ok(()),
                },
                Placed::Aside { aside, dest } => {
                    let _ = std::fs::remove_dir(dest);
                    std::fs::rename(aside, dest)
                }
            };
            if let Err(e) = result {
                first_error.get_or_insert(RuntimeError::Setup(format!(
                    "chroot isolation: undoing {placed:?}: {e}"
                )));
            }
        }
        crate::process::remove_created(&self.root, &self.created);
        self.created.clear();
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for Chroot {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            let _ = self.undo();
        }
    }
}

/// Fills the root's `/dev` where nothing can be mounted (see the module docs).
fn populate_dev(dev: &Path) {
    use nix::sys::stat::{mknod, stat, Mode, SFlag};
    for name in ["null", "zero", "full", "random", "urandom", "tty"] {
        let (host, path) = (Path::new("/dev").join(name), dev.join(name));
        if std::fs::symlink_metadata(&path).is_ok() {
            continue;
        }
        let made = stat(&host).ok().is_some_and(|st| {
            let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
            let mode = Mode::from_bits_truncate(st.st_mode & 0o7777);
            mknod(&path, kind, mode, st.st_rdev).is_ok()
        });
        if !made && name == "null" {
            let _ = File::create(&path).and_then(|f| {
                use std::os::unix::fs::PermissionsExt;
                f.set_permissions(std::fs::Permissions::from_mode(0o666))
            });
        }
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let _ = std::os::unix::fs::symlink(target, dev.join(name));
    }
}

/// Entry of the re-executed child: binds the host's `/dev`, `/proc` and `/sys` when it may,
/// chroots, switches user, enters the working directory and executes the process. A setup
/// failure is printed and ends the process with status 125; never returns.
pub(crate) fn child_main(value: &OsStr) -> ! {
    std::env::remove_var(CHROOT_ENV);
    let launch: Launch = match serde_json::from_slice(value.as_encoded_bytes()) {
        Ok(l) => l,
        Err(e) => fail(&format!("malformed {CHROOT_ENV}: {e}")),
    };
    let Rootfs::Dir(root) = &launch.spec.rootfs else {
        fail("not a directory rootfs")
    };
    if launch.bind_host {
        if let Err(e) = bind_host(root) {
            fail(&e);
        }
    }
    if let Err(e) = nix::unistd::chroot(root).and_then(|_| nix::unistd::chdir("/")) {
        fail(&format!("chroot to {}: {e}", root.display()));
    }
    let cwd = &launch.spec.process.cwd;
    let _ = std::fs::create_dir_all(cwd); // as docker: created (as root) when missing
    if let Err(e) = crate::capabilities::switch_user(&launch.spec.process.user) {
        fail(&crate::init::error_chain(&e));
    }
    if let Err(e) = nix::unistd::chdir(cwd) {
        fail(&format!("working directory {}: {e}", cwd.display()));
    }
    crate::init::Exec::prepare(&launch.spec).exec()
}

fn bind_host(root: &Path) -> Result<(), String> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("mount namespace: {e}"))?;
    crate::rootfs::make_private().map_err(|e| crate::init::error_chain(&e))?;
    for dir in ["dev", "proc", "sys"] {
        let host = Path::new("/").join(dir);
        let target = resolve_in_root(root, &host);
        mount(
            Some(&host),
            &target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| format!("binding {} on {}: {e}", host.display(), target.display()))?;
    }
    Ok(())
}

fn fail(message: &str) -> ! {
    eprintln!("rbuild: chroot isolation: {message}");
    std::process::exit(125)
}
