//! What a container may do: docker's `--security-opt`, `--cap-add`, `--cap-drop`,
//! `--privileged`, `--device` and `--device-cgroup-rule`, turned into the runtime spec's
//! capabilities, seccomp filter, `no_new_privs`, device nodes and device cgroup
//! ([`Privileges::apply`]).

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rbuild_runtime::{ContainerSpec, DeviceNode, DeviceRule, SeccompProfile};

use super::ContainerError;

/// One `--security-opt` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecurityOpt {
    /// `seccomp=FILE` (docker's JSON profile format) or `seccomp=unconfined` (`None`).
    Seccomp(Option<SeccompProfile>),
    /// `no-new-privileges[=true|false]` (or `:true`): whether `no_new_privs` is set.
    NoNewPrivileges(bool),
}

/// Parses one `--security-opt` value; `seccomp=FILE` reads and checks the profile now, so
/// that a broken one fails before anything is created (docker's 125).
pub fn parse_security_opt(value: &str) -> Result<SecurityOpt, ContainerError> {
    let unsupported = |reason: &str| ContainerError::BadSecurityOpt {
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let (key, setting) = match value.split_once(['=', ':']) {
        Some((k, v)) => (k, Some(v)),
        None => (value, None),
    };
    match (key, setting) {
        ("seccomp", Some("unconfined")) => Ok(SecurityOpt::Seccomp(None)),
        ("seccomp", Some(file)) if !file.is_empty() => Ok(SecurityOpt::Seccomp(Some(
            SeccompProfile::from_file(Path::new(file))?,
        ))),
        ("no-new-privileges", None | Some("true")) => Ok(SecurityOpt::NoNewPrivileges(true)),
        ("no-new-privileges", Some("false")) => Ok(SecurityOpt::NoNewPrivileges(false)),
        ("no-new-privileges", Some(_)) => Err(unsupported("expected true or false")),
        ("apparmor" | "label" | "systempaths" | "proc-opts" | "mask" | "unmask", _) => {
            Err(unsupported("not supported by rbuild"))
        }
        _ => Err(unsupported(
            "expected seccomp=FILE, seccomp=unconfined or no-new-privileges",
        )),
    }
}

/// The privilege flags of `run` (see the module docs), as given.
#[derive(Debug, Clone, Default)]
pub struct Privileges {
    /// `--cap-add` names (any case, `CAP_` optional, or `ALL`).
    pub cap_add: Vec<String>,
    /// `--cap-drop` names.
    pub cap_drop: Vec<String>,
    /// `--privileged`: every capability, no seccomp filter, no device cgroup, the host's
    /// devices, writable `/sys`, no masked paths (docker's meaning).
    pub privileged: bool,
    /// `--security-opt no-new-privileges[=BOOL]`; `None`: set, but not with `--privileged`
    /// (docker never sets it unless asked; rbuild does unless the container is privileged).
    pub no_new_privileges: Option<bool>,
    /// `--device`, parsed with [`parse_device`].
    pub devices: Vec<(DeviceNode, DeviceRule)>,
    /// `--device-cgroup-rule`, parsed with [`parse_device_cgroup_rule`]: devices the
    /// container may use (a node it makes, or one that appears later) without a node made.
    pub device_rules: Vec<DeviceRule>,
    /// `--shm-size` in bytes.
    pub shm_size: Option<u64>,
}

impl Privileges {
    /// The capability mask the flags give (an unknown name is an error, docker's message).
    pub fn capabilities(&self) -> Result<u64, ContainerError> {
        if self.privileged {
            return Ok(rbuild_runtime::all_capabilities_mask());
        }
        Ok(rbuild_runtime::capability_mask(
            &self.cap_add,
            &self.cap_drop,
        )?)
    }

    /// Sets the spec's privileges from the flags; `capabilities` is [`Self::capabilities`]
    /// (computed before anything was created). Every other container gets docker's default
    /// device cgroup, with the `--device` nodes and the `--device-cgroup-rule` rules allowed.
    pub fn apply(&self, spec: &mut ContainerSpec, capabilities: u64) {
        spec.capabilities = capabilities;
        spec.no_new_privileges = self.no_new_privileges.unwrap_or(!self.privileged);
        spec.privileged = self.privileged;
        spec.shm_size = self.shm_size;
        spec.devices = self.devices.iter().map(|(node, _)| node.clone()).collect();
        if self.privileged {
            spec.seccomp = None;
            spec.resources.devices = None;
        } else {
            let mut rules = DeviceRule::defaults();
            rules.extend(self.devices.iter().map(|(_, rule)| rule.clone()));
            rules.extend(self.device_rules.iter().cloned());
            spec.resources.devices = Some(rules);
        }
    }
}

/// Parses docker's `--device-cgroup-rule 'TYPE MAJOR:MINOR ACCESS'`: type `a` (every
/// device), `c` or `b`; major and minor a number or `*`; access some of `rwm` (`c 42:* rmw`).
pub fn parse_device_cgroup_rule(value: &str) -> Result<DeviceRule, ContainerError> {
    let bad = |reason: &str| ContainerError::BadOption {
        flag: "--device-cgroup-rule",
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let fields: Vec<&str> = value.split_whitespace().collect();
    let [kind, numbers, access] = fields[..] else {
        return Err(bad("expected TYPE MAJOR:MINOR ACCESS, e.g. 'c 42:* rmw'"));
    };
    let kind = match kind {
        "a" | "b" | "c" => kind.chars().next().expect("one letter"),
        _ => return Err(bad("the type must be a (all), b (block) or c (character)")),
    };
    let number = |n: &str| match n {
        "*" => Ok(None),
        n => n
            .parse::<u64>()
            .map(Some)
            .map_err(|_| bad("major and minor must be numbers or *")),
    };
    let (major, minor) = numbers
        .split_once(':')
        .ok_or_else(|| bad("expected MAJOR:MINOR"))?;
    let mut letters: Vec<char> = access.chars().collect();
    letters.dedup();
    if letters.is_empty() || letters.len() > 3 || !letters.iter().all(|c| "rwm".contains(*c)) {
        return Err(bad("the access must be some of r, w and m"));
    }
    Ok(DeviceRule {
        kind,
        major: number(major)?,
        minor: number(minor)?,
        access: access.to_string(),
    })
}

/// Parses docker's `--device HOST[:CONTAINER][:PERMISSIONS]` (permissions some of `rwm`,
/// default all three) and reads the host's node: the node to make and its cgroup rule.
pub fn parse_device(value: &str) -> Result<(DeviceNode, DeviceRule), ContainerError> {
    let bad = |reason: String| ContainerError::BadOption {
        flag: "--device",
        value: value.to_string(),
        reason,
    };
    let is_access = |s: &str| !s.is_empty() && s.chars().all(|c| "rwm".contains(c));
    let parts: Vec<&str> = value.split(':').collect();
    let (host, container, access) = match parts[..] {
        [host] => (host, host, "rwm"),
        [host, access] if is_access(access) => (host, host, access),
        [host, container] => (host, container, "rwm"),
        [host, container, access] if is_access(access) => (host, container, access),
        [_, _, access] => return Err(bad(format!("invalid device mode: {access}"))),
        _ => return Err(bad("too many colons".into())),
    };
    if !host.starts_with('/') {
        return Err(bad(format!("{host} is not an absolute path")));
    }
    if !container.starts_with('/') {
        return Err(bad(format!("{container} is not an absolute path")));
    }
    let meta = std::fs::metadata(host)
        .map_err(|e| bad(format!("error gathering device information: {e}")))?;
    let kind = match meta.file_type() {
        t if t.is_char_device() => 'c',
        t if t.is_block_device() => 'b',
        _ => return Err(bad(format!("{host} is not a device node"))),
    };
    let (major, minor) = (
        nix::sys::stat::major(meta.rdev()),
        nix::sys::stat::minor(meta.rdev()),
    );
    let node = DeviceNode {
        path: PathBuf::from(container),
        host: PathBuf::from(host),
        kind,
        major,
        minor,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
    };
    let rule = DeviceRule {
        kind,
        major: Some(major),
        minor: Some(minor),
        access: access.to_string(),
    };
    Ok((node, rule))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(
            parse_security_opt("seccomp=unconfined").unwrap(),
            SecurityOpt::Seccomp(None)
        );
        assert_eq!(
            parse_security_opt("no-new-privileges").unwrap(),
            SecurityOpt::NoNewPrivileges(true)
        );
        assert_eq!(
            parse_security_opt("no-new-privileges:true").unwrap(),
            SecurityOpt::NoNewPrivileges(true)
        );
        assert_eq!(
            parse_security_opt("no-new-privileges=false").unwrap(),
            SecurityOpt::NoNewPrivileges(false)
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.json");
        std::fs::write(&file, r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#).unwrap();
        let opt = parse_security_opt(&format!("seccomp={}", file.display())).unwrap();
        assert!(matches!(opt, SecurityOpt::Seccomp(Some(_))));
        for bad in [
            "seccomp=",
            "seccomp=/no/such/profile.json",
            "apparmor=unconfined",
            "no-new-privileges=maybe",
            "bogus",
        ] {
            let err = parse_security_opt(bad).unwrap_err().to_string();
            assert!(
                err.contains(
                    bad.split('=')
                        .nth(1)
                        .filter(|s| !s.is_empty())
                        .unwrap_or(bad)
                ),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn device_cgroup_rules() {
        for (value, line) in [
            ("c 42:* rmw", "c 42:* rmw"),
            ("b *:* r", "b *:* r"),
            ("c 10:237 rw", "c 10:237 rw"),
            ("a *:* rwm", "a"),
        ] {
            assert_eq!(parse_device_cgroup_rule(value).unwrap().line(), line);
        }
        for (bad, why) in [
            ("c 42:*", "expected TYPE MAJOR:MINOR ACCESS"),
            ("x 1:3 rw", "the type must be"),
            ("c 1 rw", "expected MAJOR:MINOR"),
            ("c one:3 rw", "numbers or *"),
            ("c 1:3 rwx", "some of r, w and m"),
            ("c 1:3 rwmr", "some of r, w and m"),
        ] {
            let err = parse_device_cgroup_rule(bad).unwrap_err().to_string();
            assert!(err.contains(why) && err.contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn devices() {
        let (node, rule) = parse_device("/dev/null:/dev/mynull:rw").unwrap();
        assert_eq!(node.path, Path::new("/dev/mynull"));
        assert_eq!((node.kind, node.major, node.minor), ('c', 1, 3));
        assert_eq!(rule.line(), "c 1:3 rw");
        let (node, rule) = parse_device("/dev/zero:r").unwrap();
        assert_eq!(node.path, Path::new("/dev/zero"));
        assert_eq!(rule.line(), "c 1:5 r");
        for bad in [
            "/etc/passwd",
            "dev/null",
            "/dev/null:x:rw",
            "/dev/null:/a:rwx",
            "/no/such",
        ] {
            assert!(parse_device(bad).is_err(), "{bad}");
        }
    }
}
