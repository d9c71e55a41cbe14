//! `rbuild pull NAME[:TAG|@DIGEST]`.

use clap::Args;

use super::common::open_store;
use super::common::RegistryFlags;
use super::transfer_progress::{ProgressFlag, Transfer};
use super::Globals;
use crate::image::reference::Reference;
use crate::registry::{self, PullOptions};

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Image to pull
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    pub name: String,
    /// Platform to pick from a multi-platform image (os/arch[/variant])
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Suppress progress output
    #[arg(short, long)]
    pub quiet: bool,
    /// Progress output (auto: bars when stderr is a terminal, else a line per layer)
    #[arg(long, value_enum, default_value = "auto", value_name = "TYPE")]
    pub progress: ProgressFlag,
    #[command(flatten)]
    pub registry: RegistryFlags,
}

pub fn run(globals: &Globals, args: PullArgs) -> anyhow::Result<i32> {
    let reference = Reference::parse(&args.name)?;
    let store = open_store(globals)?;
    let quiet = args.quiet;
    if !quiet {
        println!(
            "{}: Pulling from {}",
            reference.manifest_ref(),
            reference.path
        );
    }
    let transfer = Transfer::new(args.progress, quiet, "Downloading", std::io::stdout());
    let progress = |e| transfer.registry_event(e);
    let options = PullOptions {
        registry: args.registry.options(globals),
        platform: args.platform.clone(),
    };
    let result = registry::pull::pull_with_progress(&store, &reference, &options, &progress)?;
    if !quiet {
        println!("Digest: {}", result.digest);
        if result.up_to_date {
            println!("Status: Image is up to date for {}", reference.familiar());
        } else {
            println!(
                "Status: Downloaded newer image for {}",
                reference.familiar()
            );
        }
    }
    println!("{reference}");
    Ok(0)
}
