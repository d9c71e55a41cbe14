//! The database file as the store opens it for writing: redb's own file handling, with two
//! of the four fdatasyncs of each session dropped, one at each end.
//!
//! Every command that changes the store opens the database, commits once and closes it
//! (several processes share it: a CLI, container monitors). redb (2.6, file format 2)
//! syncs four times or more per such session: marking the file open ("recovery
//! required"), the commit (two for a quick-repair commit, as the containers' are), at close
//! the allocator state written into the region headers, and last the header with the mark
//! cleared. A container's `run -d`/`stop`/`rm` cycle has four sessions. Here a session
//! syncs only for its commits:
//!
//! - **The mark rides on the commit's first sync.** A sync whose only write since the last
//!   one is a header carrying the mark is put off: that header is on the disk by the
//!   commit's first sync at the latest. Until then the disk may hold the old header (no
//!   mark) with any part of the session's other writes, and that is a valid database:
//!   until a commit is durable redb writes only pages the last durable commit does not use
//!   (which its own crash recovery needs too), and every header it writes meanwhile has the
//!   mark set. What a clean open trusts besides the header, the allocator state in the
//!   region headers, redb writes only when it closes the file: a close before any commit
//!   (a session that only read, or failed) first syncs the put-off mark, restoring redb's
//!   order. A process killed (not the host) leaves all its writes in the page cache, the
//!   mark among them: the next open repairs, as before.
//! - **The file is left marked open after the last commit.** Once the disk holds a header
//!   with the mark and a two-phase commit as the primary (a quick-repair commit: the
//!   containers' commits, and the one redb's `Database::drop` makes when the last commit
//!   was not), and nothing was written since, redb's close only rewrites allocator state
//!   and then the header without the mark. These writes are dropped (and their syncs):
//!   the file stays exactly as a crash right after the commit would leave it, which redb
//!   opens by its quick repair, loading the allocator state that commit saved (no walk of
//!   the trees, no repair callback). This store makes no two-phase commit without quick
//!   repair (one would cost the next opener a full repair, never data).
//!
//! Before these, only the clearing of the mark was skipped ([`Session::skipped`] counts
//! every skip): that rule still serves the close of a session that never committed on a
//! file that was clean. The store's lock serialises all openers, which is what redb's own
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
/// The god byte's bit for the commit slot that is the primary.
const PRIMARY: u8 = 1;
/// The god byte's bit for a primary commit made in two phases (quick-repair commits are).
const TWO_PHASE_COMMIT: u8 = 4;

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
    /// The last sync completed a two-phase commit (its header made a new primary, marked
    /// open), or the file was found as one leaves it.
    committed: bool,
    /// Closing with the file left marked open: the rest of the session's writes are
    /// dropped.
    left_open: bool,
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
                committed: marked_two_phase(&synced_header),
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
        state.committed = false;
        if let Some(header) = state.header.take() {
            state.committed = marked_two_phase(&header)
                && (header[GOD_BYTE] ^ state.synced_header[GOD_BYTE]) & PRIMARY != 0;
            state.synced_header = header;
        }
        state.other = false;
        state.mark_put_off = false;
        Ok(())
    }

    /// Before a write or resize: whether to drop it (closing with the file left marked
    /// open). Outside the session's transactions (its open, its close) the write first
    /// waits for a mark that was put off to be on the disk (see the module docs).
    fn drop_at_close(&self, state: &mut Written) -> std::io::Result<bool> {
        let closing = self.closing();
        // Nothing written since a commit completed (but the mark again): what follows is
        // redb's close, unless that commit saved no allocator state (then redb commits
        // again first, and this is its first write).
        if closing
            && !state.left_open
            && state.committed
            && !state.other
            && state
                .header
                .as_deref()
                .is_none_or(|h| sets_recovery_mark_only(&state.synced_header, h))
        {
            state.left_open = true;
        }
        if state.left_open {
            return Ok(true);
        }
        if state.mark_put_off && (closing || !self.session.open.load(Ordering::Acquire)) {
            self.sync(state)?;
        }
        Ok(false)
    }
}

/// Whether `header` has the recovery-required mark.
fn marked(header: &[u8]) -> bool {
    header.len() > GOD_BYTE && header[GOD_BYTE] & RECOVERY_REQUIRED != 0
}

/// Whether `header` is marked open with a two-phase commit as its primary: redb opens it by
/// loading the allocator state that commit saved.
fn marked_two_phase(header: &[u8]) -> bool {
    marked(header) && header[GOD_BYTE] & TWO_PHASE_COMMIT != 0
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
        if self.drop_at_close(&mut state)? {
            return Ok(());
        }
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
        let skip = state.left_open
            // Only the mark set since: it rides on the next sync.
            || (!self.closing()
                && !state.other
                && header.is_some_and(|h| sets_recovery_mark_only(&state.synced_header, h)))
            // The close of a session that never committed: the cleared mark.
            || (self.closing()
                && !state.other
                && header.is_some_and(|h| clears_recovery_mark_only(&state.synced_header, h)));
        if skip {
            // The disk's header without the mark: the put-off one must reach it first.
            if !state.left_open && !self.closing() && !marked(&state.synced_header) {
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
            if self.drop_at_close(&mut state)? {
                return Ok(());
            }
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

    fn syncs(session: &Session) -> (usize, usize) {
        (
            session.synced.load(Ordering::Relaxed),
            session.skipped.load(Ordering::Relaxed),
        )
    }

    /// A quick-repair session (a container record's change) syncs twice, for its commit:
    /// the mark rides on the commit's first sync and the close writes nothing. The file is
    /// left marked open, and the next opener loads the allocator state that commit saved
    /// (no full repair). Was four syncs (redb's five, less the cleared mark).
    #[test]
    fn a_quick_repair_session_syncs_for_its_commit_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        session(&path, "0", Commit::Plain); // creates the file
        for value in ["1", "2", "3"] {
            let s = session(&path, value, Commit::Quick);
            let (synced, _) = syncs(&s);
            assert_eq!(synced, 2, "syncs of the session writing {value}");
        }
        let header = std::fs::read(&path).unwrap();
        assert!(marked_two_phase(&header), "left marked open");
        assert_eq!(value(&path, false).as_deref(), Some("3"));
        // Left clean by redb's own close, then a session here: still two.
        let s = session(&path, "4", Commit::Quick);
        assert_eq!(syncs(&s).0, 2);
        assert_eq!(value(&path, false).as_deref(), Some("4"));
    }

    /// Other commits are made durable as redb makes them, and the close's own quick-repair
    /// commit (redb's `Database::drop`, when the last commit saved no allocator state) is not
    /// dropped: the value is there after the close, with no full repair to open.
    #[test]
    fn plain_and_non_durable_commits_are_durable_after_the_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        session(&path, "0", Commit::Quick);
        let s = session(&path, "1", Commit::Plain);
        assert_eq!(
            syncs(&s).0,
            3,
            "the commit, then redb's quick-repair commit"
        );
        assert_eq!(value(&path, false).as_deref(), Some("1"));
        session(&path, "1", Commit::Quick);
        let s = session(&path, "2", Commit::Later);
        assert_eq!(syncs(&s).0, 2, "redb's quick-repair commit at close");
        let journal = s.journal.lock().unwrap();
        assert!(
            matches!(journal.last(), Some(Event::Sync)),
            "the close's commit was dropped: {:?}",
            journal.iter().rev().take(3).collect::<Vec<_>>()
        );
        drop(journal);
        assert_eq!(value(&path, false).as_deref(), Some("2"));
        session(&path, "3", Commit::Quick);
        let s = session(&path, "", Commit::No);
        assert_eq!(
            syncs(&s).0,
            0,
            "a session that only read, on a file left marked"
        );
        assert_eq!(value(&path, false).as_deref(), Some("3"));
        let s = session(&path, "", Commit::No);
        assert_eq!(
            syncs(&s).0,
            2,
            "the same on a clean file: the mark, then as redb"
        );
        assert_eq!(value(&path, false).as_deref(), Some("3"));
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
