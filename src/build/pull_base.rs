//! A FROM naming an image the store lacks: pull it from its registry first; and what the
//! build remembers of a base image ([`BaseImage`]).

use super::BuildError;
use crate::image::digest::Digest;
use crate::image::reference::Reference;
use crate::registry::{self, PullOptions, RegistryOptions};
use crate::store::{BuildView, ImageId, ImageRecord, Store, StoreError};

/// Resolves `name` in `view` (the store as the build started) if given, else in the store;
/// when it is absent (or `always_pull`, as `build --pull`) and `name` is an image reference,
/// pulls it (host platform, registry rules of [`crate::registry`]) and resolves the pulled
/// image. An image ID is never pulled.
pub(crate) fn resolve_or_pull(
    store: &Store,
    view: Option<&BuildView>,
    name: &str,
    always_pull: bool,
    registry: &RegistryOptions,
) -> Result<ImageRecord, BuildError> {
    let by_id = name.starts_with("sha256:");
    if !always_pull || by_id {
        if let Some(Ok(record)) = view.map(|view| view.resolve_image(name)) {
            return Ok(record);
        }
    }
    match store.resolve_image(name) {
        Err(StoreError::NoSuchImage(_)) => {}
        Ok(_) if always_pull && !by_id => {}
        other => return other.map_err(Into::into),
    }
    let Ok(reference) = Reference::parse(name) else {
        return Err(BuildError::NoSuchBase(name.to_string()));
    };
    let options = PullOptions {
        registry: registry.clone(),
        ..PullOptions::default()
    };
    let id = registry::pull(store, &reference, &options).map_err(|source| BuildError::Pull {
        name: name.to_string(),
        source: Box::new(source),
    })?;
    Ok(store.resolve_image(&id.to_string())?)
}

/// The image a stage started from, kept to explain a layer blob the store lost during the
/// build: `rmi -f` of the base from another process deletes its blobs and snapshots, and the
/// next step that needs them would otherwise only say which blob is missing.
#[derive(Debug, Clone)]
pub(crate) struct BaseImage {
    /// As the FROM line names it.
    pub name: String,
    pub id: ImageId,
    /// Its layers' blob digests, bottom to top.
    pub layers: Vec<Digest>,
}

impl BaseImage {
    /// `error` as a [`BuildError`]: [`BuildError::BaseRemoved`] when it is a missing blob of
    /// this base's layers.
    pub(crate) fn explain(base: Option<&BaseImage>, error: StoreError) -> BuildError {
        if let (Some(base), StoreError::MissingBlob(digest)) = (base, &error) {
            if let Some(i) = base.layers.iter().position(|l| l == digest) {
                return BuildError::BaseRemoved {
                    name: base.name.clone(),
                    id: base.id.clone(),
                    layer: i + 1,
                    layers: base.layers.len(),
                    digest: digest.clone(),
                };
            }
        }
        error.into()
    }
}
