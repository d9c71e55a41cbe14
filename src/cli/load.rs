//! `rbuild load [-i FILE] [-q]`: load images from a docker-archive or oci-archive.

use std::io::{BufReader, IsTerminal};
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;

use super::common::open_store;
use super::Globals;
use crate::archive::load;

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Read from a file instead of stdin (plain, gzip, zstd, xz or bzip2)
    #[arg(short, long)]
    pub input: Option<PathBuf>,
    /// Suppress progress output
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn run(globals: &Globals, args: LoadArgs) -> anyhow::Result<i32> {
    let store = open_store(globals)?;
    let loaded = match &args.input {
        Some(path) => {
            let f =
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            load(&store, BufReader::with_capacity(1 << 20, f))
                .with_context(|| format!("loading {}", path.display()))?
        }
        None => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                bail!("requested load from stdin, but stdin is empty");
            }
            load(&store, stdin.lock()).context("loading from stdin")?
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
