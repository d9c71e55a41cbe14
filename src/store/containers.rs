//! Container records: what `rbuild run` (without `--rm`, or with `--name`) leaves behind for
//! `ps`, `rm` and `rmi`'s in-use check.
//!
//! Each record lives in the `containers` table (container ID hex → JSON [`ContainerRecord`]);
//! the container's files live in `<root>/containers/<id hex>/` ([`Store::container_dir`]).

use std::path::PathBuf;

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::db::{db_err, table_rows, ImageRecord, IMAGES};
use super::leases::{ContainerUse, Lease};
use super::{ImageId, Store, StoreError};

/// Container ID hex → JSON [`ContainerRecord`].
const CONTAINERS: TableDefinition<&str, &[u8]> = TableDefinition::new("containers");

/// What the database knows about one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// 64 hex digits.
    pub id: String,
    /// Unique among the store's containers.
    pub name: String,
    /// The image as the user named it (`busybox`, `sha256:…`).
    pub image: String,
    /// The image's ID.
    pub image_id: ImageId,
    /// The process's argv (ENTRYPOINT and CMD combined).
    pub command: Vec<String>,
    /// Seconds since the epoch.
    pub created: i64,
    pub status: ContainerStatus,
    /// Exit code once exited (docker's mapping: 128+N for signal N).
    pub exit_code: Option<i32>,
    /// Seconds since the epoch, once exited.
    pub finished: Option<i64>,
    /// The `rbuild` process running the container (to tell a live container from one whose
    /// runner died) and the container's PID 1 as the host sees it.
    pub runner_pid: Option<u32>,
    pub pid: Option<i32>,
    /// The image's labels overlaid with `run -l/--label` (docker's container labels).
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// When the process last started (seconds since the epoch): `ps`'s `Up …`.
    #[serde(default)]
    pub started: Option<i64>,
    /// `run --restart`: what the monitor does when the process exits.
    #[serde(default)]
    pub restart: RestartPolicy,
    /// How many times the monitor restarted the process (docker's RestartCount).
    #[serde(default)]
    pub restart_count: u32,
    /// Set by `stop`/`kill` before signalling: the monitor does not restart a container
    /// the user stopped, and `unless-stopped` ones stay stopped on `start --all-restartable`.
    #[serde(default)]
    pub manually_stopped: bool,
    /// `run -d --rm`: the monitor removes the container when it exits for good.
    #[serde(default)]
    pub auto_remove: bool,
    /// `--stop-signal` or the image's STOPSIGNAL (`SIGTERM` when neither).
    #[serde(default)]
    pub stop_signal: Option<String>,
    /// `--stop-timeout` in seconds (`stop` waits this long before SIGKILL; default 10).
    #[serde(default)]
    pub stop_timeout: Option<u64>,
    /// The volumes made for this container alone (its image's VOLUMEs, `-v /path`): `rm -v`
    /// and `--rm` remove them.
    #[serde(default)]
    pub anonymous_volumes: Vec<String>,
    /// Frozen by `pause` (cleared by `unpause` and when the process ends).
    #[serde(default)]
    pub paused: bool,
    /// The health check the monitor runs (the image's HEALTHCHECK with `--health-*` over it).
    #[serde(default)]
    pub healthcheck: Option<crate::image::oci::Healthcheck>,
    /// The health check's state, while the container runs and after.
    #[serde(default)]
    pub health: Option<Health>,
    /// The kernel's OOM killer killed a process of the container during its last run
    /// (docker's `State.OOMKilled`).
    #[serde(default)]
    pub oom_killed: bool,
    /// The network the container joins at each start (`bridge`; `None`: none or host, which
    /// the spec says) and its `--dns`/`--add-host`/`--mac-address` flags.
    #[serde(default)]
    pub network: Option<String>,
    #[serde(default)]
    pub network_extras: crate::network::Extras,
    /// `-p`/`-P`: the ports to publish at each start (host port 0: any free one).
    #[serde(default)]
    pub ports: Vec<crate::network::ports::PortMapping>,
    /// The ports published by the current run (host ports chosen), empty when not running:
    /// what `port`, `ps` and `inspect` show.
    #[serde(default)]
    pub published_ports: Vec<crate::network::ports::PortMapping>,
    /// The networks `network connect` added, joined after `network` at each start.
    #[serde(default)]
    pub connected: Vec<crate::network::connect::Endpoint>,
    /// `-i`: the process's stdin stays open for clients of the attach socket
    /// ([`crate::container::attach`]), docker's `OpenStdin`.
    #[serde(default)]
    pub open_stdin: bool,
    /// `network disconnect` took the container off its own network (`network`, still its
    /// `NetworkMode`, as docker's): a start joins only the `connected` ones, the first as
    /// `eth0` with the default route.
    #[serde(default)]
    pub left_own_network: bool,
}

/// Docker's `State.Health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: HealthStatus,
    pub failing_streak: u32,
    /// The last results, oldest first.
    pub log: Vec<HealthResult>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Starting,
    Healthy,
    Unhealthy,
}

/// One run of the health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResult {
    pub start: chrono::DateTime<chrono::Utc>,
    pub end: chrono::DateTime<chrono::Utc>,
    pub exit_code: i32,
    pub output: String,
}

/// Docker's restart policies (`--restart`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "name")]
pub enum RestartPolicy {
    #[default]
    No,
    /// Restart after a non-zero exit, at most `max` times (0: no limit).
    OnFailure {
        max: u32,
    },
    Always,
    UnlessStopped,
}

/// Lifecycle state of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerStatus {
    Created,
    Running,
    Exited,
}

impl ContainerRecord {
    /// The first 12 hex digits of the ID.
    pub fn short_id(&self) -> &str {
        &self.id[..self.id.len().min(12)]
    }

    /// Whether the container is still running: recorded as running and its runner alive.
    pub fn is_running(&self) -> bool {
        self.status == ContainerStatus::Running
            && self
                .runner_pid
                .is_some_and(|p| PathBuf::from(format!("/proc/{p}")).exists())
    }
}

/// Fails with [`StoreError::Conflict`] when a container other than `id` is named `name`.
fn check_name_free(
    t: &redb::Table<'_, &str, &[u8]>,
    name: &str,
    id: &str,
) -> Result<(), StoreError> {
    for row in t.iter().map_err(db_err)? {
        let (other_id, rec) = row.map_err(db_err)?;
        let other: ContainerRecord =
            serde_json::from_slice(rec.value()).map_err(|e| bad_json(other_id.value(), e))?;
        if other.name == name && other.id != id {
            return Err(StoreError::Conflict(format!(
                "The container name \"/{name}\" is already in use by container \"{}\". \
                 You have to remove (or rename) that container to be able to reuse that name.",
                other.id
            )));
        }
    }
    Ok(())
}

/// Commits a change of the containers table as a quick-repair commit: redb then saves its
/// allocator state in the commit (two fdatasyncs) instead of in a commit of its own when the
/// database is closed (two more, after the one of a plain commit), one fdatasync less per
/// change for the same durability: the change is on disk when this returns either way.
fn commit(mut tx: redb::WriteTransaction) -> Result<(), StoreError> {
    tx.set_quick_repair(true);
    tx.commit().map_err(db_err)
}

fn bad_json(id: &str, error: serde_json::Error) -> StoreError {
    StoreError::BadJson {
        what: format!("container record {id}"),
        error,
    }
}

impl Store {
    /// `<root>/containers/<id>/`: the container's upper and work dirs.
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    /// Adds a new container record. Fails with [`StoreError::Conflict`] when the name is taken.
    pub fn add_container(&self, record: &ContainerRecord) -> Result<(), StoreError> {
        self.with_db_no_index(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            {
                let mut t = tx.open_table(CONTAINERS).map_err(db_err)?;
                check_name_free(&t, &record.name, &record.id)?;
                let json = serde_json::to_vec(record).map_err(|e| bad_json(&record.id, e))?;
                t.insert(record.id.as_str(), json.as_slice())
                    .map_err(db_err)?;
            }
            commit(tx)
        })
    }

    /// Replaces the record with the same ID (status changes); does nothing when the record
    /// is gone (removed by `rm -f` while the container ran).
    pub fn update_container(&self, record: &ContainerRecord) -> Result<(), StoreError> {
        self.with_db_no_index(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            {
                let mut t = tx.open_table(CONTAINERS).map_err(db_err)?;
                if t.get(record.id.as_str()).map_err(db_err)?.is_none() {
                    return Ok(());
                }
                let json = serde_json::to_vec(record).map_err(|e| bad_json(&record.id, e))?;
                t.insert(record.id.as_str(), json.as_slice())
                    .map_err(db_err)?;
            }
            commit(tx)
        })
    }

    /// Changes the record of container `id` with `change` in one write transaction, so
    /// concurrent writers (the monitor recording an exit, `rename`, `stop`) never undo each
    /// other's fields. Returns the new record, `None` when it is gone (removed meanwhile).
    ///
    /// A change that leaves the record as it is (the monitor clearing a `manually_stopped`
    /// that is not set, a `settle` of a record already settled) costs one read and no
    /// commit: opening the database for writing costs 4-6 fdatasyncs. It then takes effect
    /// at the read, before any later writer's change, which is what the write would have
    /// done. `change` may be called twice (on the record read, then in the transaction).
    pub fn modify_container(
        &self,
        id: &str,
        change: impl Fn(&mut ContainerRecord),
    ) -> Result<Option<ContainerRecord>, StoreError> {
        let Some(current) = self.container_record(id)? else {
            return Ok(None);
        };
        let mut changed = current.clone();
        change(&mut changed);
        if changed == current {
            return Ok(Some(current));
        }
        self.change_container(id, change)
    }

    /// As [`Store::modify_container`] without its first read: for changes that always change
    /// the record (the runner recording a start or an exit), where that read would only add
    /// a session (about 2 ms: opening the database reads its allocator state).
    pub fn change_container(
        &self,
        id: &str,
        change: impl Fn(&mut ContainerRecord),
    ) -> Result<Option<ContainerRecord>, StoreError> {
        self.change_container_announced(id, change, || {})
    }

    /// As [`Store::change_container`], with `locked` called once the store's lock is held,
    /// before the change (see [`Store::with_db_announced`]): the monitor tells its starter
    /// that the container started there, and whatever the starter's user runs next sees it
    /// recorded running.
    pub fn change_container_announced(
        &self,
        id: &str,
        change: impl Fn(&mut ContainerRecord),
        locked: impl FnOnce(),
    ) -> Result<Option<ContainerRecord>, StoreError> {
        self.with_db_announced(
            |db| {
                let tx = db.begin_write().map_err(db_err)?;
                let record = {
                    let mut t = tx.open_table(CONTAINERS).map_err(db_err)?;
                    let Some(old) = t.get(id).map_err(db_err)? else {
                        return Ok(None);
                    };
                    let mut record: ContainerRecord =
                        serde_json::from_slice(old.value()).map_err(|e| bad_json(id, e))?;
                    drop(old);
                    change(&mut record);
                    if record.name.is_empty() {
                        return Err(StoreError::Conflict("a container needs a name".into()));
                    }
                    check_name_free(&t, &record.name, id)?;
                    let json = serde_json::to_vec(&record).map_err(|e| bad_json(id, e))?;
                    t.insert(id, json.as_slice()).map_err(db_err)?;
                    record
                };
                commit(tx)?;
                Ok(Some(record))
            },
            locked,
        )
    }

    /// The record of container `id` (full ID), `None` when there is none: a read, no commit.
    fn container_record(&self, id: &str) -> Result<Option<ContainerRecord>, StoreError> {
        self.read_db(|tx| {
            let t = match tx.open_table(CONTAINERS) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(db_err(e)),
            };
            let Some(rec) = t.get(id).map_err(db_err)? else {
                return Ok(None);
            };
            let record = serde_json::from_slice(rec.value()).map_err(|e| bad_json(id, e))?;
            Ok(Some(record))
        })
    }

    /// Whether container `record` is running: recorded so, and its lease locked by the
    /// process that runs it (a runner or monitor that died, even by SIGKILL, releases the
    /// lock; a reused PID does not take it).
    pub fn container_running(&self, record: &ContainerRecord) -> bool {
        record.status == ContainerStatus::Running && self.lease_locked(&record.id)
    }

    /// All container records, newest first.
    /// A read transaction (no commit, no fdatasync): every command that names a container
    /// comes through here.
    pub fn list_containers(&self) -> Result<Vec<ContainerRecord>, StoreError> {
        self.read_db(|tx| {
            let mut out = table_rows(tx, CONTAINERS)?
                .into_iter()
                .map(|(id, rec)| {
                    serde_json::from_slice::<ContainerRecord>(&rec).map_err(|e| bad_json(&id, e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            out.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
            Ok(out)
        })
    }

    /// Finds a container by exact name, full ID or unique ID prefix (as docker does).
    pub fn resolve_container(&self, name: &str) -> Result<ContainerRecord, StoreError> {
        let all = self.list_containers()?;
        let name = name.strip_prefix('/').unwrap_or(name);
        if let Some(c) = all.iter().find(|c| c.name == name || c.id == name) {
            return Ok(c.clone());
        }
        let mut by_prefix = all
            .iter()
            .filter(|c| !name.is_empty() && c.id.starts_with(name));
        match (by_prefix.next(), by_prefix.next()) {
            (Some(c), None) => Ok(c.clone()),
            (Some(_), Some(_)) => Err(StoreError::Ambiguous(name.to_string())),
            _ => Err(StoreError::NoSuchContainer(name.to_string())),
        }
    }

    /// The containers (running or not) made from image `id`.
    pub fn containers_using(&self, id: &ImageId) -> Result<Vec<ContainerRecord>, StoreError> {
        Ok(self
            .list_containers()?
            .into_iter()
            .filter(|c| &c.image_id == id)
            .collect())
    }

    /// Every container that holds its image's layers (see [`super::leases`]), in `tx` with the
    /// store lock held: leased ones, and recorded ones of earlier versions, without a lease
    /// (their image's layers as the image record has them).
    pub(crate) fn container_uses(
        &self,
        tx: &redb::ReadTransaction,
    ) -> Result<Vec<ContainerUse>, StoreError> {
        let mut out = self.leased_containers();
        let t = match tx.open_table(CONTAINERS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(out),
            Err(e) => return Err(db_err(e)),
        };
        let images = tx.open_table(IMAGES).map_err(db_err)?;
        for row in t.iter().map_err(db_err)? {
            let (id, rec) = row.map_err(db_err)?;
            if out.iter().any(|u| u.id == id.value()) {
                continue;
            }
            let Ok(rec) = serde_json::from_slice::<ContainerRecord>(rec.value()) else {
                continue;
            };
            let image = images
                .get(rec.image_id.hex())
                .map_err(db_err)?
                .and_then(|v| serde_json::from_slice::<ImageRecord>(v.value()).ok());
            let (layers, chains) = image
                .map(|i| {
                    (
                        i.layers.iter().map(|l| l.digest.clone()).collect(),
                        i.chain_ids(),
                    )
                })
                .unwrap_or_default();
            let running = rec.is_running();
            out.push(ContainerUse {
                id: rec.id,
                lease: Lease {
                    image_id: rec.image_id,
                    layers,
                    chains,
                    recorded: true,
                    volumes: Vec::new(),
                    own_volumes: Vec::new(),
                },
                running,
            });
        }
        Ok(out)
    }

    /// Deletes the record of container `id` and its directory. The caller makes sure it is
    /// not running.
    pub fn remove_container(&self, id: &str) -> Result<(), StoreError> {
        // The dir first (one rename, then the deletion): a kill in between leaves a record
        // without a dir, which `rm` removes again, never a dir nothing would remove.
        self.trash(&self.container_dir(id))?;
        self.with_db_no_index(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            {
                let mut t = tx.open_table(CONTAINERS).map_err(db_err)?;
                t.remove(id).map_err(db_err)?;
            }
            commit(tx)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> ContainerRecord {
        serde_json::from_value(serde_json::json!({
            "id": id,
            "name": "web",
            "image": "busybox",
            "image_id": format!("sha256:{}", "0".repeat(64)),
            "command": ["true"],
            "created": 1,
            "status": ContainerStatus::Created,
        }))
        .unwrap()
    }

    /// Reading containers, and a change that changes nothing, leave the database file as
    /// it was (no commit, no fdatasync); a real change is committed and read back.
    #[test]
    fn reads_and_unchanged_modifications_do_not_write_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let id = "a".repeat(64);
        store.add_container(&record(&id)).unwrap();
        let path = dir.path().join("meta.redb");
        let before = std::fs::read(&path).unwrap();
        assert_eq!(store.list_containers().unwrap().len(), 1);
        assert_eq!(store.resolve_container("web").unwrap().id, id);
        let same = store
            .modify_container(&id, |r| r.manually_stopped = false)
            .unwrap()
            .unwrap();
        assert_eq!(same, record(&id));
        assert!(std::fs::read(&path).unwrap() == before, "the file changed");
        let changed = store
            .modify_container(&id, |r| r.manually_stopped = true)
            .unwrap()
            .unwrap();
        assert!(changed.manually_stopped);
        assert!(store.resolve_container(&id).unwrap().manually_stopped);
        assert!(std::fs::read(&path).unwrap() != before);
        assert!(store
            .modify_container(&"b".repeat(64), |r| r.paused = true)
            .unwrap()
            .is_none());
    }
}
