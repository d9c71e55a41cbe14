//! A FROM naming an image the store lacks: pull it from its registry first.

use super::BuildError;
use crate::image::reference::Reference;
use crate::registry::{self, PullOptions};
use crate::store::{BuildView, ImageRecord, Store, StoreError};

/// Resolves `name` in `view` (the store as the build started) if given, else in the store;
/// when it is absent (or `always_pull`, as `build --pull`) and `name` is an image reference,
/// pulls it (host platform, registry rules of [`crate::registry`]) and resolves the pulled
/// image. An image ID is never pulled.
pub(crate) fn resolve_or_pull(
    store: &Store,
    view: Option<&BuildView>,
    name: &str,
    always_pull: bool,
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
    let id = registry::pull(store, &reference, &PullOptions::default()).map_err(|source| {
        BuildError::Pull {
            name: name.to_string(),
            source: Box::new(source),
        }
    })?;
    Ok(store.resolve_image(&id.to_string())?)
}
