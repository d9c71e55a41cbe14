//! RUN in chroot isolation: the step's root is a copy of its snapshots
//! ([`treediff::materialise`]), the process runs chrooted in it
//! ([`rbuild_runtime::chroot`]), and what it changed is moved into the step's upper dir in
//! overlayfs form ([`treediff::diff_to_upper`]), so the layer is written exactly as in the
//! namespaced mode.
//!
//! The copy is the expensive part (one new inode per file where the filesystem has no
//! reflinks), so a stage keeps its copy from one RUN step to the next ([`KeptSlot`]): at
//! the next RUN, the last step's change set (its layer's snapshot) is copied back
//! ([`treediff::apply_layer`]) and the traces that step left outside its change set are
//! undone ([`treediff::resync`]), so the copy is again exactly what a fresh copy of the
//! stage's layers would be; layers added in between (COPY, WORKDIR, cache hits) are
//! applied to it the same way. A copy is reused only by the
//! stage that made it, only when the stage's layers start with the ones it equals (checked
//! by DiffID), and never after a failed step (it is taken out of its slot while the step
//! runs). It lives in the store's session dir and is removed when its stage ends.
//!
//! `RUN --mount`s are placed in the copy rather than mounted (see the runtime's module):
//! cache directories and staged binds are moved in and back, secrets copied in and removed,
//! tmpfs is an empty directory. Their destinations, like `/dev`, `/proc`, `/sys` and the
//! `/etc` files the runtime writes, are never part of the change set.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::image::digest::Digest;
use crate::image::layer::{treediff, LayerInfo};
use crate::store::Store;

use super::layered::Layered;
use super::progress::{Progress, StepHandle};
use super::run::{self, RunRoot, RunSpec};
use super::{io_err, BuildError};

/// A stage's copy of its root, kept between its RUN steps.
struct KeptRoot {
    /// Holds the copy at `root`; removed with it.
    _dir: tempfile::TempDir,
    root: PathBuf,
    /// The DiffIDs of the layers the copy is of; `None` until [`KeptSlot::settle`] confirms
    /// that the step's layer became the stage's next one.
    chain: Option<Vec<Digest>>,
    /// How many layers the stage has once the step's layer is added.
    expect: usize,
    /// The last step's change set (the chain's last layer) is still to be copied back and
    /// its traces outside it undone (these paths; directory times after the barrier of
    /// `copied`): done at the next use, so a stage's last step does not pay for it.
    behind: Option<Vec<String>>,
    copied: treediff::Materialised,
}

/// Where a stage keeps its root copy. A clone is empty: a stage built on another one
/// (`FROM stage`) makes its own copy rather than sharing (and changing) the other's.
#[derive(Default)]
pub(crate) struct KeptSlot(Option<KeptRoot>);

impl Clone for KeptSlot {
    fn clone(&self) -> KeptSlot {
        KeptSlot(None)
    }
}

impl std::fmt::Debug for KeptSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(k) => write!(f, "KeptSlot({})", k.root.display()),
            None => f.write_str("KeptSlot(empty)"),
        }
    }
}

impl KeptSlot {
    /// Confirms a copy left by the step that just ran: it equals `layers` (the stage's
    /// layers, that step's included) when their number is what the step expected; else the
    /// copy is dropped.
    pub(crate) fn settle(&mut self, layers: &[LayerInfo]) {
        if let Some(kept) = &mut self.0 {
            if kept.chain.is_none() {
                if kept.expect == layers.len() {
                    kept.chain = Some(layers.iter().map(|l| l.diff_id.clone()).collect());
                } else {
                    self.0 = None;
                }
            }
        }
    }

    /// The kept copy when it equals a prefix of `layers`; anything else is dropped.
    fn take_for(&mut self, layers: &[LayerInfo]) -> Option<KeptRoot> {
        let kept = self.0.take()?;
        let chain = kept.chain.as_ref()?;
        let prefix =
            chain.len() <= layers.len() && chain.iter().zip(layers).all(|(d, l)| *d == l.diff_id);
        prefix.then_some(kept)
    }
}

/// Runs `spec` chrooted in a copy of `lowers` (the snapshots of `layers`): the one `kept`
/// holds when it can be brought up to them, else a new one in the store's session dir.
/// The step's changes end up in `upper` (an empty directory); the copy goes back into
/// `kept`, to be settled once the step's layer is the stage's.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    spec: &RunSpec,
    store: &Store,
    layers: &[LayerInfo],
    lowers: &[PathBuf],
    kept: &mut KeptSlot,
    upper: &Path,
    progress: &Progress,
    step: &StepHandle,
) -> Result<(), BuildError> {
    let view = Layered { lowers };
    let started = std::time::Instant::now();
    let mut current = match kept.take_for(layers) {
        Some(mut current) => {
            // `take_for` checked that the chain is a prefix of `layers` (and so of `lowers`).
            let done = current.chain.as_ref().map_or(0, Vec::len);
            let mut files = 0;
            if let Some(paths) = current.behind.take() {
                files += treediff::apply_layer(&lowers[done - 1], &current.root)?;
                let view = Layered {
                    lowers: &lowers[..done],
                };
                treediff::resync(&current.root, &view, &current.copied, &paths)?;
            }
            for layer in &lowers[done..] {
                files += treediff::apply_layer(layer, &current.root)?;
            }
            current.copied.renew_barrier(&current.root)?;
            progress.detail(
                step,
                &format!(
                    "chroot: root kept from the previous step, brought up to date in {:.3}s \
                     ({files} files copied)",
                    started.elapsed().as_secs_f64(),
                ),
            );
            current
        }
        None => {
            let dir = store.temp_dir()?;
            let root = dir.path().join("root");
            std::fs::create_dir(&root).map_err(io_err(&root))?;
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
            KeptRoot {
                _dir: dir,
                root,
                chain: None,
                expect: 0,
                behind: None,
                copied,
            }
        }
    };
    let root = current.root.clone();
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
    treediff::diff_to_upper(&root, &view, &current.copied, &exclude, upper)?;
    current.chain = None;
    current.expect = layers.len() + 1;
    current.behind = Some(exclude);
    kept.0 = Some(current);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::fs;
    use std::os::unix::fs::MetadataExt;

    /// What a copy holds, by path: type and mode, owner, mtime (but symlinks'), content or
    /// link target, link count.
    fn tree(root: &Path) -> BTreeMap<String, String> {
        fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
            for e in fs::read_dir(dir).unwrap().flatten() {
                let path = e.path();
                let md = fs::symlink_metadata(&path).unwrap();
                let what = if md.is_dir() {
                    walk(&path, root, out);
                    String::new()
                } else if md.file_type().is_symlink() {
                    fs::read_link(&path).unwrap().display().to_string()
                } else {
                    String::from_utf8_lossy(&fs::read(&path).unwrap_or_default()).into_owned()
                };
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                let times = if md.file_type().is_symlink() {
                    String::new()
                } else {
                    format!("{}.{}", md.mtime(), md.mtime_nsec())
                };
                out.insert(
                    rel,
                    format!(
                        "{:o} {}:{} {times} {} {what:?}",
                        md.mode(),
                        md.uid(),
                        md.gid(),
                        md.nlink()
                    ),
                );
            }
        }
        let mut out = BTreeMap::new();
        walk(root, root, &mut out);
        out
    }

    /// A copy kept across a step (its change set applied back, its traces undone) and then
    /// brought up to a further layer equals fresh copies of the same layers, entry by entry;
    /// and the step's in-place rewrite of a file with its size and mtime restored is in the
    /// change set.
    #[test]
    fn kept_root_equals_a_fresh_copy_after_a_step_and_a_layer() {
        let tmp = tempfile::tempdir().unwrap();
        let p = |n: &str| tmp.path().join(n);
        let (base, upper, next) = (p("base"), p("upper"), p("next"));
        for d in [
            "base/etc",
            "base/d/sub",
            "base/dev",
            "base/tmp",
            "upper",
            "next/etc",
        ] {
            fs::create_dir_all(p(d)).unwrap();
        }
        fs::write(base.join("etc/a"), "aaaa").unwrap();
        fs::write(base.join("etc/b"), "bbbb").unwrap();
        fs::write(base.join("d/sub/x"), "x").unwrap();
        fs::write(base.join("h1"), "linked").unwrap();
        fs::hard_link(base.join("h1"), base.join("h2")).unwrap();
        std::os::unix::fs::symlink("etc/a", base.join("ln")).unwrap();
        fs::write(base.join("dev/null"), "").unwrap();
        // A later layer: a new file, a file replacing a directory, a whiteout.
        fs::write(next.join("etc/new"), "new").unwrap();
        fs::write(next.join("d"), "now a file").unwrap();
        nix::sys::stat::mknod(
            &next.join("h2"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();

        let lowers = vec![base.clone()];
        let root_dir = p("kept");
        fs::create_dir(&root_dir).unwrap();
        let root = root_dir.join("root");
        fs::create_dir(&root).unwrap();
        let mut copied = treediff::materialise(&Layered { lowers: &lowers }, &root).unwrap();
        let a = root.join("etc/a");
        let before = fs::symlink_metadata(&a).unwrap();
        // The step: rewrite in place with the same size and mtime, delete, replace a
        // directory, leave traces in an excluded path and in /tmp's mtime.
        fs::write(&a, "AAAA").unwrap();
        let f = fs::File::options().write(true).open(&a).unwrap();
        f.set_modified(before.modified().unwrap()).unwrap();
        drop(f);
        fs::remove_file(root.join("etc/b")).unwrap();
        fs::remove_dir_all(root.join("d/sub")).unwrap();
        fs::create_dir(root.join("d/sub")).unwrap();
        fs::write(root.join("dev/null"), "thrown away").unwrap();
        fs::create_dir(root.join("tmp/t")).unwrap();
        fs::remove_dir(root.join("tmp/t")).unwrap();
        let exclude = vec!["dev".to_string()];
        treediff::diff_to_upper(
            &root,
            &Layered { lowers: &lowers },
            &copied,
            &exclude,
            &upper,
        )
        .unwrap();
        assert_eq!(fs::read_to_string(upper.join("etc/a")).unwrap(), "AAAA");
        assert!(!upper.join("tmp").exists() && !upper.join("dev").exists());

        // Next use: the step's layer and the next one applied, traces undone.
        let all = vec![base.clone(), upper.clone(), next.clone()];
        treediff::apply_layer(&upper, &root).unwrap();
        treediff::resync(&root, &Layered { lowers: &all[..2] }, &copied, &exclude).unwrap();
        let fresh = p("fresh");
        fs::create_dir(&fresh).unwrap();
        treediff::materialise(&Layered { lowers: &all[..2] }, &fresh).unwrap();
        assert_eq!(tree(&root), tree(&fresh), "after the step");

        treediff::apply_layer(&next, &root).unwrap();
        copied.renew_barrier(&root).unwrap();
        let fresh = p("fresh2");
        fs::create_dir(&fresh).unwrap();
        treediff::materialise(&Layered { lowers: &all }, &fresh).unwrap();
        assert_eq!(tree(&root), tree(&fresh), "after the next layer");
        assert!(!root.join("h2").exists());
        assert_eq!(fs::read_to_string(root.join("d")).unwrap(), "now a file");
        // The snapshots were never written through the copy.
        assert_eq!(fs::read_to_string(base.join("etc/a")).unwrap(), "aaaa");
        assert_eq!(fs::read_to_string(base.join("dev/null")).unwrap(), "");
    }
}
