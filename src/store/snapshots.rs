//! Unpacked layer snapshots, one per chain ID, ready to be overlayfs lower dirs.

use std::fs;
use std::path::{Path, PathBuf};

use super::db::{db_err, SNAPSHOTS};
use super::{io_err, ImageId, Store, StoreError};
use crate::image::digest::{chain_ids, Digest};
use crate::image::layer::{self, ApplyOptions, LayerInfo, WhiteoutMode};

impl Store {
    /// The directory of the snapshot for `chain_id` (whether or not it exists).
    pub fn snapshot_path(&self, chain_id: &Digest) -> PathBuf {
        self.root.join("snapshots").join(chain_id.hex())
    }

    /// The unpacked snapshot dirs of image `id`, bottom to top, unpacking any that are
    /// missing. Each holds only its own layer, whiteouts in overlayfs form (0/0 char devices,
    /// `trusted.overlay.opaque=y`), so the list can be used as overlayfs `lowerdir`s (reversed:
    /// overlayfs wants the top first). Unpacking needs root (device nodes, `trusted.` xattrs).
    pub fn snapshot_dirs(&self, id: &ImageId) -> Result<Vec<PathBuf>, StoreError> {
        let rec = self.resolve_image(&id.to_string())?;
        self.layer_snapshot_dirs(&rec.layers)
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
                self.unpack_snapshot(layer, &dir)?;
                created.push((chain.clone(), layer.diff_id.clone()));
            }
            out.push(dir);
        }
        if !created.is_empty() {
            self.record_snapshots(&created)?;
        }
        Ok(out)
    }

    /// Unpacks `layer` into a temp dir in the session dir, then renames it into place; when
    /// another process got there first, theirs is kept. A snapshot dir under its final name
    /// is thus always complete: a kill mid-unpack leaves only the session dir's temp dir.
    fn unpack_snapshot(&self, layer: &LayerInfo, dir: &Path) -> Result<(), StoreError> {
        let session = self.session()?;
        let tmp = tempfile::Builder::new()
            .prefix("unpack-")
            .tempdir_in(&session.dir)
            .map_err(io_err(&session.dir))?;
        // The root of a layer without a "./" entry is a plain 0755 directory (temp dirs
        // start as 0700, which would make "/" unreadable for non-root users).
        fs::set_permissions(
            tmp.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .map_err(io_err(tmp.path()))?;
        let blob = self.open_blob(&layer.digest)?;
        let opts = ApplyOptions {
            whiteouts: WhiteoutMode::Overlay,
            no_chown: false,
            owner: None,
        };
        layer::apply_layer(std::io::BufReader::new(blob), tmp.path(), &opts)?;
        crate::killpoint::reached("unpack-applied");
        let tmp = tmp.keep();
        if let Err(e) = fs::rename(&tmp, dir) {
            let _ = fs::remove_dir_all(&tmp);
            if !dir.is_dir() {
                return Err(io_err(dir)(e));
            }
        }
        Ok(())
    }

    /// Records snapshots (chain ID, diff ID) in the database.
    pub(crate) fn record_snapshots(
        &self,
        snapshots: &[(Digest, Digest)],
    ) -> Result<(), StoreError> {
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
