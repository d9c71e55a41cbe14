//! RUN in chroot isolation: the step's root is a copy of its snapshots
//! ([`treediff::materialise`]), the process runs chrooted in it
//! ([`rbuild_runtime::chroot`]), and what it changed is moved into the step's upper dir in
//! overlayfs form ([`treediff::diff_to_upper`]), so the layer is written exactly as in the
//! namespaced mode.
//!
//! `RUN --mount`s are placed in the copy rather than mounted (see the runtime's module):
//! cache directories and staged binds are moved in and back, secrets copied in and removed,
//! tmpfs is an empty directory. Their destinations, like `/dev`, `/proc`, `/sys` and the
//! `/etc` files the runtime writes, are never part of the change set.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::image::layer::treediff;

use super::layered::Layered;
use super::progress::{Progress, StepHandle};
use super::run::{self, RunRoot, RunSpec};
use super::{io_err, BuildError};

/// Runs `spec` chrooted in a copy of `lowers` made under `tmp`; its changes end up in
/// `upper` (an empty directory).
pub(crate) fn run(
    spec: &RunSpec,
    lowers: &[PathBuf],
    tmp: &Path,
    upper: &Path,
    progress: &Progress,
    step: &StepHandle,
) -> Result<(), BuildError> {
    let root = tmp.join("root");
    std::fs::create_dir(&root).map_err(io_err(&root))?;
    let view = Layered { lowers };
    let started = std::time::Instant::now();
    let copied = treediff::materialise(&view, &root)?;
    progress.detail(
        step,
        &format!(
            "chroot: root copied in {:.3}s ({} files, {} bytes, {})",
            started.elapsed().as_secs_f64(),
            copied.files,
            copied.bytes,
            if copied.reflinked > 0 {
                "reflinked"
            } else {
                "no reflinks on this filesystem"
            }
        ),
    );
    let notes = run::execute(spec, lowers, RunRoot::Chroot(&root), progress, step)?;
    static NOTED: AtomicBool = AtomicBool::new(false);
    if !notes.is_empty() && !NOTED.swap(true, Ordering::Relaxed) {
        for note in notes {
            progress.info(step, &format!("chroot: {note}"));
        }
    }
    let mut exclude: Vec<String> = rbuild_runtime::chroot::RUNTIME_PATHS
        .iter()
        .map(|p| p.to_string())
        .collect();
    for m in &spec.mounts {
        let at = rbuild_runtime::resolve_in_root(&root, &m.destination);
        if let Ok(rel) = at.strip_prefix(&root) {
            exclude.push(rel.to_string_lossy().into_owned());
        }
    }
    treediff::diff_to_upper(&root, &view, &copied, &exclude, upper)?;
    Ok(())
}
