//! `rbuild pull NAME[:TAG|@DIGEST]`.

use std::io::Write;
use std::sync::Mutex;

use clap::Args;

use super::images::open_store;
use super::push::RegistryFlags;
use super::Globals;
use crate::image::reference::Reference;
use crate::registry::{self, Event, PullOptions};

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
    #[command(flatten)]
    pub registry: RegistryFlags,
}

pub fn run(globals: &Globals, args: PullArgs) -> anyhow::Result<i32> {
    let reference = Reference::parse(&args.name)?;
    let store = open_store(globals)?;
    let quiet = args.quiet;
    if !quiet {
        let what = match (&reference.digest, &reference.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".into(),
        };
        println!("{what}: Pulling from {}", reference.path);
    }
    let out = Mutex::new(std::io::stdout());
    let progress = |e: Event| {
        if quiet {
            return;
        }
        let line = match e {
            Event::AlreadyExists(d) => format!("{}: Already exists", d.short()),
            Event::PullComplete(d) => format!("{}: Pull complete", d.short()),
            _ => return,
        };
        let mut o = out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(o, "{line}");
    };
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
