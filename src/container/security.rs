//! `--security-opt`: which of docker's security options `run` understands.

use std::path::Path;

use rbuild_runtime::SeccompProfile;

use super::ContainerError;

/// One `--security-opt` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecurityOpt {
    /// `seccomp=FILE` (docker's JSON profile format) or `seccomp=unconfined` (`None`).
    Seccomp(Option<SeccompProfile>),
    /// `no-new-privileges`, `no-new-privileges=true` (or `:true`): rbuild always sets it.
    NoNewPrivileges,
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
        ("no-new-privileges", None | Some("true")) => Ok(SecurityOpt::NoNewPrivileges),
        ("no-new-privileges", Some(_)) => Err(unsupported(
            "rbuild always sets no_new_privs; it cannot be turned off",
        )),
        ("apparmor" | "label" | "systempaths" | "proc-opts" | "mask" | "unmask", _) => {
            Err(unsupported("not supported by rbuild"))
        }
        _ => Err(unsupported(
            "expected seccomp=FILE, seccomp=unconfined or no-new-privileges",
        )),
    }
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
            SecurityOpt::NoNewPrivileges
        );
        assert_eq!(
            parse_security_opt("no-new-privileges:true").unwrap(),
            SecurityOpt::NoNewPrivileges
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
            "no-new-privileges=false",
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
}
