//! rbuild's registry settings and the insecure-registry rules.
//!
//! The config file is JSON like docker's `daemon.json`; only `insecure-registries` is read:
//!
//! ```json
//! { "insecure-registries": ["registry.lan:5000", "10.0.0.0/8"] }
//! ```
//!
//! It is `$RBUILD_CONFIG` when set, else `$XDG_CONFIG_HOME/rbuild/config.json` (or
//! `~/.config/rbuild/config.json`) when that exists, else `/etc/rbuild/config.json`.
//!
//! A host may use plain HTTP or unverified TLS when it is listed there (by `host[:port]`,
//! or by an IPv4 CIDR its address falls into), when it is `localhost` or in 127.0.0.0/8 (as
//! docker allows), or when `--tls-verify=false` is given. Everything else is HTTPS verified
//! against the system's roots (`SSL_CERT_FILE`/`SSL_CERT_DIR` are honoured) plus any
//! `*.crt` in `<config dir>/certs.d/<host>/` (like docker's `/etc/docker/certs.d`).

use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::RegistryError;

/// The registry's host for docker.io references.
pub const DOCKER_HUB_HOST: &str = "registry-1.docker.io";

/// The host to connect to for a reference's domain (`docker.io` → `registry-1.docker.io`).
pub fn endpoint_host(domain: &str) -> &str {
    match domain {
        "docker.io" | "index.docker.io" => DOCKER_HUB_HOST,
        other => other,
    }
}

/// rbuild's config file, as found by the rules above (it may not exist).
pub fn config_path() -> PathBuf {
    if let Some(p) = std::env::var_os("RBUILD_CONFIG").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    let user = user_config_dir().join("config.json");
    if user.exists() {
        return user;
    }
    PathBuf::from("/etc/rbuild/config.json")
}

fn user_config_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("rbuild");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
    PathBuf::from(home).join(".config/rbuild")
}

/// Directories that may hold extra CA certificates for `host`.
pub fn cert_dirs(host: &str) -> Vec<PathBuf> {
    let mut dirs = vec![user_config_dir().join("certs.d").join(host)];
    dirs.push(PathBuf::from("/etc/rbuild/certs.d").join(host));
    if let Some(parent) = config_path().parent() {
        dirs.push(parent.join("certs.d").join(host));
    }
    dirs.dedup();
    dirs
}

/// The `insecure-registries` of the config file (empty when there is none).
pub fn insecure_registries() -> Result<Vec<String>, RegistryError> {
    let path = config_path();
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(RegistryError::Config(format!("{}: {e}", path.display())));
        }
    };
    #[derive(serde::Deserialize)]
    struct File {
        #[serde(default, rename = "insecure-registries")]
        insecure: Vec<String>,
    }
    let f: File = serde_json::from_slice(&bytes)
        .map_err(|e| RegistryError::Config(format!("{}: {e}", path.display())))?;
    Ok(f.insecure)
}

/// Whether `host` (`name[:port]`) may use plain HTTP or unverified TLS, given the
/// configured `insecure` list.
pub fn is_insecure(host: &str, insecure: &[String]) -> bool {
    let name = host_name(host);
    if name == "localhost" || name.ends_with(".localhost") || name == "::1" {
        return true;
    }
    let ip: Option<Ipv4Addr> = name.parse().ok();
    if ip.is_some_and(|ip| ip.octets()[0] == 127) {
        return true;
    }
    insecure.iter().any(|entry| {
        let entry = entry
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .trim_end_matches('/');
        if entry == host || entry == name {
            return true;
        }
        match (ip, parse_cidr(entry)) {
            (Some(ip), Some((net, bits))) => {
                let mask = if bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - bits)
                };
                u32::from(ip) & mask == u32::from(net) & mask
            }
            _ => false,
        }
    })
}

/// `name` of `name:port` (and of `[v6]:port`).
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u32)> {
    let (net, bits) = s.split_once('/')?;
    let bits: u32 = bits.parse().ok()?;
    (bits <= 32).then_some(())?;
    Some((net.parse().ok()?, bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_insecure() {
        assert!(is_insecure("localhost:5000", &[]));
        assert!(is_insecure("127.0.0.1:5000", &[]));
        assert!(is_insecure("127.4.5.6", &[]));
        assert!(!is_insecure("registry.example.com", &[]));
        assert!(!is_insecure("10.1.2.3:5000", &[]));
    }

    #[test]
    fn listed_hosts_and_cidrs_are_insecure() {
        let list = vec!["registry.lan:5000".to_string(), "10.0.0.0/8".to_string()];
        assert!(is_insecure("registry.lan:5000", &list));
        assert!(!is_insecure("registry.lan:5001", &list));
        assert!(is_insecure("10.1.2.3:5000", &list));
        assert!(!is_insecure("11.1.2.3:5000", &list));
    }

    #[test]
    fn docker_hub_endpoint() {
        assert_eq!(endpoint_host("docker.io"), DOCKER_HUB_HOST);
        assert_eq!(endpoint_host("localhost:5000"), "localhost:5000");
    }
}
