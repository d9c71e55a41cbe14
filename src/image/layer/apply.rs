//! Layer applier: unpacks a layer tar into a directory and never writes outside it.
//!
//! Every entry path must be relative and free of `..`; no entry may be written through a
//! symlink (a symlink anywhere in the parent chain of an entry or a hard-link target is
//! refused, whether it points inside or outside); hard links must name an existing
//! non-directory inside the target. Existing files at an entry's path are removed first, so a
//! symlink at the final component is replaced, never followed.
//!
//! Whiteouts are either applied (files removed — [`WhiteoutMode::Apply`], for flattening a
//! stack into one rootfs) or converted to overlayfs form ([`WhiteoutMode::Overlay`]: a 0/0
//! char device for `.wh.name`, `trusted.overlay.opaque=y` for `.wh..wh..opq`), for snapshots
//! used as overlay lower dirs.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use super::{io_err, LayerError, WHITEOUT_OPAQUE, WHITEOUT_PREFIX};
use crate::image::sparse::SparseWriter;
use crate::image::{compress, limits};

/// What to do with whiteout entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhiteoutMode {
    /// Delete what they name (the target holds the layers below).
    #[default]
    Apply,
    /// Turn them into overlayfs whiteouts (the target is an empty snapshot dir).
    Overlay,
}

/// How to apply a layer.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// What to do with whiteouts.
    pub whiteouts: WhiteoutMode,
    /// Skip `chown` (for unprivileged use; owners are then the caller's).
    pub no_chown: bool,
    /// Give every entry this owner (uid, gid) instead of the tar's (`cp` without `-a`).
    pub owner: Option<(u32, u32)>,
}

/// Counts from applying a layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Entries read.
    pub entries: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// Applies a layer (compression autodetected) to `target`.
pub fn apply_layer<R: Read>(
    reader: R,
    target: &Path,
    options: &ApplyOptions,
) -> Result<ApplyStats, LayerError> {
    let (_, tar) = compress::decompress_auto(reader).map_err(LayerError::Read)?;
    apply_tar(tar, target, options)
}

/// Applies an uncompressed layer tar to `target` (which must exist).
pub fn apply_tar<R: Read>(
    reader: R,
    target: &Path,
    options: &ApplyOptions,
) -> Result<ApplyStats, LayerError> {
    let mut archive = tar::Archive::new(reader);
    let mut stats = ApplyStats::default();
    let mut seen: HashSet<PathBuf> = HashSet::new();
    let mut dir_times: Vec<(PathBuf, filetime::FileTime)> = Vec::new();
    let mut known = KnownDirs::default();
    let mut buf = vec![0u8; 256 << 10];
    for entry in archive.entries().map_err(LayerError::Read)? {
        let mut entry = entry.map_err(LayerError::Read)?;
        stats.entries += 1;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let rel = safe_rel(&raw)?;
        let kind = entry.header().entry_type();
        let header = entry.header().clone();
        let xattrs = entry_xattrs(&mut entry).map_err(LayerError::Read)?;
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            continue;
        }
        if !seen.insert(rel.clone()) && !rel.as_os_str().is_empty() {
            return Err(LayerError::Duplicate(raw));
        }
        if rel.as_os_str().is_empty() {
            // The root itself ("./"): take its mode, keep it a directory.
            if kind == tar::EntryType::Directory {
                set_meta(target, &header, &xattrs, options, true)?;
                dir_times.push((target.to_path_buf(), mtime_of(&header)));
            }
            continue;
        }
        let dest = target.join(&rel);
        if let Some(problem) = limits::host_path_problem(&dest) {
            return Err(unsafe_entry(&limits::abbreviate(&raw), &problem));
        }
        let parent = rel.parent().unwrap_or(Path::new(""));
        known.ensure(target, parent, &raw)?;
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();

        if name == WHITEOUT_OPAQUE {
            let dir = target.join(parent);
            match options.whiteouts {
                WhiteoutMode::Overlay => {
                    // Without CAP_SYS_ADMIN (chroot isolation in an unprivileged
                    // container): the rootless form, which rbuild's readers accept too.
                    xattr::set(&dir, "trusted.overlay.opaque", b"y")
                        .or_else(|_| xattr::set(&dir, "user.overlay.opaque", b"y"))
                        .map_err(io_err(&dir))?;
                }
                WhiteoutMode::Apply => {
                    known.forget_below(parent);
                    clear_dir_except(&dir, parent, &seen)?
                }
            }
            continue;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            if hidden.starts_with(".wh.") || hidden.is_empty() {
                continue; // aufs metadata (.wh..wh.plnk etc.): nothing to apply
            }
            known.forget(&parent.join(hidden));
            let victim = target.join(parent).join(hidden);
            remove_existing(&victim)?;
            if options.whiteouts == WhiteoutMode::Overlay {
                mknod(&victim, nix::sys::stat::SFlag::S_IFCHR, 0, 0, 0)?;
            }
            continue;
        }

        known.forget(&rel);
        let existing = fs::symlink_metadata(&dest).ok();
        match kind {
            tar::EntryType::Directory => {
                if !existing.as_ref().is_some_and(|m| m.is_dir()) {
                    remove_existing(&dest)?;
                    fs::create_dir(&dest).map_err(io_err(&dest))?;
                }
                set_meta(&dest, &header, &xattrs, options, true)?;
                dir_times.push((dest.clone(), mtime_of(&header)));
                continue;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                remove_existing(&dest)?;
                let file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&dest)
                    .map_err(io_err(&dest))?;
                // Runs of zero blocks become holes: a layer's large zero-filled file (a
                // sparse file when it was written) takes no disk in the snapshot.
                // Read in large pieces: whole blocks go from `buf` to the file directly.
                let mut out = SparseWriter::new(&file);
                loop {
                    let n = match entry.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(LayerError::Read(e)),
                    };
                    out.write_all(&buf[..n]).map_err(io_err(&dest))?;
                    stats.bytes += n as u64;
                }
                out.finish().map_err(io_err(&dest))?;
            }
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(LayerError::Read)?
                    .ok_or_else(|| unsafe_entry(&raw, "symlink without a target"))?;
                check_link_target(&raw, link.as_os_str().as_bytes())?;
                remove_existing(&dest)?;
                symlink(&link, &dest).map_err(io_err(&dest))?;
            }
            tar::EntryType::Link => {
                let (link_raw, link_rel) = hard_link_target(&entry, &raw)?;
                let link_parent = link_rel.parent().unwrap_or(Path::new(""));
                ensure_no_symlinks(target, link_parent, &raw)?;
                let source = target.join(&link_rel);
                match fs::symlink_metadata(&source) {
                    Ok(m) if !m.is_dir() => {}
                    _ => {
                        return Err(unsafe_entry(
                            &raw,
                            &format!(
                            "hard link target {link_raw:?} is not a file in this layer or below"
                        ),
                        ))
                    }
                }
                if source != dest {
                    remove_existing(&dest)?;
                    fs::hard_link(&source, &dest).map_err(io_err(&dest))?;
                }
                continue; // a hard link shares its target's metadata
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                use nix::sys::stat::SFlag;
                let flag = match kind {
                    tar::EntryType::Char => SFlag::S_IFCHR,
                    tar::EntryType::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                let major = entry.header().device_major().ok().flatten().unwrap_or(0);
                let minor = entry.header().device_minor().ok().flatten().unwrap_or(0);
                remove_existing(&dest)?;
                let mode = entry.header().mode().unwrap_or(0o600);
                mknod(&dest, flag, mode, major, minor)?;
            }
            other => {
                return Err(LayerError::Unsupported {
                    path: raw,
                    kind: format!("{other:?}"),
                })
            }
        }
        set_meta(&dest, &header, &xattrs, options, false)?;
        let t = mtime_of(&header);
        filetime::set_symlink_file_times(&dest, t, t).map_err(io_err(&dest))?;
    }
    // Directory mtimes last: creating their children changed them.
    for (dir, t) in dir_times.iter().rev() {
        filetime::set_symlink_file_times(dir, *t, *t).map_err(io_err(dir))?;
    }
    Ok(stats)
}

/// Normalises an entry path: relative, `.` dropped, no `..`, no absolute paths, and short
/// enough for Linux ([`limits::path_problem`]): every layer is checked here, whether loaded,
/// imported, pulled or built.
pub fn safe_rel(raw: &str) -> Result<PathBuf, LayerError> {
    let out = rel_inside(raw).map_err(|why| unsafe_entry(raw, why))?;
    if let Some(problem) = limits::path_problem(out.as_os_str().as_bytes()) {
        return Err(unsafe_entry(&limits::abbreviate(raw), &problem));
    }
    Ok(out)
}

/// `raw` without `.` components; why not when it is absolute or has `..`.
fn rel_inside(raw: &str) -> Result<PathBuf, &'static str> {
    let mut out = PathBuf::new();
    for c in Path::new(raw).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => return Err("path contains `..`"),
            Component::RootDir | Component::Prefix(_) => return Err("absolute path"),
        }
    }
    Ok(out)
}

/// A hard link entry's target as written and as a path relative to the target dir
/// (refused when it is missing, leaves the target or is too long for Linux).
fn hard_link_target<R: Read>(
    entry: &tar::Entry<'_, R>,
    raw: &str,
) -> Result<(String, PathBuf), LayerError> {
    let link_raw = entry
        .link_name_bytes()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .ok_or_else(|| unsafe_entry(raw, "hard link without a target"))?;
    let link_rel = rel_inside(&link_raw).map_err(|_| {
        unsafe_entry(
            raw,
            &format!(
                "hard link to {:?} points outside the target",
                limits::abbreviate(&link_raw)
            ),
        )
    })?;
    if let Some(problem) = limits::path_problem(link_rel.as_os_str().as_bytes()) {
        return Err(unsafe_entry(
            &limits::abbreviate(raw),
            &format!("hard link target: {problem}"),
        ));
    }
    Ok((link_raw, link_rel))
}

/// Refuses a symlink target `symlink(2)` would refuse (too long).
fn check_link_target(raw: &str, target: &[u8]) -> Result<(), LayerError> {
    match limits::link_target_problem(target) {
        Some(problem) => Err(unsafe_entry(&limits::abbreviate(raw), &problem)),
        None => Ok(()),
    }
}

fn unsafe_entry(raw: &str, reason: &str) -> LayerError {
    LayerError::Unsafe {
        path: raw.to_string(),
        reason: reason.to_string(),
    }
}

/// The parent directory of the last entry (relative to the target), known to be a chain of
/// real directories (no symlinks) that this apply created or checked. The next entry only
/// checks the components of its parent below what the two share: checking every component
/// of every entry costs the depth cubed in path lookups, and a 2,000-level tree took minutes.
#[derive(Default)]
struct KnownDirs {
    known: PathBuf,
}

impl KnownDirs {
    /// Creates missing parent directories of an entry, refusing to go through symlinks.
    fn ensure(&mut self, target: &Path, parent: &Path, raw: &str) -> Result<(), LayerError> {
        let shared = self
            .known
            .components()
            .zip(parent.components())
            .take_while(|(a, b)| a == b)
            .count();
        ensure_parents(target, parent, shared, raw)?;
        self.known = parent.to_path_buf();
        Ok(())
    }

    /// `rel` is about to be removed or replaced: it and what is below it are no longer known.
    fn forget(&mut self, rel: &Path) {
        if self.known.starts_with(rel) {
            self.known = rel.parent().map(Path::to_path_buf).unwrap_or_default();
        }
    }

    /// The children of `dir` are about to be removed.
    fn forget_below(&mut self, dir: &Path) {
        if self.known.starts_with(dir) {
            self.known = dir.to_path_buf();
        }
    }
}

/// Creates missing parent directories of an entry, refusing to go through symlinks; the first
/// `known` components are known to be directories already.
fn ensure_parents(target: &Path, parent: &Path, known: usize, raw: &str) -> Result<(), LayerError> {
    let mut cur = target.to_path_buf();
    for (i, c) in parent.components().enumerate() {
        cur.push(c);
        if i < known {
            continue;
        }
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(unsafe_entry(
                    raw,
                    &format!(
                        "it would be written through the symlink {:?}",
                        cur.strip_prefix(target).unwrap_or(&cur)
                    ),
                ))
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(unsafe_entry(
                    raw,
                    &format!(
                        "parent {:?} is not a directory",
                        cur.strip_prefix(target).unwrap_or(&cur)
                    ),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&cur).map_err(io_err(&cur))?;
            }
            Err(e) => return Err(io_err(&cur)(e)),
        }
    }
    Ok(())
}

/// Like [`ensure_parents`] but creates nothing.
fn ensure_no_symlinks(target: &Path, parent: &Path, raw: &str) -> Result<(), LayerError> {
    let mut cur = target.to_path_buf();
    for c in parent.components() {
        cur.push(c);
        if fs::symlink_metadata(&cur).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(unsafe_entry(raw, "hard link target goes through a symlink"));
        }
    }
    Ok(())
}

/// Removes whatever is at `path` (never following a symlink); nothing there is fine.
fn remove_existing(path: &Path) -> Result<(), LayerError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).map_err(io_err(path)),
        Ok(_) => fs::remove_file(path).map_err(io_err(path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Opaque dir in apply mode: removes the children that this layer did not write.
fn clear_dir_except(dir: &Path, rel: &Path, seen: &HashSet<PathBuf>) -> Result<(), LayerError> {
    for e in fs::read_dir(dir).map_err(io_err(dir))? {
        let e = e.map_err(io_err(dir))?;
        if !seen.contains(&rel.join(e.file_name())) {
            remove_existing(&e.path())?;
        }
    }
    Ok(())
}

fn mknod(
    path: &Path,
    kind: nix::sys::stat::SFlag,
    mode: u32,
    major: u32,
    minor: u32,
) -> Result<(), LayerError> {
    let perm = nix::sys::stat::Mode::from_bits_truncate(mode & 0o7777);
    let dev = nix::sys::stat::makedev(u64::from(major), u64::from(minor));
    nix::sys::stat::mknod(path, kind, perm, dev).map_err(|e| LayerError::Io {
        path: path.to_path_buf(),
        error: io::Error::from(e),
    })
}

fn mtime_of(header: &tar::Header) -> filetime::FileTime {
    let secs = header.mtime().unwrap_or(0);
    filetime::FileTime::from_unix_time(i64::try_from(secs).unwrap_or(0), 0)
}

/// The `SCHILY.xattr.*` pax records of an entry, minus overlayfs ones (a layer must not steer
/// overlayfs).
fn entry_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    if let Some(exts) = entry.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            let Ok(key) = ext.key() else { continue };
            let Some(name) = key.strip_prefix("SCHILY.xattr.") else {
                continue;
            };
            if name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") {
                continue;
            }
            out.push((name.to_string(), ext.value_bytes().to_vec()));
        }
    }
    Ok(out)
}

/// Owner, mode and xattrs, in the order that keeps them all (chown clears setuid and
/// `security.capability`).
fn set_meta(
    path: &Path,
    h: &tar::Header,
    xattrs: &[(String, Vec<u8>)],
    options: &ApplyOptions,
    is_dir: bool,
) -> Result<(), LayerError> {
    let is_symlink = h.entry_type() == tar::EntryType::Symlink;
    if !options.no_chown {
        let (uid, gid) = match options.owner {
            Some((uid, gid)) => (Some(uid), Some(gid)),
            None => (
                h.uid().ok().and_then(|u| u32::try_from(u).ok()),
                h.gid().ok().and_then(|g| u32::try_from(g).ok()),
            ),
        };
        std::os::unix::fs::lchown(path, uid, gid).map_err(io_err(path))?;
    }
    if !is_symlink {
        let mode = h.mode().unwrap_or(if is_dir { 0o755 } else { 0o644 }) & 0o7777;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_err(path))?;
    }
    for (name, value) in xattrs {
        if let Err(e) = xattr::set(path, name, value) {
            if is_symlink {
                continue; // most xattr namespaces are not allowed on symlinks
            }
            return Err(io_err(path)(e));
        }
    }
    Ok(())
}

/// Checks an uncompressed layer tar without writing anything, by the rules [`apply_tar`]
/// enforces that do not depend on the lower layers: relative paths without `..`, no entry
/// (or hard-link target) below a symlink of the same layer, hard-link targets inside, no
/// duplicate entries. `load` and `import` run it so bad layers never enter the store.
pub fn check_tar<R: Read>(reader: R) -> Result<ApplyStats, LayerError> {
    let mut archive = tar::Archive::new(reader);
    let mut stats = ApplyStats::default();
    let mut seen: HashSet<PathBuf> = HashSet::new();
    let mut symlinks: HashSet<PathBuf> = HashSet::new();
    // Most layers have no symlink above another entry: skip the walk up then (it costs
    // the path's depth squared in hashing, which adds up in a deeply nested layer).
    let below_symlink = |symlinks: &HashSet<PathBuf>, rel: &Path| -> Option<PathBuf> {
        if symlinks.is_empty() {
            return None;
        }
        rel.ancestors()
            .skip(1)
            .find(|a| symlinks.contains(*a))
            .map(Path::to_path_buf)
    };
    for entry in archive.entries().map_err(LayerError::Read)? {
        let mut entry = entry.map_err(LayerError::Read)?;
        stats.entries += 1;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let rel = safe_rel(&raw)?;
        let kind = entry.header().entry_type();
        if rel.as_os_str().is_empty() {
            continue;
        }
        if !seen.insert(rel.clone()) {
            return Err(LayerError::Duplicate(raw));
        }
        if let Some(link) = below_symlink(&symlinks, &rel) {
            return Err(unsafe_entry(
                &raw,
                &format!("it would be written through the symlink {link:?}"),
            ));
        }
        match kind {
            tar::EntryType::Symlink => {
                let target = entry.link_name_bytes().unwrap_or_default();
                check_link_target(&raw, &target)?;
                symlinks.insert(rel);
            }
            tar::EntryType::Link => {
                let (_, link_rel) = hard_link_target(&entry, &raw)?;
                if below_symlink(&symlinks, &link_rel).is_some() {
                    return Err(unsafe_entry(
                        &raw,
                        "hard link target goes through a symlink",
                    ));
                }
            }
            _ => {}
        }
        stats.bytes += io::copy(&mut entry, &mut io::sink()).map_err(LayerError::Read)?;
    }
    Ok(stats)
}

/// Bytes of file content in an uncompressed layer tar (what [`check_tar`] counts as
/// `bytes`, and [`super::LayerInfo::content_size`] records), reading it to its end-of-archive
/// marker and checking nothing else: for layers a registry serves, which `apply_tar` checks
/// when they are unpacked.
pub fn content_size<R: Read>(reader: R) -> io::Result<u64> {
    let mut archive = tar::Archive::new(reader);
    let mut bytes = 0;
    for entry in archive.entries()? {
        bytes += io::copy(&mut entry?, &mut io::sink())?;
    }
    Ok(bytes)
}
