//! `rbuild import`: a rootfs tarball → a one-layer image.

use std::io::BufReader;
use std::path::Path;

use anyhow::{bail, Context};
use clap::Args;

use super::images::open_store;
use super::Globals;
use crate::archive::import::{import_rootfs, ImportOptions};
use crate::image::reference::Reference;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Apply a Dockerfile instruction to the image config (CMD, ENTRYPOINT, ENV, EXPOSE,
    /// LABEL, USER, VOLUME, WORKDIR, STOPSIGNAL)
    #[arg(short, long = "change", value_name = "CHANGE")]
    pub change: Vec<String>,
    /// Commit message
    #[arg(short, long)]
    pub message: Option<String>,
    /// Tarball to import: a file, or "-" for stdin (plain, gzip, bzip2, xz or zstd)
    pub file: String,
    /// Name of the new image
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

pub fn run(globals: &Globals, args: ImportArgs) -> anyhow::Result<i32> {
    let tags = match &args.reference {
        Some(r) => vec![Reference::parse(r)?],
        None => Vec::new(),
    };
    if args.file.starts_with("http://") || args.file.starts_with("https://") {
        bail!(
            "importing from a URL is not supported yet: download {} and import the file",
            args.file
        );
    }
    let store = open_store(globals)?;
    let options = ImportOptions {
        changes: args.change.clone(),
        message: args.message.clone(),
        source: args.file.clone(),
    };
    let id = if args.file == "-" {
        import_rootfs(&store, std::io::stdin().lock(), &options, &tags)?
    } else {
        let path = Path::new(&args.file);
        let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        import_rootfs(&store, BufReader::new(f), &options, &tags)
            .with_context(|| format!("importing {}", path.display()))?
    };
    println!("{id}");
    Ok(0)
}
