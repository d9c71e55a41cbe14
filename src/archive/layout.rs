//! An OCI image layout directory as an image source: `build --build-context
//! NAME=oci-layout://PATH[:TAG|@DIGEST]` (BuildKit's named context). The image is read as
//! `load` reads an oci-archive (every digest, size and DiffID checked) from copies staged in
//! the store (the store moves what it takes; the layout is left as it was), and stored
//! untagged: the layout's names are not the store's.

use std::fs;
use std::io::Read;
use std::path::Path;

use super::load::{check_image, platform_manifest, read_index, stage_dir, store_image};
use super::progress::no_progress;
use super::{io_err, ArchiveError};
use crate::image::digest::Digest;
use crate::image::oci::{self, Descriptor, Index};
use crate::store::{ImageId, Store, MAX_JSON_SIZE};

/// Which image of a layout to take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutPick {
    /// The layout's only image, else the one tagged `latest`.
    Default,
    /// The `index.json` entry with this tag: its `org.opencontainers.image.ref.name` (`1`,
    /// or `app:1` as `save` writes it) or the tag of its `io.containerd.image.name`.
    Tag(String),
    /// The manifest or image index with this digest, listed in `index.json` or only among
    /// the layout's blobs.
    Digest(Digest),
}

/// Stores the image `pick` names in the OCI layout `dir` (untagged) and returns its ID.
pub fn import_layout(
    store: &Store,
    dir: &Path,
    pick: &LayoutPick,
) -> Result<ImageId, ArchiveError> {
    let not_layout = |why: &str| ArchiveError::Invalid(format!("{}: {why}", dir.display()));
    if !dir.is_dir() {
        return Err(not_layout("no such directory"));
    }
    let index_path = dir.join("index.json");
    if !index_path.is_file() {
        return Err(not_layout("not an OCI image layout (it has no index.json)"));
    }
    // The image is picked from the layout itself first: a wrong tag fails before anything is
    // copied.
    let index: Index =
        serde_json::from_slice(&read_json(&index_path)?).map_err(|e| ArchiveError::BadJson {
            what: index_path.display().to_string(),
            error: e,
        })?;
    let wanted = pick_entry(dir, &index, pick).map_err(|why| not_layout(&why))?;
    let tmp = store.temp_dir()?;
    let entries = stage_dir(dir, tmp.path())?;
    // The staged copy is what is checked and stored; it must list what was picked.
    let staged = read_index(&entries)?;
    if staged != index {
        return Err(not_layout("index.json changed while it was read"));
    }
    let manifest = platform_manifest(&entries, &wanted)?;
    let checked = check_image(&entries, &manifest, &no_progress, &mut |_| Ok(()))?;
    store_image(store, checked, &[], &no_progress)
}

/// The descriptor `pick` names among `index`'s entries (or `dir`'s blobs, for a digest);
/// the error says why none fits.
fn pick_entry(dir: &Path, index: &Index, pick: &LayoutPick) -> Result<Descriptor, String> {
    let tags = || {
        let names: Vec<String> = index.manifests.iter().flat_map(names_of).collect();
        if names.is_empty() {
            "it names none".to_string()
        } else {
            format!("it has {}", names.join(", "))
        }
    };
    let tagged = |tag: &str| {
        index
            .manifests
            .iter()
            .find(|d| names_of(d).iter().any(|n| has_tag(n, tag)))
            .cloned()
    };
    match pick {
        LayoutPick::Default => match &index.manifests[..] {
            [] => Err("index.json lists no images".into()),
            [only] => Ok(only.clone()),
            many => tagged("latest").ok_or_else(|| {
                format!(
                    "{} images and none tagged latest: name one as PATH:TAG or PATH@DIGEST ({})",
                    many.len(),
                    tags()
                )
            }),
        },
        LayoutPick::Tag(tag) => {
            tagged(tag).ok_or_else(|| format!("no image tagged {tag:?} in index.json ({})", tags()))
        }
        LayoutPick::Digest(digest) => {
            if let Some(d) = index.manifests.iter().find(|d| &d.digest == digest) {
                return Ok(d.clone());
            }
            let blob = dir.join("blobs/sha256").join(digest.hex());
            let bytes =
                read_json(&blob).map_err(|_| format!("no manifest {digest} in the layout"))?;
            #[derive(serde::Deserialize)]
            struct Head {
                #[serde(rename = "mediaType", default)]
                media_type: Option<String>,
                #[serde(default)]
                manifests: Option<serde_json::Value>,
            }
            let head: Head = serde_json::from_slice(&bytes)
                .map_err(|e| format!("blob {digest} is not a manifest: {e}"))?;
            let media_type = head.media_type.unwrap_or_else(|| {
                if head.manifests.is_some() {
                    oci::MEDIA_INDEX.to_string()
                } else {
                    oci::MEDIA_MANIFEST.to_string()
                }
            });
            Ok(Descriptor {
                media_type,
                digest: digest.clone(),
                size: bytes.len() as u64,
                annotations: None,
                platform: None,
            })
        }
    }
}

/// The names an `index.json` entry carries (its ref name, its full image name).
fn names_of(d: &Descriptor) -> Vec<String> {
    let Some(a) = &d.annotations else {
        return Vec::new();
    };
    [oci::ANNOTATION_REF_NAME, oci::ANNOTATION_CONTAINERD_NAME]
        .iter()
        .filter_map(|k| a.get(*k).cloned())
        .collect()
}

/// Whether `name` is `tag` itself (skopeo's and BuildKit's ref names) or a reference with
/// that tag (`app:1`, `host:5000/app:1`).
fn has_tag(name: &str, tag: &str) -> bool {
    name == tag
        || name
            .rsplit_once(':')
            .is_some_and(|(repo, t)| t == tag && !repo.is_empty() && !t.contains('/'))
}

/// A JSON file of the layout, refused when larger than any JSON the store reads.
fn read_json(path: &Path) -> Result<Vec<u8>, ArchiveError> {
    let f = fs::File::open(path).map_err(io_err(path))?;
    let mut bytes = Vec::new();
    f.take(MAX_JSON_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err(path))?;
    if bytes.len() as u64 > MAX_JSON_SIZE {
        return Err(ArchiveError::Invalid(format!(
            "{} is too large for JSON",
            path.display()
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::has_tag;

    #[test]
    fn tags_as_layouts_write_them() {
        assert!(has_tag("1", "1"));
        assert!(has_tag("app:1", "1"));
        assert!(has_tag("localhost:5000/app:1", "1"));
        assert!(!has_tag("localhost:5000/app", "5000/app"));
        assert!(!has_tag("app:10", "1"));
        assert!(!has_tag(":1", "1"));
    }
}
