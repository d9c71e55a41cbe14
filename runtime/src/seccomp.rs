//! Seccomp: docker's JSON profile format, compiled to BPF and installed in the container.
//!
//! Without a filter a container's root can reach every system call the kernel has, some of
//! which are not namespaced (keyrings, `perf_event_open`, `io_uring`, kernel modules, new user
//! namespaces as a door to more kernel code). Like docker, every container and RUN step gets
//! an allow-list ([`SeccompProfile::default_profile`], `runtime/profiles/seccomp-default.json`):
//! anything else fails with `EPERM`.
//!
//! Profiles are read in docker's format (`defaultAction`, `defaultErrnoRet`, `archMap`,
//! `syscalls: [{names, action, args, includes, excludes, errnoRet}]`), so `--security-opt
//! seccomp=FILE` takes docker's own files. Compiling follows docker: entries whose `includes`
//! do not hold (capabilities missing from the container's set, another architecture, an
//! older kernel than `minKernel`) or whose `excludes` hold are left out; names this
//! architecture does not know are skipped.
//!
//! seccompiler builds filters with one "matched" and one "not matched" action, and a profile
//! has several actions. So the profile becomes a stack of filters: first one that allows
//! every call some entry matches and gives the rest the default action, then one filter per
//! other action of the profile (clone3's `ENOSYS`, say) that returns that action for its
//! entries and allows the rest. The kernel runs every filter and takes the most restrictive
//! result: an entry's action for the calls it matches, the default for all others.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use serde::{Deserialize, Serialize};

use crate::capabilities::capability_number;

/// The default profile's text, kept in the repository in docker's format.
const DEFAULT_PROFILE: &str = include_str!("../profiles/seccomp-default.json");

/// Errors of reading, compiling and installing a seccomp profile.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("failed to read seccomp profile {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid seccomp profile {}: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("invalid seccomp profile: {0}")]
    Invalid(String),
    #[error("seccomp filters are not supported on {0}")]
    Architecture(&'static str),
    #[error("failed to compile the seccomp profile: {0}")]
    Compile(String),
    #[error("failed to install the seccomp filter: {0}")]
    Install(String),
}

/// A seccomp profile in docker's JSON format (the fields rbuild uses; others are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeccompProfile {
    pub default_action: Action,
    /// errno of `SCMP_ACT_ERRNO` as the default action; `EPERM` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    /// Architectures and their sub-architectures. Only the native architecture is filtered;
    /// system calls of other ABIs (32-bit x86 on x86_64, for instance) kill the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch_map: Option<Vec<ArchMapEntry>>,
    /// The older form of `archMap`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architectures: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syscalls: Option<Vec<SyscallEntry>>,
}

/// One `archMap` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMapEntry {
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_architectures: Option<Vec<String>>,
}

/// One `syscalls` entry: the action for `names`, when `args` match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyscallEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<Vec<String>>,
    /// The older single-name form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub action: Action,
    /// All must hold (one `args` list is one rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<ArgCondition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub includes: Option<Conditions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excludes: Option<Conditions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// `includes`/`excludes`: when an entry applies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Conditions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caps: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arches: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_kernel: Option<String>,
}

/// A condition on one system call argument (compared as 64-bit values, as libseccomp does).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArgCondition {
    pub index: u8,
    pub value: u64,
    /// The expected value for `SCMP_CMP_MASKED_EQ` (`value` is the mask).
    #[serde(default)]
    pub value_two: u64,
    pub op: CompareOp,
}

/// libseccomp's comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareOp {
    #[serde(rename = "SCMP_CMP_NE")]
    Ne,
    #[serde(rename = "SCMP_CMP_LT")]
    Lt,
    #[serde(rename = "SCMP_CMP_LE")]
    Le,
    #[serde(rename = "SCMP_CMP_EQ")]
    Eq,
    #[serde(rename = "SCMP_CMP_GE")]
    Ge,
    #[serde(rename = "SCMP_CMP_GT")]
    Gt,
    #[serde(rename = "SCMP_CMP_MASKED_EQ")]
    MaskedEq,
}

/// libseccomp's actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    #[serde(rename = "SCMP_ACT_ALLOW")]
    Allow,
    #[serde(rename = "SCMP_ACT_ERRNO")]
    Errno,
    #[serde(rename = "SCMP_ACT_KILL", alias = "SCMP_ACT_KILL_THREAD")]
    KillThread,
    #[serde(rename = "SCMP_ACT_KILL_PROCESS")]
    KillProcess,
    #[serde(rename = "SCMP_ACT_TRAP")]
    Trap,
    #[serde(rename = "SCMP_ACT_TRACE")]
    Trace,
    #[serde(rename = "SCMP_ACT_LOG")]
    Log,
    /// Needs a user-space listener, which rbuild does not have: refused when compiling.
    #[serde(rename = "SCMP_ACT_NOTIFY")]
    Notify,
}

const EPERM: u32 = 1;

impl SeccompProfile {
    /// rbuild's default profile, equivalent to docker's default: an allow-list, `EPERM` for
    /// everything else.
    pub fn default_profile() -> SeccompProfile {
        static PROFILE: OnceLock<SeccompProfile> = OnceLock::new();
        PROFILE
            .get_or_init(|| {
                serde_json::from_str(DEFAULT_PROFILE).expect("the built-in profile is valid JSON")
            })
            .clone()
    }

    /// Reads a profile file in docker's format.
    pub fn from_file(path: &Path) -> Result<SeccompProfile, SeccompError> {
        let text = std::fs::read(path).map_err(|source| SeccompError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|source| SeccompError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Compiles the profile for the native architecture, for a container whose capability
    /// set (bounding set) is `caps` (bit N = capability N): the filters to install, in order.
    pub fn compile(&self, caps: u64) -> Result<Vec<BpfProgram>, SeccompError> {
        let arch = native_arch()?;
        let kernel = kernel_version();
        let default = action(self.default_action, self.default_errno_ret)?;
        // Rules per action, in the profile's order of first appearance; per system call
        // `None` means matched unconditionally, which no further rule narrows.
        type Rules = BTreeMap<i64, Option<Vec<SeccompRule>>>;
        let mut groups: Vec<(SeccompAction, Rules)> = Vec::new();
        for entry in self.syscalls.iter().flatten() {
            if !applies(entry, caps, kernel)? {
                continue;
            }
            let entry_action = action(entry.action, entry.errno_ret)?;
            if entry_action == default {
                continue; // as libseccomp: nothing to add
            }
            let rule = rule(entry)?;
            let index = match groups.iter().position(|(a, _)| *a == entry_action) {
                Some(i) => i,
                None => {
                    groups.push((entry_action, BTreeMap::new()));
                    groups.len() - 1
                }
            };
            let names = entry.names.iter().flatten().chain(entry.name.iter());
            for number in names.filter_map(|n| syscall_number(n)) {
                let slot = groups[index].1.entry(number).or_insert(Some(Vec::new()));
                match (&rule, slot.as_mut()) {
                    (None, _) => *slot = None,
                    (Some(r), Some(rules)) => rules.push(r.clone()),
                    (Some(_), None) => {}
                }
            }
        }
        // The first filter allows every call some entry matches (whatever its action) and
        // gives the rest the default action; then one filter per other action returns that
        // action for its entries and allows the rest. The kernel takes the most restrictive
        // result of all filters: an entry's action for the calls it matches, the default
        // action for the others.
        let mut allow: Rules = BTreeMap::new();
        for (_, rules) in &groups {
            for (number, r) in rules {
                let slot = allow.entry(*number).or_insert(Some(Vec::new()));
                match (r, slot.as_mut()) {
                    (None, _) => *slot = None,
                    (Some(r), Some(rules)) => rules.extend(r.iter().cloned()),
                    (Some(_), None) => {}
                }
            }
        }
        // seccompiler's form: an empty rule list matches unconditionally.
        let plain = |rules: Rules| -> BTreeMap<i64, Vec<SeccompRule>> {
            rules
                .into_iter()
                .map(|(n, r)| (n, r.unwrap_or_default()))
                .collect()
        };
        let compile = |rules, mismatch, matched| -> Result<BpfProgram, SeccompError> {
            let filter = SeccompFilter::new(plain(rules), mismatch, matched, arch)
                .map_err(|e| SeccompError::Compile(e.to_string()))?;
            filter
                .try_into()
                .map_err(|e: seccompiler::BackendError| SeccompError::Compile(e.to_string()))
        };
        let mut programs = Vec::new();
        if default != SeccompAction::Allow {
            programs.push(compile(allow, default, SeccompAction::Allow)?);
        }
        for (matched, rules) in groups {
            if matched != SeccompAction::Allow {
                programs.push(compile(rules, SeccompAction::Allow, matched)?);
            }
        }
        Ok(programs)
    }
}

/// The docker name of the native architecture (as in `includes.arches`) and seccompiler's.
fn native_arch() -> Result<TargetArch, SeccompError> {
    TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|_| SeccompError::Architecture(std::env::consts::ARCH))
}

/// Names `includes.arches` may use for the native architecture (docker uses Go's names).
fn native_arch_names() -> &'static [&'static str] {
    match std::env::consts::ARCH {
        "x86_64" => &["amd64", "x86_64", "SCMP_ARCH_X86_64"],
        "aarch64" => &["arm64", "aarch64", "SCMP_ARCH_AARCH64"],
        "riscv64" => &["riscv64", "SCMP_ARCH_RISCV64"],
        _ => &[],
    }
}

/// The system call number of `name` on this architecture; `None` for names it does not
/// have (skipped, as docker does).
fn syscall_number(name: &str) -> Option<i64> {
    #[cfg(target_arch = "aarch64")]
    use syscalls::aarch64::Sysno;
    #[cfg(target_arch = "x86_64")]
    use syscalls::x86_64::Sysno;
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        name.parse::<Sysno>().ok().map(|s| i64::from(s.id()))
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = name;
        None
    }
}

/// The running kernel's (major, minor), from `/proc/sys/kernel/osrelease`.
fn kernel_version() -> (u32, u32) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    parse_version(&release).unwrap_or((0, 0))
}

/// `"5.15.0-91-generic"` → (5, 15).
fn parse_version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.trim().split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

/// Whether an entry applies to this container: every capability of `includes.caps` in its
/// set, the native architecture among `includes.arches`, the kernel at least
/// `includes.minKernel`; and none of `excludes`.
fn applies(entry: &SyscallEntry, caps: u64, kernel: (u32, u32)) -> Result<bool, SeccompError> {
    let has_cap = |name: &String| -> Result<bool, SeccompError> {
        let n = capability_number(name)
            .ok_or_else(|| SeccompError::Invalid(format!("unknown capability {name:?}")))?;
        Ok(caps & (1u64 << n) != 0)
    };
    let native = |arches: &[String]| {
        arches
            .iter()
            .any(|a| native_arch_names().contains(&a.as_str()))
    };
    let min_kernel = |text: &String| {
        parse_version(text)
            .ok_or_else(|| SeccompError::Invalid(format!("invalid minKernel {text:?}")))
    };
    if let Some(inc) = &entry.includes {
        for cap in inc.caps.iter().flatten() {
            if !has_cap(cap)? {
                return Ok(false);
            }
        }
        if inc
            .arches
            .as_ref()
            .is_some_and(|a| !a.is_empty() && !native(a))
        {
            return Ok(false);
        }
        if let Some(min) = &inc.min_kernel {
            if kernel < min_kernel(min)? {
                return Ok(false);
            }
        }
    }
    if let Some(exc) = &entry.excludes {
        for cap in exc.caps.iter().flatten() {
            if has_cap(cap)? {
                return Ok(false);
            }
        }
        if exc.arches.as_ref().is_some_and(|a| native(a)) {
            return Ok(false);
        }
        if let Some(min) = &exc.min_kernel {
            if kernel >= min_kernel(min)? {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// seccompiler's action for a profile action and its errno (`EPERM` when absent).
fn action(action: Action, errno: Option<u32>) -> Result<SeccompAction, SeccompError> {
    Ok(match action {
        Action::Allow => SeccompAction::Allow,
        Action::Errno => SeccompAction::Errno(errno.unwrap_or(EPERM)),
        Action::KillThread => SeccompAction::KillThread,
        Action::KillProcess => SeccompAction::KillProcess,
        Action::Trap => SeccompAction::Trap,
        Action::Trace => SeccompAction::Trace(errno.unwrap_or(EPERM)),
        Action::Log => SeccompAction::Log,
        Action::Notify => {
            return Err(SeccompError::Invalid(
                "SCMP_ACT_NOTIFY is not supported (it needs a listener)".into(),
            ))
        }
    })
}

/// The entry's `args` as one rule (all conditions must hold); `None` without conditions.
fn rule(entry: &SyscallEntry) -> Result<Option<SeccompRule>, SeccompError> {
    let args = entry.args.as_deref().unwrap_or_default();
    if args.is_empty() {
        return Ok(None);
    }
    let conditions = args
        .iter()
        .map(|arg| {
            let (op, value) = match arg.op {
                CompareOp::Ne => (SeccompCmpOp::Ne, arg.value),
                CompareOp::Lt => (SeccompCmpOp::Lt, arg.value),
                CompareOp::Le => (SeccompCmpOp::Le, arg.value),
                CompareOp::Eq => (SeccompCmpOp::Eq, arg.value),
                CompareOp::Ge => (SeccompCmpOp::Ge, arg.value),
                CompareOp::Gt => (SeccompCmpOp::Gt, arg.value),
                CompareOp::MaskedEq => (SeccompCmpOp::MaskedEq(arg.value), arg.value_two),
            };
            SeccompCondition::new(arg.index, SeccompCmpArgLen::Qword, op, value)
                .map_err(|e| SeccompError::Invalid(format!("argument {}: {e}", arg.index)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    SeccompRule::new(conditions)
        .map(Some)
        .map_err(|e| SeccompError::Invalid(e.to_string()))
}

/// Installs `programs` in order on the calling thread (which has `no_new_privs` set or
/// `CAP_SYS_ADMIN`); they are inherited across fork and exec.
pub(crate) fn install(programs: &[BpfProgram]) -> Result<(), SeccompError> {
    for program in programs {
        seccompiler::apply_filter(program).map_err(|e| SeccompError::Install(e.to_string()))?;
    }
    Ok(())
}

/// Installs the filters without setting `no_new_privs` (seccompiler's `apply_filter` always
/// sets it), for a process that must keep the ability to gain privileges through exec
/// (`no-new-privileges=false`). The kernel then demands CAP_SYS_ADMIN, so the caller
/// installs them before dropping capabilities, as runc does.
pub(crate) fn install_keeping_privs(programs: &[BpfProgram]) -> Result<(), SeccompError> {
    for program in programs {
        let prog = libc::sock_fprog {
            len: program.len() as libc::c_ushort,
            filter: program.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: seccomp(2) reads `prog`, whose `filter` points at `len` instructions;
        // seccompiler's `sock_filter` is repr(C) with the kernel's (and libc's) layout.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &prog as *const libc::sock_fprog,
            )
        };
        if rc < 0 {
            return Err(SeccompError::Install(
                std::io::Error::last_os_error().to_string(),
            ));
        }
    }
    Ok(())
}

/// BPF programs in a form that travels in the launch description (code, jt, jf, k packed
/// into one integer per instruction).
pub(crate) fn pack(programs: &[BpfProgram]) -> Vec<Vec<u64>> {
    programs
        .iter()
        .map(|p| {
            p.iter()
                .map(|i| {
                    u64::from(i.code) << 48
                        | u64::from(i.jt) << 40
                        | u64::from(i.jf) << 32
                        | u64::from(i.k)
                })
                .collect()
        })
        .collect()
}

/// The inverse of [`pack`].
pub(crate) fn unpack(packed: &[Vec<u64>]) -> Vec<BpfProgram> {
    packed
        .iter()
        .map(|p| {
            p.iter()
                .map(|v| seccompiler::sock_filter {
                    code: (v >> 48) as u16,
                    jt: (v >> 40) as u8,
                    jf: (v >> 32) as u8,
                    k: *v as u32,
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::default_capability_mask;

    #[test]
    fn default_profile_compiles_to_an_allow_list_and_clone3_enosys() {
        let profile = SeccompProfile::default_profile();
        assert_eq!(profile.default_action, Action::Errno);
        let programs = profile.compile(default_capability_mask()).unwrap();
        // The allow-list, then clone3's ENOSYS (the container lacks CAP_SYS_ADMIN).
        assert_eq!(programs.len(), 2, "{}", programs.len());
        // With CAP_SYS_ADMIN clone3 is allowed: only the allow-list remains.
        let admin = default_capability_mask() | 1 << 21;
        assert_eq!(profile.compile(admin).unwrap().len(), 1);
    }

    #[test]
    fn pack_round_trips() {
        let programs = SeccompProfile::default_profile()
            .compile(default_capability_mask())
            .unwrap();
        let back = unpack(&pack(&programs));
        assert_eq!(back.len(), programs.len());
        for (a, b) in programs.iter().zip(&back) {
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(b) {
                assert_eq!((x.code, x.jt, x.jf, x.k), (y.code, y.jt, y.jf, y.k));
            }
        }
    }

    #[test]
    fn conditions_follow_docker() {
        let entry = |includes: Option<Conditions>, excludes: Option<Conditions>| SyscallEntry {
            names: Some(vec!["ptrace".into()]),
            name: None,
            action: Action::Allow,
            args: None,
            includes,
            excludes,
            errno_ret: None,
            comment: None,
        };
        let caps = |c: &[&str]| Conditions {
            caps: Some(c.iter().map(|s| s.to_string()).collect()),
            ..Conditions::default()
        };
        let ptrace_cap = 1u64 << 19;
        let e = entry(Some(caps(&["CAP_SYS_PTRACE"])), None);
        assert!(applies(&e, ptrace_cap, (6, 1)).unwrap());
        assert!(!applies(&e, 0, (6, 1)).unwrap());
        let e = entry(None, Some(caps(&["CAP_SYS_PTRACE"])));
        assert!(!applies(&e, ptrace_cap, (6, 1)).unwrap());
        let kernel = Conditions {
            min_kernel: Some("4.8".into()),
            ..Conditions::default()
        };
        let e = entry(Some(kernel), None);
        assert!(applies(&e, 0, (4, 8)).unwrap());
        assert!(!applies(&e, 0, (4, 7)).unwrap());
        let other_arch = Conditions {
            arches: Some(vec!["s390x".into()]),
            ..Conditions::default()
        };
        assert!(!applies(&entry(Some(other_arch), None), 0, (6, 1)).unwrap());
        let bad = entry(Some(caps(&["CAP_NOPE"])), None);
        assert!(applies(&bad, 0, (6, 1)).is_err());
        assert_eq!(parse_version("5.15.0-91-generic"), Some((5, 15)));
        assert_eq!(parse_version("6.18.44-fc-v1252\n"), Some((6, 18)));
    }

    #[test]
    fn unknown_names_are_skipped_and_notify_refused() {
        let profile: SeccompProfile = serde_json::from_str(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {"names":["mkdir","no_such_call"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#,
        )
        .unwrap();
        assert_eq!(profile.compile(0).unwrap().len(), 1);
        let notify: SeccompProfile = serde_json::from_str(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        )
        .unwrap();
        assert!(matches!(notify.compile(0), Err(SeccompError::Invalid(_))));
        // A default more restrictive than an entry's action: the entry's calls are in the
        // first filter's allowed set, so its own filter decides for them.
        let kill: SeccompProfile = serde_json::from_str(
            r#"{"defaultAction":"SCMP_ACT_KILL_PROCESS","syscalls":[
                {"names":["read"],"action":"SCMP_ACT_ALLOW"},
                {"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#,
        )
        .unwrap();
        let programs = kill.compile(0).unwrap();
        assert_eq!(programs.len(), 2);
        let mkdir = syscall_number("mkdir").unwrap() as u32;
        let allows_mkdir = programs[0].iter().any(|i| i.k == mkdir);
        assert!(allows_mkdir, "mkdir is in the first filter's allowed set");
        let bad = serde_json::from_str::<SeccompProfile>(r#"{"defaultAction":"SCMP_ACT_BOGUS"}"#);
        assert!(bad.is_err());
    }
}
