//! `rbuild run`, `rbuild ps` and `rbuild rm`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::Args;
use rbuild_runtime::NetworkMode;

use super::common::{human_duration, human_size, open_store, ListFormat};
use super::Globals;
use crate::container::security::SecurityOpt;
use crate::container::{self, env, RunOptions};

/// Docker's status when rbuild itself fails before the container's process starts.
pub(super) const EXIT_RUN_FAILED: i32 = 125;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Automatically remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Keep STDIN open (attach it to the container)
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Set environment variables (KEY=VALUE, or KEY to take the host's value)
    #[arg(short, long = "env", value_name = "KEY[=VALUE]")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the container
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long)]
    pub user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image ('' clears it)
    #[arg(long, value_name = "PROGRAM")]
    pub entrypoint: Option<String>,
    /// Network: bridge (default: rbuild's bridge with NAT; loopback only when not root),
    /// none (loopback only), host, a user-defined network's NAME, or container:NAME
    #[arg(long, value_name = "MODE")]
    pub network: Option<String>,
    /// Container host name
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    pub init: bool,
    /// Bind mount a host directory or a volume (HOST-DIR|NAME:CONTAINER-DIR[:ro], or
    /// CONTAINER-DIR for an anonymous volume)
    #[arg(short, long = "volume", value_name = "[SOURCE:]CONTAINER[:ro]")]
    pub volume: Vec<String>,
    /// Mount the container's root filesystem as read only
    #[arg(long)]
    pub read_only: bool,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Security options: seccomp=PROFILE.json (docker's format), seccomp=unconfined,
    /// no-new-privileges[=true|false] (on by default)
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// Run the container in the background (watched by a monitor) and print its ID
    #[arg(short, long)]
    pub detach: bool,
    /// Set metadata on the container (KEY=VALUE; KEY alone sets an empty value)
    #[arg(short, long = "label", value_name = "KEY[=VALUE]")]
    pub label: Vec<String>,
    /// Write the container ID to the file (which must not exist)
    #[arg(long, value_name = "FILE")]
    pub cidfile: Option<PathBuf>,
    #[command(flatten)]
    pub lifecycle: super::containers::LifecycleRunArgs,
    #[command(flatten)]
    pub limits: super::limits::LimitArgs,
    #[command(flatten)]
    pub net: super::network::RunNetArgs,
    #[command(flatten)]
    pub ports: super::port::PortArgs,
    /// Image to run (name, tag or ID)
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// Command and arguments (replace the image's CMD)
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
    #[command(flatten)]
    pub volumes: super::volume::RunVolumeArgs,
    #[command(flatten)]
    pub privileges: super::privileges::PrivilegeArgs,
    #[command(flatten)]
    pub attach: super::attach_flags::AttachRunArgs,
}

fn host_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

pub(super) fn options(args: RunArgs) -> anyhow::Result<RunOptions> {
    let (network, attach_network) = match args.network.as_deref() {
        Some("none") => (NetworkMode::None, None),
        Some("host") => (NetworkMode::Host, None),
        None | Some("bridge" | "default") => (NetworkMode::None, Some("bridge".to_string())),
        Some(other) => (NetworkMode::None, Some(other.to_string())),
    };
    let mut env_entries = Vec::new();
    for file in &args.env_file {
        env_entries.extend(env::read_env_file(file, host_env)?);
    }
    for arg in &args.env {
        env_entries.extend(env::parse_env_arg(arg, host_env)?);
    }
    let mut options = RunOptions::new(&args.image, args.command);
    for v in &args.volume {
        options.add_mount(container::parse_volume(v)?);
    }
    args.volumes.apply(&mut options)?;
    args.privileges.apply(&mut options)?;
    for value in &args.security_opt {
        match container::security::parse_security_opt(value)? {
            SecurityOpt::Seccomp(profile) => options.seccomp = profile,
            SecurityOpt::NoNewPrivileges(on) => options.privileges.no_new_privileges = Some(on),
        }
    }
    options.entrypoint = args.entrypoint;
    options.env = env_entries;
    options.workdir = args.workdir;
    options.user = args.user;
    options.network = network;
    options.attach_network = attach_network;
    options.network_extras = args.net.extras();
    args.ports.apply(&mut options, args.network.as_deref())?;
    options.hostname = args.hostname;
    options.init = args.init;
    options.read_only = args.read_only;
    options.name = args.name;
    options.remove = args.rm;
    options.tty = args.tty;
    options.labels = args
        .label
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l.clone(), String::new()),
        })
        .collect();
    options.cidfile = args.cidfile;
    options.detach = args.detach;
    options.interactive = args.interactive;
    // `create` checks it too (`run` took it out before: its client uses it).
    super::attach::parse_keys(args.attach.detach_keys.as_deref())?;
    args.lifecycle.apply(&mut options)?;
    (options.resources, options.rlimits) =
        container::limits::resolve(&args.limits.flags(), rbuild_runtime::default_rlimits())?;
    Ok(options)
}

/// Docker's status for `-i -t` with a stdin that is not a terminal: its CLI returns that
/// error unwrapped (status 1), not as a start failure (125).
const EXIT_NOT_A_TTY: i32 = 1;

/// How long `run` and `start` keep the cgroup moves of the container they start cheap
/// ([`rbuild_runtime::warm_up_moves`]): the time a start takes, with room.
pub(super) const WARM_MOVES: std::time::Duration = std::time::Duration::from_millis(100);

/// Runs the container; returns its exit status, or 125 when it could not be started.
pub fn run(globals: &Globals, mut args: RunArgs) -> anyhow::Result<i32> {
    // The container's cgroup moves come in some 30 ms: their wait starts now.
    rbuild_runtime::warm_up_moves(WARM_MOVES);
    let interactive = args.interactive;
    let attach = std::mem::take(&mut args.attach);
    let stdio = attach
        .check_detached(args.detach)
        .and_then(|()| attach.stdio(interactive));
    let stdio = stdio.and_then(|stdio| {
        let keys = super::attach::parse_keys(attach.detach_keys.as_deref())?;
        Ok((stdio, keys))
    });
    let (stdio, detach_keys) = match stdio {
        Ok(stdio) => stdio,
        Err(err) => {
            super::report::error(globals, &err);
            return Ok(EXIT_RUN_FAILED);
        }
    };
    let options = match options(args) {
        Ok(options) => options,
        Err(err) => {
            super::report::error(globals, &err);
            return Ok(EXIT_RUN_FAILED);
        }
    };
    // As docker: a pty fed from a pipe or file makes no sense with -i; -t alone is fine.
    if interactive && options.tty && !std::io::stdin().is_terminal() {
        super::report::error(globals, &anyhow::anyhow!("the input device is not a TTY"));
        return Ok(EXIT_NOT_A_TTY);
    }
    if interactive && options.tty && !options.detach {
        let streams = attach.streams(interactive)?;
        return super::attach::run_attached(globals, &options, streams, detach_keys);
    }
    if options.detach {
        return Ok(match super::containers::run_detached(globals, &options) {
            Ok(()) => 0,
            Err(err) => {
                super::report::error(globals, &err);
                EXIT_RUN_FAILED
            }
        });
    }
    let result = (|| -> anyhow::Result<_> {
        let store = open_store(globals)?;
        Ok(container::run(&store, &options, stdio)?)
    })();
    match result {
        Ok(outcome) => {
            for note in &outcome.notes {
                globals.info(note);
            }
            for w in &outcome.warnings {
                globals.warn(w);
            }
            Ok(outcome.status.code)
        }
        Err(err) => {
            super::report::error(globals, &err);
            Ok(EXIT_RUN_FAILED)
        }
    }
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Only display container IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Format output: "json", or a template like '{{.Names}}' ("table ..." adds a header)
    #[arg(long)]
    pub format: Option<String>,
    /// Show the latest created container (includes all states)
    #[arg(short, long)]
    pub latest: bool,
    /// Show the N last created containers (includes all states)
    #[arg(short = 'n', long = "last", value_name = "N")]
    pub last: Option<usize>,
    /// Filter: status=, name=, label=KEY[=VALUE], ancestor=IMAGE, exited=CODE, id=
    #[arg(short, long = "filter", value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
    /// Display total file sizes (the writable layer, and with the image's: virtual)
    #[arg(short, long)]
    pub size: bool,
}

/// `ps`: docker's columns.
pub fn ps(globals: &Globals, args: PsArgs) -> anyhow::Result<i32> {
    let store = open_store(globals)?;
    let now = chrono::Utc::now().timestamp();
    let filter = super::containers::PsFilter::parse(&args.filter)?;
    let last = if args.latest { Some(1) } else { args.last };
    let all = args.all || last.is_some() || filter.wants_all();
    let mut containers: Vec<_> = Vec::new();
    for c in container::list(&store)? {
        let (status, state) = super::containers::ps_status(&store, &c, now);
        if (all || ["running", "paused", "restarting"].contains(&state))
            && filter.matches(&store, &c, state)
        {
            containers.push((c, status, state));
        }
    }
    containers.truncate(last.unwrap_or(usize::MAX));
    if args.quiet {
        let mut out = std::io::stdout().lock();
        for (c, _, _) in &containers {
            let id = if args.no_trunc {
                &c.id[..]
            } else {
                c.short_id()
            };
            writeln!(out, "{id}")?;
        }
        return Ok(0);
    }
    let mut default_format =
        super::port::ps_default_format(containers.iter().map(|(c, _, state)| (c, *state)))
            .to_string();
    if args.size {
        default_format.push_str("\t{{.Size}}");
    }
    // As docker: sizes are measured only when shown (walking every upper dir is slow).
    let sizes = args.size || args.format.as_deref().is_some_and(|f| f.contains(".Size"));
    let format = ListFormat::parse(args.format.as_deref(), &default_format)?;
    let mut rows = Vec::new();
    for (c, status, state) in &containers {
        let mut command = c.command.join(" ");
        if !args.no_trunc && command.chars().count() > 20 {
            command = command.chars().take(19).collect::<String>() + "…";
        }
        let id = if args.no_trunc {
            c.id.clone()
        } else {
            c.short_id().to_string()
        };
        let created_at = chrono::DateTime::from_timestamp(c.created, 0)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S %z UTC").to_string())
            .unwrap_or_default();
        // docker's form: `2B (virtual 1.23MB)`; "0B" when not measured.
        let size = match sizes.then(|| container::size::container_size(&store, c)) {
            Some(Ok(s)) if s.root_fs > 0 => {
                format!("{} (virtual {})", human_size(s.rw), human_size(s.root_fs))
            }
            Some(Ok(s)) => human_size(s.rw),
            Some(Err(_)) | None => human_size(0),
        };
        let cells = [
            ("ID", id),
            ("Image", c.image.clone()),
            ("Command", format!("\"{command}\"")),
            ("CreatedAt", created_at),
            (
                "RunningFor",
                format!("{} ago", human_duration(now - c.created)),
            ),
            ("Status", status.clone()),
            ("State", state.to_string()),
            ("Ports", super::port::ps_column(c, state)),
            ("Names", c.name.clone()),
            (
                "Labels",
                c.labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("Size", size),
        ];
        // A tab inside a cell would start a new column.
        rows.push(
            cells
                .into_iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        serde_json::Value::String(v.replace('\t', " ")),
                    )
                })
                .collect(),
        );
    }
    format.print(
        &mut std::io::stdout().lock(),
        &rows,
        "ContainerRow",
        &PS_HEADERS,
    )?;
    Ok(0)
}

/// The column titles of `ps` tables, docker's spellings.
const PS_HEADERS: [(&str, &str); 11] = [
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Status", "STATUS"),
    ("State", "STATE"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
    ("Size", "SIZE"),
    ("Ports", "PORTS"),
];

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short, long)]
    pub force: bool,
    /// Containers to remove (names or IDs)
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
    /// Remove anonymous volumes associated with the container
    #[arg(short, long)]
    pub volumes: bool,
}

/// `rm`: prints each name as given once removed; exit status 1 when any failed.
pub fn rm(globals: &Globals, args: RmArgs) -> anyhow::Result<i32> {
    let store = open_store(globals)?;
    let mut status = 0;
    for name in &args.containers {
        let record = args
            .volumes
            .then(|| store.resolve_container(name).ok())
            .flatten();
        match container::remove(&store, name, args.force) {
            Ok(_) => {
                println!("{name}");
                if let Some(record) = record {
                    super::volume::remove_anonymous(globals, &store, &record);
                }
            }
            Err(e) => {
                super::report::item_error(&e);
                status = 1;
            }
        }
    }
    Ok(status)
}
