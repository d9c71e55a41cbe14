//! The container's environment: docker's defaults, the image's `Env`, `--env-file` and `-e`.

use std::path::{Path, PathBuf};

use super::ContainerError;

/// Parses one `-e` value: `K=V` as is; `K` alone takes the value of `K` from `host`, and is
/// left out when the host has no such variable (as docker does).
pub fn parse_env_arg(
    arg: &str,
    host: impl Fn(&str) -> Option<String>,
) -> Result<Option<String>, ContainerError> {
    let (name, value) = match arg.split_once('=') {
        Some((name, value)) => (name, Some(value.to_string())),
        None => (arg, None),
    };
    if name.is_empty() {
        return Err(ContainerError::BadEnv {
            value: arg.to_string(),
            reason: "variable name is empty".into(),
        });
    }
    Ok(match value {
        Some(v) => Some(format!("{name}={v}")),
        None => host(name).map(|v| format!("{name}={v}")),
    })
}

/// Reads an `--env-file`: one `K=V` (or `K`, taken from `host`) per line; blank lines and
/// lines starting with `#` are skipped; leading whitespace is ignored.
pub fn read_env_file(
    path: &Path,
    host: impl Fn(&str) -> Option<String>,
) -> Result<Vec<String>, ContainerError> {
    let text = std::fs::read_to_string(path).map_err(|error| ContainerError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name = line.split_once('=').map_or(line, |(n, _)| n);
        if name.contains(char::is_whitespace) {
            return Err(ContainerError::BadEnvFile {
                path: PathBuf::from(path),
                line: i + 1,
                reason: format!("variable {name:?} contains whitespaces"),
            });
        }
        match parse_env_arg(line, &host) {
            Ok(Some(entry)) => out.push(entry),
            Ok(None) => {}
            Err(e) => {
                return Err(ContainerError::BadEnvFile {
                    path: PathBuf::from(path),
                    line: i + 1,
                    reason: e.to_string(),
                })
            }
        }
    }
    Ok(out)
}

/// Docker's process environment: `PATH` (default), `HOSTNAME`, `TERM=xterm` with a tty, then
/// the image's `Env`, then the user's entries, each later entry replacing an earlier one
/// with the same name (in place).
pub fn merge(hostname: &str, tty: bool, image: &[String], user: &[String]) -> Vec<String> {
    let mut env: Vec<String> = vec![
        format!("PATH={}", rbuild_runtime::DEFAULT_PATH),
        format!("HOSTNAME={hostname}"),
    ];
    if tty {
        env.push("TERM=xterm".to_string());
    }
    overlay(&mut env, image.iter().chain(user));
    env
}

/// Sets each `entries` item in `env`, replacing an entry with the same name in place, else
/// appending it (also `exec -e` over the container's environment, and the container's
/// config `Env` for `commit`: the image's, then the user's).
pub fn overlay<'a>(env: &mut Vec<String>, entries: impl IntoIterator<Item = &'a String>) {
    for entry in entries {
        let name = entry.split_once('=').map_or(entry.as_str(), |(n, _)| n);
        match env
            .iter_mut()
            .find(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n) == name)
        {
            Some(slot) => *slot = entry.clone(),
            None => env.push(entry.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str) -> Option<String> {
        (name == "HOSTVAR").then(|| "from-host".to_string())
    }

    #[test]
    fn env_args() {
        assert_eq!(parse_env_arg("A=1", host).unwrap().as_deref(), Some("A=1"));
        assert_eq!(parse_env_arg("A=", host).unwrap().as_deref(), Some("A="));
        assert_eq!(
            parse_env_arg("HOSTVAR", host).unwrap().as_deref(),
            Some("HOSTVAR=from-host")
        );
        assert_eq!(parse_env_arg("UNSET", host).unwrap(), None);
        assert!(parse_env_arg("=x", host).is_err());
    }

    #[test]
    fn env_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("env");
        std::fs::write(&path, "# comment\n\nA=1\n  B=two words\nHOSTVAR\nUNSET\n").unwrap();
        assert_eq!(
            read_env_file(&path, host).unwrap(),
            vec!["A=1", "B=two words", "HOSTVAR=from-host"]
        );
        std::fs::write(&path, "A=1\nBAD NAME=2\n").unwrap();
        let err = read_env_file(&path, host).unwrap_err().to_string();
        assert!(err.contains(":2:"), "{err}");
        assert!(read_env_file(&dir.path().join("missing"), host).is_err());
    }

    #[test]
    fn merge_order() {
        let env = merge(
            "h1",
            false,
            &["PATH=/bin".into(), "A=image".into(), "B=image".into()],
            &["A=user".into(), "C=user".into()],
        );
        assert_eq!(
            env,
            vec!["PATH=/bin", "HOSTNAME=h1", "A=user", "B=image", "C=user"]
        );
        assert!(merge("h", true, &[], &[]).contains(&"TERM=xterm".to_string()));
    }
}
