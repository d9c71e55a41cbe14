//! The container's config as docker records it (`Config` of `inspect`): the image's config
//! with the run's `--entrypoint`, arguments, `-e`, `-w`, `-u` and labels in place. `commit`
//! starts from it, so a committed image runs what the container ran.
//!
//! It is kept as `config.json` in the container's dir, next to `spec.json`, because the
//! runtime spec has ENTRYPOINT and CMD joined into one argv (and `HOSTNAME`, `TERM` added to
//! the environment), which `commit` must not bake into an image.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use super::{env, io_err, ContainerError, RunOptions};
use crate::image::oci::ContainerConfig;
use crate::store::Store;

/// The file's name inside the container's dir.
pub const FILE: &str = "config.json";

/// The config of a container made from an image with config `image`, run with `options`,
/// with `labels` (the image's overlaid with `-l`).
pub fn container_config(
    image: &ContainerConfig,
    options: &RunOptions,
    labels: &BTreeMap<String, String>,
) -> ContainerConfig {
    let mut config = image.clone();
    // As super::command::combine: --entrypoint replaces ENTRYPOINT ("" clears it) and drops
    // the image's CMD; arguments replace CMD.
    if let Some(entrypoint) = &options.entrypoint {
        config.entrypoint = (!entrypoint.is_empty()).then(|| vec![entrypoint.clone()]);
        config.cmd = None;
    }
    if !options.args.is_empty() {
        config.cmd = Some(options.args.clone());
    }
    if !options.env.is_empty() {
        env::overlay(config.env.get_or_insert_with(Vec::new), &options.env);
    }
    if let Some(dir) = &options.workdir {
        config.working_dir = Some(dir.clone());
    }
    if let Some(user) = &options.user {
        config.user = Some(user.clone());
    }
    if !labels.is_empty() {
        config.labels = Some(labels.clone());
    }
    config
}

/// Writes `config` into the container dir `dir`.
pub fn save(dir: &Path, config: &ContainerConfig) -> Result<(), ContainerError> {
    super::spec_file::save_json(dir, FILE, config)
}

/// Reads the config of the container with ID `id`; `None` for a container created before
/// rbuild kept it.
pub fn load(store: &Store, id: &str) -> Result<Option<ContainerConfig>, ContainerError> {
    let path = store.container_dir(id).join(FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&path)(e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ContainerError::Io {
            path,
            error: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })
}
