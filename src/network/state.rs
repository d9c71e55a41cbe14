//! The IPAM record: which rbuild bridges exist and which addresses are handed out, shared by
//! every rbuild process on the host.
//!
//! Bridges, veths and nftables rules are host-wide, so their bookkeeping is too: one JSON
//! file, `/run/rbuild/network/state.json`, read and rewritten (atomically, by rename) under
//! an flock on `lock` next to it. Not the store's database: two stores (`--root`) share the
//! host's network, and an address must never be handed out twice whichever store asks.
//! `/run` is a tmpfs on most systems, so a reboot clears the record together with the
//! kernel state it describes.
//!
//! Every lease names the process that holds it (pid and start time, so a recycled pid does
//! not count): a lease whose process is gone is stale (its rbuild was killed) and is
//! reclaimed by the next process that takes the lock.

use std::collections::BTreeMap;
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::subnet::Subnet;
use super::NetworkError;

/// Where the record lives; `RBUILD_NETWORK_STATE` moves it (tests that must not see the
/// host's).
pub(super) fn state_dir() -> PathBuf {
    std::env::var_os("RBUILD_NETWORK_STATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/rbuild/network"))
}

/// A bridge rbuild set up: its subnet and the gateway (the bridge's address), and how long
/// it stays unused ([`super::linger`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeRecord {
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    /// The linger of its latest user, in milliseconds (0, as in a record written before
    /// bridges lingered: removed when the last user leaves).
    #[serde(default)]
    pub linger_ms: u64,
    /// When its last user left (milliseconds since boot, `CLOCK_BOOTTIME`); `None` while
    /// it is used, or when nobody released it (a killed rbuild's leftover).
    #[serde(default)]
    pub idle_since: Option<u64>,
}

/// An address handed out (or, without one, a hold that keeps the bridge up).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpLease {
    /// The bridge device.
    pub bridge: String,
    pub address: Option<Ipv4Addr>,
    /// Who uses it: a container ID, `build` for a RUN step.
    pub owner: String,
    pub pid: u32,
    /// The holder's start time (`/proc/<pid>/stat` field 22).
    pub start: u64,
    /// The names the container answers to on a user network (its name, aliases, short ID),
    /// for the name responder ([`super::dns`]); empty on the default bridge.
    #[serde(default)]
    pub names: Vec<String>,
}

impl IpLease {
    pub fn alive(&self) -> bool {
        process_start(self.pid) == Some(self.start)
    }
}

/// The record as read under the lock.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    #[serde(default)]
    pub bridges: BTreeMap<String, BridgeRecord>,
    #[serde(default)]
    pub leases: Vec<IpLease>,
}

/// The record with the lock held (released on drop); [`Locked::save`] writes it back.
pub(super) struct Locked {
    _lock: fs::File,
    pub state: State,
}

fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> NetworkError + '_ {
    move |error| NetworkError::Io {
        path: path.to_path_buf(),
        error,
    }
}

impl Locked {
    /// Takes the lock and reads the record; `None` when there is no record and `create` is
    /// false (nothing to clean up).
    pub(super) fn open(create: bool) -> Result<Option<Locked>, NetworkError> {
        let dir = state_dir();
        if !create && !dir.join("state.json").exists() {
            return Ok(None);
        }
        let lock = lock_file(&dir.join("lock"), true)?.expect("waited for");
        let path = dir.join("state.json");
        let state = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(io(&path)(e)),
        };
        Ok(Some(Locked { _lock: lock, state }))
    }

    pub(super) fn save(&self) -> Result<(), NetworkError> {
        let dir = state_dir();
        let path = dir.join("state.json");
        let tmp = dir.join("state.json.tmp");
        let bytes = serde_json::to_vec_pretty(&self.state).unwrap_or_default();
        fs::write(&tmp, bytes).map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))
    }
}

/// Opens (creating it and its directory) the lock file at `path` and takes its flock:
/// waiting for it with `wait`, else `None` when another process holds it. The record's
/// lock, the reaper's ([`super::linger`]) and the nftables table's ([`super::tear_down`]).
pub(super) fn lock_file(path: &Path, wait: bool) -> Result<Option<fs::File>, NetworkError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io(path))?;
    if wait {
        file.lock().map_err(io(path))?;
        return Ok(Some(file));
    }
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(e)) => Err(io(path)(e)),
    }
}

/// Reads the record without changing it (for listings).
pub fn read() -> Result<State, NetworkError> {
    Ok(Locked::open(false)?.map(|l| l.state).unwrap_or_default())
}

impl State {
    /// Drops the leases of processes that are gone.
    pub(super) fn reclaim_stale(&mut self) {
        let (live, stale): (Vec<_>, Vec<_>) = std::mem::take(&mut self.leases)
            .into_iter()
            .partition(IpLease::alive);
        self.leases = live;
        // A killed container's published ports: its DNAT rules (its proxy died with it).
        // And a veth into a namespace that lives on: `network connect` of a running
        // container killed before it handed the lease to the container's runner.
        for lease in &stale {
            if let Some(address) = lease.address {
                let _ = super::dnat::remove(&lease.owner);
                let _ = rbuild_runtime::network::delete_link(&super::host_veth(address));
            }
        }
    }

    pub(super) fn in_use(&self, bridge: &str) -> bool {
        self.leases.iter().any(|l| l.bridge == bridge)
    }

    /// The lowest free address of `bridge`'s subnet (the gateway skipped), or `wanted` when
    /// it is a free host address of it, leased to `owner` held by this process.
    pub(super) fn allocate(
        &mut self,
        bridge: &str,
        owner: &str,
        wanted: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr, NetworkError> {
        let record = self
            .bridges
            .get(bridge)
            .cloned()
            .ok_or_else(|| NetworkError::Config(format!("bridge {bridge} is not set up")))?;
        let taken: Vec<Ipv4Addr> = self
            .leases
            .iter()
            .filter(|l| l.bridge == bridge)
            .filter_map(|l| l.address)
            .collect();
        let free = |a: &Ipv4Addr| *a != record.gateway && !taken.contains(a);
        let address = match wanted {
            Some(a) if !record.subnet.hosts().any(|h| h == a) => {
                return Err(NetworkError::AddressOutside(a))
            }
            Some(a) if !free(&a) => return Err(NetworkError::AddressInUse(a)),
            Some(a) => a,
            None => record
                .subnet
                .hosts()
                .find(free)
                .ok_or_else(|| NetworkError::Exhausted(record.subnet.to_string()))?,
        };
        self.add_lease(bridge, Some(address), owner);
        Ok(address)
    }

    pub(super) fn add_lease(&mut self, bridge: &str, address: Option<Ipv4Addr>, owner: &str) {
        let pid = std::process::id();
        self.leases.push(IpLease {
            bridge: bridge.to_string(),
            address,
            owner: owner.to_string(),
            pid,
            start: process_start(pid).unwrap_or(0),
            names: Vec::new(),
        });
    }

    /// Gives this process's lease of `address` on `bridge` to process `pid`: it is stale
    /// once that one is gone.
    pub(super) fn hand_over(&mut self, bridge: &str, address: Ipv4Addr, pid: u32) {
        let me = std::process::id();
        if let Some(lease) = self
            .leases
            .iter_mut()
            .find(|l| l.bridge == bridge && l.address == Some(address) && l.pid == me)
        {
            lease.pid = pid;
            lease.start = process_start(pid).unwrap_or(0);
        }
    }

    /// Removes this process's lease of `address` (or its hold, `None`) on `bridge`.
    pub(super) fn release(&mut self, bridge: &str, address: Option<Ipv4Addr>) {
        let pid = std::process::id();
        if let Some(i) = self
            .leases
            .iter()
            .position(|l| l.bridge == bridge && l.address == address && l.pid == pid)
        {
            self.leases.remove(i);
        }
    }
}

/// The start time of process `pid` in clock ticks since boot, `None` when it does not exist.
/// A zombie counts as gone: a killed monitor whose parent (the `run -d` that started it)
/// exited waits for init to reap it, and its lease is stale already.
fn process_start(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    if matches!(fields.next()?, "Z" | "X") {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocate_gives_a_wanted_address_only_when_free_and_in_the_subnet() {
        let mut state = State::default();
        let record = BridgeRecord {
            subnet: "10.226.9.0/24".parse().unwrap(),
            gateway: Ipv4Addr::new(10, 226, 9, 1),
            linger_ms: 0,
            idle_since: None,
        };
        state.bridges.insert("rbuild-t".into(), record);
        let first = state.allocate("rbuild-t", "a", None).unwrap();
        assert_eq!(first, Ipv4Addr::new(10, 226, 9, 2));
        let wanted = Ipv4Addr::new(10, 226, 9, 50);
        assert_eq!(
            state.allocate("rbuild-t", "b", Some(wanted)).unwrap(),
            wanted
        );
        for taken in [wanted, first, Ipv4Addr::new(10, 226, 9, 1)] {
            assert!(matches!(
                state.allocate("rbuild-t", "c", Some(taken)),
                Err(NetworkError::AddressInUse(a)) if a == taken
            ));
        }
        for outside in [Ipv4Addr::new(10, 99, 0, 5), Ipv4Addr::new(10, 226, 9, 255)] {
            assert!(matches!(
                state.allocate("rbuild-t", "c", Some(outside)),
                Err(NetworkError::AddressOutside(a)) if a == outside
            ));
        }
        assert_eq!(state.leases.len(), 2);
    }
}
