//! Build cache records: a step's cache key → what the step produced.
//!
//! The build engine computes content-addressed keys (`sha256(parent key, canonical step,
//! inputs)`); a record says which layer the step made (or that it made none) and when. A
//! record whose layer blob is gone is treated as a miss by the caller.

use std::collections::{HashMap, HashSet};

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::db::{db_err, load_all, load_all_in, table_rows, ImageRecord, TagList, SNAPSHOTS};
use super::images::{resolve_in, GC_GRACE};
use super::{Store, StoreError};
use crate::image::digest::Digest;
use crate::image::layer::LayerInfo;

/// Cache key hex → JSON [`CacheRecord`].
pub(crate) const CACHE: TableDefinition<&str, &[u8]> = TableDefinition::new("build_cache");

/// The store as a build saw it when it started: see [`Store::build_view`].
#[derive(Debug, Clone, Default)]
pub struct BuildView {
    images: Vec<ImageRecord>,
    tags: TagList,
    /// Cache key hex → record JSON.
    pub cache_records: HashMap<String, Vec<u8>>,
}

impl BuildView {
    /// Finds an image as [`Store::resolve_image`] would have when the view was read.
    pub fn resolve_image(&self, name: &str) -> Result<ImageRecord, StoreError> {
        resolve_in(&self.images, &self.tags, name).map(|(record, _)| record)
    }
}

/// What a cached build step produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// The layer, or `None` for a step that changed nothing (an empty layer in history).
    pub layer: Option<LayerInfo>,
    /// When the step ran (RFC 3339), reused for the history entry on a hit.
    pub created: String,
}

/// A finished build step, as [`Store::record_steps`] records it.
#[derive(Debug, Clone)]
pub struct StepRecord {
    pub key: Digest,
    pub record: CacheRecord,
    /// The snapshot the step made (chain ID, DiffID), when it made one.
    pub snapshot: Option<(Digest, Digest)>,
}

impl Store {
    /// The record of cache key `key`, if any. A read: it holds the store lock but neither
    /// commits to the database nor rewrites `index.json`.
    pub fn cache_get(&self, key: &Digest) -> Result<Option<CacheRecord>, StoreError> {
        self.read_db(|tx| {
            let table = match tx.open_table(CACHE) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(db_err(e)),
            };
            let Some(value) = table.get(key.hex()).map_err(db_err)? else {
                return Ok(None);
            };
            Ok(serde_json::from_slice(value.value()).ok())
        })
    }

    /// Every build cache record (key hex → record JSON) in one read transaction, for a build
    /// to look its keys up without opening the database per step.
    pub fn cache_records(&self) -> Result<HashMap<String, Vec<u8>>, StoreError> {
        self.read_db(|tx| Ok(table_rows(tx, CACHE)?.into_iter().collect()))
    }

    /// What a build reads before it starts, in one read transaction (each opening of the
    /// database costs fsyncs): the images and tags, to resolve base images, and every build
    /// cache record (as [`Store::cache_records`]).
    pub fn build_view(&self) -> Result<BuildView, StoreError> {
        self.read_db(|tx| {
            let (images, tags) = load_all_in(tx)?;
            let cache_records = table_rows(tx, CACHE)?.into_iter().collect();
            Ok(BuildView {
                images,
                tags,
                cache_records,
            })
        })
    }

    /// Records finished build steps in one transaction: each one's cache record and, when it
    /// made a new snapshot (moved into place already), that snapshot.
    pub fn record_steps(&self, steps: &[StepRecord]) -> Result<(), StoreError> {
        if steps.is_empty() {
            return Ok(());
        }
        let mut encoded = Vec::with_capacity(steps.len());
        for step in steps {
            let bytes = serde_json::to_vec(&step.record).map_err(|e| StoreError::BadJson {
                what: "cache record".into(),
                error: e,
            })?;
            encoded.push((step, bytes));
        }
        self.with_db(|db| {
            let mut tx = db.begin_write().map_err(db_err)?;
            // Closing the database (at the end of `with_db`) makes the commit durable; a crash
            // before that loses only these records (later misses) and leaves the snapshot dirs
            // unrecorded (collected by gc): not worth two more fsyncs.
            tx.set_durability(redb::Durability::None);
            {
                let mut table = tx.open_table(CACHE).map_err(db_err)?;
                let mut snaps = tx.open_table(SNAPSHOTS).map_err(db_err)?;
                for (step, bytes) in &encoded {
                    table
                        .insert(step.key.hex(), bytes.as_slice())
                        .map_err(db_err)?;
                    if let Some((chain, diff)) = &step.snapshot {
                        let rec = serde_json::json!({ "diff_id": diff.to_string() }).to_string();
                        snaps.insert(chain.hex(), rec.as_bytes()).map_err(db_err)?;
                    }
                }
            }
            tx.commit().map_err(db_err)?;
            Ok(())
        })
    }

    /// The layers build cache records name (read in `db`, for the garbage collector).
    pub(crate) fn cached_layers(&self, db: &redb::Database) -> Result<Vec<LayerInfo>, StoreError> {
        self.cached_layers_in(&db.begin_read().map_err(db_err)?)
    }

    /// [`Store::cached_layers`] in an open read transaction.
    pub(crate) fn cached_layers_in(
        &self,
        tx: &redb::ReadTransaction,
    ) -> Result<Vec<LayerInfo>, StoreError> {
        let mut out = Vec::new();
        for (_, value) in table_rows(tx, CACHE)? {
            if let Ok(CacheRecord { layer: Some(l), .. }) = serde_json::from_slice(&value) {
                out.push(l);
            }
        }
        Ok(out)
    }

    /// Every recorded snapshot: chain ID hex → the DiffID of its own layer.
    pub(crate) fn snapshot_diff_ids(
        &self,
        tx: &redb::ReadTransaction,
    ) -> Result<HashMap<String, Digest>, StoreError> {
        let table = tx.open_table(SNAPSHOTS).map_err(db_err)?;
        let mut out = HashMap::new();
        for row in table.iter().map_err(db_err)? {
            let (chain, value) = row.map_err(db_err)?;
            let diff = serde_json::from_slice::<serde_json::Value>(value.value())
                .ok()
                .and_then(|v| v.get("diff_id")?.as_str().map(str::to_string))
                .and_then(|d| Digest::parse(&d).ok());
            if let Some(d) = diff {
                out.insert(chain.value().to_string(), d);
            }
        }
        Ok(out)
    }

    /// Chain IDs (hex) of the recorded snapshots whose own layer has a DiffID in `diffs`.
    pub(crate) fn snapshots_of_diffs(
        &self,
        db: &redb::Database,
        diffs: &HashSet<String>,
    ) -> Result<Vec<String>, StoreError> {
        let tx = db.begin_read().map_err(db_err)?;
        Ok(self
            .snapshot_diff_ids(&tx)?
            .into_iter()
            .filter(|(_, diff)| diffs.contains(&diff.to_string()))
            .map(|(chain, _)| chain)
            .collect())
    }

    /// `builder prune`: drops the build cache records (with `all`, every one, and the context
    /// digest cache; otherwise those whose layer no image uses), then collects what nothing
    /// references any more (see [`Store::collect_garbage`], [`GC_GRACE`]). Returns the
    /// records dropped and the bytes of blobs freed.
    pub fn prune_build_cache(&self, all: bool) -> Result<(usize, u64), StoreError> {
        if all {
            // A build scanning meanwhile only hashes everything again.
            let _ = std::fs::remove_dir_all(self.root.join(super::CONTEXT_CACHE));
        }
        let dropped = self.with_db(|db| {
            let (images, _) = load_all(db)?;
            let used: HashSet<&Digest> = images
                .iter()
                .flat_map(|i| i.layers.iter().map(|l| &l.digest))
                .collect();
            let tx = db.begin_write().map_err(db_err)?;
            let dropped = {
                let mut table = tx.open_table(CACHE).map_err(db_err)?;
                let mut doomed = Vec::new();
                for row in table.iter().map_err(db_err)? {
                    let (key, value) = row.map_err(db_err)?;
                    let keep = !all
                        && match serde_json::from_slice::<CacheRecord>(value.value()) {
                            Ok(CacheRecord { layer: Some(l), .. }) => used.contains(&l.digest),
                            _ => false,
                        };
                    if !keep {
                        doomed.push(key.value().to_string());
                    }
                }
                for key in &doomed {
                    table.remove(key.as_str()).map_err(db_err)?;
                }
                doomed.len()
            };
            if all {
                // Downloads kept for ADD URL revalidation are build cache too.
                tx.open_table(super::downloads::DOWNLOADS)
                    .map_err(db_err)?
                    .retain(|_, _| false)
                    .map_err(db_err)?;
            }
            tx.commit().map_err(db_err)?;
            Ok(dropped)
        })?;
        let freed = self.collect_garbage(GC_GRACE)?;
        Ok((dropped, freed))
    }
}

impl Store {
    /// Every build cache record, as (key, record); records that do not parse are skipped.
    pub fn cache_list(&self) -> Result<Vec<(Digest, CacheRecord)>, StoreError> {
        self.read_db(|tx| {
            let mut out = Vec::new();
            for (key, value) in table_rows(tx, CACHE)? {
                let (Ok(key), Ok(rec)) = (
                    Digest::from_hex(&key),
                    serde_json::from_slice::<CacheRecord>(&value),
                ) else {
                    continue;
                };
                out.push((key, rec));
            }
            Ok(out)
        })
    }
}

impl Store {
    /// Records many cache records in one transaction (an imported build cache).
    pub fn cache_put_all(&self, records: &[(Digest, CacheRecord)]) -> Result<(), StoreError> {
        let mut encoded = Vec::with_capacity(records.len());
        for (key, record) in records {
            let bytes = serde_json::to_vec(record).map_err(|e| StoreError::BadJson {
                what: "cache record".into(),
                error: e,
            })?;
            encoded.push((key.hex().to_string(), bytes));
        }
        self.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            {
                let mut table = tx.open_table(CACHE).map_err(db_err)?;
                for (key, bytes) in &encoded {
                    table
                        .insert(key.as_str(), bytes.as_slice())
                        .map_err(db_err)?;
                }
            }
            tx.commit().map_err(db_err)?;
            Ok(())
        })
    }
}
