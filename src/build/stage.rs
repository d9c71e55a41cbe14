//! Evaluating stages: instructions → config changes and layer steps, in order.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::convert;
use super::copy::{self, CopySpec};
use super::download;
use super::layered::Layered;
use super::mounts;
use super::plan::{self, resolve_ref, Plan, Source};
use super::progress::Progress;
use super::pull_base::BaseImage;
use super::run::{self, RunSpec};
use super::solver;
use super::steps::{base_key, Engine, Produced};
use super::{io_err, BuildError, BuildOptions, DockerfileSource};
use crate::context::{ContextSnapshot, IgnoreMatcher, MetadataCache};
use crate::dockerfile as df;
use crate::dockerfile::eval::{platform_args, BuildArgs, MetaArgs, Platform, StageVars};
use crate::dockerfile::instructions::{self, ArgDef, Command, Copy, Instruction, Stages};
use crate::dockerfile::shell::ShellLex;
use crate::image::config_rules::{self, ConfigChange, ConfigEditor};
use crate::image::digest::Digest;
use crate::image::layer::LayerInfo;
use crate::image::oci::{ContainerConfig, History, ImageConfig, RootFs};
use crate::store::{BuildView, ImageId, Store};

/// A built stage.
#[derive(Debug, Clone)]
struct StageState {
    layers: Vec<LayerInfo>,
    config: ImageConfig,
    vars: StageVars,
    key: Digest,
    /// Applies the stage's config changes (it knows whether CMD was set in this stage).
    editor: ConfigEditor,
    /// Time of the newest step (history entries of config-only steps use it).
    created: String,
    /// The image the stage (or the stage it starts from) is based on; none for scratch.
    base: Option<BaseImage>,
}

impl StageState {
    fn cc(&mut self) -> &mut ContainerConfig {
        self.config
            .config
            .get_or_insert_with(ContainerConfig::default)
    }

    fn workdir(&self) -> String {
        self.config
            .config
            .as_ref()
            .and_then(|c| c.working_dir.clone())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".to_string())
    }

    fn user(&self) -> String {
        self.config
            .config
            .as_ref()
            .and_then(|c| c.user.clone())
            .unwrap_or_default()
    }

    fn history(&mut self, created_by: String, empty_layer: bool, created: &str) {
        self.config.history.push(History {
            created: Some(created.to_string()),
            created_by: Some(created_by),
            author: None,
            comment: Some("buildkit.dockerfile.v0".to_string()),
            empty_layer,
        });
    }
}

/// The build of one Dockerfile.
struct Builder<'a> {
    options: &'a BuildOptions,
    engine: Engine<'a>,
    /// Images and tags as the build started (base images resolve here first); read by
    /// `run_stages`.
    view: std::sync::OnceLock<BuildView>,
    file: String,
    lex: ShellLex,
    args: BuildArgs,
    meta: MetaArgs,
    plan: Plan,
    stages: &'a Stages,
    done: Mutex<HashMap<usize, StageState>>,
    context: Mutex<Option<Arc<ContextSnapshot>>>,
    dockerfile_path: Option<PathBuf>,
    sde: Option<String>,
}

fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Builds the image described by `options` into `store` and returns its ID. Progress goes
/// to `progress`. Nothing is tagged unless the whole build succeeds.
pub fn build(
    store: &Store,
    options: &BuildOptions,
    progress: Progress,
) -> Result<ImageId, BuildError> {
    let host = Platform::host();
    if let Some(p) = &options.platform {
        let wanted = Platform::parse(p)
            .ok_or_else(|| BuildError::Invalid(format!("invalid platform {p:?}")))?;
        if wanted.os != host.os || wanted.architecture != host.architecture {
            return Err(BuildError::Unsupported(format!(
                "building for {wanted} on {host} (cross-platform builds)"
            )));
        }
    }
    let step = progress.start("[internal] load build definition from Dockerfile");
    let (file, text, dockerfile_path) = read_dockerfile(&options.dockerfile, &options.context)?;
    // The text moves into the AST, and the AST is dropped once the typed stages are made: a
    // huge instruction (a 50 MB LABEL) is not kept in several copies for the whole build.
    let parsed = df::parse_owned(df::decode(text, &file)?, &file)?;
    let stages = instructions::parse_instructions(&parsed)?;
    let escape = parsed.directives.escape;
    drop(parsed);
    progress.done(&step);
    let lex = ShellLex::new(escape);
    let args = BuildArgs::new(options.build_args.clone(), platform_args(&host, &host));
    let meta_defs: Vec<&ArgDef> = stages
        .meta_args
        .iter()
        .flat_map(|c| match &c.instruction {
            Instruction::Arg { args } => args.iter().collect::<Vec<_>>(),
            _ => Vec::new(),
        })
        .collect();
    let meta = MetaArgs::evaluate(meta_defs, &args, &lex)?;
    let plan = plan::plan(&stages, &meta, &lex, options.target.as_deref(), &file)?;
    let now = match options.source_date_epoch {
        Some(s) => rfc3339(s),
        None => crate::image::oci::timestamp(chrono::Utc::now()),
    };
    let builder = Builder {
        options,
        engine: Engine {
            store,
            no_cache: options.no_cache,
            pull: options.pull,
            mtime: options.source_date_epoch.map(|s| s.max(0) as u64),
            progress,
            now,
            records: std::sync::OnceLock::new(),
            cleanups: Mutex::new(Vec::new()),
            ran: Mutex::new(Vec::new()),
        },
        view: std::sync::OnceLock::new(),
        file,
        lex,
        args,
        meta,
        plan,
        stages: &stages,
        done: Mutex::new(HashMap::new()),
        context: Mutex::new(None),
        dockerfile_path,
        sde: options.source_date_epoch.map(rfc3339),
    };
    let built = builder.run_stages();
    let recorded = builder.engine.finish();
    built?;
    recorded?;
    let target = builder.plan.target();
    let mut state = builder
        .done
        .lock()
        .map_err(|_| BuildError::Invalid("a stage thread panicked".into()))?
        .remove(&target)
        .ok_or_else(|| BuildError::Invalid("the target stage was not built".into()))?;
    let unused = builder.args.unused();
    if !unused.is_empty() {
        builder.engine.progress.warn(&format!(
            "One or more build-args [{}] were not consumed",
            unused.join(" ")
        ));
    }
    // Export. The typed stages are dropped first, and the config is moved out of the state
    // rather than cloned: a huge LABEL is held once in the config while it is serialized.
    let Builder { engine, sde, .. } = builder;
    let progress = engine.progress;
    drop(stages);
    let progress = &progress;
    let step = progress.start("exporting to image");
    if !options.labels.is_empty() {
        let labels = state.cc().labels.get_or_insert_with(BTreeMap::new);
        for (k, v) in &options.labels {
            labels.insert(k.clone(), v.clone());
        }
    }
    state.cc();
    let mut config = std::mem::take(&mut state.config);
    config.created = Some(sde.unwrap_or_else(|| state.created.clone()));
    config.architecture = host.architecture.clone();
    config.os = host.os.clone();
    config.rootfs = RootFs {
        kind: "layers".into(),
        diff_ids: state.layers.iter().map(|l| l.diff_id.clone()).collect(),
    };
    let id = store
        .commit_image(&config, &state.layers, &options.tags)
        .map_err(|e| BaseImage::explain(state.base.as_ref(), e))
        .inspect_err(|e| progress.error(&step, &e.to_string()))?;
    progress.info(&step, &format!("writing image {id}"));
    for t in &options.tags {
        progress.info(&step, &format!("naming to {t}"));
    }
    progress.done(&step);
    Ok(id)
}

/// The Dockerfile's name (for messages), bytes and path (none when given as text).
fn read_dockerfile(
    source: &DockerfileSource,
    context: &Path,
) -> Result<(String, Vec<u8>, Option<PathBuf>), BuildError> {
    Ok(match source {
        DockerfileSource::Default => {
            let p = context.join("Dockerfile");
            let t = std::fs::read(&p).map_err(io_err(&p))?;
            ("Dockerfile".to_string(), t, Some(p))
        }
        DockerfileSource::Path(p) => {
            let t = std::fs::read(p).map_err(io_err(p))?;
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "Dockerfile".into());
            (name, t, Some(p.clone()))
        }
        DockerfileSource::Text { name, text } => (name.clone(), text.clone(), None),
    })
}

impl Builder<'_> {
    /// Builds the planned stages, each as soon as the stages it needs are done, independent
    /// ones in parallel threads. The first error is returned once running stages finish.
    fn run_stages(&self) -> Result<(), BuildError> {
        let order = &self.plan.order;
        let mut first_error = None;
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            if self.uses_context() {
                // Scans the context while the stages start (reading the store, base images,
                // cached steps); a stage that needs it waits for this scan. An error is
                // left for the stage to meet (it scans again).
                scope.spawn(|| {
                    let _ = self.context();
                });
            }
            // One read of the database for the base images and all cache records.
            match self.engine.store.build_view() {
                Ok(mut view) => {
                    let _ = self
                        .engine
                        .records
                        .set(std::mem::take(&mut view.cache_records));
                    let _ = self.view.set(view);
                }
                Err(e) => {
                    first_error = Some(e.into());
                    return;
                }
            }
            if self.engine.progress.is_live() {
                let stop = &stop;
                scope.spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        std::thread::sleep(std::time::Duration::from_millis(250));
                        self.engine.progress.tick();
                    }
                });
            }
            let stages: Vec<(usize, &BTreeSet<usize>)> =
                order.iter().map(|p| (p.index, &p.deps)).collect();
            let built = solver::run_stages(
                &stages,
                |index| {
                    let planned = order.iter().find(|p| p.index == index).ok_or_else(|| {
                        BuildError::Invalid(format!("stage {index} is not planned"))
                    })?;
                    self.build_stage(planned.index, &planned.display, &planned.base)
                },
                |index, state| {
                    if let Ok(mut done) = self.done.lock() {
                        done.insert(index, state);
                    }
                },
            );
            if let Err(e) = built {
                first_error = Some(e);
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Whether a planned stage copies from the build context (COPY/ADD without `--from`, a
    /// RUN bind mount of the context). ONBUILD instructions of base images are not known yet.
    fn uses_context(&self) -> bool {
        self.plan.order.iter().any(|planned| {
            self.stages.stages[planned.index]
                .instructions
                .iter()
                .any(|cmd| match &cmd.instruction {
                    Instruction::Copy(c) => c.from.is_none(),
                    Instruction::Add(c) => {
                        c.from.is_none() && c.sources.iter().any(|s| !s.contains("://"))
                    }
                    Instruction::Run(r) => r
                        .mounts
                        .iter()
                        .any(|m| m.kind == instructions::MountType::Bind && m.from.is_none()),
                    _ => false,
                })
        })
    }

    fn at(&self, line: usize, original: &str, err: BuildError) -> BuildError {
        BuildError::at(&self.file, line, original.trim(), err)
    }

    /// Starts a stage from its base and runs its (and its base's ONBUILD) instructions.
    fn build_stage(
        &self,
        index: usize,
        display: &str,
        base: &Source,
    ) -> Result<StageState, BuildError> {
        let stages = self.stages;
        let stage = &stages.stages[index];
        let layer_ops = |cmds: &[Command]| {
            cmds.iter()
                .filter(|c| {
                    matches!(
                        c.instruction,
                        Instruction::Run(_)
                            | Instruction::Copy(_)
                            | Instruction::Add(_)
                            | Instruction::Workdir { .. }
                    )
                })
                .count()
        };
        let base_text = match base {
            Source::Image(name) => name.clone(),
            Source::Scratch => "scratch".into(),
            Source::Stage(i) => self
                .plan
                .order
                .iter()
                .find(|s| s.index == *i)
                .map(|s| s.display.clone())
                .unwrap_or_default(),
        };
        let mut state = self
            .start_state(base)
            .map_err(|e| self.at(stage.span.start_line, &stage.original, e))?;
        // ONBUILD triggers of the base run first; the new image does not inherit them.
        let triggers: Vec<String> = state
            .config
            .config
            .as_mut()
            .and_then(|c| {
                // A null or malformed `OnBuild` of a base is not inherited either.
                c.extra.remove("OnBuild");
                c.on_build.take()
            })
            .unwrap_or_default();
        let trigger_cmds = if triggers.is_empty() {
            Vec::new()
        } else {
            instructions::parse_commands(&triggers.join("\n"), "ONBUILD")
                .map_err(|e| self.at(stage.span.start_line, &stage.original, e.into()))?
        };
        let history_start = state.config.history.len();
        let total = 1 + layer_ops(&trigger_cmds) + layer_ops(&stage.instructions);
        let from_step = self
            .engine
            .progress
            .start(&format!("[{display} 1/{total}] FROM {base_text}"));
        self.engine.progress.done(&from_step);
        let mut n = 1;
        for cmd in &trigger_cmds {
            self.instruction(index, display, &mut n, total, &mut state, cmd)
                .map_err(|e| {
                    self.at(
                        stage.span.start_line,
                        &format!(
                            "{} (ONBUILD {})",
                            stage.original.trim(),
                            cmd.original.trim()
                        ),
                        e,
                    )
                })?;
        }
        for cmd in &stage.instructions {
            self.instruction(index, display, &mut n, total, &mut state, cmd)
                .map_err(|e| self.at(cmd.span.start_line, &cmd.original, e))?;
        }
        let env = state.vars.config_env();
        state.cc().env = if env.is_empty() { None } else { Some(env) };
        date_config_steps(&mut state.config.history[history_start..]);
        Ok(state)
    }

    fn start_state(&self, base: &Source) -> Result<StageState, BuildError> {
        match base {
            Source::Scratch => Ok(StageState {
                layers: Vec::new(),
                config: ImageConfig {
                    config: Some(ContainerConfig {
                        env: Some(vec![format!("PATH={}", rbuild_runtime::DEFAULT_PATH)]),
                        ..ContainerConfig::default()
                    }),
                    ..ImageConfig::default()
                },
                vars: StageVars::new(&[format!("PATH={}", rbuild_runtime::DEFAULT_PATH)]),
                key: base_key("scratch"),
                editor: ConfigEditor::default(),
                created: self.sde.clone().unwrap_or_else(|| self.engine.now.clone()),
                base: None,
            }),
            Source::Stage(i) => {
                let mut s = self
                    .done
                    .lock()
                    .ok()
                    .and_then(|d| d.get(i).cloned())
                    .ok_or_else(|| BuildError::Invalid(format!("stage {i} was not built")))?;
                let env = s
                    .config
                    .config
                    .as_ref()
                    .and_then(|c| c.env.clone())
                    .unwrap_or_default();
                s.vars = StageVars::new(&env);
                s.editor = ConfigEditor::default();
                Ok(s)
            }
            Source::Image(name) => {
                let (layers, config, id) = self.image(name)?;
                let base = BaseImage {
                    name: name.clone(),
                    id: id.clone(),
                    layers: layers.iter().map(|l| l.digest.clone()).collect(),
                };
                let mut config = config;
                let mut env = config
                    .config
                    .as_ref()
                    .and_then(|c| c.env.clone())
                    .unwrap_or_default();
                if !env.iter().any(|e| e.starts_with("PATH=")) {
                    // As BuildKit: an image without PATH gets the default one.
                    env.insert(0, format!("PATH={}", rbuild_runtime::DEFAULT_PATH));
                    config
                        .config
                        .get_or_insert_with(ContainerConfig::default)
                        .env = Some(env.clone());
                }
                let created = self
                    .sde
                    .clone()
                    .or_else(|| config.created.clone())
                    .unwrap_or_else(|| self.engine.now.clone());
                Ok(StageState {
                    layers,
                    config,
                    vars: StageVars::new(&env),
                    key: base_key(&id.to_string()),
                    editor: ConfigEditor::default(),
                    created,
                    base: Some(base),
                })
            }
        }
    }

    fn image(&self, name: &str) -> Result<(Vec<LayerInfo>, ImageConfig, ImageId), BuildError> {
        let rec = super::pull_base::resolve_or_pull(
            self.engine.store,
            self.view.get(),
            name,
            self.engine.pull,
        )?;
        let config = self.engine.store.image_config(&rec.id)?;
        Ok((rec.layers, config, rec.id))
    }

    /// The build context, scanned on first use (once, whichever stage asks first).
    fn context(&self) -> Result<Arc<ContextSnapshot>, BuildError> {
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

    fn expand(&self, state: &StageState, word: &str) -> Result<String, BuildError> {
        Ok(self.lex.process_word(word, &state.vars.expansion_env())?)
    }

    fn instruction(
        &self,
        stage_index: usize,
        display: &str,
        n: &mut usize,
        total: usize,
        state: &mut StageState,
        cmd: &Command,
    ) -> Result<(), BuildError> {
        let created = state.created.clone();
        match &cmd.instruction {
            Instruction::Arg { args } => {
                let mut parts = Vec::new();
                for def in args {
                    state
                        .vars
                        .declare_arg(def, &self.args, self.meta.values(), &self.lex)?;
                    if let Some((_, v)) = state
                        .vars
                        .visible_args()
                        .iter()
                        .find(|(k, _)| k == &def.name)
                    {
                        parts.push(format!("{}={v}", def.name));
                    } else {
                        parts.push(def.name.clone());
                    }
                }
                state.history(format!("ARG {}", parts.join(" ")), true, &created);
            }
            Instruction::Workdir { path } => {
                let change = ConfigChange::Workdir(self.expand(state, path)?);
                state.editor.apply(&mut state.config, change)?;
                let clean = state.workdir();
                *n += 1;
                let step = self
                    .engine
                    .progress
                    .start(&format!("[{display} {n}/{total}] WORKDIR {clean}"));
                self.workdir_step(state, &clean, &step)?;
            }
            Instruction::Run(r) => {
                *n += 1;
                let step = self
                    .engine
                    .progress
                    .start(&format!("[{display} {n}/{total}] {}", cmd.original.trim()));
                self.run_step(stage_index, state, r, &step)
                    .inspect_err(|e| {
                        self.engine.progress.error(&step, &e.to_string());
                    })?;
            }
            Instruction::Copy(c) | Instruction::Add(c) => {
                let add = matches!(cmd.instruction, Instruction::Add(_));
                *n += 1;
                let step = self
                    .engine
                    .progress
                    .start(&format!("[{display} {n}/{total}] {}", cmd.original.trim()));
                self.copy_step(stage_index, state, c, add, &step)
                    .inspect_err(|e| {
                        self.engine.progress.error(&step, &e.to_string());
                    })?;
            }
            _ => {
                let env = state.vars.expansion_env();
                let Some(change) = convert::config_change(cmd, &self.lex, &env)? else {
                    return Ok(());
                };
                if let ConfigChange::Env(pairs) = &change {
                    for (k, v) in pairs {
                        state.vars.set_env(k, v);
                    }
                }
                let history = state.editor.apply(&mut state.config, change)?;
                let history = convert::history_as_written(cmd).unwrap_or(history);
                state.history(history, true, &created);
            }
        }
        Ok(())
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
    fn apply(&self, state: &mut StageState, outcome: super::steps::Outcome, created_by: String) {
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
    ) -> Result<super::steps::Outcome, BuildError> {
        let store = self.engine.store;
        let (key, layers) = (state.key.clone(), state.layers.clone());
        self.engine.layer_step(step, &key, &layers, canonical, |_| {
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

    fn workdir_step(
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

    fn run_step(
        &self,
        stage_index: usize,
        state: &mut StageState,
        r: &instructions::Run,
        step: &super::progress::StepHandle,
    ) -> Result<(), BuildError> {
        let op = convert::exec_op(r, &self.lex, &state.vars.expansion_env())?;
        let needs_context = op
            .mounts
            .iter()
            .any(|m| m.kind == instructions::MountType::Bind && m.from.is_none());
        let context = if needs_context {
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
        )?;
        let args = config_rules::command_vec(state.config.config.as_ref(), op.command);
        let network_host = op.network_host.unwrap_or(self.options.network_host);
        let proxies = self.args.proxies();
        let key_env = state.vars.run_env(&[]);
        let mut env = state.vars.run_env(&proxies);
        env.extend(prepared.env.iter().cloned());
        let spec = RunSpec {
            args: args.clone(),
            env,
            cwd: state.workdir(),
            user: state.user(),
            network_host,
            mounts: prepared.mounts.clone(),
        };
        let visible = state.vars.visible_args();
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
        let lowers = self.stage_lowers(state)?;
        let store = self.engine.store;
        let (key, layers) = (state.key.clone(), state.layers.clone());
        let outcome = self
            .engine
            .layer_step(step, &key, &layers, canonical, |progress| {
                let tmp = store.temp_dir()?;
                let upper = tmp.path().join("upper");
                let work = tmp.path().join("work");
                let empty = tmp.path().join("empty");
                for d in [&upper, &work, &empty] {
                    std::fs::create_dir(d).map_err(io_err(d))?;
                }
                run::execute(&spec, &lowers, &upper, &work, &empty, progress, step)?;
                run::prune_copy_ups(&upper, &lowers);
                Ok(Produced {
                    _tmp: Some(tmp),
                    dir: Some(upper),
                })
            })?;
        drop(prepared);
        self.apply(state, outcome, created_by);
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

    fn copy_step(
        &self,
        stage_index: usize,
        state: &mut StageState,
        c: &Copy,
        add: bool,
        step: &super::progress::StepHandle,
    ) -> Result<(), BuildError> {
        let op = convert::copy_op(c, add, &self.lex, &state.vars.expansion_env())?;
        // Downloads happen before the cache lookup: their content is part of the key.
        let downloads = self.downloads(&op)?;
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
        op: &convert::CopyOp,
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
            let file = download::download(url, store.temp_dir()?, op.checksum.as_ref(), previous)?;
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

/// Gives each config-only history entry of a stage the time of the next layer step (or, at
/// the end, of the previous one), as BuildKit's history reads: the times come from the steps
/// that ran (or from their cache records), so a cached rebuild keeps them and the image ID.
fn date_config_steps(history: &mut [History]) {
    let layer_times: Vec<(usize, Option<String>)> = history
        .iter()
        .enumerate()
        .filter(|(_, h)| !h.empty_layer)
        .map(|(i, h)| (i, h.created.clone()))
        .collect();
    for (i, h) in history.iter_mut().enumerate() {
        if !h.empty_layer {
            continue;
        }
        let next = layer_times.iter().find(|(j, _)| *j > i);
        let prev = layer_times.iter().rev().find(|(j, _)| *j < i);
        if let Some((_, Some(t))) = next.or(prev) {
            h.created = Some(t.clone());
        }
    }
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
