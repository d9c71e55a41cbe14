//! Snapshots made by the build engine: adopting a finished directory (a RUN's overlay upper
//! dir, a COPY's staging dir) as the snapshot of a new layer instead of unpacking the layer
//! again.

use std::fs;
use std::path::{Path, PathBuf};

use super::{io_err, Store, StoreError};
use crate::image::digest::Digest;

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
    /// database itself (see [`Store::record_steps`]).
    pub(crate) fn move_snapshot(
        &self,
        dir: &Path,
        chain_id: &Digest,
    ) -> Result<PathBuf, StoreError> {
        let dest = self.snapshot_path(chain_id);
        if dest.is_dir() {
            let _ = self.trash(dir);
            return Ok(dest);
        }
        // One rename: the snapshot appears complete under its final name, or not at all.
        if let Err(e) = fs::rename(dir, &dest) {
            if !dest.is_dir() {
                return Err(io_err(&dest)(e));
            }
            let _ = self.trash(dir);
        }
        Ok(dest)
    }
}
