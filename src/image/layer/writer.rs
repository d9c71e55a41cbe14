//! Layer writer: directory, overlayfs upper dir or change set → deterministic tar.
//!
//! Entries are sorted by name, headers are normalised (numeric owners only, no user/group
//! names, no atime/ctime, optional fixed mtime for `SOURCE_DATE_EPOCH`), and everything a
//! root filesystem needs is kept: modes, owners, xattrs (`security.capability` included),
//! hard links (as tar hard links), symlinks, device nodes and fifos. The digest of the output
//! and the DiffID of the tar inside it are computed in the same pass.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rbuild_runtime::dirfd::Dir;

use super::{io_err, LayerError, LayerInfo, WHITEOUT_OPAQUE, WHITEOUT_PREFIX};
use crate::image::compress::{Compression, Compressor};
use crate::image::digest::HashWriter;
use crate::image::oci;
use crate::image::sparse::{may_have_holes, HoleReader};

/// How to write a layer.
#[derive(Debug, Clone)]
pub struct LayerOptions {
    /// Output compression: gzip (default), zstd or none.
    pub compression: Compression,
    /// Compression level (`-o …,compression-level=N`); `None`: the format's default.
    pub level: Option<i32>,
    /// When set, every entry gets this mtime (seconds since the epoch), as for
    /// `SOURCE_DATE_EPOCH`.
    pub mtime: Option<u64>,
}

impl Default for LayerOptions {
    fn default() -> LayerOptions {
        LayerOptions {
            compression: Compression::Gzip,
            level: None,
            mtime: None,
        }
    }
}

impl LayerOptions {
    /// The OCI media type of a layer compressed as `compression`.
    pub fn media_type(compression: Compression) -> &'static str {
        match compression {
            Compression::Gzip => oci::MEDIA_LAYER_GZIP,
            Compression::Zstd => oci::MEDIA_LAYER_ZSTD,
            _ => oci::MEDIA_LAYER_TAR,
        }
    }
}

/// One change of a change set, relative to the root it is read from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    /// Add or replace this path (a directory with all its contents) from the root.
    Add(PathBuf),
    /// Delete this path: written as a `.wh.<name>` whiteout.
    Delete(PathBuf),
    /// Hide everything the lower layers have in this directory: `.wh..wh..opq`.
    Opaque(PathBuf),
}

/// What a layer is made from.
#[derive(Debug, Clone, Copy)]
pub enum LayerSource<'a> {
    /// Every entry under a directory (the directory itself is not an entry).
    Dir(&'a Path),
    /// An overlayfs upper dir: whiteout char devices (0/0) become `.wh.<name>` and directories
    /// with `trusted.overlay.opaque=y` (or `user.overlay.opaque=y`) get `.wh..wh..opq`.
    OverlayUpper(&'a Path),
    /// Selected changes, with file contents read from `root`.
    Changes {
        root: &'a Path,
        changes: &'a [Change],
    },
    /// The entry at `path` (not followed if a symlink) under the name `name`, and for a
    /// directory everything below it (`cp`'s stream).
    Entry { path: &'a Path, name: &'a Path },
}

/// Writes `source` as a compressed layer into `out`; returns `out` and the layer's digests.
pub fn write_layer<W: Write>(
    source: &LayerSource<'_>,
    options: &LayerOptions,
    out: W,
) -> Result<(W, LayerInfo), LayerError> {
    let compressed = HashWriter::new(out);
    let compressor = Compressor::with_level(options.compression, options.level, compressed)
        .map_err(LayerError::Write)?;
    let uncompressed = HashWriter::new(compressor);
    let (uncompressed, content_size) = write_tar_counted(source, options.mtime, uncompressed)?;
    let (compressor, diff_id, uncompressed_size) = uncompressed.finish();
    let (compressed, gzip_members) = compressor
        .finish_with_members()
        .map_err(LayerError::Write)?;
    let (out, digest, size) = compressed.finish();
    let media_type = LayerOptions::media_type(options.compression);
    Ok((
        out,
        LayerInfo {
            digest,
            diff_id,
            size,
            uncompressed_size,
            content_size: Some(content_size),
            media_type: media_type.to_string(),
            gzip_members,
        },
    ))
}

/// Writes `source` as an uncompressed tar into `out` and returns `out`.
pub fn write_tar<W: Write>(
    source: &LayerSource<'_>,
    mtime: Option<u64>,
    out: W,
) -> Result<W, LayerError> {
    write_tar_counted(source, mtime, out).map(|(out, _)| out)
}

/// [`write_tar`], also returning the bytes of file content written (the layer's
/// [`LayerInfo::content_size`]).
fn write_tar_counted<W: Write>(
    source: &LayerSource<'_>,
    mtime: Option<u64>,
    out: W,
) -> Result<(W, u64), LayerError> {
    let mut w = TreeWriter {
        builder: tar::Builder::new(out),
        mtime,
        overlay: false,
        links: HashMap::new(),
        content: 0,
    };
    match *source {
        LayerSource::Dir(dir) => w.children(dir, Path::new(""))?,
        LayerSource::OverlayUpper(dir) => {
            w.overlay = true;
            w.children(dir, Path::new(""))?;
        }
        LayerSource::Changes { root, changes } => w.changes(root, changes)?,
        LayerSource::Entry { path, name } => {
            check_rel(name)?;
            w.entry(path, name, true)?
        }
    }
    let content = w.content;
    let out = w.builder.into_inner().map_err(LayerError::Write)?;
    Ok((out, content))
}

struct TreeWriter<W: Write> {
    builder: tar::Builder<W>,
    mtime: Option<u64>,
    overlay: bool,
    /// (dev, ino) of multiply-linked files already written → their path in the tar.
    links: HashMap<(u64, u64), PathBuf>,
    /// Bytes of regular file content written so far.
    content: u64,
}

impl<W: Write> TreeWriter<W> {
    fn children(&mut self, dir: &Path, rel: &Path) -> Result<(), LayerError> {
        let mut entries: Vec<(OsString, fs::DirEntry)> = fs::read_dir(dir)
            .map_err(io_err(dir))?
            .map(|e| e.map(|e| (e.file_name(), e)))
            .collect::<Result<_, _>>()
            .map_err(io_err(dir))?;
        entries.sort_by(|a, b| a.0.as_encoded_bytes().cmp(b.0.as_encoded_bytes()));
        // `fstatat`/`openat` on the open directory: no walk of the whole path per entry.
        let handle = Dir::open(dir).map_err(io_err(dir))?;
        let mut items = Vec::with_capacity(entries.len());
        for (name, entry) in entries {
            let meta = entry.metadata().map_err(io_err(dir.join(&name)))?;
            items.push((name, meta));
        }
        let mut i = 0;
        while i < items.len() {
            // Runs of small regular files are read ahead on several threads.
            let (mut j, mut bytes) = (i, 0);
            while j < items.len()
                && j - i < PRELOAD_BATCH_FILES
                && is_small_file(&items[j].1)
                && bytes + items[j].1.len() <= PRELOAD_BATCH_BYTES
            {
                bytes += items[j].1.len();
                j += 1;
            }
            if j - i < PRELOAD_MIN_FILES {
                let (name, meta) = &items[i];
                let at = Some((&handle, name.as_os_str()));
                let (abs, rel) = (dir.join(name), rel.join(name));
                self.write_entry(&abs, at, &rel, true, meta.clone(), None)?;
                i += 1;
                continue;
            }
            let loaded = preload_batch(&handle, dir, &items[i..j], self.overlay)?;
            for ((name, meta), pre) in items[i..j].iter().zip(loaded) {
                let at = Some((&handle, name.as_os_str()));
                let (abs, rel) = (dir.join(name), rel.join(name));
                self.write_entry(&abs, at, &rel, true, meta.clone(), Some(pre))?;
            }
            i = j;
        }
        Ok(())
    }

    fn changes(&mut self, root: &Path, changes: &[Change]) -> Result<(), LayerError> {
        let mut sorted: Vec<&Change> = changes.iter().collect();
        sorted.sort_by(|a, b| change_path(a).cmp(change_path(b)));
        let mut written_dirs: Vec<PathBuf> = Vec::new();
        for change in sorted {
            let rel = change_path(change);
            check_rel(rel)?;
            // Parent directories first, once each, as tools expect them before their children.
            let mut parents: Vec<&Path> = rel.ancestors().skip(1).collect();
            parents.reverse();
            for p in parents {
                if p.as_os_str().is_empty() || written_dirs.iter().any(|d| d == p) {
                    continue;
                }
                self.entry(&root.join(p), p, false)?;
                written_dirs.push(p.to_path_buf());
            }
            match change {
                Change::Add(rel) => {
                    self.entry(&root.join(rel), rel, true)?;
                    written_dirs.push(rel.clone());
                }
                Change::Delete(rel) => self.whiteout(rel)?,
                Change::Opaque(rel) => {
                    if !written_dirs.iter().any(|d| d == rel) {
                        self.entry(&root.join(rel), rel, false)?;
                        written_dirs.push(rel.clone());
                    }
                    self.plain_marker(&rel.join(WHITEOUT_OPAQUE))?;
                }
            }
        }
        Ok(())
    }

    fn whiteout(&mut self, rel: &Path) -> Result<(), LayerError> {
        let name = rel.file_name().ok_or_else(|| LayerError::Unsafe {
            path: rel.display().to_string(),
            reason: "cannot delete the root".into(),
        })?;
        let mut wh = std::ffi::OsString::from(WHITEOUT_PREFIX);
        wh.push(name);
        let path = rel.with_file_name(wh);
        self.plain_marker(&path)
    }

    /// An empty regular file entry (whiteouts and opaque markers).
    fn plain_marker(&mut self, rel: &Path) -> Result<(), LayerError> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(0);
        h.set_mtime(self.mtime.unwrap_or(0));
        self.builder
            .append_data(&mut h, rel, std::io::empty())
            .map_err(LayerError::Write)
    }

    fn entry(&mut self, abs: &Path, rel: &Path, recurse: bool) -> Result<(), LayerError> {
        let meta = fs::symlink_metadata(abs).map_err(io_err(abs))?;
        self.write_entry(abs, None, rel, recurse, meta, None)
    }

    /// Writes the entry at `abs` (also `name` in the open directory `at`, when given) whose
    /// `lstat` is `meta`, and with `recurse` everything below a directory; a regular file's
    /// xattrs and content come from `preloaded` when they were read ahead.
    fn write_entry(
        &mut self,
        abs: &Path,
        at: Option<(&Dir, &OsStr)>,
        rel: &Path,
        recurse: bool,
        meta: fs::Metadata,
        preloaded: Option<Preloaded>,
    ) -> Result<(), LayerError> {
        let ft = meta.file_type();
        if self.overlay && ft.is_char_device() && meta.rdev() == 0 {
            return self.whiteout(rel);
        }
        if ft.is_socket() {
            return Ok(()); // sockets cannot live in a tar; docker skips them too
        }
        // A regular file is opened once: its xattrs and content are read through the handle.
        let (content, xattrs, opaque) = match preloaded {
            Some(p) => (Some(Content::Memory(p.data)), p.xattrs, false),
            None if ft.is_file() => {
                let opened = match at {
                    Some((dir, name)) => dir.open_file(name),
                    None => fs::File::open(abs),
                };
                let file = opened.map_err(io_err(abs))?;
                let (xattrs, opaque) = read_xattrs(XattrSource::File(&file), abs, self.overlay)?;
                (Some(Content::File(file)), xattrs, opaque)
            }
            None => {
                let (xattrs, opaque) = read_xattrs(XattrSource::Path(abs), abs, self.overlay)?;
                (None, xattrs, opaque)
            }
        };
        let mut h = tar::Header::new_gnu();
        h.set_mode(meta.mode() & 0o7777);
        h.set_uid(u64::from(meta.uid()));
        h.set_gid(u64::from(meta.gid()));
        let mtime = self
            .mtime
            .unwrap_or_else(|| u64::try_from(meta.mtime()).unwrap_or(0));
        h.set_mtime(mtime);
        h.set_size(0);
        if !xattrs.is_empty() {
            let pax: Vec<(String, Vec<u8>)> = xattrs
                .into_iter()
                .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v))
                .collect();
            self.builder
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(LayerError::Write)?;
        }
        if ft.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            let mut name = rel.as_os_str().to_owned();
            name.push("/");
            self.builder
                .append_data(&mut h, Path::new(&name), std::io::empty())
                .map_err(LayerError::Write)?;
            if opaque {
                self.plain_marker(&rel.join(WHITEOUT_OPAQUE))?;
            }
            if recurse {
                self.children(abs, rel)?;
            }
        } else if ft.is_symlink() {
            h.set_entry_type(tar::EntryType::Symlink);
            let target = fs::read_link(abs).map_err(io_err(abs))?;
            self.builder
                .append_link(&mut h, rel, &target)
                .map_err(LayerError::Write)?;
        } else if let Some(content) = content {
            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                if let Some(first) = self.links.get(&key) {
                    h.set_entry_type(tar::EntryType::Link);
                    let first = first.clone();
                    return self
                        .builder
                        .append_link(&mut h, rel, &first)
                        .map_err(LayerError::Write);
                }
                self.links.insert(key, rel.to_path_buf());
            }
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(meta.len());
            match content {
                Content::Memory(data) => self.builder.append_data(&mut h, rel, &data[..]),
                // A file that changes size while we read it would corrupt the tar: read
                // exactly len. Holes are read as zeros without reading them; the entry
                // holds every byte (tar has no holes here, as docker's), and zeros compress.
                Content::File(file) => {
                    let mut reader = HoleReader::new(file, meta.len(), may_have_holes(&meta));
                    self.builder.append_data(&mut h, rel, &mut reader)
                }
            }
            .map_err(LayerError::Write)?;
            self.content += meta.len();
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            h.set_entry_type(if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else {
                tar::EntryType::Fifo
            });
            if !ft.is_fifo() {
                let (major, minor) = split_dev(meta.rdev());
                h.set_device_major(major).map_err(LayerError::Write)?;
                h.set_device_minor(minor).map_err(LayerError::Write)?;
            }
            self.builder
                .append_data(&mut h, rel, std::io::empty())
                .map_err(LayerError::Write)?;
        }
        Ok(())
    }
}

fn change_path(c: &Change) -> &Path {
    match c {
        Change::Add(p) | Change::Delete(p) | Change::Opaque(p) => p,
    }
}

fn check_rel(rel: &Path) -> Result<(), LayerError> {
    let ok = rel
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if ok && !rel.as_os_str().is_empty() {
        Ok(())
    } else {
        Err(LayerError::Unsafe {
            path: rel.display().to_string(),
            reason: "change paths must be relative, without `..`".into(),
        })
    }
}

/// Regular files up to this size are read ahead of the tar stream, on several threads: for
/// many small files the syscalls per file, not the bytes, are the cost.
const PRELOAD_MAX_FILE: u64 = 1 << 20;
/// Bounds of one read-ahead batch (consecutive small files of one directory).
const PRELOAD_BATCH_FILES: usize = 1024;
const PRELOAD_BATCH_BYTES: u64 = 16 << 20;
/// Shorter runs are not worth the threads.
const PRELOAD_MIN_FILES: usize = 32;

/// A regular file's content: open, or read ahead.
enum Content {
    File(fs::File),
    Memory(Vec<u8>),
}

/// A small regular file read ahead: its xattrs and content.
struct Preloaded {
    xattrs: BTreeMap<String, Vec<u8>>,
    data: Vec<u8>,
}

fn is_small_file(meta: &fs::Metadata) -> bool {
    meta.file_type().is_file() && meta.len() <= PRELOAD_MAX_FILE
}

/// Reads the files `items` (names in `handle`, the directory `dir`) on rayon's pool, in
/// pieces of at least a quarter of the batch (so at most 4 threads read, as before); results
/// in order; on an error, the reads not yet started are skipped.
fn preload_batch(
    handle: &Dir,
    dir: &Path,
    items: &[(OsString, fs::Metadata)],
    overlay: bool,
) -> Result<Vec<Preloaded>, LayerError> {
    use rayon::prelude::*;
    items
        .par_iter()
        .with_min_len(items.len().div_ceil(4))
        .map(|(name, meta)| preload(handle, &dir.join(name), name, meta.len(), overlay))
        .collect()
}

fn preload(
    handle: &Dir,
    abs: &Path,
    name: &OsStr,
    len: u64,
    overlay: bool,
) -> Result<Preloaded, LayerError> {
    let file = handle.open_file(name).map_err(io_err(abs))?;
    let (xattrs, _) = read_xattrs(XattrSource::File(&file), abs, overlay)?;
    let mut data = Vec::with_capacity(len as usize);
    file.take(len).read_to_end(&mut data).map_err(io_err(abs))?;
    if data.len() as u64 != len {
        return Err(io_err(abs)(io::Error::other(
            "the file changed size while it was read",
        )));
    }
    Ok(Preloaded { xattrs, data })
}

/// Where xattrs are read from: an open file, or a path (not followed if a symlink).
enum XattrSource<'a> {
    File(&'a fs::File),
    Path(&'a Path),
}

/// Reads the xattrs worth keeping (sorted) and whether the dir is an overlay opaque dir.
fn read_xattrs(
    source: XattrSource<'_>,
    path: &Path,
    overlay: bool,
) -> Result<(BTreeMap<String, Vec<u8>>, bool), LayerError> {
    use xattr::FileExt;
    let mut out = BTreeMap::new();
    let mut opaque = false;
    let listed = match source {
        XattrSource::File(f) => f.list_xattr(),
        XattrSource::Path(p) => xattr::list(p),
    };
    let names = match listed {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(nix::libc::ENOTSUP) => return Ok((out, false)),
        Err(e) => return Err(io_err(path)(e)),
    };
    for name in names {
        let Some(name) = name.to_str().map(str::to_string) else {
            continue;
        };
        let is_overlay = name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.");
        let value = match source {
            XattrSource::File(f) => f.get_xattr(&name),
            XattrSource::Path(p) => xattr::get(p, &name),
        }
        .map_err(io_err(path))?;
        if is_overlay {
            if overlay && name.ends_with(".overlay.opaque") && value.as_deref() == Some(b"y") {
                opaque = true;
            }
            continue;
        }
        if let Some(v) = value {
            out.insert(name, v);
        }
    }
    Ok((out, opaque))
}

/// glibc's `major()`/`minor()` of a `dev_t`.
fn split_dev(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major as u32, minor as u32)
}
