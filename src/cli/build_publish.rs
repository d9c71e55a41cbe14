//! What `rbuild build` does with the image once it is built, for CI pipelines (BuildKit's
//! flags): `--push` sends each `-t` name to its registry with `rbuild push`'s code and
//! credentials, `--metadata-file` writes the digests and names as JSON with BuildKit's keys.

use std::path::Path;

use anyhow::Context;

use super::push::push_image;
use super::transfer_progress::{ProgressFlag, Transfer};
use super::Globals;
use crate::image::reference::Reference;
use crate::registry::PushOptions;
use crate::store::{ImageId, Store};

/// Pushes `id` under each of `push` (`--push`: the `-t` names; `-o type=registry` or
/// `push=true`: the output's names), then writes `metadata_file` (listing `names`) if given.
/// Progress lines go to stderr (stdout carries the image ID under `-q`), none when `quiet`.
pub fn publish(
    globals: &Globals,
    store: &Store,
    id: &ImageId,
    names: &[Reference],
    push: &[Reference],
    metadata_file: Option<&Path>,
    quiet: bool,
) -> anyhow::Result<()> {
    // The manifest the registry has (as pushed), else the one in the store.
    let mut manifest_digest = store.resolve_image(&id.to_string())?.manifest.digest;
    if !push.is_empty() {
        let options = PushOptions {
            registry: globals.registry_options(),
            chunk_size: None,
        };
        for name in push {
            let transfer = Transfer::new(ProgressFlag::Plain, quiet, "Pushing", std::io::stderr());
            let result = push_image(store, name, &options, &transfer)
                .with_context(|| format!("pushing {}", name.familiar()))?;
            if !quiet {
                eprintln!(
                    "pushed {}: digest: {} size: {}",
                    name.familiar(),
                    result.digest,
                    result.size
                );
            }
            manifest_digest = result.digest;
        }
    }
    if let Some(file) = metadata_file {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let metadata = serde_json::json!({
            "containerimage.digest": manifest_digest.to_string(),
            "containerimage.config.digest": id.to_string(),
            "image.name": names.join(","),
        });
        let text = serde_json::to_string_pretty(&metadata)?;
        std::fs::write(file, text + "\n").with_context(|| format!("writing {}", file.display()))?;
    }
    Ok(())
}
