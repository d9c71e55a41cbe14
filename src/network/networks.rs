//! User-defined networks (`rbuild network create`): their records, and the subnets they get.
//!
//! Where the records live: `/etc/rbuild/networks.json` (next to the IPAM record when
//! `RBUILD_NETWORK_STATE` moves that, for tests), read and written under the IPAM record's
//! lock ([`Locked`]). Host-wide, not in a store's database, for the reason the IPAM record
//! is: a network is a bridge, a subnet and nftables chains on the host, so two stores
//! (`--root`) must see the same networks (a container of one store reaches a container of
//! the other on the same network), and a subnet must never be given to two networks. Under
//! `/etc` and not `/run`: a network is configuration the user made and must survive a reboot,
//! as docker's and podman's (`/etc/containers/networks`) do; the kernel objects do not need
//! to, they are made again.
//!
//! The bridge (`rbuild-<first 8 hex digits of the ID>`) and its chains are created lazily,
//! by the first container that joins, and removed once the last one left and the linger
//! passed ([`super::linger`]), exactly as the default bridge ([`super::attach`]): a network
//! nobody uses leaves nothing in the kernel after that (`rm` and `prune` remove a lingering
//! bridge at once), and a killed rbuild's leftovers are cleaned by the next start as for
//! the default bridge. The subnet is chosen at `create` and kept, so `inspect` shows it before any
//! container runs and a container gets the same addresses after a restart of the host.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::state::Locked;
use super::subnet::Subnet;
use super::NetworkError;

/// The names docker (and rbuild) predefine: not for `create`, never removed.
pub const PREDEFINED: [&str; 3] = ["bridge", "host", "none"];

/// One user-defined network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub name: String,
    /// 64 hex digits.
    pub id: String,
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    /// `--internal`: no NAT, no traffic to or from outside the network.
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Unix seconds.
    pub created: i64,
}

impl NetworkRecord {
    /// The bridge device of this network (15 bytes at most, as link names must be).
    pub fn bridge(&self) -> String {
        format!("rbuild-{}", &self.id[..8])
    }
}

/// What `create` was asked for.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    pub name: String,
    pub subnet: Option<Subnet>,
    pub gateway: Option<Ipv4Addr>,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
}

fn path() -> PathBuf {
    match std::env::var_os("RBUILD_NETWORK_STATE") {
        Some(dir) => PathBuf::from(dir).join("networks.json"),
        None => PathBuf::from("/etc/rbuild/networks.json"),
    }
}

fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> NetworkError + '_ {
    move |error| NetworkError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// Reads every record (none when the file does not exist). Callers that change the records
/// hold the lock ([`Locked`]); readers need not: the file is replaced by rename.
pub fn load() -> Result<Vec<NetworkRecord>, NetworkError> {
    let path = path();
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| NetworkError::Config(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io(&path)(e)),
    }
}

fn save(_locked: &Locked, records: &[NetworkRecord]) -> Result<(), NetworkError> {
    let path = path();
    let dir = path.parent().expect("a file in a directory");
    fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(records).expect("records serialise");
    fs::write(&tmp, bytes).map_err(io(&tmp))?;
    fs::rename(&tmp, &path).map_err(io(&path))
}

/// The network named `name`, or whose ID starts with `name` (one match only), as docker
/// resolves network references.
pub fn find(name: &str) -> Result<NetworkRecord, NetworkError> {
    lookup(&load()?, name)
        .cloned()
        .ok_or_else(|| NetworkError::NoSuchNetwork(name.to_string()))
}

fn lookup<'a>(records: &'a [NetworkRecord], name: &str) -> Option<&'a NetworkRecord> {
    if let Some(r) = records.iter().find(|r| r.name == name) {
        return Some(r);
    }
    let mut by_id = records.iter().filter(|r| r.id.starts_with(name));
    match (by_id.next(), by_id.next()) {
        (Some(r), None) if !name.is_empty() => Some(r),
        _ => None,
    }
}

/// Creates the network `request` asks for (the bridge comes with its first container).
pub fn create(request: &CreateRequest) -> Result<NetworkRecord, NetworkError> {
    let name = &request.name;
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !valid {
        return Err(NetworkError::Config(format!(
            "invalid network name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    if PREDEFINED.contains(&name.as_str()) {
        return Err(NetworkError::Config(format!(
            "{name} is a pre-defined network and cannot be created"
        )));
    }
    let locked = Locked::open(true)?.expect("created");
    let mut records = load()?;
    if records.iter().any(|r| &r.name == name) {
        return Err(NetworkError::Config(format!(
            "network with name {name} already exists"
        )));
    }
    let taken = taken_subnets(&locked, &records)?;
    let subnet = match request.subnet {
        Some(s) => match taken.iter().find(|t| t.overlaps(&s)) {
            Some(t) => {
                return Err(NetworkError::Config(format!(
                    "subnet {s} overlaps {t}, which the host or another network uses"
                )))
            }
            None => s,
        },
        None => user_subnets()
            .find(|s| !taken.iter().any(|t| t.overlaps(s)))
            .ok_or_else(|| NetworkError::Exhausted("10.89.0.0/24 to 10.255.255.0/24".into()))?,
    };
    let gateway = request.gateway.unwrap_or_else(|| subnet.first_host());
    if !subnet.contains(gateway) || !subnet.hosts().any(|h| h == gateway) {
        return Err(NetworkError::Config(format!(
            "gateway {gateway} is not a host address of subnet {subnet}"
        )));
    }
    let mut id_bytes = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut id_bytes))
        .map_err(io(std::path::Path::new("/dev/urandom")))?;
    let record = NetworkRecord {
        name: name.clone(),
        id: hex::encode(id_bytes),
        subnet,
        gateway,
        internal: request.internal,
        labels: request.labels.clone(),
        created: chrono::Utc::now().timestamp(),
    };
    records.push(record.clone());
    save(&locked, &records)?;
    Ok(record)
}

/// Subnets a new network must not overlap: the host's routes, rbuild's bridges that are up
/// (the default one among them) and the other networks' records.
fn taken_subnets(locked: &Locked, records: &[NetworkRecord]) -> Result<Vec<Subnet>, NetworkError> {
    let mut taken: Vec<Subnet> = rbuild_runtime::network::routed_ipv4_prefixes()?
        .into_iter()
        .map(|(a, len)| Subnet::new(a, len))
        .collect();
    taken.extend(locked.state.bridges.values().map(|b| b.subnet));
    taken.extend(records.iter().map(|r| r.subnet));
    Ok(taken)
}

/// The subnets `create` picks from without `--subnet`: podman's, 10.89.0.0/24 onwards (the
/// default bridge starts at 10.88.0.0/16).
fn user_subnets() -> impl Iterator<Item = Subnet> {
    (89u8..=255).flat_map(|b| (0u8..=255).map(move |c| Subnet::new(Ipv4Addr::new(10, b, c, 0), 24)))
}

/// Why a network cannot be removed now: the containers (lease owners) with an address on
/// it, `None` when it is unused.
fn users(locked: &mut Locked, record: &NetworkRecord) -> Vec<String> {
    locked.state.reclaim_stale();
    let bridge = record.bridge();
    locked
        .state
        .leases
        .iter()
        .filter(|l| l.bridge == bridge)
        .map(|l| l.names.first().cloned().unwrap_or_else(|| l.owner.clone()))
        .collect()
}

/// Removes network `name` (refused while a container is on it); returns its record.
pub fn remove(name: &str) -> Result<NetworkRecord, NetworkError> {
    if PREDEFINED.contains(&name) {
        return Err(NetworkError::Config(format!(
            "{name} is a pre-defined network and cannot be removed"
        )));
    }
    let mut locked = Locked::open(true)?.expect("created");
    let mut records = load()?;
    let record = lookup(&records, name)
        .cloned()
        .ok_or_else(|| NetworkError::NoSuchNetwork(name.to_string()))?;
    let users = users(&mut locked, &record);
    if !users.is_empty() {
        return Err(NetworkError::InUse {
            network: record.name,
            containers: users.join(", "),
        });
    }
    super::forget_bridge(&mut locked, &record.bridge())?;
    records.retain(|r| r.id != record.id);
    save(&locked, &records)?;
    locked.save()?;
    Ok(record)
}

/// Removes every user-defined network `wanted` selects that no container is on; returns
/// their names.
pub fn prune(wanted: impl Fn(&NetworkRecord) -> bool) -> Result<Vec<String>, NetworkError> {
    let mut locked = Locked::open(true)?.expect("created");
    let mut records = load()?;
    let mut removed = Vec::new();
    for record in records.clone() {
        if wanted(&record) && users(&mut locked, &record).is_empty() {
            super::forget_bridge(&mut locked, &record.bridge())?;
            records.retain(|r| r.id != record.id);
            removed.push(record.name);
        }
    }
    save(&locked, &records)?;
    locked.save()?;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_subnets_start_after_the_default_bridge() {
        let mut subnets = user_subnets();
        assert_eq!(subnets.next().unwrap().to_string(), "10.89.0.0/24");
        assert_eq!(subnets.next().unwrap().to_string(), "10.89.1.0/24");
    }

    #[test]
    fn lookup_by_name_or_unique_id_prefix() {
        let record = |name: &str, id: &str| NetworkRecord {
            name: name.into(),
            id: id.into(),
            subnet: "10.89.0.0/24".parse().unwrap(),
            gateway: Ipv4Addr::new(10, 89, 0, 1),
            internal: false,
            labels: BTreeMap::new(),
            created: 0,
        };
        let records = [record("a", "abc1"), record("b", "abd2")];
        assert_eq!(lookup(&records, "b").unwrap().id, "abd2");
        assert_eq!(lookup(&records, "abc").unwrap().name, "a");
        assert!(lookup(&records, "ab").is_none());
        assert!(lookup(&records, "").is_none());
    }
}
