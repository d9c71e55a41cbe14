//! `cp`: files between a container (running or not) and the host, or a tar stream, with
//! docker's path rules.
//!
//! - `SRC` naming a directory copies the directory; `SRC/.` copies its contents.
//! - A destination that is an existing directory receives the source inside it; one that
//!   does not exist is created with the source's content (its parent must exist; a
//!   destination ending in `/` must be an existing directory); an existing file is
//!   overwritten by a file and never replaced by a directory.
//! - A final symlink in `SRC` is copied as the link, unless `-L` (or `SRC` ends in `/` or
//!   `/.`); a symlink in a destination is followed. Inside the container both are resolved
//!   within its root ([`view::resolve`]), never leading out of it.
//! - Without `-a`, copies into the container are owned by root and copies out of it by the
//!   user running rbuild; with `-a` the source's owners are kept.
//!
//! The content always travels as a tar stream: written by the layer writer, unpacked by the
//! layer applier, which never writes outside the directory it unpacks into.

use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::view::{self, Root};
use super::{io_err, ContainerError};
use crate::image::layer::{apply_layer, apply_tar, write_tar, ApplyOptions, LayerSource};
use crate::store::Store;

/// `cp` flags.
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyOptions {
    /// `-a`: keep the source's owners.
    pub archive: bool,
    /// `-L`: follow a symlink named as the source.
    pub follow_link: bool,
}

/// The host side of a copy out of a container.
pub enum CopyOut<'a> {
    /// A host path, with docker's destination rules.
    Path(&'a Path),
    /// `-`: a tar of the source.
    Stream(&'a mut dyn Write),
}

/// The host side of a copy into a container.
pub enum CopyIn<'a> {
    Path(&'a Path),
    /// `-`: a tar (plain or compressed) unpacked into the destination directory.
    Stream(&'a mut dyn Read),
}

/// What is copied: the entry at `path` (a host path), named `name`.
struct Source {
    path: PathBuf,
    name: OsString,
    /// `SRC/.`: the directory's contents, not the directory.
    contents: bool,
    is_dir: bool,
}

/// Copies `src` (as the container sees it) out of container `container`.
pub fn copy_out(
    store: &Store,
    container: &str,
    src: &str,
    dest: CopyOut<'_>,
    options: CopyOptions,
) -> Result<(), ContainerError> {
    let record = store.resolve_container(container)?;
    let root = Root::open(store, &record)?;
    let root_path = root.path();
    let source = source(src, options, |p, follow| {
        view::resolve(&root_path, p, follow)
    })
    .ok_or_else(|| ContainerError::NoSuchPath {
        path: src.to_string(),
        container: record.name.clone(),
    })?;
    match dest {
        CopyOut::Stream(out) => {
            write_tar(&tar_source(&source, Some(&source.name), false), None, out)?;
            Ok(())
        }
        CopyOut::Path(dest) => {
            let raw = dest.to_string_lossy();
            let owner = (!options.archive).then(|| {
                (
                    nix::unistd::geteuid().as_raw(),
                    nix::unistd::getegid().as_raw(),
                )
            });
            transfer(&source, dest, &raw, owner)
        }
    }
}

/// Copies `src` from the host into container `container` at `dest`.
pub fn copy_in(
    store: &Store,
    src: CopyIn<'_>,
    container: &str,
    dest: &str,
    options: CopyOptions,
) -> Result<(), ContainerError> {
    let record = store.resolve_container(container)?;
    let root = Root::open(store, &record)?;
    let target = view::resolve(&root.path(), Path::new(dest), true);
    let owner = (!options.archive).then_some((0, 0));
    match src {
        CopyIn::Stream(input) => {
            if !target.is_dir() {
                return Err(ContainerError::BadCopy(format!(
                    "destination \"{dest}\" must be a directory"
                )));
            }
            apply_layer(input, &target, &apply_options(owner))?;
            Ok(())
        }
        CopyIn::Path(src) => {
            let raw = src.to_string_lossy();
            let source = source(&raw, options, |p, follow| {
                if follow {
                    fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
                } else {
                    p.to_path_buf()
                }
            })
            .ok_or_else(|| io_err(src)(std::io::Error::from(std::io::ErrorKind::NotFound)))?;
            transfer(&source, &target, dest, owner)
        }
    }
}

/// The source named `raw`; `resolve(path, follow_last)` finds it on the host. `None` when
/// it does not exist.
fn source(
    raw: &str,
    options: CopyOptions,
    resolve: impl Fn(&Path, bool) -> PathBuf,
) -> Option<Source> {
    let contents = raw.ends_with("/.");
    let follow = options.follow_link || contents || raw.ends_with('/');
    let path = resolve(Path::new(raw), follow);
    let meta = fs::symlink_metadata(&path).ok()?;
    let name = Path::new(raw)
        .file_name()
        .map(OsString::from)
        .unwrap_or_else(|| "rootfs".into());
    Some(Source {
        path,
        name,
        contents,
        is_dir: meta.is_dir(),
    })
}

/// The tar of `source`: its top entry named `name`, or with `name` `None` (or a `SRC/.`
/// source when `whole` is false) only a directory's contents.
fn tar_source<'a>(source: &'a Source, name: Option<&'a OsString>, whole: bool) -> LayerSource<'a> {
    match name {
        Some(name) if whole || !(source.contents && source.is_dir) => LayerSource::Entry {
            path: &source.path,
            name: Path::new(name),
        },
        _ => LayerSource::Dir(&source.path),
    }
}

fn apply_options(owner: Option<(u32, u32)>) -> ApplyOptions {
    ApplyOptions {
        owner,
        ..ApplyOptions::default()
    }
}

/// Copies `source` to `target` (already resolved; `raw` as the user wrote it) by docker's
/// destination rules.
fn transfer(
    source: &Source,
    target: &Path,
    raw: &str,
    owner: Option<(u32, u32)>,
) -> Result<(), ContainerError> {
    let (dir, name) = match fs::metadata(target) {
        Ok(meta) if meta.is_dir() => (target.to_path_buf(), Some(source.name.clone())),
        Ok(_) if source.is_dir => {
            return Err(ContainerError::BadCopy(format!(
                "cannot overwrite non-directory \"{raw}\" with directory"
            )))
        }
        Ok(_) => (parent(target), target.file_name().map(OsString::from)),
        Err(_) if raw.ends_with('/') => {
            return Err(ContainerError::BadCopy(format!(
                "no such directory: \"{raw}\""
            )))
        }
        Err(_) => {
            let parent = parent(target);
            if !parent.is_dir() {
                return Err(ContainerError::BadCopy(format!(
                    "no such directory: \"{}\"",
                    Path::new(raw).parent().unwrap_or(Path::new("/")).display()
                )));
            }
            // A new destination takes the source (or, for `SRC/.`, its contents) under its
            // own name.
            let name = target.file_name().map(OsString::from);
            return stream(&tar_source(source, name.as_ref(), true), &parent, owner);
        }
    };
    stream(&tar_source(source, name.as_ref(), false), &dir, owner)
}

fn parent(path: &Path) -> PathBuf {
    path.parent().unwrap_or(Path::new("/")).to_path_buf()
}

/// Writes `tar` into a pipe on one thread and unpacks it into `dir` on this one.
fn stream(
    tar: &LayerSource<'_>,
    dir: &Path,
    owner: Option<(u32, u32)>,
) -> Result<(), ContainerError> {
    let (reader, writer) = std::io::pipe().map_err(io_err(dir))?;
    std::thread::scope(|scope| {
        let written = scope.spawn(move || write_tar(tar, None, writer).map(drop));
        let applied = apply_tar(reader, dir, &apply_options(owner));
        let written = written.join().expect("the tar writer does not panic");
        // The unpacking error first: the writer's broken pipe only follows from it.
        applied?;
        written?;
        Ok(())
    })
}
