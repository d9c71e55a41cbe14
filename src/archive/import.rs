//! `import`: a rootfs tarball (plain, gzip, bzip2, xz or zstd) → a one-layer image.

use std::io::{self, BufWriter, Read, Write};

use super::ArchiveError;
use crate::image::compress::{self, Compression, Compressor};
use crate::image::config_rules::{ConfigChange, ConfigEditor};
use crate::image::digest::HashWriter;
use crate::image::layer::{check_tar, LayerError, LayerInfo};
use crate::image::oci::{self, ContainerConfig, History, ImageConfig, RootFs};
use crate::image::reference::Reference;
use crate::store::{ImageId, Store};

/// Options of `import`.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Changes to apply to the config, in order (`-c 'CMD ["sh"]'`, read by the Dockerfile
    /// frontend: `build::convert::config_changes`).
    pub changes: Vec<ConfigChange>,
    /// Commit message (history comment); default `Imported from <source>`.
    pub message: Option<String>,
    /// Where the tarball came from, for the default message (`-` for stdin).
    pub source: String,
}

/// Imports the rootfs tarball read from `reader` as a new image tagged `tags`.
///
/// The tar is stored as is (decompressed, then gzip-compressed); every entry path is checked
/// (no absolute paths, no `..`) before the image is committed.
pub fn import_rootfs(
    store: &Store,
    reader: impl Read,
    options: &ImportOptions,
    tags: &[Reference],
) -> Result<ImageId, ArchiveError> {
    // The changes first: a bad one fails before anything is written.
    let mut config = ImageConfig {
        config: Some(ContainerConfig::default()),
        ..ImageConfig::default()
    };
    let mut editor = ConfigEditor::default();
    for change in &options.changes {
        editor.apply(&mut config, change.clone())?;
    }
    let (_, plain) = compress::decompress_auto(reader).map_err(ArchiveError::Read)?;
    let tmp = store.temp_dir()?;
    let path = tmp.path().join("layer");
    let file = std::fs::File::create(&path).map_err(super::io_err(&path))?;
    let compressed = HashWriter::new(BufWriter::with_capacity(1 << 20, file));
    let gz = Compressor::new(Compression::Gzip, compressed).map_err(ArchiveError::Write)?;
    let mut tee = Tee {
        inner: plain,
        out: HashWriter::new(gz),
        error: None,
    };
    let stats = check_tar(&mut tee).map_err(|e| match e {
        LayerError::Read(e) => ArchiveError::Read(e),
        other => ArchiveError::Invalid(format!("{}: {other}", options.source)),
    })?;
    let entries = stats.entries;
    io::copy(&mut tee, &mut io::sink()).map_err(ArchiveError::Read)?;
    if let Some(e) = tee.error {
        return Err(ArchiveError::Write(e));
    }
    let (gz, diff_id, uncompressed_size) = tee.out.finish();
    if entries == 0 && uncompressed_size < 1024 {
        return Err(ArchiveError::NotATar(format!(
            "{}: no tar entries in {uncompressed_size} bytes",
            options.source
        )));
    }
    let (compressed, gzip_members) = gz.finish_with_members().map_err(ArchiveError::Write)?;
    let (buf, digest, size) = compressed.finish();
    buf.into_inner()
        .map_err(|e| ArchiveError::Write(e.into_error()))?
        .sync_all()
        .map_err(super::io_err(&path))?;
    store.put_blob_file(&path, &digest)?;
    let layer = LayerInfo {
        digest,
        diff_id: diff_id.clone(),
        size,
        uncompressed_size,
        content_size: Some(stats.bytes),
        media_type: oci::MEDIA_LAYER_GZIP.to_string(),
        gzip_members,
    };
    let now = crate::image::oci::timestamp(chrono::Utc::now());
    let message = options
        .message
        .clone()
        .unwrap_or_else(|| format!("Imported from {}", options.source));
    let config = ImageConfig {
        created: Some(now.clone()),
        architecture: oci::host_architecture().to_string(),
        os: "linux".to_string(),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![diff_id],
        },
        history: vec![History {
            created: Some(now),
            comment: Some(message),
            ..History::default()
        }],
        ..config
    };
    Ok(store.commit_image(&config, &[layer], tags)?)
}

/// Reads from `inner` and copies everything read into `out`.
struct Tee<R, W> {
    inner: R,
    out: W,
    error: Option<io::Error>,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Err(e) = self.out.write_all(&buf[..n]) {
            let msg = e.to_string();
            self.error = Some(e);
            return Err(io::Error::other(msg));
        }
        Ok(n)
    }
}
