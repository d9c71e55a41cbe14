//! Layer compression of a build's image (`-o …,compression=gzip|zstd|uncompressed,
//! compression-level=N,force-compression=true`, BuildKit's options): the layers a build
//! writes use the asked format; the layers it reuses (base image, cache hits) keep theirs
//! unless `force-compression=true`, which recompresses them here. A recompressed layer keeps
//! its DiffID (checked), so the image ID (its config digest) does not change; only the
//! manifest and the layer blobs do.

use std::io::{self, BufReader, BufWriter};

use crate::image::compress::{decompress_auto, Compression, Compressor};
use crate::image::digest::HashWriter;
use crate::image::layer::{LayerInfo, LayerOptions};
use crate::store::Store;

use super::{io_err, BuildError};

/// The compression asked for a build's layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerCompression {
    /// gzip (the default), zstd or none (`uncompressed`).
    pub kind: Compression,
    /// `compression-level=N`; `None`: the format's default.
    pub level: Option<i32>,
    /// `force-compression=true`: reused layers in another format are recompressed too.
    pub force: bool,
}

impl Default for LayerCompression {
    fn default() -> LayerCompression {
        LayerCompression {
            kind: Compression::Gzip,
            level: None,
            force: false,
        }
    }
}

impl LayerCompression {
    /// Parses BuildKit's name of a layer compression.
    pub fn parse_kind(name: &str) -> Result<Compression, BuildError> {
        match name {
            "gzip" => Ok(Compression::Gzip),
            "zstd" => Ok(Compression::Zstd),
            "uncompressed" => Ok(Compression::None),
            other => Err(BuildError::Invalid(format!(
                "compression={other}: expected gzip, zstd or uncompressed"
            ))),
        }
    }

    /// Whether `layer` is already in this format, by its media type (OCI's `…tar+gzip` and
    /// docker's `…tar.gzip` both end in "gzip").
    fn matches(&self, layer: &LayerInfo) -> bool {
        let m = &layer.media_type;
        match self.kind {
            Compression::Gzip => m.ends_with("gzip"),
            Compression::Zstd => m.ends_with("zstd"),
            _ => m.ends_with(".tar"),
        }
    }
}

/// `layers` with every layer not already in `compression`'s format recompressed into the
/// store (the others as they are).
pub fn recompress_layers(
    store: &Store,
    layers: &[LayerInfo],
    compression: &LayerCompression,
) -> Result<Vec<LayerInfo>, BuildError> {
    layers
        .iter()
        .map(|l| {
            if compression.matches(l) {
                Ok(l.clone())
            } else {
                recompress(store, l, compression)
            }
        })
        .collect()
}

/// Decompresses layer `layer` and stores it again compressed as `compression` says.
fn recompress(
    store: &Store,
    layer: &LayerInfo,
    compression: &LayerCompression,
) -> Result<LayerInfo, BuildError> {
    let dir = store.temp_dir()?;
    let path = dir.path().join("layer");
    let file = std::fs::File::create(&path).map_err(io_err(&path))?;
    let compressed = HashWriter::new(BufWriter::with_capacity(1 << 20, file));
    let compressor = Compressor::with_level(compression.kind, compression.level, compressed)
        .map_err(io_err(&path))?;
    let mut plain = HashWriter::new(compressor);
    let blob = BufReader::with_capacity(1 << 20, store.open_blob(&layer.digest)?);
    let blob_err = |e| BuildError::Io {
        path: store.blob_path(&layer.digest),
        source: e,
    };
    let (_, mut reader) = decompress_auto(blob).map_err(blob_err)?;
    io::copy(&mut reader, &mut plain).map_err(blob_err)?;
    let (compressor, diff_id, uncompressed_size) = plain.finish();
    if diff_id != layer.diff_id {
        return Err(BuildError::Invalid(format!(
            "layer {}: its content has DiffID {diff_id}, not {} as recorded",
            layer.digest, layer.diff_id
        )));
    }
    let (compressed, gzip_members) = compressor.finish_with_members().map_err(io_err(&path))?;
    let (buf, digest, size) = compressed.finish();
    buf.into_inner()
        .map_err(|e| io_err(&path)(e.into_error()))?;
    store.put_blob_file(&path, &digest)?;
    Ok(LayerInfo {
        digest,
        size,
        uncompressed_size,
        media_type: LayerOptions::media_type(compression.kind).to_string(),
        gzip_members,
        ..layer.clone()
    })
}
