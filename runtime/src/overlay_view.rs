//! A container's filesystem seen from the host without running it: its overlay (image
//! layers and upper dir) mounted detached, reached through `/proc/self/fd/N`.
//!
//! The mount is made with the new mount API and never attached to any mount namespace: no
//! mount point to create or clean up, nothing left behind when rbuild is killed (the kernel
//! drops the mount with the last descriptor), and every thread of the process can use the
//! path. The kernel merges the layers, so whiteouts and opaque directories are honoured
//! exactly as in the container.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::rootfs::{overlay_fsmount, RootfsError};

/// An overlay mounted detached; see the module docs.
#[derive(Debug)]
pub struct OverlayView {
    mount: OwnedFd,
}

impl OverlayView {
    /// The merged view of `layers_top_first`, read-only: for a running container's upper
    /// dir, pass it as the topmost layer (its overlay is already mounted read-write, and an
    /// upper dir takes one read-write mount at a time). Needs at least two layers.
    pub fn read_only(layers_top_first: &[PathBuf]) -> Result<OverlayView, RootfsError> {
        Self::mount(layers_top_first, None)
    }

    /// The container's overlay, read-write (writes go to `upper` as they would from inside
    /// the container): only for a container that is not running.
    pub fn writable(
        lowers_top_first: &[PathBuf],
        upper: &Path,
        work: &Path,
    ) -> Result<OverlayView, RootfsError> {
        Self::mount(lowers_top_first, Some((upper, work)))
    }

    fn mount(
        layers: &[PathBuf],
        upper_work: Option<(&Path, &Path)>,
    ) -> Result<OverlayView, RootfsError> {
        let lowers: Vec<&Path> = layers.iter().map(PathBuf::as_path).collect();
        let rootless = !nix::unistd::geteuid().is_root();
        let mount = overlay_fsmount(&lowers, upper_work, rootless, false).map_err(|source| {
            RootfsError::Mount {
                what: "overlay".into(),
                target: upper_work
                    .map(|(upper, _)| upper)
                    .or(lowers.first().copied())
                    .unwrap_or(Path::new(""))
                    .to_path_buf(),
                source,
            }
        })?;
        Ok(OverlayView { mount })
    }

    /// The root of the view, usable as a directory path while `self` lives.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.mount.as_raw_fd()))
    }
}
