//! Layer steps and their cache: the part of the engine that knows keys and layers, not
//! Dockerfile syntax.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use crate::image::digest::{chain_ids, Digest};
use crate::image::layer::{LayerInfo, LayerOptions, LayerSource};
use crate::store::{CacheRecord, StepRecord, Store};

use super::progress::{Progress, StepHandle};
use super::BuildError;

/// The key of a step: `sha256(parent key, canonical step description)`.
pub(crate) fn step_key(parent: &Digest, canonical: &serde_json::Value) -> Digest {
    let text = format!("rbuild cache v1\n{parent}\n{canonical}");
    Digest::of(text.as_bytes())
}

/// The first key of a chain: what a stage starts from.
pub(crate) fn base_key(what: &str) -> Digest {
    Digest::of(format!("rbuild base v1\n{what}").as_bytes())
}

/// What a layer step produced when it ran: a directory holding the layer's contents in
/// overlay form (adopted as the snapshot), or nothing.
pub(crate) struct Produced {
    /// Keeps the directory's temp parent alive until the snapshot is adopted.
    pub _tmp: Option<tempfile::TempDir>,
    pub dir: Option<PathBuf>,
}

/// What a layer step ended with.
pub(crate) struct Outcome {
    pub key: Digest,
    pub layer: Option<LayerInfo>,
    pub created: String,
}

/// Settings shared by all steps of a build.
pub(crate) struct Engine<'a> {
    pub store: &'a Store,
    pub no_cache: bool,
    /// `--pull`: base images are pulled even when the store has them.
    pub pull: bool,
    /// How new layers are written: `SOURCE_DATE_EPOCH` mtimes, `-o …,compression=` format
    /// and level.
    pub layer_options: LayerOptions,
    pub progress: Progress,
    /// RFC 3339 time used for new history entries.
    pub now: String,
    /// The cache records as read at the first lookup (see [`Engine::cached`]).
    pub records: OnceLock<HashMap<String, Vec<u8>>>,
    /// Threads removing what steps left behind (see [`Engine::finish`]).
    pub cleanups: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Steps that ran, recorded in the store's cache by [`Engine::finish`] in one
    /// transaction.
    pub ran: Mutex<Vec<StepRecord>>,
    /// `--isolation` as asked, and as resolved at the first RUN (reported then, once).
    pub isolation: (
        super::isolation::Isolation,
        OnceLock<super::isolation::Chosen>,
    ),
    /// Keeps the default network's bridge up from the first RUN step that joins it to the
    /// end of the build (else each step would set it up and tear it down).
    pub network_hold: OnceLock<Option<crate::network::Attached>>,
}

impl Engine<'_> {
    /// Removes a step's leftovers (a staging dir whose snapshot existed already can hold tens
    /// of thousands of entries) on another thread, while the build goes on.
    pub(crate) fn dispose<T: Send + 'static>(&self, leftovers: T) {
        let handle = std::thread::spawn(move || drop(leftovers));
        match self.cleanups.lock() {
            Ok(mut list) => list.push(handle),
            Err(_) => {
                let _ = handle.join();
            }
        }
    }

    /// Waits for the cleanups still running and records the steps that ran (also after a
    /// failed build: what succeeded is cached).
    pub fn finish(&self) -> Result<(), BuildError> {
        let handles = self
            .cleanups
            .lock()
            .map(|mut list| std::mem::take(&mut *list))
            .unwrap_or_default();
        for h in handles {
            let _ = h.join();
        }
        let steps = self
            .ran
            .lock()
            .map(|mut list| std::mem::take(&mut *list))
            .unwrap_or_default();
        Ok(self.store.record_steps(&steps)?)
    }

    /// The cache record of `key`: a step this build ran, or one of the records read once at
    /// the first lookup (one database read for all steps; a record another build writes
    /// meanwhile is a miss here, and the step runs).
    fn cached(&self, key: &Digest) -> Result<Option<CacheRecord>, BuildError> {
        if let Ok(ran) = self.ran.lock() {
            if let Some(step) = ran.iter().find(|s| &s.key == key) {
                return Ok(Some(step.record.clone()));
            }
        }
        if self.records.get().is_none() {
            let all = self.store.cache_records()?;
            let _ = self.records.set(all);
        }
        let known = self.records.get().and_then(|r| r.get(key.hex()));
        Ok(known.and_then(|bytes| serde_json::from_slice(bytes).ok()))
    }

    /// The isolation of RUN steps; the first call resolves it and says which (and, once,
    /// why when `auto` fell back to chroot).
    pub fn isolation(&self, step: &StepHandle) -> Result<super::isolation::Isolation, BuildError> {
        if let Some(chosen) = self.isolation.1.get() {
            return Ok(chosen.isolation);
        }
        let chosen = super::isolation::choose(self.isolation.0)?;
        if self.isolation.1.set(chosen.clone()).is_ok() {
            if let Some(why) = &chosen.fallback {
                self.progress.warn(why);
            }
            self.progress
                .detail(step, &format!("isolation: {}", chosen.isolation));
        }
        Ok(chosen.isolation)
    }

    /// Runs a layer step on top of `parent_layers`: a cache hit reuses the recorded layer;
    /// otherwise `exec` produces the layer's directory, which is written as a layer, adopted
    /// as the snapshot and recorded in the cache.
    pub fn layer_step(
        &self,
        step: &StepHandle,
        parent_key: &Digest,
        parent_layers: &[LayerInfo],
        canonical: serde_json::Value,
        no_cache: bool,
        exec: impl FnOnce(&Progress) -> Result<Produced, BuildError>,
    ) -> Result<Outcome, BuildError> {
        let key = step_key(parent_key, &canonical);
        if !(self.no_cache || no_cache) {
            if let Some(rec) = self.cached(&key)? {
                let usable = match &rec.layer {
                    None => true,
                    Some(l) => self.store.has_blob(&l.digest),
                };
                if usable {
                    self.progress.cached(step);
                    return Ok(Outcome {
                        key,
                        layer: rec.layer,
                        created: rec.created,
                    });
                }
            }
        }
        let produced = exec(&self.progress)?;
        // A step that changed nothing still adds a layer (an empty tar), as docker does.
        let layer = match &produced.dir {
            Some(dir) => {
                let info = self
                    .store
                    .write_layer(&LayerSource::OverlayUpper(dir), &self.layer_options)?;
                let mut diff_ids: Vec<Digest> =
                    parent_layers.iter().map(|l| l.diff_id.clone()).collect();
                diff_ids.push(info.diff_id.clone());
                let chain = chain_ids(&diff_ids)
                    .pop()
                    .unwrap_or_else(|| info.diff_id.clone());
                crate::killpoint::reached("step-layer-written");
                self.store.move_snapshot(dir, &chain)?;
                Some((info, chain))
            }
            None => None,
        };
        self.dispose(produced);
        let record = CacheRecord {
            layer: layer.as_ref().map(|(info, _)| info.clone()),
            created: self.now.clone(),
        };
        let snapshot = layer
            .as_ref()
            .map(|(info, chain)| (chain.clone(), info.diff_id.clone()));
        if let Ok(mut ran) = self.ran.lock() {
            ran.push(StepRecord {
                key: key.clone(),
                record,
                snapshot,
            });
        }
        let layer = layer.map(|(info, _)| info);
        self.progress.done(step);
        Ok(Outcome {
            key,
            layer,
            created: self.now.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Pins the key of one fixed RUN step on `FROM scratch`, built the way the solver builds it
    /// (fields in the solver's order, not sorted).
    ///
    /// IF THIS FAILS, every existing build cache would silently miss after the change. When the
    /// first assertion fails, the JSON serialisation changed (a `serde_json` feature such as
    /// `preserve_order` switched on by a dependency, or another number/escape format): undo that
    /// change. When only the key changed, the hashed text changed: undo it, or, if new inputs
    /// really belong in every key, bump `rbuild cache v1` to `v2` in `step_key` in the same
    /// commit, say so in its message and re-pin the values here and in tests/cache_key.rs.
    #[test]
    fn step_key_of_a_fixed_canonical_step_is_pinned() {
        let canonical = json!({
            "op": "run",
            "args": ["/bin/sh", "-c", "echo hi > /x"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/",
            "user": "0:0",
            "network": "none",
            "mounts": [],
        });
        assert_eq!(
            canonical.to_string(),
            r#"{"args":["/bin/sh","-c","echo hi > /x"],"cwd":"/","env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"mounts":[],"network":"none","op":"run","user":"0:0"}"#,
            "canonical JSON serialisation changed: read the comment above this test"
        );
        let parent = base_key("scratch");
        assert_eq!(
            parent.to_string(),
            "sha256:2e3413d866f8528d247128a0f2fefb6074c90c263add10199f047959fb74e906"
        );
        assert_eq!(
            step_key(&parent, &canonical).to_string(),
            "sha256:ac62efc738b98ce5da95027f79facac2270d73c90f637be7c9270a6d37d2a943",
            "step_key changed: read the comment above this test"
        );
    }
}
