//! `load`: docker-archive (old `<id>/layer.tar` and new `blobs/sha256/…` layouts) and
//! oci-archive, plain or compressed, into the store. Every digest is verified.

use std::collections::HashMap;
use std::fs;
use std::io::{self, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use super::progress::{no_progress, Counted, Event, Progress};
use super::{io_err, ArchiveError};
use crate::image::compress::{self, Compression};
use crate::image::digest::{Digest, HashReader, HashWriter};
use crate::image::layer::{check_tar, LayerInfo};
use crate::image::limits::{
    MAX_IMAGES_PER_ARCHIVE, MAX_LAYERS, MAX_TAGS_PER_ARCHIVE, MAX_TAGS_PER_IMAGE,
};
use crate::image::oci::{self, ImageConfig, Index, Manifest};
use crate::image::reference::Reference;
use crate::image::sparse::SparseWriter;
use crate::store::{ImageId, Store, MAX_JSON_SIZE};

/// An image that `load` added.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedImage {
    pub id: ImageId,
    /// Tags it was loaded under (empty: print `Loaded image ID:`).
    pub tags: Vec<Reference>,
}

/// A file of the archive, staged in the store's temp dir.
pub(super) struct Staged {
    path: PathBuf,
    digest: Digest,
    size: u64,
}

/// The archive's entries by normalised path.
pub(super) struct Entries {
    files: HashMap<String, Staged>,
    /// Symlinks and hard links: path → target path (normalised).
    links: HashMap<String, String>,
}

impl Entries {
    fn get(&self, path: &str) -> Option<&Staged> {
        let mut p = normalise(path).ok()?;
        for _ in 0..16 {
            if let Some(f) = self.files.get(&p) {
                return Some(f);
            }
            p = self.links.get(&p)?.clone();
        }
        None
    }

    fn need(&self, path: &str, what: &str) -> Result<&Staged, ArchiveError> {
        self.get(path).ok_or_else(|| ArchiveError::Missing {
            what: what.to_string(),
            path: path.to_string(),
        })
    }

    fn json(&self, path: &str, what: &str) -> Result<Vec<u8>, ArchiveError> {
        let f = self.need(path, what)?;
        if f.size > MAX_JSON_SIZE {
            return Err(ArchiveError::Invalid(format!(
                "{what} {path:?} is too large for JSON"
            )));
        }
        fs::read(&f.path).map_err(io_err(&f.path))
    }
}

/// Loads every image in the archive read from `reader` (compression autodetected).
pub fn load(store: &Store, reader: impl Read) -> Result<Vec<LoadedImage>, ArchiveError> {
    load_with_progress(store, reader, &no_progress)
}

/// [`load`], reporting each layer (by the short digest of its blob, as docker names it) to
/// `progress`: its bytes while it is checked (read, decompressed, hashed), and its end once
/// it is in the store. The archive is staged first, as docker extracts it first.
pub fn load_with_progress(
    store: &Store,
    reader: impl Read,
    progress: Progress<'_>,
) -> Result<Vec<LoadedImage>, ArchiveError> {
    let (_, plain) = compress::decompress_auto(reader).map_err(ArchiveError::Read)?;
    let tmp = store.temp_dir()?;
    let entries = stage(plain, tmp.path())?;
    std::thread::scope(|scope| {
        // Start writing the staged files to disk while they are checked: the blob store
        // fsyncs each before renaming it into place, and that then has little left to wait for.
        scope.spawn(|| {
            for f in entries.files.values() {
                if let Ok(file) = fs::File::open(&f.path) {
                    let _ = file.sync_data();
                }
            }
        });
        if entries.get("manifest.json").is_some() {
            load_docker(store, &entries, progress)
        } else if entries.get("index.json").is_some() {
            load_oci(store, &entries, progress)
        } else {
            Err(ArchiveError::UnknownFormat(
                "it has neither manifest.json nor index.json".into(),
            ))
        }
    })
}

/// `a/./b` → `a/b`; rejects absolute paths and `..`.
fn normalise(raw: &str) -> Result<String, ArchiveError> {
    let mut parts = Vec::new();
    for c in Path::new(raw).components() {
        match c {
            Component::Normal(n) => parts.push(n.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(ArchiveError::Unsafe {
                    path: raw.into(),
                    reason: "path contains `..`".into(),
                })
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(ArchiveError::Unsafe {
                    path: raw.into(),
                    reason: "absolute path".into(),
                })
            }
        }
    }
    Ok(parts.join("/"))
}

/// Resolves a symlink target relative to the link's directory, staying inside the archive.
fn link_target(link: &str, target: &str) -> Result<String, ArchiveError> {
    let unsafe_link = || ArchiveError::Unsafe {
        path: link.into(),
        reason: format!("link to {target:?} points outside the archive"),
    };
    if target.starts_with('/') {
        return Err(unsafe_link());
    }
    let mut parts: Vec<&str> = link.split('/').collect();
    parts.pop();
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop().ok_or_else(unsafe_link)?;
            }
            n => parts.push(n),
        }
    }
    Ok(parts.join("/"))
}

/// Copies every file of the tar into `dir`, hashing as it goes.
fn stage(reader: impl Read, dir: &Path) -> Result<Entries, ArchiveError> {
    let mut counter = HashReader::new(reader);
    let mut entries = Entries {
        files: HashMap::new(),
        links: HashMap::new(),
    };
    let mut n = 0u64;
    {
        let mut archive = tar::Archive::new(&mut counter);
        for (i, entry) in archive.entries().map_err(ArchiveError::Read)?.enumerate() {
            let mut entry = entry.map_err(|e| {
                if n == 0 {
                    let cause: String = e
                        .to_string()
                        .lines()
                        .next()
                        .unwrap_or("")
                        .chars()
                        .take(80)
                        .collect();
                    ArchiveError::NotATar(format!("no valid tar header at the start ({cause})"))
                } else {
                    ArchiveError::Read(e)
                }
            })?;
            n += 1;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let path = normalise(&raw)?;
            let kind = entry.header().entry_type();
            if kind.is_dir() || path.is_empty() || kind.is_pax_global_extensions() {
                continue;
            }
            if entries.files.contains_key(&path) || entries.links.contains_key(&path) {
                return Err(ArchiveError::Duplicate(raw));
            }
            match kind {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let staged = stage_file(&mut entry, dir.join(i.to_string()))?;
                    entries.files.insert(path, staged);
                }
                tar::EntryType::Symlink => {
                    let target = entry
                        .link_name_bytes()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default();
                    let t = link_target(&path, &target)?;
                    entries.links.insert(path, t);
                }
                tar::EntryType::Link => {
                    let target = entry
                        .link_name_bytes()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default();
                    let t = normalise(&target)?;
                    entries.links.insert(path, t);
                }
                other => {
                    return Err(ArchiveError::Unsafe {
                        path: raw,
                        reason: format!("unexpected entry type {other:?} in an image archive"),
                    })
                }
            }
        }
    }
    io::copy(&mut counter, &mut io::sink()).map_err(ArchiveError::Read)?;
    if n == 0 && counter.len() < 1024 {
        return Err(ArchiveError::NotATar(format!(
            "no tar entries in {} bytes",
            counter.len()
        )));
    }
    Ok(entries)
}

/// Copies `data` to the new file `staged`, hashing it.
fn stage_file(data: &mut dyn Read, staged: PathBuf) -> Result<Staged, ArchiveError> {
    let file = fs::File::create(&staged).map_err(io_err(&staged))?;
    let file = Writeback::new(&file);
    let mut w = HashWriter::new(io::BufWriter::with_capacity(1 << 20, file));
    io::copy(data, &mut w).map_err(ArchiveError::Read)?;
    let (buf, digest, size) = w.finish();
    buf.into_inner()
        .map_err(|e| io_err(&staged)(e.into_error()))?
        .finish()
        .map_err(io_err(&staged))?;
    Ok(Staged {
        path: staged,
        digest,
        size,
    })
}

/// Copies every file below directory `src` (an OCI image layout) into `dir`, hashing as it
/// goes, as [`stage`] does for a tar: the checks and the store then take the copies (which
/// they move), never the originals. Symlinks are recorded as links, staying inside `src`.
pub(super) fn stage_dir(src: &Path, dir: &Path) -> Result<Entries, ArchiveError> {
    let mut entries = Entries {
        files: HashMap::new(),
        links: HashMap::new(),
    };
    let mut pending = vec![String::new()];
    let mut n = 0usize;
    while let Some(rel) = pending.pop() {
        let at = src.join(&rel);
        for e in fs::read_dir(&at).map_err(io_err(&at))? {
            let e = e.map_err(io_err(&at))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let kind = e.file_type().map_err(io_err(e.path()))?;
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_symlink() {
                let target = fs::read_link(e.path()).map_err(io_err(e.path()))?;
                let t = link_target(&path, &target.to_string_lossy())?;
                entries.links.insert(path, t);
            } else if kind.is_file() {
                let mut f = fs::File::open(e.path()).map_err(io_err(e.path()))?;
                n += 1;
                let staged = stage_file(&mut f, dir.join(n.to_string()))?;
                entries.files.insert(path, staged);
            }
        }
    }
    Ok(entries)
}

/// A file writer that starts writeback every 64 MiB (an `fdatasync` on another thread), so
/// the disk works while the archive is still being read and the final fsync is short. Runs
/// of zeros are left as holes (an uncompressed layer's zero-filled file takes no disk in the
/// blob store); [`Writeback::finish`] sets the length.
struct Writeback<'a> {
    file: &'a fs::File,
    out: SparseWriter<'a>,
    since_sync: u64,
    syncing: Option<std::thread::JoinHandle<()>>,
}

impl<'a> Writeback<'a> {
    const EVERY: u64 = 64 << 20;

    fn new(file: &'a fs::File) -> Writeback<'a> {
        Writeback {
            file,
            out: SparseWriter::new(file),
            since_sync: 0,
            syncing: None,
        }
    }

    fn finish(self) -> io::Result<u64> {
        self.out.finish()
    }
}

impl io::Write for Writeback<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.since_sync += n as u64;
        if self.since_sync >= Self::EVERY && self.syncing.as_ref().is_none_or(|h| h.is_finished()) {
            self.since_sync = 0;
            if let Ok(f) = self.file.try_clone() {
                self.syncing = Some(std::thread::spawn(move || {
                    let _ = f.sync_data();
                }));
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(serde::Deserialize)]
struct DockerManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// Refuses `count` `things` in `what` above `max` (bounds on what an archive may create: see
/// [`crate::image::limits`]).
fn at_most(what: &str, count: usize, max: usize, things: &str) -> Result<(), ArchiveError> {
    if count > max {
        return Err(ArchiveError::Invalid(format!(
            "{what} lists {count} {things}; rbuild loads at most {max}"
        )));
    }
    Ok(())
}

/// Checks a staged file against a digest its name or a descriptor promises.
fn verify(f: &Staged, expected: &Digest, what: &str) -> Result<(), ArchiveError> {
    if &f.digest != expected {
        return Err(ArchiveError::DigestMismatch {
            what: what.to_string(),
            expected: expected.clone(),
            actual: f.digest.clone(),
        });
    }
    Ok(())
}

/// `blobs/sha256/<hex>` → the digest the name promises.
fn digest_from_path(path: &str) -> Option<Digest> {
    let hex = normalise(path)
        .ok()?
        .strip_prefix("blobs/sha256/")?
        .to_string();
    Digest::from_hex(&hex).ok()
}

fn parse_config(bytes: &[u8], what: &str) -> Result<ImageConfig, ArchiveError> {
    serde_json::from_slice(bytes).map_err(|e| ArchiveError::BadJson {
        what: what.to_string(),
        error: e,
    })
}

/// Reads a staged layer once: checks every entry (see [`check_tar`]), computes its DiffID
/// and checks it against the config. Moves nothing.
fn check_layer(
    f: &Staged,
    expected_diff_id: &Digest,
    what: &str,
    media_type: Option<&str>,
    progress: Progress<'_>,
) -> Result<LayerInfo, ArchiveError> {
    let file = BufReader::with_capacity(1 << 20, fs::File::open(&f.path).map_err(io_err(&f.path))?);
    let file = Counted::new(file, f.digest.short(), Some(f.size), progress);
    let (kind, plain) = compress::decompress_auto(file).map_err(ArchiveError::Read)?;
    let bad = |e: String| ArchiveError::Invalid(format!("{what}: {e}"));
    let (diff_id, uncompressed_size, content) = if kind == Compression::None {
        let mut plain = plain;
        let stats = check_tar(&mut plain).map_err(|e| bad(e.to_string()))?;
        io::copy(&mut plain, &mut io::sink()).map_err(|e| bad(e.to_string()))?;
        (f.digest.clone(), f.size, stats.bytes)
    } else {
        let mut r = HashReader::new(plain);
        let stats = check_tar(&mut r).map_err(|e| bad(format!("{} layer: {e}", kind.name())))?;
        io::copy(&mut r, &mut io::sink())
            .map_err(|e| bad(format!("cannot decompress {}: {e}", kind.name())))?;
        let (diff_id, size) = r.finish();
        (diff_id, size, stats.bytes)
    };
    if &diff_id != expected_diff_id {
        return Err(ArchiveError::DigestMismatch {
            what: format!("{what} (DiffID listed in the config)"),
            expected: expected_diff_id.clone(),
            actual: diff_id,
        });
    }
    let media_type = match (media_type, kind) {
        (Some(m), _) => m.to_string(),
        (None, Compression::None) => oci::MEDIA_LAYER_TAR.to_string(),
        (None, Compression::Gzip) => oci::MEDIA_LAYER_GZIP.to_string(),
        (None, Compression::Zstd) => oci::MEDIA_LAYER_ZSTD.to_string(),
        (None, other) => {
            return Err(bad(format!(
                "{} compressed layers are not supported",
                other.name()
            )))
        }
    };
    Ok(LayerInfo {
        digest: f.digest.clone(),
        diff_id,
        size: f.size,
        uncompressed_size,
        content_size: Some(content),
        media_type,
        gzip_members: Vec::new(),
    })
}

/// Moves checked layers into the blob store.
fn commit_layers(
    store: &Store,
    layers: Vec<(&Staged, LayerInfo)>,
    progress: Progress<'_>,
) -> Result<Vec<LayerInfo>, ArchiveError> {
    let mut out = Vec::with_capacity(layers.len());
    for (f, info) in layers {
        store.put_blob_file(&f.path, &f.digest)?;
        progress(Event::Done {
            id: f.digest.short(),
        });
        out.push(info);
    }
    Ok(out)
}

fn load_docker(
    store: &Store,
    entries: &Entries,
    progress: Progress<'_>,
) -> Result<Vec<LoadedImage>, ArchiveError> {
    let bytes = entries.json("manifest.json", "archive")?;
    let manifest: Vec<DockerManifestEntry> =
        serde_json::from_slice(&bytes).map_err(|e| ArchiveError::BadJson {
            what: "manifest.json".into(),
            error: e,
        })?;
    if manifest.is_empty() {
        return Err(ArchiveError::Invalid(
            "manifest.json lists no images".into(),
        ));
    }
    // The counts first: they cost nothing to check.
    at_most(
        "manifest.json",
        manifest.len(),
        MAX_IMAGES_PER_ARCHIVE,
        "images",
    )?;
    let mut all_tags = 0;
    for m in &manifest {
        let what = format!(
            "manifest.json entry of {}",
            crate::image::limits::abbreviate(&m.config)
        );
        at_most(&what, m.layers.len(), MAX_LAYERS, "layers")?;
        let n_tags = m.repo_tags.as_ref().map_or(0, Vec::len);
        at_most(&what, n_tags, MAX_TAGS_PER_IMAGE, "RepoTags")?;
        all_tags += n_tags;
    }
    at_most(
        "manifest.json",
        all_tags,
        MAX_TAGS_PER_ARCHIVE,
        "RepoTags in all",
    )?;
    // Check everything before committing anything.
    let mut plans = Vec::new();
    for m in &manifest {
        let cfg_file = entries.need(&m.config, "manifest.json")?;
        if let Some(d) = digest_from_path(&m.config) {
            verify(cfg_file, &d, &format!("config {}", m.config))?;
        } else if let Some(hex) = m.config.strip_suffix(".json") {
            if let Ok(d) = Digest::from_hex(hex) {
                verify(cfg_file, &d, &format!("config {}", m.config))?;
            }
        }
        let cfg_bytes = entries.json(&m.config, "manifest.json")?;
        let config = parse_config(&cfg_bytes, &format!("config {}", m.config))?;
        if config.rootfs.diff_ids.len() != m.layers.len() {
            return Err(ArchiveError::Invalid(format!(
                "config {} lists {} layers but manifest.json lists {}",
                m.config,
                config.rootfs.diff_ids.len(),
                m.layers.len()
            )));
        }
        let mut tags = Vec::new();
        for t in m.repo_tags.iter().flatten() {
            tags.push(parse_tag(t, "manifest.json RepoTags")?);
        }
        let mut layers = Vec::new();
        for (l, diff_id) in m.layers.iter().zip(&config.rootfs.diff_ids) {
            let f = entries.need(l, "manifest.json")?;
            if let Some(d) = digest_from_path(l) {
                verify(f, &d, &format!("layer {l}"))?;
            }
            let what = format!("layer {l}");
            layers.push((f, check_layer(f, diff_id, &what, None, progress)?));
        }
        plans.push((cfg_bytes, tags, layers));
    }
    // Everything checked: now move blobs in and commit.
    let mut out = Vec::new();
    for (cfg_bytes, tags, layers) in plans {
        let layers = commit_layers(store, layers, progress)?;
        let id = store.add_image(&cfg_bytes, &layers, None, &tags)?;
        out.push(LoadedImage { id, tags });
    }
    Ok(out)
}

fn blob<'a>(
    entries: &'a Entries,
    d: &oci::Descriptor,
    what: &str,
) -> Result<&'a Staged, ArchiveError> {
    let path = format!("blobs/sha256/{}", d.digest.hex());
    let f = entries.need(&path, what)?;
    verify(f, &d.digest, &path)?;
    if f.size != d.size {
        return Err(ArchiveError::SizeMismatch {
            what: path,
            expected: d.size,
            actual: f.size,
        });
    }
    Ok(f)
}

pub(super) fn blob_json(
    entries: &Entries,
    d: &oci::Descriptor,
    what: &str,
) -> Result<Vec<u8>, ArchiveError> {
    blob(entries, d, what)?;
    entries.json(&format!("blobs/sha256/{}", d.digest.hex()), what)
}

/// The tag an `index.json` entry names, if it names a full reference.
fn oci_tag(d: &oci::Descriptor) -> Result<Option<Reference>, ArchiveError> {
    let Some(a) = &d.annotations else {
        return Ok(None);
    };
    if let Some(name) = a.get(oci::ANNOTATION_CONTAINERD_NAME) {
        return parse_tag(name, "index.json image name").map(Some);
    }
    match a.get(oci::ANNOTATION_REF_NAME) {
        // A bare tag (`latest`) names no repository: load the image untagged.
        Some(name) if name.contains(':') || name.contains('/') => {
            parse_tag(name, "index.json ref.name").map(Some)
        }
        _ => Ok(None),
    }
}

/// A tag named by the archive (`what` says where); a digest reference is no tag.
fn parse_tag(name: &str, what: &str) -> Result<Reference, ArchiveError> {
    let r = Reference::parse(name)
        .map_err(|e| ArchiveError::Invalid(format!("{what} {name:?}: {e}")))?;
    if r.digest.is_some() {
        return Err(ArchiveError::Invalid(format!(
            "{what} {name:?}: refusing to create a tag with a digest reference"
        )));
    }
    Ok(r)
}

fn load_oci(
    store: &Store,
    entries: &Entries,
    progress: Progress<'_>,
) -> Result<Vec<LoadedImage>, ArchiveError> {
    let index = read_index(entries)?;
    at_most(
        "index.json",
        index.manifests.len(),
        MAX_IMAGES_PER_ARCHIVE,
        "images",
    )?;
    let mut picked = Vec::new();
    for d in &index.manifests {
        let tag = oci_tag(d)?;
        picked.push((platform_manifest(entries, d)?, tag));
    }
    if picked.is_empty() {
        return Err(ArchiveError::Invalid("index.json lists no images".into()));
    }
    let mut plans = Vec::new();
    // Tags per image (by config): one index entry names one, but entries may repeat an image.
    let mut tag_counts: HashMap<Digest, usize> = HashMap::new();
    for (d, tag) in picked {
        let checked = check_image(entries, &d, progress, &mut |manifest| {
            let n_tags = tag_counts
                .entry(manifest.config.digest.clone())
                .or_default();
            *n_tags += usize::from(tag.is_some());
            at_most(
                &format!("index.json: image {}", manifest.config.digest),
                *n_tags,
                MAX_TAGS_PER_IMAGE,
                "tags",
            )
        })?;
        plans.push((checked, tag));
    }
    let mut out: Vec<LoadedImage> = Vec::new();
    for (checked, tag) in plans {
        let tags: Vec<Reference> = tag.into_iter().collect();
        let id = store_image(store, checked, &tags, progress)?;
        match out.iter_mut().find(|l| l.id == id) {
            Some(l) => l.tags.extend(tags),
            None => out.push(LoadedImage { id, tags }),
        }
    }
    Ok(out)
}

/// The `index.json` of a staged OCI layout.
pub(super) fn read_index(entries: &Entries) -> Result<Index, ArchiveError> {
    let bytes = entries.json("index.json", "archive")?;
    serde_json::from_slice(&bytes).map_err(|e| ArchiveError::BadJson {
        what: "index.json".into(),
        error: e,
    })
}

/// The image manifest an `index.json` entry stands for: itself, or for an image index the
/// manifest of the host's platform (else its first).
pub(super) fn platform_manifest(
    entries: &Entries,
    d: &oci::Descriptor,
) -> Result<oci::Descriptor, ArchiveError> {
    if d.media_type != oci::MEDIA_INDEX && d.media_type != oci::MEDIA_DOCKER_LIST {
        return Ok(d.clone());
    }
    let inner: Index =
        serde_json::from_slice(&blob_json(entries, d, "index.json")?).map_err(|e| {
            ArchiveError::BadJson {
                what: format!("image index {}", d.digest),
                error: e,
            }
        })?;
    let arch = oci::host_architecture();
    inner
        .manifests
        .iter()
        .find(|m| {
            m.platform
                .as_ref()
                .is_some_and(|p| p.architecture == arch && p.os == "linux")
        })
        .or_else(|| inner.manifests.first())
        .cloned()
        .ok_or_else(|| ArchiveError::Invalid(format!("image index {} is empty", d.digest)))
}

/// An image of a staged OCI layout, checked and ready to store.
pub(super) struct Checked<'a> {
    manifest: Vec<u8>,
    config: Vec<u8>,
    layers: Vec<(&'a Staged, LayerInfo)>,
}

/// Checks the image of manifest `d`: its config, and each layer's digest, size, entries and
/// DiffID. `on_manifest` sees the parsed manifest before anything else is read (for limits
/// the caller counts across images). Stores nothing.
pub(super) fn check_image<'a>(
    entries: &'a Entries,
    d: &oci::Descriptor,
    progress: Progress<'_>,
    on_manifest: &mut dyn FnMut(&Manifest) -> Result<(), ArchiveError>,
) -> Result<Checked<'a>, ArchiveError> {
    let mbytes = blob_json(entries, d, "index.json")?;
    let manifest: Manifest =
        serde_json::from_slice(&mbytes).map_err(|e| ArchiveError::BadJson {
            what: format!("manifest {}", d.digest),
            error: e,
        })?;
    let what = format!("manifest {}", d.digest);
    at_most(&what, manifest.layers.len(), MAX_LAYERS, "layers")?;
    on_manifest(&manifest)?;
    let cfg_bytes = blob_json(entries, &manifest.config, &what)?;
    let config = parse_config(&cfg_bytes, &format!("config {}", manifest.config.digest))?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(ArchiveError::Invalid(format!(
            "config {} lists {} layers but manifest {} lists {}",
            manifest.config.digest,
            config.rootfs.diff_ids.len(),
            d.digest,
            manifest.layers.len()
        )));
    }
    let mut layers = Vec::new();
    for (l, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
        let f = blob(entries, l, &what)?;
        let layer = format!("layer {}", l.digest);
        layers.push((
            f,
            check_layer(f, diff_id, &layer, Some(&l.media_type), progress)?,
        ));
    }
    Ok(Checked {
        manifest: mbytes,
        config: cfg_bytes,
        layers,
    })
}

/// Stores a checked image (its manifest kept byte for byte) under `tags`.
pub(super) fn store_image(
    store: &Store,
    checked: Checked<'_>,
    tags: &[Reference],
    progress: Progress<'_>,
) -> Result<ImageId, ArchiveError> {
    let layers = commit_layers(store, checked.layers, progress)?;
    Ok(store.add_image(&checked.config, &layers, Some(&checked.manifest), tags)?)
}
