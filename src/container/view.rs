//! Reaching a container's filesystem from the host, for `export`, `cp` and `diff`.
//!
//! A stopped container's overlay is mounted detached ([`rbuild_runtime::OverlayView`]: the
//! kernel merges its layers, whiteouts and opaque directories as in the container; nothing
//! is left mounted if rbuild is killed). A running container is reached through
//! `/proc/PID/root`: its own mounted root, where writes land as they would from inside
//! (its upper dir takes one read-write mount at a time), and where its volumes are seen, as
//! docker's `cp`. Paths inside are always resolved with [`rbuild_runtime::resolve_in_root`],
//! so a container's symlink never leads out of its root.

use std::path::{Path, PathBuf};

use rbuild_runtime::{OverlayView, Rootfs};

use super::{spec_file, ContainerError};
use crate::store::{ContainerRecord, Store};

/// The overlay dirs of a recorded container, from its `spec.json`.
pub struct Layers {
    /// The image's snapshots, topmost first.
    pub lowers_top_first: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
}

impl Layers {
    /// Reads the layers of container `record`.
    pub fn of(store: &Store, record: &ContainerRecord) -> Result<Layers, ContainerError> {
        match spec_file::load(store, &record.id)?.rootfs {
            Rootfs::Overlay {
                lowers,
                upper,
                work,
            } => Ok(Layers {
                lowers_top_first: lowers.into_iter().rev().collect(),
                upper,
                work,
            }),
            Rootfs::Dir(_) => Err(ContainerError::NotOverlay(record.name.clone())),
        }
    }

    /// The container's merged filesystem, read-only (also while it runs).
    pub fn merged(&self) -> Result<OverlayView, ContainerError> {
        let mut layers = vec![self.upper.clone()];
        layers.extend(self.lowers_top_first.iter().cloned());
        Ok(OverlayView::read_only(&layers)?)
    }

    /// The image's filesystem (what the container started from).
    pub fn image(&self) -> Result<Root, ContainerError> {
        match &self.lowers_top_first[..] {
            [only] => Ok(Root::Dir(only.clone())),
            layers => Ok(Root::View(OverlayView::read_only(layers)?)),
        }
    }
}

/// A container's root as a host directory path, alive while this value lives.
pub enum Root {
    /// A running container's root: `/proc/PID/root`.
    Dir(PathBuf),
    /// A mounted view.
    View(OverlayView),
}

impl Root {
    /// The container's root for reading and writing: `/proc/PID/root` while it runs, else its
    /// overlay mounted read-write.
    pub fn open(store: &Store, record: &ContainerRecord) -> Result<Root, ContainerError> {
        if let (true, Some(pid)) = (store.container_running(record), record.pid) {
            return Ok(Root::Dir(PathBuf::from(format!("/proc/{pid}/root"))));
        }
        let layers = Layers::of(store, record)?;
        Ok(Root::View(OverlayView::writable(
            &layers.lowers_top_first,
            &layers.upper,
            &layers.work,
        )?))
    }

    pub fn path(&self) -> PathBuf {
        match self {
            Root::Dir(dir) => dir.clone(),
            Root::View(view) => view.path(),
        }
    }
}

/// `path` (absolute, as the container sees it) resolved inside `root`; with `follow_last`
/// a final symlink is followed too (inside the root), else it is the entry itself.
pub fn resolve(root: &Path, path: &Path, follow_last: bool) -> PathBuf {
    match (follow_last, path.parent(), path.file_name()) {
        (false, Some(parent), Some(name)) => {
            rbuild_runtime::resolve_in_root(root, parent).join(name)
        }
        _ => rbuild_runtime::resolve_in_root(root, path),
    }
}
