//! `rbuild container SUBCOMMAND`: docker's management-command spellings of the container
//! commands.

use clap::{Args, Subcommand};

use super::inspect::{InspectArgs, ObjectType};
use super::Globals;

#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// Show low-level information about containers
    Inspect(ContainerInspectArgs),
    /// Remove all stopped containers
    Prune(super::containers::PruneArgs),
}

#[derive(Debug, Args)]
pub struct ContainerInspectArgs {
    /// Format the output using a template ('{{.State.Status}}', '{{json .HostConfig}}')
    #[arg(short, long)]
    pub format: Option<String>,
    /// Containers to inspect (names or IDs)
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub fn run(globals: &Globals, command: ContainerCommand) -> anyhow::Result<i32> {
    match command {
        ContainerCommand::Inspect(args) => super::inspect::run(
            globals,
            InspectArgs {
                format: args.format,
                kind: Some(ObjectType::Container),
                images: args.containers,
            },
        ),
        ContainerCommand::Prune(args) => super::containers::prune(globals, args),
    }
}
