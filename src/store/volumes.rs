//! Volumes: data that outlives containers. Each one is `<root>/volumes/<name>/_data` (what
//! containers mount) plus a row of the `volumes` table (name → JSON [`VolumeRecord`]).
//!
//! A volume appears whole or not at all: its dir is made in the session dir, then, under the
//! store lock, renamed into place and recorded in one transaction. A kill between the rename
//! and the commit leaves a dir without a record, which nothing lists and the next creation of
//! that name replaces. Removal is the reverse: under the lock, the dir is moved to the trash
//! and the record deleted; the files are deleted after.
//!
//! A volume is in use while a container (running or stopped, `--rm` ones too) holds a lease
//! naming it ([`super::Lease::volumes`]); [`Store::lease_container`] checks the volumes still
//! exist under the same lock, so a container never mounts a volume removed meanwhile.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::db::{db_err, table_rows};
use super::{io_err, Store, StoreError};

/// Volume name → JSON [`VolumeRecord`].
const VOLUMES: TableDefinition<&str, &[u8]> = TableDefinition::new("volumes");

/// The label docker puts on anonymous volumes (those `volume prune` removes without `--all`).
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

/// What the database knows about one volume (docker's `volume inspect` fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRecord {
    pub name: String,
    /// Always `local`.
    pub driver: String,
    /// RFC 3339, UTC, seconds.
    pub created: String,
    pub labels: BTreeMap<String, String>,
    /// Driver options (`volume create -o`, `--mount volume-opt=`): recorded, none applied.
    pub options: BTreeMap<String, String>,
}

impl VolumeRecord {
    /// Whether the volume was made for one container (an image's VOLUME, `-v /path`).
    pub fn is_anonymous(&self) -> bool {
        self.labels.contains_key(ANONYMOUS_LABEL)
    }
}

fn bad_json(name: &str, error: serde_json::Error) -> StoreError {
    StoreError::BadJson {
        what: format!("volume record {name}"),
        error,
    }
}

impl Store {
    /// `<root>/volumes/<name>`: the volume's dir.
    pub fn volume_dir(&self, name: &str) -> PathBuf {
        self.root.join("volumes").join(name)
    }

    /// `<root>/volumes/<name>/_data`: what containers mount (docker's Mountpoint).
    pub fn volume_data(&self, name: &str) -> PathBuf {
        self.volume_dir(name).join("_data")
    }

    /// The volume whose data dir is `path`, if it is one (how a container's recorded mounts
    /// are told apart from host binds).
    pub fn volume_of_path(&self, path: &Path) -> Option<String> {
        let rest = path.strip_prefix(self.root.join("volumes")).ok()?;
        let mut parts = rest.components();
        let name = parts.next()?.as_os_str().to_str()?.to_string();
        (parts.next()?.as_os_str() == "_data" && parts.next().is_none()).then_some(name)
    }

    /// Creates the volume `name` unless it exists (the caller checked the name). Returns its
    /// record and whether it was created now; an existing volume keeps its labels and options.
    pub fn create_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
        options: &BTreeMap<String, String>,
    ) -> Result<(VolumeRecord, bool), StoreError> {
        if let Some(existing) = self.find_volume(name)? {
            return Ok((existing, false));
        }
        let session = self.session()?;
        let staged = tempfile::Builder::new()
            .prefix("volume-")
            .tempdir_in(&session.dir)
            .map_err(io_err(&session.dir))?;
        let data = staged.path().join("_data");
        fs::create_dir(&data).map_err(io_err(&data))?;
        let record = VolumeRecord {
            name: name.to_string(),
            driver: "local".to_string(),
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            labels: labels.clone(),
            options: options.clone(),
        };
        let json = serde_json::to_vec(&record).map_err(|e| bad_json(name, e))?;
        let parent = self.root.join("volumes");
        let dir = self.volume_dir(name);
        let (record, created, leftover) = self.with_db_no_index(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            let out = {
                let mut t = tx.open_table(VOLUMES).map_err(db_err)?;
                if let Some(v) = t.get(name).map_err(db_err)? {
                    let other = serde_json::from_slice(v.value()).map_err(|e| bad_json(name, e))?;
                    return Ok((other, false, None));
                }
                // A dir without a record: a creation killed before its commit.
                let leftover = self.move_to_trash(&dir)?;
                fs::rename(staged.path(), &dir).map_err(io_err(&dir))?;
                super::sync_dir(&parent);
                crate::killpoint::reached("volume-renamed");
                t.insert(name, json.as_slice()).map_err(db_err)?;
                (record, true, leftover)
            };
            tx.commit().map_err(db_err)?;
            Ok(out)
        })?;
        if let Some(path) = leftover {
            let _ = super::session::remove_tree(&path);
        }
        Ok((record, created))
    }

    /// The record of volume `name`, or `None`.
    pub fn find_volume(&self, name: &str) -> Result<Option<VolumeRecord>, StoreError> {
        Ok(self.list_volumes()?.into_iter().find(|v| v.name == name))
    }

    /// The record of volume `name`; [`StoreError::NoSuchVolume`] when there is none.
    pub fn volume(&self, name: &str) -> Result<VolumeRecord, StoreError> {
        self.find_volume(name)?
            .ok_or_else(|| StoreError::NoSuchVolume(name.to_string()))
    }

    /// Every volume, by name.
    pub fn list_volumes(&self) -> Result<Vec<VolumeRecord>, StoreError> {
        // A read: no commit, the database file opened without writing to it.
        self.read_db(|tx| {
            table_rows(tx, VOLUMES)?
                .into_iter()
                .map(|(name, rec)| {
                    serde_json::from_slice::<VolumeRecord>(&rec).map_err(|e| bad_json(&name, e))
                })
                .collect()
        })
    }

    /// Volume name → IDs of the containers using it. Call with the store lock held (or
    /// accept an answer that may be stale by the time it is read).
    pub(crate) fn volume_users_locked(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for user in self.leased_containers() {
            for v in user.lease.volumes {
                let ids = out.entry(v).or_default();
                if !ids.contains(&user.id) {
                    ids.push(user.id.clone());
                }
            }
        }
        out
    }

    /// Volume name → IDs of the containers using it (running or stopped).
    pub fn volume_users(&self) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
        let _lock = self.lock()?;
        Ok(self.volume_users_locked())
    }

    /// Removes volume `name` (record and files) unless a container uses it
    /// ([`StoreError::VolumeInUse`]). Returns the bytes freed.
    pub fn remove_volume(&self, name: &str) -> Result<u64, StoreError> {
        let removed = self.remove_volumes_if(|v, users| {
            if v.name != name {
                return Ok(false);
            }
            match users.get(name) {
                Some(ids) if !ids.is_empty() => Err(StoreError::VolumeInUse {
                    name: name.to_string(),
                    containers: ids.clone(),
                }),
                _ => Ok(true),
            }
        })?;
        match removed.into_iter().next() {
            Some((_, freed)) => Ok(freed),
            None => Err(StoreError::NoSuchVolume(name.to_string())),
        }
    }

    /// Removes every volume no container uses for which `select` says yes (`volume prune`).
    /// Returns the names removed with the bytes each freed.
    pub fn prune_volumes(
        &self,
        select: impl Fn(&VolumeRecord) -> bool,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        self.remove_volumes_if(|v, users| {
            Ok(users.get(&v.name).is_none_or(|ids| ids.is_empty()) && select(v))
        })
    }

    /// The one place volumes are deleted: under the store lock, the volumes `select` picks
    /// (given who uses each) are moved to the trash and their records deleted in one
    /// transaction; their files are deleted once the lock is released.
    fn remove_volumes_if(
        &self,
        mut select: impl FnMut(
            &VolumeRecord,
            &BTreeMap<String, Vec<String>>,
        ) -> Result<bool, StoreError>,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let trashed = self.with_db_no_index(|db| {
            let users = self.volume_users_locked();
            let tx = db.begin_write().map_err(db_err)?;
            let mut trashed = Vec::new();
            {
                let mut t = tx.open_table(VOLUMES).map_err(db_err)?;
                let mut chosen = Vec::new();
                for row in t.iter().map_err(db_err)? {
                    let (name, rec) = row.map_err(db_err)?;
                    let record: VolumeRecord = serde_json::from_slice(rec.value())
                        .map_err(|e| bad_json(name.value(), e))?;
                    if select(&record, &users)? {
                        chosen.push(record.name);
                    }
                }
                for name in chosen {
                    let moved = self.move_to_trash(&self.volume_dir(&name))?;
                    t.remove(name.as_str()).map_err(db_err)?;
                    trashed.push((name, moved));
                }
            }
            tx.commit().map_err(db_err)?;
            Ok(trashed)
        })?;
        Ok(trashed
            .into_iter()
            .map(|(name, moved)| {
                let freed = moved
                    .map(|p| super::session::remove_tree(&p).unwrap_or(0))
                    .unwrap_or(0);
                (name, freed)
            })
            .collect())
    }
}
