//! `rbuild push NAME[:TAG]`.

use anyhow::bail;
use clap::Args;

use super::common::{open_store, RegistryFlags};
use super::transfer_progress::{ProgressFlag, Transfer};
use super::Globals;
use crate::image::reference::Reference;
use crate::registry::{self, PushOptions, PushResult, RegistryError};
use crate::store::{Store, StoreError};

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Image to push (its registry is the first component of the name)
    #[arg(value_name = "NAME[:TAG]")]
    pub name: String,
    /// Suppress progress output
    #[arg(short, long)]
    pub quiet: bool,
    /// Progress output (auto: bars when stderr is a terminal, else a line per layer)
    #[arg(long, value_enum, default_value = "auto", value_name = "TYPE")]
    pub progress: ProgressFlag,
    /// Upload blobs larger than this many bytes in chunks of that size
    #[arg(
        long,
        value_name = "BYTES",
        env = "RBUILD_PUSH_CHUNK_SIZE",
        hide = true
    )]
    pub chunk_size: Option<u64>,
    #[command(flatten)]
    pub registry: RegistryFlags,
}

pub fn run(globals: &Globals, args: PushArgs) -> anyhow::Result<i32> {
    let reference = Reference::parse(&args.name)?;
    let store = open_store(globals)?;
    if !args.quiet {
        println!("The push refers to repository [{}]", reference.name());
    }
    let options = PushOptions {
        registry: args.registry.options(globals),
        chunk_size: args.chunk_size,
    };
    let transfer = Transfer::new(args.progress, args.quiet, "Pushing", std::io::stdout());
    let result = push_image(&store, &reference, &options, &transfer)?;
    println!(
        "{}: digest: {} size: {}",
        result.tag, result.digest, result.size
    );
    Ok(0)
}

/// Pushes the stored image `reference` names, showing each blob on `transfer`. Used by
/// `push` and `build --push`.
pub(super) fn push_image(
    store: &Store,
    reference: &Reference,
    options: &PushOptions,
    transfer: &Transfer,
) -> anyhow::Result<PushResult> {
    let progress = |e| transfer.registry_event(e);
    match registry::push(store, reference, options, &progress) {
        Err(RegistryError::Store(StoreError::NoSuchImage(_))) => bail!(
            "An image does not exist locally with the tag: {}",
            reference.familiar_name()
        ),
        other => Ok(other?),
    }
}
