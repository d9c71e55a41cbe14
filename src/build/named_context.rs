//! `--build-context NAME=DIR|docker-image://REF|oci-layout://PATH[:TAG|@DIGEST]` (BuildKit's
//! named contexts): `FROM NAME`,
//! `COPY --from=NAME` and `RUN --mount=from=NAME` use the named source instead of the image
//! or the Dockerfile stage called NAME (a context overrides a stage, as in BuildKit: the plan
//! leaves such stages out of name lookups).
//!
//! Each context becomes an image reference the build's image lookup takes: `docker-image://`
//! its reference; `oci-layout://` the image it names in that OCI layout directory, stored
//! untagged (see [`crate::archive::layout`]) and named by its ID; a directory is stored as a one-layer image (no timestamps in its config, so
//! an unchanged directory gives the same image ID and later steps stay cached) and named by
//! that ID.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::archive::layout::{import_layout, LayoutPick};
use crate::image::digest::Digest;
use crate::image::layer::{LayerOptions, LayerSource};
use crate::image::oci::{ImageConfig, RootFs};
use crate::image::reference::Reference;
use crate::store::Store;

use super::BuildError;

const EXPECTED: &str =
    "expected NAME=DIR, NAME=docker-image://REF or NAME=oci-layout://PATH[:TAG|@DIGEST]";

/// Parses the `--build-context` values and prepares their sources: NAME → the image
/// reference (or ID) to use for it.
pub fn resolve(store: &Store, specs: &[String]) -> Result<BTreeMap<String, String>, BuildError> {
    let mut out = BTreeMap::new();
    for spec in specs {
        let bad = |why: &str| BuildError::Invalid(format!("--build-context {spec:?}: {why}"));
        let (name, value) = spec.split_once('=').ok_or_else(|| bad(EXPECTED))?;
        if name.is_empty() || value.is_empty() {
            return Err(bad(EXPECTED));
        }
        let image = if let Some(r) = value.strip_prefix("docker-image://") {
            Reference::parse(r).map_err(|e| bad(&e.to_string()))?;
            r.to_string()
        } else if let Some(layout) = value.strip_prefix("oci-layout://") {
            let (dir, pick) = parse_layout(layout).map_err(|why| bad(&why))?;
            import_layout(store, &dir, &pick)
                .map_err(|e| bad(&e.to_string()))?
                .to_string()
        } else if value.contains("://") {
            return Err(BuildError::Unsupported(format!(
                "--build-context {spec:?} (rbuild takes a directory, docker-image://REF or \
                 oci-layout://PATH)"
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

/// Splits the part after `oci-layout://` (BuildKit's `PATH[:TAG][@DIGEST]`, the path usually
/// absolute: `oci-layout:///srv/layout:1`): a digest wins over a tag, as in BuildKit.
fn parse_layout(text: &str) -> Result<(PathBuf, LayoutPick), String> {
    let (rest, digest) = match text.rsplit_once('@') {
        Some((rest, d)) => (
            rest,
            Some(Digest::parse(d).map_err(|e| format!("bad digest {d:?}: {e}"))?),
        ),
        None => (text, None),
    };
    let (path, tag) = match rest.rsplit_once(':') {
        Some((path, tag)) if !tag.is_empty() && !tag.contains('/') => (path, Some(tag)),
        _ => (rest, None),
    };
    if path.is_empty() {
        return Err("missing the layout's path (oci-layout:///PATH)".into());
    }
    let pick = match (digest, tag) {
        (Some(d), _) => LayoutPick::Digest(d),
        (None, Some(t)) => LayoutPick::Tag(t.to_string()),
        (None, None) => LayoutPick::Default,
    };
    Ok((PathBuf::from(path), pick))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_paths_tags_and_digests() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            parse_layout("/l").unwrap(),
            ("/l".into(), LayoutPick::Default)
        );
        assert_eq!(
            parse_layout("/srv/l:v1").unwrap(),
            ("/srv/l".into(), LayoutPick::Tag("v1".into()))
        );
        let want = LayoutPick::Digest(Digest::parse(&d).unwrap());
        assert_eq!(
            parse_layout(&format!("/l@{d}")).unwrap(),
            ("/l".into(), want.clone())
        );
        assert_eq!(
            parse_layout(&format!("/l:v1@{d}")).unwrap(),
            ("/l".into(), want)
        );
        assert!(parse_layout("/l@sha256:zz").is_err());
        assert!(parse_layout(":v1").is_err());
    }
}
