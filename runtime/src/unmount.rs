//! Keeping the container's last overlay unmount (and the sync it does) off its exit path.
//!
//! When the last process of a container's mount namespace exits, the kernel unmounts the
//! rootfs overlay, and the last unmount of an overlay mounted without `volatile` syncs the
//! whole upper filesystem (the host filesystem that holds the store: every dirty file of
//! every program on it, not only the container's). On a busy disk that took 300-500 ms,
//! inside PID 1's exit: `stop`, `rm -f`, `wait` and a foreground `run` all waited for it.
//!
//! So the monitor holds a reference on the container's root mount (an `O_PATH` descriptor of
//! `/proc/<PID 1>/root`, taken once PID 1 has pivoted into it): PID 1's exit then only
//! detaches the mount. Once the exit is reported, [`Keeper::hand_off`] gives that reference
//! to a detached child that drops it (the unmount and its sync happen there) and ends;
//! nobody waits for that child.
//!
//! Why this is safe: the sync only makes the container's writes durable sooner; the kernel
//! writes them back within its usual delay (`vm.dirty_expire_centisecs`) either way, and a
//! container's own `fsync`s still reach the disk when it makes them (the overlay is not
//! `volatile`; copy-ups are still synced). A host crash in the second after `stop` can lose
//! what a crash in the second before it could. Nothing reads through the detached overlay:
//! its processes are gone, and the upper directory is complete in the page cache for
//! `commit`, `diff`, `cp` and the next start. The next start of the same container waits
//! for the previous unmount, though ([`Keeper::lock`]): two overlays on one upper
//! directory are refused (or warned about) by the kernel.

use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::sched::{setns, CloneFlags};
use nix::unistd::Pid;

use crate::spec::Rootfs;
use crate::RuntimeError;

/// Test-only: the handed-off child keeps the mount until this file exists (a test can then
/// see that the container's exit was reported with the unmount still pending).
const HOLD_ENV: &str = "RBUILD_TEST_UNMOUNT_HOLD";

/// The lock on a container's upper directory and, once PID 1 pivoted, its root mount.
pub(crate) struct Keeper {
    /// An exclusive `flock` on the upper directory, held by every process that holds the
    /// mount (shared by fork: it ends when the last of them closes it).
    lock: File,
    /// `/proc/<PID 1>/root`.
    root: Option<File>,
    /// This process's own PID namespace: after `unshare(CLONE_NEWPID)` a fork would land in
    /// the container's, which is gone by the time of [`Keeper::hand_off`].
    pid_ns: File,
}

impl Keeper {
    /// For a rootfs whose unmount syncs (an overlay without `volatile`): locks its upper
    /// directory, first waiting for a previous run's unmount of it to finish.
    pub(crate) fn lock(rootfs: &Rootfs, volatile: bool) -> Result<Option<Keeper>, RuntimeError> {
        let Rootfs::Overlay { upper, .. } = rootfs else {
            return Ok(None);
        };
        if volatile {
            return Ok(None);
        }
        let err = |what: &str, path: &Path, e: std::io::Error| {
            RuntimeError::Setup(format!("{what} {}: {e}", path.display()))
        };
        let lock = File::open(upper).map_err(|e| err("failed to open", upper, e))?;
        lock.lock().map_err(|e| err("failed to lock", upper, e))?;
        let ns = Path::new("/proc/self/ns/pid");
        let pid_ns = File::open(ns).map_err(|e| err("failed to open", ns, e))?;
        Ok(Some(Keeper {
            lock,
            root: None,
            pid_ns,
        }))
    }

    /// Takes the reference on PID 1's root mount once PID 1 reported (one byte on
    /// `pivoted`) that it pivoted into it; nothing when it ended before (end of file).
    pub(crate) fn hold(&mut self, pivoted: std::os::fd::OwnedFd, pid1: Pid) {
        let mut byte = [0u8];
        if nix::unistd::read(pivoted.as_raw_fd(), &mut byte) != Ok(1) {
            return;
        }
        self.root = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(format!("/proc/{pid1}/root"))
            .ok();
    }

    /// Drops the mount in a detached child that nobody waits for (see the module docs).
    /// Where that child cannot be made (rootless: the host's PID namespace is not ours to
    /// enter), the mount is dropped here, as without a keeper.
    pub(crate) fn hand_off(self) {
        let Some(root) = self.root else {
            return;
        };
        if setns(&self.pid_ns, CloneFlags::CLONE_NEWPID).is_err() {
            return;
        }
        let keep = [self.lock.as_raw_fd(), root.as_raw_fd()];
        let hold = std::env::var_os(HOLD_ENV);
        // SAFETY: the monitor is single-threaded (a fresh exec that started no threads); the
        // child only closes descriptors, polls for a file and ends with _exit.
        if unsafe { libc::fork() } == 0 {
            close_all_but(keep);
            if let Some(hold) = hold {
                while !Path::new(&hold).exists() {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
            drop(root); // the unmount and its sync
            drop(self.lock);
            // SAFETY: ends this forked child without running the monitor's exit work.
            unsafe { libc::_exit(0) }
        }
        // The parent's copies close here (a failed fork: the mount goes here, as before);
        // the child's keep the mount and the lock.
    }
}

/// Closes every descriptor of this process except `keep` (the child must not hold the
/// runner's socket or the container's output pipes: their readers wait for the end of them).
fn close_all_but(mut keep: [RawFd; 2]) {
    keep.sort_unstable();
    let mut from = 0u32;
    for fd in keep {
        let fd = fd as u32;
        if fd > from {
            close_range(from, fd - 1);
        }
        from = fd + 1;
    }
    close_range(from, u32::MAX);
}

fn close_range(first: u32, last: u32) {
    // SAFETY: close_range(2) with integer arguments only closes descriptors.
    unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
}
