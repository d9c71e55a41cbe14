//! Capabilities (docker's default set), `no_new_privs`, resource limits and the switch to
//! the container user.

use nix::errno::Errno;
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::unistd::{Gid, Uid};

use crate::spec::{Rlimit, RlimitResource, UserSpec};

/// Errors of privilege setup.
#[derive(Debug, thiserror::Error)]
pub enum CapabilityError {
    #[error("failed to drop capability {cap} from the bounding set")]
    DropBounding {
        cap: u32,
        #[source]
        source: Errno,
    },
    #[error("failed to set capabilities")]
    Capset(#[source] Errno),
    #[error("failed to set {what}")]
    Prctl {
        what: &'static str,
        #[source]
        source: Errno,
    },
    #[error("failed to switch to uid {uid} gid {gid}")]
    SwitchUser {
        uid: u32,
        gid: u32,
        #[source]
        source: Errno,
    },
    #[error("failed to set supplementary groups {gids:?}")]
    Groups {
        gids: Vec<u32>,
        #[source]
        source: Errno,
    },
    #[error("unknown capability: {0:?}")]
    Unknown(String),
    #[error("failed to set resource limit {resource:?}")]
    Rlimit {
        resource: RlimitResource,
        #[source]
        source: Errno,
    },
}

/// Docker's default capability set, as capability numbers: CHOWN, DAC_OVERRIDE, FOWNER,
/// FSETID, KILL, SETGID, SETUID, SETPCAP, NET_BIND_SERVICE, NET_RAW, SYS_CHROOT, MKNOD,
/// AUDIT_WRITE, SETFCAP.
pub const DEFAULT_CAPABILITIES: [u32; 14] = [0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31];

/// [`DEFAULT_CAPABILITIES`] as the bit mask `/proc/<pid>/status` shows in `CapEff`
/// (`00000000a80425fb`).
pub const fn default_capability_mask() -> u64 {
    let mut mask = 0u64;
    let mut i = 0;
    while i < DEFAULT_CAPABILITIES.len() {
        mask |= 1 << DEFAULT_CAPABILITIES[i];
        i += 1;
    }
    mask
}

/// Capability names (`CAP_CHOWN` ...) by number, as `capabilities(7)` lists them; used to read
/// capability conditions in seccomp profiles.
const CAPABILITY_NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The number of capability `name` (`CAP_SYS_ADMIN`, case-insensitive, `CAP_` optional).
pub(crate) fn capability_number(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    CAPABILITY_NAMES
        .iter()
        .position(|n| *n == full)
        .map(|i| i as u32)
}

/// Every capability this kernel knows (`/proc/sys/kernel/cap_last_cap`), as a mask:
/// `--privileged`'s set, and `--cap-add ALL`'s.
pub fn all_capabilities_mask() -> u64 {
    let last = last_capability().min(63);
    u64::MAX >> (63 - last)
}

/// docker's `--cap-add`/`--cap-drop` rules over its default set: names in any case, with or
/// without `CAP_`, or `ALL`. `--cap-add ALL` keeps every capability but the dropped ones;
/// `--cap-drop ALL` keeps only the added ones; otherwise the default set less the dropped
/// ones plus the added ones. An unknown name is an error (docker's message).
pub fn capability_mask(add: &[String], drop: &[String]) -> Result<u64, CapabilityError> {
    let parse = |names: &[String]| -> Result<(bool, u64), CapabilityError> {
        let mut all = false;
        let mut mask = 0u64;
        for name in names {
            if name.eq_ignore_ascii_case("ALL") {
                all = true;
                continue;
            }
            let number = capability_number(name).ok_or_else(|| {
                let upper = name.to_ascii_uppercase();
                CapabilityError::Unknown(if upper.starts_with("CAP_") {
                    upper
                } else {
                    format!("CAP_{upper}")
                })
            })?;
            mask |= 1 << number;
        }
        Ok((all, mask))
    };
    let (add_all, added) = parse(add)?;
    let (drop_all, dropped) = parse(drop)?;
    let all = all_capabilities_mask();
    Ok(if add_all {
        all & !dropped
    } else if drop_all {
        added & all
    } else {
        ((default_capability_mask() & !dropped) | added) & all
    })
}

/// The calling process's bounding set as a mask.
fn bounding_set() -> u64 {
    (0..=last_capability().min(63))
        // SAFETY: PR_CAPBSET_READ takes a capability number and returns 1, 0 or -1.
        .filter(|cap| unsafe { libc::prctl(libc::PR_CAPBSET_READ, *cap as libc::c_ulong, 0, 0, 0) } == 1)
        .fold(0, |mask, cap| mask | 1 << cap)
}

fn last_capability() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Applies `limits`; a hard limit above what may be raised is lowered to the current one.
pub(crate) fn apply_rlimits(limits: &[Rlimit]) -> Result<(), CapabilityError> {
    for limit in limits {
        let resource = match limit.resource {
            RlimitResource::Nofile => Resource::RLIMIT_NOFILE,
            RlimitResource::Nproc => Resource::RLIMIT_NPROC,
            RlimitResource::Core => Resource::RLIMIT_CORE,
            RlimitResource::Stack => Resource::RLIMIT_STACK,
            RlimitResource::Memlock => Resource::RLIMIT_MEMLOCK,
            RlimitResource::As => Resource::RLIMIT_AS,
            RlimitResource::Cpu => Resource::RLIMIT_CPU,
            RlimitResource::Data => Resource::RLIMIT_DATA,
            RlimitResource::Fsize => Resource::RLIMIT_FSIZE,
            RlimitResource::Locks => Resource::RLIMIT_LOCKS,
            RlimitResource::Msgqueue => Resource::RLIMIT_MSGQUEUE,
            RlimitResource::Nice => Resource::RLIMIT_NICE,
            RlimitResource::Rss => Resource::RLIMIT_RSS,
            RlimitResource::Rtprio => Resource::RLIMIT_RTPRIO,
            RlimitResource::Rttime => Resource::RLIMIT_RTTIME,
            RlimitResource::Sigpending => Resource::RLIMIT_SIGPENDING,
        };
        let err = |source| CapabilityError::Rlimit {
            resource: limit.resource,
            source,
        };
        match setrlimit(resource, limit.soft, limit.hard) {
            Ok(()) => {}
            Err(Errno::EPERM) => {
                let (_, current_hard) = getrlimit(resource).map_err(err)?;
                let hard = limit.hard.min(current_hard);
                setrlimit(resource, limit.soft.min(hard), hard).map_err(err)?;
            }
            Err(e) => return Err(err(e)),
        }
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

fn capset(effective: u64, permitted: u64, inheritable: u64) -> Result<(), CapabilityError> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        CapData {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    // SAFETY: capset(2) with a version-3 header reads exactly two CapData entries, which
    // `data` provides; both structs are repr(C) like the kernel's.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    if rc < 0 {
        return Err(CapabilityError::Capset(Errno::last()));
    }
    Ok(())
}

fn prctl(
    what: &'static str,
    option: libc::c_int,
    arg: libc::c_ulong,
) -> Result<(), CapabilityError> {
    // SAFETY: the prctl options used here take integer arguments only.
    let rc = unsafe {
        libc::prctl(
            option,
            arg,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if rc < 0 {
        return Err(CapabilityError::Prctl {
            what,
            source: Errno::last(),
        });
    }
    Ok(())
}

/// Drops every capability outside `keep` (a mask) from the bounding set, switches to
/// `user` (groups first), leaves root with exactly `keep` (effective = permitted), any other
/// user with none (docker's behaviour: only the bounding set remains), clears the ambient
/// set and, with `no_new_privs`, sets it.
pub(crate) fn drop_privileges(
    user: &UserSpec,
    keep: u64,
    no_new_privs: bool,
) -> Result<(), CapabilityError> {
    // What the runner itself lacks cannot be given (`--privileged` in a restricted host).
    let keep = keep & bounding_set();
    for cap in 0..=last_capability() {
        if keep & (1 << cap) != 0 {
            continue;
        }
        // SAFETY: PR_CAPBSET_DROP takes a capability number.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if rc < 0 {
            let source = Errno::last();
            if source == Errno::EINVAL {
                continue; // not known to this kernel
            }
            return Err(CapabilityError::DropBounding { cap, source });
        }
    }
    prctl("keepcaps", libc::PR_SET_KEEPCAPS, 1)?;
    switch_user(user)?;
    let set = if user.uid == 0 { keep } else { 0 };
    capset(set, set, 0)?;
    prctl("keepcaps", libc::PR_SET_KEEPCAPS, 0)?;
    prctl(
        "ambient capabilities",
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
    )?;
    if no_new_privs {
        prctl("no_new_privs", libc::PR_SET_NO_NEW_PRIVS, 1)?;
    }
    Ok(())
}

/// Sets the supplementary groups, then the gid, then the uid of `user` (real, effective and
/// saved). Leaving root without `keepcaps` also drops every capability.
pub(crate) fn switch_user(user: &UserSpec) -> Result<(), CapabilityError> {
    let gids: Vec<Gid> = user
        .additional_gids
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    match nix::unistd::setgroups(&gids) {
        Ok(()) => {}
        // A user namespace with a single mapping denies setgroups; nothing to set then, nor
        // when the only group is the primary one (root's `root` group in /etc/group), which
        // the gid below gives anyway: rootless `rbuild run` of any image as root.
        Err(Errno::EPERM) if user.additional_gids.iter().all(|g| *g == user.gid) => {}
        Err(source) => {
            return Err(CapabilityError::Groups {
                gids: user.additional_gids.clone(),
                source,
            })
        }
    }
    let switch_err = |source| CapabilityError::SwitchUser {
        uid: user.uid,
        gid: user.gid,
        source,
    };
    let gid = Gid::from_raw(user.gid);
    nix::unistd::setresgid(gid, gid, gid).map_err(switch_err)?;
    let uid = Uid::from_raw(user.uid);
    nix::unistd::setresuid(uid, uid, uid).map_err(switch_err)
}

#[cfg(test)]
mod tests {
    #[test]
    fn capability_names() {
        assert_eq!(super::capability_number("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(super::capability_number("net_raw"), Some(13));
        assert_eq!(super::capability_number("CAP_BPF"), Some(39));
        assert_eq!(super::capability_number("CAP_NOPE"), None);
    }

    #[test]
    fn cap_add_and_drop_follow_docker() {
        use super::{all_capabilities_mask, capability_mask, default_capability_mask};
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            capability_mask(&[], &[]).unwrap(),
            default_capability_mask()
        );
        let m = capability_mask(&names(&["sys_admin"]), &names(&["CAP_CHOWN"])).unwrap();
        assert_eq!(m, (default_capability_mask() | 1 << 21) & !1);
        assert_eq!(
            capability_mask(&names(&["net_admin"]), &names(&["all"])).unwrap(),
            1 << 12
        );
        assert_eq!(
            capability_mask(&names(&["ALL"]), &names(&["Cap_Chown"])).unwrap(),
            all_capabilities_mask() & !1
        );
        let err = capability_mask(&names(&["bogus"]), &[]).unwrap_err();
        assert_eq!(err.to_string(), "unknown capability: \"CAP_BOGUS\"");
    }

    #[test]
    fn default_mask_matches_docker() {
        assert_eq!(super::default_capability_mask(), 0xa80425fb);
    }
}
