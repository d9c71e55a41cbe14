//! `rbuild commit`: a container's changes as a new image.

use clap::{ArgAction, Args};

use super::common::open_store;
use super::Globals;
use crate::container::commit::{commit, CommitOptions};
use crate::image::reference::Reference;

#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short, long)]
    pub author: Option<String>,
    /// Apply a Dockerfile instruction to the image config (CMD, ENTRYPOINT, ENV, EXPOSE,
    /// HEALTHCHECK, LABEL, ONBUILD, USER, VOLUME, WORKDIR, STOPSIGNAL)
    #[arg(short, long = "change", value_name = "CHANGE")]
    pub change: Vec<String>,
    /// Commit message
    #[arg(short, long)]
    pub message: Option<String>,
    /// Pause the container during commit (accepted for docker compatibility: rbuild commits a
    /// running container without pausing it)
    #[arg(short, long, action = ArgAction::Set, num_args = 0..=1, default_value_t = true,
          default_missing_value = "true", value_name = "BOOL")]
    pub pause: bool,
    /// The container (name or ID)
    pub container: String,
    /// Name of the new image
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

pub fn run(globals: &Globals, args: CommitArgs) -> anyhow::Result<i32> {
    let tags = match &args.reference {
        Some(r) => vec![Reference::parse(r)?],
        None => Vec::new(),
    };
    let store = open_store(globals)?;
    let record = store.resolve_container(&args.container)?;
    // `-c ENV` values may use the container's variables, as the changes docker applies.
    let env = crate::container::config::load(&store, &record.id)?
        .and_then(|c| c.env)
        .unwrap_or_default();
    let options = CommitOptions {
        author: args.author.clone(),
        message: args.message.clone(),
        changes: crate::build::convert::config_changes(&args.change, &env)?,
    };
    let id = commit(&store, &record.id, &options, &tags)?;
    println!("{id}");
    Ok(0)
}
