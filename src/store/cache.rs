//! Build cache records: a step's cache key → what the step produced.
//!
//! The build engine computes content-addressed keys (`sha256(parent key, canonical step,
//! inputs)`); a record says which layer the step made (or that it made none) and when. A
//! record whose layer blob is gone is treated as a miss by the caller.

use redb::TableDefinition;
use serde::{Deserialize, Serialize};

use super::db::{db_err, SNAPSHOTS};
use super::{io_err, Store, StoreError};
use crate::image::digest::Digest;
use crate::image::layer::LayerInfo;

/// Cache key hex → JSON [`CacheRecord`].
pub(crate) const CACHE: TableDefinition<&str, &[u8]> = TableDefinition::new("build_cache");

/// What a cached build step produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// The layer, or `None` for a step that changed nothing (an empty layer in history).
    pub layer: Option<LayerInfo>,
    /// When the step ran (RFC 3339), reused for the history entry on a hit.
    pub created: String,
}

impl Store {
    /// The record of cache key `key`, if any. A read: it holds the store lock but neither
    /// commits to the database nor rewrites `index.json`.
    pub fn cache_get(&self, key: &Digest) -> Result<Option<CacheRecord>, StoreError> {
        let lock_path = self.root().join("lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        lock.lock().map_err(io_err(&lock_path))?;
        let db_path = self.root().join("meta.redb");
        if !db_path.exists() {
            return Ok(None);
        }
        let db = redb::Database::open(&db_path).map_err(db_err)?;
        let tx = db.begin_read().map_err(db_err)?;
        let table = match tx.open_table(CACHE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(db_err(e)),
        };
        let Some(value) = table.get(key.hex()).map_err(db_err)? else {
            return Ok(None);
        };
        Ok(serde_json::from_slice(value.value()).ok())
    }

    /// Records a finished build step in one transaction: its cache record and, when it made
    /// a new snapshot (moved into place already), that snapshot (chain ID, DiffID).
    pub fn record_step(
        &self,
        key: &Digest,
        record: &CacheRecord,
        snapshot: Option<(&Digest, &Digest)>,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(record).map_err(|e| StoreError::BadJson {
            what: "cache record".into(),
            error: e,
        })?;
        self.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            {
                let mut table = tx.open_table(CACHE).map_err(db_err)?;
                table.insert(key.hex(), bytes.as_slice()).map_err(db_err)?;
                if let Some((chain, diff)) = snapshot {
                    let mut snaps = tx.open_table(SNAPSHOTS).map_err(db_err)?;
                    let rec = serde_json::json!({ "diff_id": diff.to_string() }).to_string();
                    snaps.insert(chain.hex(), rec.as_bytes()).map_err(db_err)?;
                }
            }
            tx.commit().map_err(db_err)?;
            Ok(())
        })
    }
}

impl Store {
    /// Every build cache record, as (key, record); records that do not parse are skipped.
    pub fn cache_list(&self) -> Result<Vec<(Digest, CacheRecord)>, StoreError> {
        use redb::ReadableTable;
        self.with_db(|db| {
            let tx = db.begin_read().map_err(db_err)?;
            let table = match tx.open_table(CACHE) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(db_err(e)),
            };
            let mut out = Vec::new();
            for entry in table.iter().map_err(db_err)? {
                let (k, v) = entry.map_err(db_err)?;
                let (Ok(key), Ok(rec)) = (
                    Digest::from_hex(k.value()),
                    serde_json::from_slice::<CacheRecord>(v.value()),
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
