//! Open directories and `*at` calls relative to them.
//!
//! Copying or archiving thousands of files by absolute path makes the kernel walk every
//! component of every path again; relative to an open directory a call looks up one name.
//! The build engine uses this for COPY staging and the layer writer.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::AtFlags;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::linkat;

/// An open directory (an `O_PATH` descriptor: good for lookups, not for reading entries).
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
}

impl Dir {
    /// Opens the directory at `path` (symlinks followed).
    pub fn open(path: &Path) -> io::Result<Dir> {
        let fd = openat(
            None,
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        // SAFETY: `openat` returned a new descriptor that nothing else owns.
        Ok(Dir {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Opens the regular file `name` in this directory for reading, not following a symlink.
    pub fn open_file(&self, name: &OsStr) -> io::Result<File> {
        let fd = openat(
            Some(self.fd.as_raw_fd()),
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        // SAFETY: `openat` returned a new descriptor that nothing else owns.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// Makes `to_name` in `to` a hard link to `name` in this directory (no symlink followed);
    /// fails with `AlreadyExists` when `to_name` exists.
    pub fn link(&self, name: &OsStr, to: &Dir, to_name: &OsStr) -> io::Result<()> {
        linkat(
            Some(self.fd.as_raw_fd()),
            name,
            Some(to.fd.as_raw_fd()),
            to_name,
            AtFlags::empty(),
        )?;
        Ok(())
    }
}
