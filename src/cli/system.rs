//! `rbuild system check [--repair]`: the store consistency check (see `store::check`).

use clap::{Args, Subcommand};

use super::common::open_store;
use super::Globals;

/// `rbuild system …`
#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Check the store for inconsistencies (exit status 1 when there are any)
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Drop incomplete snapshots (they are unpacked again from their layer when next used)
    #[arg(long)]
    pub repair: bool,
}

pub fn run(globals: &Globals, cmd: SystemCommand) -> anyhow::Result<i32> {
    let SystemCommand::Check(args) = cmd;
    let store = open_store(globals)?;
    let report = store.check()?;
    for note in &report.notes {
        println!("note: {note}");
    }
    for problem in &report.problems {
        println!("problem: {problem}");
    }
    if args.repair && !report.incomplete_snapshots.is_empty() {
        store.repair_snapshots(&report.incomplete_snapshots)?;
        println!(
            "repaired: dropped {} incomplete snapshots",
            report.incomplete_snapshots.len()
        );
        let again = store.check()?;
        for problem in &again.problems {
            println!("problem: {problem}");
        }
        return Ok(i32::from(!again.problems.is_empty()));
    }
    if report.problems.is_empty() {
        println!("ok");
        Ok(0)
    } else {
        Ok(1)
    }
}
