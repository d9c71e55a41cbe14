//! `rbuild rmi [-f] IMAGE...`: untag, and delete images nothing else names.

use clap::Args;

use super::images::open_store;
use super::Globals;
use crate::store::RemoveEvent;

#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Force removal of an image referenced by several tags
    #[arg(short, long)]
    pub force: bool,
    /// Do not delete untagged parents (accepted for compatibility)
    #[arg(long)]
    pub no_prune: bool,
    /// Images to remove (names, tags or IDs)
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

pub fn run(globals: &Globals, args: RmiArgs) -> anyhow::Result<i32> {
    let store = open_store(globals)?;
    let mut status = 0;
    for name in &args.images {
        if !args.force {
            if let Err(e) = check_unused(&store, name) {
                eprintln!("Error: {e}");
                status = 1;
                continue;
            }
        }
        match store.remove_image(name, args.force) {
            Ok(events) => {
                for e in events {
                    match e {
                        RemoveEvent::Untagged(r) => println!("Untagged: {}", r.familiar()),
                        RemoveEvent::Deleted(d) => println!("Deleted: {d}"),
                    }
                }
            }
            Err(e) => {
                eprintln!("Error: {e}");
                status = 1;
            }
        }
    }
    Ok(status)
}

/// Refuses (as docker does) to delete an image a container uses: naming it by ID, or by its
/// last tag. Untagging one of several tags stays allowed.
fn check_unused(store: &crate::store::Store, name: &str) -> anyhow::Result<()> {
    let Ok((image, tag)) = store.resolve_name(name) else {
        return Ok(()); // remove_image reports the error
    };
    let Some(user) = store.containers_using(&image.id)?.into_iter().next() else {
        return Ok(());
    };
    match tag {
        Some(_) if store.image_tags(&image.id)?.len() > 1 => Ok(()),
        Some(_) => anyhow::bail!(
            "conflict: unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {}",
            user.short_id(),
            image.id.short()
        ),
        None => anyhow::bail!(
            "conflict: unable to delete {} (must be forced) - image is being used by {} container {}",
            image.id.short(),
            if user.is_running() { "running" } else { "stopped" },
            user.short_id()
        ),
    }
}
