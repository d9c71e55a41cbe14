//! The database file as the store opens it for writing: redb's own file handling, less the
//! last fdatasync of each session.
//!
//! Every command that changes the store opens the database, commits once and closes it
//! (several processes share it: a CLI, container monitors). redb (2.6, file format 2)
//! syncs five times per such session: marking the file open (recovery required), the
//! commit (two with quick repair), the allocator state written at close, and last the
//! header with the mark cleared. The last one is skipped here, four per container
//! `run -d`/`stop`/`rm` cycle: nothing is written after it in the session, everything
//! before it is already on disk, and the header it would persist differs from the one on
//! disk in that flag only. If the host crashes before the kernel writes that header back,
//! the disk still says "recovery required" and the next open repairs (rebuilds the
//! allocator state from the committed trees, which are complete): slower once, never
//! wrong. The next session's first write sets the flag again and syncs it, before writing
//! anything else, so a late write-back of the cleared flag cannot land after a change it
//! does not describe. The store's lock serialises all openers, which is what redb's own
//! `flock` of the file was for.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// redb's header: its first bytes (magic number and god byte, two commit slots) in one
/// write at offset 0; the god byte follows the 9-byte magic number.
const HEADER_LEN: usize = 320;
const GOD_BYTE: usize = 9;
/// The god byte's "recovery required" bit.
const RECOVERY_REQUIRED: u8 = 2;

/// The database file; see the module docs.
#[derive(Debug)]
pub(super) struct DbFile {
    file: File,
    session: Arc<Session>,
    /// The header as last synced (or as found), and whether anything but the header was
    /// written since the last sync, with the header written since, if any.
    state: Mutex<Written>,
}

/// Shared with the opener: it sets `closing` just before it drops the database.
#[derive(Debug, Default)]
pub(super) struct Session {
    pub closing: AtomicBool,
    /// The syncs skipped (for tests).
    #[cfg_attr(not(test), allow(dead_code))]
    pub skipped: AtomicUsize,
}

#[derive(Debug, Default)]
struct Written {
    synced_header: Vec<u8>,
    header: Option<Vec<u8>>,
    other: bool,
}

impl DbFile {
    /// Opens (creating) the file at `path`.
    pub(super) fn open(path: &Path) -> std::io::Result<(DbFile, Arc<Session>)> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut synced_header = vec![0; HEADER_LEN];
        let found = file.read_at(&mut synced_header, 0)?;
        synced_header.truncate(found);
        let session = Arc::new(Session::default());
        let db_file = DbFile {
            file,
            session: session.clone(),
            state: Mutex::new(Written {
                synced_header,
                ..Written::default()
            }),
        };
        Ok((db_file, session))
    }
}

/// Whether `new` is `old` with the recovery-required mark cleared and nothing else changed.
fn clears_recovery_mark_only(old: &[u8], new: &[u8]) -> bool {
    old.len() == new.len()
        && old.len() > GOD_BYTE
        && old[GOD_BYTE] & RECOVERY_REQUIRED != 0
        && new[GOD_BYTE] == old[GOD_BYTE] & !RECOVERY_REQUIRED
        && old[..GOD_BYTE] == new[..GOD_BYTE]
        && old[GOD_BYTE + 1..] == new[GOD_BYTE + 1..]
}

impl redb::StorageBackend for DbFile {
    fn len(&self) -> Result<u64, std::io::Error> {
        Ok(self.file.metadata()?.len())
    }

    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, std::io::Error> {
        let mut buffer = vec![0; len];
        self.file.read_exact_at(&mut buffer, offset)?;
        Ok(buffer)
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.state.lock().expect("not poisoned").other = true;
        self.file.set_len(len)
    }

    fn sync_data(&self, _eventual: bool) -> Result<(), std::io::Error> {
        let mut state = self.state.lock().expect("not poisoned");
        let skip = self.session.closing.load(Ordering::Acquire)
            && !state.other
            && state
                .header
                .as_deref()
                .is_some_and(|h| clears_recovery_mark_only(&state.synced_header, h));
        if skip {
            self.session.skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        self.file.sync_data()?;
        if let Some(header) = state.header.take() {
            state.synced_header = header;
        }
        state.other = false;
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        {
            let mut state = self.state.lock().expect("not poisoned");
            if offset == 0 && data.len() == HEADER_LEN {
                state.header = Some(data.to_vec());
            } else {
                state.other = true;
            }
        }
        self.file.write_all_at(data, offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only a header whose one change is the cleared mark counts.
    #[test]
    fn recognises_the_cleared_mark() {
        let mut old = vec![7u8; HEADER_LEN];
        old[GOD_BYTE] = 1 | RECOVERY_REQUIRED;
        let mut cleared = old.clone();
        cleared[GOD_BYTE] = 1;
        assert!(clears_recovery_mark_only(&old, &cleared));
        assert!(!clears_recovery_mark_only(&cleared, &old), "setting it");
        let mut slot = cleared.clone();
        slot[200] = 8;
        assert!(
            !clears_recovery_mark_only(&old, &slot),
            "a commit slot changed"
        );
        let mut primary = cleared.clone();
        primary[GOD_BYTE] = 0;
        assert!(
            !clears_recovery_mark_only(&old, &primary),
            "the primary slot flipped"
        );
    }

    /// A session through this file skips exactly its last sync, and the next open of the
    /// file (by redb's own backend, as any other program) finds it clean: no repair needed,
    /// the commit there.
    #[test]
    fn skips_the_closing_sync_only_and_the_file_stays_clean() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        let table: redb::TableDefinition<&str, &str> = redb::TableDefinition::new("t");
        for value in ["1", "2"] {
            let (file, session) = DbFile::open(&path).unwrap();
            let db = redb::Builder::new().create_with_backend(file).unwrap();
            let mut tx = db.begin_write().unwrap();
            tx.open_table(table).unwrap().insert("k", value).unwrap();
            tx.set_quick_repair(true);
            tx.commit().unwrap();
            assert_eq!(
                session.skipped.load(Ordering::Relaxed),
                0,
                "before the close"
            );
            session.closing.store(true, Ordering::Release);
            drop(db);
            assert_eq!(session.skipped.load(Ordering::Relaxed), 1, "at the close");
        }
        let header = std::fs::read(&path).unwrap();
        assert_eq!(header[GOD_BYTE] & RECOVERY_REQUIRED, 0, "left marked open");
        let db = redb::Builder::new()
            .set_repair_callback(|_| panic!("a repair was needed"))
            .create(&path)
            .unwrap();
        let tx = db.begin_read().unwrap();
        let t = tx.open_table(table).unwrap();
        assert_eq!(t.get("k").unwrap().unwrap().value(), "2");
    }
}
