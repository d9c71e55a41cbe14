//! Exporters for `rbuild build -o` (BuildKit's `--output`): the image in the store under more
//! names and optionally pushed (`type=image|registry`), a docker or OCI archive (to a file or
//! stdout), an OCI layout directory, or the image's root filesystem as a directory
//! (`type=local`) or one tar (`type=tar`). Each may set the layers' compression
//! ([`LayerCompression`]), which the build applies before any export runs.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::archive::save::{save_annotated, save_oci_dir_annotated, LayoutAnnotations};
use crate::archive::ArchiveFormat;
use crate::image::layer::{apply_layer, write_tar, ApplyOptions, LayerSource, WhiteoutMode};
use crate::store::{ImageId, Store};

use super::annotations::Annotations;
use super::recompress::LayerCompression;
use super::{io_err, BuildError};

/// Where an archive export goes: a file (written beside it, renamed into place) or stdout
/// (`dest=-`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    File(PathBuf),
    Stdout,
}

/// Where `-o` sends the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Export {
    /// `type=image[,name=N][,push=true]` / `type=registry,name=N` (push implied): the image
    /// in the store, also tagged with `names`, pushed under them when `push`.
    Image { names: Vec<String>, push: bool },
    /// `type=docker|docker-archive,dest=FILE|-`
    DockerArchive(Dest),
    /// `type=oci|oci-archive,dest=FILE|-` (`tar=false`: an OCI layout directory)
    OciArchive(Dest),
    /// `type=oci-dir,dest=DIR`
    OciDir(PathBuf),
    /// `type=local,dest=DIR` (or `-o DIR`): the image's filesystem.
    Local(PathBuf),
    /// `type=tar,dest=FILE|-`: the image's filesystem as one tar.
    Tar(Dest),
}

/// One `-o` value: what to export, the layer compression it asks for (if any) and its
/// `annotation…` options (BuildKit applies those to that output; rbuild writes one image, so
/// the build merges them with `--annotation`'s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub export: Export,
    pub compression: Option<LayerCompression>,
    pub annotations: Annotations,
}

/// Splits `text` at commas outside double quotes (BuildKit reads `-o` as one CSV record:
/// `"name=a:1,b:1"` is one field); quotes are removed.
fn csv_fields(text: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            c => fields.last_mut().expect("never empty").push(c),
        }
    }
    fields
}

fn parse_bool(key: &str, value: &str) -> Result<bool, BuildError> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(BuildError::Invalid(format!(
            "-o {key}={other}: expected true or false"
        ))),
    }
}

impl Output {
    /// Parses a `-o` value: `type=T,key=value,…` or a plain directory (`type=local`).
    pub fn parse(text: &str) -> Result<Output, BuildError> {
        if !text.contains('=') {
            let export = match text {
                "-" => Export::Tar(Dest::Stdout),
                dir => Export::Local(PathBuf::from(dir)),
            };
            return Ok(Output {
                export,
                compression: None,
                annotations: Annotations::default(),
            });
        }
        let bad = |why: String| BuildError::Invalid(format!("-o {text:?}: {why}"));
        let (mut kind, mut dest, mut names, mut push, mut tar) = (None, None, vec![], None, true);
        let (mut compression, mut level, mut force) = (None, None, false);
        let mut annotations = Annotations::default();
        for field in csv_fields(text) {
            let Some((key, value)) = field.split_once('=') else {
                return Err(bad(format!("{field:?} is not key=value")));
            };
            match key.trim() {
                "type" => kind = Some(value.to_string()),
                "dest" => dest = Some(value.to_string()),
                "name" => names.extend(value.split(',').map(str::to_string)),
                "push" => push = Some(parse_bool(key, value)?),
                "tar" => tar = parse_bool(key, value)?,
                "compression" => compression = Some(LayerCompression::parse_kind(value)?),
                "compression-level" => {
                    level = Some(value.parse::<i32>().map_err(|_| {
                        bad(format!("compression-level={value}: expected a number"))
                    })?)
                }
                "force-compression" => force = parse_bool(key, value)?,
                // BuildKit options with no effect on what rbuild writes.
                "oci-mediatypes" | "store" | "unpack" | "platform-split" => {}
                other if annotations.add_output_option(other, value)? => {}
                other => return Err(bad(format!("unknown option {other:?}"))),
            }
        }
        let dest_of = |what: &str| -> Result<Dest, BuildError> {
            match dest.as_deref() {
                Some("-") => Ok(Dest::Stdout),
                Some(d) => Ok(Dest::File(PathBuf::from(d))),
                None => Err(bad(format!(
                    "type={what} needs dest=FILE (or dest=- for stdout)"
                ))),
            }
        };
        let dir_of = |what: &str| -> Result<PathBuf, BuildError> {
            match dest.as_deref() {
                Some("-") | None => Err(bad(format!("type={what} needs dest=DIR"))),
                Some(d) => Ok(PathBuf::from(d)),
            }
        };
        let kind = kind.as_deref().unwrap_or("local");
        let export = match kind {
            "image" => Export::Image {
                names,
                push: push.unwrap_or(false),
            },
            "registry" => {
                if names.is_empty() {
                    return Err(bad("type=registry needs name=HOST/REPO[:TAG]".into()));
                }
                Export::Image {
                    names,
                    push: push.unwrap_or(true),
                }
            }
            "docker" | "docker-archive" => Export::DockerArchive(dest_of(kind)?),
            "oci" | "oci-archive" if !tar => Export::OciDir(dir_of(kind)?),
            "oci" | "oci-archive" => Export::OciArchive(dest_of(kind)?),
            "oci-dir" => Export::OciDir(dir_of(kind)?),
            "local" => Export::Local(dir_of(kind)?),
            "tar" => Export::Tar(dest_of(kind)?),
            other => return Err(BuildError::Unsupported(format!("-o type={other}"))),
        };
        let compression = match (compression, level, force) {
            (None, None, false) => None,
            (kind, level, force) => Some(LayerCompression {
                kind: kind.unwrap_or(LayerCompression::default().kind),
                level,
                force,
            }),
        };
        Ok(Output {
            export,
            compression,
            annotations,
        })
    }
}

/// The one layer compression a build's `-o` values ask for (BuildKit applies each output's
/// own; rbuild stores one image, so differing ones are refused).
pub fn build_compression(outputs: &[Output]) -> Result<LayerCompression, BuildError> {
    let mut asked = outputs.iter().filter_map(|o| o.compression);
    let first = asked.next();
    if let Some(other) = asked.find(|c| Some(*c) != first) {
        return Err(BuildError::Invalid(format!(
            "-o values ask for different layer compressions ({:?} and {other:?}); rbuild \
             stores one image per build",
            first.unwrap_or_default()
        )));
    }
    Ok(first.unwrap_or_default())
}

/// Writes image `id` (saved under `names`, or untagged when empty) as `export` says, an OCI
/// layout's `index.json` with `layout`'s annotations. Not for [`Export::Image`] (tagging and
/// pushing are the caller's).
pub fn export(
    store: &Store,
    id: &ImageId,
    names: &[String],
    export: &Export,
    layout: &LayoutAnnotations,
) -> Result<(), BuildError> {
    let names = if names.is_empty() {
        vec![id.to_string()]
    } else {
        names.to_vec()
    };
    let archive_err = |e: crate::archive::ArchiveError| BuildError::Invalid(format!("export: {e}"));
    match export {
        Export::Image { .. } => {}
        Export::DockerArchive(dest) => write_to(dest, |w| {
            save_annotated(store, &names, ArchiveFormat::DockerArchive, w, layout)
                .map_err(archive_err)
        })?,
        Export::OciArchive(dest) => write_to(dest, |w| {
            save_annotated(store, &names, ArchiveFormat::OciArchive, w, layout).map_err(archive_err)
        })?,
        Export::OciDir(d) => {
            save_oci_dir_annotated(store, &names, d, layout).map_err(archive_err)?
        }
        Export::Local(d) => {
            std::fs::create_dir_all(d).map_err(io_err(d))?;
            unpack(store, id, d)?;
        }
        Export::Tar(dest) => {
            let tmp = store.temp_dir()?;
            unpack(store, id, tmp.path())?;
            write_to(dest, |w| {
                write_tar(&LayerSource::Dir(tmp.path()), None, w)?;
                Ok(())
            })?;
        }
    }
    Ok(())
}

/// Applies the layers of image `id` to directory `dir`.
fn unpack(store: &Store, id: &ImageId, dir: &Path) -> Result<(), BuildError> {
    let rec = store.resolve_image(&id.to_string())?;
    for layer in &rec.layers {
        let blob = store.open_blob(&layer.digest)?;
        let options = ApplyOptions {
            whiteouts: WhiteoutMode::Apply,
            no_chown: false,
            owner: None,
        };
        apply_layer(std::io::BufReader::new(blob), dir, &options)?;
    }
    Ok(())
}

/// Runs `write` on stdout, or on a temp file beside the destination that is renamed over it
/// once complete (the destination is the whole output or untouched).
fn write_to(
    dest: &Dest,
    write: impl FnOnce(&mut dyn Write) -> Result<(), BuildError>,
) -> Result<(), BuildError> {
    match dest {
        Dest::Stdout => {
            let stdout = std::io::stdout();
            let mut w = BufWriter::with_capacity(1 << 20, stdout.lock());
            write(&mut w)?;
            w.flush().map_err(io_err("stdout"))
        }
        Dest::File(f) => {
            let dir = f
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let tmp = tempfile::Builder::new()
                .prefix(".rbuild-export-")
                .tempfile_in(dir)
                .map_err(io_err(dir))?;
            let mut w = BufWriter::with_capacity(1 << 20, tmp);
            write(&mut w)?;
            let tmp = w.into_inner().map_err(|e| io_err(f)(e.into_error()))?;
            tmp.persist(f).map_err(|e| io_err(f)(e.error))?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::compress::Compression;

    fn export(text: &str) -> Export {
        Output::parse(text).unwrap().export
    }

    #[test]
    fn parse_outputs() {
        assert_eq!(export("out"), Export::Local("out".into()));
        assert_eq!(export("-"), Export::Tar(Dest::Stdout));
        assert_eq!(
            export("type=docker-archive,dest=a.tar"),
            Export::DockerArchive(Dest::File("a.tar".into()))
        );
        assert_eq!(
            export("type=docker,dest=-"),
            Export::DockerArchive(Dest::Stdout)
        );
        assert_eq!(
            export("type=oci,dest=a.tar"),
            Export::OciArchive(Dest::File("a.tar".into()))
        );
        assert_eq!(
            export("type=oci,dest=d,tar=false"),
            Export::OciDir("d".into())
        );
        assert_eq!(export("type=oci-dir,dest=d"), Export::OciDir("d".into()));
        assert_eq!(
            export("type=tar,dest=fs.tar"),
            Export::Tar(Dest::File("fs.tar".into()))
        );
        assert_eq!(
            export("type=image,\"name=a:1,b:2\",push=true"),
            Export::Image {
                names: vec!["a:1".into(), "b:2".into()],
                push: true
            }
        );
        assert_eq!(
            export("type=registry,name=h:5000/a"),
            Export::Image {
                names: vec!["h:5000/a".into()],
                push: true
            }
        );
        assert!(Output::parse("type=registry").is_err());
        assert!(Output::parse("type=local").is_err());
        assert!(Output::parse("type=docker").is_err());
        assert!(Output::parse("type=wasm,dest=x").is_err());
        assert!(Output::parse("type=oci,dest=x,bogus=1").is_err());
        let a = Output::parse("type=image,name=x,annotation.k=v,annotation-index.i=w").unwrap();
        assert_eq!(a.annotations.manifest["k"], "v");
        assert_eq!(a.annotations.layout.index["i"], "w");
        assert!(Output::parse("type=oci,dest=x,annotation-index-descriptor.k=v").is_err());
    }

    #[test]
    fn parse_compression() {
        let o = Output::parse(
            "type=image,name=x,compression=zstd,compression-level=9,force-compression=true",
        )
        .unwrap();
        assert_eq!(
            o.compression,
            Some(LayerCompression {
                kind: Compression::Zstd,
                level: Some(9),
                force: true
            })
        );
        let none = Output::parse("type=oci,dest=a,compression=uncompressed").unwrap();
        assert_eq!(none.compression.map(|c| c.kind), Some(Compression::None));
        assert!(Output::parse("type=oci,dest=a,compression=lz4").is_err());
        assert!(Output::parse("type=oci,dest=a,compression-level=x").is_err());
        let gz = Output::parse("type=oci,dest=a").unwrap();
        let zs = Output::parse("type=oci,dest=b,compression=zstd").unwrap();
        assert_eq!(
            build_compression(&[gz.clone(), zs.clone()]).unwrap().kind,
            Compression::Zstd
        );
        let gz2 = Output::parse("type=oci,dest=a,compression=gzip").unwrap();
        assert!(build_compression(&[gz2, zs]).is_err());
        assert_eq!(
            build_compression(&[gz]).unwrap(),
            LayerCompression::default()
        );
    }
}
