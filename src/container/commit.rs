//! `commit`: a container's changes as a new image.
//!
//! The container's upper dir becomes one layer through the layer writer builds use
//! ([`LayerSource::OverlayUpper`]: whiteouts for deletions, opaque directories); the config is
//! the image's with the container's own settings in place ([`super::config`]), then the `-c`
//! changes through the config rules every build uses ([`ConfigEditor`]); the history gains
//! one entry with the author and message. An unchanged container adds no layer, only an
//! `empty_layer` history entry, as docker.
//!
//! A running container is committed as it is, without pausing it (docker pauses it by
//! default): a file being written while the layer is read may be caught half-written.

use super::diff::upper_changes;
use super::view::Layers;
use super::ContainerError;
use crate::image::config_rules::{ConfigChange, ConfigEditor};
use crate::image::layer::{LayerOptions, LayerSource};
use crate::image::oci::{self, History};
use crate::image::reference::Reference;
use crate::store::{ImageId, Store};

/// What `commit` was asked for besides the container and the tags.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// `-a`: the image's `author` and the history entry's.
    pub author: Option<String>,
    /// `-m`: the history entry's comment.
    pub message: Option<String>,
    /// `-c`: config changes, in order (read by `build::convert::config_changes`).
    pub changes: Vec<ConfigChange>,
}

/// Commits the container `name` (name, ID or ID prefix) as a new image tagged `tags`;
/// returns the image's ID.
pub fn commit(
    store: &Store,
    name: &str,
    options: &CommitOptions,
    tags: &[Reference],
) -> Result<ImageId, ContainerError> {
    let record = store.resolve_container(name)?;
    let image = store.resolve_image(&record.image_id.to_string())?;
    let mut config = store.image_config(&image.id)?;
    if let Some(container) = super::config::load(store, &record.id)? {
        config.config = Some(container);
    }
    let mut editor = ConfigEditor::default();
    for change in &options.changes {
        editor.apply(&mut config, change.clone())?;
    }
    // What `diff` shows decides: a container that changed nothing (its upper dir may still
    // hold a directory the runtime passed through) adds no layer.
    let dirs = Layers::of(store, &record)?;
    let upper = &dirs.upper;
    let unchanged = upper_changes(upper, &dirs.image()?.path())?.is_empty();
    let mut layers = image.layers.clone();
    if !unchanged {
        let layer =
            store.write_layer(&LayerSource::OverlayUpper(upper), &LayerOptions::default())?;
        config.rootfs.diff_ids.push(layer.diff_id.clone());
        layers.push(layer);
    }
    let now = oci::timestamp(chrono::Utc::now());
    if options.author.is_some() {
        config.author = options.author.clone();
    }
    config.created = Some(now.clone());
    config.history.push(History {
        created: Some(now),
        created_by: Some(record.command.join(" ")),
        author: options.author.clone(),
        comment: options.message.clone(),
        empty_layer: unchanged,
    });
    Ok(store.commit_image(&config, &layers, tags)?)
}
