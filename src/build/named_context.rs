//! `--build-context NAME=DIR|docker-image://REF` (BuildKit's named contexts): `FROM NAME`,
//! `COPY --from=NAME` and `RUN --mount=from=NAME` use the named source instead of the image
//! or the Dockerfile stage called NAME (a context overrides a stage, as in BuildKit: the plan
//! leaves such stages out of name lookups).
//!
//! Each context becomes an image reference the build's image lookup takes: `docker-image://`
//! its reference; a directory is stored as a one-layer image (no timestamps in its config, so
//! an unchanged directory gives the same image ID and later steps stay cached) and named by
//! that ID.

use std::collections::BTreeMap;
use std::path::Path;

use crate::image::layer::{LayerOptions, LayerSource};
use crate::image::oci::{ImageConfig, RootFs};
use crate::image::reference::Reference;
use crate::store::Store;

use super::BuildError;

/// Parses the `--build-context` values and prepares their sources: NAME → the image
/// reference (or ID) to use for it.
pub fn resolve(store: &Store, specs: &[String]) -> Result<BTreeMap<String, String>, BuildError> {
    let mut out = BTreeMap::new();
    for spec in specs {
        let bad = |why: &str| BuildError::Invalid(format!("--build-context {spec:?}: {why}"));
        let (name, value) = spec
            .split_once('=')
            .ok_or_else(|| bad("expected NAME=DIR or NAME=docker-image://REF"))?;
        if name.is_empty() || value.is_empty() {
            return Err(bad("expected NAME=DIR or NAME=docker-image://REF"));
        }
        let image = if let Some(r) = value.strip_prefix("docker-image://") {
            Reference::parse(r).map_err(|e| bad(&e.to_string()))?;
            r.to_string()
        } else if value.starts_with("oci-layout://") || value.contains("://") {
            return Err(BuildError::Unsupported(format!(
                "--build-context {spec:?} (rbuild takes a directory or docker-image://REF)"
            )));
        } else {
            let dir = Path::new(value);
            if !dir.is_dir() {
                return Err(bad(&format!("{value} is not a directory")));
            }
            dir_image(store, dir)?
        };
        out.insert(name.to_string(), image);
    }
    Ok(out)
}

/// The image (ID) for `name` as a named context, if it is one: by exact text, else by the
/// same normalized reference (`alpine` names `docker.io/library/alpine:latest`).
pub fn lookup<'a>(contexts: &'a BTreeMap<String, String>, name: &str) -> Option<&'a String> {
    if let Some(image) = contexts.get(name) {
        return Some(image);
    }
    let wanted = Reference::parse(name).ok()?;
    contexts
        .iter()
        .find(|(k, _)| Reference::parse(k).is_ok_and(|r| r == wanted))
        .map(|(_, v)| v)
}

/// Stores directory `dir` as an untagged one-layer image and returns its ID.
fn dir_image(store: &Store, dir: &Path) -> Result<String, BuildError> {
    let layer = store.write_layer(&LayerSource::Dir(dir), &LayerOptions::default())?;
    let host = crate::dockerfile::eval::Platform::host();
    let config = ImageConfig {
        created: None,
        author: None,
        architecture: host.architecture,
        os: host.os,
        config: None,
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![layer.diff_id.clone()],
        },
        history: Vec::new(),
        extra: BTreeMap::new(),
    };
    Ok(store.commit_image(&config, &[layer], &[])?.to_string())
}
