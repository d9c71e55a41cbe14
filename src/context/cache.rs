//! A persistent cache of file content digests, keyed by what `stat` says about the file.
//!
//! A file whose path, size, mtime, ctime, inode, device and mode are all unchanged since it was
//! hashed is not read again. Any write to a file changes its ctime (and usually its mtime), so
//! a touched file is hashed again (and gets the same digest if its content is the same).
//!
//! Timestamps have a granularity (a clock tick, or a second on some filesystems): a file
//! written twice within one tick can keep its timestamps. To stay correct, a digest is only
//! remembered when the file's mtime and ctime are older than [`RACY_WINDOW`] at the start of
//! the scan; younger files are simply hashed again next time.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{Database, ReadOnlyTable, TableDefinition};

use super::{ContextError, Digest};

/// Files changed less than this long before a scan starts are not remembered (see the module
/// documentation).
pub const RACY_WINDOW: Duration = Duration::from_secs(2);

/// How long [`MetadataCache::open`] waits for another process to close the database.
pub const OPEN_WAIT: Duration = Duration::from_secs(10);

/// Absolute path bytes → encoded [`CacheRecord`].
const DIGESTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("context_file_digests_v1");

/// Counters of what the cache did since it was opened (or since [`MetadataCache::reset_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Regular files whose digest came from the cache, without reading them.
    pub hits: u64,
    /// Regular files that were read and hashed.
    pub misses: u64,
    /// Bytes read to hash the misses.
    pub bytes_hashed: u64,
}

/// The digest cache, stored in a redb database file.
pub struct MetadataCache {
    db: Database,
    path: PathBuf,
    stats: CacheStats,
}

impl std::fmt::Debug for MetadataCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataCache")
            .field("path", &self.path)
            .field("stats", &self.stats)
            .finish()
    }
}

/// What `stat` says about a regular file, as far as its content is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStat {
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    inode: u64,
    device: u64,
    mode: u32,
}

impl FileStat {
    pub(crate) fn of(metadata: &std::fs::Metadata) -> FileStat {
        FileStat {
            size: metadata.size(),
            mtime: (metadata.mtime(), metadata.mtime_nsec()),
            ctime: (metadata.ctime(), metadata.ctime_nsec()),
            inode: metadata.ino(),
            device: metadata.dev(),
            mode: metadata.mode(),
        }
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Whether both timestamps are before `cutoff` (seconds, nanoseconds since the epoch).
    fn older_than(&self, cutoff: (i64, i64)) -> bool {
        self.mtime < cutoff && self.ctime < cutoff
    }
}

/// The version byte, the stat fields and the digest.
const RECORD_LEN: usize = 1 + 8 + 16 + 16 + 8 + 8 + 4 + 32;
const RECORD_VERSION: u8 = 1;

fn encode_record(stat: &FileStat, digest: &Digest) -> Vec<u8> {
    let mut out = Vec::with_capacity(RECORD_LEN);
    out.push(RECORD_VERSION);
    out.extend_from_slice(&stat.size.to_le_bytes());
    out.extend_from_slice(&stat.mtime.0.to_le_bytes());
    out.extend_from_slice(&stat.mtime.1.to_le_bytes());
    out.extend_from_slice(&stat.ctime.0.to_le_bytes());
    out.extend_from_slice(&stat.ctime.1.to_le_bytes());
    out.extend_from_slice(&stat.inode.to_le_bytes());
    out.extend_from_slice(&stat.device.to_le_bytes());
    out.extend_from_slice(&stat.mode.to_le_bytes());
    out.extend_from_slice(&digest.0);
    out
}

/// The digest in `record` if the record is for exactly `stat`.
fn decode_record(record: &[u8], stat: &FileStat) -> Option<Digest> {
    if record.len() != RECORD_LEN || record[0] != RECORD_VERSION {
        return None;
    }
    let expected = encode_record(stat, &Digest([0; 32]));
    if record[..RECORD_LEN - 32] != expected[..RECORD_LEN - 32] {
        return None;
    }
    let mut digest = [0; 32];
    digest.copy_from_slice(&record[RECORD_LEN - 32..]);
    Some(Digest(digest))
}

/// Looks digests up during one scan.
pub(crate) struct CacheReader {
    table: Option<ReadOnlyTable<&'static [u8], &'static [u8]>>,
    path: PathBuf,
    /// Files changed at or after this time are not remembered.
    cutoff: (i64, i64),
    /// Records to write when the scan ends.
    pending: Vec<(Vec<u8>, Vec<u8>)>,
}

impl CacheReader {
    /// The cached digest of the file at `abs_path`, if its stat is unchanged.
    pub(crate) fn lookup(
        &self,
        abs_path: &Path,
        stat: &FileStat,
    ) -> Result<Option<Digest>, ContextError> {
        let Some(table) = &self.table else {
            return Ok(None);
        };
        let record = table
            .get(abs_path.as_os_str().as_bytes())
            .map_err(|err| cache_error(&self.path, err))?;
        Ok(record.and_then(|record| decode_record(record.value(), stat)))
    }

    /// Remembers a digest computed for `stat`, unless the file changed too recently.
    pub(crate) fn remember(&mut self, abs_path: &Path, stat: &FileStat, digest: &Digest) {
        if stat.older_than(self.cutoff) {
            self.pending.push((
                abs_path.as_os_str().as_bytes().to_vec(),
                encode_record(stat, digest),
            ));
        }
    }
}

fn cache_error(path: &Path, err: impl std::fmt::Display) -> ContextError {
    ContextError::Cache {
        path: path.to_path_buf(),
        message: err.to_string(),
    }
}

impl MetadataCache {
    /// Opens the cache database at `path`, creating it if needed.
    ///
    /// redb allows one process at a time per file: while another process has it open, this
    /// waits up to [`OPEN_WAIT`] and then fails. Keep the cache open only for the scan (a
    /// caller that cannot wait can fall back to [`MetadataCache::in_memory`]).
    pub fn open(path: &Path) -> Result<MetadataCache, ContextError> {
        let deadline = std::time::Instant::now() + OPEN_WAIT;
        let db = loop {
            match Database::create(path) {
                Ok(db) => break db,
                Err(redb::DatabaseError::DatabaseAlreadyOpen)
                    if std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(err) => return Err(cache_error(path, err)),
            }
        };
        MetadataCache::with_database(db, path)
    }

    /// A cache that lives in memory only (nothing persists after it is dropped).
    pub fn in_memory() -> Result<MetadataCache, ContextError> {
        let path = Path::new("<memory>");
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|err| cache_error(path, err))?;
        MetadataCache::with_database(db, path)
    }

    fn with_database(db: Database, path: &Path) -> Result<MetadataCache, ContextError> {
        // Creating the table is a commit (fsyncs): only when it is missing.
        let exists = match db
            .begin_read()
            .map_err(|err| cache_error(path, err))?
            .open_table(DIGESTS)
        {
            Ok(_) => true,
            Err(redb::TableError::TableDoesNotExist(_)) => false,
            Err(err) => return Err(cache_error(path, err)),
        };
        if !exists {
            let txn = db.begin_write().map_err(|err| cache_error(path, err))?;
            txn.open_table(DIGESTS)
                .map_err(|err| cache_error(path, err))?;
            txn.commit().map_err(|err| cache_error(path, err))?;
        }
        Ok(MetadataCache {
            db,
            path: path.to_path_buf(),
            stats: CacheStats::default(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the cache did since it was opened or since the last reset.
    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// Sets the counters back to zero.
    pub fn reset_stats(&mut self) {
        self.stats = CacheStats::default();
    }

    pub(crate) fn record_hit(&mut self) {
        self.stats.hits += 1;
    }

    pub(crate) fn record_miss(&mut self, bytes: u64) {
        self.stats.misses += 1;
        self.stats.bytes_hashed += bytes;
    }

    /// Starts a scan that begins now.
    pub(crate) fn reader(&self) -> Result<CacheReader, ContextError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|err| cache_error(&self.path, err))?;
        let table = match txn.open_table(DIGESTS) {
            Ok(table) => Some(table),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(err) => return Err(cache_error(&self.path, err)),
        };
        let cutoff = SystemTime::now()
            .checked_sub(RACY_WINDOW)
            .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
            .map(|since| (since.as_secs() as i64, i64::from(since.subsec_nanos())))
            .unwrap_or((0, 0));
        Ok(CacheReader {
            table,
            path: self.path.clone(),
            cutoff,
            pending: Vec::new(),
        })
    }

    /// Writes what the scan learned, in one transaction.
    pub(crate) fn finish(&mut self, reader: CacheReader) -> Result<(), ContextError> {
        let CacheReader { table, pending, .. } = reader;
        drop(table);
        if pending.is_empty() {
            return Ok(());
        }
        let txn = self
            .db
            .begin_write()
            .map_err(|err| cache_error(&self.path, err))?;
        {
            let mut table = txn
                .open_table(DIGESTS)
                .map_err(|err| cache_error(&self.path, err))?;
            for (key, value) in &pending {
                table
                    .insert(key.as_slice(), value.as_slice())
                    .map_err(|err| cache_error(&self.path, err))?;
            }
        }
        txn.commit().map_err(|err| cache_error(&self.path, err))
    }
}
