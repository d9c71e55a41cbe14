//! `rbuild rmi [-f] IMAGE...`: untag, and delete images nothing else names.

use clap::Args;

use super::common::open_store;
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
                super::report::item_error(&e);
                status = 1;
            }
        }
    }
    Ok(status)
}
