//! The runtime spec a container was created with, kept as `spec.json` in its dir.
//!
//! A recorded container is run again (`start`, restart policies), joined (`exec`) and
//! committed from what it was created with, not from its image and flags read anew: the image
//! may have been retagged and the flags are gone. The file is written before the container's
//! record, so every recorded container has one.

use std::fs;
use std::path::{Path, PathBuf};

use rbuild_runtime::ContainerSpec;

use super::{io_err, ContainerError};
use crate::store::Store;

/// The file's name inside the container's dir.
pub const FILE: &str = "spec.json";

/// Writes `spec` into the container dir `dir` (write to a temporary name, then rename, so a
/// crash leaves the old file or the new one).
pub fn save(dir: &Path, spec: &ContainerSpec) -> Result<(), ContainerError> {
    save_json(dir, FILE, spec)
}

/// Writes `value` as JSON to `dir/file` (temporary name, then rename): also the container's
/// `config.json` ([`super::config::save`]).
pub(super) fn save_json(
    dir: &Path,
    file: &str,
    value: &impl serde::Serialize,
) -> Result<(), ContainerError> {
    let path = dir.join(file);
    let tmp = dir.join(format!("{file}.tmp"));
    let json = serde_json::to_vec_pretty(value).expect("the container's files serialise");
    fs::write(&tmp, json).map_err(io_err(&tmp))?;
    fs::rename(&tmp, &path).map_err(io_err(&path))
}

/// Reads the spec of the container with ID `id`.
pub fn load(store: &Store, id: &str) -> Result<ContainerSpec, ContainerError> {
    let path: PathBuf = store.container_dir(id).join(FILE);
    let bytes = fs::read(&path).map_err(io_err(&path))?;
    serde_json::from_slice(&bytes).map_err(|e| ContainerError::Io {
        path,
        error: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })
}
