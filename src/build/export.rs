//! Exporters for `rbuild build -o`: the built image as a docker archive, an OCI archive, an
//! OCI layout directory, or its root filesystem in a local directory.

use std::io::BufWriter;
use std::path::{Path, PathBuf};

use crate::archive::{save, save_oci_dir, ArchiveFormat};
use crate::image::layer::{apply_layer, ApplyOptions, WhiteoutMode};
use crate::store::{ImageId, Store};

use super::{io_err, BuildError};

/// Where `-o` sends the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Export {
    /// `type=docker-archive|docker,dest=FILE`
    DockerArchive(PathBuf),
    /// `type=oci,dest=FILE`
    OciArchive(PathBuf),
    /// `type=oci-dir,dest=DIR`
    OciDir(PathBuf),
    /// `type=local,dest=DIR` (or `-o DIR`): the image's filesystem.
    Local(PathBuf),
}

impl Export {
    /// Parses a `-o` value: `type=T,dest=D` or a plain directory.
    pub fn parse(text: &str) -> Result<Export, BuildError> {
        if !text.contains('=') {
            return Ok(Export::Local(PathBuf::from(text)));
        }
        let mut kind = None;
        let mut dest = None;
        for part in text.split(',') {
            match part.split_once('=') {
                Some(("type", v)) => kind = Some(v.to_string()),
                Some(("dest", v)) => dest = Some(PathBuf::from(v)),
                _ => {
                    return Err(BuildError::Invalid(format!(
                        "-o {text:?}: expected type=TYPE,dest=PATH"
                    )))
                }
            }
        }
        let dest =
            dest.ok_or_else(|| BuildError::Invalid(format!("-o {text:?}: missing dest=")))?;
        match kind.as_deref().unwrap_or("local") {
            "docker-archive" | "docker" => Ok(Export::DockerArchive(dest)),
            "oci" | "oci-archive" => Ok(Export::OciArchive(dest)),
            "oci-dir" => Ok(Export::OciDir(dest)),
            "local" => Ok(Export::Local(dest)),
            other => Err(BuildError::Unsupported(format!("-o type={other}"))),
        }
    }
}

/// Writes image `id` (saved under `names`, or untagged when empty) as `export` says.
pub fn export(
    store: &Store,
    id: &ImageId,
    names: &[String],
    export: &Export,
) -> Result<(), BuildError> {
    let names = if names.is_empty() {
        vec![id.to_string()]
    } else {
        names.to_vec()
    };
    let archive_err = |e: crate::archive::ArchiveError| BuildError::Invalid(format!("export: {e}"));
    match export {
        Export::DockerArchive(f) | Export::OciArchive(f) => {
            let format = if matches!(export, Export::DockerArchive(_)) {
                ArchiveFormat::DockerArchive
            } else {
                ArchiveFormat::OciArchive
            };
            let dir = f
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let tmp = tempfile::Builder::new()
                .prefix(".rbuild-export-")
                .tempfile_in(dir)
                .map_err(io_err(dir))?;
            let mut w = BufWriter::with_capacity(1 << 20, tmp);
            save(store, &names, format, &mut w).map_err(archive_err)?;
            let tmp = w.into_inner().map_err(|e| io_err(f)(e.into_error()))?;
            tmp.persist(f).map_err(|e| io_err(f)(e.error))?;
        }
        Export::OciDir(d) => save_oci_dir(store, &names, d).map_err(archive_err)?,
        Export::Local(d) => {
            std::fs::create_dir_all(d).map_err(io_err(d))?;
            let rec = store.resolve_image(&id.to_string())?;
            for layer in &rec.layers {
                let blob = store.open_blob(&layer.digest)?;
                let options = ApplyOptions {
                    whiteouts: WhiteoutMode::Apply,
                    no_chown: false,
                    owner: None,
                };
                apply_layer(std::io::BufReader::new(blob), d, &options)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_outputs() {
        assert_eq!(Export::parse("out").unwrap(), Export::Local("out".into()));
        assert_eq!(
            Export::parse("type=docker-archive,dest=a.tar").unwrap(),
            Export::DockerArchive("a.tar".into())
        );
        assert_eq!(
            Export::parse("type=oci,dest=a.tar").unwrap(),
            Export::OciArchive("a.tar".into())
        );
        assert_eq!(
            Export::parse("type=oci-dir,dest=d").unwrap(),
            Export::OciDir("d".into())
        );
        assert!(Export::parse("type=registry,dest=x").is_err());
        assert!(Export::parse("type=local").is_err());
    }
}
