//! Snapshots made by the build engine: adopting a finished directory (a RUN's overlay upper
//! dir, a COPY's staging dir) as the snapshot of a new layer instead of unpacking the layer
//! again, and finding (unpacking when missing) the snapshots of any layer list.

use std::fs;
use std::path::{Path, PathBuf};

use super::db::{db_err, SNAPSHOTS};
use super::{io_err, Store, StoreError};
use crate::image::digest::{chain_ids, Digest};
use crate::image::layer::{self, ApplyOptions, LayerInfo, WhiteoutMode};

impl Store {
    /// Moves `dir` (same filesystem as the store, overlay-form whiteouts) into place as the
    /// snapshot of chain ID `chain_id`. When that snapshot exists already, `dir` is removed.
    pub fn adopt_snapshot(
        &self,
        dir: &Path,
        chain_id: &Digest,
        diff_id: &Digest,
    ) -> Result<PathBuf, StoreError> {
        let dest = self.move_snapshot(dir, chain_id)?;
        self.record_snapshots(&[(chain_id.clone(), diff_id.clone())])?;
        Ok(dest)
    }

    /// The file part of [`Store::adopt_snapshot`]: the caller records the snapshot in the
    /// database itself (see [`Store::record_step`]).
    pub(crate) fn move_snapshot(
        &self,
        dir: &Path,
        chain_id: &Digest,
    ) -> Result<PathBuf, StoreError> {
        let dest = self.snapshot_path(chain_id);
        if dest.is_dir() {
            let _ = fs::remove_dir_all(dir);
            return Ok(dest);
        }
        if let Err(e) = fs::rename(dir, &dest) {
            if !dest.is_dir() {
                return Err(io_err(&dest)(e));
            }
            let _ = fs::remove_dir_all(dir);
        }
        Ok(dest)
    }

    /// The snapshot dirs of `layers` (bottom to top), unpacking any that are missing.
    pub fn layer_snapshot_dirs(&self, layers: &[LayerInfo]) -> Result<Vec<PathBuf>, StoreError> {
        let diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id.clone()).collect();
        let chains = chain_ids(&diff_ids);
        let mut out = Vec::with_capacity(layers.len());
        let mut created = Vec::new();
        for (layer, chain) in layers.iter().zip(&chains) {
            let dir = self.snapshot_path(chain);
            if !dir.is_dir() {
                let snapshots = self.root().join("snapshots");
                let tmp = tempfile::Builder::new()
                    .prefix(".unpack-")
                    .tempdir_in(&snapshots)
                    .map_err(io_err(&snapshots))?;
                let blob = self.open_blob(&layer.digest)?;
                let opts = ApplyOptions {
                    whiteouts: WhiteoutMode::Overlay,
                    no_chown: false,
                };
                layer::apply_layer(std::io::BufReader::new(blob), tmp.path(), &opts)?;
                let tmp = tmp.keep();
                if let Err(e) = fs::rename(&tmp, &dir) {
                    let _ = fs::remove_dir_all(&tmp);
                    if !dir.is_dir() {
                        return Err(io_err(&dir)(e));
                    }
                }
                created.push((chain.clone(), layer.diff_id.clone()));
            }
            out.push(dir);
        }
        if !created.is_empty() {
            self.record_snapshots(&created)?;
        }
        Ok(out)
    }

    fn record_snapshots(&self, snapshots: &[(Digest, Digest)]) -> Result<(), StoreError> {
        self.with_db(|db| {
            let tx = db.begin_write().map_err(db_err)?;
            {
                let mut t = tx.open_table(SNAPSHOTS).map_err(db_err)?;
                for (chain, diff) in snapshots {
                    let rec = serde_json::json!({ "diff_id": diff.to_string() }).to_string();
                    t.insert(chain.hex(), rec.as_bytes()).map_err(db_err)?;
                }
            }
            tx.commit().map_err(db_err)?;
            Ok(())
        })
    }
}
