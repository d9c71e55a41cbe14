//! A stage of a build: its base resolved, its instructions (and its base's ONBUILD triggers)
//! turned into operations by the frontend (`convert`) in order: config changes applied through
//! `config_rules`, layer operations run by the solver (`solver`). Also the build's entry point.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::convert;
use super::plan::{self, Plan, Source};
use super::progress::Progress;
use super::pull_base::BaseImage;
use super::solver;
use super::steps::{base_key, Engine};
use super::{io_err, BuildError, BuildOptions, DockerfileSource};
use crate::context::ContextSnapshot;
use crate::dockerfile as df;
use crate::dockerfile::eval::{platform_args, BuildArgs, MetaArgs, Platform, StageVars};
use crate::dockerfile::instructions::{self, ArgDef, Command, Instruction, Stages};
use crate::dockerfile::shell::ShellLex;
use crate::image::config_rules::{ConfigChange, ConfigEditor};
use crate::image::digest::Digest;
use crate::image::layer::LayerInfo;
use crate::image::oci::{ContainerConfig, History, ImageConfig, RootFs};
use crate::store::{BuildView, ImageId, Store};

/// A built stage.
#[derive(Debug, Clone)]
pub(super) struct StageState {
    pub(super) layers: Vec<LayerInfo>,
    pub(super) config: ImageConfig,
    pub(super) vars: StageVars,
    pub(super) key: Digest,
    /// Applies the stage's config changes (it knows whether CMD was set in this stage).
    pub(super) editor: ConfigEditor,
    /// Time of the newest step (history entries of config-only steps use it).
    pub(super) created: String,
    /// The image the stage (or the stage it starts from) is based on; none for scratch.
    pub(super) base: Option<BaseImage>,
    /// `--no-cache-filter` names this stage: its steps ignore cache hits (not inherited by
    /// a stage built on it, which sets its own).
    pub(super) uncached: bool,
    /// Chroot isolation's copy of the root, kept between RUN steps (never shared by a
    /// clone).
    pub(super) chroot_root: super::chroot::KeptSlot,
}

impl StageState {
    pub(super) fn cc(&mut self) -> &mut ContainerConfig {
        self.config
            .config
            .get_or_insert_with(ContainerConfig::default)
    }

    pub(super) fn workdir(&self) -> String {
        self.config
            .config
            .as_ref()
            .and_then(|c| c.working_dir.clone())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".to_string())
    }

    pub(super) fn user(&self) -> String {
        self.config
            .config
            .as_ref()
            .and_then(|c| c.user.clone())
            .unwrap_or_default()
    }

    pub(super) fn history(&mut self, created_by: String, empty_layer: bool, created: &str) {
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
pub(super) struct Builder<'a> {
    pub(super) options: &'a BuildOptions,
    pub(super) engine: Engine<'a>,
    /// Images and tags as the build started (base images resolve here first); read by
    /// `run_stages`.
    pub(super) view: std::sync::OnceLock<BuildView>,
    pub(super) file: String,
    pub(super) lex: ShellLex,
    pub(super) args: BuildArgs,
    pub(super) meta: MetaArgs,
    pub(super) plan: Plan,
    pub(super) stages: &'a Stages,
    pub(super) done: Mutex<HashMap<usize, StageState>>,
    pub(super) context: Mutex<Option<Arc<ContextSnapshot>>>,
    pub(super) dockerfile_path: Option<PathBuf>,
    pub(super) sde: Option<String>,
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
    let overridden: Vec<&str> = options.contexts.keys().map(String::as_str).collect();
    let plan = plan::plan(
        &stages,
        &meta,
        &lex,
        options.target.as_deref(),
        &file,
        &overridden,
    )?;
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
            layer_options: crate::image::layer::LayerOptions {
                compression: options.compression.kind,
                level: options.compression.level,
                mtime: options.source_date_epoch.map(|s| s.max(0) as u64),
            },
            progress,
            now,
            records: std::sync::OnceLock::new(),
            cleanups: Mutex::new(Vec::new()),
            ran: Mutex::new(Vec::new()),
            isolation: (options.isolation, std::sync::OnceLock::new()),
            network_hold: std::sync::OnceLock::new(),
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
    if options.compression.force {
        state.layers =
            super::recompress::recompress_layers(store, &state.layers, &options.compression)
                .inspect_err(|e| progress.error(&step, &e.to_string()))?;
    }
    let id = store
        .commit_image_annotated(
            &config,
            &state.layers,
            &options.tags,
            &options.manifest_annotations,
        )
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
        state.uncached = self
            .options
            .no_cache_filtered(index, self.plan.names[index].as_deref());
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
        // The stage's root copy is removed while the build goes on.
        self.engine.dispose(std::mem::take(&mut state.chroot_root));
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
                uncached: false,
                chroot_root: Default::default(),
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
                    uncached: false,
                    chroot_root: Default::default(),
                })
            }
        }
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
                convert::exec_op(r, &self.lex, &state.vars, &self.args.proxies())
                    .and_then(|op| self.run_step(stage_index, state, op, &step))
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
                convert::copy_op(c, add, &self.lex, &state.vars.expansion_env())
                    .and_then(|op| self.copy_step(stage_index, state, op, &step))
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
