//! `rbuild image …`: docker's management-command spellings of the image commands. It only
//! dispatches to the commands' own modules, so that no command module names another.

use clap::Subcommand;

use super::{history, images, import, inspect, load, rmi, save, tag, Globals};

/// The subcommands of `rbuild image`, each the same arguments as its top-level command.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Remove unused images
    Prune(images::PruneArgs),
    /// List images
    #[command(visible_alias = "list")]
    Ls(images::ImagesArgs),
    /// Remove one or more images
    #[command(visible_alias = "remove")]
    Rm(rmi::RmiArgs),
    /// Show low-level information about images
    Inspect(inspect::InspectArgs),
    /// Show the history of an image
    History(history::HistoryArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(tag::TagArgs),
    /// Import a rootfs tarball as a one-layer image
    Import(import::ImportArgs),
    /// Save images to a tar archive
    Save(save::SaveArgs),
    /// Load images from a tar archive
    Load(load::LoadArgs),
}

/// Runs `rbuild image SUBCOMMAND` as the matching top-level command.
pub fn run(globals: &Globals, cmd: ImageCommand) -> anyhow::Result<i32> {
    match cmd {
        ImageCommand::Prune(args) => images::prune(globals, args),
        ImageCommand::Ls(args) => images::run(globals, args),
        ImageCommand::Rm(args) => rmi::run(globals, args),
        ImageCommand::Inspect(args) => inspect::run(globals, args),
        ImageCommand::History(args) => history::run(globals, args),
        ImageCommand::Tag(args) => tag::run(globals, args),
        ImageCommand::Import(args) => import::run(globals, args),
        ImageCommand::Save(args) => save::run(globals, args),
        ImageCommand::Load(args) => load::run(globals, args),
    }
}
