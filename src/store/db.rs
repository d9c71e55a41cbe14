//! The metadata database (redb) and the lock that serialises access to it across processes.

use std::collections::BTreeMap;
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::db_file::DbFile;
use super::{io_err, ImageId, Store, StoreError};
use crate::image::digest::{chain_ids, Digest};
use crate::image::layer::LayerInfo;
use crate::image::oci::Descriptor;
use crate::image::oci::Index;
use crate::image::reference::Reference;

/// Image ID hex → JSON [`ImageRecord`].
pub(crate) const IMAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("images");
/// Full reference (`docker.io/library/busybox:latest`) → image ID hex.
pub(crate) const TAGS: TableDefinition<&str, &str> = TableDefinition::new("tags");
/// Chain ID hex → JSON snapshot record.
pub(crate) const SNAPSHOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshots");

/// Exists while a database change may not be in `index.json` yet (see [`Store::with_db`]).
pub(crate) const INDEX_DIRTY: &str = "index.json.dirty";

pub(crate) fn db_err(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Db(Box::new(e.into()))
}

/// Every row of `table` (key, JSON bytes) in key order; none when the table does not exist
/// (nothing was ever written to it). The one reader of whole tables, for the build cache,
/// volume and download records.
pub(crate) fn table_rows(
    tx: &redb::ReadTransaction,
    table: TableDefinition<&str, &[u8]>,
) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let table = match tx.open_table(table) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(db_err(e)),
    };
    let mut out = Vec::new();
    for row in table.iter().map_err(db_err)? {
        let (key, value) = row.map_err(db_err)?;
        out.push((key.value().to_string(), value.value().to_vec()));
    }
    Ok(out)
}

impl Store {
    /// Takes the store's exclusive lock (an flock on `<root>/lock`, released when the file is
    /// dropped).
    pub(crate) fn lock(&self) -> Result<fs::File, StoreError> {
        let lock_path = self.root.join("lock");
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        lock.lock().map_err(io_err(&lock_path))?;
        Ok(lock)
    }

    /// Runs `f` with the database open, holding the store's exclusive lock; rewrites
    /// `index.json` afterwards when `f` returns `Ok` and the lock is still held. This is the
    /// way for other modules to keep their own tables in the store's database.
    ///
    /// `index.json` is derived from the database and rewritten after the commit, so a kill in
    /// between would leave it stale: [`INDEX_DIRTY`] is created before `f` runs and removed
    /// once `index.json` is rewritten; while it exists, [`Store::read_db`] first repairs.
    pub(crate) fn with_db<T>(
        &self,
        f: impl FnOnce(&redb::Database) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_db_then(f, true, || {})
    }

    /// [`Store::with_db`] for tables `index.json` does not show (containers): no rewrite of
    /// `index.json`, whose cost grows with the number of tags.
    pub(crate) fn with_db_no_index<T>(
        &self,
        f: impl FnOnce(&redb::Database) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_db_then(f, false, || {})
    }

    /// [`Store::with_db_no_index`] with `locked` called as soon as the store's lock is held,
    /// before the database is opened: every reader of the database takes that lock first,
    /// so a process that `locked` lets go on (a CLI waiting for a container's start) and
    /// reads next finds the change made, without waiting here for the session's 2-5 ms
    /// (when the commit fails, the change is not made: that process then sees the record as
    /// it was).
    pub(crate) fn with_db_announced<T>(
        &self,
        f: impl FnOnce(&redb::Database) -> Result<T, StoreError>,
        locked: impl FnOnce(),
    ) -> Result<T, StoreError> {
        self.with_db_then(f, false, locked)
    }

    fn with_db_then<T>(
        &self,
        f: impl FnOnce(&redb::Database) -> Result<T, StoreError>,
        index: bool,
        locked: impl FnOnce(),
    ) -> Result<T, StoreError> {
        let lock = self.lock()?;
        locked();
        let dirty = self.root.join(INDEX_DIRTY);
        if index {
            fs::File::create(&dirty).map_err(io_err(&dirty))?;
        }
        let path = self.root.join("meta.redb");
        let (file, session) = DbFile::open(&path).map_err(io_err(&path))?;
        let db = redb::Builder::new()
            .create_with_backend(file)
            .map_err(db_err)?;
        session.open.store(true, Ordering::Release);
        crate::killpoint::reached("db-opened");
        let out = (|| {
            // Creating the tables is a commit (two fsyncs): only when one is missing.
            if !has_tables(&db)? {
                let tx = db.begin_write().map_err(db_err)?;
                tx.open_table(IMAGES).map_err(db_err)?;
                tx.open_table(TAGS).map_err(db_err)?;
                tx.open_table(SNAPSHOTS).map_err(db_err)?;
                tx.commit().map_err(db_err)?;
            }
            let out = f(&db)?;
            crate::killpoint::reached("db-changed");
            if index {
                self.write_index(&db)?;
                fs::remove_file(&dirty).map_err(io_err(&dirty))?;
            }
            Ok(out)
        })();
        // On every path, errors too: the file orders redb's close by it (see `db_file`).
        session.closing.store(true, Ordering::Release);
        drop(db);
        drop(lock); // releases the flock
        out
    }

    /// Runs `f` on one read transaction of the database, holding the store's lock: no commit,
    /// no `index.json` rewrite, and the file is opened without writing to it (see
    /// [`ReadOnlyFile`]). Before the database exists, `f` sees it freshly created.
    pub(crate) fn read_db<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let db_path = self.root.join("meta.redb");
        if !db_path.exists() || self.root.join(INDEX_DIRTY).exists() {
            return self.with_db(|db| f(&db.begin_read().map_err(db_err)?));
        }
        let lock = self.lock()?;
        let (db, closed) = match open_read_only(&db_path) {
            Some((db, closed)) => (db, Some(closed)),
            None => (redb::Database::open(&db_path).map_err(db_err)?, None),
        };
        let close = |db: redb::Database| {
            if let Some(closed) = &closed {
                closed.store(true, Ordering::Release);
            }
            drop(db);
        };
        if !has_tables(&db)? {
            close(db);
            drop(lock);
            return self.with_db(|db| f(&db.begin_read().map_err(db_err)?));
        }
        let tx = db.begin_read().map_err(db_err)?;
        let out = f(&tx);
        drop(tx);
        close(db);
        let out = out?;
        drop(lock); // releases the flock
        Ok(out)
    }

    /// Rebuilds `index.json` from the database.
    fn write_index(&self, db: &redb::Database) -> Result<(), StoreError> {
        self.write_index_in(&db.begin_read().map_err(db_err)?)
    }

    /// Rebuilds `index.json` from the database as read by `tx` (with the lock held), when it
    /// differs.
    pub(crate) fn write_index_in(&self, tx: &redb::ReadTransaction) -> Result<(), StoreError> {
        let bytes = index_bytes(tx)?;
        let path = self.root.join("index.json");
        if fs::read(&path).ok().as_deref() != Some(&bytes[..]) {
            self.write_atomic(&path, &bytes)?;
        }
        Ok(())
    }
}

/// What the database knows about one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The image ID (digest of the config blob).
    pub id: ImageId,
    /// The manifest blob.
    pub manifest: Descriptor,
    /// Size of the config blob.
    pub config_size: u64,
    /// Layers, bottom to top.
    pub layers: Vec<LayerInfo>,
    /// `created` from the config (RFC 3339), if any.
    pub created: Option<String>,
    /// When the image entered this store (seconds since the epoch).
    pub added: i64,
    /// `repository@digest` of each repository the image was pulled from or pushed to
    /// (docker's `RepoDigests`: empty for an image only built, imported or loaded), sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repo_digests: Vec<String>,
}

impl ImageRecord {
    /// Size of all layers as docker shows it (`images` SIZE, `inspect .Size`): their file
    /// content ([`LayerInfo::shown_size`]).
    pub fn size(&self) -> u64 {
        self.layers.iter().map(LayerInfo::shown_size).sum()
    }

    /// DiffIDs, bottom to top.
    pub fn diff_ids(&self) -> Vec<Digest> {
        self.layers.iter().map(|l| l.diff_id.clone()).collect()
    }

    /// Chain IDs, bottom to top (also the names of the image's snapshots).
    pub fn chain_ids(&self) -> Vec<Digest> {
        chain_ids(&self.diff_ids())
    }

    /// `created` parsed, if present and valid.
    pub fn created_time(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.created
            .as_deref()
            .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
    }
}

/// What `index.json` holds for the database as read by `tx`.
pub(crate) fn index_bytes(tx: &redb::ReadTransaction) -> Result<Vec<u8>, StoreError> {
    {
        let images = tx.open_table(IMAGES).map_err(db_err)?;
        let tags = tx.open_table(TAGS).map_err(db_err)?;
        let mut by_id: BTreeMap<String, Vec<Reference>> = BTreeMap::new();
        for row in tags.iter().map_err(db_err)? {
            let (name, id) = row.map_err(db_err)?;
            if let Ok(r) = Reference::parse(name.value()) {
                by_id.entry(id.value().to_string()).or_default().push(r);
            }
        }
        let mut records = Vec::new();
        for row in images.iter().map_err(db_err)? {
            let (id, rec) = row.map_err(db_err)?;
            let rec: ImageRecord =
                serde_json::from_slice(rec.value()).map_err(|e| StoreError::BadJson {
                    what: format!("image record {}", id.value()),
                    error: e,
                })?;
            let refs = by_id.remove(id.value()).unwrap_or_default();
            records.push((rec.manifest, refs));
        }
        let index = Index::of_tagged(records.iter().map(|(m, refs)| (m, &refs[..])));
        serde_json::to_vec(&index).map_err(|e| StoreError::BadJson {
            what: "index.json".into(),
            error: e,
        })
    }
}

/// The database file for reading only: reads go to the file; writes, resizes and syncs are
/// dropped, so the file is never changed.
///
/// redb writes even in a session that only reads: it marks the file as open (for crash
/// recovery) when it opens it and saves its allocator state when it closes it, with three
/// fdatasyncs in all, a few milliseconds that every build paid several times. Under the
/// store lock no other session changes the file meanwhile, so dropping those writes leaves
/// the file exactly as the last session closed it.
///
/// Once `closed` is set (just before the database is dropped) reads fail too: saving the
/// allocator state at close first reads the region headers it rewrites (half a MiB here,
/// about a millisecond of every read session) only for the write to be dropped. redb takes
/// that failure as it takes any storage error at close: it stops saving (and would repair
/// at the next open, if anything had been written).
#[derive(Debug)]
struct ReadOnlyFile {
    file: fs::File,
    closed: Arc<AtomicBool>,
}

impl redb::StorageBackend for ReadOnlyFile {
    fn len(&self) -> Result<u64, std::io::Error> {
        Ok(self.file.metadata()?.len())
    }

    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, std::io::Error> {
        use std::os::unix::fs::FileExt;
        if self.closed.load(Ordering::Acquire) {
            return Err(std::io::Error::other("the read session is over"));
        }
        let mut buffer = vec![0; len];
        self.file.read_exact_at(&mut buffer, offset)?;
        Ok(buffer)
    }

    fn set_len(&self, _len: u64) -> Result<(), std::io::Error> {
        Ok(())
    }

    fn sync_data(&self, _eventual: bool) -> Result<(), std::io::Error> {
        Ok(())
    }

    fn write(&self, _offset: u64, _data: &[u8]) -> Result<(), std::io::Error> {
        Ok(())
    }
}

/// Opens the database at `path` for reading only (see [`ReadOnlyFile`]); call with the store
/// lock held, and set the flag returned before dropping the database. `None` when that is
/// not possible, e.g. the file needs a repair (a process died with it open), which only a
/// normal open does (and writes).
fn open_read_only(path: &std::path::Path) -> Option<(redb::Database, Arc<AtomicBool>)> {
    let file = fs::File::open(path).ok()?;
    let closed = Arc::new(AtomicBool::new(false));
    let db = redb::Database::builder()
        .set_repair_callback(|session| session.abort())
        .create_with_backend(ReadOnlyFile {
            file,
            closed: closed.clone(),
        })
        .ok()?;
    Some((db, closed))
}

/// Whether the store's own tables exist (a read, no commit).
fn has_tables(db: &redb::Database) -> Result<bool, StoreError> {
    let tx = db.begin_read().map_err(db_err)?;
    for table in [IMAGES, SNAPSHOTS] {
        match tx.open_table(table) {
            Ok(_) => {}
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(false),
            Err(e) => return Err(db_err(e)),
        }
    }
    match tx.open_table(TAGS) {
        Ok(_) => Ok(true),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(false),
        Err(e) => Err(db_err(e)),
    }
}

/// Tags as (reference, image ID hex) pairs.
pub(crate) type TagList = Vec<(Reference, String)>;

/// Reads all image records and tags in one read transaction.
pub(crate) fn load_all(db: &redb::Database) -> Result<(Vec<ImageRecord>, TagList), StoreError> {
    load_all_in(&db.begin_read().map_err(db_err)?)
}

/// [`load_all`] in an open read transaction.
pub(crate) fn load_all_in(
    tx: &redb::ReadTransaction,
) -> Result<(Vec<ImageRecord>, TagList), StoreError> {
    let images = tx.open_table(IMAGES).map_err(db_err)?;
    let tags = tx.open_table(TAGS).map_err(db_err)?;
    let mut recs = Vec::new();
    for row in images.iter().map_err(db_err)? {
        let (id, rec) = row.map_err(db_err)?;
        recs.push(
            serde_json::from_slice(rec.value()).map_err(|e| StoreError::BadJson {
                what: format!("image record {}", id.value()),
                error: e,
            })?,
        );
    }
    let mut out_tags = Vec::new();
    for row in tags.iter().map_err(db_err)? {
        let (name, id) = row.map_err(db_err)?;
        if let Ok(r) = Reference::parse(name.value()) {
            out_tags.push((r, id.value().to_string()));
        }
    }
    Ok((recs, out_tags))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_tag(store: &Store, name: &str, id: &str) {
        store
            .with_db(|db| {
                let tx = db.begin_write().map_err(db_err)?;
                tx.open_table(TAGS)
                    .map_err(db_err)?
                    .insert(name, id)
                    .map_err(db_err)?;
                tx.commit().map_err(db_err)
            })
            .unwrap();
    }

    fn get_tag(store: &Store, name: &str) -> Option<String> {
        store
            .read_db(|tx| {
                let tags = tx.open_table(TAGS).map_err(db_err)?;
                Ok(tags
                    .get(name)
                    .map_err(db_err)?
                    .map(|v| v.value().to_string()))
            })
            .unwrap()
    }

    /// A read leaves the database file exactly as it was (no header or allocator writes).
    #[test]
    fn reads_do_not_change_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        put_tag(&store, "a", "1");
        let path = dir.path().join("meta.redb");
        let before = fs::read(&path).unwrap();
        for _ in 0..3 {
            assert_eq!(get_tag(&store, "a").as_deref(), Some("1"));
        }
        assert!(fs::read(&path).unwrap() == before, "the file changed");
        put_tag(&store, "b", "2");
        assert_eq!(get_tag(&store, "b").as_deref(), Some("2"));
    }

    /// A file left by a process that died with the database open (copied while open) needs
    /// a repair: reads fall back to a normal open, which repairs it, and see the commits.
    #[test]
    fn reads_repair_a_file_left_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        put_tag(&store, "a", "1");
        let crashed = tempfile::tempdir().unwrap();
        let copy = Store::open(crashed.path()).unwrap();
        {
            let db = redb::Database::create(dir.path().join("meta.redb")).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(TAGS).unwrap().insert("b", "2").unwrap();
            tx.commit().unwrap();
            // The file as a SIGKILL now would leave it.
            fs::copy(
                dir.path().join("meta.redb"),
                crashed.path().join("meta.redb"),
            )
            .unwrap();
        }
        assert!(open_read_only(&crashed.path().join("meta.redb")).is_none());
        assert_eq!(get_tag(&copy, "a").as_deref(), Some("1"));
        assert_eq!(get_tag(&copy, "b").as_deref(), Some("2"));
        assert!(
            open_read_only(&crashed.path().join("meta.redb")).is_some(),
            "repaired"
        );
    }
}
