//! `rbuild builder prune`: docker's command to drop the build cache.

use std::io::Write;

use clap::{Args, Subcommand};

use super::common::{human_size, open_store_as_is};
use super::Globals;

/// `rbuild builder …`.
#[derive(Debug, Subcommand)]
pub enum BuilderCommand {
    /// Remove build cache
    Prune(BuilderPruneArgs),
}

#[derive(Debug, Args)]
pub struct BuilderPruneArgs {
    /// Remove all build cache, not just what no image uses
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

pub fn run(globals: &Globals, cmd: BuilderCommand) -> anyhow::Result<i32> {
    let BuilderCommand::Prune(args) = cmd;
    if !args.force {
        let what = if args.all {
            "all build cache"
        } else {
            "all dangling build cache"
        };
        if !super::common::confirm_removal(what) {
            return Ok(0);
        }
    }
    let store = open_store_as_is(globals)?;
    let (records, freed) = store.prune_build_cache(args.all)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "Deleted build cache records: {records}")?;
    writeln!(out, "Total:\t{}", human_size(freed))?;
    Ok(0)
}
