//! The local image store: an OCI image layout plus a transactional metadata database.
//!
//! ```text
//! <root>/oci-layout               {"imageLayoutVersion":"1.0.0"}
//! <root>/index.json               derived from the database: one entry per tag (+ untagged images)
//! <root>/index.json.dirty         exists while index.json may lag behind the database
//! <root>/blobs/sha256/<hex>       manifests, configs, layers (content-addressed, immutable)
//! <root>/meta.redb                tags, image records, snapshot records (the source of truth)
//! <root>/lock                     flock held around every database transaction
//! <root>/snapshots/<chain hex>/   one unpacked layer per chain ID, overlayfs-lowerdir ready
//! <root>/pool/<key>               files of COPY snapshots, hard-linked into them (see `pool`)
//! <root>/context-cache/<hex>      build context digest index, one per context directory
//! <root>/containers/<id>/         a container's upper/work dirs and its `lease` (see `leases`)
//! <root>/tmp/s-<pid>-<rand>/       one process's temp files, flock'ed while it lives (`session`)
//! <root>/cache-mounts/<hex>/      `RUN --mount=type=cache` dirs
//! <root>/volumes/<name>/_data     a volume's files (see `volumes`)
//! ```
//!
//! The root, `snapshots/`, `containers/`, `tmp/`, `pool/`, `cache-mounts/` and `volumes/` are 0700: they
//! hold setuid files and device nodes as images and containers made them (see `permissions`).
//!
//! `skopeo inspect oci:<root>:busybox:latest` and `umoci` read the root directly: each tagged
//! manifest in `index.json` carries `org.opencontainers.image.ref.name` set to the **familiar**
//! name (`busybox:latest`, `localhost:5000/app:v1`) and `io.containerd.image.name` set to the
//! full one (`docker.io/library/busybox:latest`).
//!
//! Several rbuild processes may use one root at once: blobs are written to a temp file,
//! digest-verified, fsynced and renamed into place (so concurrent writers of the same blob
//! agree); all metadata changes run as redb transactions while holding an exclusive `flock` on
//! `<root>/lock` (redb itself allows one process at a time, so the database is opened per
//! operation); `index.json` is rewritten (temp + rename) under the same lock.
//!
//! Main API (see each method):
//! [`Store::open`], [`Store::resolve_image`], [`Store::image_config`],
//! [`Store::put_blob_from_reader`], [`Store::write_layer`], [`Store::commit_image`],
//! [`Store::add_image`], [`Store::snapshot_dirs`], [`Store::list_images`], [`Store::tag`],
//! [`Store::remove_image`], [`Store::prune_images`], [`Store::collect_garbage`].
//!
//! Other parts of rbuild (cache records, containers) keep their own redb tables in the same
//! database: `Store::with_db(|db| …)` (crate-visible) runs a closure with the database open
//! under the store lock; keep it short (no I/O-heavy work inside), and use `db::db_err` to
//! turn redb errors into [`StoreError`].
//!
//! Reference counting is done by scanning: removing an image deletes exactly the blobs and
//! snapshots (chain IDs) that no remaining image, build cache record or container lease
//! references, inside the same locked transaction. Snapshots appear and disappear by one
//! rename each (never half there under their final name). Temp files a crash or kill leaves
//! are in a dead process's session dir, removed by the next command
//! ([`Store::clean_leftovers`]); unreferenced blobs and snapshots by
//! [`Store::collect_garbage`] once older than [`GC_GRACE`]. [`Store::check`] verifies it all.
//!
//! ```no_run
//! use rbuild::store::Store;
//! # fn main() -> Result<(), rbuild::store::StoreError> {
//! let store = Store::open("/var/lib/rbuild".as_ref())?;
//! let image = store.resolve_image("busybox")?;
//! let lowers = store.snapshot_dirs(&image.id)?; // bottom to top
//! # Ok(()) }
//! ```

mod adopt;
mod cache;
mod check;
mod containers;
pub(crate) mod db;
mod db_file;
mod downloads;
mod images;
mod leases;
mod permissions;
mod pool;
mod session;
mod snapshots;
mod volumes;

use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::image::digest::{Digest, HashWriter};
use crate::image::layer::{self, LayerError, LayerInfo, LayerOptions, LayerSource};
use crate::image::reference::ReferenceError;

pub use cache::{BuildView, CacheRecord, StepRecord};
pub use check::CheckReport;
pub use containers::{
    ContainerRecord, ContainerStatus, Health, HealthResult, HealthStatus, RestartPolicy,
};
pub use db::ImageRecord;
pub use downloads::DownloadRecord;
pub use images::{ImageSummary, RemoveEvent, GC_GRACE};
pub use leases::{HeldLease, Lease};
pub(crate) use pool::{Pool, PoolFile};
pub use session::end_sessions;
pub use volumes::{VolumeRecord, ANONYMOUS_LABEL};

/// The directory under the store root that holds the build context digest cache (see
/// `crate::context::MetadataCache`): `builder prune --all` empties it.
pub const CONTEXT_CACHE: &str = "context-cache";

/// An image ID: the digest of its config blob (as docker and podman define it).
pub type ImageId = Digest;

/// Largest JSON blob (manifest, config, index) the store reads into memory.
pub const MAX_JSON_SIZE: u64 = 32 << 20;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: io::Error },
    #[error("metadata database: {0}")]
    Db(Box<redb::Error>),
    #[error("No such image: {0}")]
    NoSuchImage(String),
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    #[error("{0:?} matches more than one image; use more of the ID")]
    Ambiguous(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("blob {0} is missing from the store")]
    MissingBlob(Digest),
    #[error("{what} is not valid JSON: {error}")]
    BadJson {
        what: String,
        error: serde_json::Error,
    },
    #[error("{0} is larger than the {MAX_JSON_SIZE} bytes allowed for JSON")]
    TooLarge(String),
    #[error("invalid image: {0}")]
    Invalid(String),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("No such volume: {0}")]
    NoSuchVolume(String),
    /// Docker's message for `volume rm` of a volume a container uses.
    #[error("remove {name}: volume is in use - [{}]", containers.join(", "))]
    VolumeInUse {
        name: String,
        containers: Vec<String>,
    },
}

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.into();
    move |error| StoreError::Io { path, error }
}

/// A handle on a store root. Cheap; holds no lock or open database between calls.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// Marks `dir` (the store's `tmp`, where build steps make their directories) as the top of
/// unrelated directory trees (`chattr +T`, ext2/3/4's TOPDIR flag): ext4 then places each new
/// subdirectory in a lightly used block group. Without it every staging dir lands in the
/// group of `tmp`, where the inodes of dirs removed in the last 30 seconds (an identical
/// snapshot, a finished step's work dir) make each file creation scan past them (on ext4
/// without a journal): a 10,000-file COPY ran 2-3 times slower on a busy store. Best effort:
/// other filesystems, or no `chattr`, change nothing.
fn spread_directories(dir: &Path) {
    let _ = std::process::Command::new("chattr")
        .arg("+T")
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

impl Store {
    /// Opens the store at `root`, creating the layout if it does not exist yet. The root and
    /// the directories holding unpacked or container content are owner-only (0700), fixed
    /// here on a store made with looser modes (see `permissions`).
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        for dir in std::iter::once("blobs/sha256").chain(permissions::PRIVATE_DIRS) {
            let p = root.join(dir);
            fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        permissions::restrict(root)?;
        let store = Store {
            root: root.to_path_buf(),
        };
        let layout = root.join("oci-layout");
        if !layout.exists() {
            spread_directories(&root.join("tmp"));
            store.write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        if !root.join("index.json").exists() {
            store.with_db(|_| Ok(()))?; // creates the database and index.json
        }
        Ok(store)
    }

    /// The store root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob `digest` lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// Whether the blob is present.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<fs::File, StoreError> {
        let p = self.blob_path(digest);
        fs::File::open(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::MissingBlob(digest.clone())
            } else {
                io_err(&p)(e)
            }
        })
    }

    /// Reads a small (JSON) blob into memory, checking its digest.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let f = self.open_blob(digest)?;
        let mut buf = Vec::new();
        f.take(MAX_JSON_SIZE + 1)
            .read_to_end(&mut buf)
            .map_err(io_err(self.blob_path(digest)))?;
        if buf.len() as u64 > MAX_JSON_SIZE {
            return Err(StoreError::TooLarge(digest.to_string()));
        }
        let actual = Digest::of(&buf);
        if &actual != digest {
            return Err(StoreError::DigestMismatch {
                what: format!("blob {}", self.blob_path(digest).display()),
                expected: digest.clone(),
                actual,
            });
        }
        Ok(buf)
    }

    /// A temp dir in this process's session dir under `<root>/tmp` (same filesystem as the
    /// blobs, so renames work; removed by the next command should this process be killed).
    pub fn temp_dir(&self) -> Result<tempfile::TempDir, StoreError> {
        let session = self.session()?;
        if !session
            .spread
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            spread_directories(&session.dir);
        }
        tempfile::Builder::new()
            .prefix("work-")
            .tempdir_in(&session.dir)
            .map_err(io_err(&session.dir))
    }

    fn temp_file(&self) -> Result<tempfile::NamedTempFile, StoreError> {
        let session = self.session()?;
        tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&session.dir)
            .map_err(io_err(&session.dir))
    }

    /// Streams `reader` into the store as a blob; verifies it against `expected` when given.
    /// Returns the digest and size. The blob appears atomically (temp file, fsync, rename).
    pub fn put_blob_from_reader(
        &self,
        mut reader: impl Read,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64), StoreError> {
        let tmp = self.temp_file()?;
        let mut w = HashWriter::new(BufWriter::with_capacity(1 << 20, tmp));
        copy_with_kill_point(&mut reader, &mut w).map_err(|e| StoreError::Io {
            path: "blob being written".into(),
            error: e,
        })?;
        let (buf, digest, size) = w.finish();
        let tmp = buf
            .into_inner()
            .map_err(|e| io_err("blob temp file")(e.into_error()))?;
        if let Some(expected) = expected {
            if expected != &digest {
                return Err(StoreError::DigestMismatch {
                    what: "blob".into(),
                    expected: expected.clone(),
                    actual: digest,
                });
            }
        }
        self.persist_blob(tmp, &digest)?;
        Ok((digest, size))
    }

    /// Stores `bytes` as a blob and returns its digest. A blob that is there already is only
    /// touched (marked as recently used), not written again.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let digest = Digest::of(bytes);
        let dest = self.blob_path(&digest);
        if dest.is_file() {
            touch(&dest);
            return Ok(digest);
        }
        Ok(self.put_blob_from_reader(bytes, Some(&digest))?.0)
    }

    /// Moves a complete, already-verified temp file (from [`Store::temp_dir`]) into place as
    /// blob `digest`.
    pub fn put_blob_file(&self, path: &Path, digest: &Digest) -> Result<(), StoreError> {
        let dest = self.blob_path(digest);
        if dest.exists() {
            let _ = fs::remove_file(path);
            touch(&dest);
            return Ok(());
        }
        set_blob_mode(path)?;
        let f = fs::File::open(path).map_err(io_err(path))?;
        f.sync_all().map_err(io_err(path))?;
        fs::rename(path, &dest).map_err(io_err(&dest))?;
        sync_dir(dest.parent().unwrap_or(&self.root));
        Ok(())
    }

    fn persist_blob(
        &self,
        tmp: tempfile::NamedTempFile,
        digest: &Digest,
    ) -> Result<(), StoreError> {
        let dest = self.blob_path(digest);
        if dest.is_file() {
            touch(&dest);
            return Ok(()); // same content already there; the temp file is dropped
        }
        set_blob_mode(tmp.path())?;
        tmp.as_file().sync_all().map_err(io_err(tmp.path()))?;
        tmp.persist(&dest).map_err(|e| io_err(&dest)(e.error))?;
        sync_dir(dest.parent().unwrap_or(&self.root));
        Ok(())
    }

    /// Writes a layer made from `source` straight into the blob store.
    pub fn write_layer(
        &self,
        source: &LayerSource<'_>,
        options: &LayerOptions,
    ) -> Result<LayerInfo, StoreError> {
        let tmp = self.temp_file()?;
        let (buf, info) =
            layer::write_layer(source, options, BufWriter::with_capacity(1 << 20, tmp))?;
        let tmp = buf
            .into_inner()
            .map_err(|e| io_err("layer temp file")(e.into_error()))?;
        self.persist_blob(tmp, &info.digest)?;
        Ok(info)
    }

    /// Writes `bytes` to `path` (a file in the store) atomically: a temp file in the
    /// session dir, fsync, rename.
    pub(crate) fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let dir = path.parent().unwrap_or(&self.root);
        let session = self.session()?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&session.dir)
            .map_err(io_err(&session.dir))?;
        tmp.write_all(bytes).map_err(io_err(tmp.path()))?;
        tmp.as_file().sync_all().map_err(io_err(tmp.path()))?;
        tmp.persist(path).map_err(|e| io_err(path)(e.error))?;
        sync_dir(dir);
        Ok(())
    }
}

/// `io::copy` with the test kill point `blob-write` at each MiB.
fn copy_with_kill_point(reader: &mut impl Read, w: &mut impl Write) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..n])?;
        total += n as u64;
        crate::killpoint::reached("blob-write");
    }
}

/// Blobs are world-readable (0644), like any OCI layout, whatever the temp file had.
fn set_blob_mode(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).map_err(io_err(path))
}

/// Marks a blob as recently used (so a concurrent garbage collection can tell).
fn touch(path: &Path) {
    let now = filetime::FileTime::now();
    let _ = filetime::set_file_mtime(path, now);
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}
