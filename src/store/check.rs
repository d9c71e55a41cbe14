//! `rbuild system check`: verifies that the store is consistent, e.g. after a crash or kill.
//!
//! What is checked: `index.json` matches the database; every image's manifest, config and
//! layer blobs are present with the digest and size recorded; every snapshot dir under a
//! final (chain ID) name holds every path of its layer's tar; container leases name blobs
//! that exist; no leftovers of dead processes remain ([`Store::clean_all_leftovers`] runs first).
//! A store that a kill interrupted mid-`index.json` rewrite is repaired on the way (as any
//! read would), and noted.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::Path;

use super::db::{db_err, index_bytes, load_all_in, INDEX_DIRTY};
use super::session::{try_lock, SESSION_PREFIX};
use super::{Store, StoreError};
use crate::image::compress;
use crate::image::digest::{Digest, HashWriter};
use crate::image::layer::LayerInfo;

/// What [`Store::check`] found.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// Inconsistencies (`system check` exits 1 when there is any).
    pub problems: Vec<String>,
    /// Things repaired or cleaned on the way, expected after a kill.
    pub notes: Vec<String>,
    /// Snapshot dirs (chain IDs) found incomplete; [`Store::repair_snapshots`] drops them.
    pub incomplete_snapshots: Vec<Digest>,
}

impl Store {
    /// Checks the store (see the module docs). Hashes every blob: takes as long as reading
    /// the store once.
    pub fn check(&self) -> Result<CheckReport, StoreError> {
        let mut report = CheckReport::default();
        let freed = self.clean_all_leftovers()?;
        if freed > 0 {
            report
                .notes
                .push(format!("removed {freed} bytes left by killed processes"));
        }
        if self.root.join(INDEX_DIRTY).exists() {
            self.with_db(|_| Ok(()))?;
            report
                .notes
                .push("index.json rewritten after an interrupted database change".into());
        }
        let (images, cached, expected_index) = self.read_db(|tx| {
            let (images, _) = load_all_in(tx)?;
            let cached = self.cached_layers_in(tx)?;
            Ok((images, cached, index_bytes(tx)?))
        })?;
        if fs::read(self.root.join("index.json")).ok() != Some(expected_index) {
            report
                .problems
                .push("index.json does not match the database".into());
        }
        // Blobs of every image.
        let mut checked = HashSet::new();
        for img in &images {
            let name = img.id.short();
            let mut blobs = vec![
                (&img.manifest.digest, img.manifest.size, "manifest"),
                (&img.id, img.config_size, "config"),
            ];
            blobs.extend(img.layers.iter().map(|l| (&l.digest, l.size, "layer")));
            for (digest, size, what) in blobs {
                if !checked.insert(digest.clone()) {
                    continue;
                }
                if let Err(p) = self.check_blob(digest, size) {
                    report
                        .problems
                        .push(format!("image {name}: {what} blob {digest}: {p}"));
                }
            }
        }
        // Snapshots under final names.
        let mut layers_by_chain: HashMap<String, &LayerInfo> = HashMap::new();
        for img in &images {
            for (chain, layer) in img.chain_ids().iter().zip(&img.layers) {
                layers_by_chain.insert(chain.hex().to_string(), layer);
            }
        }
        let by_diff: HashMap<&Digest, &LayerInfo> =
            cached.iter().map(|l| (&l.diff_id, l)).collect();
        let recorded = self.read_db(|tx| self.snapshot_diff_ids(tx))?;
        let snaps = self.root.join("snapshots");
        for e in fs::read_dir(&snaps)
            .map_err(super::io_err(&snaps))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(chain) = Digest::from_hex(&name) else {
                report
                    .problems
                    .push(format!("snapshots/{name}: not a snapshot (a leftover?)"));
                continue;
            };
            let layer = layers_by_chain.get(&name).copied().or_else(|| {
                let diff = recorded.get(&name)?;
                by_diff.get(diff).copied()
            });
            let Some(layer) = layer else {
                continue; // unused: the garbage collector's
            };
            match missing_paths(self, layer, &e.path()) {
                Ok(missing) if missing.is_empty() => {}
                Ok(missing) => {
                    report.problems.push(format!(
                        "snapshot {}: {} paths of its layer are missing (e.g. /{})",
                        chain.short(),
                        missing.len(),
                        missing[0]
                    ));
                    report.incomplete_snapshots.push(chain);
                }
                Err(e) => report.problems.push(format!(
                    "snapshot {}: cannot compare with its layer: {e}",
                    chain.short()
                )),
            }
        }
        // Containers.
        let uses = self.read_db(|tx| self.container_uses(tx))?;
        for u in uses {
            for d in &u.lease.layers {
                if !self.has_blob(d) {
                    report.problems.push(format!(
                        "container {}: layer blob {d} is missing",
                        &u.id[..12.min(u.id.len())]
                    ));
                }
            }
        }
        // Leftovers that cleaning should have removed.
        let tmp = self.root.join("tmp");
        for e in fs::read_dir(&tmp).map_err(super::io_err(&tmp))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            // A session dir's owner is alive while it is locked; anything else (a session dir
            // being made, files of earlier versions) is removed once an hour old.
            let dead = if name.starts_with(SESSION_PREFIX) {
                try_lock(&e.path()).is_some()
            } else {
                super::session::older_than_grace(&e.path())
            };
            if dead {
                report.problems.push(format!("tmp/{name}: a leftover"));
            }
        }
        Ok(report)
    }

    /// Moves the given snapshot dirs away (they are unpacked again from their layer blob
    /// when next used) and drops their records.
    pub fn repair_snapshots(&self, chains: &[Digest]) -> Result<(), StoreError> {
        self.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            {
                let mut t = tx.open_table(super::db::SNAPSHOTS).map_err(db_err)?;
                for c in chains {
                    self.trash(&self.snapshot_path(c))?;
                    t.remove(c.hex()).map_err(db_err)?;
                }
            }
            tx.commit().map_err(db_err)
        })
    }

    /// Whether blob `digest` is present with that digest and `size`.
    fn check_blob(&self, digest: &Digest, size: u64) -> Result<(), String> {
        let f = self.open_blob(digest).map_err(|e| e.to_string())?;
        let mut w = HashWriter::new(io::sink());
        io::copy(&mut io::BufReader::with_capacity(1 << 20, f), &mut w)
            .map_err(|e| e.to_string())?;
        let (_, actual, actual_size) = w.finish();
        if &actual != digest {
            return Err(format!("content has digest {actual}"));
        }
        if actual_size != size {
            return Err(format!("{actual_size} bytes, recorded {size}"));
        }
        Ok(())
    }
}

/// The paths of `layer`'s tar that `dir` lacks (whiteouts in overlayfs form).
fn missing_paths(store: &Store, layer: &LayerInfo, dir: &Path) -> io::Result<Vec<String>> {
    let blob = store
        .open_blob(&layer.digest)
        .map_err(|e| io::Error::other(e.to_string()))?;
    let (_, plain) = compress::decompress_auto(blob)?;
    let mut archive = tar::Archive::new(plain);
    let mut missing = Vec::new();
    for entry in archive.entries()? {
        let entry = entry?;
        let raw = entry.path()?.to_string_lossy().into_owned();
        let path = raw.trim_start_matches("./").trim_start_matches('/');
        let path = path.trim_end_matches('/');
        if path.is_empty() || path == "." {
            continue;
        }
        let (parent, base) = match path.rsplit_once('/') {
            Some((p, b)) => (Some(p), b),
            None => (None, path),
        };
        let on_disk = match base.strip_prefix(".wh.") {
            Some(".wh..opq") => continue, // an xattr on the parent
            Some(name) => match parent {
                Some(p) => format!("{p}/{name}"),
                None => name.to_string(),
            },
            None => path.to_string(),
        };
        if fs::symlink_metadata(dir.join(&on_disk)).is_err() {
            missing.push(on_disk);
        }
    }
    Ok(missing)
}
