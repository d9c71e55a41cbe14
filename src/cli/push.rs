//! `rbuild push NAME[:TAG]`.

use std::io::Write;
use std::sync::Mutex;

use anyhow::bail;
use clap::Args;

use super::common::{open_store, RegistryFlags};
use super::Globals;
use crate::image::reference::Reference;
use crate::registry::{self, Event, PushOptions, PushResult, RegistryError};
use crate::store::{Store, StoreError};

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Image to push (its registry is the first component of the name)
    #[arg(value_name = "NAME[:TAG]")]
    pub name: String,
    /// Suppress progress output
    #[arg(short, long)]
    pub quiet: bool,
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
    let out = (!args.quiet).then(std::io::stdout);
    let result = push_image(&store, &reference, &options, out)?;
    println!(
        "{}: digest: {} size: {}",
        result.tag, result.digest, result.size
    );
    Ok(0)
}

/// Pushes the stored image `reference` names, writing a line per blob to `out` (`None`:
/// quiet). Used by `push` and `build --push`.
pub(super) fn push_image(
    store: &Store,
    reference: &Reference,
    options: &PushOptions,
    out: Option<impl Write + Send>,
) -> anyhow::Result<PushResult> {
    let out = out.map(Mutex::new);
    let progress = |e: Event| {
        let Some(out) = &out else {
            return;
        };
        let line = match e {
            Event::LayerExists(d) => format!("{}: Layer already exists", d.short()),
            Event::Pushed(d) => format!("{}: Pushed", d.short()),
            Event::Mounted { digest, from } => format!("{}: Mounted from {from}", digest.short()),
            _ => return,
        };
        let mut o = out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(o, "{line}");
    };
    match registry::push(store, reference, options, &progress) {
        Err(RegistryError::Store(StoreError::NoSuchImage(_))) => bail!(
            "An image does not exist locally with the tag: {}",
            reference.familiar_name()
        ),
        other => Ok(other?),
    }
}
