//! Build cache export and import (`--cache-to` / `--cache-from`), to a registry or a directory.
//!
//! The cache travels as an OCI manifest: its config blob
//! (`application/vnd.rbuild.cache.config.v1+json`) lists the store's cache records (step key →
//! layer or none, and when the step ran) and its layers are the records' layer blobs. For
//! `type=registry,ref=HOST/REPO:TAG` that manifest is pushed like an image; for
//! `type=local,dest=DIR` it is written as an OCI image layout in DIR. Importing fetches the
//! blobs the store lacks (digest and DiffID verified, as in a pull) and records the keys, so the
//! build that follows finds its steps cached and runs none of them.
//!
//! `mode=min` (the default, as in BuildKit) exports the records whose layer is in the final
//! image (and the records of steps that made no layer); `mode=max` every record of the store.

use std::collections::BTreeMap;
use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::auth::Scope;
use super::client::Client;
use super::pull::{decode_hash, fetch_config, fetch_layer, get_manifest};
use super::push::{upload, PushOptions};
use super::{RegistryError, RegistryOptions};
use crate::image::digest::Digest;
use crate::image::oci::{self, Descriptor, Index, Manifest};
use crate::image::reference::Reference;
use crate::store::{CacheRecord, ImageId, Store};

/// Media type of the cache config blob.
pub const MEDIA_CACHE_CONFIG: &str = "application/vnd.rbuild.cache.config.v1+json";

/// Where a cache goes to or comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheLocation {
    Registry(Reference),
    Local(PathBuf),
}

/// A parsed `--cache-to` / `--cache-from` value.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheSpec {
    pub location: CacheLocation,
    /// `mode=max`: export every record, not only the final image's.
    pub max: bool,
}

impl CacheSpec {
    /// Parses `type=registry,ref=HOST/REPO:TAG[,mode=min|max]` or
    /// `type=local,dest=DIR` / `type=local,src=DIR`.
    pub fn parse(s: &str) -> Result<CacheSpec, RegistryError> {
        let bad = |why: &str| RegistryError::Invalid(format!("cache option {s:?}: {why}"));
        let mut fields = BTreeMap::new();
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| bad(&format!("{part:?} is not key=value")))?;
            fields.insert(k.trim(), v.trim());
        }
        let max = match fields.get("mode").copied() {
            None | Some("min") => false,
            Some("max") => true,
            Some(other) => return Err(bad(&format!("mode {other:?}: use min or max"))),
        };
        let location = match fields.get("type").copied() {
            Some("registry") => {
                let r = fields
                    .get("ref")
                    .ok_or_else(|| bad("type=registry needs ref="))?;
                CacheLocation::Registry(Reference::parse(r)?)
            }
            Some("local") => {
                let dir = fields
                    .get("dest")
                    .or_else(|| fields.get("src"))
                    .ok_or_else(|| bad("type=local needs dest= or src="))?;
                CacheLocation::Local(PathBuf::from(dir))
            }
            Some(other) => return Err(bad(&format!("type {other:?}: use registry or local"))),
            None => return Err(bad("missing type=")),
        };
        Ok(CacheSpec { location, max })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct CacheConfig {
    records: Vec<Entry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    key: Digest,
    #[serde(flatten)]
    record: CacheRecord,
}

/// What an export or import moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheStats {
    pub records: usize,
    pub layers: usize,
}

/// Exports the store's cache records (see the module doc for `mode`) to `spec`'s location.
pub fn export_cache(
    store: &Store,
    spec: &CacheSpec,
    final_image: &ImageId,
    options: &RegistryOptions,
) -> Result<CacheStats, RegistryError> {
    let image_layers: Vec<Digest> = store
        .resolve_image(&final_image.to_string())?
        .layers
        .into_iter()
        .map(|l| l.digest)
        .collect();
    let mut records: Vec<Entry> = store
        .cache_list()?
        .into_iter()
        .filter(|(_, r)| match &r.layer {
            None => true,
            Some(l) => store.has_blob(&l.digest) && (spec.max || image_layers.contains(&l.digest)),
        })
        .map(|(key, record)| Entry { key, record })
        .collect();
    records.sort_by(|a, b| a.key.cmp(&b.key));
    let mut layers: Vec<Descriptor> = Vec::new();
    for l in records.iter().filter_map(|e| e.record.layer.as_ref()) {
        if !layers.iter().any(|d| d.digest == l.digest) {
            layers.push(l.descriptor());
        }
    }
    let config_bytes = serde_json::to_vec(&CacheConfig { records })
        .map_err(|e| RegistryError::Invalid(format!("cache config: {e}")))?;
    let stats = CacheStats {
        records: serde_json::from_slice::<CacheConfig>(&config_bytes)
            .map(|c| c.records.len())
            .unwrap_or(0),
        layers: layers.len(),
    };
    let config_digest = store.put_blob(&config_bytes)?;
    let config = Descriptor {
        media_type: MEDIA_CACHE_CONFIG.to_string(),
        digest: config_digest,
        size: config_bytes.len() as u64,
        annotations: None,
        platform: None,
    };
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(oci::MEDIA_MANIFEST.to_string()),
        config: config.clone(),
        layers: layers.clone(),
        annotations: None,
    };
    let manifest_bytes = serde_json::to_vec(&manifest)
        .map_err(|e| RegistryError::Invalid(format!("cache manifest: {e}")))?;
    match &spec.location {
        CacheLocation::Registry(reference) => {
            let options = PushOptions {
                registry: options.clone(),
                chunk_size: None,
            };
            upload(
                store,
                reference,
                &layers,
                &config,
                (&manifest_bytes, oci::MEDIA_MANIFEST),
                &options,
                &|_| {},
            )?;
        }
        CacheLocation::Local(dir) => {
            write_layout(store, dir, &layers, &config, &manifest_bytes)?;
        }
    }
    Ok(stats)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |error| RegistryError::Io {
        what: path.display().to_string(),
        error,
    }
}

/// Writes an OCI image layout holding the cache manifest (blobs already there are kept).
fn write_layout(
    store: &Store,
    dir: &Path,
    layers: &[Descriptor],
    config: &Descriptor,
    manifest_bytes: &[u8],
) -> Result<(), RegistryError> {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
    for d in layers.iter().chain(std::iter::once(config)) {
        let dest = blobs.join(d.digest.hex());
        if !dest.exists() {
            let tmp = blobs.join(format!(".tmp-{}", d.digest.hex()));
            fs::copy(store.blob_path(&d.digest), &tmp).map_err(io_err(&tmp))?;
            fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
        }
    }
    let manifest_digest = Digest::of(manifest_bytes);
    fs::write(blobs.join(manifest_digest.hex()), manifest_bytes)
        .map_err(io_err(&blobs.join(manifest_digest.hex())))?;
    let index = Index {
        schema_version: 2,
        media_type: Some(oci::MEDIA_INDEX.to_string()),
        manifests: vec![Descriptor {
            media_type: oci::MEDIA_MANIFEST.to_string(),
            digest: manifest_digest,
            size: manifest_bytes.len() as u64,
            annotations: Some(BTreeMap::from([(
                oci::ANNOTATION_REF_NAME.to_string(),
                "rbuild-cache".to_string(),
            )])),
            platform: None,
        }],
        annotations: None,
    };
    let layout = dir.join("oci-layout");
    fs::write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(io_err(&layout))?;
    let index_path = dir.join("index.json");
    let tmp = dir.join(".index.json.tmp");
    let bytes = serde_json::to_vec(&index)
        .map_err(|e| RegistryError::Invalid(format!("cache index: {e}")))?;
    fs::write(&tmp, bytes).map_err(io_err(&tmp))?;
    fs::rename(&tmp, &index_path).map_err(io_err(&index_path))?;
    Ok(())
}

/// Imports the cache at `spec`'s location into the store: fetches missing layers (verified)
/// and records every key.
pub fn import_cache(
    store: &Store,
    spec: &CacheSpec,
    options: &RegistryOptions,
) -> Result<CacheStats, RegistryError> {
    let (entries, fetched) = match &spec.location {
        CacheLocation::Registry(reference) => import_registry(store, reference, options)?,
        CacheLocation::Local(dir) => import_local(store, dir)?,
    };
    let records: Vec<(Digest, CacheRecord)> = entries
        .iter()
        .map(|e| (e.key.clone(), e.record.clone()))
        .collect();
    store.cache_put_all(&records)?;
    Ok(CacheStats {
        records: entries.len(),
        layers: fetched,
    })
}

fn parse_config(bytes: &[u8], what: &str) -> Result<Vec<Entry>, RegistryError> {
    serde_json::from_slice::<CacheConfig>(bytes)
        .map(|c| c.records)
        .map_err(|e| RegistryError::Invalid(format!("{what}: not an rbuild cache config: {e}")))
}

/// The layers the records need, each once: (descriptor, DiffID).
fn needed_layers(entries: &[Entry]) -> Vec<(Descriptor, Digest)> {
    let mut out: Vec<(Descriptor, Digest)> = Vec::new();
    for l in entries.iter().filter_map(|e| e.record.layer.as_ref()) {
        if !out.iter().any(|(d, _)| d.digest == l.digest) {
            out.push((l.descriptor(), l.diff_id.clone()));
        }
    }
    out
}

fn import_registry(
    store: &Store,
    reference: &Reference,
    options: &RegistryOptions,
) -> Result<(Vec<Entry>, usize), RegistryError> {
    let client = Client::new(&reference.domain, options)?;
    let repo = reference.path.as_str();
    let scopes = [Scope::pull(repo)];
    let target = reference.manifest_ref();
    let (bytes, _, _) = get_manifest(&client, &scopes, repo, &target, reference.digest.as_ref())?;
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| RegistryError::Invalid(format!("cache {reference}: manifest: {e}")))?;
    if manifest.config.media_type != MEDIA_CACHE_CONFIG {
        return Err(RegistryError::Invalid(format!(
            "{reference} is not an rbuild cache (config media type {:?})",
            manifest.config.media_type
        )));
    }
    let config = fetch_config(
        &client,
        repo,
        &scopes,
        &manifest.config.digest,
        "cache config",
    )?;
    let entries = parse_config(&config, &format!("cache {reference}"))?;
    let needed: Vec<(Descriptor, Digest)> = needed_layers(&entries)
        .into_iter()
        .filter(|(d, _)| !store.has_blob(&d.digest))
        .collect();
    super::pull::parallel(&needed, options.jobs(), |(desc, diff_id)| {
        client.retry("download cache layer", || {
            fetch_layer(&client, &scopes, store, repo, (desc, diff_id), &|_| {})
        })
    })?;
    Ok((entries, needed.len()))
}

fn import_local(store: &Store, dir: &Path) -> Result<(Vec<Entry>, usize), RegistryError> {
    let index_path = dir.join("index.json");
    let index: Index = serde_json::from_slice(&fs::read(&index_path).map_err(io_err(&index_path))?)
        .map_err(|e| RegistryError::Invalid(format!("{}: {e}", index_path.display())))?;
    let desc = index
        .manifests
        .first()
        .ok_or_else(|| RegistryError::Invalid(format!("{}: no manifest", index_path.display())))?;
    let read = |d: &Digest| -> Result<Vec<u8>, RegistryError> {
        let p = dir.join("blobs/sha256").join(d.hex());
        let bytes = fs::read(&p).map_err(io_err(&p))?;
        let actual = Digest::of(&bytes);
        if &actual != d {
            return Err(RegistryError::DigestMismatch {
                what: p.display().to_string(),
                expected: d.clone(),
                actual,
            });
        }
        Ok(bytes)
    };
    let manifest: Manifest = serde_json::from_slice(&read(&desc.digest)?)
        .map_err(|e| RegistryError::Invalid(format!("{}: cache manifest: {e}", dir.display())))?;
    let entries = parse_config(
        &read(&manifest.config.digest)?,
        &format!("cache {}", dir.display()),
    )?;
    let mut fetched = 0;
    for (d, diff_id) in needed_layers(&entries) {
        if store.has_blob(&d.digest) {
            continue;
        }
        let p = dir.join("blobs/sha256").join(d.digest.hex());
        // The DiffID the record claims must be the blob's; checked before it enters the store.
        let f = fs::File::open(&p).map_err(io_err(&p))?;
        let (actual, _, _) =
            decode_hash(BufReader::with_capacity(1 << 20, f)).map_err(io_err(&p))?;
        if actual != diff_id {
            return Err(RegistryError::DigestMismatch {
                what: format!("{} (DiffID in the cache record)", p.display()),
                expected: diff_id,
                actual,
            });
        }
        let f = fs::File::open(&p).map_err(io_err(&p))?;
        store.put_blob_from_reader(BufReader::with_capacity(1 << 20, f), Some(&d.digest))?;
        fetched += 1;
    }
    Ok((entries, fetched))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        let s = CacheSpec::parse("type=registry,ref=localhost:5000/cache:main,mode=max").unwrap();
        assert!(s.max);
        assert_eq!(
            s.location,
            CacheLocation::Registry(Reference::parse("localhost:5000/cache:main").unwrap())
        );
        let s = CacheSpec::parse("type=local,dest=/tmp/c").unwrap();
        assert!(!s.max);
        assert_eq!(s.location, CacheLocation::Local("/tmp/c".into()));
        assert!(CacheSpec::parse("type=s3,bucket=x").is_err());
        assert!(CacheSpec::parse("type=registry").is_err());
        assert!(CacheSpec::parse("type=local,dest=/x,mode=huge").is_err());
    }
}
