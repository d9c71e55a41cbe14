//! The file pool: regular files of COPY snapshots, shared between snapshots by hard links.
//!
//! A COPY that runs again with mostly the same files (a rebuild after one file changed, a
//! `--no-cache` build) would otherwise create every file anew, and creating inodes is the slow
//! part of a COPY (on ext4 without a journal, allocation also scans past recently deleted
//! inodes). Instead, each copied file is also linked at `<root>/pool/<key>`, where the key
//! names everything the file is: its path in the layer, content digest, size, mode, owner and
//! mtime. A later COPY producing the same file at the same path links the pooled inode into
//! its staging dir instead of copying.
//!
//! Keying by path means one snapshot never holds the same inode twice, so the layer writer
//! sees no accidental hard links; the only visible trace is a link count above 1 on those
//! files. Pooled inodes are never written after they are added (snapshots are read-only
//! overlayfs lower dirs), and a file enters the pool only when the bytes written were hashed
//! and match the digest its key names. Files no snapshot links any more (link count 1) are
//! removed by [`Store::collect_garbage`](super::Store::collect_garbage).

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use rbuild_runtime::dirfd::Dir;

use crate::image::digest::Digest;

/// What a pooled file is: everything that must match for two snapshots to share it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolFile<'a> {
    /// Path in the layer (relative, `/`-separated).
    pub path: &'a str,
    /// sha256 of the content.
    pub sha256: &'a [u8; 32],
    pub size: u64,
    /// Permission bits (`& 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Seconds and nanoseconds since the epoch.
    pub mtime: (i64, u32),
}

impl PoolFile<'_> {
    fn key(&self) -> String {
        let text = format!(
            "rbuild pool v1\n{}\n{}\n{} {:o} {}:{} {}.{:09}",
            self.path,
            hex::encode(self.sha256),
            self.size,
            self.mode,
            self.uid,
            self.gid,
            self.mtime.0,
            self.mtime.1
        );
        Digest::of(text.as_bytes()).hex().to_string()
    }
}

/// The pool directory of a store, open.
#[derive(Debug)]
pub(crate) struct Pool {
    dir: PathBuf,
    handle: Option<Dir>,
}

impl Pool {
    /// The pool at `dir`, created if missing. A pool that cannot be opened is empty and
    /// takes nothing (the pool is only a shortcut).
    pub(crate) fn new(dir: PathBuf) -> Pool {
        let _ = fs::create_dir_all(&dir);
        let handle = Dir::open(&dir).ok();
        Pool { dir, handle }
    }

    /// Links the pooled copy of `file` as `name` in `dest`. False when the pool does not
    /// have it, or `name` exists, or linking fails for any other reason: the caller copies.
    pub(crate) fn link_to(&self, file: &PoolFile<'_>, dest: &Dir, name: &OsStr) -> bool {
        self.handle
            .as_ref()
            .is_some_and(|pool| pool.link(OsStr::new(&file.key()), dest, name).is_ok())
    }

    /// Adds `name` in `dir` (complete, with the metadata `file` names, content verified) to
    /// the pool. Best effort: a failure (or a file pooled meanwhile) is ignored.
    pub(crate) fn add(&self, file: &PoolFile<'_>, dir: &Dir, name: &OsStr) {
        if let Some(pool) = &self.handle {
            let _ = dir.link(name, pool, OsStr::new(&file.key()));
        }
    }

    /// Removes pooled files no snapshot links any more.
    pub(crate) fn sweep(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.metadata().is_ok_and(|md| md.nlink() <= 1) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

impl super::Store {
    /// The store's file pool (`<root>/pool`, created on first use).
    pub(crate) fn pool(&self) -> Pool {
        Pool::new(self.root.join("pool"))
    }
}
