//! Who may reach into the store: its owner only.
//!
//! Unpacked snapshots, container upper dirs, build work dirs and cache mounts hold files
//! exactly as images and containers made them: setuid-root binaries (`chmod 4755` inside
//! `rbuild run`), device nodes from layers, files only root inside a container could read.
//! Reachable by other local users, any of them could run such a setuid copy (euid 0) or open
//! such a device. So, as docker (`/var/lib/docker` 0710, `overlay2/` 0710) and podman
//! (`/var/lib/containers/storage` 0700) do, the store root is 0700 and so is every directory
//! below it that holds such content. 0700 rather than docker's 0710 on the root: docker needs
//! group search for its remapped-root group, rbuild has no such group, and nothing outside
//! the owner's processes reads the store (skopeo and umoci run as the owner; overlayfs reads
//! lower dirs with the mounter's credentials, so a non-root user *inside* a container is not
//! affected). Blobs stay 0644: behind a 0700 root that exposes nothing.
//!
//! A store made before this rule (root 0755) is fixed when it is opened, by its owner only;
//! the check costs one `stat` of the root when the modes are right.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::{io_err, StoreError};

/// The mode of the store root and of [`PRIVATE_DIRS`].
pub(super) const PRIVATE_MODE: u32 = 0o700;

/// Directories under the root that hold image or container content (see the module docs);
/// [`super::Store::open`] creates them so that they never exist with a looser mode.
pub(super) const PRIVATE_DIRS: [&str; 6] = [
    "snapshots",
    "containers",
    "tmp",
    "pool",
    "cache-mounts",
    "volumes",
];

/// Makes `root` and its [`PRIVATE_DIRS`] owner-only when `root` has another mode and belongs
/// to the calling user (a store of someone else is left as it is). The root is changed last,
/// so a crash in between leaves it wrong and the next open finishes the job.
pub(super) fn restrict(root: &Path) -> Result<(), StoreError> {
    let md = fs::metadata(root).map_err(io_err(root))?;
    if md.mode() & 0o7777 == PRIVATE_MODE {
        return Ok(());
    }
    let me = nix::unistd::geteuid().as_raw();
    if md.uid() != me {
        return Ok(());
    }
    for dir in PRIVATE_DIRS {
        let path = root.join(dir);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() && m.uid() == me && m.mode() & 0o7777 != PRIVATE_MODE => {
                set_private(&path)?
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&path)(e)),
        }
    }
    set_private(root)
}

fn set_private(path: &Path) -> Result<(), StoreError> {
    fs::set_permissions(path, fs::Permissions::from_mode(PRIVATE_MODE)).map_err(io_err(path))
}
