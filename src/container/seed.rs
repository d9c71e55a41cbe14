//! Seeding a volume from the image: docker copies what the image has at a volume's path into
//! the volume when the volume is empty, so `VOLUME /var/lib/app` after files were put there
//! starts with those files (owners, modes and times kept).
//!
//! The image is read as the merged view of its snapshot dirs ([`Layered`]), without mounting
//! anything. Regular files, directories and symlinks are copied; device nodes, fifos and
//! sockets are skipped, hard links become separate copies and extended attributes are not
//! copied (deviations from docker, which copies through the mounted rootfs).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use filetime::FileTime;

use super::{io_err, ContainerError};
use crate::build::layered::Layered;

/// Copies the image's content at `path` (its directory resolved inside the image, symlinks
/// followed) into the volume dir `data`, unless `data` has entries already or the image has
/// no directory there. `data` itself takes the directory's owner and mode.
pub(super) fn seed_from_image(
    lowers: &[PathBuf],
    path: &Path,
    data: &Path,
) -> Result<(), ContainerError> {
    let has_entries = fs::read_dir(data).map_err(io_err(data))?.next().is_some();
    if has_entries || lowers.is_empty() {
        return Ok(());
    }
    let view = Layered { lowers };
    let Some((components, disk)) = view.resolve(&path.to_string_lossy(), true) else {
        return Ok(());
    };
    let md = fs::metadata(&disk).map_err(io_err(&disk))?;
    if !md.is_dir() {
        return Ok(());
    }
    let mut dirs = Vec::new();
    copy_children(&view, &components, data, &mut dirs)?;
    dirs.push((data.to_path_buf(), md));
    // Directory owners, modes and times last: their contents are written by then.
    for (dir, md) in dirs.iter().rev() {
        set_owner_mode_time(dir, md, false)?;
    }
    Ok(())
}

/// Copies the merged children of `dir` (components in the image) into `to`.
fn copy_children(
    view: &Layered<'_>,
    dir: &[String],
    to: &Path,
    dirs: &mut Vec<(PathBuf, fs::Metadata)>,
) -> Result<(), ContainerError> {
    for (name, disk) in view.list(dir) {
        let md = fs::symlink_metadata(&disk).map_err(io_err(&disk))?;
        let target = to.join(&name);
        let kind = md.file_type();
        // A container seeding the same new volume at the same time may have made it.
        let made = |r: std::io::Result<()>| match r {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            other => other.map_err(io_err(&target)),
        };
        if kind.is_dir() {
            made(fs::create_dir(&target))?;
            let mut child = dir.to_vec();
            child.push(name.to_string_lossy().into_owned());
            copy_children(view, &child, &target, dirs)?;
            dirs.push((target, md));
        } else if kind.is_symlink() {
            let link = fs::read_link(&disk).map_err(io_err(&disk))?;
            made(std::os::unix::fs::symlink(&link, &target))?;
            set_owner_mode_time(&target, &md, true)?;
        } else if kind.is_file() {
            fs::copy(&disk, &target).map_err(io_err(&target))?;
            set_owner_mode_time(&target, &md, false)?;
        }
    }
    Ok(())
}

fn set_owner_mode_time(
    path: &Path,
    md: &fs::Metadata,
    is_link: bool,
) -> Result<(), ContainerError> {
    std::os::unix::fs::lchown(path, Some(md.uid()), Some(md.gid())).map_err(io_err(path))?;
    if !is_link {
        // After the chown, which clears setuid bits.
        fs::set_permissions(path, fs::Permissions::from_mode(md.mode() & 0o7777))
            .map_err(io_err(path))?;
    }
    let mtime = FileTime::from_last_modification_time(md);
    filetime::set_symlink_file_times(path, mtime, mtime).map_err(io_err(path))
}
