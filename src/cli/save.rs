//! `rbuild save [-o FILE] [--format docker-archive|oci-archive|oci-dir] IMAGE...`

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};

use super::common::open_store;
use super::transfer_progress::ProgressArgs;
use super::Globals;
use crate::archive::progress::Event;
use crate::archive::{save_oci_dir_with_progress, save_to_file, save_with_progress, ArchiveFormat};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SaveFormat {
    DockerArchive,
    OciArchive,
    OciDir,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Write to a file (a directory for oci-dir) instead of stdout
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Archive format
    #[arg(long, value_enum, default_value = "docker-archive")]
    pub format: SaveFormat,
    /// Images to save (tags are kept; IDs are saved untagged)
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
    #[command(flatten)]
    pub progress: ProgressArgs,
}

pub fn run(globals: &Globals, args: SaveArgs) -> anyhow::Result<i32> {
    let store = open_store(globals)?;
    // On stderr only, whatever the output: stdout may be the archive.
    let transfer = args.progress.transfer("Saving");
    let progress = |e: Event<'_>| transfer.archive_event(e, "Saved");
    let format = match args.format {
        SaveFormat::DockerArchive => ArchiveFormat::DockerArchive,
        SaveFormat::OciArchive => ArchiveFormat::OciArchive,
        SaveFormat::OciDir => ArchiveFormat::OciDir,
    };
    match (&args.output, format) {
        (Some(dir), ArchiveFormat::OciDir) => {
            save_oci_dir_with_progress(&store, &args.images, dir, &progress)?
        }
        (None, ArchiveFormat::OciDir) => bail!("--format oci-dir needs -o DIR"),
        (Some(path), _) if is_special_file(path) => {
            // A device or pipe (`-o /dev/null`, a fifo): write into it; renaming over it
            // would replace the device node with a regular file.
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            let mut w = BufWriter::with_capacity(1 << 20, file);
            save_with_progress(&store, &args.images, format, &mut w, &progress)?;
            w.flush()
                .with_context(|| format!("writing {}", path.display()))?;
        }
        (Some(path), _) => save_to_file(&store, &args.images, format, path, &progress)
            .with_context(|| format!("writing {}", path.display()))?,
        (None, _) => {
            let stdout = super::common::archive_stdout()?;
            let mut w = BufWriter::with_capacity(1 << 20, stdout.lock());
            save_with_progress(&store, &args.images, format, &mut w, &progress)?;
            w.flush()?;
        }
    }
    Ok(0)
}

/// Whether `path` exists and is neither a regular file nor a directory (a device, a fifo).
fn is_special_file(path: &std::path::Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}
