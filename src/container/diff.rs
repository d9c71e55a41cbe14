//! `diff`: what a container changed in its image's filesystem, as docker's `A`/`C`/`D`
//! lines.
//!
//! The container's upper dir is compared with its image's merged layers: an entry of the
//! upper dir is Added when the image has no such path, Changed when it has; a whiteout is a
//! Delete. A directory the container only passed through (copied up by the overlay, such as
//! `/etc` where the runtime made its mount points) is not listed: a directory is Changed
//! when its mode or owner differs from the image's, or, as docker, when something directly
//! in it was added or deleted. Everything under a replaced (opaque) directory is Added.
//! Sorted by path, parents before their children.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rbuild_runtime::changes::{is_opaque, is_whiteout};

use super::view::Layers;
use super::{io_err, ContainerError};
use crate::store::Store;

/// What happened to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    Changed,
    Added,
    Deleted,
}

impl ChangeKind {
    /// Docker's letter: `C`, `A` or `D`.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Changed => 'C',
            ChangeKind::Added => 'A',
            ChangeKind::Deleted => 'D',
        }
    }
}

/// One line of `diff`: a path as the container sees it (absolute).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathChange {
    pub kind: ChangeKind,
    pub path: PathBuf,
}

/// The changes of container `name` (name, ID or ID prefix).
pub fn diff(store: &Store, name: &str) -> Result<Vec<PathChange>, ContainerError> {
    let record = store.resolve_container(name)?;
    let layers = Layers::of(store, &record)?;
    let image = layers.image()?;
    upper_changes(&layers.upper, &image.path())
}

/// The changes an overlay upper dir `upper` makes to the filesystem `lower`, sorted.
pub fn upper_changes(upper: &Path, lower: &Path) -> Result<Vec<PathChange>, ContainerError> {
    let mut out = Vec::new();
    walk(upper, Some(lower), Path::new("/"), &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Walks the upper dir `dir` (the container's `rel`), whose counterpart in the image is
/// `lower` (`None` when the image has none, or it is hidden); returns whether an entry
/// directly in it was added or deleted.
fn walk(
    dir: &Path,
    lower: Option<&Path>,
    rel: &Path,
    out: &mut Vec<PathChange>,
) -> Result<bool, ContainerError> {
    let names = crate::image::layer::treediff::sorted_names(dir)?;
    let mut added_or_deleted = false;
    for name in names {
        let path = dir.join(&name);
        let rel = rel.join(&name);
        let meta = fs::symlink_metadata(&path).map_err(io_err(&path))?;
        let below = lower.map(|l| l.join(&name));
        let old = below.as_deref().and_then(|b| fs::symlink_metadata(b).ok());
        if is_whiteout(&meta) {
            if old.is_some() {
                out.push(PathChange {
                    kind: ChangeKind::Deleted,
                    path: rel,
                });
                added_or_deleted = true;
            }
            continue;
        }
        let kind = if old.is_some() {
            ChangeKind::Changed
        } else {
            added_or_deleted = true;
            ChangeKind::Added
        };
        if !meta.is_dir() {
            out.push(PathChange { kind, path: rel });
            continue;
        }
        let opaque = is_opaque(&path).map_err(io_err(&path))?;
        let old_dir = old.as_ref().is_some_and(|m| m.is_dir()) && !opaque;
        let at = out.len();
        let changed_inside = walk(&path, below.as_deref().filter(|_| old_dir), &rel, out)?;
        let same = old.as_ref().is_some_and(|o| {
            o.is_dir() && o.mode() == meta.mode() && o.uid() == meta.uid() && o.gid() == meta.gid()
        });
        if kind == ChangeKind::Added || opaque || !same || changed_inside {
            out.insert(at, PathChange { kind, path: rel });
        }
    }
    Ok(added_or_deleted)
}
