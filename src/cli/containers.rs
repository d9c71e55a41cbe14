//! The container lifecycle commands: `run -d` (its flags are [`LifecycleRunArgs`]),
//! `create`, `start`, `stop`, `restart`, `kill`, `wait`, `rename`, `logs`,
//! `container prune`, and the hidden monitor subcommand; plus `ps`'s STATUS and filters.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use clap::Args;

use super::common::{confirm_removal, human_duration, open_store};
use super::Globals;
use crate::container::logs::{self, LogEntry, LogReader};
use crate::container::{self, monitor, RunOptions};
use crate::store::{ContainerRecord, ContainerStatus, HealthStatus, Store};

/// `run`'s flags for the container's life after start (flattened into `run`'s arguments).
#[derive(Debug, Args)]
pub struct LifecycleRunArgs {
    /// Restart policy: no, on-failure[:max-retries], always, unless-stopped
    #[arg(long, value_name = "POLICY", default_value = "no")]
    pub restart: String,
    /// Signal to stop the container (default: the image's STOPSIGNAL, else SIGTERM)
    #[arg(long, value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
    /// Seconds `stop` waits before killing the container (default 10)
    #[arg(long, value_name = "SECONDS")]
    pub stop_timeout: Option<u64>,
    /// Command to run to check health (run with /bin/sh -c inside the container)
    #[arg(long, value_name = "COMMAND")]
    pub health_cmd: Option<String>,
    /// Time between health checks (ms|s|m|h, default 30s)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub health_interval: Option<Duration>,
    /// Consecutive failures needed to report unhealthy (default 3)
    #[arg(long, value_name = "N")]
    pub health_retries: Option<u32>,
    /// Maximum time to allow one check to run (ms|s|m|h, default 30s)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub health_timeout: Option<Duration>,
    /// Start period: failures in it do not count (ms|s|m|h, default 0s)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub health_start_period: Option<Duration>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long)]
    pub no_healthcheck: bool,
}

impl LifecycleRunArgs {
    /// Puts the flags into `options`.
    pub(super) fn apply(&self, options: &mut RunOptions) -> anyhow::Result<()> {
        options.restart = container::parse_restart(&self.restart)?;
        if let Some(signal) = &self.stop_signal {
            container::parse_signal(signal)?;
        }
        if options.remove && options.restart != crate::store::RestartPolicy::No {
            anyhow::bail!(container::ContainerError::Conflict("--restart and --rm"));
        }
        options.stop_signal = self.stop_signal.clone();
        options.stop_timeout = self.stop_timeout;
        let nanos = |d: Option<Duration>| d.map(|d| d.as_nanos() as i64);
        options.health = container::health::HealthFlags {
            cmd: self.health_cmd.clone(),
            interval: nanos(self.health_interval),
            timeout: nanos(self.health_timeout),
            retries: self.health_retries.map(i64::from),
            start_period: nanos(self.health_start_period),
            disabled: self.no_healthcheck,
        };
        if self.no_healthcheck && self.health_cmd.is_some() {
            anyhow::bail!(container::ContainerError::Conflict(
                "--no-healthcheck and --health-cmd"
            ));
        }
        Ok(())
    }
}

/// The program a monitor runs: this binary.
pub(super) const MONITOR_EXE: &str = "/proc/self/exe";

/// Starts the monitor of container `id` with this binary; returns once the process runs.
fn launch(store: &Store, id: &str) -> Result<(), container::ContainerError> {
    monitor::launch(store, id, MONITOR_EXE.as_ref(), &[])
}

/// As [`launch`], with us attached before the process starts ([`monitor::launch_attached`]).
pub(super) fn launch_attached(
    store: &Store,
    id: &str,
    request: &container::attach::AttachRequest,
) -> Result<container::attach_client::Attachment, container::ContainerError> {
    monitor::launch_attached(store, id, MONITOR_EXE.as_ref(), &[], request)
}

/// `run -d`: creates the container, starts its monitor, prints the full ID once the process
/// runs. Errors (exit status 125) are the caller's to report.
pub(super) fn run_detached(globals: &Globals, options: &RunOptions) -> anyhow::Result<()> {
    let store = open_store(globals)?;
    let record = container::create_container(&store, options)?;
    launch(&store, &record.id)?;
    println!("{}", record.id);
    Ok(())
}

/// `create`: a container made and recorded but not started; prints its ID.
pub fn create(globals: &Globals, args: super::run::RunArgs) -> anyhow::Result<i32> {
    let options = match super::run::options(args) {
        Ok(o) => o,
        Err(err) => {
            super::report::error(globals, &err);
            return Ok(super::run::EXIT_RUN_FAILED);
        }
    };
    let result =
        open_store(globals).and_then(|store| Ok(container::create_container(&store, &options)?));
    match result {
        Ok(record) => {
            println!("{}", record.id);
            Ok(0)
        }
        Err(err) => {
            super::report::error(globals, &err);
            Ok(super::run::EXIT_RUN_FAILED)
        }
    }
}

#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// Container ID
    pub id: String,
    /// Wait for a client on the attach socket before starting the process
    #[arg(long)]
    pub attached: bool,
}

/// The hidden monitor subcommand (see [`monitor`]): stdout is the pipe to the starter,
/// stderr the container's `monitor.log`.
pub fn monitor_main(globals: &Globals, args: MonitorArgs) -> anyhow::Result<i32> {
    let store = open_store(globals)?;
    monitor::serve(&store, &args.id, args.attached, std::io::stdout(), |w| {
        globals.warn(w)
    })?;
    Ok(0)
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR (print the container's output until it exits; exit with its status)
    #[arg(short, long)]
    pub attach: bool,
    /// Attach the container's STDIN (implies --attach)
    #[arg(short, long)]
    pub interactive: bool,
    /// Override the key sequence for detaching a container (default ctrl-p,ctrl-q)
    #[arg(long, value_name = "KEYS")]
    pub detach_keys: Option<String>,
    /// Start every container whose restart policy wants it running (after a host reboot)
    #[arg(long, conflicts_with = "containers")]
    pub all_restartable: bool,
    /// Containers to start (names or IDs)
    #[arg(value_name = "CONTAINER", required_unless_present = "all_restartable")]
    pub containers: Vec<String>,
}

/// `start`: runs stopped or created containers again, from their `spec.json` and kept
/// filesystem; prints each name as given.
pub fn start(globals: &Globals, args: StartArgs) -> anyhow::Result<i32> {
    rbuild_runtime::warm_up_moves(super::run::WARM_MOVES);
    let detach_keys = super::attach::parse_keys(args.detach_keys.as_deref())?;
    let store = open_store(globals)?;
    if args.attach || args.interactive {
        anyhow::ensure!(
            args.containers.len() == 1,
            "you cannot start and attach multiple containers at once"
        );
        return start_attached(&store, &args.containers[0], args.interactive, detach_keys);
    }
    let names: Vec<String> = if args.all_restartable {
        container::restartable(&store)?
            .into_iter()
            .map(|r| r.id)
            .collect()
    } else {
        args.containers
    };
    let mut status = 0;
    for name in &names {
        let result = container::find(&store, name)
            .map_err(container::ContainerError::from)
            .and_then(|r| {
                if store.container_running(&r) {
                    Ok(())
                } else {
                    launch(&store, &r.id)
                }
            });
        match result {
            Ok(()) => println!("{name}"),
            Err(e) => {
                super::report::item_error(&e);
                status = 1;
            }
        }
    }
    Ok(status)
}

/// `start -a [-i]`: starts the container with us attached (the same client as `attach`);
/// ends with its exit code, or 0 when we detach.
fn start_attached(
    store: &Store,
    name: &str,
    interactive: bool,
    detach_keys: Vec<u8>,
) -> anyhow::Result<i32> {
    let record = container::find(store, name)?;
    anyhow::ensure!(
        !store.container_running(&record),
        "container {} is already running",
        record.name
    );
    let session = super::attach::Session {
        tty: super::attach::has_tty(store, &record.id)?,
        stdin: interactive && record.open_stdin,
        sig_proxy: true,
        detach_keys,
    };
    super::attach::check_input_terminal(&session)?;
    let attachment = launch_attached(store, &record.id, &session.request(true, true, true))?;
    super::attach::relay(store, &record.id, attachment, &session)
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait before killing the container (default: its --stop-timeout, else 10)
    #[arg(
        short = 't',
        long = "time",
        visible_alias = "timeout",
        value_name = "SECONDS"
    )]
    pub time: Option<u64>,
    /// Containers (names or IDs)
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Runs `each` for every container named, printing the name as given on success and the
/// error otherwise; exit status 1 when any failed (docker's rule for these commands).
fn for_each(names: &[String], mut each: impl FnMut(&str) -> anyhow::Result<()>) -> i32 {
    let mut status = 0;
    for name in names {
        match each(name) {
            Ok(()) => println!("{name}"),
            Err(e) => {
                super::report::item_error(&format!("{e:#}"));
                status = 1;
            }
        }
    }
    status
}

/// `stop`.
pub fn stop(globals: &Globals, args: StopArgs) -> anyhow::Result<i32> {
    let store = open_store(globals)?;
    Ok(for_each(&args.containers, |name| {
        container::stop(&store, name, args.time)?;
        Ok(())
    }))
}

/// `restart`: stop (as `stop`), then start.
pub fn restart(globals: &Globals, args: StopArgs) -> anyhow::Result<i32> {
    let store = open_store(globals)?;
    Ok(for_each(&args.containers, |name| {
        let id = container::stop(&store, name, args.time)?;
        Ok(launch(&store, &id)?)
    }))
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal to send (name or number)
    #[arg(short, long, default_value = "KILL", value_name = "SIGNAL")]
    pub signal: String,
    /// Containers (names or IDs)
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// `pause`.
pub fn pause(globals: &Globals, args: WaitArgs) -> anyhow::Result<i32> {
    let store = open_store(globals)?;
    Ok(for_each(&args.containers, |name| {
        container::pause(&store, name)?;
        Ok(())
    }))
}

/// `unpause`.
pub fn unpause(globals: &Globals, args: WaitArgs) -> anyhow::Result<i32> {
    let store = open_store(globals)?;
    Ok(for_each(&args.containers, |name| {
        container::unpause(&store, name)?;
        Ok(())
    }))
}

/// `kill`.
pub fn kill(globals: &Globals, args: KillArgs) -> anyhow::Result<i32> {
    let signal = container::parse_signal(&args.signal)?;
    let store = open_store(globals)?;
    Ok(for_each(&args.containers, |name| {
        container::kill(&store, name, signal)?;
        Ok(())
    }))
}

/// The arguments of `pause`, `unpause` and `wait`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Containers (names or IDs)
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// `wait`: prints each container's exit code once it stopped.
pub fn wait(globals: &Globals, args: WaitArgs) -> anyhow::Result<i32> {
    let store = open_store(globals)?;
    let mut status = 0;
    for name in &args.containers {
        match container::wait(&store, name) {
            Ok(code) => println!("{code}"),
            Err(e) => {
                super::report::item_error(&e);
                status = 1;
            }
        }
    }
    Ok(status)
}

#[derive(Debug, Args)]
pub struct RenameArgs {
    /// Container (name or ID)
    pub container: String,
    /// Its new name
    pub new_name: String,
}

/// `rename`.
pub fn rename(globals: &Globals, args: RenameArgs) -> anyhow::Result<i32> {
    let store = open_store(globals)?;
    container::rename(&store, &args.container, &args.new_name)?;
    Ok(0)
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

/// `container prune`.
pub fn prune(globals: &Globals, args: PruneArgs) -> anyhow::Result<i32> {
    if !args.force && !confirm_removal("all stopped containers") {
        return Ok(0);
    }
    let store = open_store(globals)?;
    let removed = container::prune(&store)?;
    let mut out = std::io::stdout().lock();
    if !removed.is_empty() {
        writeln!(out, "Deleted Containers:")?;
        for id in &removed {
            writeln!(out, "{id}")?;
        }
        writeln!(out)?;
    }
    Ok(0)
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short, long)]
    pub follow: bool,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    /// Number of lines to show from the end of the logs ("all" for all)
    #[arg(short = 'n', long, default_value = "all", value_name = "N")]
    pub tail: String,
    /// Show logs since a timestamp (2026-12-04T16:00:00Z) or relative (42m for 42 minutes)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Show logs before a timestamp or relative time
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Container (name or ID)
    pub container: String,
}

/// Which entries `logs` shows, and how.
#[derive(Debug, Default)]
struct Shown {
    timestamps: bool,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
}

impl Shown {
    fn print(&self, entries: &[LogEntry]) -> std::io::Result<()> {
        let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
        for e in entries {
            if self.since.is_some_and(|t| e.time < t) || self.until.is_some_and(|t| e.time > t) {
                continue;
            }
            let sink: &mut dyn Write = if e.stream == "stderr" {
                &mut err
            } else {
                &mut out
            };
            if self.timestamps {
                write!(
                    sink,
                    "{} ",
                    e.time.to_rfc3339_opts(SecondsFormat::Nanos, true)
                )?;
            }
            sink.write_all(e.log.as_bytes())?;
        }
        out.flush()?;
        err.flush()
    }
}

/// `logs`: the container's json-file log, then (`-f`) what it writes until it stops.
pub fn logs(globals: &Globals, args: LogsArgs) -> anyhow::Result<i32> {
    let store = open_store(globals)?;
    let record = container::find(&store, &args.container)?;
    let now = Utc::now();
    let shown = Shown {
        timestamps: args.timestamps,
        since: args
            .since
            .as_deref()
            .map(|s| parse_time(s, now))
            .transpose()?,
        until: args
            .until
            .as_deref()
            .map(|s| parse_time(s, now))
            .transpose()?,
    };
    let path = logs::log_path(&store.container_dir(&record.id), &record.id);
    let (mut reader, mut entries) = LogReader::open(path)?;
    if args.tail != "all" {
        let n: usize = args
            .tail
            .parse()
            .with_context(|| format!("invalid --tail {:?}", args.tail))?;
        entries.drain(..entries.len().saturating_sub(n));
    }
    shown.print(&entries)?;
    if args.follow {
        follow(&store, &record.id, &mut reader, &shown)?;
    }
    Ok(0)
}

/// Prints what the log gains while container `id` runs (then what its last moments wrote).
fn follow(store: &Store, id: &str, reader: &mut LogReader, shown: &Shown) -> anyhow::Result<()> {
    loop {
        let running = store.lease_locked(id);
        shown.print(&reader.more()?)?;
        if !running {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `--since`/`--until` value: an RFC 3339 time, Unix seconds, or a duration before `now`
/// in Go's syntax (`90s`, `10m`, `1h30m`).
fn parse_time(value: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(secs) = value.parse::<f64>() {
        return DateTime::from_timestamp_millis((secs * 1000.0) as i64)
            .context("timestamp out of range");
    }
    let total = parse_duration(value).map_err(|_| {
        anyhow::anyhow!("invalid time {value:?}: use RFC 3339, Unix seconds or a duration like 10m")
    })?;
    Ok(now - chrono::Duration::nanoseconds(total.as_nanos() as i64))
}

/// A duration in Go's syntax, as docker's flags take them: `90s`, `10m`, `1h30m`, `100ms`.
fn parse_duration(value: &str) -> anyhow::Result<Duration> {
    let bad = || anyhow::anyhow!("invalid duration {value:?} (for example 30s, 1m30s, 100ms)");
    if value.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    let mut rest = value;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
        let unit_len = rest[digits..]
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len() - digits);
        let unit = &rest[digits..digits + unit_len];
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += number * scale;
        rest = &rest[digits + unit_len..];
    }
    Ok(Duration::from_secs_f64(total))
}

/// `ps`'s STATUS and STATE of a settled record (docker's wording: `Up 3 seconds`,
/// `Exited (0) 2 minutes ago`, `Restarting (1) 1 second ago`, `Created`).
pub(super) fn ps_status(store: &Store, c: &ContainerRecord, now: i64) -> (String, &'static str) {
    let ago = |t: Option<i64>| match t {
        Some(t) => format!(" {} ago", human_duration(now - t)),
        None => String::new(),
    };
    let code = c.exit_code.unwrap_or(0);
    if store.container_running(c) {
        let since = c.started.unwrap_or(c.created);
        let mut up = format!("Up {}", human_duration(now - since));
        if let Some(health) = &c.health {
            up.push_str(match health.status {
                HealthStatus::Starting => " (health: starting)",
                HealthStatus::Healthy => " (healthy)",
                HealthStatus::Unhealthy => " (unhealthy)",
            });
        }
        if c.paused {
            (format!("{up} (Paused)"), "paused")
        } else {
            (up, "running")
        }
    } else if c.status == ContainerStatus::Created {
        ("Created".into(), "created")
    } else if store.lease_locked(&c.id) {
        // Exited, its monitor waiting to restart it.
        (
            format!("Restarting ({code}){}", ago(c.finished)),
            "restarting",
        )
    } else {
        (format!("Exited ({code}){}", ago(c.finished)), "exited")
    }
}

/// `ps -f KEY=VALUE` (several: each key must match, any of one key's values).
#[derive(Debug, Default)]
pub(super) struct PsFilter {
    filters: Vec<(String, String)>,
}

impl PsFilter {
    pub(super) fn parse(values: &[String]) -> anyhow::Result<PsFilter> {
        let mut filters = Vec::new();
        for v in values {
            let (k, val) = v
                .split_once('=')
                .with_context(|| format!("bad format of filter (expected name=value): {v}"))?;
            anyhow::ensure!(
                ["status", "name", "label", "ancestor", "exited", "id"].contains(&k),
                "invalid filter '{k}'"
            );
            filters.push((k.to_string(), val.to_string()));
        }
        Ok(PsFilter { filters })
    }

    /// Whether the filters ask about stopped containers (then `ps` looks at all of them).
    pub(super) fn wants_all(&self) -> bool {
        self.filters
            .iter()
            .any(|(k, _)| k == "status" || k == "exited")
    }

    pub(super) fn matches(&self, store: &Store, c: &ContainerRecord, state: &str) -> bool {
        let keys: std::collections::BTreeSet<&str> =
            self.filters.iter().map(|(k, _)| k.as_str()).collect();
        keys.into_iter().all(|key| {
            self.filters
                .iter()
                .filter(|(k, _)| k == key)
                .any(|(_, v)| match key {
                    "status" => state == v,
                    "name" => c.name.contains(v.as_str()),
                    "id" => c.id.starts_with(v.as_str()),
                    "label" => match v.split_once('=') {
                        Some((k, val)) => c.labels.get(k).is_some_and(|x| x == val),
                        None => c.labels.contains_key(v.as_str()),
                    },
                    "exited" => state == "exited" && v.parse::<i32>().ok() == c.exit_code,
                    "ancestor" => {
                        c.image == *v
                            || c.image_id
                                .hex()
                                .starts_with(v.trim_start_matches("sha256:"))
                            || store.resolve_image(v).is_ok_and(|i| i.id == c.image_id)
                    }
                    _ => false,
                })
        })
    }
}
