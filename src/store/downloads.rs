//! Files `ADD http(s)://…` downloaded, kept for revalidation: the URL → the response's
//! validators (`ETag`, `Last-Modified`) and the content, stored as a blob. A later build asks
//! the server whether the file changed (`If-None-Match`, `If-Modified-Since`) and, on
//! `304 Not Modified`, uses the blob instead of downloading again, as BuildKit does.

use std::fs;
use std::path::Path;

use redb::TableDefinition;
use serde::{Deserialize, Serialize};

use super::db::{db_err, table_rows};
use super::{Store, StoreError};
use crate::image::digest::Digest;

/// URL → JSON [`DownloadRecord`].
pub(crate) const DOWNLOADS: TableDefinition<&str, &[u8]> = TableDefinition::new("downloads");

/// What the store remembers of a download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadRecord {
    /// The `ETag` header of the response, as sent.
    pub etag: Option<String>,
    /// The `Last-Modified` header of the response, as sent.
    pub last_modified: Option<String>,
    /// The content (a blob of the store).
    pub digest: Digest,
}

impl Store {
    /// The record of `url` whose content is still in the store, if any.
    pub fn download_record(&self, url: &str) -> Result<Option<DownloadRecord>, StoreError> {
        let record = self.read_db(|tx| {
            let table = match tx.open_table(DOWNLOADS) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(db_err(e)),
            };
            let value = table.get(url).map_err(db_err)?;
            Ok(value.and_then(|v| serde_json::from_slice::<DownloadRecord>(v.value()).ok()))
        })?;
        Ok(record.filter(|r| self.has_blob(&r.digest)))
    }

    /// Remembers the download of `url` (content in the file `path`, hashed as `record.digest`).
    pub fn record_download(
        &self,
        url: &str,
        record: &DownloadRecord,
        path: &Path,
    ) -> Result<(), StoreError> {
        let file = fs::File::open(path).map_err(super::io_err(path))?;
        self.put_blob_from_reader(file, Some(&record.digest))?;
        let bytes = serde_json::to_vec(record).map_err(|e| StoreError::BadJson {
            what: "download record".into(),
            error: e,
        })?;
        self.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            tx.open_table(DOWNLOADS)
                .map_err(db_err)?
                .insert(url, bytes.as_slice())
                .map_err(db_err)?;
            tx.commit().map_err(db_err)
        })
    }

    /// The blobs download records keep (read in `db`, for the garbage collector).
    pub(crate) fn download_blobs(&self, db: &redb::Database) -> Result<Vec<Digest>, StoreError> {
        let tx = db.begin_read().map_err(db_err)?;
        Ok(table_rows(&tx, DOWNLOADS)?
            .into_iter()
            .filter_map(|(_, value)| serde_json::from_slice::<DownloadRecord>(&value).ok())
            .map(|r| r.digest)
            .collect())
    }
}
