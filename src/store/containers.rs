//! Container records: what `rbuild run` (without `--rm`, or with `--name`) leaves behind for
//! `ps`, `rm` and `rmi`'s in-use check.
//!
//! Each record lives in the `containers` table (container ID hex → JSON [`ContainerRecord`]);
//! the container's files live in `<root>/containers/<id hex>/` ([`Store::container_dir`]).

use std::path::PathBuf;

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::db::{db_err, ImageRecord, IMAGES};
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
    /// The kernel's OOM killer killed a process of the container during its last run
    /// (docker's `State.OOMKilled`).
    #[serde(default)]
    pub oom_killed: bool,
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
                for row in t.iter().map_err(db_err)? {
                    let (id, rec) = row.map_err(db_err)?;
                    let other: ContainerRecord = serde_json::from_slice(rec.value())
                        .map_err(|e| bad_json(id.value(), e))?;
                    if other.name == record.name {
                        return Err(StoreError::Conflict(format!(
                            "The container name \"/{}\" is already in use by container \"{}\". \
                             You have to remove (or rename) that container to be able to reuse that name.",
                            record.name, other.id
                        )));
                    }
                }
                let json = serde_json::to_vec(record).map_err(|e| bad_json(&record.id, e))?;
                t.insert(record.id.as_str(), json.as_slice())
                    .map_err(db_err)?;
            }
            tx.commit().map_err(db_err)?;
            Ok(())
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
            tx.commit().map_err(db_err)?;
            Ok(())
        })
    }

    /// All container records, newest first.
    pub fn list_containers(&self) -> Result<Vec<ContainerRecord>, StoreError> {
        self.with_db_no_index(|db| {
            let tx = db.begin_read().map_err(db_err)?;
            let t = match tx.open_table(CONTAINERS) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(db_err(e)),
            };
            let mut out = Vec::new();
            for row in t.iter().map_err(db_err)? {
                let (id, rec) = row.map_err(db_err)?;
                out.push(
                    serde_json::from_slice::<ContainerRecord>(rec.value())
                        .map_err(|e| bad_json(id.value(), e))?,
                );
            }
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
            tx.commit().map_err(db_err)?;
            Ok(())
        })
    }
}
