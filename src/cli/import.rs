//! `rbuild import`: a rootfs tarball → a one-layer image.

use std::io::BufReader;
use std::path::Path;

use anyhow::{bail, Context};
use clap::Args;

use super::common::open_store;
use super::transfer_progress::ProgressArgs;
use super::Globals;
use crate::archive::import::{import_rootfs, ImportOptions};
use crate::archive::progress::{Counted, Event};
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
    #[command(flatten)]
    pub progress: ProgressArgs,
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
    let is_url = crate::build::download::is_http(&args.file);
    // The tarball's bytes as they are read (compressed, as they arrive), named by its file
    // name; on stderr, as stdout is the new image's ID.
    let transfer = args.progress.transfer("Importing");
    let progress = |e: Event<'_>| transfer.archive_event(e, "Imported");
    let label = match args.file.as_str() {
        "-" => "stdin".to_string(),
        url if is_url => crate::build::download::file_name(url),
        path => Path::new(path)
            .file_name()
            .map_or(path.into(), |n| n.to_string_lossy().into_owned()),
    };
    let id = if args.file == "-" {
        let stdin = Counted::new(std::io::stdin().lock(), &label, None, &progress);
        import_rootfs(&store, stdin, &options, &tags)?
    } else if is_url {
        // Streamed: the body goes through decompression and hashing as it arrives.
        let response = download(&args.file)?;
        let total = response.content_length();
        let body = Counted::new(response, &label, total, &progress);
        import_rootfs(&store, BufReader::new(body), &options, &tags)
            .with_context(|| format!("importing {}", args.file))?
    } else {
        let path = Path::new(&args.file);
        let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let total = f.metadata().ok().map(|m| m.len());
        let f = Counted::new(f, &label, total, &progress);
        import_rootfs(&store, BufReader::new(f), &options, &tags)
            .with_context(|| format!("importing {}", path.display()))?
    };
    progress(Event::Done { id: &label });
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
