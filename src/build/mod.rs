//! `rbuild build`: Dockerfile + context → image in the local store.
//!
//! The pipeline follows BuildKit's split (frontend → operations → solver):
//!
//! 1. [`plan`]: the typed Dockerfile (`crate::dockerfile::instructions`) → the stages the
//!    target needs, with their bases resolved (an unused stage is never built).
//! 2. [`convert`], the Dockerfile frontend: an instruction → a typed, expanded operation
//!    (words expanded by the shell lexer with the stage's ARG/ENV scope from
//!    `crate::dockerfile::eval`): a [`crate::image::config_rules::ConfigChange`] for ENV, LABEL,
//!    CMD, EXPOSE, …, a `CopyOp` for COPY/ADD (heredoc bodies included), an `ExecOp` for RUN.
//!    It also reads `import -c` changes ([`convert::config_changes`]).
//! 3. `stage`: starts a stage from its base and walks its instructions (its base's ONBUILD
//!    triggers first, parsed once when the stage starts) through the frontend; config changes
//!    go through [`crate::image::config_rules`] (the one owner of those rules).
//! 4. `solver`: schedules the stages (each as soon as the stages it needs are done,
//!    independent ones in parallel threads) and runs the layer operations (exec, copy/add,
//!    mkdir for WORKDIR): each gets its canonical step (what its cache key hashes: unchanged,
//!    so caches stay valid) and history text, and runs as a `steps` layer step. It imports
//!    nothing from `dockerfile`.
//! 5. `steps`: a layer step is a cache hit (the recorded layer is reused, nothing runs) or
//!    runs: RUN in `rbuild_runtime` on an overlay of the parent's snapshots plus a fresh upper
//!    dir (the upper dir becomes the layer and is adopted as the new snapshot), COPY/ADD into a
//!    staging dir written with the layer writer. The target's config and layers are
//!    committed to the store and tagged, and optionally exported ([`export`]).
//!
//! Other parts: [`layered`] reads the merged view of snapshot dirs without mounting them
//! (`COPY --from`, `--chown` lookups, destination checks); `mounts` turns `RUN --mount` into
//! runtime mounts; [`progress`] prints BuildKit-like plain lines. (Contexts that are not a
//! directory are prepared by `crate::context::source`.)
//!
//! Cache keys are `sha256(parent key, canonical step)`: COPY/ADD include the context selection
//! digest (paths, contents, modes, owners, not mtimes), RUN its command, shell, env, visible
//! args, user, workdir and network. Config-only instructions do not change the key (as in
//! BuildKit), so a LABEL edit does not re-run later RUNs.
//!
//! ```no_run
//! use rbuild::build::{build, BuildOptions, DockerfileSource, progress::{Progress, ProgressMode}};
//! let store = rbuild::store::Store::open("/var/lib/rbuild".as_ref()).unwrap();
//! let options = BuildOptions::new("./app".into(), DockerfileSource::Default);
//! let id = build(&store, &options, Progress::new(ProgressMode::Plain)).unwrap();
//! println!("{id}");
//! ```

pub mod annotations;
mod chroot;
pub mod convert;
mod copy;
pub mod download;
pub mod export;
pub mod isolation;
pub mod layered;
mod mounts;
pub mod named_context;
pub mod plan;
pub mod progress;
mod pull_base;
pub mod recompress;
mod run;
mod solver;
mod stage;
mod steps;

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::context::ContextError;
use crate::dockerfile::eval::EvalError;
use crate::dockerfile::shell::ExpandError;
use crate::dockerfile::ParseError;
use crate::image::config_rules::ConfigError;
use crate::image::layer::LayerError;
use crate::image::reference::Reference;
use crate::registry::RegistryOptions;
use crate::store::StoreError;

pub use isolation::Isolation;
pub(crate) use mounts::parse_size;
pub use recompress::LayerCompression;
pub use stage::build;

/// Where the Dockerfile comes from.
#[derive(Debug, Clone)]
pub enum DockerfileSource {
    /// `<context>/Dockerfile`.
    Default,
    /// A file (`-f PATH`).
    Path(PathBuf),
    /// Bytes read elsewhere (`-f -`), with the name used in messages. They are decoded as
    /// a file's are (see [`crate::dockerfile::decode`]).
    Text { name: String, text: Vec<u8> },
}

/// Everything a build needs, resolved from the command line.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The context directory.
    pub context: PathBuf,
    pub dockerfile: DockerfileSource,
    /// Tags for the result.
    pub tags: Vec<Reference>,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// `--target`.
    pub target: Option<String>,
    /// `--no-cache`: ignore cache hits (new results are still recorded).
    pub no_cache: bool,
    /// `--label` values, set on the final image.
    pub labels: BTreeMap<String, String>,
    /// `--network host`: RUN shares the host's network (default: none).
    pub network_host: bool,
    /// `--platform` (only the host platform is supported).
    pub platform: Option<String>,
    /// `SOURCE_DATE_EPOCH`: fixed layer mtimes and `created` times.
    pub source_date_epoch: Option<i64>,
    /// `--secret id=ID,src=PATH`: secret id → file (for `RUN --mount=type=secret`).
    pub secrets: BTreeMap<String, PathBuf>,
    /// `--pull`: pull every base image from its registry, even when the store has it.
    pub pull: bool,
    /// How base images are pulled (TLS, credentials, where retries are reported).
    pub registry: RegistryOptions,
    /// `--isolation` of RUN steps (see [`isolation`]).
    pub isolation: Isolation,
    /// `--no-cache-filter`: stages (names or indexes) whose steps ignore cache hits.
    pub no_cache_filter: Vec<String>,
    /// RUN steps without `--network` join the default network (a bridge with NAT, as
    /// BuildKit's default; see [`crate::network`]); `false`: loopback only.
    pub network_default: bool,
    /// `--add-host NAME:IP` entries for RUN steps' `/etc/hosts` (`host-gateway`: the bridge's
    /// address); not part of the cache key.
    pub add_hosts: Vec<String>,
    /// `-o …,compression=…`: how the layers this build writes are compressed, and whether
    /// the layers it reuses (base image, cache) are recompressed to match.
    pub compression: LayerCompression,
    /// `--ssh ID=SOCKET`: ssh-agent sockets for `RUN --mount=type=ssh` (see `mounts`).
    pub ssh: BTreeMap<String, PathBuf>,
    /// `--build-context NAME=…`: NAME → the image reference or ID used for `FROM NAME` and
    /// `COPY --from=NAME` (see [`named_context`]).
    pub contexts: BTreeMap<String, String>,
    /// `--ulimit`: resource limits of RUN steps replacing the runtime's defaults of the same
    /// resource; not part of the cache key (as BuildKit).
    pub ulimits: Vec<rbuild_runtime::Rlimit>,
    /// `--shm-size`: the size of RUN steps' `/dev/shm` (`None`: the runtime's 64 MiB); not
    /// part of the cache key (as BuildKit).
    pub shm_size: Option<u64>,
    /// `--annotation manifest:…`: annotations of the image manifest (see [`annotations`]);
    /// they change the manifest digest, not the image ID or any cache key.
    pub manifest_annotations: BTreeMap<String, String>,
}

impl BuildOptions {
    /// Options with defaults for `context` and `dockerfile`.
    pub fn new(context: PathBuf, dockerfile: DockerfileSource) -> BuildOptions {
        BuildOptions {
            context,
            dockerfile,
            tags: Vec::new(),
            build_args: BTreeMap::new(),
            target: None,
            no_cache: false,
            labels: BTreeMap::new(),
            network_host: false,
            platform: None,
            source_date_epoch: None,
            secrets: BTreeMap::new(),
            pull: false,
            registry: RegistryOptions::default(),
            isolation: Isolation::Auto,
            no_cache_filter: Vec::new(),
            network_default: false,
            add_hosts: Vec::new(),
            compression: LayerCompression::default(),
            ssh: BTreeMap::new(),
            contexts: BTreeMap::new(),
            ulimits: Vec::new(),
            shm_size: None,
            manifest_annotations: BTreeMap::new(),
        }
    }

    /// Whether `--no-cache-filter` names stage `index` (called `name`, if named): by name
    /// (case-insensitive, as stage names are) or by index, as BuildKit matches them.
    pub(crate) fn no_cache_filtered(&self, index: usize, name: Option<&str>) -> bool {
        self.no_cache_filter
            .iter()
            .any(|f| name.is_some_and(|n| n.eq_ignore_ascii_case(f)) || f.parse() == Ok(index))
    }
}

/// What can go wrong in a build.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Network(#[from] crate::network::NetworkError),
    /// Shown whole (file, line, column, the line and a caret); no separate cause.
    #[error("{0}")]
    Parse(ParseError),
    #[error(transparent)]
    Eval(#[from] EvalError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Expand(#[from] ExpandError),
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Runtime(#[from] rbuild_runtime::RuntimeError),
    #[error(transparent)]
    User(#[from] rbuild_runtime::UserError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("target stage {target:?} could not be found; stages: {}", if stages.is_empty() { "(none named)".to_string() } else { stages.join(", ") })]
    UnknownTarget { target: String, stages: Vec<String> },
    #[error("{0}: image not found in the local store, and it is not an image reference that could be pulled")]
    NoSuchBase(String),
    /// A blob of the stage's base image went missing (the image was removed meanwhile).
    #[error("base image {name} ({id}) was removed from the store during the build: layer {layer}/{layers} blob {digest} is missing")]
    BaseRemoved {
        name: String,
        id: crate::store::ImageId,
        layer: usize,
        layers: usize,
        digest: crate::image::digest::Digest,
    },
    #[error("{name}: image not found in the local store, and pulling it failed")]
    Pull {
        name: String,
        #[source]
        source: Box<crate::registry::RegistryError>,
    },
    #[error(
        "process {command:?} did not complete successfully: exit code: {code}{}",
        tail_text(tail)
    )]
    RunFailed {
        command: String,
        code: i32,
        tail: Vec<String>,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{0} is not supported yet")]
    Unsupported(String),
    #[error(transparent)]
    Download(#[from] download::DownloadError),
    #[error("{file}:{line}: {instruction}")]
    At {
        file: String,
        line: usize,
        instruction: String,
        #[source]
        source: Box<BuildError>,
    },
}

impl From<ParseError> for BuildError {
    fn from(e: ParseError) -> BuildError {
        BuildError::Parse(e)
    }
}

fn tail_text(tail: &[String]) -> String {
    if tail.is_empty() {
        return String::new();
    }
    let mut s = String::from("\noutput (last lines):");
    for l in tail {
        s.push_str("\n  ");
        s.push_str(l);
    }
    s
}

impl BuildError {
    /// Locates `err` at `file:line` in `instruction` (a long one cut, see
    /// [`progress::echo`]).
    pub fn at(file: &str, line: usize, instruction: &str, err: BuildError) -> BuildError {
        if matches!(err, BuildError::At { .. }) {
            return err;
        }
        BuildError::At {
            file: file.to_string(),
            line,
            instruction: progress::echo(instruction).into_owned(),
            source: Box::new(err),
        }
    }
}

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> BuildError {
    let path = path.into();
    move |source| BuildError::Io { path, source }
}
