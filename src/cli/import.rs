//! `rbuild import`: a rootfs tarball → a one-layer image.

use std::io::BufReader;
use std::path::Path;

use anyhow::{bail, Context};
use clap::Args;

use super::common::open_store;
use super::Globals;
use crate::archive::import::{import_rootfs, ImportOptions};
use crate::image::reference::Reference;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Apply a Dockerfile instruction to the image config (CMD, ENTRYPOINT, ENV, EXPOSE,
    /// HEALTHCHECK, LABEL, ONBUILD, USER, VOLUME, WORKDIR, STOPSIGNAL)
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
    let store = open_store(globals)?;
    let options = ImportOptions {
        changes: crate::build::convert::config_changes(&args.change, &[])?,
        message: args.message.clone(),
        source: args.file.clone(),
    };
    let is_url = args.file.starts_with("http://") || args.file.starts_with("https://");
    let id = if args.file == "-" {
        import_rootfs(&store, std::io::stdin().lock(), &options, &tags)?
    } else if is_url {
        // Streamed: the body goes through decompression and hashing as it arrives.
        let response = download(&args.file)?;
        import_rootfs(&store, BufReader::new(response), &options, &tags)
            .with_context(|| format!("importing {}", args.file))?
    } else {
        let path = Path::new(&args.file);
        let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        import_rootfs(&store, BufReader::new(f), &options, &tags)
            .with_context(|| format!("importing {}", path.display()))?
    };
    println!("{id}");
    Ok(0)
}

/// Starts downloading `url`; fails on a connection error or a non-success status.
fn download(url: &str) -> anyhow::Result<reqwest::blocking::Response> {
    let client = crate::registry::timeouts::Timeouts::from_env()?
        .client_builder()
        .build()
        .context("creating the HTTP client")?;
    let response = client
        .get(url)
        .send()
        .with_context(|| format!("downloading {url}"))?;
    let status = response.status();
    if !status.is_success() {
        bail!("downloading {url}: the server answered {status}");
    }
    Ok(response)
}
