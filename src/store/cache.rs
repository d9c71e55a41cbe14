//! Build cache records: a step's cache key → what the step produced.
//!
//! The build engine computes content-addressed keys (`sha256(parent key, canonical step,
//! inputs)`); a record says which layer the step made (or that it made none) and when. A
//! record whose layer blob is gone is treated as a miss by the caller.

use redb::TableDefinition;
use serde::{Deserialize, Serialize};

use super::db::db_err;
use super::{Store, StoreError};
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
    /// The record of cache key `key`, if any.
    pub fn cache_get(&self, key: &Digest) -> Result<Option<CacheRecord>, StoreError> {
        self.with_db(|db| {
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
        })
    }

    /// Records what the step with cache key `key` produced.
    pub fn cache_put(&self, key: &Digest, record: &CacheRecord) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(record).map_err(|e| StoreError::BadJson {
            what: "cache record".into(),
            error: e,
        })?;
        self.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            {
                let mut table = tx.open_table(CACHE).map_err(db_err)?;
                table.insert(key.hex(), bytes.as_slice()).map_err(db_err)?;
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
