//! `rbuild load [-i FILE] [-q]`: load images from a docker-archive or oci-archive.

use std::io::{BufReader, IsTerminal};
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;

use super::common::open_store;
use super::transfer_progress::ProgressArgs;
use super::Globals;
use crate::archive::load_with_progress;
use crate::archive::progress::Event;

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Read from a file instead of stdin (plain, gzip, zstd, xz or bzip2)
    #[arg(short, long)]
    pub input: Option<PathBuf>,
    #[command(flatten)]
    pub progress: ProgressArgs,
}

pub fn run(globals: &Globals, args: LoadArgs) -> anyhow::Result<i32> {
    let store = open_store(globals)?;
    // docker's words: `3f4e2a1b9c0d: Loading layer [===>  ]`; lines on stderr, so stdout
    // stays the `Loaded image:` lines scripts read.
    let transfer = args.progress.transfer("Loading layer");
    let progress = |e: Event<'_>| transfer.archive_event(e, "Loading layer done");
    let loaded = match &args.input {
        Some(path) => {
            let f =
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            load_with_progress(&store, BufReader::with_capacity(1 << 20, f), &progress)
                .with_context(|| format!("loading {}", path.display()))?
        }
        None => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                bail!("requested load from stdin, but stdin is empty");
            }
            load_with_progress(&store, stdin.lock(), &progress).context("loading from stdin")?
        }
    };
    for img in loaded {
        if img.tags.is_empty() {
            println!("Loaded image ID: {}", img.id);
        }
        for t in img.tags {
            println!("Loaded image: {}", t.familiar());
        }
    }
    Ok(0)
}
