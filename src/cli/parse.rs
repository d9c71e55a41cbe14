//! `rbuild parse`: print a Dockerfile's instructions (BuildKit dump format, or JSON).

use std::path::PathBuf;

use clap::Args;

use super::Globals;

#[derive(Debug, Args)]
pub struct ParseArgs {
    /// Dockerfile to read ("-" for stdin)
    #[arg(short = 'f', long = "file", default_value = "Dockerfile")]
    pub file: PathBuf,

    /// Print the typed instructions as JSON with source spans
    #[arg(long)]
    pub json: bool,
}

pub fn run(_globals: &Globals, _args: ParseArgs) -> anyhow::Result<i32> {
    anyhow::bail!("parse is not implemented yet")
}
