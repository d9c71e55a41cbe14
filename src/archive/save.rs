//! `save`: images → docker-archive, oci-archive or an OCI layout directory, streamed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::progress::{no_progress, Counted, Event, Progress};
use super::{io_err, ArchiveError};
use crate::image::compress;
use crate::image::digest::Digest;
use crate::image::oci::{self, Descriptor, Index, Manifest};
use crate::image::reference::Reference;
use crate::store::{ImageRecord, Store};

/// Output format of `save`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArchiveFormat {
    /// `manifest.json` + `repositories` + uncompressed layer tars (docker/podman load).
    #[default]
    DockerArchive,
    /// An OCI image layout in a tar.
    OciArchive,
    /// An OCI image layout in a directory.
    OciDir,
}

/// Annotations of an OCI layout's `index.json` (`build --annotation index:…` and
/// `manifest-descriptor:…`): they exist only in what is written, not in the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayoutAnnotations {
    /// On `index.json` itself.
    pub index: BTreeMap<String, String>,
    /// On each entry of `index.json` (the descriptors of the image manifests), beside the
    /// names `save` puts there.
    pub manifest_descriptor: BTreeMap<String, String>,
}

impl LayoutAnnotations {
    fn is_empty(&self) -> bool {
        self.index.is_empty() && self.manifest_descriptor.is_empty()
    }

    /// `index` with these annotations added.
    fn apply(&self, mut index: Index) -> Index {
        if !self.index.is_empty() {
            index.annotations = Some(self.index.clone());
        }
        if !self.manifest_descriptor.is_empty() {
            for d in &mut index.manifests {
                let mut a = self.manifest_descriptor.clone();
                a.extend(d.annotations.take().unwrap_or_default());
                d.annotations = Some(a);
            }
        }
        index
    }
}

/// One image to save and the tags to save it under.
struct Selected {
    record: ImageRecord,
    tags: Vec<Reference>,
}

/// Resolves `names` like docker: a tag saves that tag, a repository without a tag
/// (`busybox`) every tag it has, an ID the image untagged; the same image named twice is
/// stored once with all its tags.
fn select(store: &Store, names: &[String]) -> Result<Vec<Selected>, ArchiveError> {
    let mut out: Vec<Selected> = Vec::new();
    let mut add = |record: ImageRecord, tag: Option<Reference>| {
        let pos = match out.iter().position(|s| s.record.id == record.id) {
            Some(p) => p,
            None => {
                out.push(Selected {
                    record,
                    tags: Vec::new(),
                });
                out.len() - 1
            }
        };
        if let Some(t) = tag {
            if !out[pos].tags.contains(&t) {
                out[pos].tags.push(t);
            }
        }
    };
    for name in names {
        let repository = repository_tags(store, name)?;
        if repository.is_empty() {
            let (record, tag) = store.resolve_name(name)?;
            add(record, tag);
        }
        for (record, tag) in repository {
            add(record, Some(tag));
        }
    }
    Ok(out)
}

/// When `name` is a repository without tag or digest, each of its tags with its image
/// (docker's `save` of a bare name); empty otherwise, or when the store has no such
/// repository (then `name` may be an ID prefix, resolved as usual).
fn repository_tags(
    store: &Store,
    name: &str,
) -> Result<Vec<(ImageRecord, Reference)>, ArchiveError> {
    let repo = match Reference::parse_no_default_tag(name) {
        Ok(r) if r.tag.is_none() && r.digest.is_none() => r.name(),
        _ => return Ok(Vec::new()),
    };
    let mut found = Vec::new();
    for image in store.list_images()? {
        for tag in image.tags.iter().filter(|t| t.name() == repo) {
            found.push((image.record.clone(), tag.clone()));
        }
    }
    Ok(found)
}

/// Where archive entries go: a tar stream or a directory.
trait Sink {
    fn dir(&mut self, path: &str) -> Result<(), ArchiveError>;
    fn file(&mut self, path: &str, size: u64, data: &mut dyn Read) -> Result<(), ArchiveError>;
    /// Pushes what was written so far to the output (a layer is "written" once it is there).
    fn flush(&mut self) -> Result<(), ArchiveError>;
}

struct TarSink<W: Write> {
    builder: tar::Builder<W>,
}

impl<W: Write> Sink for TarSink<W> {
    fn dir(&mut self, path: &str) -> Result<(), ArchiveError> {
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        self.builder
            .append_data(&mut h, format!("{path}/"), io::empty())
            .map_err(ArchiveError::Write)
    }

    fn file(&mut self, path: &str, size: u64, data: &mut dyn Read) -> Result<(), ArchiveError> {
        let mut h = header(tar::EntryType::Regular, 0o644, size);
        let mut exact = ExactReader {
            inner: data,
            left: size,
            what: path,
        };
        self.builder
            .append_data(&mut h, path, &mut exact)
            .map_err(ArchiveError::Write)?;
        if exact.left != 0 {
            return Err(ArchiveError::Invalid(format!(
                "{path}: content ended {} bytes early",
                exact.left
            )));
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ArchiveError> {
        self.builder.get_mut().flush().map_err(ArchiveError::Write)
    }
}

struct DirSink {
    root: PathBuf,
}

/// Writes below `root` without following symlinks found there: a symlinked directory is
/// refused, and a file is written beside its final name and renamed over it (replacing a
/// symlink rather than writing to its target).
impl Sink for DirSink {
    fn dir(&mut self, path: &str) -> Result<(), ArchiveError> {
        let p = self.root.join(path);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => Err(ArchiveError::Invalid(format!(
                "{} is a symlink; refusing to write through it",
                p.display()
            ))),
            _ => fs::create_dir(&p).or_else(|e| {
                if p.is_dir() {
                    Ok(())
                } else {
                    Err(io_err(&p)(e))
                }
            }),
        }
    }

    fn file(&mut self, path: &str, _size: u64, data: &mut dyn Read) -> Result<(), ArchiveError> {
        let p = self.root.join(path);
        let parent = p.parent().unwrap_or(&self.root);
        let mut tmp = locked_temp_file(parent)?;
        io::copy(data, &mut tmp).map_err(io_err(tmp.path()))?;
        // Temp files are 0600; blobs are as readable as `File::create` would make them.
        let mode = std::os::unix::fs::PermissionsExt::from_mode(0o644);
        tmp.as_file()
            .set_permissions(mode)
            .map_err(io_err(tmp.path()))?;
        tmp.persist(&p).map_err(|e| io_err(&p)(e.error))?;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ArchiveError> {
        Ok(())
    }
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// Reads exactly `left` bytes (errors on a longer source) so a tar header's size is never wrong.
struct ExactReader<'a> {
    inner: &'a mut dyn Read,
    left: u64,
    what: &'a str,
}

impl Read for ExactReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? != 0 {
                return Err(io::Error::other(format!(
                    "{}: content is longer than recorded",
                    self.what
                )));
            }
            return Ok(0);
        }
        let max = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Streams `names` (tags or IDs) from `store` to `out` in `format` (not `OciDir`).
pub fn save(
    store: &Store,
    names: &[String],
    format: ArchiveFormat,
    out: impl Write,
) -> Result<(), ArchiveError> {
    save_with_progress(store, names, format, out, &no_progress)
}

/// [`save`] with `layout`'s annotations in the archive's `index.json`.
pub fn save_annotated(
    store: &Store,
    names: &[String],
    format: ArchiveFormat,
    out: impl Write,
    layout: &LayoutAnnotations,
) -> Result<(), ArchiveError> {
    save_archive(store, names, format, out, &no_progress, layout)
}

/// [`save`], reporting each layer's bytes and its end to `progress`.
pub fn save_with_progress(
    store: &Store,
    names: &[String],
    format: ArchiveFormat,
    out: impl Write,
    progress: Progress<'_>,
) -> Result<(), ArchiveError> {
    save_archive(
        store,
        names,
        format,
        out,
        progress,
        &LayoutAnnotations::default(),
    )
}

fn save_archive(
    store: &Store,
    names: &[String],
    format: ArchiveFormat,
    out: impl Write,
    progress: Progress<'_>,
    layout: &LayoutAnnotations,
) -> Result<(), ArchiveError> {
    let images = select(store, names)?;
    let mut sink = TarSink {
        builder: tar::Builder::new(out),
    };
    match format {
        ArchiveFormat::DockerArchive => write_docker(store, &images, &mut sink, progress, layout)?,
        ArchiveFormat::OciArchive => write_oci(store, &images, &mut sink, progress, layout)?,
        ArchiveFormat::OciDir => {
            return Err(ArchiveError::Invalid(
                "oci-dir output needs a directory (-o DIR)".into(),
            ))
        }
    }
    let mut out = sink.builder.into_inner().map_err(ArchiveError::Write)?;
    out.flush().map_err(ArchiveError::Write)
}

/// Writes `names` as an OCI image layout into directory `dir` (created if missing).
pub fn save_oci_dir(store: &Store, names: &[String], dir: &Path) -> Result<(), ArchiveError> {
    save_oci_dir_with_progress(store, names, dir, &no_progress)
}

/// [`save_oci_dir`], reporting each layer's bytes and its end to `progress`.
pub fn save_oci_dir_with_progress(
    store: &Store,
    names: &[String],
    dir: &Path,
    progress: Progress<'_>,
) -> Result<(), ArchiveError> {
    save_oci_layout(store, names, dir, progress, &LayoutAnnotations::default())
}

/// [`save_oci_dir`] with `layout`'s annotations in `index.json`.
pub fn save_oci_dir_annotated(
    store: &Store,
    names: &[String],
    dir: &Path,
    layout: &LayoutAnnotations,
) -> Result<(), ArchiveError> {
    save_oci_layout(store, names, dir, &no_progress, layout)
}

fn save_oci_layout(
    store: &Store,
    names: &[String],
    dir: &Path,
    progress: Progress<'_>,
    layout: &LayoutAnnotations,
) -> Result<(), ArchiveError> {
    let images = select(store, names)?;
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    for d in [dir.to_path_buf(), dir.join("blobs/sha256")] {
        clean_dead_temp_files(&d);
    }
    let mut sink = DirSink {
        root: dir.to_path_buf(),
    };
    write_oci(store, &images, &mut sink, progress, layout)
}

fn copy_blob(
    store: &Store,
    sink: &mut dyn Sink,
    digest: &Digest,
    size: u64,
) -> Result<(), ArchiveError> {
    let mut f = io::BufReader::with_capacity(1 << 20, store.open_blob(digest)?);
    sink.file(&format!("blobs/sha256/{}", digest.hex()), size, &mut f)
}

/// Writes layer `id` (`size` bytes read from `data`) to `path`, reporting its bytes, and
/// reports it done once it reached the output.
fn write_layer(
    sink: &mut dyn Sink,
    path: &str,
    id: &Digest,
    size: u64,
    data: &mut dyn Read,
    progress: Progress<'_>,
) -> Result<(), ArchiveError> {
    let id = id.short();
    sink.file(
        path,
        size,
        &mut Counted::new(data, id, Some(size), progress),
    )?;
    sink.flush()?;
    progress(Event::Done { id });
    Ok(())
}

/// The `oci-layout` file of an OCI image layout.
const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

fn write_oci(
    store: &Store,
    images: &[Selected],
    sink: &mut dyn Sink,
    progress: Progress<'_>,
    layout: &LayoutAnnotations,
) -> Result<(), ArchiveError> {
    sink.file("oci-layout", OCI_LAYOUT.len() as u64, &mut &OCI_LAYOUT[..])?;
    sink.dir("blobs")?;
    sink.dir("blobs/sha256")?;
    let mut written = BTreeSet::new();
    for img in images {
        let r = &img.record;
        let blobs = std::iter::once((&r.manifest.digest, r.manifest.size))
            .chain(std::iter::once((&r.id, r.config_size)));
        for (d, size) in blobs {
            if written.insert(d.clone()) {
                copy_blob(store, sink, d, size)?;
            }
        }
        for l in &r.layers {
            if written.insert(l.digest.clone()) {
                let mut f = io::BufReader::with_capacity(1 << 20, store.open_blob(&l.digest)?);
                let path = format!("blobs/sha256/{}", l.digest.hex());
                write_layer(sink, &path, &l.digest, l.size, &mut f, progress)?;
            }
        }
    }
    let index = Index::of_tagged(images.iter().map(|i| (&i.record.manifest, &i.tags[..])));
    let bytes = to_json("index.json", &layout.apply(index))?;
    sink.file("index.json", bytes.len() as u64, &mut &bytes[..])
}

#[derive(serde::Serialize)]
struct DockerManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags")]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

fn write_docker(
    store: &Store,
    images: &[Selected],
    sink: &mut dyn Sink,
    progress: Progress<'_>,
    layout: &LayoutAnnotations,
) -> Result<(), ArchiveError> {
    let mut oci_view = Vec::new();
    sink.dir("blobs")?;
    sink.dir("blobs/sha256")?;
    let mut written = BTreeSet::new();
    let mut manifest = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for img in images {
        let r = &img.record;
        if written.insert(r.id.clone()) {
            copy_blob(store, sink, &r.id, r.config_size)?;
        }
        let mut layer_paths = Vec::new();
        for l in &r.layers {
            let path = format!("blobs/sha256/{}", l.diff_id.hex());
            if written.insert(l.diff_id.clone()) {
                // docker-archive layers are uncompressed tars named by DiffID.
                let mut plain: Box<dyn Read> = if !l.gzip_members.is_empty()
                    && l.gzip_members.iter().sum::<u64>() == l.size
                {
                    store.open_blob(&l.digest)?; // a clear error if it is missing
                    Box::new(compress::ParallelGunzip::new(
                        &store.blob_path(&l.digest),
                        &l.gzip_members,
                    ))
                } else {
                    let blob = io::BufReader::with_capacity(1 << 20, store.open_blob(&l.digest)?);
                    compress::decompress_auto(blob)
                        .map_err(ArchiveError::Read)?
                        .1
                };
                write_layer(
                    sink,
                    &path,
                    &l.diff_id,
                    l.uncompressed_size,
                    &mut plain,
                    progress,
                )?;
            }
            layer_paths.push(path);
        }
        let tags: Vec<String> = img.tags.iter().map(Reference::familiar).collect();
        if let Some(top) = r.layers.last() {
            for t in &img.tags {
                repositories.entry(t.familiar_name()).or_default().insert(
                    t.tag.clone().unwrap_or_default(),
                    top.diff_id.hex().to_string(),
                );
            }
        }
        manifest.push(DockerManifestEntry {
            config: format!("blobs/sha256/{}", r.id.hex()),
            repo_tags: if tags.is_empty() { None } else { Some(tags) },
            layers: layer_paths,
        });
        if let Some(d) = docker_oci_manifest(store, r, sink, layout, &mut written)? {
            oci_view.push((d, img.tags.clone()));
        }
    }
    if !oci_view.is_empty() {
        sink.file("oci-layout", OCI_LAYOUT.len() as u64, &mut &OCI_LAYOUT[..])?;
        let index = Index::of_tagged(oci_view.iter().map(|(d, tags)| (d, &tags[..])));
        let bytes = to_json("index.json", &layout.apply(index))?;
        sink.file("index.json", bytes.len() as u64, &mut &bytes[..])?;
    }
    let m = to_json("manifest.json", &manifest)?;
    sink.file("manifest.json", m.len() as u64, &mut &m[..])?;
    let r = to_json("repositories", &repositories)?;
    sink.file("repositories", r.len() as u64, &mut &r[..])
}

/// For a docker-archive of an annotated image (its manifest has annotations, or `layout`
/// has some): an OCI manifest of the archive's own blobs (the config and the uncompressed
/// layers, named by DiffID) with the image manifest's annotations, written beside them, so
/// the archive is also an OCI layout that carries them, as docker ≥ 25 writes its archives.
/// Other archives stay as they were (`load` and podman read them as docker-archives).
fn docker_oci_manifest(
    store: &Store,
    r: &ImageRecord,
    sink: &mut dyn Sink,
    layout: &LayoutAnnotations,
    written: &mut BTreeSet<Digest>,
) -> Result<Option<Descriptor>, ArchiveError> {
    let stored: Manifest =
        serde_json::from_slice(&store.read_blob(&r.manifest.digest)?).map_err(|e| {
            ArchiveError::BadJson {
                what: format!("manifest {}", r.manifest.digest),
                error: e,
            }
        })?;
    let annotations = stored.annotations.filter(|a| !a.is_empty());
    if annotations.is_none() && layout.is_empty() {
        return Ok(None);
    }
    let layers = r
        .layers
        .iter()
        .map(|l| Descriptor {
            media_type: oci::MEDIA_LAYER_TAR.to_string(),
            digest: l.diff_id.clone(),
            size: l.uncompressed_size,
            annotations: None,
            platform: None,
        })
        .collect();
    let m = Manifest::oci(&r.id, r.config_size, layers, annotations);
    let bytes = to_json("manifest", &m)?;
    let digest = Digest::of(&bytes);
    if written.insert(digest.clone()) {
        let path = format!("blobs/sha256/{}", digest.hex());
        sink.file(&path, bytes.len() as u64, &mut &bytes[..])?;
    }
    Ok(Some(Descriptor {
        media_type: oci::MEDIA_MANIFEST.to_string(),
        digest,
        size: bytes.len() as u64,
        annotations: None,
        platform: None,
    }))
}

fn to_json(what: &str, v: &impl serde::Serialize) -> Result<Vec<u8>, ArchiveError> {
    serde_json::to_vec(v).map_err(|e| ArchiveError::BadJson {
        what: what.into(),
        error: e,
    })
}

/// Saves `names` to the file `path` (not `OciDir`): written to a temp file beside it and
/// renamed over it, so `path` is the whole archive or untouched. The temp file is locked
/// (`flock`) while being written: the temp files of killed saves (unlocked) are removed by
/// the next save into the same directory.
pub fn save_to_file(
    store: &Store,
    names: &[String],
    format: ArchiveFormat,
    path: &Path,
    progress: Progress<'_>,
) -> Result<(), ArchiveError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(".".as_ref());
    clean_dead_temp_files(dir);
    let tmp = locked_temp_file(dir)?;
    let mut w = io::BufWriter::with_capacity(
        1 << 20,
        KillPointWriter {
            inner: tmp,
            bytes: 0,
        },
    );
    save_with_progress(store, names, format, &mut w, progress)?;
    let tmp = w
        .into_inner()
        .map_err(|e| ArchiveError::Write(e.into_error()))?
        .inner;
    tmp.persist(path).map_err(|e| io_err(path)(e.error))?;
    Ok(())
}

/// The prefix of `save`'s temp files, created beside their final names.
const TEMP_PREFIX: &str = ".rbuild-save-";

/// A temp file in `dir`, locked (`flock`) for as long as it is open. It is made under
/// another name, locked, then renamed: a cleaner never sees it unlocked while it is in use.
fn locked_temp_file(dir: &Path) -> Result<tempfile::NamedTempFile, ArchiveError> {
    let fresh = tempfile::Builder::new()
        .prefix(".rbuild-saving-")
        .tempfile_in(dir)
        .map_err(io_err(dir))?;
    fresh.as_file().lock().map_err(io_err(fresh.path()))?;
    let name = fresh
        .path()
        .file_name()
        .map(|n| n.to_string_lossy().replace(".rbuild-saving-", TEMP_PREFIX))
        .unwrap_or_default();
    let path = dir.join(name);
    let file = fresh.persist(&path).map_err(|e| io_err(&path)(e.error))?;
    let path = tempfile::TempPath::try_from_path(&path).map_err(io_err(&path))?;
    Ok(tempfile::NamedTempFile::from_parts(file, path))
}

/// Removes the temp files of killed saves in `dir`: those nobody holds locked. Best effort.
fn clean_dead_temp_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            continue;
        }
        let Ok(f) = fs::File::open(e.path()) else {
            continue;
        };
        if f.try_lock().is_ok() && e.file_type().is_ok_and(|t| t.is_file()) {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Passes writes through, reaching the test kill point `save-write` at each MiB.
struct KillPointWriter<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for KillPointWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let before = self.bytes >> 20;
        self.bytes += n as u64;
        if self.bytes >> 20 != before {
            crate::killpoint::reached("save-write");
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
