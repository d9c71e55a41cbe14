//! Moving images as tarballs: `import` (rootfs tar → image), `save` (docker-archive,
//! oci-archive, oci-dir) and `load` (docker-archive old and new layouts, oci-archive; plain or
//! gzip/zstd/xz/bzip2 compressed).
//!
//! - [`import::import_rootfs`]`(store, reader, &ImportOptions, tags) -> Result<ImageId>`
//! - [`save::save`]`(store, names, ArchiveFormat, writer)` and [`save::save_oci_dir`]
//! - [`load::load`]`(store, reader) -> Result<Vec<LoadedImage>>`
//! - [`layout::import_layout`]`(store, dir, &LayoutPick) -> Result<ImageId>` (an OCI layout
//!   directory's image, for `build --build-context NAME=oci-layout://…`)
//! - `*_with_progress` variants report each layer's bytes and end ([`progress::Event`]).
//!
//! Everything streams: no layer is ever held in memory. `load` stages entries in the store's
//! temp dir while hashing them, verifies every digest (blob names, sizes, DiffIDs against the
//! config) and only then commits; a bad archive leaves the image list unchanged.

pub mod import;
pub mod layout;
pub mod load;
pub mod progress;
pub mod save;

use std::io;
use std::path::PathBuf;

use crate::image::digest::Digest;
use crate::image::layer::LayerError;
use crate::store::StoreError;

pub use load::{load, load_with_progress, LoadedImage};
pub use save::{
    save, save_oci_dir, save_oci_dir_with_progress, save_to_file, save_with_progress, ArchiveFormat,
};

/// What can go wrong importing, saving or loading.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: io::Error },
    #[error("reading archive (corrupt, truncated or not a tar): {0}")]
    Read(io::Error),
    #[error("writing archive: {0}")]
    Write(io::Error),
    #[error("not a tar archive: {0}")]
    NotATar(String),
    #[error("not a docker-archive or oci-archive: {0}")]
    UnknownFormat(String),
    #[error("archive entry {path:?}: {reason}")]
    Unsafe { path: String, reason: String },
    #[error("archive entry {0:?} appears more than once")]
    Duplicate(String),
    #[error("{what} names {path:?}, which is not in the archive")]
    Missing { what: String, path: String },
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{what}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("{what} is not valid JSON: {error}")]
    BadJson {
        what: String,
        error: serde_json::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error("invalid change: {0}")]
    Change(#[from] crate::image::config_rules::ConfigError),
}

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> ArchiveError {
    let path = path.into();
    move |error| ArchiveError::Io { path, error }
}
