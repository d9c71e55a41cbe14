//! The container's cgroup: resource limits that hold for the container's whole process tree
//! (processes, memory and swap, CPU quota and weight), as docker and podman set them.
//!
//! Each container gets `rbuild/<name>` in every hierarchy holding a controller its limits
//! need: the cgroup v2 tree when its `cgroup.controllers` lists the controller (pure v2, or a
//! hybrid layout's `unified` mount once controllers move there), else the v1 hierarchy of
//! that controller (`pids`, `memory`, `cpu`). The monitor creates the groups, sets the
//! limits and moves PID 1 in while PID 1 mounts its rootfs; PID 1 waits for that before it
//! creates its cgroup namespace (so inside, `/proc/self/cgroup` shows `/`) and executes
//! anything; when PID 1 has ended (by then the PID namespace's other processes are gone
//! too) the monitor reads whether the OOM killer struck ([`Cgroup::oom_killed`]) and
//! removes the groups. Groups left by a killed monitor are empty and are removed when the
//! next container starts. Only the default pids limit is best effort: without write access
//! (rootless without a delegated hierarchy) or without a `pids` controller the container
//! runs without it and the runner gets a note saying why; any limit the caller asked for
//! that cannot be set is an error.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::spec::Resources;

mod device_filter;
mod freeze;
pub use device_filter::DeviceFilterError;
pub use freeze::{remove_freezer_group, set_frozen};

/// Errors of cgroup setup.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("failed to create cgroup {}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A limit was asked for whose controller the host does not have (or not mounted).
    #[error("cannot set the limit: no cgroup hierarchy with the {0} controller")]
    Unavailable(&'static str),
    #[error("failed to write {value:?} to {}", path.display())]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no cgroup freezer on this host (no cgroup v2 with pids, no v1 freezer hierarchy)")]
    NoFreezer,
    #[error("the container has no cgroup ({}): it runs without one", .0.display())]
    NoGroup(PathBuf),
    #[error("the cgroup freezer did not finish ({})", .0.display())]
    FreezeTimeout(PathBuf),
    #[error(transparent)]
    DeviceFilter(#[from] DeviceFilterError),
}

/// The directory under the hierarchy's root that holds rbuild's groups.
const PARENT: &str = "rbuild";

/// A cgroup controller rbuild sets limits through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Controller {
    Pids,
    Memory,
    Cpu,
    /// The device cgroup: the v1 `devices` controller, or on cgroup v2 (which has no such
    /// controller) an eBPF program attached to the group ([`device_filter`]).
    Devices,
}

impl Controller {
    fn name(self) -> &'static str {
        match self {
            Controller::Pids => "pids",
            Controller::Memory => "memory",
            Controller::Cpu => "cpu",
            Controller::Devices => "devices",
        }
    }
}

/// The container's group in one hierarchy.
#[derive(Debug)]
struct Group {
    /// `<mount point>/rbuild/<name>`.
    path: PathBuf,
    /// The parent needs the controllers in `cgroup.subtree_control` (cgroup v2 only).
    v2: bool,
    controllers: Vec<Controller>,
}

/// A container's cgroup (one group per hierarchy that holds one of its controllers),
/// created by the monitor, removed when dropped.
#[derive(Debug)]
pub(crate) struct Cgroup {
    groups: Vec<Group>,
    resources: Resources,
}

/// The host's hierarchy with the `pids` controller (the one containers' limits go to): its
/// mount point and whether it is cgroup v2; `None` when there is none (no limits then).
pub fn host_pids_hierarchy() -> Option<(PathBuf, bool)> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    hierarchy(&mountinfo, "pids")
}

/// Where `controller` is mounted: (mount point, is cgroup v2). cgroup v2 wins when its
/// `cgroup.controllers` lists the controller; else the v1 hierarchy that has it.
fn hierarchy(mountinfo: &str, controller: &str) -> Option<(PathBuf, bool)> {
    let mut v1 = None;
    for (mount_point, v2, options) in cgroup_mounts(mountinfo) {
        if v2 {
            let controllers =
                std::fs::read_to_string(mount_point.join("cgroup.controllers")).unwrap_or_default();
            if controllers.split_whitespace().any(|c| c == controller) {
                return Some((mount_point, true));
            }
        } else if v1.is_none() && options.iter().any(|o| o == controller) {
            v1 = Some((mount_point, false));
        }
    }
    v1
}

/// Where the device cgroup goes: the v1 `devices` hierarchy where one is mounted (a hybrid
/// host, as runc chooses), else the cgroup v2 tree (an eBPF filter). The test-only
/// `RBUILD_TEST_DEVICES_V2=1` takes cgroup v2 on a hybrid host too, where the tests run.
fn devices_hierarchy(mountinfo: &str) -> Option<(PathBuf, bool)> {
    let v2 = || {
        cgroup_mounts(mountinfo)
            .into_iter()
            .find(|(_, v2, _)| *v2)
            .map(|(mount_point, _, _)| (mount_point, true))
    };
    if std::env::var_os("RBUILD_TEST_DEVICES_V2").is_some_and(|v| v == "1") {
        return v2();
    }
    hierarchy(mountinfo, Controller::Devices.name()).or_else(v2)
}

/// The cgroup mounts of a `mountinfo`: (mount point, is v2, super options).
fn cgroup_mounts(mountinfo: &str) -> Vec<(PathBuf, bool, Vec<String>)> {
    mountinfo
        .lines()
        .filter_map(|line| {
            // `id parent major:minor root mountpoint options - fstype source superoptions`
            let (left, right) = line.split_once(" - ")?;
            let mut right = right.split(' ');
            let (fstype, _source, options) = (right.next()?, right.next()?, right.next()?);
            let mount_point = PathBuf::from(unescape(left.split(' ').nth(4)?));
            let options = options.split(',').map(str::to_string).collect();
            match fstype {
                "cgroup2" => Some((mount_point, true, options)),
                "cgroup" => Some((mount_point, false, options)),
                _ => None,
            }
        })
        .collect()
}

/// The `cgroup.procs` files of the rbuild groups process `pid` is in (one per hierarchy),
/// opened for writing, for a process that joins its container ([`crate::exec`]). Groups
/// outside rbuild's are left alone.
pub(crate) fn procs_files_of(pid: i32) -> Result<Vec<std::fs::File>, CgroupError> {
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut files = Vec::new();
    for (mount_point, path) in rbuild_groups(&own, &mountinfo) {
        let procs = mount_point
            .join(path.trim_start_matches('/'))
            .join("cgroup.procs");
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&procs)
            .map_err(|source| CgroupError::Create {
                path: procs.clone(),
                source,
            })?;
        files.push(file);
    }
    Ok(files)
}

/// What a running container's cgroups account (see [`usage_of`]); `None` where no group of
/// the container has the controller (no memory group without a memory limit on cgroup v1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupUsage {
    /// Every process of the container, as the host numbers them.
    pub processes: Vec<i32>,
    /// Memory in use, bytes (v1 `memory.usage_in_bytes`, v2 `memory.current`).
    pub memory: Option<u64>,
    /// The memory limit, bytes (`None`: unlimited or no memory group).
    pub memory_limit: Option<u64>,
    /// CPU time used, nanoseconds (v1 `cpuacct.usage`, v2 `cpu.stat` `usage_usec`).
    pub cpu_nanos: Option<u64>,
}

/// Reads the accounting of the rbuild groups process `pid` (a container's PID 1, as the
/// caller sees it) is in: for `top` and `stats`.
pub fn usage_of(pid: i32) -> CgroupUsage {
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mounts = cgroup_mounts(&mountinfo);
    let mut usage = CgroupUsage::default();
    let read = |path: &Path| std::fs::read_to_string(path).ok();
    let number = |text: Option<String>| text.and_then(|t| t.trim().parse::<u64>().ok());
    for (mount_point, path) in rbuild_groups(&own, &mountinfo) {
        let group = mount_point.join(path.trim_start_matches('/'));
        let v2 = mounts.iter().any(|(m, v2, _)| *m == mount_point && *v2);
        if usage.processes.is_empty() {
            usage.processes = read(&group.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
        }
        let (current, limit) = if v2 {
            ("memory.current", "memory.max")
        } else {
            ("memory.usage_in_bytes", "memory.limit_in_bytes")
        };
        if usage.memory.is_none() {
            usage.memory = number(read(&group.join(current)));
            // v1 shows "no limit" as a huge page-rounded number.
            usage.memory_limit = number(read(&group.join(limit))).filter(|l| *l < 1 << 62);
        }
        if usage.cpu_nanos.is_none() {
            usage.cpu_nanos = if v2 {
                read(&group.join("cpu.stat")).and_then(|t| {
                    t.lines()
                        .find_map(|l| l.strip_prefix("usage_usec "))
                        .and_then(|n| n.trim().parse::<u64>().ok())
                        .map(|us| us * 1000)
                })
            } else {
                number(read(&group.join("cpuacct.usage")))
            };
        }
    }
    usage
}

/// For each line of a `/proc/<pid>/cgroup` (`hierarchy:controllers:path`) whose path is one
/// of rbuild's groups: the hierarchy's mount point (from `mountinfo`) and the path.
fn rbuild_groups(proc_cgroup: &str, mountinfo: &str) -> Vec<(PathBuf, String)> {
    let prefix = format!("/{PARENT}/");
    groups(proc_cgroup, mountinfo)
        .into_iter()
        .filter(|(_, _, path)| path.starts_with(&prefix))
        .map(|(mount_point, _, path)| (mount_point, path))
        .collect()
}

/// Every group of a `/proc/PID/cgroup` whose hierarchy is mounted: (mount point, the
/// line's controllers, path in the hierarchy).
fn groups(proc_cgroup: &str, mountinfo: &str) -> Vec<(PathBuf, String, String)> {
    let mounts = cgroup_mounts(mountinfo);
    proc_cgroup
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (hierarchy, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let (mount_point, _, _) = mounts.iter().find(|(_, v2, options)| {
                if hierarchy == "0" {
                    *v2
                } else {
                    !*v2 && controllers
                        .split(',')
                        .all(|c| options.iter().any(|o| o == c))
                }
            })?;
            Some((
                mount_point.clone(),
                controllers.to_string(),
                path.to_string(),
            ))
        })
        .collect()
}

/// Starts, on a thread of its own, the wait that moving a process into a cgroup costs, so
/// that the container's move (or `exec`'s) a few milliseconds later does not wait, and
/// keeps the moves that cheap for `keep` (a CLI that starts a container calls it first
/// thing, with the time the start takes: the monitor's own call then finds it done).
///
/// Every move takes the kernel's `cgroup_threadgroup_rwsem` (one for all hierarchies, v1
/// and v2) for writing, and the first writer after a quiet spell waits for an RCU grace
/// period (5-25 ms on a loaded host, the largest part of `exec`'s own time); writers that
/// come during that wait, or within a grace period after it, do not wait again. The thread
/// "moves" this process into the group it already is in (its cgroup v2 group, else its
/// `pids` group), again every 2 ms until `keep` has passed: nothing changes but the lock's
/// state. Without write access (rootless) nothing happens.
pub fn warm_up_moves(keep: std::time::Duration) {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    std::thread::spawn(move || {
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let Some(procs) = own_procs_file(&own, &mountinfo) else {
            return;
        };
        let started = std::time::Instant::now();
        while std::fs::write(&procs, std::process::id().to_string()).is_ok()
            && started.elapsed() < keep
        {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    });
}

/// The `cgroup.procs` of the group [`warm_up_moves`] writes to.
fn own_procs_file(proc_cgroup: &str, mountinfo: &str) -> Option<PathBuf> {
    let groups = groups(proc_cgroup, mountinfo);
    let (mount_point, _, path) = groups
        .iter()
        .find(|(_, controllers, _)| controllers.is_empty())
        .or_else(|| {
            groups
                .iter()
                .find(|(_, controllers, _)| controllers.split(',').any(|c| c == "pids"))
        })?;
    Some(
        mount_point
            .join(path.trim_start_matches('/'))
            .join("cgroup.procs"),
    )
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = std::str::from_utf8(&bytes[i + 1..i + 4]).ok();
            if let Some(v) = digits.and_then(|d| u8::from_str_radix(d, 8).ok()) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(|source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    })
}

/// Whether an error means "not allowed here" (rootless, read-only cgroupfs): limits are
/// then skipped, not an error.
fn is_denied(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem
    )
}

impl Cgroup {
    /// Creates `rbuild/<name>` in each hierarchy that holds one of the controllers
    /// `resources` needs, with its limits. `(None, None)` when no limit is set. The default
    /// pids limit is best effort: without a `pids` controller or without write access the
    /// container runs without it, and the second value says why. Any other limit that cannot
    /// be set is an error ([`CgroupError::Unavailable`] and the like).
    pub(crate) fn create(
        name: &str,
        resources: &Resources,
    ) -> Result<(Option<Cgroup>, Option<String>), CgroupError> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut groups: Vec<Group> = Vec::new();
        let mut notes = Vec::new();
        for controller in resources.controllers() {
            let found = match controller {
                Controller::Devices => devices_hierarchy(&mountinfo),
                _ => hierarchy(&mountinfo, controller.name()),
            };
            let Some((mount_point, v2)) = found else {
                if controller == Controller::Pids {
                    notes
                        .push("no cgroup hierarchy with the pids controller: no pids limit".into());
                    continue;
                }
                if controller == Controller::Devices {
                    notes.push(
                        "no cgroup v1 devices hierarchy and no cgroup v2: device access is not \
                         restricted"
                            .into(),
                    );
                    continue;
                }
                return Err(CgroupError::Unavailable(controller.name()));
            };
            let path = mount_point.join(PARENT).join(name);
            match groups.iter_mut().find(|g| g.path == path) {
                Some(group) => group.controllers.push(controller),
                None => groups.push(Group {
                    path,
                    v2,
                    controllers: vec![controller],
                }),
            }
        }
        let mut cgroup = Cgroup {
            groups: Vec::new(),
            resources: resources.clone(),
        };
        for group in groups {
            let parent = group.path.parent().unwrap_or(Path::new("/")).to_path_buf();
            let made = match std::fs::create_dir(&parent) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
                Err(source) => Err(CgroupError::Create {
                    path: parent.clone(),
                    source,
                }),
            }
            .and_then(|()| {
                remove_stale(&parent);
                cgroup.make(&group)
            });
            match made {
                Ok(note) => {
                    notes.extend(note);
                    cgroup.groups.push(group)
                }
                // Not ours to write to (rootless): only the default pids limit and the device
                // cgroup may be skipped.
                Err(
                    CgroupError::Create { path, source } | CgroupError::Write { path, source, .. },
                ) if is_denied(source.kind())
                    && matches!(
                        group.controllers[..],
                        [Controller::Pids | Controller::Devices]
                    ) =>
                {
                    let without = match group.controllers[0] {
                        Controller::Devices => "device access is not restricted",
                        _ => "no pids limit",
                    };
                    notes.push(format!(
                        "cannot set up {} ({source}): {without}",
                        path.display()
                    ));
                }
                Err(e) => return Err(e),
            }
        }
        let cgroup = (!cgroup.groups.is_empty()).then_some(cgroup);
        let note = (!notes.is_empty()).then(|| notes.join("; "));
        Ok((cgroup, note))
    }

    /// Creates the group (again, when a concurrent stale-group sweep removed it while still
    /// empty) and writes its limits; the note says what the group goes without (a device
    /// filter the kernel does not let us install in a group that is ours: rootless).
    fn make(&self, group: &Group) -> Result<Option<String>, CgroupError> {
        let parent = group.path.parent().unwrap_or(Path::new("/"));
        if group.v2 {
            // Children of `rbuild` get a controller only when both levels pass it on (the
            // device filter is no controller: a program on the group itself).
            let enable: Vec<String> = group
                .controllers
                .iter()
                .filter(|c| **c != Controller::Devices)
                .map(|c| format!("+{}", c.name()))
                .collect();
            let enable = enable.join(" ");
            if !enable.is_empty() {
                if let Some(root) = parent.parent() {
                    let _ = write(&root.join("cgroup.subtree_control"), &enable);
                }
                write(&parent.join("cgroup.subtree_control"), &enable)?;
            }
        }
        match std::fs::create_dir(&group.path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(CgroupError::Create {
                    path: group.path.clone(),
                    source,
                })
            }
        }
        let set = |file: &str, value: String| write(&group.path.join(file), &value);
        let r = &self.resources;
        let mut note = None;
        for controller in &group.controllers {
            match (controller, group.v2) {
                (Controller::Pids, _) => {
                    if let Some(max) = r.pids_max {
                        set("pids.max", max.to_string())?;
                    }
                }
                (Controller::Memory, false) => {
                    if let Some(memory) = r.memory {
                        set("memory.limit_in_bytes", memory.to_string())?;
                    }
                    let memsw = "memory.memsw.limit_in_bytes";
                    match (r.memory, r.memory_swap) {
                        (_, Some(-1)) => set(memsw, "-1".into())?,
                        (_, Some(total)) => set(memsw, total.to_string())?,
                        // docker: as much swap as memory, where swap is accounted.
                        (Some(memory), None) if group.path.join(memsw).exists() => {
                            set(memsw, memory.saturating_mul(2).to_string())?
                        }
                        _ => {}
                    }
                }
                (Controller::Memory, true) => {
                    if let Some(memory) = r.memory {
                        set("memory.max", memory.to_string())?;
                    }
                    let swap = "memory.swap.max";
                    match (r.memory, r.memory_swap) {
                        (_, Some(-1)) => set(swap, "max".into())?,
                        (Some(memory), Some(total)) => {
                            set(swap, (total as u64).saturating_sub(memory).to_string())?
                        }
                        (Some(memory), None) if group.path.join(swap).exists() => {
                            set(swap, memory.to_string())?
                        }
                        _ => {}
                    }
                }
                (Controller::Cpu, false) => {
                    if let Some((quota, period)) = r.cpu_quota_period() {
                        set("cpu.cfs_period_us", period.to_string())?;
                        set("cpu.cfs_quota_us", quota.to_string())?;
                    }
                    if let Some(shares) = r.cpu_shares {
                        set("cpu.shares", shares.to_string())?;
                    }
                }
                (Controller::Cpu, true) => {
                    if let Some((quota, period)) = r.cpu_quota_period() {
                        set("cpu.max", format!("{quota} {period}"))?;
                    }
                    if let Some(shares) = r.cpu_shares {
                        // The conversion runc and crun use: 2..262144 onto 1..10000.
                        let weight = 1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142;
                        set("cpu.weight", weight.to_string())?;
                    }
                }
                (Controller::Devices, false) => {
                    // A new v1 group inherits its parent's list: start from nothing.
                    set("devices.deny", "a".into())?;
                    for rule in r.devices.iter().flatten() {
                        set("devices.allow", rule.line())?;
                    }
                }
                (Controller::Devices, true) => {
                    match device_filter::attach(
                        &group.path,
                        r.devices.as_deref().unwrap_or_default(),
                    ) {
                        Ok(()) => {}
                        Err(e) if e.is_denied() => {
                            note = Some(format!("{e}: device access is not restricted"))
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        Ok(note)
    }

    /// Moves process `pid` (as the caller sees it) into the groups. Moving a process waits
    /// for an RCU grace period in the kernel (milliseconds), so the monitor does it while
    /// PID 1 sets up its mounts, and PID 1 waits for it only before it goes on to exec.
    pub(crate) fn add(&self, pid: i32) -> Result<(), CgroupError> {
        let value = pid.to_string();
        for group in &self.groups {
            let procs = group.path.join("cgroup.procs");
            let mut written = false;
            for _ in 0..3 {
                match std::fs::write(&procs, &value) {
                    Ok(()) => {
                        written = true;
                        break;
                    }
                    // Swept away as stale between creation and now: create it again.
                    Err(e) if e.kind() == ErrorKind::NotFound => {
                        self.make(group)?;
                    }
                    Err(source) => {
                        return Err(CgroupError::Write {
                            path: procs,
                            value,
                            source,
                        })
                    }
                }
            }
            if !written {
                write(&procs, &value)?;
            }
        }
        Ok(())
    }

    /// Whether the kernel's OOM killer killed a process of the group (v1
    /// `memory.oom_control`, v2 `memory.events`: `oom_kill N`, Linux 4.13+). Read when the
    /// container has ended, before the group goes.
    pub(crate) fn oom_killed(&self) -> bool {
        self.groups
            .iter()
            .filter(|g| g.controllers.contains(&Controller::Memory))
            .any(|g| {
                let file = if g.v2 {
                    "memory.events"
                } else {
                    "memory.oom_control"
                };
                std::fs::read_to_string(g.path.join(file))
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.strip_prefix("oom_kill "))
                    .any(|n| n.trim().parse::<u64>().is_ok_and(|n| n > 0))
            })
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // The last processes may still be leaving the group for a moment after PID 1's exit
        // was reported.
        for group in &self.groups {
            for _ in 0..100 {
                match std::fs::remove_dir(&group.path) {
                    Ok(()) => break,
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => break,
                }
            }
        }
    }
}

/// Removes the empty groups under `parent` (left by killed monitors); a group with
/// processes cannot be removed, so running containers keep theirs.
fn remove_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        // A group made in the last minute may be one that another container is setting up
        // (it has no process until its PID 1 moves in): removing it made that start fail.
        let fresh = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age < stale_after()));
        if entry.file_type().is_ok_and(|t| t.is_dir()) && !fresh && !has_processes(&entry.path()) {
            let _ = std::fs::remove_dir(entry.path());
        }
    }
}

/// How old an empty container group must be before another start removes it as stale: a
/// minute, or `RBUILD_CGROUP_STALE_AFTER_SECS` (tests of the clean-up set 0).
fn stale_after() -> std::time::Duration {
    let secs = std::env::var("RBUILD_CGROUP_STALE_AFTER_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    std::time::Duration::from_secs(secs)
}

fn has_processes(group: &Path) -> bool {
    std::fs::read_to_string(group.join("cgroup.procs"))
        .map(|s| !s.trim().is_empty())
        .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_pids_hierarchy() {
        let hybrid = "\
30 25 0:26 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
33 25 0:29 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
35 25 0:31 / /no/such/unified rw,relatime - cgroup2 cgroup2 rw
";
        assert_eq!(
            hierarchy(hybrid, "pids"),
            Some((PathBuf::from("/sys/fs/cgroup/pids"), false))
        );
        assert_eq!(
            hierarchy("1 0 0:1 / / rw - ext4 /dev/sda rw\n", "pids"),
            None
        );
        // cgroup v2 is used when it has the pids controller (a mount point with spaces).
        let dir = std::env::temp_dir().join(format!("rbuild cgroup-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )
        .unwrap();
        let escaped = dir.display().to_string().replace(' ', "\\040");
        let v2 = format!("{hybrid}36 25 0:32 / {escaped} rw,relatime - cgroup2 cgroup2 rw\n");
        assert_eq!(hierarchy(&v2, "pids"), Some((dir.clone(), true)));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(unescape("/a\\040b"), "/a b");
    }

    #[test]
    fn finds_the_groups_to_join() {
        let mountinfo = "\
30 25 0:26 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
33 25 0:29 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
35 25 0:31 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        let own = "5:pids:/rbuild/abc\n4:memory:/rbuild/abc\n3:cpu,cpuacct:/rbuild/abc\n2:name=systemd:/\n0::/user.slice\n";
        assert_eq!(
            rbuild_groups(own, mountinfo),
            vec![
                (
                    PathBuf::from("/sys/fs/cgroup/pids"),
                    "/rbuild/abc".to_string()
                ),
                (
                    PathBuf::from("/sys/fs/cgroup/memory"),
                    "/rbuild/abc".to_string()
                ),
                (
                    PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"),
                    "/rbuild/abc".to_string()
                ),
            ]
        );
        assert_eq!(
            own_procs_file(own, mountinfo),
            Some(PathBuf::from(
                "/sys/fs/cgroup/unified/user.slice/cgroup.procs"
            ))
        );
        assert_eq!(
            own_procs_file("5:pids:/a\n2:name=systemd:/\n", mountinfo),
            Some(PathBuf::from("/sys/fs/cgroup/pids/a/cgroup.procs"))
        );
        let v2 = rbuild_groups("0::/rbuild/x\n", mountinfo);
        assert_eq!(
            v2,
            vec![(
                PathBuf::from("/sys/fs/cgroup/unified"),
                "/rbuild/x".to_string()
            )]
        );
    }
}
