//! The container's extra mounts: binds (volumes) and tmpfs, optionally read-only.

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};

use crate::paths::ensure_mountpoint;
use crate::rootfs::{remount_readonly, RootfsError};
use crate::spec::{MountKind, MountSpec};

/// Errors of the extra mounts.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("mount destination {destination} must be an absolute path")]
    RelativeDestination { destination: PathBuf },
    #[error("bind source {source_path} is not accessible")]
    Source {
        source_path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to create mount point {destination}")]
    MountPoint {
        destination: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to mount {what} on {destination}")]
    Mount {
        what: String,
        destination: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("failed to make {destination} read-only")]
    Readonly {
        destination: PathBuf,
        #[source]
        source: RootfsError,
    },
}

/// Checks what can be checked before any namespace exists.
pub(crate) fn validate(mounts: &[MountSpec]) -> Result<(), MountError> {
    for m in mounts {
        if !m.destination.is_absolute() {
            return Err(MountError::RelativeDestination {
                destination: m.destination.clone(),
            });
        }
        if let MountKind::Bind { source } = &m.kind {
            std::fs::metadata(source).map_err(|e| MountError::Source {
                source_path: source.clone(),
                source: e,
            })?;
        }
    }
    Ok(())
}

/// Mounts `mounts` under `root` (before pivot_root), recording created mount points.
pub(crate) fn apply(
    root: &Path,
    mounts: &[MountSpec],
    created: &mut Vec<PathBuf>,
) -> Result<(), MountError> {
    for m in mounts {
        let is_dir = match &m.kind {
            MountKind::Bind { source } => std::fs::metadata(source)
                .map_err(|e| MountError::Source {
                    source_path: source.clone(),
                    source: e,
                })?
                .is_dir(),
            MountKind::Tmpfs { .. } => true,
        };
        let target =
            ensure_mountpoint(root, &m.destination, is_dir, created).map_err(|source| {
                MountError::MountPoint {
                    destination: m.destination.clone(),
                    source,
                }
            })?;
        let mount_err = |what: String| {
            let destination = m.destination.clone();
            move |source| MountError::Mount {
                what,
                destination,
                source,
            }
        };
        match &m.kind {
            MountKind::Bind { source } => {
                mount(
                    Some(source.as_path()),
                    &target,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(mount_err(format!("bind of {}", source.display())))?;
                if m.readonly {
                    remount_readonly(&target).map_err(|source| MountError::Readonly {
                        destination: m.destination.clone(),
                        source,
                    })?;
                }
            }
            MountKind::Tmpfs {
                size,
                mode,
                options: extra,
            } => {
                let mut options = format!("mode={:o}", mode.unwrap_or(0o1777));
                if let Some(size) = size {
                    options.push_str(&format!(",size={size}"));
                }
                let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
                if m.readonly {
                    flags |= MsFlags::MS_RDONLY;
                }
                for option in extra {
                    match tmpfs_flag(option) {
                        Some((flag, true)) => flags |= flag,
                        Some((flag, false)) => flags &= !flag,
                        None => {
                            options.push(',');
                            options.push_str(option);
                        }
                    }
                }
                mount(
                    Some("tmpfs"),
                    &target,
                    Some("tmpfs"),
                    flags,
                    Some(options.as_str()),
                )
                .map_err(mount_err("tmpfs".to_string()))?;
            }
        }
    }
    Ok(())
}

/// mount(8)'s flag words a tmpfs option may be: the flag and whether the word sets it
/// (`noexec`) or clears it (`exec`); `None` for data options (`uid=0`).
fn tmpfs_flag(option: &str) -> Option<(MsFlags, bool)> {
    Some(match option {
        "ro" => (MsFlags::MS_RDONLY, true),
        "rw" => (MsFlags::MS_RDONLY, false),
        "noexec" => (MsFlags::MS_NOEXEC, true),
        "exec" => (MsFlags::MS_NOEXEC, false),
        "nosuid" => (MsFlags::MS_NOSUID, true),
        "suid" => (MsFlags::MS_NOSUID, false),
        "nodev" => (MsFlags::MS_NODEV, true),
        "dev" => (MsFlags::MS_NODEV, false),
        "sync" => (MsFlags::MS_SYNCHRONOUS, true),
        "async" => (MsFlags::MS_SYNCHRONOUS, false),
        "noatime" => (MsFlags::MS_NOATIME, true),
        "atime" => (MsFlags::MS_NOATIME, false),
        "nodiratime" => (MsFlags::MS_NODIRATIME, true),
        "diratime" => (MsFlags::MS_NODIRATIME, false),
        "relatime" => (MsFlags::MS_RELATIME, true),
        "norelatime" => (MsFlags::MS_RELATIME, false),
        "strictatime" => (MsFlags::MS_STRICTATIME, true),
        "dirsync" => (MsFlags::MS_DIRSYNC, true),
        "mand" => (MsFlags::MS_MANDLOCK, true),
        "nomand" => (MsFlags::MS_MANDLOCK, false),
        // Propagation is rprivate in any case.
        "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" => {
            (MsFlags::empty(), true)
        }
        _ => return None,
    })
}
