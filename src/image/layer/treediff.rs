//! A writable copy of a stack of snapshots, and the change set of that copy against the
//! snapshots as an overlayfs upper directory: what chroot isolation uses where overlayfs
//! cannot be mounted.
//!
//! [`materialise`] copies the merged view into a plain directory: each file is a reflink
//! (`FICLONE`, shared extents) where the filesystem allows, a copy otherwise, never a hard
//! link to the snapshot (the step could change the snapshot in place through it). Hard links
//! among the view's own files are kept. It ends with a *barrier*: the inode change time
//! after which anything the step does is stamped (the filesystem clock is coarse, so the
//! barrier waits for it to tick past the copy).
//!
//! [`diff_to_upper`] then moves what the step changed into an empty directory in overlayfs
//! form, the same form the namespaced mode's upper directory has (so the layer writer makes
//! the same bytes of it): a non-directory changed when its ctime is after the barrier (any
//! write, `chmod`, `chown`, `touch`, rename or new link stamps it, as any of them makes
//! overlayfs copy the file up); a directory when its mode or owner differ from the
//! snapshot's (as `prune_copy_ups` judges copy-ups), and it was replaced (opaque, as
//! overlayfs marks a directory created over a deleted one) when it was born after the
//! barrier. Ancestors of changes are created with the copy's metadata, as overlayfs copies
//! them up. Deletions become `0:0` character devices.
//!
//! [`apply_layer`] and [`resync`] keep such a copy for the next step instead of making it
//! again: the first puts a snapshot (the step's own layer, or one added since) on top of it
//! as overlayfs would show it, the second undoes what a step left outside its change set.
//!
//! Known differences from overlayfs, both rare in builds: a changed file that has other hard
//! links in the snapshot takes them all into the layer (overlayfs breaks the link on
//! copy-up), and a file opened for writing but not changed is not in the layer.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{io_err, LayerError};

/// The merged view of snapshot directories the copy is made from and compared against.
pub trait LowerView {
    /// Where the merged entry at `rel` (components) is on disk, if it exists.
    fn lookup(&self, rel: &[String]) -> Option<PathBuf>;
    /// The merged children of the directory at `rel`: name → disk path.
    fn list(&self, rel: &[String]) -> BTreeMap<OsString, PathBuf>;
}

/// What [`materialise`] did.
#[derive(Debug, Clone, Copy)]
pub struct Materialised {
    /// Changes stamped after this (seconds, nanoseconds) were made after the copy.
    pub barrier: (i64, i64),
    pub files: u64,
    pub bytes: u64,
    /// Files cloned with `FICLONE` rather than copied.
    pub reflinked: u64,
}

impl Materialised {
    fn after_barrier(&self, md: &fs::Metadata) -> bool {
        (md.ctime(), md.ctime_nsec()) > self.barrier
    }

    /// Whether the directory was created after the barrier (its birth time; `false` where
    /// the filesystem keeps none).
    fn born_after_barrier(&self, md: &fs::Metadata) -> bool {
        let barrier = SystemTime::UNIX_EPOCH
            + Duration::new(self.barrier.0.max(0) as u64, self.barrier.1.max(0) as u32);
        md.created().is_ok_and(|t| t > barrier)
    }
}

/// Copies the merged `view` into the empty directory `root` (see the module docs).
pub fn materialise(view: &dyn LowerView, root: &Path) -> Result<Materialised, LayerError> {
    let mut copier = Copier {
        view,
        pending: Pending::default(),
    };
    let mut rel = Vec::new();
    copier.copy_dir(&mut rel, root)?;
    let mut stats = copier.pending.finish()?;
    if let Some(top) = view.lookup(&[]) {
        let md = fs::symlink_metadata(&top).map_err(io_err(&top))?;
        copy_meta(&top, root, &md)?;
    }
    stats.renew_barrier(root)?;
    Ok(stats)
}

impl Materialised {
    /// Stamps a new barrier for the next step run in `root` (a copy kept from an earlier
    /// step and brought up to date since: what that did is before the new barrier).
    pub fn renew_barrier(&mut self, root: &Path) -> Result<(), LayerError> {
        self.barrier = barrier(root.parent().unwrap_or(root))?;
        Ok(())
    }
}

/// Stamps a marker file, then waits until the filesystem clock has moved past its stamp.
fn barrier(dir: &Path) -> Result<(i64, i64), LayerError> {
    let marker = dir.join(".rbuild-barrier");
    let stamp = |_: ()| -> Result<(i64, i64), LayerError> {
        fs::write(&marker, b"").map_err(io_err(&marker))?;
        let md = fs::symlink_metadata(&marker).map_err(io_err(&marker))?;
        Ok((md.ctime(), md.ctime_nsec()))
    };
    let first = stamp(())?;
    // Coarse clocks tick every few milliseconds.
    for _ in 0..1000 {
        std::thread::sleep(Duration::from_millis(1));
        if stamp(())? > first {
            break;
        }
    }
    let _ = fs::remove_file(&marker);
    Ok(first)
}

/// Walks the view: makes its directories, and leaves everything else to [`Pending`].
struct Copier<'a> {
    view: &'a dyn LowerView,
    pending: Pending,
}

impl Copier<'_> {
    fn copy_dir(&mut self, rel: &mut Vec<String>, dest_dir: &Path) -> Result<(), LayerError> {
        for (name, src) in self.view.list(rel) {
            let md = fs::symlink_metadata(&src).map_err(io_err(&src))?;
            rel.push(name.to_string_lossy().into_owned());
            self.copy_entry(rel, src, md, dest_dir.join(&name))?;
            rel.pop();
        }
        Ok(())
    }

    /// Copies the view's entry at `rel` (on disk at `src`) to the new path `dest`, a
    /// directory with everything below it (its files once `pending` is finished).
    fn copy_entry(
        &mut self,
        rel: &mut Vec<String>,
        src: PathBuf,
        md: fs::Metadata,
        dest: PathBuf,
    ) -> Result<(), LayerError> {
        if !md.is_dir() {
            self.pending.leaf(src, md, dest);
            return Ok(());
        }
        fs::create_dir(&dest).map_err(io_err(&dest))?;
        self.copy_dir(rel, &dest)?;
        self.pending.dirs.push((src, md, dest));
        Ok(())
    }
}

/// What a walk left to copy once its directories exist: the other entries, copied on
/// rayon's pool by [`Pending::finish`] (creating inodes is most of a copy's time, and
/// files are created in parallel), then the hard links among them, then the directories'
/// metadata (children before parents; creating entries changes a directory's times).
#[derive(Default)]
struct Pending {
    /// (source, its metadata, the new path) of files, symlinks, devices and FIFOs.
    leaves: Vec<(PathBuf, fs::Metadata, PathBuf)>,
    /// (first copy, another name of the same source file).
    links: Vec<(PathBuf, PathBuf)>,
    dirs: Vec<(PathBuf, fs::Metadata, PathBuf)>,
    /// (dev, ino) of multiply-linked source files → their first copy.
    first: HashMap<(u64, u64), PathBuf>,
}

impl Pending {
    fn leaf(&mut self, src: PathBuf, md: fs::Metadata, dest: PathBuf) {
        if md.is_file() && md.nlink() > 1 {
            match self.first.entry((md.dev(), md.ino())) {
                std::collections::hash_map::Entry::Occupied(first) => {
                    self.links.push((first.get().clone(), dest));
                    return;
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(dest.clone());
                }
            }
        }
        self.leaves.push((src, md, dest));
    }

    /// Copies what was left; returns what it copied (the barrier unset).
    fn finish(&mut self) -> Result<Materialised, LayerError> {
        use rayon::prelude::*;
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
        let reflink_works = AtomicBool::new(true);
        let (files, bytes, reflinked) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
        std::mem::take(&mut self.leaves)
            .par_iter()
            .try_for_each(|(src, md, dest)| {
                let cloned = copy_leaf(src, md, dest, &reflink_works)?;
                if md.is_file() {
                    files.fetch_add(1, Relaxed);
                    bytes.fetch_add(md.len(), Relaxed);
                    reflinked.fetch_add(u64::from(cloned), Relaxed);
                }
                Ok::<(), LayerError>(())
            })?;
        for (first, dest) in std::mem::take(&mut self.links) {
            fs::hard_link(&first, &dest).map_err(io_err(&dest))?;
        }
        for (src, md, dest) in std::mem::take(&mut self.dirs) {
            copy_meta(&src, &dest, &md)?;
        }
        self.first.clear();
        Ok(Materialised {
            barrier: (0, 0),
            files: files.into_inner(),
            bytes: bytes.into_inner(),
            reflinked: reflinked.into_inner(),
        })
    }
}

/// Copies the non-directory `src` (`md`) to the new path `dest`: a file reflinked while
/// `reflink_works` (cleared at the first failure), else copied; `true` when reflinked.
fn copy_leaf(
    src: &Path,
    md: &fs::Metadata,
    dest: &Path,
    reflink_works: &std::sync::atomic::AtomicBool,
) -> Result<bool, LayerError> {
    use std::sync::atomic::Ordering::Relaxed;
    let ft = md.file_type();
    if ft.is_symlink() {
        let target = fs::read_link(src).map_err(io_err(src))?;
        std::os::unix::fs::symlink(&target, dest).map_err(io_err(dest))?;
        std::os::unix::fs::lchown(dest, Some(md.uid()), Some(md.gid())).map_err(io_err(dest))?;
    } else if ft.is_file() {
        let from = fs::File::open(src).map_err(io_err(src))?;
        let to = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dest)
            .map_err(io_err(dest))?;
        let cloned =
            reflink_works.load(Relaxed) && rbuild_runtime::chroot::reflink(&from, &to).is_ok();
        if !cloned {
            reflink_works.store(false, Relaxed);
            // std's copy uses copy_file_range: in-kernel, no user-space buffer.
            std::io::copy(&mut &from, &mut &to).map_err(io_err(dest))?;
        }
        drop(to);
        copy_meta(src, dest, md)?;
        return Ok(cloned);
    } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
        let kind =
            nix::sys::stat::SFlag::from_bits_truncate(md.mode()) & nix::sys::stat::SFlag::S_IFMT;
        let mode = nix::sys::stat::Mode::from_bits_truncate(md.mode() & 0o7777);
        nix::sys::stat::mknod(dest, kind, mode, md.rdev()).map_err(|e| io_err(dest)(e.into()))?;
        copy_meta(src, dest, md)?;
    }
    // Sockets cannot be copied; they are never in a layer either.
    Ok(false)
}

/// Brings `root`, a copy of some view, up to that view with `layer` (one snapshot in
/// overlayfs form) on top, as overlayfs would show it: whiteouts delete, an opaque
/// directory replaces, a directory merges, anything else replaces; copies are made as
/// [`materialise`] makes them (never hard links to the snapshot). Returns the number of
/// files copied.
pub fn apply_layer(layer: &Path, root: &Path) -> Result<u64, LayerError> {
    let mut pending = Pending::default();
    apply_dir(&mut pending, layer, root)?;
    Ok(pending.finish()?.files)
}

fn apply_dir(pending: &mut Pending, from: &Path, to: &Path) -> Result<(), LayerError> {
    for name in sorted_names(from)? {
        let (src, dest) = (from.join(&name), to.join(&name));
        let md = fs::symlink_metadata(&src).map_err(io_err(&src))?;
        // `to` is a real directory of the root (checked by the caller), so `dest` is too.
        let existing = fs::symlink_metadata(&dest).ok();
        if rbuild_runtime::changes::is_whiteout(&md) {
            if let Some(e) = existing {
                remove_entry(&dest, &e)?;
            }
        } else if md.is_dir() {
            let merge = existing.as_ref().is_some_and(|e| e.is_dir())
                && !rbuild_runtime::changes::is_opaque(&src).unwrap_or(false);
            if !merge {
                if let Some(e) = existing {
                    remove_entry(&dest, &e)?;
                }
                fs::create_dir(&dest).map_err(io_err(&dest))?;
            }
            apply_dir(pending, &src, &dest)?;
            pending.dirs.push((src, md, dest));
        } else {
            if let Some(e) = existing {
                remove_entry(&dest, &e)?;
            }
            pending.leaf(src, md, dest);
        }
    }
    Ok(())
}

/// Removes `path` (`md`: its own metadata; a directory with everything below it).
fn remove_entry(path: &Path, md: &fs::Metadata) -> Result<(), LayerError> {
    if md.is_dir() {
        fs::remove_dir_all(path).map_err(io_err(path))
    } else {
        fs::remove_file(path).map_err(io_err(path))
    }
}

/// After a step in `root` whose change set went to the upper dir (and was applied back with
/// [`apply_layer`]): makes `root` equal to a fresh copy of `view` (the step's lowers plus
/// that upper dir) where the step left traces outside its change set. `paths` (relative,
/// with `/`: the runtime's and the mounts' places, left out of the change set) are copied
/// from the view again; directories whose ctime is after the barrier of `since` (entries
/// made and removed, the runtime's mount points) get the view's times back. Paths below a
/// symlink of the root are never touched (the link could lead out of the root).
pub fn resync(
    root: &Path,
    view: &dyn LowerView,
    since: &Materialised,
    paths: &[String],
) -> Result<(), LayerError> {
    let mut copier = Copier {
        view,
        pending: Pending::default(),
    };
    for path in paths {
        let mut rel: Vec<String> = path
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .map(str::to_string)
            .collect();
        let Some(dest) = real_path(root, &rel) else {
            continue;
        };
        if let Ok(md) = fs::symlink_metadata(&dest) {
            remove_entry(&dest, &md)?;
        }
        if let Some(src) = view.lookup(&rel) {
            let md = fs::symlink_metadata(&src).map_err(io_err(&src))?;
            copier.copy_entry(&mut rel, src, md, dest)?;
            // Before the next path, which could be below this one.
            copier.pending.finish()?;
        }
    }
    reset_dir_times(root, view, since, &mut Vec::new())
}

/// `root` joined with `rel`, when every ancestor of it is a real directory of the root.
fn real_path(root: &Path, rel: &[String]) -> Option<PathBuf> {
    let (last, parents) = rel.split_last()?;
    let mut at = root.to_path_buf();
    for c in parents {
        if c == ".." {
            return None;
        }
        at.push(c);
        if !fs::symlink_metadata(&at).is_ok_and(|md| md.is_dir()) {
            return None;
        }
    }
    (last != "..").then(|| at.join(last))
}

fn reset_dir_times(
    dir: &Path,
    view: &dyn LowerView,
    since: &Materialised,
    rel: &mut Vec<String>,
) -> Result<(), LayerError> {
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            rel.push(entry.file_name().to_string_lossy().into_owned());
            reset_dir_times(&entry.path(), view, since, rel)?;
            rel.pop();
        }
    }
    let md = fs::symlink_metadata(dir).map_err(io_err(dir))?;
    if since.after_barrier(&md) {
        if let Some(src) = view.lookup(rel) {
            let lmd = fs::symlink_metadata(&src).map_err(io_err(&src))?;
            set_times(dir, &lmd);
        }
    }
    Ok(())
}

/// Gives `dest` the access and modification times of `md` (best effort). By path, not
/// through an open file: no open per copied file, and a FIFO or device is not opened.
fn set_times(dest: &Path, md: &fs::Metadata) {
    use nix::sys::time::TimeSpec;
    let _ = nix::sys::stat::utimensat(
        None,
        dest,
        &TimeSpec::new(md.atime(), md.atime_nsec()),
        &TimeSpec::new(md.mtime(), md.mtime_nsec()),
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    );
}

/// Gives `dest` the owner, mode, xattrs (but overlayfs's own) and times of `src` (`md`).
fn copy_meta(src: &Path, dest: &Path, md: &fs::Metadata) -> Result<(), LayerError> {
    std::os::unix::fs::lchown(dest, Some(md.uid()), Some(md.gid())).map_err(io_err(dest))?;
    // After chown, which clears set-id bits.
    fs::set_permissions(dest, fs::Permissions::from_mode(md.mode() & 0o7777))
        .map_err(io_err(dest))?;
    copy_xattrs(src, dest);
    set_times(dest, md);
    Ok(())
}

/// Copies the xattrs of `src` to `dest`, except overlayfs's own. Best effort: the copy is
/// what the step sees; an xattr the runner may not set (`security.capability` without
/// `CAP_SETFCAP`) is missing there, not in any layer.
fn copy_xattrs(src: &Path, dest: &Path) {
    let Ok(names) = xattr::list(src) else {
        return;
    };
    for name in names {
        let text = name.to_string_lossy();
        if text.starts_with("trusted.overlay.") || text.starts_with("user.overlay.") {
            continue;
        }
        if let Ok(Some(value)) = xattr::get(src, &name) {
            let _ = xattr::set(dest, &name, &value);
        }
    }
}

/// Moves what changed in `root` since `materialised` (compared against `view`) into the
/// empty directory `upper`, in overlayfs form; paths in `exclude` (relative, with `/`) and
/// everything below them are left out. `root` is consumed: moved entries are gone from it.
pub fn diff_to_upper(
    root: &Path,
    view: &dyn LowerView,
    materialised: &Materialised,
    exclude: &[String],
    upper: &Path,
) -> Result<(), LayerError> {
    let mut differ = Differ {
        root,
        upper,
        view,
        since: materialised,
        exclude,
        made: Vec::new(),
    };
    differ.dir(&mut Vec::new())?;
    // Times last: moving entries in changed the directories' mtimes.
    for rel in differ.made.iter().rev() {
        let (from, to) = (root.join(rel), upper.join(rel));
        if let Ok(md) = fs::symlink_metadata(&from) {
            set_times(&to, &md);
        }
    }
    Ok(())
}

struct Differ<'a> {
    root: &'a Path,
    upper: &'a Path,
    view: &'a dyn LowerView,
    since: &'a Materialised,
    exclude: &'a [String],
    /// Directories created in `upper` (relative paths), parents first.
    made: Vec<PathBuf>,
}

impl Differ<'_> {
    fn dir(&mut self, rel: &mut Vec<String>) -> Result<(), LayerError> {
        let here: PathBuf = rel.iter().collect();
        let names = sorted_names(&self.root.join(&here))?;
        let mut lower = self.view.list(rel);
        for name in names {
            let lower_path = lower.remove(&name);
            rel.push(name.to_string_lossy().into_owned());
            if !self.excluded(rel) {
                self.entry(rel, lower_path)?;
            }
            rel.pop();
        }
        for name in lower.into_keys() {
            rel.push(name.to_string_lossy().into_owned());
            if !self.excluded(rel) {
                let path: PathBuf = rel.iter().collect();
                self.make_parents(&path)?;
                let at = self.upper.join(&path);
                nix::sys::stat::mknod(
                    &at,
                    nix::sys::stat::SFlag::S_IFCHR,
                    nix::sys::stat::Mode::empty(),
                    0,
                )
                .map_err(|e| io_err(&at)(whiteout_error(e)))?;
            }
            rel.pop();
        }
        Ok(())
    }

    fn entry(&mut self, rel: &mut Vec<String>, lower: Option<PathBuf>) -> Result<(), LayerError> {
        let path: PathBuf = rel.iter().collect();
        let abs = self.root.join(&path);
        let md = fs::symlink_metadata(&abs).map_err(io_err(&abs))?;
        let Some(lower) = lower else {
            return self.take(&path);
        };
        let lmd = fs::symlink_metadata(&lower).map_err(io_err(&lower))?;
        match (md.is_dir(), lmd.is_dir()) {
            (true, true) if self.since.born_after_barrier(&md) => self.opaque(&path),
            (true, true) => {
                let meta_changed =
                    md.mode() != lmd.mode() || md.uid() != lmd.uid() || md.gid() != lmd.gid();
                if meta_changed {
                    self.make_dir(&path)?;
                }
                self.dir(rel)
            }
            (true, false) => self.opaque(&path),
            _ if md.file_type() != lmd.file_type() || self.since.after_barrier(&md) => {
                self.take(&path)
            }
            _ => Ok(()),
        }
    }

    fn excluded(&self, rel: &[String]) -> bool {
        let path = rel.join("/");
        self.exclude.iter().any(|e| {
            path == *e || (path.starts_with(e.as_str()) && path.as_bytes()[e.len()] == b'/')
        })
    }

    /// Moves the entry (a directory with everything below it) into the upper dir.
    fn take(&mut self, rel: &Path) -> Result<(), LayerError> {
        self.make_parents(rel)?;
        let (from, to) = (self.root.join(rel), self.upper.join(rel));
        fs::rename(&from, &to).map_err(io_err(&from))
    }

    /// A directory that replaces the snapshot's: opaque, with all its entries.
    fn opaque(&mut self, rel: &Path) -> Result<(), LayerError> {
        self.make_dir(rel)?;
        let at = self.upper.join(rel);
        if xattr::set(&at, "trusted.overlay.opaque", b"y").is_err() {
            // Without CAP_SYS_ADMIN (an unprivileged container): the rootless form, which
            // the layer writer and the snapshot reader accept too.
            xattr::set(&at, "user.overlay.opaque", b"y").map_err(io_err(&at))?;
        }
        for name in sorted_names(&self.root.join(rel))? {
            let child = rel.join(&name);
            let parts: Vec<String> = child
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect();
            if !self.excluded(&parts) {
                self.take(&child)?;
            }
        }
        Ok(())
    }

    fn make_parents(&mut self, rel: &Path) -> Result<(), LayerError> {
        match rel.parent() {
            Some(p) if !p.as_os_str().is_empty() => self.make_dir(p),
            _ => Ok(()),
        }
    }

    /// Creates `rel` (and missing ancestors) in the upper dir with the copy's metadata.
    fn make_dir(&mut self, rel: &Path) -> Result<(), LayerError> {
        let to = self.upper.join(rel);
        if to.is_dir() {
            return Ok(());
        }
        self.make_parents(rel)?;
        let from = self.root.join(rel);
        let md = fs::symlink_metadata(&from).map_err(io_err(&from))?;
        fs::create_dir(&to).map_err(io_err(&to))?;
        std::os::unix::fs::lchown(&to, Some(md.uid()), Some(md.gid())).map_err(io_err(&to))?;
        fs::set_permissions(&to, fs::Permissions::from_mode(md.mode() & 0o7777))
            .map_err(io_err(&to))?;
        copy_xattrs(&from, &to);
        self.made.push(rel.to_path_buf());
        Ok(())
    }
}

/// The names in `dir`, sorted (the layer's order, and the same on every run).
pub(crate) fn sorted_names(dir: &Path) -> Result<Vec<OsString>, LayerError> {
    let mut names: Vec<OsString> = fs::read_dir(dir)
        .map_err(io_err(dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(io_err(dir))?;
    names.sort();
    Ok(names)
}

/// Says what to do when a whiteout cannot be created: overlayfs refuses `0:0` devices to a
/// process without `CAP_MKNOD`, so a store on a container's own root filesystem fails.
fn whiteout_error(e: nix::errno::Errno) -> std::io::Error {
    if e != nix::errno::Errno::EPERM {
        return e.into();
    }
    std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        "cannot create a whiteout (a 0:0 character device) here: is the store on the \
         container's overlay root filesystem? Put --root on a volume (an emptyDir)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    /// One plain directory as the whole view.
    struct OneDir(PathBuf);

    impl LowerView for OneDir {
        fn lookup(&self, rel: &[String]) -> Option<PathBuf> {
            let p = rel.iter().fold(self.0.clone(), |p, c| p.join(c));
            p.symlink_metadata().is_ok().then_some(p)
        }

        fn list(&self, rel: &[String]) -> BTreeMap<OsString, PathBuf> {
            let dir = rel.iter().fold(self.0.clone(), |p, c| p.join(c));
            fs::read_dir(dir)
                .map(|rd| rd.flatten().map(|e| (e.file_name(), e.path())).collect())
                .unwrap_or_default()
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for e in walk(dir) {
            out.push(e.strip_prefix(dir).unwrap().display().to_string());
        }
        out.sort();
        out
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in fs::read_dir(dir).unwrap().flatten() {
            out.push(e.path());
            if e.file_type().unwrap().is_dir() {
                out.extend(walk(&e.path()));
            }
        }
        out
    }

    #[test]
    fn same_size_rewrite_right_after_the_copy_is_a_change() {
        let tmp = tempfile::tempdir().unwrap();
        let (lower, root, upper) = (
            tmp.path().join("lower"),
            tmp.path().join("root"),
            tmp.path().join("upper"),
        );
        for d in [&lower, &root, &upper] {
            fs::create_dir(d).unwrap();
        }
        fs::create_dir_all(lower.join("etc/keep")).unwrap();
        fs::create_dir_all(lower.join("var/old")).unwrap();
        fs::write(lower.join("etc/a"), "aaaa").unwrap();
        fs::write(lower.join("etc/b"), "bbbb").unwrap();
        fs::write(lower.join("var/old/x"), "x").unwrap();
        fs::create_dir_all(lower.join("dev")).unwrap();
        let view = OneDir(lower.clone());
        let copied = materialise(&view, &root).unwrap();
        // At once after the copy: same size, same mode, new content.
        fs::write(root.join("etc/a"), "AAAA").unwrap();
        fs::remove_file(root.join("etc/b")).unwrap();
        fs::remove_dir_all(root.join("var/old")).unwrap();
        fs::create_dir(root.join("var/old")).unwrap();
        fs::write(root.join("dev/null"), "").unwrap();
        diff_to_upper(&root, &view, &copied, &["dev".to_string()], &upper).unwrap();
        assert_eq!(
            names(&upper),
            ["etc", "etc/a", "etc/b", "var", "var/old"],
            "unchanged etc/keep and the excluded dev stay out"
        );
        assert_eq!(fs::read_to_string(upper.join("etc/a")).unwrap(), "AAAA");
        let wh = fs::symlink_metadata(upper.join("etc/b")).unwrap();
        assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
        let opaque = xattr::get(upper.join("var/old"), "trusted.overlay.opaque")
            .unwrap()
            .or(xattr::get(upper.join("var/old"), "user.overlay.opaque").unwrap());
        assert_eq!(opaque.as_deref(), Some(&b"y"[..]));
        // The snapshot itself was never touched.
        assert_eq!(fs::read_to_string(lower.join("etc/a")).unwrap(), "aaaa");
    }
}
