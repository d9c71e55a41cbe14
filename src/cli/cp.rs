//! `rbuild cp`: files between a container and the host (or a tar stream on stdin/stdout).

use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::bail;
use clap::Args;

use super::common::{archive_stdout, open_store};
use super::Globals;
use crate::container::copy::{copy_in, copy_out, CopyIn, CopyOptions, CopyOut};

#[derive(Debug, Args)]
#[command(
    override_usage = "rbuild cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n       \
                      rbuild cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH"
)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short, long)]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long)]
    pub follow_link: bool,
    /// Suppress progress output during copy (rbuild prints none)
    #[arg(short, long)]
    pub quiet: bool,
    /// CONTAINER:SRC_PATH, a host path, or - (a tar on stdin)
    pub source: String,
    /// CONTAINER:DEST_PATH, a host path, or - (a tar on stdout)
    pub destination: String,
}

/// `CONTAINER:PATH` split, as docker: a colon before any slash; a path starting with `/` or
/// `.` is a local path even with a colon in it.
fn container_path(arg: &str) -> Option<(&str, &str)> {
    if arg.starts_with('/') || arg.starts_with('.') {
        return None;
    }
    let (container, path) = arg.split_once(':')?;
    (!container.is_empty() && !container.contains('/')).then_some((container, path))
}

pub fn run(globals: &Globals, args: CpArgs) -> anyhow::Result<i32> {
    let options = CopyOptions {
        archive: args.archive,
        follow_link: args.follow_link,
    };
    let store = open_store(globals)?;
    match (
        container_path(&args.source),
        container_path(&args.destination),
    ) {
        (Some((container, src)), None) => {
            let src = absolute(src);
            if args.destination == "-" {
                let stdout = archive_stdout()?;
                let mut w = BufWriter::with_capacity(1 << 20, stdout.lock());
                copy_out(&store, container, &src, CopyOut::Stream(&mut w), options)?;
                w.flush()?;
            } else {
                let dest = Path::new(&args.destination);
                copy_out(&store, container, &src, CopyOut::Path(dest), options)?;
            }
        }
        (None, Some((container, dest))) => {
            let dest = absolute(dest);
            if args.source == "-" {
                let mut input = std::io::stdin().lock();
                copy_in(
                    &store,
                    CopyIn::Stream(&mut input),
                    container,
                    &dest,
                    options,
                )?;
            } else {
                let src = Path::new(&args.source);
                copy_in(&store, CopyIn::Path(src), container, &dest, options)?;
            }
        }
        (Some(_), Some(_)) => bail!("copying between containers is not supported"),
        (None, None) => bail!("must specify at least one container source"),
    }
    Ok(0)
}

/// A container path relative to `/` (docker resolves relative paths from the working
/// directory; rbuild from the root).
fn absolute(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    }
}
