//! `rbuild build`: build an image from a Dockerfile and a context directory.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;

use super::images::open_store;
use super::Globals;
use crate::build::progress::{Progress, ProgressMode};
use crate::build::{build, BuildOptions, DockerfileSource};
use crate::image::reference::Reference;
use crate::registry::cache::{export_cache, import_cache, CacheSpec};
use crate::registry::RegistryOptions;

#[derive(Debug, Args)]
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
    /// Suppress the build output and print the image ID on success
    #[arg(short, long)]
    pub quiet: bool,
    /// Write the image ID to the file
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Type of progress output: auto, tty, plain (tty prints plain lines for now)
    #[arg(long, default_value = "auto", value_name = "TYPE")]
    pub progress: String,
    /// Networking mode for RUN instructions: none (default) or host
    #[arg(long, default_value = "none", value_name = "MODE")]
    pub network: String,
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
    /// Build context directory
    #[arg(value_name = "CONTEXT")]
    pub context: String,
}

pub fn run(globals: &Globals, args: BuildArgs) -> anyhow::Result<i32> {
    if args.context == "-" || args.context.ends_with(".tar") || args.context.contains("://") {
        bail!(
            "build context {:?}: only a directory is supported as context yet",
            args.context
        );
    }
    let context = PathBuf::from(&args.context);
    if !context.is_dir() {
        bail!(
            "unable to prepare context: path {:?} not found or not a directory",
            args.context
        );
    }
    let dockerfile = match args.file.as_deref() {
        None => DockerfileSource::Default,
        Some("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the Dockerfile from stdin")?;
            DockerfileSource::Text {
                name: "Dockerfile".into(),
                text,
            }
        }
        Some(p) => DockerfileSource::Path(PathBuf::from(p)),
    };
    let mut options = BuildOptions::new(context, dockerfile);
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
    options.network_host = match args.network.as_str() {
        "host" => true,
        "none" | "default" => false,
        other => bail!("--network {other:?}: only \"none\" and \"host\" are supported"),
    };
    options.platform = args.platform.clone();
    if let Ok(s) = std::env::var("SOURCE_DATE_EPOCH") {
        if !s.is_empty() {
            options.source_date_epoch = Some(
                s.parse()
                    .with_context(|| format!("invalid SOURCE_DATE_EPOCH {s:?}"))?,
            );
        }
    }
    let mode = match (args.quiet, args.progress.as_str()) {
        (true, _) => ProgressMode::Quiet,
        (false, "auto" | "plain" | "tty") => {
            let _ = std::io::stderr().is_terminal();
            ProgressMode::Plain
        }
        (false, "quiet") => ProgressMode::Quiet,
        (false, other) => bail!("--progress {other:?}: use auto, tty or plain"),
    };
    let cache_to = args.cache_to.as_deref().map(CacheSpec::parse).transpose()?;
    let cache_from = args
        .cache_from
        .iter()
        .map(|s| CacheSpec::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let store = open_store(globals)?;
    let registry_options = RegistryOptions::default();
    for (spec, text) in cache_from.iter().zip(&args.cache_from) {
        // As BuildKit: a cache that cannot be imported only costs time.
        if let Err(e) = import_cache(&store, spec, &registry_options) {
            eprintln!("WARNING: importing cache from {text}: {e}");
        }
    }
    let id = build(&store, &options, Progress::new(mode)).context("failed to solve")?;
    if let (Some(spec), Some(text)) = (&cache_to, &args.cache_to) {
        export_cache(&store, spec, &id, &registry_options)
            .with_context(|| format!("exporting cache to {text}"))?;
    }
    if let Some(f) = &args.iidfile {
        std::fs::write(f, id.to_string()).with_context(|| format!("writing {}", f.display()))?;
    }
    if args.quiet {
        println!("{id}");
    }
    Ok(0)
}
