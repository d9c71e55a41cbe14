//! `rbuild completion SHELL` and `rbuild man DIR`: shell completion scripts and manual pages,
//! both generated from the clap definitions (clap_complete, clap_mangen), so they list exactly
//! the commands, flags and values (`--progress`, `--network`, `--log-level`) rbuild accepts.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::{Cli, Globals};

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to complete in (load it with `source <(rbuild completion bash)`)
    #[arg(value_name = "SHELL")]
    pub shell: Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Directory for the pages: rbuild.1 and one rbuild-COMMAND.1 per command (e.g.
    /// /usr/local/share/man/man1)
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

pub fn completion(_globals: &Globals, args: CompletionArgs) -> anyhow::Result<i32> {
    // Into memory first: clap_complete panics on a write error, and a closed pipe
    // (`rbuild completion bash | head`) is not an error.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "rbuild", &mut script);
    match std::io::stdout().write_all(&script) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("writing the completion script")
        }
        _ => Ok(0),
    }
}

pub fn man(_globals: &Globals, args: ManArgs) -> anyhow::Result<i32> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    clap_mangen::generate_to(Cli::command(), &args.dir)
        .with_context(|| format!("writing manual pages to {}", args.dir.display()))?;
    Ok(0)
}
