//! Push: every layer the registry lacks (HEAD, then cross-repository mount, then upload), a
//! few at a time; then the config; then the manifest, with the exact bytes the store holds (so
//! the pushed digest is the local manifest digest).

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use reqwest::blocking::Body;
use reqwest::StatusCode;

use super::auth::Scope;
use super::client::Client;
use super::pull::parallel;
use super::{Event, Progress, RegistryError, RegistryOptions};
use crate::image::digest::Digest;
use crate::image::oci::Descriptor;
use crate::image::reference::Reference;
use crate::store::Store;

/// Default size above which blobs go up in chunks (PATCH … PUT) rather than in one PUT.
pub const DEFAULT_CHUNK_SIZE: u64 = 64 << 20;

/// Options for [`push`].
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    pub registry: RegistryOptions,
    /// Blobs larger than this are uploaded in chunks of this size (default
    /// [`DEFAULT_CHUNK_SIZE`]).
    pub chunk_size: Option<u64>,
}

/// What [`push`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct PushResult {
    /// The tag pushed.
    pub tag: String,
    /// Digest of the manifest.
    pub digest: Digest,
    /// Size of the manifest.
    pub size: u64,
    /// Blobs uploaded (layers and config).
    pub uploaded: usize,
}

/// Pushes the local image `reference` names to its registry, under its tag.
pub fn push(
    store: &Store,
    reference: &Reference,
    options: &PushOptions,
    progress: Progress<'_>,
) -> Result<PushResult, RegistryError> {
    if reference.digest.is_some() {
        return Err(RegistryError::Invalid(format!(
            "cannot push a digest reference: {}",
            reference.familiar()
        )));
    }
    let tag = reference.tag.clone().unwrap_or_else(|| "latest".into());
    let rec = store.resolve_image(&reference.to_string())?;
    let manifest_bytes = store.read_blob(&rec.manifest.digest)?;
    let layers: Vec<Descriptor> = rec
        .layers
        .iter()
        .map(crate::image::layer::LayerInfo::descriptor)
        .collect();
    let config = Descriptor {
        media_type: String::new(),
        digest: rec.id.clone(),
        size: rec.config_size,
        annotations: None,
        platform: None,
    };
    let uploaded = upload(
        store,
        reference,
        &layers,
        &config,
        (&manifest_bytes, &rec.manifest.media_type),
        options,
        progress,
    )?;
    // Only an image push records a RepoDigest (`upload` also exports build cache).
    store.add_repo_digest(&rec.id, reference, &rec.manifest.digest)?;
    Ok(PushResult {
        tag,
        digest: rec.manifest.digest.clone(),
        size: manifest_bytes.len() as u64,
        uploaded,
    })
}

/// Uploads `layers` (reporting each to `progress`) and `config` from the store, then PUTs the
/// manifest `(bytes, media type)` under `reference`'s tag. Returns how many blobs went up.
pub(crate) fn upload(
    store: &Store,
    reference: &Reference,
    layers: &[Descriptor],
    config: &Descriptor,
    manifest: (&[u8], &str),
    options: &PushOptions,
    progress: Progress<'_>,
) -> Result<usize, RegistryError> {
    let tag = reference.tag.clone().unwrap_or_else(|| "latest".into());
    let (manifest_bytes, media_type) = manifest;
    let client = Client::new(&reference.domain, &options.registry)?;
    let repo = reference.path.as_str();
    // Computed only when a blob is missing (a re-push does not need it).
    let sources: std::sync::OnceLock<HashMap<Digest, Vec<String>>> = std::sync::OnceLock::new();
    let mount_from = |d: &Digest| -> Vec<String> {
        sources
            .get_or_init(|| mount_sources(store, reference))
            .get(d)
            .cloned()
            .unwrap_or_default()
    };
    let chunk = options.chunk_size.unwrap_or(DEFAULT_CHUNK_SIZE).max(1);
    let pusher = Pusher {
        client: &client,
        store,
        repo,
        chunk,
        progress,
    };
    // The same blob twice in one image is pushed once.
    let mut unique: Vec<&Descriptor> = Vec::new();
    for d in layers {
        if !unique.iter().any(|u| u.digest == d.digest) {
            unique.push(d);
        }
    }
    let outcomes = parallel(&unique, options.registry.jobs(), |d| {
        let outcome = pusher.push_blob(d, &mount_from)?;
        progress(match &outcome {
            Outcome::Exists => Event::LayerExists(d.digest.clone()),
            Outcome::Mounted(from) => Event::Mounted {
                digest: d.digest.clone(),
                from: from.clone(),
            },
            Outcome::Uploaded => Event::Pushed(d.digest.clone()),
        });
        Ok(outcome)
    })?;
    let config_outcome = Pusher {
        progress: &|_| {},
        ..pusher
    }
    .push_blob(config, &|_| Vec::new())?;
    let uploaded = outcomes
        .iter()
        .chain(std::iter::once(&config_outcome))
        .filter(|o| matches!(o, Outcome::Uploaded))
        .count();

    let scopes = [Scope::push(repo)];
    let url = client.url(&format!("/v2/{repo}/manifests/{tag}"));
    let expected = Digest::of(manifest_bytes);
    let returned = client.retry("push manifest", || {
        let resp = client.send_ok(&scopes, &format!("push manifest {repo}:{tag}"), |h| {
            h.put(&url)
                .header("Content-Type", media_type)
                .body(manifest_bytes.to_vec())
        })?;
        Ok(resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Digest::parse(v).ok()))
    })?;
    if let Some(d) = returned {
        if d != expected {
            return Err(RegistryError::DigestMismatch {
                what: format!("manifest stored by {}", client.host()),
                expected,
                actual: d,
            });
        }
    }
    Ok(uploaded)
}

/// For each blob, other repositories of the same registry that (locally known) hold it.
fn mount_sources(store: &Store, reference: &Reference) -> HashMap<Digest, Vec<String>> {
    let mut out: HashMap<Digest, Vec<String>> = HashMap::new();
    let Ok(images) = store.list_images() else {
        return out;
    };
    for img in images {
        for t in &img.tags {
            if t.domain != reference.domain || t.path == reference.path {
                continue;
            }
            for l in &img.record.layers {
                let v = out.entry(l.digest.clone()).or_default();
                if !v.contains(&t.path) {
                    v.push(t.path.clone());
                }
            }
        }
    }
    out
}

enum Outcome {
    Exists,
    Mounted(String),
    Uploaded,
}

struct Pusher<'a> {
    client: &'a Client,
    store: &'a Store,
    repo: &'a str,
    chunk: u64,
    /// Told the bytes sent while a blob uploads.
    progress: Progress<'a>,
}

impl Pusher<'_> {
    /// Pushes one blob unless the registry has it; `mount_from` names other repositories of
    /// the registry that may hold it.
    fn push_blob(
        &self,
        d: &Descriptor,
        mount_from: &(dyn Fn(&Digest) -> Vec<String> + Sync),
    ) -> Result<Outcome, RegistryError> {
        let scopes = [Scope::push(self.repo)];
        if self.exists(&d.digest)? {
            return Ok(Outcome::Exists);
        }
        let mut upload_url = None;
        if let Some(from) = mount_from(&d.digest).first() {
            let mut mount_scopes = scopes.to_vec();
            mount_scopes.push(Scope::pull(from));
            let url = self.client.url(&format!(
                "/v2/{}/blobs/uploads/?mount={}&from={from}",
                self.repo, d.digest
            ));
            let mounted = self.client.retry("mount blob", || {
                self.client
                    .send_ok(&mount_scopes, &format!("mount {}", d.digest), |h| {
                        h.post(&url).header("Content-Length", "0")
                    })
            });
            match mounted {
                Ok(resp) if resp.status() == StatusCode::CREATED => {
                    return Ok(Outcome::Mounted(from.clone()));
                }
                Ok(resp) => upload_url = location(&resp),
                // A registry that refuses the mount still takes an upload.
                Err(e) if e.status().is_some() => {}
                Err(e) => return Err(e),
            }
        }
        // Whole-upload retries: an upload session broken half-way is started again.
        let mut first = upload_url;
        self.client.retry(&format!("upload {}", d.digest), || {
            if first.is_none() && self.exists(&d.digest)? {
                return Ok(());
            }
            let start = match first.take() {
                Some(u) => u,
                None => self.start_upload()?,
            };
            self.upload(d, start)
        })?;
        Ok(Outcome::Uploaded)
    }

    fn exists(&self, digest: &Digest) -> Result<bool, RegistryError> {
        let scopes = [Scope::push(self.repo)];
        let url = self
            .client
            .url(&format!("/v2/{}/blobs/{digest}", self.repo));
        self.client.retry("check blob", || {
            let resp = self
                .client
                .send(&scopes, &format!("check blob {digest}"), |h| h.head(&url))?;
            match resp.status() {
                s if s.is_success() => Ok(true),
                StatusCode::NOT_FOUND => Ok(false),
                _ => Err(self
                    .client
                    .status_error(resp, &format!("check blob {digest}"))),
            }
        })
    }

    fn start_upload(&self) -> Result<String, RegistryError> {
        let scopes = [Scope::push(self.repo)];
        let url = self
            .client
            .url(&format!("/v2/{}/blobs/uploads/", self.repo));
        self.client.retry("start upload", || {
            let resp = self.client.send_ok(&scopes, "start upload", |h| {
                h.post(&url).header("Content-Length", "0")
            })?;
            location(&resp).ok_or_else(|| {
                RegistryError::Invalid(format!(
                    "{}: upload started without a Location",
                    self.client.host()
                ))
            })
        })
    }

    /// Sends the blob to the upload session at `url`: one PUT, or PATCH chunks then a PUT.
    fn upload(&self, d: &Descriptor, mut url: String) -> Result<(), RegistryError> {
        let path = self.store.blob_path(&d.digest);
        let size = fs::metadata(&path)
            .map_err(|error| RegistryError::Io {
                what: format!("blob {}", path.display()),
                error,
            })?
            .len();
        // The request bodies count what reqwest has read; a watcher reports it (the bodies
        // must be 'static, the progress sink is not).
        let sent = Arc::new(AtomicU64::new(0));
        let counted = |f: fs::File, len: u64| {
            Body::sized(
                Counted {
                    inner: f.take(len),
                    sent: Arc::clone(&sent),
                },
                len,
            )
        };
        report_bytes(self.progress, &d.digest, size, &sent, || {
            self.send_blob(d, &mut url, size, &counted)
        })
    }

    /// [`Pusher::upload`]'s requests; `body` makes a counted body of a file's next `len` bytes.
    fn send_blob(
        &self,
        d: &Descriptor,
        url: &mut String,
        size: u64,
        body: &dyn Fn(fs::File, u64) -> Body,
    ) -> Result<(), RegistryError> {
        let scopes = [Scope::push(self.repo)];
        let path = self.store.blob_path(&d.digest);
        let open = || {
            fs::File::open(&path).map_err(|error| RegistryError::Io {
                what: format!("blob {}", path.display()),
                error,
            })
        };
        let what = format!("upload {}", d.digest);
        if size > self.chunk {
            let mut offset = 0u64;
            while offset < size {
                let len = self.chunk.min(size - offset);
                let resp = self.client.send_ok(&scopes, &what, |h| {
                    let body = open().and_then(|mut f| {
                        f.seek(SeekFrom::Start(offset))
                            .map_err(|error| RegistryError::Io {
                                what: format!("blob {}", path.display()),
                                error,
                            })?;
                        Ok(body(f, len))
                    });
                    let req = h
                        .patch(url.as_str())
                        .timeout(self.client.timeouts().upload(len))
                        .header("Content-Type", "application/octet-stream")
                        .header("Content-Range", format!("{}-{}", offset, offset + len - 1))
                        .header("Content-Length", len.to_string());
                    match body {
                        Ok(b) => req.body(b),
                        Err(_) => req.body(Vec::new()),
                    }
                })?;
                if let Some(next) = location(&resp) {
                    *url = next;
                }
                offset += len;
            }
            let put = with_digest(url, &d.digest);
            self.client.send_ok(&scopes, &what, |h| {
                h.put(&put).header("Content-Length", "0")
            })?;
        } else {
            let put = with_digest(url, &d.digest);
            self.client.send_ok(&scopes, &what, |h| {
                let req = h
                    .put(&put)
                    .timeout(self.client.timeouts().upload(size))
                    .header("Content-Type", "application/octet-stream");
                match open() {
                    Ok(f) => req.body(body(f, size)),
                    Err(_) => req.body(Vec::new()),
                }
            })?;
        }
        Ok(())
    }
}

/// A reader that adds what it reads to `sent`.
struct Counted<R> {
    inner: R,
    sent: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Runs `send` while a watcher thread reports `sent` to `progress` every 100 ms, and once
/// more at the end.
fn report_bytes<T>(
    progress: Progress<'_>,
    digest: &Digest,
    total: u64,
    sent: &AtomicU64,
    send: impl FnOnce() -> T,
) -> T {
    let report = || {
        progress(Event::Bytes {
            digest: digest.clone(),
            done: sent.load(Ordering::Relaxed).min(total),
            total,
        })
    };
    let (stop, stopped) = channel::<()>();
    let report = &report;
    std::thread::scope(|s| {
        s.spawn(move || {
            while let Err(RecvTimeoutError::Timeout) =
                stopped.recv_timeout(Duration::from_millis(100))
            {
                report();
            }
        });
        let out = send();
        drop(stop);
        report();
        out
    })
}

fn location(resp: &reqwest::blocking::Response) -> Option<String> {
    let loc = resp.headers().get("location")?.to_str().ok()?;
    // A relative Location is relative to the request URL's origin.
    if loc.starts_with("http://") || loc.starts_with("https://") {
        return Some(loc.to_string());
    }
    let u = resp.url();
    let origin = format!(
        "{}://{}{}",
        u.scheme(),
        u.host_str().unwrap_or_default(),
        u.port().map(|p| format!(":{p}")).unwrap_or_default()
    );
    Some(format!("{origin}{loc}"))
}

fn with_digest(url: &str, digest: &Digest) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}digest={digest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_query() {
        let d = Digest::of(b"x");
        assert_eq!(
            with_digest("http://h/v2/a/blobs/uploads/u?_state=s", &d),
            format!("http://h/v2/a/blobs/uploads/u?_state=s&digest={d}")
        );
        assert_eq!(
            with_digest("http://h/v2/a/blobs/uploads/u", &d),
            format!("http://h/v2/a/blobs/uploads/u?digest={d}")
        );
    }
}
