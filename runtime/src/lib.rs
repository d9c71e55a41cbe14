//! rbuild's minimal Linux container runtime.
//!
//! Everything in rbuild that needs `unsafe` or a raw syscall lives in this crate:
//! namespaces, mounts, pivot_root, process spawning, ptys and signals.
//!
//! ```no_run
//! use rbuild_runtime::{ContainerSpec, Rootfs, Stdio};
//!
//! fn main() {
//!     // First thing in main: a re-executed copy of this binary sets up the container here.
//!     rbuild_runtime::init_hook();
//!
//!     let rootfs = Rootfs::Overlay {
//!         lowers: vec!["/var/lib/rbuild/snapshots/base".into()],
//!         upper: "/var/lib/rbuild/tmp/upper".into(),
//!         work: "/var/lib/rbuild/tmp/work".into(),
//!     };
//!     let mut spec = ContainerSpec::new(rootfs, vec!["sh".into(), "-c".into(), "echo hi".into()]);
//!     spec.process.user = rbuild_runtime::resolve_user_in_layers(
//!         &["/var/lib/rbuild/snapshots/base".into()],
//!         "app",
//!     )
//!     .unwrap();
//!     let status = rbuild_runtime::run(&spec, Stdio::inherit()).unwrap();
//!     std::process::exit(status.code);
//! }
//! ```
//!
//! # How a container starts
//!
//! Forking a multi-threaded Rust process and then allocating in the child is unsound, and
//! the runner (the build engine, `rbuild run`, a test harness) has threads. So [`spawn`]
//! re-executes the running binary (`/proc/self/exe`) with the spec in a memfd and a socket,
//! named by the hidden `_RBUILD_RUNTIME_INIT` environment variable. The binary's `main`
//! calls [`init_hook`] first; in the re-executed copy it never returns (programs that cannot,
//! such as libtest unit tests, name another binary with [`set_init_program`]). A `clone()`
//! of the caller with a hand-written minimal child was the alternative; re-executing keeps
//! all setup code ordinary Rust with ordinary error handling. That fresh, single-threaded
//! *monitor* process:
//!
//! 1. (rootless) creates a user namespace, has the runner write its id maps, becomes root;
//! 2. creates the container's cgroup `rbuild/<id>` with its limits ([`Resources`]: podman's
//!    2048 processes by default, skipped with a [`Container::notes`] entry where cgroups
//!    cannot be created; memory, swap and CPU limits when asked for, an error where they
//!    cannot be set);
//! 3. creates the UTS, IPC and network (unless [`NetworkMode::Host`]) namespaces and a PID
//!    namespace for its next child; with [`ContainerSpec::user_network`] the runner then
//!    starts pasta or slirp4netns on that namespace and PID 1 waits for it before executing
//!    anything ([`network::user_mode`]);
//! 4. forks the container's PID 1, then forwards signals to it, reports its exit status
//!    (with [`ExitStatus::oom_killed`] from the cgroup's memory events) and removes the
//!    cgroup (empty groups left by a killed monitor go at the next start).
//!
//! [`exec`] starts a process in a running container the same way: a re-executed monitor
//! joins its namespaces and cgroups (see the `exec` module).
//!
//! PID 1 (which the monitor moves into the cgroup while PID 1 mounts; PID 1 waits for that
//! before creating a cgroup namespace rooted there and executing anything) joins a
//! new session keyring (keyrings are not namespaced: the runner's keys must not be
//! reachable), creates its mount namespace, mounts the rootfs (overlayfs, or a bind of a plain
//! directory), `/proc`, read-only `/sys`, a minimal `/dev` (null zero full random urandom
//! tty, devpts, shm, mqueue), the per-container `/etc/hosts`, `/etc/hostname` and
//! `/etc/resolv.conf`, the extra mounts, then `pivot_root`s, applies docker's masked and
//! read-only paths, sets rlimits, switches user, keeps docker's default capabilities
//! ([`DEFAULT_CAPABILITIES`]), sets `no_new_privs`, installs the seccomp filter (docker's
//! default profile, [`SeccompProfile::default_profile`], compiled by the runner; another
//! profile in docker's JSON format, or none, through [`ContainerSpec::seccomp`]) and
//! executes the process (or, with
//! `init: true`, a small init that runs the process as its child, reaps zombies and
//! forwards signals). The process is PID 1 as in docker.
//!
//! Any setup failure comes back from [`spawn`]/[`run`] as [`RuntimeError::Setup`] with the
//! cause chain. Exit statuses follow docker: the process's code, 128+N when killed by
//! signal N, 127 when the program is not found, 126 when it cannot be executed.
//!
//! While a container runs, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to the
//! runner are forwarded to it ([`FORWARDED_SIGNALS`]). As in docker, PID 1 ignores signals
//! it installed no handler for; `init: true` makes default actions apply.
//!
//! The caller gets back the change set in the overlay's upper directory (read it with
//! [`changes`]); mount points the runtime had to create (`/etc/hosts` and the like) are
//! removed from it again. [`Container::connect_tcp`] opens connections inside the
//! container's network namespace, for port forwarding.
//!
//! # Chroot isolation
//!
//! Where no namespace may be created (an unprivileged container under a default seccomp
//! profile), [`chroot::spawn`] runs a process chrooted in a plain directory the caller
//! materialised, with no mount (or, when a mount namespace is allowed, the host's `/dev`,
//! `/proc` and `/sys` bound in); [`chroot::namespaces_allowed`] is the cheap probe that
//! decides. See the module for what the process finds there.
//!
//! # Rootless
//!
//! Run by a non-root user, the monitor creates a user namespace mapping the caller to root;
//! with `newuidmap`/`newgidmap` and a range in `/etc/subuid` and `/etc/subgid`, uids and
//! gids from 1 map to that range, otherwise only root exists in the container. Overlay is
//! mounted with `userxattr` (Linux 5.11+); device nodes are bind-mounted from the host;
//! `/sys` is bind-mounted when it cannot be mounted (host network).

mod capabilities;
mod cgroup;
pub mod changes;
mod channel;
pub mod chroot;
pub mod detach;
pub mod dirfd;
mod error;
mod exec;
mod fds;
mod init;
mod keyring;
mod mounts;
mod namespaces;
pub mod network;
mod overlay_view;
mod paths;
mod process;
mod rootfs;
mod seccomp;
mod signals;
mod spec;
pub mod terminal;
mod unmount;
mod user;

pub use capabilities::{
    all_capabilities_mask, capability_mask, default_capability_mask, CapabilityError,
    DEFAULT_CAPABILITIES,
};
pub use cgroup::{
    host_pids_hierarchy, remove_freezer_group, set_frozen, usage_of, warm_up_moves, CgroupError,
    CgroupUsage,
};
pub use error::RuntimeError;
pub use exec::exec;
pub use mounts::MountError;
pub use namespaces::NamespaceError;
pub use overlay_view::OverlayView;
pub use paths::resolve_in_root;
pub use process::{
    output, run, set_init_program, spawn, Container, ExitStatus, Io, Output, ProcessError, Stdio,
};
pub use rootfs::{container_resolv_conf, RootfsError, MASKED_PATHS, READONLY_PATHS};
pub use seccomp::{
    Action as SeccompAction, ArchMapEntry, ArgCondition, CompareOp, Conditions, SeccompError,
    SeccompProfile, SyscallEntry,
};
pub use signals::FORWARDED_SIGNALS;
pub use spec::{
    default_rlimits, ContainerSpec, DeviceNode, DeviceRule, MountKind, MountSpec, NetworkMode,
    ProcessSpec, Resources, Rlimit, RlimitResource, Rootfs, UserSpec, DEFAULT_PATH,
    DEFAULT_PIDS_MAX, DEFAULT_SHM_SIZE,
};
pub use user::{resolve_user, resolve_user_from, resolve_user_in_layers, UserError};

/// Must be called first thing in `main` of every binary that runs containers. In a normal
/// start it returns at once; in the copy of the binary that the runtime re-executes to set
/// up a container it does that work and exits, never returning.
pub fn init_hook() {
    if let Some(value) = std::env::var_os(init::INIT_ENV) {
        init::monitor_main(&value);
    }
    if let Some(value) = std::env::var_os(chroot::CHROOT_ENV) {
        chroot::child_main(&value);
    }
}

/// Whether the kernel knows overlayfs (`/proc/filesystems`); where it does not, use
/// [`Rootfs::Dir`] with a copied tree.
pub fn overlay_available() -> bool {
    std::fs::read_to_string("/proc/filesystems")
        .map(|s| {
            s.lines()
                .any(|l| l.split_whitespace().last() == Some("overlay"))
        })
        .unwrap_or(false)
}
