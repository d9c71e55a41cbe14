//! Keeping a process's inherited descriptors from the programs it executes.
//!
//! Descriptors a caller left open without close-on-exec (a shell's `3>&1`, a pipe of a
//! `$(...)` that a wrapper duplicated) would otherwise reach every program started after
//! them: the container's process, and the detached monitor of `run -d`, which lives as
//! long as the container and so would keep the caller's pipe open, and the caller's
//! `$(rbuild run -d ...)` waiting, until the container ends.

/// Marks every descriptor above stderr close-on-exec. Async-signal-safe (no allocation),
/// so it can run between fork and exec (`pre_exec`).
pub(crate) fn cloexec_above_stderr() {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range(2) with integer arguments only changes descriptor flags.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if rc == 0 {
        return;
    }
    // Before Linux 5.11: every descriptor number up to the soft limit (at most 65536: a
    // huge limit would make this slow, and descriptors that high are not inherited by
    // accident).
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) writes the struct it is given.
    let last = match unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } {
        0 => limit.rlim_cur.min(65536) as libc::c_int,
        _ => 1024,
    };
    for fd in 3..last {
        // SAFETY: F_SETFD on a descriptor number; one that is not open just fails.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
}
