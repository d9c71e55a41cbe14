//! Credentials in docker's `config.json` (`$DOCKER_CONFIG/config.json`, default
//! `~/.docker/config.json`): `auths` entries (base64 `user:password`), and the
//! `credHelpers` / `credsStore` programs (`docker-credential-<name> get|store|erase`).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine;
use serde_json::{json, Map, Value};

use super::RegistryError;

/// A user name and password (or token).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// The docker config file.
pub fn docker_config_path() -> PathBuf {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|v| !v.is_empty()) {
        return PathBuf::from(d).join("config.json");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
    PathBuf::from(home).join(".docker/config.json")
}

/// The key docker uses for `host` in `auths` (Docker Hub has a historical URL).
fn auth_key(host: &str) -> String {
    match host {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => {
            "https://index.docker.io/v1/".to_string()
        }
        other => other.to_string(),
    }
}

fn read_config() -> Result<Map<String, Value>, RegistryError> {
    let path = docker_config_path();
    match std::fs::read(&path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(Map::new()),
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(RegistryError::Config(format!(
                "{}: not a JSON object",
                path.display()
            ))),
            Err(e) => Err(RegistryError::Config(format!("{}: {e}", path.display()))),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(e) => Err(RegistryError::Config(format!("{}: {e}", path.display()))),
    }
}

fn write_config(config: &Map<String, Value>) -> Result<String, RegistryError> {
    let path = docker_config_path();
    let err = |e: std::io::Error| RegistryError::Config(format!("{}: {e}", path.display()));
    let dir = path.parent().unwrap_or(std::path::Path::new("/"));
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".config.json.")
        .tempfile_in(dir)
        .map_err(err)?;
    let text = serde_json::to_string_pretty(config)
        .map_err(|e| RegistryError::Config(format!("{}: {e}", path.display())))?;
    tmp.write_all(text.as_bytes()).map_err(err)?;
    tmp.write_all(b"\n").map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(&path).map_err(|e| err(e.error))?;
    Ok(path.display().to_string())
}

/// The helper program that holds `host`'s credentials, if the config names one.
fn helper_for(config: &Map<String, Value>, key: &str) -> Option<String> {
    if let Some(h) = config
        .get("credHelpers")
        .and_then(|h| h.get(key))
        .and_then(Value::as_str)
    {
        return Some(h.to_string());
    }
    config
        .get("credsStore")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn run_helper(helper: &str, action: &str, input: &str) -> Result<String, RegistryError> {
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| RegistryError::Config(format!("credential helper {program}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| RegistryError::Config(format!("credential helper {program}: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() {
        let msg = if stdout.is_empty() {
            String::from_utf8_lossy(&out.stderr).trim().to_string()
        } else {
            stdout
        };
        return Err(RegistryError::Config(format!(
            "credential helper {program} {action}: {msg}"
        )));
    }
    Ok(stdout)
}

/// The stored credentials of `host`, if any.
pub fn lookup(host: &str) -> Result<Option<Credentials>, RegistryError> {
    let config = read_config()?;
    let key = auth_key(host);
    if let Some(helper) = helper_for(&config, &key) {
        return match run_helper(&helper, "get", &key) {
            Ok(out) => {
                let v: Value = serde_json::from_str(&out).map_err(|e| {
                    RegistryError::Config(format!(
                        "credential helper docker-credential-{helper}: bad answer: {e}"
                    ))
                })?;
                let username = v["Username"].as_str().unwrap_or_default().to_string();
                let password = v["Secret"].as_str().unwrap_or_default().to_string();
                Ok((!password.is_empty()).then_some(Credentials { username, password }))
            }
            // Helpers answer "credentials not found in native keychain" with status 1.
            Err(RegistryError::Config(m)) if m.contains("not found") => Ok(None),
            Err(e) => Err(e),
        };
    }
    let Some(entry) = config.get("auths").and_then(|a| {
        a.get(&key)
            .or_else(|| a.get(format!("https://{key}")))
            .or_else(|| a.get(format!("http://{key}")))
    }) else {
        return Ok(None);
    };
    if let Some(auth) = entry.get("auth").and_then(Value::as_str) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|e| {
                RegistryError::Config(format!(
                    "{}: auths.{key}.auth is not base64: {e}",
                    docker_config_path().display()
                ))
            })?;
        let text = String::from_utf8_lossy(&decoded);
        let Some((user, pass)) = text.split_once(':') else {
            return Err(RegistryError::Config(format!(
                "{}: auths.{key}.auth is not user:password",
                docker_config_path().display()
            )));
        };
        return Ok(Some(Credentials {
            username: user.to_string(),
            password: pass.to_string(),
        }));
    }
    let user = entry.get("username").and_then(Value::as_str);
    let pass = entry.get("password").and_then(Value::as_str);
    Ok(match (user, pass) {
        (Some(u), Some(p)) => Some(Credentials {
            username: u.to_string(),
            password: p.to_string(),
        }),
        _ => None,
    })
}

/// Saves `credentials` for `host` (helper when configured, else base64 in `auths`).
/// Returns where they went.
pub fn store(host: &str, credentials: &Credentials) -> Result<String, RegistryError> {
    let mut config = read_config()?;
    let key = auth_key(host);
    if let Some(helper) = helper_for(&config, &key) {
        let input = json!({
            "ServerURL": key,
            "Username": credentials.username,
            "Secret": credentials.password,
        });
        run_helper(&helper, "store", &input.to_string())?;
        return Ok(format!("docker-credential-{helper}"));
    }
    let auth = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", credentials.username, credentials.password));
    let auths = config
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    if !auths.is_object() {
        *auths = Value::Object(Map::new());
    }
    if let Some(a) = auths.as_object_mut() {
        a.insert(key, json!({ "auth": auth }));
    }
    write_config(&config)
}

/// Forgets `host`'s credentials. Returns whether there were any.
pub fn erase(host: &str) -> Result<bool, RegistryError> {
    let mut config = read_config()?;
    let key = auth_key(host);
    if let Some(helper) = helper_for(&config, &key) {
        return match run_helper(&helper, "erase", &key) {
            Ok(_) => Ok(true),
            Err(RegistryError::Config(m)) if m.contains("not found") => Ok(false),
            Err(e) => Err(e),
        };
    }
    let removed = config
        .get_mut("auths")
        .and_then(Value::as_object_mut)
        .and_then(|a| a.remove(&key))
        .is_some();
    if removed {
        write_config(&config)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_key() {
        assert_eq!(auth_key("docker.io"), "https://index.docker.io/v1/");
        assert_eq!(auth_key("localhost:5000"), "localhost:5000");
    }
}
