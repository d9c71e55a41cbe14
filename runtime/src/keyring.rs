//! The container's own session keyring.
//!
//! Keyrings are not namespaced: a process that inherits the runner's session keyring can
//! list and read every key linked there (and, through the session, root's user keyring).
//! Like runc, the container's PID 1 joins a new, empty session keyring before anything of
//! the container runs; the process and its children inherit it. The default seccomp profile
//! also denies `keyctl`, `add_key` and `request_key` outright.

use nix::errno::Errno;

const KEYCTL_JOIN_SESSION_KEYRING: libc::c_ulong = 1;

/// Joins a new anonymous session keyring. `Ok(Some(note))` when the kernel has no keyrings
/// or a filter around rbuild denies `keyctl` (nested in another container): nothing to
/// isolate from then, or nothing reachable.
pub(crate) fn join_new_session() -> Result<Option<String>, Errno> {
    // SAFETY: keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL) takes a null name pointer (an
    // anonymous keyring) and no other arguments.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if rc >= 0 {
        return Ok(None);
    }
    match Errno::last() {
        e @ (Errno::ENOSYS | Errno::EPERM | Errno::EACCES) => Ok(Some(format!(
            "no session keyring of its own for the container (keyctl: {e})"
        ))),
        e => Err(e),
    }
}
