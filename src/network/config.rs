//! The default bridge's configuration: `<store root>/network.json`
//! (`{"bridge": "rbuild0", "subnet": "10.88.0.0/16", "linger_ms": 10000}`, all optional),
//! overridden by the environment variables `RBUILD_BRIDGE`, `RBUILD_BRIDGE_SUBNET` and
//! `RBUILD_NETWORK_LINGER_MS`. User networks' bridges take their linger from that variable
//! (or the default); see [`super::linger`] for what the linger is.
//!
//! Without a subnet, the first of 10.88.0.0/16, 10.89.0.0/16, … 10.255.0.0/16 that no route
//! of the host covers is taken (podman's default first). The bridge's name must start with
//! `rbuild` (everything rbuild adds to the host does) and fit a link name (15 bytes).

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::subnet::Subnet;
use super::NetworkError;

/// The default bridge's name and, when configured, its subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeConfig {
    pub bridge: String,
    pub subnet: Option<Subnet>,
    /// How long the bridge stays once its last user left ([`super::linger`]).
    pub linger: Duration,
}

/// How long an unused bridge stays by default. Long enough for the containers of a shell
/// loop, a CI job or a test suite to reuse it (each reuse saves the bridge's creation, its
/// ~50 ms deletion and two `nft` runs); short enough that rbuild leaves nothing on the host
/// soon after its last container (docker keeps `docker0` for good).
pub const DEFAULT_LINGER: Duration = Duration::from_secs(10);

/// The variable that sets the linger in milliseconds (0: remove the bridge at once).
const LINGER_ENV: &str = "RBUILD_NETWORK_LINGER_MS";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    bridge: Option<String>,
    subnet: Option<Subnet>,
    linger_ms: Option<u64>,
}

/// Reads the configuration of the store at `store_root` and the environment.
pub fn default_bridge(store_root: &Path) -> Result<BridgeConfig, NetworkError> {
    let path = store_root.join("network.json");
    let file: File = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| NetworkError::Config(format!("{}: {e}", path.display())))?,
        Err(_) => File::default(),
    };
    let bridge = std::env::var("RBUILD_BRIDGE")
        .ok()
        .or(file.bridge)
        .unwrap_or_else(|| "rbuild0".to_string());
    let valid = bridge.starts_with("rbuild")
        && bridge.len() <= 15
        && bridge
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(NetworkError::Config(format!(
            "bridge name {bridge:?} must start with \"rbuild\" and be at most 15 letters, digits, - or _"
        )));
    }
    let subnet = match std::env::var("RBUILD_BRIDGE_SUBNET") {
        Ok(s) => Some(s.parse().map_err(NetworkError::Config)?),
        Err(_) => file.subnet,
    };
    Ok(BridgeConfig {
        bridge,
        subnet,
        linger: linger(file.linger_ms)?,
    })
}

/// The linger: `RBUILD_NETWORK_LINGER_MS`, else `configured` (the store's `linger_ms`, for
/// the default bridge), else [`DEFAULT_LINGER`].
pub fn linger(configured: Option<u64>) -> Result<Duration, NetworkError> {
    let ms = match std::env::var(LINGER_ENV) {
        Ok(v) => Some(v.trim().parse::<u64>().map_err(|_| {
            NetworkError::Config(format!(
                "{LINGER_ENV}={v:?}: expected a number of milliseconds"
            ))
        })?),
        Err(_) => configured,
    };
    Ok(ms.map_or(DEFAULT_LINGER, Duration::from_millis))
}

/// The subnets tried when none is configured.
pub(super) fn default_subnets() -> impl Iterator<Item = Subnet> {
    (88u8..=255).map(|b| Subnet::new(std::net::Ipv4Addr::new(10, b, 0, 0), 16))
}
