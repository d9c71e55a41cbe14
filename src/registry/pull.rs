//! Pull: manifest (platform chosen from a list/index), config, then layers a few at a time,
//! each streamed to a temp file while its digest and DiffID are computed; only verified blobs
//! are moved into the store, and the image is added last.

use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver};

use super::auth::Scope;
use super::client::{body_error, read_small, Client};
use super::{Event, Progress, RegistryError, RegistryOptions};
use crate::image::compress;
use crate::image::digest::{Digest, HashReader, Hasher};
use crate::image::layer::LayerInfo;
use crate::image::oci::{self, Descriptor, ImageConfig, Index, Manifest};
use crate::image::reference::Reference;
use crate::store::{ImageId, Store};

/// Manifest media types rbuild accepts, most preferred first.
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// Options for [`pull`].
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    pub registry: RegistryOptions,
    /// `os/arch[/variant]` to pick from a manifest list; default `linux/<host arch>`.
    pub platform: Option<String>,
}

/// What [`pull_with_progress`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct PullResult {
    pub id: ImageId,
    /// Digest of what the reference named (the list/index when it was one).
    pub digest: Digest,
    /// Whether the image was already complete in the store with that manifest.
    pub up_to_date: bool,
}

/// Pulls `reference` into `store` and returns the image ID. The image is tagged with the
/// reference when it names a tag (not when it names a digest).
pub fn pull(
    store: &Store,
    reference: &Reference,
    options: &PullOptions,
) -> Result<ImageId, RegistryError> {
    pull_with_progress(store, reference, options, &|_| {}).map(|r| r.id)
}

/// [`pull`], reporting each layer to `progress`.
pub fn pull_with_progress(
    store: &Store,
    reference: &Reference,
    options: &PullOptions,
    progress: Progress<'_>,
) -> Result<PullResult, RegistryError> {
    let client = Client::new(&reference.domain, &options.registry)?;
    let repo = reference.path.as_str();
    let scopes = [Scope::pull(repo)];
    let target = reference.manifest_ref();
    let (mut bytes, mut media_type, top_digest) =
        get_manifest(&client, &scopes, repo, &target, reference.digest.as_ref())?;
    if is_index(&media_type, &bytes) {
        let index: Index = serde_json::from_slice(&bytes).map_err(|e| {
            RegistryError::Invalid(format!("{}: manifest list {top_digest}: {e}", reference))
        })?;
        let chosen = choose_platform(&index, options.platform.as_deref())?;
        let (b, m, _) = get_manifest(
            &client,
            &scopes,
            repo,
            &chosen.digest.to_string(),
            Some(&chosen.digest),
        )?;
        bytes = b;
        media_type = m;
        if is_index(&media_type, &bytes) {
            return Err(RegistryError::Unsupported(format!(
                "{reference}: nested manifest lists are not supported"
            )));
        }
    }
    let manifest = parse_manifest(&bytes, &media_type, reference)?;
    let manifest_digest = Digest::of(&bytes);
    let tags: Vec<Reference> = match (&reference.digest, &reference.tag) {
        (None, Some(_)) => vec![reference.clone()],
        _ => Vec::new(),
    };

    // Already complete here with this very manifest: only (re)tag.
    if let Ok(rec) = store.resolve_image(&manifest.config.digest.to_string()) {
        if rec.manifest.digest == manifest_digest
            && rec.layers.iter().all(|l| store.has_blob(&l.digest))
        {
            for t in &tags {
                store.tag(&rec.id.to_string(), t)?;
            }
            store.add_repo_digest(&rec.id, reference, &top_digest)?;
            return Ok(PullResult {
                id: rec.id,
                digest: top_digest,
                up_to_date: true,
            });
        }
    }

    let config_bytes = fetch_config(
        &client,
        repo,
        &scopes,
        &manifest.config.digest,
        "image config",
    )?;
    let config: ImageConfig = serde_json::from_slice(&config_bytes)
        .map_err(|e| RegistryError::Invalid(format!("{reference}: image config: {e}")))?;
    if manifest.layers.len() > crate::image::limits::MAX_LAYERS {
        return Err(RegistryError::Invalid(format!(
            "{reference}: the manifest lists {} layers; rbuild pulls at most {} (overlayfs' stack limit)",
            manifest.layers.len(),
            crate::image::limits::MAX_LAYERS
        )));
    }
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(RegistryError::Invalid(format!(
            "{reference}: the config lists {} diff_ids but the manifest has {} layers",
            config.rootfs.diff_ids.len(),
            manifest.layers.len()
        )));
    }

    let known = known_layers(store);
    let jobs: Vec<(&Descriptor, &Digest)> = manifest
        .layers
        .iter()
        .zip(&config.rootfs.diff_ids)
        .collect();
    let layers = parallel(&jobs, options.registry.jobs(), |(desc, diff_id)| {
        if store.has_blob(&desc.digest) {
            let info = match known.iter().find(|l| l.digest == desc.digest) {
                Some(l) if &&l.diff_id == diff_id => LayerInfo {
                    media_type: desc.media_type.clone(),
                    ..l.clone()
                },
                _ => local_layer(store, desc, diff_id)?,
            };
            progress(Event::AlreadyExists(desc.digest.clone()));
            return Ok(info);
        }
        let info = client.retry("download layer", || {
            fetch_layer(&client, &scopes, store, repo, (desc, diff_id), progress)
        })?;
        progress(Event::PullComplete(desc.digest.clone()));
        Ok(info)
    })?;
    let id = store.add_image(&config_bytes, &layers, Some(&bytes), &tags)?;
    store.add_repo_digest(&id, reference, &top_digest)?;
    Ok(PullResult {
        id,
        digest: top_digest,
        up_to_date: false,
    })
}

fn is_index(media_type: &str, bytes: &[u8]) -> bool {
    if media_type == oci::MEDIA_INDEX || media_type == oci::MEDIA_DOCKER_LIST {
        return true;
    }
    // An OCI index may come without a Content-Type we know: look at the JSON.
    #[derive(serde::Deserialize)]
    struct Probe {
        manifests: Option<serde_json::Value>,
        config: Option<serde_json::Value>,
    }
    serde_json::from_slice::<Probe>(bytes)
        .map(|p| p.manifests.is_some() && p.config.is_none())
        .unwrap_or(false)
}

fn parse_manifest(
    bytes: &[u8],
    media_type: &str,
    reference: &Reference,
) -> Result<Manifest, RegistryError> {
    if media_type.contains("distribution.manifest.v1") {
        return Err(RegistryError::Unsupported(format!(
            "{reference}: docker schema 1 manifests ({media_type}) are not supported"
        )));
    }
    let m: Manifest = serde_json::from_slice(bytes)
        .map_err(|e| RegistryError::Invalid(format!("{reference}: manifest: {e}")))?;
    if m.schema_version != 2 {
        return Err(RegistryError::Unsupported(format!(
            "{reference}: manifest schema version {} is not supported",
            m.schema_version
        )));
    }
    Ok(m)
}

/// GETs a manifest; checks it against `expected` (a digest reference) and against the
/// registry's `Docker-Content-Digest`. Returns bytes, media type and digest.
pub(super) fn get_manifest(
    client: &Client,
    scopes: &[Scope],
    repo: &str,
    target: &str,
    expected: Option<&Digest>,
) -> Result<(Vec<u8>, String, Digest), RegistryError> {
    let url = client.url(&format!("/v2/{repo}/manifests/{target}"));
    let what = format!("manifest {repo}:{target}");
    client.retry(&what, || {
        let resp = client.send(scopes, &what, |h| h.get(&url).header("Accept", ACCEPT))?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(client.status_error(resp, &format!("{repo}:{target} not found")));
        }
        if !resp.status().is_success() {
            return Err(client.status_error(resp, &what));
        }
        let header_digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Digest::parse(v).ok());
        let media_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
            .unwrap_or_default();
        let bytes = read_small(resp, client.host(), &what)?;
        let actual = Digest::of(&bytes);
        if let Some(e) = expected.or(header_digest.as_ref()) {
            if e != &actual {
                return Err(RegistryError::DigestMismatch {
                    what: format!("{what} from {}", client.host()),
                    expected: e.clone(),
                    actual,
                });
            }
        }
        let media_type = if media_type.is_empty() || media_type == "application/json" {
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v["mediaType"].as_str().map(str::to_string))
                .unwrap_or_else(|| oci::MEDIA_MANIFEST.to_string())
        } else {
            media_type
        };
        Ok((bytes, media_type, actual))
    })
}

/// The entry of `index` for `platform` (`os/arch[/variant]`, default `linux/<host arch>`).
fn choose_platform<'a>(
    index: &'a Index,
    platform: Option<&str>,
) -> Result<&'a Descriptor, RegistryError> {
    let wanted = platform
        .map(str::to_string)
        .unwrap_or_else(|| format!("linux/{}", oci::host_architecture()));
    let mut parts = wanted.split('/');
    let os = parts.next().unwrap_or("linux");
    let arch = parts.next().ok_or_else(|| {
        RegistryError::Invalid(format!(
            "invalid platform {wanted:?}: expected os/arch[/variant]"
        ))
    })?;
    let variant = parts.next();
    let matches = |d: &&Descriptor| {
        d.platform.as_ref().is_some_and(|p| {
            p.os == os
                && p.architecture == arch
                && variant.is_none_or(|v| p.variant.as_deref() == Some(v))
        })
    };
    index.manifests.iter().find(matches).ok_or_else(|| {
        RegistryError::Unsupported(format!(
            "no matching manifest for {wanted} in the manifest list entries"
        ))
    })
}

/// Layers of images already in the store (to know DiffIDs of blobs we have).
fn known_layers(store: &Store) -> Vec<LayerInfo> {
    store
        .list_images()
        .map(|imgs| imgs.into_iter().flat_map(|i| i.record.layers).collect())
        .unwrap_or_default()
}

/// LayerInfo of a blob the store has but no image lists: decompress it once.
fn local_layer(
    store: &Store,
    desc: &Descriptor,
    diff_id: &Digest,
) -> Result<LayerInfo, RegistryError> {
    let what = format!("layer {}", desc.digest);
    let f = store.open_blob(&desc.digest)?;
    let size = f.metadata().map(|m| m.len()).unwrap_or(desc.size);
    let (actual, uncompressed_size, content_size) =
        decode_hash(io::BufReader::new(f)).map_err(|error| RegistryError::Io { what, error })?;
    check_diff_id(&desc.digest, diff_id, &actual)?;
    Ok(LayerInfo {
        digest: desc.digest.clone(),
        diff_id: actual,
        size,
        uncompressed_size,
        content_size,
        media_type: desc.media_type.clone(),
        gzip_members: Vec::new(),
    })
}

fn check_diff_id(digest: &Digest, expected: &Digest, actual: &Digest) -> Result<(), RegistryError> {
    if expected != actual {
        return Err(RegistryError::DigestMismatch {
            what: format!("layer {digest} (DiffID listed in the config)"),
            expected: expected.clone(),
            actual: actual.clone(),
        });
    }
    Ok(())
}

/// DiffID and size of the uncompressed content of a (possibly compressed) layer, and the
/// bytes of file content in it (`None` when the content is not a tar).
pub(super) fn decode_hash(reader: impl Read) -> io::Result<(Digest, u64, Option<u64>)> {
    let (_, plain) = compress::decompress_auto(reader)?;
    let mut r = HashReader::new(plain);
    let content = crate::image::layer::content_size(&mut r).ok();
    io::copy(&mut r, &mut io::sink())?;
    let (diff_id, size) = r.finish();
    Ok((diff_id, size, content))
}

/// Downloads one layer to a temp file, hashing it and (in a second thread) its uncompressed
/// content as it arrives; moves it into the store only when both digests are right. Reports
/// the bytes received to `progress` as they arrive.
pub(super) fn fetch_layer(
    client: &Client,
    scopes: &[Scope],
    store: &Store,
    repo: &str,
    (desc, diff_id): (&Descriptor, &Digest),
    progress: Progress<'_>,
) -> Result<LayerInfo, RegistryError> {
    let what = format!("layer {}", desc.digest);
    let url = client.url(&format!("/v2/{repo}/blobs/{}", desc.digest));
    let mut resp = client.send_ok(scopes, &format!("fetch {what}"), |h| h.get(&url))?;
    let tmp = store.temp_dir()?;
    let path = tmp.path().join("blob");
    let io_err = |error| RegistryError::Io {
        what: format!("{what}: {}", path.display()),
        error,
    };
    let mut file = BufWriter::with_capacity(1 << 20, fs::File::create(&path).map_err(io_err)?);
    let (tx, rx) = sync_channel::<Vec<u8>>(16);
    let decoder = std::thread::spawn(move || {
        let result = decode_hash(ChannelReader::new(&rx));
        while rx.recv().is_ok() {} // keep the sender unblocked after an early stop
        result
    });
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    let copied: Result<(), RegistryError> = loop {
        let n = match resp.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(body_error(client.host(), &what, e)),
        };
        size += n as u64;
        progress(Event::Bytes {
            digest: desc.digest.clone(),
            done: size,
            total: desc.size,
        });
        if size > desc.size {
            break Err(RegistryError::Invalid(format!(
                "{}: {what} is larger than the {} bytes its manifest says",
                client.host(),
                desc.size
            )));
        }
        hasher.update(&buf[..n]);
        if let Err(e) = file.write_all(&buf[..n]) {
            break Err(io_err(e));
        }
        if tx.send(buf[..n].to_vec()).is_err() {
            // The decoder stopped early; it reports why below.
        }
    };
    drop(tx);
    let decoded = decoder
        .join()
        .map_err(|_| RegistryError::Invalid(format!("{what}: decompressing thread failed")))?;
    copied?;
    let actual = hasher.finish();
    if actual != desc.digest {
        return Err(RegistryError::DigestMismatch {
            what: format!("{what} from {}", client.host()),
            expected: desc.digest.clone(),
            actual,
        });
    }
    if size != desc.size {
        return Err(RegistryError::Invalid(format!(
            "{}: {what} has {size} bytes, its manifest says {}",
            client.host(),
            desc.size
        )));
    }
    let (actual_diff_id, uncompressed_size, content_size) = decoded.map_err(|e| {
        RegistryError::Invalid(format!("{what}: not a valid (compressed) tar: {e}"))
    })?;
    check_diff_id(&desc.digest, diff_id, &actual_diff_id)?;
    file.into_inner()
        .map_err(|e| io_err(e.into_error()))?
        .sync_all()
        .map_err(io_err)?;
    store.put_blob_file(&path, &desc.digest)?;
    Ok(LayerInfo {
        digest: desc.digest.clone(),
        diff_id: actual_diff_id,
        size,
        uncompressed_size,
        content_size,
        media_type: desc.media_type.clone(),
        gzip_members: Vec::new(),
    })
}

/// A `Read` over chunks arriving on a channel (ends when the sender is dropped).
struct ChannelReader<'a> {
    rx: &'a Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl<'a> ChannelReader<'a> {
    fn new(rx: &'a Receiver<Vec<u8>>) -> ChannelReader<'a> {
        ChannelReader {
            rx,
            chunk: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for ChannelReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.chunk.len() {
            match self.rx.recv() {
                Ok(c) => {
                    self.chunk = c;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.chunk.len() - self.pos);
        out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Runs `work` on every item on a rayon pool of `jobs` threads (transfers at once, as
/// docker's `max-concurrent-downloads`), each item a task of its own so that a free thread
/// takes the next one whatever the sizes; results in input order. After an error, the items
/// not yet started are skipped and that error is returned.
pub(crate) fn parallel<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    work: impl Fn(&T) -> Result<R, RegistryError> + Sync + Send,
) -> Result<Vec<R>, RegistryError> {
    use rayon::prelude::*;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.clamp(1, items.len().max(1)))
        .build()
        .map_err(|e| RegistryError::Invalid(format!("starting transfer threads: {e}")))?;
    pool.install(|| items.par_iter().with_max_len(1).map(work).collect())
}

/// Fetches a config blob (small, read into memory) of `repo` and checks its digest.
pub(crate) fn fetch_config(
    client: &Client,
    repo: &str,
    scopes: &[Scope],
    digest: &Digest,
    what: &str,
) -> Result<Vec<u8>, RegistryError> {
    let bytes = client.retry(&format!("fetch {what}"), || {
        let url = client.url(&format!("/v2/{repo}/blobs/{digest}"));
        let resp = client.send_ok(scopes, &format!("fetch {what}"), |h| h.get(&url))?;
        read_small(resp, client.host(), what)
    })?;
    let actual = Digest::of(&bytes);
    if &actual != digest {
        return Err(RegistryError::DigestMismatch {
            what: format!("{what} from {}", client.host()),
            expected: digest.clone(),
            actual,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::oci::Platform;

    fn entry(os: &str, arch: &str, variant: Option<&str>, n: u8) -> Descriptor {
        Descriptor {
            media_type: oci::MEDIA_MANIFEST.into(),
            digest: Digest::of(&[n]),
            size: 1,
            annotations: None,
            platform: Some(Platform {
                architecture: arch.into(),
                os: os.into(),
                variant: variant.map(str::to_string),
            }),
        }
    }

    #[test]
    fn platform_choice() {
        let index = Index {
            schema_version: 2,
            media_type: Some(oci::MEDIA_INDEX.into()),
            manifests: vec![
                entry("linux", "arm", Some("v7"), 1),
                entry("linux", "arm64", Some("v8"), 2),
                entry("linux", "amd64", None, 3),
            ],
            annotations: None,
        };
        assert_eq!(
            choose_platform(&index, Some("linux/amd64")).unwrap().digest,
            Digest::of(&[3])
        );
        assert_eq!(
            choose_platform(&index, Some("linux/arm/v7"))
                .unwrap()
                .digest,
            Digest::of(&[1])
        );
        assert_eq!(
            choose_platform(&index, Some("linux/arm64")).unwrap().digest,
            Digest::of(&[2])
        );
        let err = choose_platform(&index, Some("windows/amd64")).unwrap_err();
        assert!(err.to_string().contains("windows/amd64"), "{err}");
    }

    #[test]
    fn parallel_keeps_order() {
        let items: Vec<u32> = (0..20).collect();
        let out = parallel(&items, 3, |i| Ok(i * 2)).unwrap();
        assert_eq!(out, (0..20).map(|i| i * 2).collect::<Vec<_>>());
    }

    /// The rayon map stops handing out items after the first error: on one thread the items
    /// run in order, so exactly the items up to the failing one ran.
    #[test]
    fn parallel_stops_early_on_the_first_error() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let items: Vec<u32> = (0..100).collect();
        for jobs in [1, 3] {
            let ran = AtomicUsize::new(0);
            let err = parallel(&items, jobs, |i| {
                ran.fetch_add(1, Ordering::SeqCst);
                if *i == 3 {
                    Err(RegistryError::Invalid("three".into()))
                } else {
                    Ok(*i)
                }
            })
            .unwrap_err();
            assert_eq!(err.to_string(), "three");
            // (With more threads, how many others ran before they saw the error is timing.)
            if jobs == 1 {
                assert_eq!(ran.into_inner(), 4, "items after the error ran");
            }
        }
    }

    #[test]
    fn channel_reader_reassembles() {
        let (tx, rx) = sync_channel(4);
        std::thread::spawn(move || {
            for c in [b"ab".to_vec(), Vec::new(), b"cde".to_vec()] {
                tx.send(c).unwrap();
            }
        });
        let mut s = String::new();
        ChannelReader::new(&rx).read_to_string(&mut s).unwrap();
        assert_eq!(s, "abcde");
    }
}
