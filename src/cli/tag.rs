//! `rbuild tag SOURCE TARGET`.

use anyhow::bail;
use clap::Args;

use super::common::open_store;
use super::Globals;
use crate::image::reference::Reference;

#[derive(Debug, Args)]
pub struct TagArgs {
    /// Existing image (name, tag or ID)
    #[arg(value_name = "SOURCE_IMAGE[:TAG]")]
    pub source: String,
    /// New name
    #[arg(value_name = "TARGET_IMAGE[:TAG]")]
    pub target: String,
}

pub fn run(globals: &Globals, args: TagArgs) -> anyhow::Result<i32> {
    let target = Reference::parse(&args.target)?;
    if target.digest.is_some() {
        bail!(
            "refusing to create a tag with a digest reference: {}",
            args.target
        );
    }
    let store = open_store(globals)?;
    store.tag(&args.source, &target)?;
    Ok(0)
}
