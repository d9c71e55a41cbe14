//! `rbuild build`: build an image from a Dockerfile and a context directory.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;

use super::common::open_store;
use super::{Globals, LogLevel};
use crate::archive::save::LayoutAnnotations;
use crate::build::annotations::Annotations;
use crate::build::export::{build_compression, export, Dest, Export, Output};
use crate::build::progress::{Progress, ProgressMode};
use crate::build::{build, BuildOptions, DockerfileSource};
use crate::context::Source;
use crate::image::reference::Reference;
use crate::registry::cache::{export_cache, import_cache, CacheSpec};

#[derive(Debug, Args)]
#[command(
    after_help = "The word `build` may be left out: `rbuild -t app:1 .` is this command. \
    A context directory named like a command is given as a path: `rbuild ./images`."
)]
pub struct BuildArgs {
    /// Name and optionally a tag (NAME[:TAG]); may be repeated
    #[arg(short, long = "tag", value_name = "NAME[:TAG]")]
    pub tag: Vec<String>,
    /// Name of the Dockerfile (default: CONTEXT/Dockerfile); "-" reads it from stdin
    #[arg(short, long = "file", value_name = "PATH")]
    pub file: Option<String>,
    /// Set a build-time variable (KEY=VALUE, or KEY to take it from the environment)
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    pub build_arg: Vec<String>,
    /// Build this stage and what it needs, not the last one
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    /// Do not use the cache when building the image
    #[arg(long)]
    pub no_cache: bool,
    /// Set metadata for the image (KEY=VALUE)
    #[arg(long, value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Add an OCI annotation: [TYPE:]KEY=VALUE, TYPE manifest (the default: the image
    /// manifest, as stored and pushed), or index / manifest-descriptor (index.json of
    /// -o type=oci|docker); may be repeated
    #[arg(long, value_name = "[TYPE:]KEY=VALUE")]
    pub annotation: Vec<String>,
    /// Suppress the build output and print the image ID on success
    #[arg(short, long)]
    pub quiet: bool,
    /// Write the image ID to the file
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Type of progress output: auto (tty on a terminal, else plain), tty, plain, quiet
    #[arg(long, default_value = "auto", value_name = "TYPE", value_parser = ["auto", "tty", "plain", "quiet"])]
    pub progress: String,
    /// Networking mode for RUN instructions: default (rbuild's bridge with NAT; loopback only
    /// when not root), none or host
    #[arg(long, default_value = "default", value_name = "MODE", value_parser = ["none", "default", "host"])]
    pub network: String,
    /// Add a custom host-to-IP mapping for RUN steps (NAME:IP; IP host-gateway: the bridge's
    /// address)
    #[arg(long = "add-host", value_name = "NAME:IP")]
    pub add_host: Vec<String>,
    /// Ulimit for RUN steps: NAME=SOFT[:HARD] (e.g. nofile=1024:2048; -1: unlimited)
    #[arg(long, value_name = "NAME=SOFT[:HARD]")]
    pub ulimit: Vec<String>,
    /// Size of RUN steps' /dev/shm (e.g. 128m; default 64m)
    #[arg(long = "shm-size", value_name = "SIZE")]
    pub shm_size: Option<String>,
    /// Secret for RUN --mount=type=secret: id=ID,src=PATH or id=ID,env=VAR
    #[arg(long, value_name = "id=ID,src=PATH")]
    pub secret: Vec<String>,
    /// Output (BuildKit's): type=image[,name=N][,push=true], type=registry,name=N,
    /// type=docker|oci|tar,dest=FILE|- (stdout), type=local|oci-dir,dest=DIR, or DIR; any of
    /// them with compression=gzip|zstd|uncompressed[,compression-level=N]
    /// [,force-compression=true] and annotation[-TYPE].KEY=VALUE (as --annotation)
    #[arg(short, long, value_name = "type=TYPE,dest=PATH")]
    pub output: Vec<String>,
    /// Target platform (only the host's platform is supported)
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Export the build cache: type=registry,ref=HOST/REPO:TAG[,mode=min|max] or
    /// type=local,dest=DIR[,mode=min|max]
    #[arg(long, value_name = "SPEC")]
    pub cache_to: Option<String>,
    /// Import a build cache before building: type=registry,ref=HOST/REPO:TAG or
    /// type=local,src=DIR (may be repeated)
    #[arg(long, value_name = "SPEC")]
    pub cache_from: Vec<String>,
    /// Accepted for docker compatibility; rbuild never leaves intermediate containers
    #[arg(long, hide = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub rm: Option<String>,
    /// Accepted for docker compatibility (see --rm)
    #[arg(long, hide = true)]
    pub force_rm: bool,
    /// Always pull base images from their registries, even when the store has them
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub pull: Option<String>,
    /// Push the image to its registry under each -t name after the build (as `rbuild push`)
    #[arg(long, requires = "tag")]
    pub push: bool,
    /// Write the image's digests and names as JSON (BuildKit's keys: containerimage.digest,
    /// containerimage.config.digest, image.name)
    #[arg(long, value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,
    /// How RUN steps are isolated: auto (the strongest this environment allows), namespaces
    /// (root), rootless (user namespace), chroot (no namespace or mount: for unprivileged CI
    /// containers; the container is the only boundary)
    #[arg(long, env = "RBUILD_ISOLATION", default_value = "auto", value_name = "MODE", value_parser = ["auto", "namespaces", "rootless", "chroot"])]
    pub isolation: String,
    /// Do not use the cache for the steps of this stage (name or index; may be repeated);
    /// their results are still cached
    #[arg(long, value_name = "STAGE")]
    pub no_cache_filter: Vec<String>,
    /// Accepted for BuildKit compatibility (false, true, mode=min|max, …); rbuild writes no
    /// provenance attestation
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "VALUE")]
    pub provenance: Option<String>,
    /// Accepted for BuildKit compatibility (false, true, …); rbuild writes no SBOM
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "VALUE")]
    pub sbom: Option<String>,
    /// ssh-agent socket for RUN --mount=type=ssh: default (the agent of $SSH_AUTH_SOCK), or
    /// ID=SOCKET[,SOCKET] (the first live socket is used); may be repeated
    #[arg(long, value_name = "default|ID=SOCKET")]
    pub ssh: Vec<String>,
    /// Named build context for FROM NAME / COPY --from=NAME: NAME=DIR,
    /// NAME=docker-image://REF or NAME=oci-layout://PATH[:TAG|@DIGEST] (may be repeated)
    #[arg(
        long = "build-context",
        value_name = "NAME=DIR|docker-image://REF|oci-layout://PATH"
    )]
    pub build_context: Vec<String>,
    /// Build context: a directory, a tar archive (plain or compressed), or "-" for a tar or a
    /// Dockerfile on stdin
    #[arg(value_name = "CONTEXT")]
    pub context: String,
}

pub fn run(globals: &Globals, args: BuildArgs) -> anyhow::Result<i32> {
    let pull = match args.pull.as_deref() {
        None | Some("false" | "never" | "missing") => false,
        Some("true" | "always") => true,
        Some(other) => bail!("--pull={other}: expected true or false"),
    };
    for (flag, value) in [("provenance", &args.provenance), ("sbom", &args.sbom)] {
        if value.as_deref().is_some_and(|v| v != "false" && v != "0") {
            globals.info(format_args!(
                "--{flag}={}: rbuild does not produce attestations; none is attached",
                value.as_deref().unwrap_or_default()
            ));
        }
    }
    let store = open_store(globals)?;
    let context = Source::resolve(&args.context, &store, &mut std::io::stdin().lock())?;
    let dockerfile = match (args.file.as_deref(), context.dockerfile.clone()) {
        (Some("-"), Some(_)) => bail!("-f - and a context from stdin cannot be used together"),
        (None, Some(text)) => DockerfileSource::Text {
            name: "Dockerfile".into(),
            text,
        },
        (None, None) => DockerfileSource::Default,
        (Some("-"), None) => {
            let mut text = Vec::new();
            std::io::stdin()
                .read_to_end(&mut text)
                .context("reading the Dockerfile from stdin")?;
            DockerfileSource::Text {
                name: "Dockerfile".into(),
                text,
            }
        }
        (Some(p), _) => DockerfileSource::Path(context.dockerfile_path(p.as_ref())),
    };
    let mut options = BuildOptions::new(context.dir.clone(), dockerfile);
    for t in &args.tag {
        options
            .tags
            .push(Reference::parse(t).with_context(|| format!("invalid tag {t:?}"))?);
    }
    let mut build_args = BTreeMap::new();
    for a in &args.build_arg {
        match a.split_once('=') {
            Some((k, v)) => {
                build_args.insert(k.to_string(), v.to_string());
            }
            None => {
                if let Ok(v) = std::env::var(a) {
                    build_args.insert(a.clone(), v);
                }
            }
        }
    }
    options.build_args = build_args;
    for l in &args.label {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        options.labels.insert(k.to_string(), v.to_string());
    }
    options.target = args.target.clone();
    options.no_cache = args.no_cache;
    options.no_cache_filter = args.no_cache_filter.clone();
    options.pull = pull;
    options.registry = globals.registry_options();
    options.network_host = match args.network.as_str() {
        "host" => true,
        "none" | "default" => false,
        other => bail!("--network {other:?}: use default, none or host"),
    };
    options.add_hosts = args.add_host.clone();
    for value in &args.ulimit {
        options
            .ulimits
            .push(crate::container::limits::parse_ulimit(value)?);
    }
    if let Some(value) = &args.shm_size {
        let bytes = crate::container::limits::parse_bytes(value)
            .filter(|b| *b > 0)
            .ok_or_else(|| {
                anyhow::anyhow!("invalid --shm-size {value:?}: expected a size such as 64m")
            })?;
        options.shm_size = Some(bytes);
    }
    options.network_default = args.network == "default";
    options.platform = args.platform.clone();
    options.isolation = args.isolation.parse()?;
    // Secrets from the environment go through temp files that live until the build ends.
    let mut secret_files = Vec::new();
    for spec in &args.secret {
        let mut id = None;
        let mut src = None;
        let mut env = None;
        for part in spec.split(',') {
            match part.split_once('=') {
                Some(("id", v)) => id = Some(v.to_string()),
                Some(("src" | "source", v)) => src = Some(PathBuf::from(v)),
                Some(("env", v)) => env = Some(v.to_string()),
                Some(("type", "file" | "env")) => {}
                _ => bail!("--secret {spec:?}: expected id=ID,src=PATH or id=ID,env=VAR"),
            }
        }
        let Some(id) = id else {
            bail!("--secret {spec:?}: missing id=");
        };
        let path = match (src, env) {
            (Some(p), _) => {
                if !p.is_file() {
                    bail!("--secret {spec:?}: {} is not a file", p.display());
                }
                p
            }
            (None, var) => {
                let var = var.unwrap_or_else(|| id.clone());
                let value = std::env::var(&var).with_context(|| {
                    format!("--secret {spec:?}: environment variable {var} is not set")
                })?;
                let mut f = tempfile::NamedTempFile::new().context("creating a secret file")?;
                std::io::Write::write_all(&mut f, value.as_bytes())?;
                let p = f.path().to_path_buf();
                secret_files.push(f);
                p
            }
        };
        options.secrets.insert(id, path);
    }
    options.contexts = crate::build::named_context::resolve(&store, &args.build_context)?;
    for spec in &args.ssh {
        let (id, socket) = ssh_agent(spec)?;
        options.ssh.insert(id, socket);
    }
    if let Ok(s) = std::env::var("SOURCE_DATE_EPOCH") {
        if !s.is_empty() {
            options.source_date_epoch = Some(
                s.parse()
                    .with_context(|| format!("invalid SOURCE_DATE_EPOCH {s:?}"))?,
            );
        }
    }
    let mode = match (args.quiet, args.progress.as_str()) {
        (true, _) | (false, "quiet") => ProgressMode::Quiet,
        (false, "plain") => ProgressMode::Plain,
        (false, "tty") => ProgressMode::Tty,
        (false, "auto") if crate::terminal::stderr_is_live() => ProgressMode::Tty,
        (false, "auto") => ProgressMode::Plain,
        (false, other) => bail!("--progress {other:?}: use auto, tty or plain"),
    };
    let cache_to = args.cache_to.as_deref().map(CacheSpec::parse).transpose()?;
    let cache_from = args
        .cache_from
        .iter()
        .map(|s| CacheSpec::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let outputs = args
        .output
        .iter()
        .map(|o| Output::parse(o))
        .collect::<Result<Vec<_>, _>>()?;
    options.compression = build_compression(&outputs)?;
    let mut annotations = Annotations::default();
    for a in &args.annotation {
        annotations.add(a)?;
    }
    for o in &outputs {
        annotations.merge(&o.annotations);
    }
    let writes_layout = outputs.iter().any(|o| {
        matches!(
            o.export,
            Export::OciArchive(_) | Export::OciDir(_) | Export::DockerArchive(_)
        )
    });
    if annotations.layout != LayoutAnnotations::default() && !writes_layout {
        globals.warn(format_args!(
            "index and manifest-descriptor annotations go into the index.json of -o \
             type=oci|docker outputs; this build writes none"
        ));
    }
    options.manifest_annotations = annotations.manifest.clone();
    let to_stdout = outputs.iter().filter(|o| {
        matches!(
            &o.export,
            Export::DockerArchive(Dest::Stdout)
                | Export::OciArchive(Dest::Stdout)
                | Export::Tar(Dest::Stdout)
        )
    });
    if to_stdout.count() > usize::from(!args.quiet) {
        bail!("only one output can be written to stdout (-o …,dest=-), and not with -q (which prints the image ID there)");
    }
    // `type=image|registry,name=…`: more names for the image, pushed when asked.
    let mut names = options.tags.clone();
    let mut push = if args.push {
        options.tags.clone()
    } else {
        Vec::new()
    };
    for o in &outputs {
        if let Export::Image {
            names: more,
            push: p,
        } = &o.export
        {
            for n in more {
                let r = Reference::parse(n).with_context(|| format!("invalid name {n:?} in -o"))?;
                if *p && !push.contains(&r) {
                    push.push(r.clone());
                }
                if !names.contains(&r) {
                    names.push(r);
                }
            }
        }
    }
    let registry_options = globals.registry_options();
    for (spec, text) in cache_from.iter().zip(&args.cache_from) {
        // As BuildKit: a cache that cannot be imported only costs time.
        if let Err(e) = import_cache(&store, spec, &registry_options) {
            globals.warn(format_args!("importing cache from {text}: {e}"));
        }
    }
    let id = build(
        &store,
        &options,
        Progress::new(mode).with_details(globals.log_level >= LogLevel::Info),
    )
    .context("failed to solve")?;
    drop(secret_files);
    for n in names.iter().filter(|n| !options.tags.contains(n)) {
        store
            .tag(&id.to_string(), n)
            .with_context(|| format!("naming the image {}", n.familiar()))?;
    }
    let saved_names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    for (o, text) in outputs.iter().zip(&args.output) {
        export(&store, &id, &saved_names, &o.export, &annotations.layout)
            .with_context(|| format!("exporting to {text}"))?;
    }
    if let (Some(spec), Some(text)) = (&cache_to, &args.cache_to) {
        export_cache(&store, spec, &id, &registry_options)
            .with_context(|| format!("exporting cache to {text}"))?;
    }
    super::build_publish::publish(
        globals,
        &store,
        &id,
        &names,
        &push,
        args.metadata_file.as_deref(),
        args.quiet,
    )?;
    if let Some(f) = &args.iidfile {
        std::fs::write(f, id.to_string()).with_context(|| format!("writing {}", f.display()))?;
    }
    if args.quiet {
        println!("{id}");
    }
    Ok(0)
}

/// Resolves one `--ssh` value (BuildKit's syntax) to (id, agent socket): `default` or `ID`
/// alone is `$SSH_AUTH_SOCK`; `ID=SOCKET,SOCKET…` the first socket an agent answers on.
/// BuildKit also takes private key files (it runs an agent for them); rbuild wants a socket.
fn ssh_agent(spec: &str) -> anyhow::Result<(String, PathBuf)> {
    let (id, paths) = match spec.split_once('=') {
        Some((id, paths)) => (id, paths.split(',').map(PathBuf::from).collect()),
        None => {
            let sock = std::env::var_os("SSH_AUTH_SOCK").filter(|s| !s.is_empty());
            let Some(sock) = sock else {
                bail!("--ssh {spec}: SSH_AUTH_SOCK is not set (start ssh-agent, or give {spec}=SOCKET)");
            };
            (spec, vec![PathBuf::from(sock)])
        }
    };
    if id.is_empty() {
        bail!("--ssh {spec:?}: missing the id (default or a name)");
    }
    for p in &paths {
        use std::os::unix::fs::FileTypeExt;
        let is_socket = std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket());
        if is_socket && std::os::unix::net::UnixStream::connect(p).is_ok() {
            return Ok((id.to_string(), p.clone()));
        }
    }
    bail!(
        "--ssh {spec}: no ssh-agent answers on {} (rbuild takes agent sockets, not key files)",
        paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}
