//! The container's cgroup: resource limits (for now the number of processes) that hold for
//! the container's whole process tree, as docker and podman set them.
//!
//! Each container gets `rbuild/<name>` in the hierarchy that has the `pids` controller: the
//! cgroup v2 tree when its `cgroup.controllers` lists `pids` (pure v2, or a hybrid layout's
//! `unified` mount once controllers move there), else the v1 `pids` hierarchy. The monitor
//! creates the group, sets the limits and moves PID 1 in while PID 1 mounts its rootfs;
//! PID 1 waits for that before it creates its cgroup namespace (so inside,
//! `/proc/self/cgroup` shows `/`) and executes anything; the monitor removes the group
//! when PID 1 has ended (by then the PID
//! namespace's other processes are gone too). Groups left by a killed monitor are empty and
//! are removed when the next container starts. Without write access (rootless without a
//! delegated hierarchy) or without a `pids` controller the container runs without limits and
//! the runner gets a note saying why.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::spec::Resources;

/// Errors of cgroup setup.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("failed to create cgroup {}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to write {value:?} to {}", path.display())]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: std::io::Error,
    },
}

/// The directory under the hierarchy's root that holds rbuild's groups.
const PARENT: &str = "rbuild";

/// A container's cgroup, created by the monitor, removed when dropped.
#[derive(Debug)]
pub(crate) struct Cgroup {
    path: PathBuf,
    resources: Resources,
    /// The parent needs `+pids` in `cgroup.subtree_control` (cgroup v2 only).
    v2: bool,
}

/// The host's hierarchy with the `pids` controller (the one containers' limits go to): its
/// mount point and whether it is cgroup v2; `None` when there is none (no limits then).
pub fn host_pids_hierarchy() -> Option<(PathBuf, bool)> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    pids_hierarchy(&mountinfo)
}

/// Where the `pids` controller is mounted: (mount point, is cgroup v2).
fn pids_hierarchy(mountinfo: &str) -> Option<(PathBuf, bool)> {
    let mut v1 = None;
    for line in mountinfo.lines() {
        // `id parent major:minor root mountpoint options - fstype source superoptions`
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut right = right.split(' ');
        let (fstype, _source, super_options) = (right.next(), right.next(), right.next());
        let Some(mount_point) = left.split(' ').nth(4) else {
            continue;
        };
        let mount_point = PathBuf::from(unescape(mount_point));
        match fstype {
            Some("cgroup2") => {
                let controllers = std::fs::read_to_string(mount_point.join("cgroup.controllers"))
                    .unwrap_or_default();
                if controllers.split_whitespace().any(|c| c == "pids") {
                    return Some((mount_point, true));
                }
            }
            Some("cgroup")
                if v1.is_none()
                    && super_options.is_some_and(|o| o.split(',').any(|o| o == "pids")) =>
            {
                v1 = Some((mount_point, false));
            }
            _ => {}
        }
    }
    v1
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

/// For each line of a `/proc/<pid>/cgroup` (`hierarchy:controllers:path`) whose path is one
/// of rbuild's groups: the hierarchy's mount point (from `mountinfo`) and the path.
fn rbuild_groups(proc_cgroup: &str, mountinfo: &str) -> Vec<(PathBuf, String)> {
    let mounts: Vec<(PathBuf, bool, Vec<String>)> = mountinfo
        .lines()
        .filter_map(|line| {
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
        .collect();
    let prefix = format!("/{PARENT}/");
    proc_cgroup
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (hierarchy, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            if !path.starts_with(&prefix) {
                return None;
            }
            let (mount_point, _, _) = mounts.iter().find(|(_, v2, options)| {
                if hierarchy == "0" {
                    *v2
                } else {
                    !*v2 && controllers
                        .split(',')
                        .all(|c| options.iter().any(|o| o == c))
                }
            })?;
            Some((mount_point.clone(), path.to_string()))
        })
        .collect()
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
    /// Creates `rbuild/<name>` with `resources`' limits. `Ok(Err(note))` when limits cannot
    /// be set here (no `pids` controller, no write access): the container runs without.
    pub(crate) fn create(
        name: &str,
        resources: &Resources,
    ) -> Result<Result<Cgroup, String>, CgroupError> {
        if resources.pids_max.is_none() {
            return Ok(Err("no resource limits requested".into()));
        }
        let Some((root, v2)) = host_pids_hierarchy() else {
            return Ok(Err(
                "no cgroup hierarchy with the pids controller: no pids limit".into(),
            ));
        };
        let parent = root.join(PARENT);
        match std::fs::create_dir(&parent) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) if is_denied(e.kind()) => {
                return Ok(Err(format!(
                    "cannot create {} ({e}): no pids limit",
                    parent.display()
                )))
            }
            Err(source) => {
                return Err(CgroupError::Create {
                    path: parent,
                    source,
                })
            }
        }
        remove_stale(&parent);
        let cgroup = Cgroup {
            path: parent.join(name),
            resources: resources.clone(),
            v2,
        };
        match cgroup.make() {
            Ok(()) => Ok(Ok(cgroup)),
            // The parent exists (made by root) but is not ours to write to.
            Err(CgroupError::Create { path, source } | CgroupError::Write { path, source, .. })
                if is_denied(source.kind()) =>
            {
                Ok(Err(format!(
                    "cannot set up {} ({source}): no pids limit",
                    path.display()
                )))
            }
            Err(e) => Err(e),
        }
    }

    /// Creates the group (again, when a concurrent stale-group sweep removed it while still
    /// empty) and writes its limits.
    fn make(&self) -> Result<(), CgroupError> {
        let parent = self.path.parent().unwrap_or(Path::new("/"));
        if self.v2 {
            // Children of `rbuild` get the pids controller only when both levels pass it on.
            if let Some(root) = parent.parent() {
                let _ = write(&root.join("cgroup.subtree_control"), "+pids");
            }
            write(&parent.join("cgroup.subtree_control"), "+pids")?;
        }
        match std::fs::create_dir(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(CgroupError::Create {
                    path: self.path.clone(),
                    source,
                })
            }
        }
        if let Some(max) = self.resources.pids_max {
            write(&self.path.join("pids.max"), &max.to_string())?;
        }
        Ok(())
    }

    /// Moves process `pid` (as the caller sees it) into the group. Moving a process waits
    /// for an RCU grace period in the kernel (milliseconds), so the monitor does it while
    /// PID 1 sets up its mounts, and PID 1 waits for it only before it goes on to exec.
    pub(crate) fn add(&self, pid: i32) -> Result<(), CgroupError> {
        let procs = self.path.join("cgroup.procs");
        let value = pid.to_string();
        for _ in 0..3 {
            match std::fs::write(&procs, &value) {
                Ok(()) => return Ok(()),
                // Swept away as stale between creation and now: create it again.
                Err(e) if e.kind() == ErrorKind::NotFound => self.make()?,
                Err(source) => {
                    return Err(CgroupError::Write {
                        path: procs,
                        value,
                        source,
                    })
                }
            }
        }
        write(&procs, &value)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // The last processes may still be leaving the group for a moment after PID 1's exit
        // was reported.
        for _ in 0..100 {
            match std::fs::remove_dir(&self.path) {
                Ok(()) => return,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(_) => return,
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
        if entry.file_type().is_ok_and(|t| t.is_dir()) && !has_processes(&entry.path()) {
            let _ = std::fs::remove_dir(entry.path());
        }
    }
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
            pids_hierarchy(hybrid),
            Some((PathBuf::from("/sys/fs/cgroup/pids"), false))
        );
        assert_eq!(pids_hierarchy("1 0 0:1 / / rw - ext4 /dev/sda rw\n"), None);
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
        assert_eq!(pids_hierarchy(&v2), Some((dir.clone(), true)));
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
