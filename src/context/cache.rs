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
//!
//! # Storage
//!
//! Like git's index, the cache is one flat file per context root, in the cache directory,
//! named by the sha256 of the canonical root path. A scan reads it in one go, looks files up
//! in it (binary search: entries are sorted by path) and rewrites it (temp file, rename in the
//! same directory) only when something changed. No lock is needed: concurrent scans of one
//! root each rename a complete file into place, and the last one wins. A cache needs no fsync:
//! a file that is torn, truncated or garbage fails its checksum and is ignored (every file is
//! hashed again), never trusted. The checksum is a CRC-32: it guards against torn and damaged
//! files, not against someone forging the cache (who could as well edit the context).
//!
//! The file, little-endian:
//!
//! ```text
//! magic "rbuild context index\n" (21 bytes), version u32, entry count u64,
//! per entry, sorted by path bytes, no duplicates:
//!     path length u32, path (relative to the root, UTF-8),
//!     size u64, mtime s i64, mtime ns i64, ctime s i64, ctime ns i64, inode u64, device u64,
//!     mode u32, sha256 of the content (32 bytes)
//! CRC-32 of everything above (u32)
//! ```

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest as _, Sha256};

use super::{ContextError, Digest};

/// Files changed less than this long before a scan starts are not remembered (see the module
/// documentation).
pub const RACY_WINDOW: Duration = Duration::from_secs(2);

const MAGIC: &[u8] = b"rbuild context index\n";
const VERSION: u32 = 2;
/// The CRC-32 at the end of the file.
const CHECKSUM_LEN: usize = 4;
/// The fixed part of an entry after its path: the stat fields and the digest.
const RECORD_LEN: usize = 8 + 16 + 16 + 8 + 8 + 4 + 32;

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

/// Where the index files live.
#[derive(Debug)]
enum Backing {
    /// One file per context root in this directory.
    Dir(PathBuf),
    /// Index bytes per index name, gone when the cache is dropped.
    Memory(HashMap<String, Vec<u8>>),
}

/// The digest cache: one index file per context root in a directory (or in memory).
#[derive(Debug)]
pub struct MetadataCache {
    backing: Backing,
    stats: CacheStats,
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

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.mtime.0.to_le_bytes());
        out.extend_from_slice(&self.mtime.1.to_le_bytes());
        out.extend_from_slice(&self.ctime.0.to_le_bytes());
        out.extend_from_slice(&self.ctime.1.to_le_bytes());
        out.extend_from_slice(&self.inode.to_le_bytes());
        out.extend_from_slice(&self.device.to_le_bytes());
        out.extend_from_slice(&self.mode.to_le_bytes());
    }

    /// The stat fields of a record (`RECORD_LEN` bytes).
    fn decode(record: &[u8]) -> FileStat {
        let u64_at = |at: usize| {
            let mut bytes = [0; 8];
            bytes.copy_from_slice(&record[at..at + 8]);
            u64::from_le_bytes(bytes)
        };
        let i64_at = |at: usize| u64_at(at) as i64;
        let mut mode = [0; 4];
        mode.copy_from_slice(&record[56..60]);
        FileStat {
            size: u64_at(0),
            mtime: (i64_at(8), i64_at(16)),
            ctime: (i64_at(24), i64_at(32)),
            inode: u64_at(40),
            device: u64_at(48),
            mode: u32::from_le_bytes(mode),
        }
    }
}

/// The index file of one context root, checked and ready to search. Records are decoded
/// when looked at.
#[derive(Debug, Default)]
struct Index {
    /// The whole file.
    bytes: Vec<u8>,
    /// Where each record starts (at its path length), in path order.
    records: Vec<usize>,
}

impl Index {
    /// The path of record `number`, as stored.
    fn path(&self, number: usize) -> &[u8] {
        let at = self.records[number];
        let len = u32::from_le_bytes([
            self.bytes[at],
            self.bytes[at + 1],
            self.bytes[at + 2],
            self.bytes[at + 3],
        ]) as usize;
        &self.bytes[at + 4..at + 4 + len]
    }

    /// The stat fields and digest of record `number`.
    fn record(&self, number: usize) -> (FileStat, Digest) {
        let at = self.records[number];
        let start = at + 4 + self.path(number).len();
        let record = &self.bytes[start..start + RECORD_LEN];
        let mut digest = [0; 32];
        digest.copy_from_slice(&record[RECORD_LEN - 32..]);
        (FileStat::decode(record), Digest(digest))
    }

    /// Checks an index file; `None` when it is not a complete, valid file of this version.
    fn parse(bytes: Vec<u8>) -> Option<Index> {
        let body_len = bytes.len().checked_sub(CHECKSUM_LEN)?;
        let (body, checksum) = bytes.split_at(body_len);
        if crc32(body).to_le_bytes()[..] != checksum[..] {
            return None;
        }
        let read_u32 = |at: usize| -> Option<u32> {
            Some(u32::from_le_bytes(body.get(at..at + 4)?.try_into().ok()?))
        };
        let mut at = MAGIC.len();
        if !body.starts_with(MAGIC) || read_u32(at)? != VERSION {
            return None;
        }
        at += 4;
        let count = u64::from_le_bytes(body.get(at..at + 8)?.try_into().ok()?);
        at += 8;
        // Each record takes at least RECORD_LEN + 4 bytes: a bad count cannot allocate much.
        let count = usize::try_from(count).ok()?;
        if count > body.len() / (RECORD_LEN + 4) {
            return None;
        }
        let mut records = Vec::with_capacity(count);
        let mut previous: &[u8] = &[];
        for number in 0..count {
            let len = read_u32(at)? as usize;
            let path = body.get(at + 4..at + 4 + len)?;
            if number > 0 && previous >= path {
                return None;
            }
            previous = path;
            records.push(at);
            at += 4 + len + RECORD_LEN;
        }
        if at != body.len() {
            return None;
        }
        Some(Index { bytes, records })
    }
}

/// Encodes entries sorted by path (no duplicates) as an index file.
fn encode(entries: &[(&str, FileStat, Digest)]) -> Vec<u8> {
    let size: usize = entries
        .iter()
        .map(|(path, ..)| 4 + path.len() + RECORD_LEN)
        .sum();
    let mut out = Vec::with_capacity(MAGIC.len() + 12 + size + CHECKSUM_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for (path, stat, digest) in entries {
        out.extend_from_slice(&(path.len() as u32).to_le_bytes());
        out.extend_from_slice(path.as_bytes());
        stat.encode(&mut out);
        out.extend_from_slice(&digest.0);
    }
    let checksum = crc32(&out);
    out.extend_from_slice(&checksum.to_le_bytes());
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(bytes);
    crc.sum()
}

/// Looks digests up during one scan of one context root. Shared by the walking threads.
#[derive(Debug)]
pub(crate) struct CacheReader {
    /// The index file's name.
    name: String,
    index: Index,
    /// Files changed at or after this time are not remembered.
    cutoff: (i64, i64),
}

/// A file the cache did not know, hashed during the scan.
pub(crate) struct Learned {
    /// Path relative to the context root.
    pub path: String,
    pub stat: FileStat,
    pub digest: Digest,
}

impl CacheReader {
    /// Where the records of the directory `dir` (relative to the context root; `.` for the
    /// root) start: the cursor for [`CacheReader::lookup`] of its children.
    pub(crate) fn cursor(&self, dir: &str) -> usize {
        if dir == "." {
            return 0;
        }
        let records = &self.index.records;
        let prefix = dir.as_bytes();
        // The first record after `dir` itself: `dir/…` sorts before `dir0`, after `dir.x`.
        let mut low = 0;
        let mut high = records.len();
        while low < high {
            let middle = (low + high) / 2;
            let path = self.index.path(middle);
            let before = match path.strip_prefix(prefix) {
                Some(rest) => rest.first().is_none_or(|&byte| byte < b'/'),
                None => path < prefix,
            };
            if before {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        low
    }

    /// The cached digest of the file at `path` (relative to the context root) and its record
    /// number (for [`MetadataCache::finish`]), if its stat is unchanged. The paths looked up
    /// with one `cursor` must come in increasing order (as a directory's sorted children do):
    /// the search starts at the cursor and moves it on.
    pub(crate) fn lookup(
        &self,
        cursor: &mut usize,
        path: &str,
        stat: &FileStat,
    ) -> Option<(usize, Digest)> {
        let key = path.as_bytes();
        let records = self.index.records.len();
        // Gallop from the cursor to a range that holds the key, then bisect it.
        let mut low = (*cursor).min(records);
        let mut step = 1;
        let mut high = low;
        while high < records && self.index.path(high) < key {
            low = high + 1;
            high += step;
            step *= 2;
        }
        let mut high = high.min(records);
        while low < high {
            let middle = (low + high) / 2;
            if self.index.path(middle) < key {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        *cursor = low;
        if low == records || self.index.path(low) != key {
            return None;
        }
        *cursor = low + 1;
        let (cached, digest) = self.index.record(low);
        (cached == *stat).then_some((low, digest))
    }

    /// Whether a digest computed now for a file with `stat` may be remembered (the file did
    /// not change within the racy window).
    pub(crate) fn may_remember(&self, stat: &FileStat) -> bool {
        stat.older_than(self.cutoff)
    }
}

impl MetadataCache {
    /// Opens the cache kept in directory `dir` (one index file per context root), creating
    /// the directory if needed. Several processes may use one directory at once.
    pub fn open(dir: &Path) -> Result<MetadataCache, ContextError> {
        std::fs::create_dir_all(dir).map_err(|source| ContextError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(MetadataCache {
            backing: Backing::Dir(dir.to_path_buf()),
            stats: CacheStats::default(),
        })
    }

    /// A cache that lives in memory only (nothing persists after it is dropped).
    pub fn in_memory() -> MetadataCache {
        MetadataCache {
            backing: Backing::Memory(HashMap::new()),
            stats: CacheStats::default(),
        }
    }

    /// The directory of the index files (`None` for a cache in memory).
    pub fn dir(&self) -> Option<&Path> {
        match &self.backing {
            Backing::Dir(dir) => Some(dir),
            Backing::Memory(_) => None,
        }
    }

    /// What the cache did since it was opened or since the last reset.
    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// Sets the counters back to zero.
    pub fn reset_stats(&mut self) {
        self.stats = CacheStats::default();
    }

    pub(crate) fn record_hits(&mut self, hits: u64) {
        self.stats.hits += hits;
    }

    pub(crate) fn record_miss(&mut self, bytes: u64) {
        self.stats.misses += 1;
        self.stats.bytes_hashed += bytes;
    }

    /// Starts a scan of the context at `root` (canonical) that begins now: reads its index.
    /// A missing or invalid index file is an empty index.
    pub(crate) fn reader(&self, root: &Path) -> Result<CacheReader, ContextError> {
        let cutoff = SystemTime::now()
            .checked_sub(RACY_WINDOW)
            .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
            .map(|since| (since.as_secs() as i64, i64::from(since.subsec_nanos())))
            .unwrap_or((0, 0));
        let name = hex::encode(Sha256::digest(root.as_os_str().as_bytes()));
        let bytes = match &self.backing {
            Backing::Memory(files) => files.get(&name).cloned(),
            Backing::Dir(dir) => {
                let path = dir.join(&name);
                match std::fs::read(&path) {
                    Ok(bytes) => Some(bytes),
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
                    Err(source) => return Err(ContextError::Io { path, source }),
                }
            }
        };
        let index = bytes.and_then(Index::parse).unwrap_or_default();
        Ok(CacheReader {
            name,
            index,
            cutoff,
        })
    }

    /// Ends a scan: the new index holds the records that were hits (`hit`, by record number),
    /// the files `learned`, and the old records of files the scan did not visit because
    /// `excluded` says so (another build of the same context may use other ignore rules).
    /// Records of files that are gone or changed are dropped. The file is rewritten only when
    /// that changes it.
    pub(crate) fn finish(
        &mut self,
        reader: CacheReader,
        hit: &[bool],
        learned: &[Learned],
        excluded: impl Fn(&str) -> bool,
    ) -> Result<(), ContextError> {
        let CacheReader { name, index, .. } = reader;
        let hit = |number: usize| hit.get(number).copied().unwrap_or(false);
        let keep = |number: usize| {
            let path = std::str::from_utf8(index.path(number)).ok()?;
            (hit(number) || excluded(path)).then_some(path)
        };
        // Usually every record was a hit: then nothing changed unless something was learned.
        let dropped = (0..index.records.len()).any(|number| !hit(number) && keep(number).is_none());
        if !dropped && learned.is_empty() {
            return Ok(());
        }
        // What was learned first: of two records of one path, the first is kept.
        let mut entries: Vec<(&str, FileStat, Digest)> = learned
            .iter()
            .map(|file| (file.path.as_str(), file.stat, file.digest))
            .collect();
        entries.reserve(index.records.len());
        for number in 0..index.records.len() {
            if let Some(path) = keep(number) {
                let (stat, digest) = index.record(number);
                entries.push((path, stat, digest));
            }
        }
        entries.sort_by(|a, b| a.0.cmp(b.0));
        entries.dedup_by(|later, earlier| later.0 == earlier.0);
        let bytes = encode(&entries);
        match &mut self.backing {
            Backing::Memory(files) => {
                files.insert(name, bytes);
                Ok(())
            }
            Backing::Dir(dir) => write_replace(dir, &name, &bytes),
        }
    }
}

/// Writes `dir/name` as a temp file renamed into place (no fsync: see the module docs).
fn write_replace(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), ContextError> {
    use std::io::Write;
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ContextError::Io { path, source }
    };
    // The directory may have been removed (`builder prune --all`) since the cache was opened.
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(io_error(dir))?;
    tmp.write_all(bytes).map_err(io_error(tmp.path()))?;
    let path = dir.join(name);
    tmp.persist(&path)
        .map_err(|err| io_error(&path)(err.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(n: u64) -> FileStat {
        FileStat {
            size: n,
            mtime: (n as i64, 1),
            ctime: (n as i64, 2),
            inode: n + 10,
            device: 3,
            mode: 0o100644,
        }
    }

    #[test]
    fn index_round_trips_and_rejects_damage() {
        let entries = [
            ("a", stat(1), Digest([1; 32])),
            ("a/b", stat(2), Digest([2; 32])),
            ("é", stat(3), Digest([3; 32])),
        ];
        let bytes = encode(&entries);
        let index = Index::parse(bytes.clone()).expect("valid");
        let got: Vec<(&[u8], FileStat, Digest)> = (0..index.records.len())
            .map(|n| {
                let (stat, digest) = index.record(n);
                (index.path(n), stat, digest)
            })
            .collect();
        let want: Vec<(&[u8], FileStat, Digest)> = entries
            .iter()
            .map(|(path, stat, digest)| (path.as_bytes(), *stat, *digest))
            .collect();
        assert_eq!(got, want);
        // Every truncation and every flipped byte is refused.
        for len in 0..bytes.len() {
            assert!(
                Index::parse(bytes[..len].to_vec()).is_none(),
                "truncated to {len}"
            );
        }
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x40;
            assert!(Index::parse(bad).is_none(), "byte {at} flipped");
        }
        // Duplicated or unsorted entries with a valid checksum are refused too.
        assert!(Index::parse(encode(&[entries[0], entries[0]])).is_none());
        let unsorted = encode(&[entries[1], entries[0]]);
        assert!(Index::parse(unsorted).is_none());
    }

    /// Looking a directory's children up with one cursor finds exactly the records a plain
    /// search finds, whatever sorts between them (`a.b` before `a/…` before `a0`).
    #[test]
    fn cursor_lookups_find_every_child() {
        let mut paths = [
            "a", "a.b", "a.b/x", "a/b", "a/b/c", "a/b.c", "a/b0", "a/c", "a0", "a0/a", "b", "b/a",
        ];
        paths.sort();
        let entries: Vec<(&str, FileStat, Digest)> = paths
            .iter()
            .enumerate()
            .map(|(n, path)| (*path, stat(n as u64), Digest([n as u8; 32])))
            .collect();
        let reader = CacheReader {
            name: String::new(),
            index: Index::parse(encode(&entries)).expect("valid"),
            cutoff: (0, 0),
        };
        let dirs = [".", "a", "a.b", "a/b", "a0", "b", "missing", "a/b/c"];
        for dir in dirs {
            let mut children: Vec<&str> = paths
                .iter()
                .copied()
                .filter(|p| match dir {
                    "." => !p.contains('/'),
                    _ => p
                        .strip_prefix(dir)
                        .and_then(|rest| rest.strip_prefix('/'))
                        .is_some_and(|name| !name.contains('/')),
                })
                .collect();
            // Names that are not there, looked up in between.
            let absent = format!("{}/zz", dir.trim_start_matches('.'));
            children.push(absent.trim_start_matches('/'));
            children.sort();
            let mut cursor = reader.cursor(dir);
            for child in children {
                let number = paths.iter().position(|p| *p == child);
                let found = reader.lookup(&mut cursor, child, &stat(number.unwrap_or(99) as u64));
                assert_eq!(found.map(|(n, _)| n), number, "{child} in {dir}");
                if let Some(n) = number {
                    // A changed stat is not a hit.
                    let mut cursor = reader.cursor(dir);
                    assert!(reader
                        .lookup(&mut cursor, child, &stat(n as u64 + 1))
                        .is_none());
                }
            }
        }
    }
}
