//! COPY and ADD: sources from the context or from another stage/image's snapshots, staged
//! into a directory shaped like the layer (destination parents included), which the layer
//! writer turns into the layer and which then becomes the snapshot.
//!
//! Rules (docker's): a directory source copies its contents; several sources (or a
//! destination ending in `/`, or an existing directory) make the destination a directory;
//! missing parents are created (0755, root); modes and mtimes are kept, owners become 0:0
//! unless `--chown`; `--chmod` sets the mode of everything copied; symlinks inside copied
//! directories stay symlinks; ADD extracts local tar archives (plain, gzip, bzip2, xz, zstd);
//! ADD's URL sources are downloaded files (see `download`), never extracted.

use std::fs;
use std::io::{BufReader, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use filetime::FileTime;

use super::download::Downloaded;
use super::layered::Layered;
use super::{io_err, BuildError};
use crate::context::glob::{has_wildcards, Glob};
use crate::context::{
    copy_hashed, ContextSnapshot, CopyFailed, Digest, Entry, EntryKind, IgnoreMatcher,
};
use crate::image::layer::{apply_tar, ApplyOptions};
use crate::image::path::components;
use crate::image::{compress, sparse};
use crate::store::{Pool, PoolFile};
use rbuild_runtime::dirfd::Dir;

/// Where COPY reads from.
pub(crate) enum From<'a> {
    Context(&'a ContextSnapshot),
    Layers(Vec<PathBuf>),
}

/// A fully evaluated COPY/ADD.
pub(crate) struct CopySpec {
    pub add: bool,
    /// Sources (expanded), heredoc sources excluded.
    pub sources: Vec<String>,
    /// Heredoc sources: (name, content).
    pub inline: Vec<(String, String)>,
    /// Absolute destination as written (a trailing `/` kept).
    pub dest: String,
    pub chown: Option<(u32, u32)>,
    pub chmod: Option<u32>,
    pub exclude: Vec<String>,
    pub parents: bool,
    /// ADD URL sources, downloaded: (file, its mtime in seconds since the epoch).
    pub downloads: Vec<(Downloaded, i64)>,
}

/// One resolved source.
#[derive(Debug, Clone)]
pub(crate) struct Selected {
    /// The name it was matched by (its last component names the copy).
    pub name: String,
    /// Context path (for digests) or disk path in a snapshot.
    pub path: String,
    pub is_dir: bool,
}

/// Resolves the sources of `spec` against `from`.
pub(crate) fn select(spec: &CopySpec, from: &From<'_>) -> Result<Vec<Selected>, BuildError> {
    let mut out = Vec::new();
    for src in &spec.sources {
        match from {
            From::Context(snap) => {
                for m in snap.resolve_source(src)? {
                    out.push(Selected {
                        name: m.path.clone(),
                        path: m.entry.path.clone(),
                        is_dir: m.entry.kind == EntryKind::Dir,
                    });
                }
            }
            From::Layers(lowers) => {
                let view = Layered { lowers };
                let comps = components(src);
                let (parent, last) = match comps.split_last() {
                    Some((last, parent)) => (parent.to_vec(), Some(last.clone())),
                    None => (Vec::new(), None),
                };
                let mut names = Vec::new();
                match &last {
                    Some(l) if has_wildcards(l) => {
                        // The same pattern rules as a COPY from the context (Go's filepath.Match).
                        let glob = Glob::parse(l).map_err(|e| {
                            BuildError::Invalid(format!("{src:?}: bad pattern: {e}"))
                        })?;
                        let parent_path = parent.join("/");
                        let dir = view
                            .resolve(&parent_path, true)
                            .map(|(c, _)| c)
                            .unwrap_or_default();
                        for name in view.list(&dir).keys() {
                            let name = name.to_string_lossy();
                            if glob.is_match(&name) {
                                names.push(format!("{parent_path}/{name}"));
                            }
                        }
                    }
                    _ => names.push(comps.join("/")),
                }
                if names.is_empty() {
                    return Err(BuildError::Invalid(format!(
                        "{src:?}: no such file or directory in the source image"
                    )));
                }
                for name in names {
                    let (_, disk) = view.resolve(&name, true).ok_or_else(|| {
                        BuildError::Invalid(format!(
                            "{src:?}: no such file or directory in the source image"
                        ))
                    })?;
                    let is_dir = fs::metadata(&disk).map(|m| m.is_dir()).unwrap_or(false);
                    out.push(Selected {
                        name: name.clone(),
                        path: disk.to_string_lossy().into_owned(),
                        is_dir,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// Stages the copy into `root` (an empty dir). `existing` is the merged view of the image
/// being built (for the destination's parents and whether it is a directory). Files from the
/// context are linked from `pool` when it has them, and added to it otherwise.
pub(crate) fn stage(
    spec: &CopySpec,
    from: &From<'_>,
    selected: &[Selected],
    existing: Layered<'_>,
    root: &Path,
    pool: Option<Pool>,
) -> Result<(), BuildError> {
    let dest_comps = existing.resolve_lenient(&spec.dest);
    let count = selected.len() + spec.inline.len() + spec.downloads.len();
    let dest_exists_dir = existing
        .resolve(&spec.dest, true)
        .map(|(_, d)| d.is_dir())
        .unwrap_or(false);
    let dest_is_dir = spec.dest.ends_with('/')
        || spec.dest.ends_with("/.")
        || count > 1
        || dest_exists_dir
        || spec.parents
        || (count == 1 && selected.first().is_some_and(|s| s.is_dir));
    let excluder = if spec.exclude.is_empty() {
        None
    } else {
        Some(
            IgnoreMatcher::parse(&spec.exclude.join("\n"))
                .map_err(|e| BuildError::Invalid(format!("--exclude: {e}")))?,
        )
    };
    let (dir_comps, file_name) = if dest_is_dir {
        (dest_comps.clone(), None)
    } else {
        match dest_comps.split_last() {
            Some((last, parent)) => (parent.to_vec(), Some(last.clone())),
            None => (Vec::new(), None),
        }
    };
    let mut copier = Copier {
        chown: spec.chown,
        chmod: spec.chmod,
        dirs: Vec::new(),
        root: root.to_path_buf(),
        pool,
    };
    let dest_dir = make_dest_dir(&dir_comps, existing, root, dest_is_dir, spec.chown)?;
    for (name, content) in &spec.inline {
        let target = match &file_name {
            Some(f) => dest_dir.join(f),
            None => dest_dir.join(name),
        };
        remove_existing(&target);
        fs::write(&target, content).map_err(io_err(&target))?;
        let mode = spec.chmod.unwrap_or(0o644);
        fs::set_permissions(&target, fs::Permissions::from_mode(mode)).map_err(io_err(&target))?;
        let (u, g) = spec.chown.unwrap_or((0, 0));
        std::os::unix::fs::lchown(&target, Some(u), Some(g)).map_err(io_err(&target))?;
    }
    for sel in selected {
        let target = target_of(spec, sel, &dest_dir, file_name.as_deref())?;
        match from {
            From::Context(snap) => {
                let disk = snap.root().join(&sel.path);
                if spec.add && !sel.is_dir && is_tar(&disk) {
                    let into = match &file_name {
                        Some(f) => dest_dir.join(f),
                        None => dest_dir.clone(),
                    };
                    fs::create_dir_all(&into).map_err(io_err(&into))?;
                    extract(&disk, &into)?;
                    continue;
                }
                copier.copy_context(snap, sel, &target, excluder.as_ref())?
            }
            From::Layers(lowers) => {
                let view = Layered { lowers };
                let comps = view
                    .resolve(&sel.name, true)
                    .map(|(c, _)| c)
                    .unwrap_or_default();
                copier.copy_layers(
                    view,
                    &comps,
                    Path::new(&sel.path),
                    &target,
                    "",
                    excluder.as_ref(),
                )?;
            }
        }
    }
    // Downloads stay files (never extracted), named by their URL unless DEST names them.
    for (file, mtime) in &spec.downloads {
        let target = match &file_name {
            Some(f) => dest_dir.join(f),
            None => dest_dir.join(&file.name),
        };
        remove_existing(&target);
        if fs::rename(&file.path, &target).is_err() {
            copy_file_sparse(&file.path, &target)?;
        }
        copier.set(
            &target,
            0o600,
            FileTime::from_unix_time(*mtime, 0),
            false,
            false,
        )?;
    }
    copier.finish()
}

/// Creates the destination dir `dir_comps` and its parents under `root`: existing ones keep
/// their metadata, new ones get 0755 (and the destination dir itself `--chown`'s owner).
fn make_dest_dir(
    dir_comps: &[String],
    existing: Layered<'_>,
    root: &Path,
    dest_is_dir: bool,
    chown: Option<(u32, u32)>,
) -> Result<PathBuf, BuildError> {
    let mut path = root.to_path_buf();
    for (i, c) in dir_comps.iter().enumerate() {
        path = path.join(c);
        fs::create_dir(&path).map_err(io_err(&path))?;
        match existing.lookup(&dir_comps[..=i]) {
            Some(disk) => {
                let md = fs::metadata(&disk).map_err(io_err(&disk))?;
                copy_meta(&path, &md, None, None)?;
            }
            None => {
                let owner = if i + 1 == dir_comps.len() && dest_is_dir {
                    chown
                } else {
                    None
                };
                fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
                    .map_err(io_err(&path))?;
                if let Some((u, g)) = owner {
                    std::os::unix::fs::lchown(&path, Some(u), Some(g)).map_err(io_err(&path))?;
                }
            }
        }
    }
    Ok(path)
}

/// Where a selected source goes: under its path with `--parents` (missing parents created),
/// a directory's contents into the destination, a file under its name (or the name DEST
/// gives when DEST is not a directory).
fn target_of(
    spec: &CopySpec,
    sel: &Selected,
    dest_dir: &Path,
    file_name: Option<&str>,
) -> Result<PathBuf, BuildError> {
    let base_name = sel
        .name
        .rsplit('/')
        .find(|s| !s.is_empty() && *s != ".")
        .unwrap_or(".")
        .to_string();
    Ok(if spec.parents {
        let mut t = dest_dir.to_path_buf();
        let comps = components(&sel.name);
        let n = comps.len();
        for (i, c) in comps.iter().enumerate() {
            t = t.join(c);
            if i + 1 < n && !t.exists() {
                fs::create_dir(&t).map_err(io_err(&t))?;
                fs::set_permissions(&t, fs::Permissions::from_mode(0o755)).map_err(io_err(&t))?;
            }
        }
        t
    } else if sel.is_dir {
        // A directory's contents go into the destination.
        match file_name {
            Some(f) => dest_dir.join(f),
            None => dest_dir.to_path_buf(),
        }
    } else {
        match file_name {
            Some(f) => dest_dir.join(f),
            None => dest_dir.join(&base_name),
        }
    })
}

fn remove_existing(path: &Path) {
    if let Ok(md) = fs::symlink_metadata(path) {
        if md.is_dir() {
            let _ = fs::remove_dir_all(path);
        } else {
            let _ = fs::remove_file(path);
        }
    }
}

/// Sets owner, mode and remembers nothing; mtime is set right away for non-directories.
fn copy_meta(
    path: &Path,
    md: &fs::Metadata,
    chown: Option<(u32, u32)>,
    chmod: Option<u32>,
) -> Result<(), BuildError> {
    let (u, g) = chown.unwrap_or((md.uid(), md.gid()));
    std::os::unix::fs::lchown(path, Some(u), Some(g)).map_err(io_err(path))?;
    if !md.file_type().is_symlink() {
        let mode = chmod.unwrap_or(md.mode() & 0o7777);
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_err(path))?;
    }
    let mtime = FileTime::from_last_modification_time(md);
    filetime::set_symlink_file_times(path, mtime, mtime).map_err(io_err(path))?;
    Ok(())
}

/// A regular file of the context to copy.
struct FileJob<'a> {
    src: PathBuf,
    dst: PathBuf,
    entry: &'a Entry,
    digest: &'a Digest,
}

/// Copies context files into a staging dir, linking them from the pool when it can.
struct FileCopier<'a> {
    root: &'a Path,
    pool: Option<&'a Pool>,
    owner: (u32, u32),
    chmod: Option<u32>,
}

impl FileCopier<'_> {
    /// Copies `files` (their parent dirs exist); large sets on rayon's pool in pieces of at
    /// least a quarter of the set (at most 4 at once): each file costs a few syscalls, and a
    /// COPY may have tens of thousands. After an error, the copies not yet started are skipped.
    fn copy_all(&self, files: &[FileJob<'_>]) -> Result<(), BuildError> {
        use rayon::prelude::*;
        if files.len() < 512 {
            return self.copy_range(files);
        }
        files
            .par_iter()
            .with_min_len(files.len().div_ceil(4))
            .try_for_each_init(
                || (None, Vec::new()),
                |(parent, buf), job| self.copy_one(job, parent, buf),
            )
    }

    fn copy_range(&self, files: &[FileJob<'_>]) -> Result<(), BuildError> {
        // The directory files were last put in, open (most files share it with the last).
        let mut parent: Option<(&Path, Dir)> = None;
        let mut buf = Vec::new();
        for job in files {
            self.copy_one(job, &mut parent, &mut buf)?;
        }
        Ok(())
    }

    /// Copies one context file over whatever is at its destination (linked from the pool
    /// when it has the same file). The copy is hashed as it is written, so only content
    /// matching the file's digest enters the pool.
    fn copy_one<'j>(
        &self,
        job: &'j FileJob<'_>,
        parent: &mut Option<(&'j Path, Dir)>,
        buf: &mut Vec<u8>,
    ) -> Result<(), BuildError> {
        let FileJob {
            src,
            dst,
            entry,
            digest,
        } = job;
        // The pool key names the path in the layer: without one, no pool.
        let layer_path = dst.strip_prefix(self.root).ok().and_then(Path::to_str);
        let (Some(pool), Some(dir_path), Some(name), Some(layer_path)) =
            (self.pool, dst.parent(), dst.file_name(), layer_path)
        else {
            return self.copy_file(src, dst, entry, buf).map(drop);
        };
        let pooled = PoolFile {
            path: layer_path,
            sha256: &digest.0,
            size: entry.size,
            mode: self.chmod.unwrap_or(entry.mode),
            uid: self.owner.0,
            gid: self.owner.1,
            mtime: (entry.mtime_sec, entry.mtime_nsec),
        };
        let dir = match parent {
            Some((p, dir)) if *p == dir_path => dir,
            _ => {
                let dir = Dir::open(dir_path).map_err(io_err(dir_path))?;
                &parent.insert((dir_path, dir)).1
            }
        };
        // Linking fails when `dst` exists (overlapping sources): then it is replaced by a copy.
        if pool.link_to(&pooled, dir, name) {
            return Ok(());
        }
        let (written, size) = self.copy_file(src, dst, entry, buf)?;
        if written == **digest && size == entry.size {
            pool.add(&pooled, dir, name);
        }
        Ok(())
    }

    /// Copies a context file to `dst` (replacing what is there) with the entry's metadata;
    /// returns the digest and size of what was written.
    fn copy_file(
        &self,
        src: &Path,
        dst: &Path,
        entry: &Entry,
        buf: &mut Vec<u8>,
    ) -> Result<(Digest, u64), BuildError> {
        use std::os::unix::fs::fchown;
        remove_existing(dst);
        let mut output = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dst)
            .map_err(io_err(dst))?;
        let written = copy_hashing(src, &mut output, dst, buf)?;
        // Metadata through the open file: no path lookups.
        let (u, g) = self.owner;
        fchown(&output, Some(u), Some(g)).map_err(io_err(dst))?;
        let mode = self.chmod.unwrap_or(entry.mode);
        output
            .set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io_err(dst))?;
        let mtime = FileTime::from_unix_time(entry.mtime_sec, entry.mtime_nsec);
        filetime::set_file_handle_times(&output, Some(mtime), Some(mtime)).map_err(io_err(dst))?;
        Ok(written)
    }
}

struct Copier {
    chown: Option<(u32, u32)>,
    chmod: Option<u32>,
    /// Directories whose mtime is set once their contents are written.
    dirs: Vec<(PathBuf, FileTime)>,
    /// The staging dir (paths in the layer are relative to it).
    root: PathBuf,
    pool: Option<Pool>,
}

impl Copier {
    fn owner(&self) -> (u32, u32) {
        self.chown.unwrap_or((0, 0))
    }

    fn set(
        &mut self,
        path: &Path,
        mode: u32,
        mtime: FileTime,
        is_dir: bool,
        is_link: bool,
    ) -> Result<(), BuildError> {
        let (u, g) = self.owner();
        std::os::unix::fs::lchown(path, Some(u), Some(g)).map_err(io_err(path))?;
        if !is_link {
            let mode = self.chmod.unwrap_or(mode);
            fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_err(path))?;
        }
        if is_dir {
            self.dirs.push((path.to_path_buf(), mtime));
        } else {
            filetime::set_symlink_file_times(path, mtime, mtime).map_err(io_err(path))?;
        }
        Ok(())
    }

    fn copy_context(
        &mut self,
        snap: &ContextSnapshot,
        sel: &Selected,
        target: &Path,
        excluder: Option<&IgnoreMatcher>,
    ) -> Result<(), BuildError> {
        let entries = snap.subtree(&sel.path).ok_or_else(|| {
            BuildError::Context(crate::context::ContextError::NotFound {
                path: sel.name.clone(),
            })
        })?;
        let prefix = if sel.path == "." {
            String::new()
        } else {
            format!("{}/", sel.path)
        };
        // Directories and symlinks first, in order; then the files, on several threads.
        let mut files = Vec::new();
        for entry in entries {
            let rel = if entry.path == sel.path {
                ""
            } else {
                entry.path.strip_prefix(&prefix).unwrap_or(&entry.path)
            };
            if let Some(ex) = excluder {
                if !rel.is_empty() && ex.is_excluded(rel) {
                    continue;
                }
            }
            let dst = if rel.is_empty() {
                target.to_path_buf()
            } else {
                target.join(rel)
            };
            let mtime = FileTime::from_unix_time(entry.mtime_sec, entry.mtime_nsec);
            match &entry.kind {
                // A directory source's contents go into the destination, which keeps the
                // metadata it has (existing, or created 0755).
                EntryKind::Dir if rel.is_empty() && dst.is_dir() => {}
                EntryKind::Dir => {
                    if !dst.is_dir() {
                        remove_existing(&dst);
                        fs::create_dir_all(&dst).map_err(io_err(&dst))?;
                    }
                    self.set(&dst, entry.mode, mtime, true, false)?;
                }
                EntryKind::File { digest } => files.push(FileJob {
                    src: snap.disk_path(entry),
                    dst,
                    entry,
                    digest,
                }),
                EntryKind::Symlink { target: link } => {
                    remove_existing(&dst);
                    std::os::unix::fs::symlink(link, &dst).map_err(io_err(&dst))?;
                    self.set(&dst, 0o777, mtime, false, true)?;
                }
            }
        }
        let copier = FileCopier {
            root: &self.root,
            pool: self.pool.as_ref(),
            owner: self.owner(),
            chmod: self.chmod,
        };
        copier.copy_all(&files)
    }

    fn copy_layers(
        &mut self,
        view: Layered<'_>,
        comps: &[String],
        disk: &Path,
        target: &Path,
        rel: &str,
        excluder: Option<&IgnoreMatcher>,
    ) -> Result<(), BuildError> {
        if let Some(ex) = excluder {
            if !rel.is_empty() && ex.is_excluded(rel) {
                return Ok(());
            }
        }
        let md = fs::symlink_metadata(disk).map_err(io_err(disk))?;
        let mtime = FileTime::from_last_modification_time(&md);
        let ft = md.file_type();
        if ft.is_dir() {
            // As for the context: a directory source's contents go into an existing
            // destination, which keeps its metadata.
            let keep = rel.is_empty() && target.is_dir();
            if !target.is_dir() {
                remove_existing(target);
                fs::create_dir_all(target).map_err(io_err(target))?;
            }
            if !keep {
                self.set(target, md.mode() & 0o7777, mtime, true, false)?;
            }
            for (name, child_disk) in view.list(comps) {
                let mut child = comps.to_vec();
                child.push(name.to_string_lossy().into_owned());
                let child_rel = if rel.is_empty() {
                    name.to_string_lossy().into_owned()
                } else {
                    format!("{rel}/{}", name.to_string_lossy())
                };
                self.copy_layers(
                    view,
                    &child,
                    &child_disk,
                    &target.join(&name),
                    &child_rel,
                    excluder,
                )?;
            }
        } else if ft.is_symlink() {
            remove_existing(target);
            let link = fs::read_link(disk).map_err(io_err(disk))?;
            std::os::unix::fs::symlink(&link, target).map_err(io_err(target))?;
            self.set(target, 0o777, mtime, false, true)?;
        } else if ft.is_file() {
            remove_existing(target);
            copy_file_sparse(disk, target)?;
            self.set(target, md.mode() & 0o7777, mtime, false, false)?;
        }
        // Device nodes, fifos and sockets are not copied.
        Ok(())
    }

    fn finish(self) -> Result<(), BuildError> {
        for (path, mtime) in self.dirs.iter().rev() {
            filetime::set_file_times(path, *mtime, *mtime).map_err(io_err(path))?;
        }
        Ok(())
    }
}

/// Copies `src` into `output` (the new file `dst`), hashing the bytes written; returns
/// their digest and count.
fn copy_hashing(
    src: &Path,
    output: &mut fs::File,
    dst: &Path,
    buf: &mut Vec<u8>,
) -> Result<(Digest, u64), BuildError> {
    let mut input = fs::File::open(src).map_err(io_err(src))?;
    let meta = input.metadata().map_err(io_err(src))?;
    if buf.len() < COPY_BUFFER {
        buf.resize(COPY_BUFFER, 0);
    }
    let failed = |failed| match failed {
        CopyFailed::Read(e) => io_err(src)(e),
        CopyFailed::Write(e) => io_err(dst)(e),
    };
    if !sparse::may_have_holes(&meta) {
        return copy_hashed(&mut input, output, buf).map_err(failed);
    }
    // A sparse file stays sparse (its holes are neither read nor written).
    let mut reader = sparse::HoleReader::new(input, meta.len(), true);
    let mut writer = sparse::SparseWriter::new(output);
    let copied = copy_hashed(&mut reader, &mut writer, buf).map_err(failed)?;
    writer.finish().map_err(io_err(dst))?;
    Ok(copied)
}

/// Copies the file `src` to the new file `dst`, keeping its holes.
fn copy_file_sparse(src: &Path, dst: &Path) -> Result<(), BuildError> {
    let input = fs::File::open(src).map_err(io_err(src))?;
    let meta = input.metadata().map_err(io_err(src))?;
    let output = fs::File::create(dst).map_err(io_err(dst))?;
    output
        .set_permissions(meta.permissions())
        .map_err(io_err(dst))?;
    sparse::copy_sparse(input, &meta, &output).map_err(io_err(dst))?;
    Ok(())
}

/// The buffer [`copy_hashing`] reads through (one per copying thread).
const COPY_BUFFER: usize = 256 << 10;

/// Whether `path` is a tar archive (possibly compressed).
fn is_tar(path: &Path) -> bool {
    let Ok(f) = fs::File::open(path) else {
        return false;
    };
    let Ok((_, mut r)) = compress::decompress_auto(BufReader::new(f)) else {
        return false;
    };
    let mut header = [0u8; 512];
    let mut n = 0;
    while n < 512 {
        match r.read(&mut header[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return false,
        }
    }
    n == 512 && &header[257..262] == b"ustar"
}

/// Extracts a local archive into `dir` (ADD), safely (never outside `dir`).
fn extract(path: &Path, dir: &Path) -> Result<(), BuildError> {
    let f = fs::File::open(path).map_err(io_err(path))?;
    let (_, r) = compress::decompress_auto(BufReader::new(f)).map_err(io_err(path))?;
    apply_tar(r, dir, &ApplyOptions::default())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    fn entry(path: &str, content: &[u8], digest: Digest) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File { digest },
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: content.len() as u64,
            mtime_sec: 1_700_000_000,
            mtime_nsec: 5,
        }
    }

    fn ino(path: &Path) -> u64 {
        fs::metadata(path).unwrap().ino()
    }

    /// Copies `src` to `<staging>/dst.txt` through a `FileCopier` on `pool`.
    fn copy(pool: &Pool, staging: &Path, src: &Path, entry: &Entry) {
        let EntryKind::File { digest } = &entry.kind else {
            unreachable!()
        };
        fs::create_dir_all(staging).unwrap();
        let copier = FileCopier {
            root: staging,
            pool: Some(pool),
            owner: (0, 0),
            chmod: None,
        };
        let job = FileJob {
            src: src.to_path_buf(),
            dst: staging.join("dst.txt"),
            entry,
            digest,
        };
        copier.copy_all(std::slice::from_ref(&job)).unwrap();
    }

    #[test]
    fn pool_shares_verified_files_only() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src.txt");
        fs::write(&src, b"hello").unwrap();
        let pool = Pool::new(tmp.path().join("pool"));
        let good = entry(
            "src.txt",
            b"hello",
            Digest(sha2::Sha256::digest(b"hello").into()),
        );

        // First copy: a real copy, added to the pool; second: the same inode, linked.
        copy(&pool, &tmp.path().join("s1"), &src, &good);
        copy(&pool, &tmp.path().join("s2"), &src, &good);
        let (a, b) = (tmp.path().join("s1/dst.txt"), tmp.path().join("s2/dst.txt"));
        assert_eq!(fs::read(&b).unwrap(), b"hello");
        assert_eq!(ino(&a), ino(&b));
        assert_eq!(fs::metadata(&a).unwrap().mode() & 0o7777, 0o644);
        assert_eq!(fs::read_dir(tmp.path().join("pool")).unwrap().count(), 1);

        // A file whose content no longer matches the digest it was scanned with (changed
        // meanwhile) is copied as it is now, but never pooled.
        let stale = entry("src.txt", b"hello", Digest([7; 32]));
        copy(&pool, &tmp.path().join("s3"), &src, &stale);
        copy(&pool, &tmp.path().join("s4"), &src, &stale);
        let (c, d) = (tmp.path().join("s3/dst.txt"), tmp.path().join("s4/dst.txt"));
        assert_ne!(ino(&c), ino(&d));
        assert_eq!(fs::read_dir(tmp.path().join("pool")).unwrap().count(), 1);

        // Dropping every snapshot's link leaves the pooled file alone in the pool: swept.
        for s in ["s1", "s2"] {
            fs::remove_dir_all(tmp.path().join(s)).unwrap();
        }
        pool.sweep();
        assert_eq!(fs::read_dir(tmp.path().join("pool")).unwrap().count(), 0);
    }
}
