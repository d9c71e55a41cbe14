//! Per-process scratch space: every temp file and dir a process makes in the store lives under
//! its own `<root>/tmp/s-<pid>-<random>/`, a directory the process keeps `flock`ed for its
//! whole lifetime.
//!
//! Why: a SIGKILLed rbuild leaves half-written blobs, build work dirs, half-unpacked layers
//! and half-deleted snapshots behind, and nothing else can tell whether their owner is still
//! at work. With one locked dir per process, a cleaner that gets the lock knows the owner is
//! dead (the kernel drops an flock with its last holder), so it removes the whole dir at once,
//! without a grace period ([`Store::clean_leftovers`]). Deletions go the same way: a snapshot
//! or container dir is first renamed into the session dir ([`Store::trash`]), which readers
//! see as an atomic disappearance, and only then deleted file by file.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use super::{io_err, Store, StoreError};
use crate::killpoint;

/// Session dirs are named `s-<pid>-<random>` under `<root>/tmp`.
pub(crate) const SESSION_PREFIX: &str = "s-";

/// One process's session dir, locked while the process lives.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) dir: PathBuf,
    /// Whether the dir was marked as a top directory yet (see `spread_directories`).
    pub(crate) spread: std::sync::atomic::AtomicBool,
    /// The open dir holding the flock (never read; dropped only at exit).
    _lock: fs::File,
}

/// Sessions of this process, one per store root (a process may use several stores).
fn sessions() -> &'static Mutex<HashMap<PathBuf, Arc<Session>>> {
    static SESSIONS: OnceLock<Mutex<HashMap<PathBuf, Arc<Session>>>> = OnceLock::new();
    SESSIONS.get_or_init(Default::default)
}

impl Store {
    /// This process's session dir in this store, created (and locked) on first use.
    pub(crate) fn session(&self) -> Result<Arc<Session>, StoreError> {
        let mut map = sessions().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = map.get(&self.root) {
            if s.dir.is_dir() {
                return Ok(s.clone());
            }
        }
        // Made under a name cleaners leave alone (for an hour), locked, then renamed to its
        // session name: a cleaner never sees a session dir unlocked while its owner lives.
        let tmp = self.root.join("tmp");
        let prefix = format!("new-{}-", std::process::id());
        let fresh = tempfile::Builder::new()
            .prefix(&prefix)
            .tempdir_in(&tmp)
            .map_err(io_err(&tmp))?
            .keep();
        let lock = fs::File::open(&fresh).map_err(io_err(&fresh))?;
        lock.lock().map_err(io_err(&fresh))?;
        let suffix = fresh
            .file_name()
            .map(|n| n.to_string_lossy()[prefix.len()..].to_string())
            .unwrap_or_default();
        let dir = tmp.join(format!("{SESSION_PREFIX}{}-{suffix}", std::process::id()));
        fs::rename(&fresh, &dir).map_err(io_err(&dir))?;
        let s = Arc::new(Session {
            dir,
            spread: Default::default(),
            _lock: lock,
        });
        map.insert(self.root.clone(), s.clone());
        Ok(s)
    }

    /// Moves `path` (a snapshot or container dir) into this process's session dir, so it
    /// disappears from its final name at once, then deletes it. A kill during the deletion
    /// leaves only a dead session dir, which [`Store::clean_leftovers`] removes. Returns the
    /// bytes freed; a missing `path` is no error.
    pub(crate) fn trash(&self, path: &Path) -> Result<u64, StoreError> {
        Ok(match self.move_to_trash(path)? {
            Some(moved) => remove_tree(&moved).unwrap_or(0),
            None => 0,
        })
    }

    /// The first half of [`Store::trash`]: `path` moved into the session dir (returned; the
    /// caller deletes it, e.g. once it released the store lock), or `None` when missing.
    pub(crate) fn move_to_trash(&self, path: &Path) -> Result<Option<PathBuf>, StoreError> {
        let session = self.session()?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // The session dir is this process's alone: the name is unique.
        let dest = session.dir.join(format!("trash-{n}-{name}"));
        match fs::rename(path, &dest) {
            Ok(()) => {
                killpoint::reached("trash-renamed");
                Ok(Some(dest))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(path)(e)),
        }
    }

    /// Removes what killed processes left behind, cheaply enough for every command: reads
    /// only `<root>/tmp` (the session dirs, one per living or dead process). A dead session
    /// dir (its lock free) goes with the half-written blobs, work dirs, half-unpacked layers
    /// and half-deleted snapshots in it; a [`RM_CONTAINER_MARK`] in it names a `--rm`
    /// container its process ran, whose dir goes too when its lease is free. Files of
    /// earlier versions in `tmp` (`work-*`, `blob-*`) go once older than
    /// [`super::GC_GRACE`] (their owner cannot be told). Returns the bytes freed.
    ///
    /// Why the marks: the dirs of `--rm` containers whose runner died used to be found by
    /// reading every container's lease (and legacy unpack dirs by listing every snapshot) on
    /// every command; only a process with a session can have left one, so its session says
    /// which. [`Store::clean_all_leftovers`] still looks everywhere (`system check`, prunes).
    pub fn clean_leftovers(&self) -> Result<u64, StoreError> {
        self.clean_sessions()
    }

    /// [`Store::clean_leftovers`] plus a look at every container and snapshot dir: the dirs
    /// of `--rm` containers whose runner died without a mark (rbuild versions before the
    /// marks) and the `snapshots/.unpack-*` dirs of earlier versions once older than
    /// [`super::GC_GRACE`]. For `system check` and the garbage collector, which read the
    /// whole store anyway.
    pub fn clean_all_leftovers(&self) -> Result<u64, StoreError> {
        let mut freed = self.clean_sessions()?;
        let snaps = self.root.join("snapshots");
        if let Ok(dir) = fs::read_dir(&snaps) {
            for e in dir.flatten() {
                let legacy = e.file_name().to_string_lossy().starts_with(".unpack-");
                if legacy && older_than_grace(&e.path()) {
                    freed += remove_tree(&e.path()).unwrap_or(0);
                }
            }
        }
        freed += self.clean_dead_containers(None)?;
        Ok(freed)
    }

    /// The dead session dirs and legacy files of `<root>/tmp` (see [`Store::clean_leftovers`]).
    fn clean_sessions(&self) -> Result<u64, StoreError> {
        let mut freed = 0;
        let own = sessions()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&self.root)
            .map(|s| s.dir.clone());
        let tmp = self.root.join("tmp");
        for e in fs::read_dir(&tmp).map_err(io_err(&tmp))?.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if Some(&path) == own.as_ref() {
                continue;
            }
            if name.starts_with(SESSION_PREFIX) {
                if let Some(_lock) = try_lock(&path) {
                    // The containers first: a kill in between leaves the session and its
                    // marks for the next command.
                    let (removed, done) = self.clean_marked_containers(&path)?;
                    freed += removed;
                    if done {
                        freed += remove_tree(&path).unwrap_or(0);
                    }
                }
            } else if older_than_grace(&path) {
                freed += remove_tree(&path).unwrap_or(0);
            }
        }
        Ok(freed)
    }

    /// Removes the `--rm` containers the dead session `dir` marks (when their lease is free
    /// and they have no record). Returns the bytes freed and whether the session may go: not
    /// while a marked lease is still locked (a child of the dead process holding it a moment
    /// longer), so that its mark stays for the next command.
    fn clean_marked_containers(&self, dir: &Path) -> Result<(u64, bool), StoreError> {
        let ids: Vec<String> = fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        name.strip_prefix(RM_CONTAINER_MARK).map(str::to_string)
                    })
                    .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit()))
                    .filter(|id| self.container_dir(id).is_dir())
                    .collect()
            })
            .unwrap_or_default();
        if ids.is_empty() {
            return Ok((0, true));
        }
        let freed = self.clean_dead_containers(Some(&ids))?;
        let held = ids.iter().any(|id| self.lease_locked(id));
        Ok((freed, !held))
    }
}

/// A file `<session dir>/rm-container-<id>`: this process runs the `--rm` container `id`
/// (no record; its dir is this process's to remove). Made before the container dir appears,
/// so a killed runner's session always names what it leaves (see [`Store::clean_leftovers`]).
pub(crate) const RM_CONTAINER_MARK: &str = "rm-container-";

/// Removes this process's session dirs (at the end of a command: what is left in them is
/// garbage by then).
pub fn end_sessions() {
    let mut map = sessions().lock().unwrap_or_else(|e| e.into_inner());
    for (_, s) in map.drain() {
        let _ = remove_tree(&s.dir);
    }
}

/// Takes the flock on `path` (a file or dir) without waiting: `Some` when nobody holds it.
pub(crate) fn try_lock(path: &Path) -> Option<fs::File> {
    let f = fs::File::open(path).ok()?;
    f.try_lock().ok()?;
    Some(f)
}

pub(crate) fn older_than_grace(p: &Path) -> bool {
    fs::symlink_metadata(p)
        .and_then(|m| m.modified())
        .map(|t| t.elapsed().unwrap_or_default() > super::GC_GRACE)
        .unwrap_or(false)
}

/// Deletes `path` (a file or a tree, not following symlinks); returns the bytes of regular
/// files removed. Each file removed is a test kill point (`delete-file`).
pub(crate) fn remove_tree(path: &Path) -> io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let md = match fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    if !md.is_dir() {
        let bytes = if md.is_file() && md.nlink() == 1 {
            md.len()
        } else {
            0
        };
        killpoint::reached("delete-file");
        return match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(bytes),
        };
    }
    let mut bytes = 0;
    let mut first_err = None;
    if let Ok(entries) = fs::read_dir(path) {
        for e in entries.flatten() {
            match remove_tree(&e.path()) {
                Ok(b) => bytes += b,
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
    }
    match fs::remove_dir(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(first_err.unwrap_or(e)),
        _ => Ok(bytes),
    }
}
