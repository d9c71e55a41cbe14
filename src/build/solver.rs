//! The solver: schedules the planned stages (each as soon as the stages it needs are done,
//! independent ones in parallel threads) and runs their operations: layer steps for the
//! typed operations the frontend (`convert`) made (exec, copy/add, mkdir for WORKDIR), each
//! with its canonical step (what its cache key hashes), through the step engine (`steps`).
//! It knows no Dockerfile syntax: stages are indices with dependencies, operations are typed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};

use serde_json::{json, Value};

use super::convert::{CopyOp, ExecOp};
use super::copy::{self, CopySpec};
use super::download;
use super::isolation::Isolation;
use super::layered::Layered;
use super::mounts;
use super::plan::{resolve_ref, Source};
use super::pull_base::BaseImage;
use super::run::{self, RunSpec};
use super::stage::{Builder, StageState};
use super::steps::{Outcome, Produced};
use super::{io_err, BuildError};
use crate::context::{ContextSnapshot, IgnoreMatcher, MetadataCache};
use crate::image::config_rules;
use crate::image::digest::Digest;
use crate::image::layer::LayerInfo;
use crate::image::oci::ImageConfig;
use crate::store::ImageId;

/// Runs `run(index)` for each `(index, deps)` of `stages` once every stage in `deps` has
/// succeeded, independent ones in parallel scoped threads, and hands each result to `done`
/// (on the calling thread, in the order they finish). After the first error no stage
/// starts; that error is returned once the running ones finish.
pub(crate) fn run_stages<T, E, F, D>(
    stages: &[(usize, &BTreeSet<usize>)],
    run: F,
    mut done: D,
) -> Result<(), E>
where
    T: Send,
    E: Send,
    F: Fn(usize) -> Result<T, E> + Sync,
    D: FnMut(usize, T),
{
    let mut first_error = None;
    let run = &run;
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel();
        let mut started = vec![false; stages.len()];
        let mut finished: Vec<usize> = Vec::new();
        let mut running = 0;
        loop {
            if first_error.is_none() {
                for (i, (index, deps)) in stages.iter().enumerate() {
                    if started[i] || !deps.iter().all(|d| finished.contains(d)) {
                        continue;
                    }
                    started[i] = true;
                    running += 1;
                    let (tx, index) = (tx.clone(), *index);
                    scope.spawn(move || {
                        let _ = tx.send((index, run(index)));
                    });
                }
            }
            if running == 0 {
                break;
            }
            let Ok((index, result)) = rx.recv() else {
                break;
            };
            running -= 1;
            match result {
                Ok(value) => {
                    done(index, value);
                    finished.push(index);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
    });
    first_error.map_or(Ok(()), Err)
}

impl Builder<'_> {
    pub(super) fn image(
        &self,
        name: &str,
    ) -> Result<(Vec<LayerInfo>, ImageConfig, ImageId), BuildError> {
        let name =
            super::named_context::lookup(&self.options.contexts, name).map_or(name, String::as_str);
        let rec = super::pull_base::resolve_or_pull(
            self.engine.store,
            self.view.get(),
            name,
            self.engine.pull,
            &self.options.registry,
        )?;
        let config = self.engine.store.image_config(&rec.id)?;
        Ok((rec.layers, config, rec.id))
    }

    /// The build context, scanned on first use (once, whichever stage asks first).
    pub(super) fn context(&self) -> Result<Arc<ContextSnapshot>, BuildError> {
        let mut slot = self
            .context
            .lock()
            .map_err(|_| BuildError::Invalid("a stage thread panicked".into()))?;
        if let Some(snap) = slot.as_ref() {
            return Ok(snap.clone());
        }
        let step = self.engine.progress.start("[internal] load build context");
        let (ignore, _) =
            IgnoreMatcher::load(&self.options.context, self.dockerfile_path.as_deref())?;
        // One index file per context root; concurrent builds need no lock (see MetadataCache).
        let dir = self.engine.store.root().join(crate::store::CONTEXT_CACHE);
        let mut cache = MetadataCache::open(&dir)?;
        let snap = Arc::new(ContextSnapshot::scan(
            &self.options.context,
            &ignore,
            &mut cache,
        )?);
        let stats = cache.stats();
        self.engine.progress.info(
            &step,
            &format!(
                "{} entries, {} hashed, {} from cache",
                snap.entries().len(),
                stats.misses,
                stats.hits
            ),
        );
        self.engine.progress.done(&step);
        *slot = Some(snap.clone());
        Ok(snap)
    }

    fn lowers(&self, layers: &[LayerInfo]) -> Result<Vec<PathBuf>, BuildError> {
        Ok(self.engine.store.layer_snapshot_dirs(layers)?)
    }

    /// The snapshot dirs of the stage's layers; a base image removed meanwhile is named.
    fn stage_lowers(&self, state: &StageState) -> Result<Vec<PathBuf>, BuildError> {
        self.engine
            .store
            .layer_snapshot_dirs(&state.layers)
            .map_err(|e| BaseImage::explain(state.base.as_ref(), e))
    }

    /// Records the outcome of a layer step in the state.
    fn apply(&self, state: &mut StageState, outcome: Outcome, created_by: String) {
        state.key = outcome.key;
        let created = self.sde.clone().unwrap_or(outcome.created);
        state.created = created.clone();
        let empty = outcome.layer.is_none();
        if let Some(l) = outcome.layer {
            state.layers.push(l);
        }
        state.history(created_by, empty, &created);
    }

    /// A layer step whose layer `fill` writes into a fresh staging dir (COPY/ADD, WORKDIR).
    fn staged_step(
        &self,
        state: &StageState,
        step: &super::progress::StepHandle,
        canonical: Value,
        fill: impl FnOnce(&Path) -> Result<(), BuildError>,
    ) -> Result<Outcome, BuildError> {
        let store = self.engine.store;
        let (key, layers) = (state.key.clone(), state.layers.clone());
        self.engine
            .layer_step(step, &key, &layers, canonical, state.uncached, |_| {
                let tmp = store.temp_dir()?;
                let root = tmp.path().join("layer");
                std::fs::create_dir(&root).map_err(io_err(&root))?;
                fill(&root)?;
                Ok(Produced {
                    _tmp: Some(tmp),
                    dir: Some(root),
                })
            })
    }

    pub(super) fn workdir_step(
        &self,
        state: &mut StageState,
        path: &str,
        step: &super::progress::StepHandle,
    ) -> Result<(), BuildError> {
        let lowers = self.stage_lowers(state)?;
        // As docker: WORKDIR is a layer step; when the directory exists the layer is empty.
        let exists = (Layered { lowers: &lowers }).resolve(path, true).is_some();
        // As BuildKit: the directories WORKDIR creates belong to the current USER (so a RUN as
        // that user can write there). The key names the user only when there is one, so the
        // keys of WORKDIR steps without USER stay as they were.
        let user = state.user();
        let owner = if user.is_empty() || exists {
            None
        } else {
            let view = Layered { lowers: &lowers };
            let spec = rbuild_runtime::resolve_user_from(
                &view.read_to_string("/etc/passwd"),
                &view.read_to_string("/etc/group"),
                &user,
            )?;
            Some((spec.uid, spec.gid))
        };
        let canonical = match owner {
            None => json!({ "op": "mkdir", "path": path }),
            Some((uid, gid)) => json!({ "op": "mkdir", "path": path, "owner": [uid, gid] }),
        };
        let outcome = self.staged_step(state, step, canonical, |root| {
            let view = Layered { lowers: &lowers };
            let comps = if exists {
                Vec::new()
            } else {
                view.resolve_lenient(path)
            };
            let mut dir = root.to_path_buf();
            for (i, c) in comps.iter().enumerate() {
                dir = dir.join(c);
                std::fs::create_dir(&dir).map_err(io_err(&dir))?;
                if let Some(disk) = view.lookup(&comps[..=i]) {
                    copy_dir_meta(&disk, &dir)?;
                } else {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
                        .map_err(io_err(&dir))?;
                    if let Some((uid, gid)) = owner {
                        std::os::unix::fs::lchown(&dir, Some(uid), Some(gid))
                            .map_err(io_err(&dir))?;
                    }
                }
            }
            Ok(())
        })?;
        self.apply(state, outcome, format!("WORKDIR {path}"));
        Ok(())
    }

    /// RUN: the command in the runtime on an overlay of the stage's snapshots (its mounts
    /// prepared first); the upper dir becomes the layer.
    pub(super) fn run_step(
        &self,
        stage_index: usize,
        state: &mut StageState,
        op: ExecOp,
        step: &super::progress::StepHandle,
    ) -> Result<(), BuildError> {
        let context = if op.reads_context {
            Some(self.context()?)
        } else {
            None
        };
        let mut inputs = Vec::new();
        for m in op.mounts {
            let from = match m.from.as_deref() {
                None => None,
                Some(f) => Some(self.source_layers(stage_index, f)?),
            };
            inputs.push(mounts::MountInput {
                mount: m,
                from,
                context: context.as_deref(),
            });
        }
        let prepared = mounts::prepare(
            self.engine.store,
            &inputs,
            &state.workdir(),
            &self.options.secrets,
            &self.options.ssh,
        )?;
        let args = config_rules::command_vec(state.config.config.as_ref(), op.command);
        let network_host = op.network_host.unwrap_or(self.options.network_host);
        // `RUN --network=none` and `build --network none` stay on loopback; the key names
        // both "none" (see the module docs of crate::network: default does not change keys).
        let default_network =
            !network_host && op.network_host.is_none() && self.options.network_default;
        let key_env = op.key_env;
        let mut env = op.env;
        env.extend(prepared.env.iter().cloned());
        let spec = RunSpec {
            args: args.clone(),
            env,
            cwd: state.workdir(),
            user: state.user(),
            network_host,
            mounts: prepared.mounts.clone(),
            default_network: default_network.then(|| self.engine.store.root().to_path_buf()),
            add_hosts: self.options.add_hosts.clone(),
            ulimits: self.options.ulimits.clone(),
            shm_size: self.options.shm_size,
        };
        let visible = op.visible_args;
        let canonical = json!({
            "op": "run",
            "args": args,
            "env": key_env,
            "cwd": spec.cwd,
            "user": spec.user,
            "network": if network_host { "host" } else { "none" },
            "mounts": prepared.key,
        });
        let mut created_by = String::from("RUN ");
        if !visible.is_empty() {
            created_by.push_str(&format!("|{} ", visible.len()));
            for (k, v) in &visible {
                created_by.push_str(&format!("{k}={v} "));
            }
        }
        created_by.push_str(&args.join(" "));
        created_by.push_str(" # buildkit");
        let lowers = match self.stage_lowers(state) {
            // Say what is missing rather than only which chown failed.
            Err(e) if !nix::unistd::geteuid().is_root() => {
                return Err(BuildError::Invalid(format!(
                    "{e}\nRUN as a non-root user: unpacking the image's layers needs root (file \
                     owners, device nodes); run rbuild as root inside the container (the \
                     container itself needs no privileges)"
                )))
            }
            lowers => lowers?,
        };
        let store = self.engine.store;
        let engine = &self.engine;
        let (key, layers) = (state.key.clone(), state.layers.clone());
        let kept = &mut state.chroot_root;
        let outcome =
            self.engine
                .layer_step(step, &key, &layers, canonical, state.uncached, |progress| {
                    let tmp = store.temp_dir()?;
                    let upper = tmp.path().join("upper");
                    std::fs::create_dir(&upper).map_err(io_err(&upper))?;
                    if engine.isolation(step)? == Isolation::Chroot {
                        super::chroot::run(
                            &spec, store, &layers, &lowers, kept, &upper, progress, step,
                        )?;
                    } else {
                        if spec.default_network.is_some() {
                            let root = store.root();
                            engine
                                .network_hold
                                .get_or_init(|| crate::network::hold_default(root).ok());
                        }
                        let work = tmp.path().join("work");
                        let empty = tmp.path().join("empty");
                        for d in [&work, &empty] {
                            std::fs::create_dir(d).map_err(io_err(d))?;
                        }
                        let root = run::RunRoot::Overlay {
                            upper: &upper,
                            work: &work,
                            empty: &empty,
                        };
                        run::execute(&spec, &lowers, root, progress, step)?;
                        run::prune_copy_ups(&upper, &lowers);
                    }
                    Ok(Produced {
                        _tmp: Some(tmp),
                        dir: Some(upper),
                    })
                })?;
        drop(prepared);
        self.apply(state, outcome, created_by);
        state.chroot_root.settle(&state.layers);
        Ok(())
    }

    /// The snapshot dirs and cache key of `COPY --from=X` / `--mount=from=X` (X expanded).
    /// The key names the content: the chain ID of X's layers (not X's step key, so a stage
    /// that ran again and made the same layers keeps what copies from it cached).
    fn source_layers(
        &self,
        stage_index: usize,
        from: &str,
    ) -> Result<(Vec<PathBuf>, String), BuildError> {
        let layers = match resolve_ref(&self.plan.names, stage_index, from) {
            Source::Scratch => return Err(BuildError::Invalid(format!("{from} has no files"))),
            Source::Stage(i) => self
                .done
                .lock()
                .ok()
                .and_then(|d| d.get(&i).map(|s| s.layers.clone()))
                .ok_or_else(|| BuildError::Invalid(format!("stage {from} was not built")))?,
            Source::Image(name) => self.image(&name)?.0,
        };
        let diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id.clone()).collect();
        let content = crate::image::digest::chain_ids(&diff_ids)
            .pop()
            .map(|chain| chain.to_string())
            .unwrap_or_else(|| "no layers".to_string());
        Ok((self.lowers(&layers)?, content))
    }

    /// COPY/ADD: sources selected (context, `--from`, downloads, heredocs) and staged into a
    /// new layer.
    pub(super) fn copy_step(
        &self,
        stage_index: usize,
        state: &mut StageState,
        op: CopyOp,
        step: &super::progress::StepHandle,
    ) -> Result<(), BuildError> {
        // Downloads happen before the cache lookup: their content is part of the key.
        let downloads = self.downloads(&op, step)?;
        let dest = if op.dest.starts_with('/') {
            op.dest.clone()
        } else {
            let mut d = format!("{}/{}", state.workdir().trim_end_matches('/'), op.dest);
            if (op.dest == "." || op.dest.ends_with("/.")) && !d.ends_with('/') {
                d.push('/');
            }
            d
        };
        let lowers = self.stage_lowers(state)?;
        let chown = match &op.chown {
            None => None,
            Some(spec) => Some(resolve_chown(spec, Layered { lowers: &lowers })?),
        };
        let spec = CopySpec {
            add: op.add,
            sources: op.sources,
            inline: op.inline,
            dest,
            chown,
            chmod: op.chmod,
            exclude: op.exclude,
            parents: op.parents,
            downloads,
        };
        // Where the sources come from, and their part of the cache key.
        let from = match &op.from {
            None => None,
            Some(f) => Some(self.source_layers(stage_index, f)?),
        };
        let context = if from.is_none() && !spec.sources.is_empty() {
            Some(self.context()?)
        } else {
            None
        };
        let (selected, canonical) =
            self.copy_selection(&spec, from.as_ref(), context.as_deref())?;
        let store = self.engine.store;
        let from_lowers = from.map(|(l, _)| l);
        let outcome = self.staged_step(state, step, canonical, |root| {
            let from = match (&from_lowers, &context) {
                (Some(l), _) => copy::From::Layers(l.clone()),
                (None, Some(snap)) => copy::From::Context(snap),
                (None, None) => copy::From::Layers(Vec::new()),
            };
            copy::stage(
                &spec,
                &from,
                &selected,
                Layered { lowers: &lowers },
                root,
                Some(store.pool()),
            )?;
            Ok(())
        })?;
        self.apply(state, outcome, op.created_by);
        Ok(())
    }

    /// Downloads the URL sources of ADD (each revalidated with a conditional request when
    /// it was downloaded before, unless --no-cache): (file, its mtime).
    fn downloads(
        &self,
        op: &CopyOp,
        step: &super::progress::StepHandle,
    ) -> Result<Vec<(download::Downloaded, i64)>, BuildError> {
        let build_time = chrono::DateTime::parse_from_rfc3339(&self.engine.now)
            .map(|t| t.timestamp())
            .unwrap_or(0);
        let store = self.engine.store;
        let mut downloads = Vec::new();
        for url in &op.urls {
            let record = match self.options.no_cache {
                true => None,
                false => store.download_record(url)?,
            };
            let previous = record.as_ref().map(|record| download::Previous {
                record,
                content: store.blob_path(&record.digest),
            });
            let progress =
                |e: crate::archive::progress::Event<'_>| self.engine.progress.transfer(step, e);
            let dir = store.temp_dir()?;
            let file = download::download(url, dir, op.checksum.as_ref(), previous, &progress)?;
            if !file.not_modified && (file.validators.0.is_some() || file.validators.1.is_some()) {
                let record = crate::store::DownloadRecord {
                    etag: file.validators.0.clone(),
                    last_modified: file.validators.1.clone(),
                    digest: file.digest.clone(),
                };
                store.record_download(url, &record, &file.path)?;
            }
            let mtime = file.last_modified.unwrap_or(build_time);
            downloads.push((file, mtime));
        }
        Ok(downloads)
    }

    /// The sources a COPY/ADD selects, and its canonical step (what its cache key hashes):
    /// context content by digest, `--from` content by the source's chain ID and the paths
    /// taken, downloads by name, digest and mtime.
    fn copy_selection(
        &self,
        spec: &CopySpec,
        from: Option<&(Vec<PathBuf>, String)>,
        context: Option<&ContextSnapshot>,
    ) -> Result<(Vec<copy::Selected>, Value), BuildError> {
        let (selected, source_digest) = match (from, context) {
            (Some((lowers, key)), _) => {
                let selected = copy::select(spec, &copy::From::Layers(lowers.clone()))?;
                // Content is named by the source's chain ID; paths say what is taken.
                let names: Vec<&str> = selected.iter().map(|s| s.name.as_str()).collect();
                let digest = format!("{key}:{}", names.join(","));
                (selected, digest)
            }
            (None, Some(snap)) => {
                let selected = copy::select(spec, &copy::From::Context(snap))?;
                let digest = snap.digest_of(selected.iter().map(|s| s.path.as_str()))?;
                (selected, digest.to_string())
            }
            (None, None) => (Vec::new(), String::new()),
        };
        let mut canonical = json!({
            "op": if spec.add { "add" } else { "copy" },
            "sources": selected.iter().map(|s| &s.name).collect::<Vec<_>>(),
            "content": source_digest,
            "inline": spec.inline,
            "dest": spec.dest,
            "chown": spec.chown,
            "chmod": spec.chmod,
            "exclude": spec.exclude,
            "parents": spec.parents,
        });
        if !spec.downloads.is_empty() {
            // Content and name, and the mtime when it is not the build's (which would make
            // every build a miss): an unchanged download is a hit, a changed one a miss.
            let sde = self.options.source_date_epoch;
            canonical["downloads"] = spec
                .downloads
                .iter()
                .map(|(f, _)| {
                    json!({
                        "name": f.name,
                        "digest": f.digest,
                        "mtime": f.last_modified.or(sde),
                    })
                })
                .collect();
        }
        Ok((selected, canonical))
    }
}

/// Copies mode, owner and mtime of `from` onto the directory `to`.
fn copy_dir_meta(from: &Path, to: &Path) -> Result<(), BuildError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let md = std::fs::metadata(from).map_err(io_err(from))?;
    std::os::unix::fs::lchown(to, Some(md.uid()), Some(md.gid())).map_err(io_err(to))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(md.mode() & 0o7777))
        .map_err(io_err(to))?;
    let t = filetime::FileTime::from_last_modification_time(&md);
    filetime::set_file_times(to, t, t).map_err(io_err(to))?;
    Ok(())
}

/// `--chown=user[:group]` → uid, gid, looked up in the image's `/etc/passwd` and `/etc/group`.
/// A user name gives its primary group; a numeric uid without a group gives gid = uid.
fn resolve_chown(spec: &str, view: Layered<'_>) -> Result<(u32, u32), BuildError> {
    let passwd = view.read_to_string("/etc/passwd");
    let group = view.read_to_string("/etc/group");
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let resolved = rbuild_runtime::resolve_user_from(&passwd, &group, user)?;
    let uid = resolved.uid;
    let gid = match grp {
        Some(g) => rbuild_runtime::resolve_user_from(&passwd, &group, &format!("0:{g}"))?.gid,
        None if user.parse::<u32>().is_ok() => uid,
        None => resolved.gid,
    };
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn stages_start_after_their_dependencies_and_stop_after_an_error() {
        let none = BTreeSet::new();
        let on0: BTreeSet<usize> = [0].into();
        let on1: BTreeSet<usize> = [1].into();
        let log = Mutex::new(Vec::new());
        let mut done = Vec::new();
        let stages = [(0, &none), (1, &on0), (2, &on1)];
        let r: Result<(), String> = run_stages(
            &stages,
            |i| {
                log.lock().unwrap().push(i);
                Ok(i * 10)
            },
            |i, v| done.push((i, v)),
        );
        assert!(r.is_ok());
        assert_eq!(*log.lock().unwrap(), [0, 1, 2]);
        assert_eq!(done, [(0, 0), (1, 10), (2, 20)]);
        let r = run_stages(
            &stages,
            |i| {
                if i == 1 {
                    Err(format!("stage {i}"))
                } else {
                    Ok(())
                }
            },
            |_, _| {},
        );
        assert_eq!(r, Err("stage 1".to_string()));
    }
}
