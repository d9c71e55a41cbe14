//! `rbuild export`: a container's filesystem as a tar.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::common::{archive_stdout, open_store};
use super::Globals;
use crate::container::export::export;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The container (name or ID)
    pub container: String,
}

pub fn run(globals: &Globals, args: ExportArgs) -> anyhow::Result<i32> {
    let store = open_store(globals)?;
    match &args.output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("opening {}", path.display()))?;
            let w = export(
                &store,
                &args.container,
                BufWriter::with_capacity(1 << 20, file),
            )?;
            w.into_inner()
                .map_err(|e| e.into_error())
                .and_then(|f| f.sync_all())
                .with_context(|| format!("writing {}", path.display()))?;
        }
        None => {
            let stdout = archive_stdout()?;
            let mut w = export(
                &store,
                &args.container,
                BufWriter::with_capacity(1 << 20, stdout.lock()),
            )?;
            w.flush()?;
        }
    }
    Ok(0)
}
