//! `rbuild volume create|ls|inspect|rm|prune`, the volume flags of `run` (`--mount`,
//! `--volumes-from`) and `rm -v`'s volume half.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::bail;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::common::{confirm_removal, human_size, open_store, ListFormat};
use super::Globals;
use crate::container::{self, volumes, RunOptions};
use crate::store::{ContainerRecord, Store, StoreError, VolumeRecord};

/// The volume flags of `run`.
#[derive(Debug, Args)]
pub struct RunVolumeArgs {
    /// Attach a filesystem mount to the container
    /// (type=volume|bind|tmpfs,source=…,target=…,readonly,…)
    #[arg(long = "mount", value_name = "MOUNT")]
    pub mount: Vec<String>,
    /// Mount volumes from the specified container (CONTAINER[:ro|rw])
    #[arg(long = "volumes-from", value_name = "CONTAINER")]
    pub volumes_from: Vec<String>,
}

impl RunVolumeArgs {
    /// Adds the flags to `options` (each checked now, before anything is made).
    pub fn apply(&self, options: &mut RunOptions) -> anyhow::Result<()> {
        for m in &self.mount {
            options.add_mount(container::parse_mount(m)?);
        }
        for v in &self.volumes_from {
            volumes::parse_volumes_from(v)?;
        }
        options.volumes_from.clone_from(&self.volumes_from);
        Ok(())
    }
}

/// `rm -v`: removes the anonymous volumes of `record` (just removed), warning on failures.
pub(super) fn remove_anonymous(globals: &Globals, store: &Store, record: &ContainerRecord) {
    for w in volumes::remove_anonymous_volumes(store, &record.anonymous_volumes) {
        globals.warn(w);
    }
}

/// `rbuild volume …`
#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume
    Create(CreateArgs),
    /// List volumes
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes
    Inspect(InspectArgs),
    /// Remove one or more volumes
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Remove unused anonymous volumes (all unused ones with --all)
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Specify volume driver name (only "local")
    #[arg(short, long, default_value = "local")]
    pub driver: String,
    /// Set metadata for a volume (KEY=VALUE)
    #[arg(long = "label", value_name = "KEY[=VALUE]")]
    pub label: Vec<String>,
    /// Set driver specific options (none is supported)
    #[arg(short, long = "opt", value_name = "KEY=VALUE")]
    pub opt: Vec<String>,
    /// Volume name (default: 64 random hex digits)
    #[arg(value_name = "VOLUME")]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only display volume names
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter output: dangling=true|false, name=…, label=KEY[=VALUE], driver=local
    #[arg(short, long, value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Format output: "json", or a template like '{{.Name}}' ("table ..." adds a header)
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format the output using a template ('{{.Mountpoint}}')
    #[arg(short, long)]
    pub format: Option<String>,
    /// Volumes to inspect
    #[arg(required = true, value_name = "VOLUME")]
    pub volumes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Do not fail on volumes that do not exist
    #[arg(short, long)]
    pub force: bool,
    /// Volumes to remove
    #[arg(required = true, value_name = "VOLUME")]
    pub volumes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Provide filter values (label=KEY[=VALUE], label!=KEY[=VALUE])
    #[arg(long, value_name = "FILTER")]
    pub filter: Vec<String>,
}

pub fn run(globals: &Globals, cmd: VolumeCommand) -> anyhow::Result<i32> {
    match cmd {
        VolumeCommand::Create(args) => create(globals, args),
        VolumeCommand::Ls(args) => ls(globals, args),
        VolumeCommand::Inspect(args) => inspect(globals, args),
        VolumeCommand::Rm(args) => rm(globals, args),
        VolumeCommand::Prune(args) => prune(globals, args),
    }
}

fn key_values(items: &[String]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l.clone(), String::new()),
        })
        .collect()
}

fn create(globals: &Globals, args: CreateArgs) -> anyhow::Result<i32> {
    if args.driver != "local" {
        bail!(
            "volume driver {:?} is not supported (only \"local\")",
            args.driver
        );
    }
    let store = open_store(globals)?;
    let (volume, _) = volumes::create_volume(
        &store,
        args.name.as_deref(),
        &key_values(&args.label),
        &key_values(&args.opt),
    )?;
    println!("{}", volume.name);
    Ok(0)
}

/// A `label=KEY[=VALUE]` filter: whether `labels` match it.
fn label_matches(labels: &BTreeMap<String, String>, filter: &str) -> bool {
    match filter.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
        None => labels.contains_key(filter),
    }
}

fn ls(globals: &Globals, args: LsArgs) -> anyhow::Result<i32> {
    let format = ListFormat::parse(args.format.as_deref(), "{{.Driver}}\t{{.Name}}")?;
    let store = open_store(globals)?;
    let users = store.volume_users()?;
    let mut selected = store.list_volumes()?;
    for f in &args.filter {
        let (key, value) = f
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("bad format of filter (expected name=value)"))?;
        let keep: Box<dyn Fn(&VolumeRecord) -> bool> = match key {
            "dangling" => {
                let dangling = match value {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => bail!("invalid filter 'dangling={value}'"),
                };
                let users = &users;
                Box::new(move |v| users.get(&v.name).is_none_or(|u| u.is_empty()) == dangling)
            }
            "name" => Box::new(move |v| v.name.contains(value)),
            "label" => Box::new(move |v| label_matches(&v.labels, value)),
            "driver" => Box::new(move |v| v.driver == value),
            _ => bail!("invalid filter '{key}'"),
        };
        selected.retain(|v| keep(v));
    }
    selected.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = std::io::stdout().lock();
    if args.quiet {
        for v in &selected {
            writeln!(out, "{}", v.name)?;
        }
        return Ok(0);
    }
    let rows: Vec<_> = selected
        .iter()
        .map(|v| {
            let labels = v
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            [
                ("Driver", v.driver.clone()),
                ("Name", v.name.clone()),
                (
                    "Mountpoint",
                    store.volume_data(&v.name).display().to_string(),
                ),
                ("Labels", labels),
                ("Scope", "local".to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), Value::String(v)))
            .collect()
        })
        .collect();
    format.print(&mut out, &rows, "VolumeRow", &LS_HEADERS)?;
    Ok(0)
}

/// The column titles of `volume ls` tables, docker's spellings.
const LS_HEADERS: [(&str, &str); 5] = [
    ("Driver", "DRIVER"),
    ("Name", "VOLUME NAME"),
    ("Mountpoint", "MOUNTPOINT"),
    ("Labels", "LABELS"),
    ("Scope", "SCOPE"),
];

/// Docker's `volume inspect` object.
fn inspect_value(store: &Store, v: &VolumeRecord) -> Value {
    let map_or_null = |m: &BTreeMap<String, String>| {
        if m.is_empty() {
            Value::Null
        } else {
            json!(m)
        }
    };
    json!({
        "CreatedAt": v.created,
        "Driver": v.driver,
        "Labels": map_or_null(&v.labels),
        "Mountpoint": store.volume_data(&v.name),
        "Name": v.name,
        "Options": map_or_null(&v.options),
        "Scope": "local",
    })
}

fn inspect(globals: &Globals, args: InspectArgs) -> anyhow::Result<i32> {
    let template = super::inspect::inspect_template(args.format.as_deref())?;
    let store = open_store(globals)?;
    let mut values = Vec::new();
    let mut status = 0;
    for name in &args.volumes {
        match store.volume(name) {
            Ok(v) => values.push(inspect_value(&store, &v)),
            Err(e) => {
                super::report::item_error(&e);
                status = 1;
            }
        }
    }
    let values: Vec<_> = values.into_iter().map(|v| (v, "Volume")).collect();
    super::inspect::print_values(template.as_ref(), &values)?;
    Ok(status)
}

fn rm(globals: &Globals, args: RmArgs) -> anyhow::Result<i32> {
    let store = open_store(globals)?;
    let mut status = 0;
    for name in &args.volumes {
        match store.remove_volume(name) {
            Ok(_) => println!("{name}"),
            Err(StoreError::NoSuchVolume(_)) if args.force => {}
            Err(e) => {
                super::report::item_error(&e);
                status = 1;
            }
        }
    }
    Ok(status)
}

fn prune(globals: &Globals, args: PruneArgs) -> anyhow::Result<i32> {
    let mut labels = Vec::new();
    for f in &args.filter {
        match f.split_once('=') {
            Some(("label", v)) => labels.push((v.to_string(), true)),
            Some(("label!", v)) => labels.push((v.to_string(), false)),
            _ => bail!("invalid filter '{f}' (volume prune takes label=… and label!=…)"),
        }
    }
    let what = if args.all {
        "all local volumes not used by at least one container"
    } else {
        "anonymous local volumes not used by at least one container"
    };
    if !args.force && !confirm_removal(what) {
        return Ok(0);
    }
    let store = open_store(globals)?;
    let removed = store.prune_volumes(|v| {
        (args.all || v.is_anonymous())
            && labels
                .iter()
                .all(|(f, want)| label_matches(&v.labels, f) == *want)
    })?;
    let mut out = std::io::stdout().lock();
    if !removed.is_empty() {
        writeln!(out, "Deleted Volumes:")?;
        for (name, _) in &removed {
            writeln!(out, "{name}")?;
        }
        writeln!(out)?;
    }
    let freed: u64 = removed.iter().map(|(_, n)| n).sum();
    writeln!(out, "Total reclaimed space: {}", human_size(freed))?;
    Ok(0)
}
