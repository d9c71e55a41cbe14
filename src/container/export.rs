//! `export`: a container's merged filesystem (image layers and its changes, deletions
//! applied) as one tar, written as it is read.

use std::io::Write;

use super::view::Layers;
use super::ContainerError;
use crate::image::layer::{write_tar, LayerSource};
use crate::store::Store;

/// Writes the filesystem of container `name` (name, ID or ID prefix) as a tar into `out`
/// and returns `out`. Entries are sorted and written by the layer writer, as any layer; a
/// running container is read as it is (not paused) and without its volumes, as docker.
pub fn export<W: Write>(store: &Store, name: &str, out: W) -> Result<W, ContainerError> {
    let record = store.resolve_container(name)?;
    let view = Layers::of(store, &record)?.merged()?;
    Ok(write_tar(&LayerSource::Dir(&view.path()), None, out)?)
}
