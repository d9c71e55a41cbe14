//! Layers: write a directory, an overlayfs upper dir or a change set as a deterministic tar
//! ([`writer`]), and apply a layer tar to a directory without ever writing outside it
//! ([`apply`]).
//!
//! ```no_run
//! use rbuild::image::layer::{self, LayerOptions, LayerSource, ApplyOptions};
//! # fn main() -> Result<(), rbuild::image::layer::LayerError> {
//! let out = std::fs::File::create("/tmp/layer.tar.gz").unwrap();
//! let (_file, info) = layer::write_layer(&LayerSource::Dir("/tmp/rootfs".as_ref()), &LayerOptions::default(), out)?;
//! println!("digest {} diff_id {}", info.digest, info.diff_id);
//! let tar = std::fs::File::open("/tmp/layer.tar.gz").unwrap();
//! layer::apply_layer(tar, "/tmp/target".as_ref(), &ApplyOptions::default())?;
//! # Ok(()) }
//! ```

use std::io;
use std::path::PathBuf;

use super::digest::Digest;

pub mod apply;
pub mod treediff;
pub mod writer;

pub use apply::{
    apply_layer, apply_tar, check_tar, content_size, ApplyOptions, ApplyStats, WhiteoutMode,
};
pub use writer::{write_layer, write_tar, Change, LayerOptions, LayerSource};

/// Prefix of a whiteout entry's file name.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// File name of an opaque-directory marker.
pub const WHITEOUT_OPAQUE: &str = ".wh..wh..opq";

/// A written layer: what a manifest's layer descriptor and a config's `diff_ids` need.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerInfo {
    /// Digest of the blob as stored (compressed, if it is).
    pub digest: Digest,
    /// Digest of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: Digest,
    /// Size of the blob as stored.
    pub size: u64,
    /// Size of the uncompressed tar.
    pub uncompressed_size: u64,
    /// Bytes of file content in the layer (the sum of its regular files' sizes): what docker
    /// reports as a layer's size (`history`, `images`, `inspect .Size`), where the tar size
    /// also counts headers and padding (a 14-byte file is a 2 kB tar). Counted once, when the
    /// layer is written, pulled, loaded or imported; `None` in records stored before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_size: Option<u64>,
    /// Media type of the blob.
    pub media_type: String,
    /// For gzip layers rbuild wrote: the compressed size of each gzip member, so the layer
    /// can be decompressed in parallel ([`crate::image::compress::ParallelGunzip`]). Empty
    /// when unknown.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gzip_members: Vec<u64>,
}

impl LayerInfo {
    /// The layer's size as docker shows it: its file content; for a layer recorded before
    /// rbuild counted that, the uncompressed tar size (an over-estimate by the headers).
    pub fn shown_size(&self) -> u64 {
        self.content_size.unwrap_or(self.uncompressed_size)
    }

    /// The layer's descriptor in a manifest.
    pub fn descriptor(&self) -> crate::image::oci::Descriptor {
        crate::image::oci::Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.size,
            annotations: None,
            platform: None,
        }
    }
}

/// What can go wrong writing or applying a layer.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: io::Error },
    #[error("reading layer tar (corrupt, truncated or not a tar): {0}")]
    Read(io::Error),
    #[error("writing layer tar: {0}")]
    Write(io::Error),
    #[error("refusing layer entry {path:?}: {reason}")]
    Unsafe { path: String, reason: String },
    #[error("layer entry {0:?} appears more than once")]
    Duplicate(String),
    #[error("layer entry {path:?} has unsupported type {kind}")]
    Unsupported { path: String, kind: String },
}

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> LayerError {
    let path = path.into();
    move |error| LayerError::Io { path, error }
}

#[cfg(test)]
mod tests;
