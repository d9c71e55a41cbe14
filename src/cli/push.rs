//! `rbuild push NAME[:TAG]`.

use std::io::Write;
use std::sync::Mutex;

use anyhow::bail;
use clap::Args;

use super::common::{open_store, RegistryFlags};
use super::Globals;
use crate::image::reference::Reference;
use crate::registry::{self, Event, PushOptions, RegistryError};
use crate::store::StoreError;

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
    let out = Mutex::new(std::io::stdout());
    let quiet = args.quiet;
    let progress = |e: Event| {
        if quiet {
            return;
        }
        let line = match e {
            Event::LayerExists(d) => format!("{}: Layer already exists", d.short()),
            Event::Pushed(d) => format!("{}: Pushed", d.short()),
            Event::Mounted { digest, from } => format!("{}: Mounted from {from}", digest.short()),
            _ => return,
        };
        let mut o = out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(o, "{line}");
    };
    let options = PushOptions {
        registry: args.registry.options(globals),
        chunk_size: args.chunk_size,
    };
    let result = match registry::push(&store, &reference, &options, &progress) {
        Err(RegistryError::Store(StoreError::NoSuchImage(_))) => bail!(
            "An image does not exist locally with the tag: {}",
            reference.familiar_name()
        ),
        other => other?,
    };
    println!(
        "{}: digest: {} size: {}",
        result.tag, result.digest, result.size
    );
    Ok(0)
}
