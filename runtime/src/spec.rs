//! What to run: the container description handed to [`crate::run`] and [`crate::spawn`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::network::BridgeAttachment;
use crate::seccomp::SeccompProfile;

/// Everything the runtime needs to start one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// The root filesystem.
    pub rootfs: Rootfs,
    /// The process to run as the container's PID 1 (or as the only child of the init).
    pub process: ProcessSpec,
    /// Hostname inside the container's UTS namespace (also written to `/etc/hostname`).
    pub hostname: String,
    /// Extra mounts, applied in order after `/proc`, `/sys` and `/dev`.
    pub mounts: Vec<MountSpec>,
    /// Which network namespace the container gets.
    pub network: NetworkMode,
    /// Put a small init in front of the process: it reaps zombies and forwards signals.
    pub init: bool,
    /// Mount the root filesystem read-only.
    pub readonly_rootfs: bool,
    /// Mount the overlay with `volatile` (Linux 5.10+; ignored elsewhere): no sync of the
    /// upper dir, so containers start and end much faster. For RUN steps, whose upper dir
    /// becomes a layer right after; not for containers whose writes must survive a crash.
    pub volatile_overlay: bool,
    /// Resource limits set before the process starts; see [`default_rlimits`].
    pub rlimits: Vec<Rlimit>,
    /// Extra `/etc/hosts` lines, as (hostname, address).
    pub extra_hosts: Vec<(String, String)>,
    /// The system call filter: docker's default profile unless changed; `None` runs the
    /// container unconfined (docker's `--security-opt seccomp=unconfined`).
    pub seccomp: Option<SeccompProfile>,
    /// Limits for the container's whole process tree, set through its cgroup.
    pub resources: Resources,
    /// Names the container's cgroup `rbuild/<id>` (a container ID; `[A-Za-z0-9_.-]`). `None`:
    /// the runtime makes one up from the monitor's pid.
    pub id: Option<String>,
    /// With a private network namespace ([`NetworkMode::None`] or [`NetworkMode::Private`]):
    /// connect it to a bridge on the host through a veth pair (root only; see
    /// [`crate::network`]). `None`: loopback only.
    #[serde(default)]
    pub bridge: Option<BridgeAttachment>,
    /// docker's `--dns`: name servers replacing the host's in `/etc/resolv.conf` (not with
    /// [`NetworkMode::Host`]).
    #[serde(default)]
    pub dns: Vec<String>,
    /// docker's `--dns-search`: search domains replacing the host's.
    #[serde(default)]
    pub dns_search: Vec<String>,
    /// docker's `--network container:NAME`: join the network namespace of this process
    /// (the other container's PID 1) instead of making one; [`ContainerSpec::bridge`] is
    /// then `None`. Root only.
    #[serde(default)]
    pub join_network: Option<u32>,
    /// With a private network namespace: connect it through a user-mode network helper
    /// (pasta or slirp4netns) that the runner starts and stops with the container; for
    /// rootless containers. See [`crate::network::user_mode`].
    #[serde(default)]
    pub user_network: Option<crate::network::user_mode::UserNetwork>,
    /// The capabilities the process keeps, as a mask of capability numbers: its bounding
    /// set, and its effective and permitted sets when it runs as root. Docker's default set
    /// ([`crate::default_capability_mask`]) unless changed (`--cap-add`, `--cap-drop`,
    /// `--privileged`: see [`crate::capability_mask`]). Also the set the seccomp profile's
    /// capability conditions are evaluated against.
    #[serde(default = "crate::capabilities::default_capability_mask")]
    pub capabilities: u64,
    /// Set `no_new_privs` before the process runs (rbuild's default; docker sets it only
    /// with `--security-opt no-new-privileges`).
    #[serde(default = "yes")]
    pub no_new_privileges: bool,
    /// docker's `--privileged` mounts: every host device node in `/dev`, a writable `/sys`,
    /// and none of docker's masked or read-only paths. Capabilities, seccomp and the device
    /// cgroup are the fields' own ([`ContainerSpec::capabilities`], [`ContainerSpec::seccomp`],
    /// [`Resources::devices`]).
    #[serde(default)]
    pub privileged: bool,
    /// Device nodes made in the container's `/dev` (docker's `--device`); access to them
    /// is granted through [`Resources::devices`].
    #[serde(default)]
    pub devices: Vec<DeviceNode>,
    /// Size of `/dev/shm` in bytes (docker's `--shm-size`); `None`: 64 MiB, docker's default.
    #[serde(default)]
    pub shm_size: Option<u64>,
    /// More bridges the container's network namespace is connected to, after
    /// [`ContainerSpec::bridge`] (docker's `network connect`): `eth1`, `eth2`, … in this
    /// order, each with its address and no route but its subnet's.
    #[serde(default)]
    pub extra_bridges: Vec<BridgeAttachment>,
}

fn yes() -> bool {
    true
}

/// docker's default `/dev/shm` size: 64 MiB.
pub const DEFAULT_SHM_SIZE: u64 = 64 << 20;

/// A device node made in the container (`--device HOST:CONTAINER`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceNode {
    /// Absolute path inside the container.
    pub path: PathBuf,
    /// The host's node: bound over `path` where `mknod` is not permitted (rootless).
    pub host: PathBuf,
    /// `'c'` (character) or `'b'` (block).
    pub kind: char,
    pub major: u64,
    pub minor: u64,
    /// Permission bits of the node (the host node's).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// One device cgroup rule, as cgroup v1's `devices.allow` reads it: `c 1:3 rwm`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRule {
    /// `'a'` (all), `'c'` or `'b'`.
    pub kind: char,
    /// `None`: any (`*`).
    pub major: Option<u64>,
    pub minor: Option<u64>,
    /// Some of `r`, `w`, `m` (read, write, mknod).
    pub access: String,
}

impl DeviceRule {
    /// The rule as `devices.allow` reads it.
    pub fn line(&self) -> String {
        let number = |n: Option<u64>| n.map_or("*".to_string(), |n| n.to_string());
        if self.kind == 'a' {
            return "a".to_string();
        }
        format!(
            "{} {}:{} {}",
            self.kind,
            number(self.major),
            number(self.minor),
            self.access
        )
    }

    /// docker's (runc's) default allow list: mknod of any node, and use of null, zero,
    /// full, random, urandom, tty, console, ptmx, the ptys and tun.
    pub fn defaults() -> Vec<DeviceRule> {
        let rule = |kind, major, minor, access: &str| DeviceRule {
            kind,
            major,
            minor,
            access: access.to_string(),
        };
        vec![
            rule('c', None, None, "m"),
            rule('b', None, None, "m"),
            rule('c', Some(1), Some(3), "rwm"),
            rule('c', Some(1), Some(5), "rwm"),
            rule('c', Some(1), Some(7), "rwm"),
            rule('c', Some(1), Some(8), "rwm"),
            rule('c', Some(1), Some(9), "rwm"),
            rule('c', Some(5), Some(0), "rwm"),
            rule('c', Some(5), Some(1), "rwm"),
            rule('c', Some(5), Some(2), "rwm"),
            rule('c', Some(136), None, "rwm"),
            rule('c', Some(10), Some(200), "rwm"),
        ]
    }
}

impl ContainerSpec {
    /// A spec with docker's defaults: hostname `rbuild`, no extra mounts, a private network
    /// namespace without interfaces other than loopback (`NetworkMode::None`), no init,
    /// [`default_rlimits`], docker's default seccomp profile, podman's default pids limit
    /// ([`Resources::default`]), and the process running as root in `/`.
    pub fn new(rootfs: Rootfs, args: Vec<String>) -> ContainerSpec {
        ContainerSpec {
            rootfs,
            process: ProcessSpec {
                args,
                env: vec![format!("PATH={DEFAULT_PATH}")],
                cwd: PathBuf::from("/"),
                user: UserSpec::root(),
                terminal: false,
                console_size: None,
            },
            hostname: "rbuild".to_string(),
            mounts: Vec::new(),
            network: NetworkMode::None,
            init: false,
            readonly_rootfs: false,
            volatile_overlay: false,
            rlimits: default_rlimits(),
            extra_hosts: Vec::new(),
            seccomp: Some(SeccompProfile::default_profile()),
            resources: Resources::default(),
            id: None,
            bridge: None,
            dns: Vec::new(),
            dns_search: Vec::new(),
            join_network: None,
            user_network: None,
            capabilities: crate::capabilities::default_capability_mask(),
            no_new_privileges: true,
            privileged: false,
            devices: Vec::new(),
            shm_size: None,
            extra_bridges: Vec::new(),
        }
    }
}

/// Docker's default `PATH`, set when the process environment has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The container's root filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rootfs {
    /// An overlayfs of read-only snapshot directories plus a writable upper directory.
    ///
    /// `lowers` are ordered like image layers: the base layer first, the topmost last. After
    /// the run, `upper` holds the change set (overlay whiteouts: a `0:0` character device for
    /// a deleted path, the `trusted.overlay.opaque` (or `user.overlay.opaque` when rootless)
    /// xattr for a replaced directory; see [`crate::changes`]). `work` must be an empty
    /// directory on the same filesystem as `upper`.
    Overlay {
        lowers: Vec<PathBuf>,
        upper: PathBuf,
        work: PathBuf,
    },
    /// A plain directory used as the root directly (the fallback where overlayfs cannot be
    /// mounted: the caller copies the lowers into it and diffs the tree afterwards).
    Dir(PathBuf),
}

/// The process to start inside the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessSpec {
    /// `argv`; `args[0]` is looked up in the container's `PATH` when it has no `/`.
    pub args: Vec<String>,
    /// `KEY=value` entries. `PATH` defaults to [`DEFAULT_PATH`] and `HOME` to the user's
    /// home directory (`/` when unknown) when absent, as docker does.
    pub env: Vec<String>,
    /// Working directory inside the container; created (as root) when missing.
    pub cwd: PathBuf,
    /// Who the process runs as; see [`crate::resolve_user`].
    pub user: UserSpec,
    /// Give the process a pseudo-terminal on stdin/stdout/stderr.
    pub terminal: bool,
    /// The pty's size (rows, columns) when the runner's stdio has no terminal to take it
    /// from (docker's `ConsoleSize`: a detached monitor relaying a remote client's terminal).
    #[serde(default)]
    pub console_size: Option<(u16, u16)>,
}

/// Numeric credentials of the container process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSpec {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups.
    pub additional_gids: Vec<u32>,
    /// Home directory from `/etc/passwd`, used for `HOME` when the environment has none.
    pub home: Option<PathBuf>,
}

impl UserSpec {
    /// uid 0, gid 0, no supplementary groups, home `/root`.
    pub fn root() -> UserSpec {
        UserSpec {
            uid: 0,
            gid: 0,
            additional_gids: Vec::new(),
            home: Some(PathBuf::from("/root")),
        }
    }

    /// Puts the primary group first among the supplementary groups (once), as docker does
    /// for a container's process: `id` then prints `groups=0(root)`, not no groups at all.
    /// Builds keep [`crate::resolve_user`]'s groups as they are.
    pub fn with_primary_group_supplementary(mut self) -> UserSpec {
        self.additional_gids.retain(|g| *g != self.gid);
        self.additional_gids.insert(0, self.gid);
        self
    }
}

/// An extra mount inside the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSpec {
    /// Absolute path inside the container (symlinks resolve inside the rootfs).
    pub destination: PathBuf,
    pub kind: MountKind,
    pub readonly: bool,
}

/// What is mounted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountKind {
    /// A recursive bind mount of a host file or directory (also used for volumes).
    Bind { source: PathBuf },
    /// A fresh tmpfs; `size` in bytes, `mode` as octal permission bits (default 1777),
    /// mounted `nosuid,nodev`. `options`: more of mount(8)'s words (`noexec`/`exec`,
    /// `nosuid`/`suid`, `nodev`/`dev`, `ro`/`rw`, `sync`, `noatime` ...), later ones winning,
    /// and tmpfs data options (`uid=`, `gid=`, `nr_inodes=` ...) passed on as they are.
    Tmpfs {
        size: Option<u64>,
        mode: Option<u32>,
        #[serde(default)]
        options: Vec<String>,
    },
}

/// The container's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetworkMode {
    /// Share the host's network namespace (`/etc/hosts` and `/etc/resolv.conf` are the host's).
    Host,
    /// A new network namespace with only loopback, up.
    None,
    /// A new network namespace meant to be connected by the caller (port forwarding); for now
    /// the same as [`NetworkMode::None`].
    Private,
}

/// One resource limit, applied with `setrlimit` (the hard limit is lowered to what the
/// runner may set when raising it is not permitted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    pub resource: RlimitResource,
    pub soft: u64,
    pub hard: u64,
}

/// The resources [`Rlimit`] can limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RlimitResource {
    /// `RLIMIT_NOFILE`
    Nofile,
    /// `RLIMIT_NPROC`
    Nproc,
    /// `RLIMIT_CORE`
    Core,
    /// `RLIMIT_STACK`
    Stack,
    /// `RLIMIT_MEMLOCK`
    Memlock,
    /// `RLIMIT_AS`
    As,
    /// `RLIMIT_CPU`
    Cpu,
    /// `RLIMIT_DATA`
    Data,
    /// `RLIMIT_FSIZE`
    Fsize,
    /// `RLIMIT_LOCKS`
    Locks,
    /// `RLIMIT_MSGQUEUE`
    Msgqueue,
    /// `RLIMIT_NICE`
    Nice,
    /// `RLIMIT_RSS`
    Rss,
    /// `RLIMIT_RTPRIO`
    Rtprio,
    /// `RLIMIT_RTTIME`
    Rttime,
    /// `RLIMIT_SIGPENDING`
    Sigpending,
}

impl RlimitResource {
    /// Every resource with docker's `--ulimit` name for it.
    pub const NAMES: [(&'static str, RlimitResource); 16] = [
        ("as", RlimitResource::As),
        ("core", RlimitResource::Core),
        ("cpu", RlimitResource::Cpu),
        ("data", RlimitResource::Data),
        ("fsize", RlimitResource::Fsize),
        ("locks", RlimitResource::Locks),
        ("memlock", RlimitResource::Memlock),
        ("msgqueue", RlimitResource::Msgqueue),
        ("nice", RlimitResource::Nice),
        ("nofile", RlimitResource::Nofile),
        ("nproc", RlimitResource::Nproc),
        ("rss", RlimitResource::Rss),
        ("rtprio", RlimitResource::Rtprio),
        ("rttime", RlimitResource::Rttime),
        ("sigpending", RlimitResource::Sigpending),
        ("stack", RlimitResource::Stack),
    ];

    /// The resource docker's `--ulimit` calls `name` (`nofile`, `nproc` ...).
    pub fn from_name(name: &str) -> Option<RlimitResource> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, r)| *r)
    }

    /// Docker's name for the resource.
    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, r)| *r == self)
            .map_or("", |(n, _)| n)
    }
}

/// Docker's defaults (containerd's default OCI spec): 1024 open files soft, 524288 hard.
pub fn default_rlimits() -> Vec<Rlimit> {
    vec![Rlimit {
        resource: RlimitResource::Nofile,
        soft: 1024,
        hard: 524_288,
    }]
}

/// podman's default limit on the number of processes (threads count) in one container.
pub const DEFAULT_PIDS_MAX: u64 = 2048;

/// Resource limits of the container's cgroup (`None`: unlimited), docker's `HostConfig`
/// fields: `--pids-limit`, `-m/--memory`, `--memory-swap`, `--cpus`, `--cpu-shares`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// `pids.max`: how many processes and threads the container may have at once.
    pub pids_max: Option<u64>,
    /// Memory limit in bytes (`memory.limit_in_bytes`, v2 `memory.max`).
    #[serde(default)]
    pub memory: Option<u64>,
    /// Memory plus swap in bytes, `-1` for unlimited swap; `None` with `memory` set: as much
    /// swap as memory (docker's default), where the kernel accounts swap.
    #[serde(default)]
    pub memory_swap: Option<i64>,
    /// CPU time in billionths of a CPU (`--cpus 1.5` is 1_500_000_000), as a CFS quota per
    /// 100 ms period.
    #[serde(default)]
    pub nano_cpus: Option<u64>,
    /// Relative CPU weight (`cpu.shares`, v2 `cpu.weight` converted as runc does).
    #[serde(default)]
    pub cpu_shares: Option<u64>,
    /// The device cgroup: every device denied but these (cgroup v1 `devices.allow`; on
    /// cgroup v2 an eBPF program made from the same rules; where the group cannot be
    /// written, the container runs without it and gets a note). `None`: no device cgroup
    /// (builds, `--privileged`).
    #[serde(default)]
    pub devices: Option<Vec<DeviceRule>>,
}

/// The CFS period `--cpus` sets quotas for, as docker: 100 ms.
const CPU_PERIOD_US: u64 = 100_000;

impl Resources {
    /// The controllers these limits need, in the order groups are set up.
    pub(crate) fn controllers(&self) -> Vec<crate::cgroup::Controller> {
        use crate::cgroup::Controller;
        let mut out = Vec::new();
        if self.pids_max.is_some() {
            out.push(Controller::Pids);
        }
        if self.memory.is_some() || self.memory_swap.is_some() {
            out.push(Controller::Memory);
        }
        if self.nano_cpus.is_some() || self.cpu_shares.is_some() {
            out.push(Controller::Cpu);
        }
        if self.devices.is_some() {
            out.push(Controller::Devices);
        }
        out
    }

    /// `nano_cpus` as a CFS (quota, period) in microseconds.
    pub(crate) fn cpu_quota_period(&self) -> Option<(u64, u64)> {
        self.nano_cpus
            .map(|n| ((n * CPU_PERIOD_US / 1_000_000_000).max(1000), CPU_PERIOD_US))
    }
}

impl Default for Resources {
    /// [`DEFAULT_PIDS_MAX`] processes, nothing else limited.
    fn default() -> Resources {
        Resources {
            pids_max: Some(DEFAULT_PIDS_MAX),
            memory: None,
            memory_swap: None,
            nano_cpus: None,
            cpu_shares: None,
            devices: None,
        }
    }
}
