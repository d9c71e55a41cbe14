//! The database file as the store opens it for writing: redb's own file handling, with two
//! of the five fdatasyncs of each session dropped.
//!
//! Every command that changes the store opens the database, commits once and closes it
//! (several processes share it: a CLI, container monitors). redb (2.6, file format 2)
//! syncs five times per such session: marking the file open ("recovery required"), the
//! commit (two for a quick-repair commit, as the containers' are), at close the allocator
//! state written into the region headers, and last the header with the mark cleared. A
//! container's `run -d`/`stop`/`rm` cycle has four sessions. Here a session syncs three
//! times, twelve a cycle:
//!
//! - **The mark rides on the commit's first sync.** A sync whose only write since the last
//!   one is a header that sets the mark (and changes nothing else) is put off: that header
//!   is on the disk by the commit's first sync at the latest. Until then the disk may hold
//!   the old header (no mark) with any part of the session's other writes, and that is a
//!   valid database: until a commit is durable redb writes only pages the last durable
//!   commit does not use (its own crash recovery needs that too), and every header it
//!   writes meanwhile carries the mark. What a clean open trusts besides the header, the
//!   allocator state in the region headers, redb writes only when it closes the file, and
//!   a clean header describing a shorter file would be trusted too: so a close (also of a
//!   session that never committed, or whose open failed) and a resize first sync the
//!   put-off mark, restoring redb's order. A process killed (not the host) leaves all its
//!   writes in the page cache, the mark among them: the next open repairs, as before.
//! - **The cleared mark is not synced** (nothing is written after it in the session,
//!   everything before it is already on disk, and the header it would persist differs from
//!   the one on disk in that flag only). If the host crashes before the kernel writes that
//!   header back, the disk still says "recovery required" and the next open repairs (loads
//!   the allocator state the last quick-repair commit saved, which redb's close makes sure
//!   of): slower once, never wrong. The next session's first write sets the flag again
//!   before writing anything else that could be put on the disk ahead of it.
//!
//! Leaving the file marked open after every session (redb's close writes dropped) would
//! save a fourth sync, but every later open, reads included, then loads the allocator state
//! from its table: 5 ms more for each `ps` here, more than the sync saved.
//! [`Session::skipped`] and [`Session::synced`] count. The store's lock serialises all
//! openers, which is what redb's own `flock` of the file was for.

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
    /// What was written since the last sync, and what is on the disk.
    state: Mutex<Written>,
}

/// Shared with the opener: it sets `open` once redb opened the file (a failed open drops
/// the database at once) and `closing` just before it drops the database.
#[derive(Debug, Default)]
pub(super) struct Session {
    pub open: AtomicBool,
    pub closing: AtomicBool,
    /// The syncs skipped (for tests).
    #[cfg_attr(not(test), allow(dead_code))]
    pub skipped: AtomicUsize,
    /// The syncs made (for tests).
    #[cfg_attr(not(test), allow(dead_code))]
    pub synced: AtomicUsize,
    /// Every write and sync that reached the file, in order (tests replay them to build
    /// what a crash could leave on the disk).
    #[cfg(test)]
    pub journal: Mutex<Vec<Event>>,
}

/// One operation on the file (see [`Session::journal`]).
#[derive(Debug, Clone)]
#[cfg_attr(not(test), allow(dead_code))]
pub(super) enum Event {
    Write(u64, Vec<u8>),
    SetLen(u64),
    Sync,
}

#[derive(Debug, Default)]
struct Written {
    /// The header as last synced (or as found): what the disk surely holds.
    synced_header: Vec<u8>,
    /// The header written since the last sync, if any.
    header: Option<Vec<u8>>,
    /// Whether anything but the header was written (or the file resized) since.
    other: bool,
    /// A sync of a marked header was put off (see the module docs).
    mark_put_off: bool,
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

    fn closing(&self) -> bool {
        self.session.closing.load(Ordering::Acquire)
    }

    fn skip(&self) {
        self.session.skipped.fetch_add(1, Ordering::Relaxed);
    }

    /// Records `event` in the journal (tests only: the closure is never called otherwise).
    #[cfg_attr(not(test), allow(unused_variables))]
    fn log(&self, event: impl FnOnce() -> Event) {
        #[cfg(test)]
        self.session
            .journal
            .lock()
            .expect("not poisoned")
            .push(event());
    }

    /// Syncs the file: what was written is now on the disk.
    fn sync(&self, state: &mut Written) -> std::io::Result<()> {
        self.file.sync_data()?;
        self.session.synced.fetch_add(1, Ordering::Relaxed);
        self.log(|| Event::Sync);
        if let Some(header) = state.header.take() {
            state.synced_header = header;
        }
        state.other = false;
        state.mark_put_off = false;
        Ok(())
    }

    /// Before a write or resize outside the session's transactions (its open, its close):
    /// a mark that was put off goes to the disk first (see the module docs).
    fn mark_first(&self, state: &mut Written) -> std::io::Result<()> {
        if state.mark_put_off && (self.closing() || !self.session.open.load(Ordering::Acquire)) {
            self.sync(state)?;
        }
        Ok(())
    }
}

/// Whether `header` has the recovery-required mark.
fn marked(header: &[u8]) -> bool {
    header.len() > GOD_BYTE && header[GOD_BYTE] & RECOVERY_REQUIRED != 0
}

/// Whether `new` is `old` with the recovery-required mark set (or kept) and nothing else
/// changed: a header that only marks the file open.
fn sets_recovery_mark_only(old: &[u8], new: &[u8]) -> bool {
    old.len() == new.len()
        && marked(new)
        && new[GOD_BYTE] == old[GOD_BYTE] | RECOVERY_REQUIRED
        && old[..GOD_BYTE] == new[..GOD_BYTE]
        && old[GOD_BYTE + 1..] == new[GOD_BYTE + 1..]
}

/// Whether `new` is `old` with the recovery-required mark cleared and nothing else changed.
fn clears_recovery_mark_only(old: &[u8], new: &[u8]) -> bool {
    old.len() == new.len()
        && marked(old)
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
        let mut state = self.state.lock().expect("not poisoned");
        self.mark_first(&mut state)?;
        // redb opens a file whose length its header does not describe trusting the
        // allocator state of a clean header: the mark goes first.
        if state.mark_put_off {
            self.sync(&mut state)?;
        }
        state.other = true;
        self.log(|| Event::SetLen(len));
        self.file.set_len(len)
    }

    fn sync_data(&self, _eventual: bool) -> Result<(), std::io::Error> {
        let mut state = self.state.lock().expect("not poisoned");
        let header = state.header.as_deref();
        // Only the mark set since: it rides on the next sync.
        let skip = (!self.closing()
                && !state.other
                && header.is_some_and(|h| sets_recovery_mark_only(&state.synced_header, h)))
            // The close: the cleared mark.
            || (self.closing()
                && !state.other
                && header.is_some_and(|h| clears_recovery_mark_only(&state.synced_header, h)));
        if skip {
            // The disk's header without the mark: the put-off one must reach it first.
            if !self.closing() && !marked(&state.synced_header) {
                state.mark_put_off = true;
            }
            self.skip();
            return Ok(());
        }
        self.sync(&mut state)
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        {
            let mut state = self.state.lock().expect("not poisoned");
            self.mark_first(&mut state)?;
            if offset == 0 && data.len() == HEADER_LEN {
                state.header = Some(data.to_vec());
            } else {
                state.other = true;
            }
        }
        self.log(|| Event::Write(offset, data.to_vec()));
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

    const TABLE: redb::TableDefinition<&str, &str> = redb::TableDefinition::new("t");

    /// How a test session commits.
    #[derive(Clone, Copy, PartialEq)]
    enum Commit {
        /// As the containers' records: quick repair.
        Quick,
        /// redb's default (one phase, durable).
        Plain,
        /// `Durability::None`, made durable by the close (as the build cache's records).
        Later,
        /// None: the session only reads.
        No,
    }

    /// One session as `Store::with_db_then` runs it, writing `value` under `k`.
    fn session(path: &Path, value: &str, commit: Commit) -> Arc<Session> {
        let (file, session) = DbFile::open(path).unwrap();
        let db = redb::Builder::new().create_with_backend(file).unwrap();
        session.open.store(true, Ordering::Release);
        if commit == Commit::No {
            let tx = db.begin_read().unwrap();
            let _ = tx.open_table(TABLE);
        } else {
            let mut tx = db.begin_write().unwrap();
            tx.open_table(TABLE).unwrap().insert("k", value).unwrap();
            match commit {
                Commit::Quick => tx.set_quick_repair(true),
                Commit::Later => tx.set_durability(redb::Durability::None),
                _ => {}
            }
            tx.commit().unwrap();
        }
        session.closing.store(true, Ordering::Release);
        drop(db);
        session
    }

    /// The value under `k` as redb's own file handling finds it (as any other program
    /// would), failing when it needs a full repair unless `repair` allows one. A file
    /// opened without a full repair (whose allocator state redb trusted) must pass redb's
    /// integrity check: the allocator state matches the trees.
    fn value(path: &Path, repair: bool) -> Option<String> {
        let repaired = Arc::new(AtomicBool::new(false));
        let seen = repaired.clone();
        let mut db = redb::Builder::new()
            .set_repair_callback(move |_| {
                assert!(repair, "a full repair was needed");
                seen.store(true, Ordering::Relaxed);
            })
            .create(path)
            .unwrap();
        if !repaired.load(Ordering::Relaxed) {
            assert!(db.check_integrity().unwrap(), "not intact");
        }
        let tx = db.begin_read().unwrap();
        let t = match tx.open_table(TABLE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return None,
            Err(e) => panic!("{e}"),
        };
        t.get("k").unwrap().map(|v| v.value().to_string())
    }

    /// The session's syncs and skips, less the sync a resize adds (the mark it syncs first:
    /// this test file's small commits grow and shrink it; the store's database, steady,
    /// is not resized by a container's change).
    fn syncs(session: &Session) -> (usize, usize) {
        let resized = session
            .journal
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::SetLen(_)));
        (
            session.synced.load(Ordering::Relaxed) - usize::from(resized),
            session.skipped.load(Ordering::Relaxed),
        )
    }

    /// A quick-repair session (a container record's change) syncs three times: its
    /// commit's two (the mark rides on the first) and the allocator state at close; the
    /// file is left clean (was four: redb's five, less the cleared mark).
    #[test]
    fn a_quick_repair_session_syncs_three_times() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        session(&path, "0", Commit::Plain); // creates the file
        for value in ["1", "2", "3"] {
            let s = session(&path, value, Commit::Quick);
            assert_eq!(syncs(&s), (3, 2), "syncs and skips writing {value}");
        }
        assert!(!marked(&std::fs::read(&path).unwrap()), "left marked open");
        assert_eq!(value(&path, false).as_deref(), Some("3"));
    }

    /// Other commits are made durable as redb makes them, the close's own quick-repair
    /// commit (redb's `Database::drop`, when the last commit saved no allocator state)
    /// included: the value is there after the close, with no full repair to open.
    #[test]
    fn plain_and_non_durable_commits_are_durable_after_the_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        session(&path, "0", Commit::Quick);
        let s = session(&path, "1", Commit::Plain);
        assert_eq!(
            syncs(&s).0,
            4,
            "the commit, redb's quick-repair commit, the close"
        );
        assert_eq!(value(&path, false).as_deref(), Some("1"));
        let s = session(&path, "2", Commit::Later);
        assert_eq!(
            syncs(&s).0,
            3,
            "redb's quick-repair commit at close, the close"
        );
        assert_eq!(value(&path, false).as_deref(), Some("2"));
        let s = session(&path, "", Commit::No);
        assert_eq!(
            syncs(&s).0,
            2,
            "a session that only read: the mark, the close"
        );
        assert_eq!(value(&path, false).as_deref(), Some("2"));
    }

    /// What a host crash could leave of a session: the file as of one of its syncs plus any
    /// of the writes made after it (the kernel writes pages back in any order). Each such
    /// file opens (redb repairs when its header says so), is intact, and holds the old
    /// value or the new one, the new one once the commit's last sync was made. Sessions of
    /// each kind, on a file left clean by redb and on one left marked open here.
    #[test]
    fn every_crash_state_of_a_session_opens_intact() {
        for (base_clean, commit) in [
            (true, Commit::Quick),
            (false, Commit::Quick),
            (true, Commit::Plain),
            (false, Commit::Later),
            (true, Commit::No),
            (false, Commit::No),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("db.redb");
            session(&path, "old", Commit::Quick);
            if base_clean {
                assert_eq!(value(&path, false).as_deref(), Some("old"));
                assert!(!marked(&std::fs::read(&path).unwrap()));
            }
            let base = std::fs::read(&path).unwrap();
            let s = session(&path, "new", commit);
            let journal = s.journal.lock().unwrap().clone();
            let after = if commit == Commit::No { "old" } else { "new" };
            // Split at the syncs: the disk holds every segment before a sync in full.
            let mut segments: Vec<Vec<Event>> = vec![Vec::new()];
            for event in journal {
                match event {
                    Event::Sync => segments.push(Vec::new()),
                    other => segments.last_mut().unwrap().push(other),
                }
            }
            let last_sync = segments.len() - 1;
            let mut durable = base.clone();
            let mut states = 0;
            for (n, segment) in segments.iter().enumerate() {
                for subset in subsets(segment.len()) {
                    let mut disk = durable.clone();
                    for (i, event) in segment.iter().enumerate() {
                        // Resizes are taken as done: redb's own order leaves a header
                        // describing a longer file unsynced next to one as well.
                        if subset.contains(&i) || matches!(event, Event::SetLen(_)) {
                            apply(&mut disk, event);
                        }
                    }
                    let copy = dir.path().join("crash.redb");
                    std::fs::write(&copy, &disk).unwrap();
                    let label = format!("clean base {base_clean}, segment {n}, writes {subset:?}");
                    let found = value(&copy, true);
                    assert!(
                        found.as_deref() == Some("old") || found.as_deref() == Some(after),
                        "{label}: {found:?}"
                    );
                    if n == last_sync {
                        assert_eq!(found.as_deref(), Some(after), "{label}");
                    }
                    states += 1;
                }
                segment.iter().for_each(|e| apply(&mut durable, e));
            }
            assert!(states >= 2, "only {states} states");
            assert_eq!(value(&path, false).as_deref(), Some(after));
        }
    }

    /// The subsets of `0..n` a crash test tries: none, all, each one alone, all but each
    /// one.
    fn subsets(n: usize) -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(), (0..n).collect()];
        for i in 0..n {
            out.push(vec![i]);
            out.push((0..n).filter(|&j| j != i).collect());
        }
        out
    }

    fn apply(disk: &mut Vec<u8>, event: &Event) {
        match event {
            Event::Write(offset, data) => {
                let end = *offset as usize + data.len();
                if disk.len() < end {
                    disk.resize(end, 0);
                }
                disk[*offset as usize..end].copy_from_slice(data);
            }
            Event::SetLen(len) => disk.resize(*len as usize, 0),
            Event::Sync => {}
        }
    }
}
