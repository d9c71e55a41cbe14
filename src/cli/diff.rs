//! `rbuild diff`: a container's changes to its image's filesystem.

use clap::Args;

use super::common::open_store;
use super::Globals;
use crate::container::diff::diff;

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The container (name or ID)
    pub container: String,
}

pub fn run(globals: &Globals, args: DiffArgs) -> anyhow::Result<i32> {
    let store = open_store(globals)?;
    for change in diff(&store, &args.container)? {
        println!("{} {}", change.kind.letter(), change.path.display());
    }
    Ok(0)
}
