//! Pausing a container (`rbuild pause`/`unpause`): the cgroup freezer stops every process of
//! the container at once, without a signal the processes could see.
//!
//! On cgroup v2 the container's group (`rbuild/<id>` in the hierarchy with `pids`, see the
//! parent module) is frozen with `cgroup.freeze`. On a v1 or hybrid layout the freezer is its
//! own hierarchy, where the container's processes are still in the root group: they are moved
//! into `rbuild/<id>` there first (again until no new process appeared, as a process may fork
//! meanwhile), then `freezer.state` is set. Such a group stays after `unpause` (the
//! processes are in it) and is removed when the container ends ([`remove_freezer_group`]) or,
//! left by a killed runner, by the next pause of any container.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{hierarchy, remove_stale, unescape, write, CgroupError, PARENT};

/// Freezes (`true`) or thaws (`false`) every process of container `id`'s cgroup and returns
/// once the kernel reports it done.
pub fn set_frozen(id: &str, frozen: bool) -> Result<(), CgroupError> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let (root, v2) = hierarchy(&mountinfo, "pids").ok_or(CgroupError::NoFreezer)?;
    let group = root.join(PARENT).join(id);
    if !group.is_dir() {
        return Err(CgroupError::NoGroup(group));
    }
    if v2 {
        write(&group.join("cgroup.freeze"), if frozen { "1" } else { "0" })?;
        let want = if frozen { "frozen 1" } else { "frozen 0" };
        return wait_for(&group.join("cgroup.events"), |s| {
            s.lines().any(|l| l == want)
        });
    }
    let freezer = v1_mount(&mountinfo, "freezer").ok_or(CgroupError::NoFreezer)?;
    let target = freezer.join(PARENT).join(id);
    let state = target.join("freezer.state");
    if !frozen {
        if !target.is_dir() {
            return Ok(()); // never frozen
        }
        write(&state, "THAWED")?;
        return wait_for(&state, |s| s.trim() == "THAWED");
    }
    remove_stale(&freezer.join(PARENT));
    std::fs::create_dir_all(&target).map_err(|source| CgroupError::Create {
        path: target.clone(),
        source,
    })?;
    // Move, freeze, and check again: a process forked by one not yet moved lands outside.
    loop {
        while move_all(&group, &target)? {}
        write(&state, "FROZEN")?;
        wait_for(&state, |s| s.trim() == "FROZEN")?;
        if !move_all(&group, &target)? {
            return Ok(());
        }
    }
}

/// Removes container `id`'s v1 freezer group once its processes are gone (a pause left it;
/// nothing to do on cgroup v2, where the container's one group goes with the container).
pub fn remove_freezer_group(id: &str) {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if let Some(freezer) = v1_mount(&mountinfo, "freezer") {
        let _ = std::fs::remove_dir(freezer.join(PARENT).join(id));
    }
}

/// Moves the processes of `from` (v1 `pids` group) not yet in `to` (v1 freezer group) there;
/// returns whether any was moved.
fn move_all(from: &Path, to: &Path) -> Result<bool, CgroupError> {
    let read = |p: &Path| std::fs::read_to_string(p.join("cgroup.procs")).unwrap_or_default();
    let inside = read(to);
    let inside: Vec<&str> = inside.lines().collect();
    let mut moved = false;
    for pid in read(from).lines().filter(|p| !inside.contains(p)) {
        match write(&to.join("cgroup.procs"), pid) {
            Ok(()) => moved = true,
            // Exited meanwhile.
            Err(CgroupError::Write { source, .. })
                if source.raw_os_error() == Some(libc::ESRCH) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(moved)
}

/// Polls `path` until `done` holds for its content (the freezer works asynchronously).
fn wait_for(path: &Path, done: impl Fn(&str) -> bool) -> Result<(), CgroupError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if std::fs::read_to_string(path).is_ok_and(|s| done(&s)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(CgroupError::FreezeTimeout(path.to_path_buf()));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The mount point of the v1 hierarchy with `controller`.
fn v1_mount(mountinfo: &str, controller: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut right = right.split(' ');
        let (fstype, _source, options) = (right.next()?, right.next()?, right.next()?);
        if fstype != "cgroup" || !options.split(',').any(|o| o == controller) {
            return None;
        }
        Some(PathBuf::from(unescape(left.split(' ').nth(4)?)))
    })
}
