//! Starting a process that outlives its starter: the detached container monitor of
//! `rbuild run -d` and `rbuild start`.
//!
//! The monitor must not get the starter's terminal signals (Ctrl-C in the shell that ran
//! `rbuild run -d`) nor die with its session, so it runs in a session of its own; nor may
//! it keep what the starter's caller left open (a pipe held open by a process that lives as
//! long as the container makes a `$(rbuild run -d ...)` wait for the container to end).
//! Both happen between fork and exec (`pre_exec`), hence `unsafe`, hence this crate.

use std::process::Command;

/// Makes `cmd` start its process in a new session (and process group), with no controlling
/// terminal and no inherited descriptor but the three standard ones. The caller chooses
/// the stdio (not the terminal's, or the process would keep it).
pub fn new_session(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and only calls setsid(2) and
    // close_range(2) (or fcntl(2)), which are async-signal-safe and do not allocate.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            crate::fds::cloexec_above_stderr();
            Ok(())
        });
    }
}

/// As [`new_session`], and the process is not `cmd`'s child but its grandchild: the child
/// forks it and ends at once, so the caller reaps that child right after `spawn` (`wait`
/// returns at once) and leaves no zombie behind however long it runs itself (a container's
/// monitor that starts a process for later does not collect one per start). The
/// grandchild is reparented to init (or the nearest subreaper). `spawn` returns once the
/// grandchild executed its program (or failed to: the error is the caller's as usual).
pub fn orphan(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    new_session(cmd);
    // SAFETY: runs between fork and exec, after `new_session`'s closure, and calls only
    // fork(2) and _exit(2), which are async-signal-safe; the forked grandchild goes on to
    // exec as the child would have.
    unsafe {
        cmd.pre_exec(|| match libc::fork() {
            -1 => Err(std::io::Error::last_os_error()),
            0 => Ok(()),
            _ => libc::_exit(0),
        });
    }
}
