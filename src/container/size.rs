//! A container's size as `ps -s` shows it (docker's `SizeRw` and `SizeRootFs`): the bytes
//! of its writable layer, and those plus its image's.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::view::Layers;
use super::{io_err, ContainerError};
use crate::store::{ContainerRecord, Store};

/// The container's sizes in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerSize {
    /// Its writable layer (the overlay's upper dir), counted as docker does: the size of
    /// every entry but directories (files, symlinks, whiteouts), hard links once.
    pub rw: u64,
    /// `rw` plus the image's size (0 when the image is gone).
    pub root_fs: u64,
}

/// Measures container `record` (running or not).
pub fn container_size(
    store: &Store,
    record: &ContainerRecord,
) -> Result<ContainerSize, ContainerError> {
    let layers = Layers::of(store, record)?;
    let mut seen = HashSet::new();
    let rw = tree_size(&layers.upper, &mut seen)?;
    let image = store
        .resolve_image(&record.image_id.to_string())
        .map(|i| i.size())
        .unwrap_or(0);
    Ok(ContainerSize {
        rw,
        root_fs: rw + image,
    })
}

fn tree_size(dir: &Path, seen: &mut HashSet<(u64, u64)>) -> Result<u64, ContainerError> {
    let mut total = 0;
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        // Removed meanwhile (the container's process deleted it).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_err(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        if meta.is_dir() {
            total += tree_size(&entry.path(), seen)?;
        } else if meta.nlink() < 2 || seen.insert((meta.dev(), meta.ino())) {
            total += meta.size();
        }
    }
    Ok(total)
}
