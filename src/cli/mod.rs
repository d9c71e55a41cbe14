//! The command line: clap structs, then a call into the library, then printing.
//!
//! Each command lives in its own module. Commands return `anyhow::Result`; [`main`] prints
//! the error chain and maps it to an exit status.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::registry::{RegistryOptions, RetryLog, Retrying};

mod argv;
mod attach;
mod attach_flags;
mod build;
mod build_publish;
mod builder;
mod commit;
mod common;
mod completion;
mod container_cmd;
mod containers;
mod cp;
mod diff;
mod exec;
mod export;
mod history;
mod image_cmd;
mod images;
mod import;
mod info;
mod inspect;
mod limits;
mod lint;
mod load;
mod login;
mod logout;
mod network;
mod network_reaper;
mod parse;
mod port;
mod privileges;
mod pull;
mod push;
mod report;
mod rmi;
mod run;
mod save;
mod search;
mod system;
mod tag;
mod template;
mod top;
mod transfer_progress;
mod version;
mod volume;

/// The help heading of the global options, in every command's `--help`.
const GLOBAL: &str = "Global Options";

/// Global options shared by every command.
#[derive(Debug, Parser)]
#[command(
    name = "rbuild",
    version,
    long_version = concat!(
        env!("CARGO_PKG_VERSION"),
        " (commit ",
        env!("RBUILD_GIT_COMMIT"),
        ", built ",
        env!("RBUILD_BUILD_DATE"),
        ")"
    ),
    about = "Build, run and move container images, without a daemon",
    override_usage = "rbuild [OPTIONS] <COMMAND>\n       \
        rbuild [OPTIONS] [BUILD OPTIONS] CONTEXT    (the same as `rbuild build ...`)",
    after_help = "A command line that does not start with a command is a build: \
        `rbuild -t app:1 .` is `rbuild build -t app:1 .`. A context directory named like a \
        command is given as a path: `rbuild ./images`."
)]
pub struct Cli {
    /// Store root (default: /var/lib/rbuild for root, $XDG_DATA_HOME/rbuild otherwise)
    #[arg(long, global = true, env = "RBUILD_ROOT", hide_env_values = true, value_name = "DIR", help_heading = GLOBAL)]
    pub root: Option<PathBuf>,

    /// Enable debug output (same as --log-level=debug)
    #[arg(short = 'D', long, global = true, help_heading = GLOBAL)]
    pub debug: bool,

    /// Messages to print: errors only, also warnings (default), also notes (info), also
    /// debugging details
    #[arg(long, global = true, value_name = "LEVEL", default_value = "warn", help_heading = GLOBAL)]
    pub log_level: LogLevel,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build an image from a Dockerfile
    Build(build::BuildArgs),
    /// Parse a Dockerfile and print its instructions
    Parse(parse::ParseArgs),
    /// Import a rootfs tarball as a one-layer image
    Import(import::ImportArgs),
    /// List images
    Images(images::ImagesArgs),
    /// Manage images
    #[command(subcommand)]
    Image(image_cmd::ImageCommand),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(tag::TagArgs),
    /// Manage the build cache
    #[command(subcommand)]
    Builder(builder::BuilderCommand),
    /// Remove one or more images
    Rmi(rmi::RmiArgs),
    /// Show low-level information about images
    Inspect(inspect::InspectArgs),
    /// Show the history of an image
    History(history::HistoryArgs),
    /// Save images to a tar archive (stdout by default)
    Save(save::SaveArgs),
    /// Load images from a tar archive (stdin by default)
    Load(load::LoadArgs),
    /// Check a Dockerfile for common mistakes (exit status 1 when there are warnings)
    Lint(lint::LintArgs),
    /// Run a command in a new container (foreground, or detached with -d)
    Run(run::RunArgs),
    /// List containers
    Ps(run::PsArgs),
    /// Remove one or more containers
    Rm(run::RmArgs),
    /// Upload an image to a registry
    Push(push::PushArgs),
    /// Download an image from a registry
    Pull(pull::PullArgs),
    /// Log in to a registry
    Login(login::LoginArgs),
    /// Log out from a registry
    Logout(logout::LogoutArgs),
    /// Search a private registry's repositories (HOST/TERM)
    Search(search::SearchArgs),
    /// Store maintenance (`system check`)
    #[command(subcommand)]
    System(system::SystemCommand),
    /// Show the version, the git commit and the build date
    Version(version::VersionArgs),
    /// Show what this host gives rbuild: store, storage driver, cgroups, security features
    Info(info::InfoArgs),
    /// Print a shell completion script: bash, zsh, fish (`source <(rbuild completion bash)`)
    Completion(completion::CompletionArgs),
    /// Write the manual pages (rbuild.1, rbuild-COMMAND.1, ...) into a directory
    Man(completion::ManArgs),
    /// Create a new container (not started: `start` runs it)
    Create(run::RunArgs),
    /// Start one or more stopped containers
    Start(containers::StartArgs),
    /// Stop one or more running containers
    Stop(containers::StopArgs),
    /// Restart one or more containers
    Restart(containers::StopArgs),
    /// Kill one or more running containers
    Kill(containers::KillArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(containers::WaitArgs),
    /// Rename a container
    Rename(containers::RenameArgs),
    /// Fetch the logs of a container
    Logs(containers::LogsArgs),
    /// Pause all processes within one or more containers
    Pause(containers::WaitArgs),
    /// Unpause all processes within one or more containers
    Unpause(containers::WaitArgs),
    /// The monitor of a detached container (started by `run -d` and `start`)
    #[command(name = "container-monitor", hide = true)]
    ContainerMonitor(containers::MonitorArgs),
    /// Manage volumes
    #[command(subcommand)]
    Volume(volume::VolumeCommand),
    /// Create a new image from a container's changes
    Commit(commit::CommitArgs),
    /// Export a container's filesystem as a tar archive
    Export(export::ExportArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(cp::CpArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(diff::DiffArgs),
    /// Run a command in a running container
    Exec(exec::ExecArgs),
    /// Manage containers
    #[command(subcommand)]
    Container(container_cmd::ContainerCommand),
    /// Display the running processes of a container
    Top(top::TopArgs),
    /// Display a sample of containers' resource usage
    Stats(top::StatsArgs),
    /// Manage networks (create, ls, inspect, rm, prune, connect, disconnect)
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// List port mappings or a specific mapping for the container
    Port(port::PortCmdArgs),
    /// The UDP port forwarder of a rootless container (started by its runner)
    #[command(name = "container-port-forwarder", hide = true)]
    PortForwarder(port::ForwarderArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(attach::AttachArgs),
    /// The holder of an `exec -it` process (started by `exec -it`)
    #[command(name = "exec-holder", hide = true)]
    ExecHolder(exec::HolderArgs),
    /// Removes unused bridges once their linger passed (started by their last user)
    #[command(name = "network-reaper", hide = true)]
    NetworkReaper,
    /// Answers names on a user network for a container `network connect` added (started by it)
    #[command(name = "network-responder", hide = true)]
    NetworkResponder(network_reaper::ResponderArgs),
}

/// Global settings resolved from the flags, handed to every command.
#[derive(Debug, Clone)]
pub struct Globals {
    pub root: PathBuf,
    pub log_level: LogLevel,
}

impl Globals {
    /// Prints a warning (docker's `WARNING:` prefix) unless `--log-level error`.
    pub fn warn(&self, message: impl std::fmt::Display) {
        if self.log_level >= LogLevel::Warn {
            eprintln!("WARNING: {message}");
        }
    }

    /// Prints a note (why something was done the way it was) at `--log-level info` and above.
    pub fn info(&self, message: impl std::fmt::Display) {
        if self.log_level >= LogLevel::Info {
            eprintln!("info: {message}");
        }
    }

    /// Registry options whose retries are shown as warnings (so `--log-level error` hides
    /// them); every registry command starts from these.
    pub fn registry_options(&self) -> RegistryOptions {
        let globals = self.clone();
        RegistryOptions {
            on_retry: Some(RetryLog(Arc::new(move |r: &Retrying<'_>| {
                globals.warn(format_args!(
                    "{}: {}; retrying in {:.1}s",
                    r.what,
                    r.error,
                    r.wait.as_secs_f64()
                ))
            }))),
            ..RegistryOptions::default()
        }
    }

    fn resolve(cli: &Cli) -> Globals {
        let log_level = if cli.debug {
            LogLevel::Debug
        } else {
            cli.log_level
        };
        let root = cli.root.clone().unwrap_or_else(default_root);
        Globals { root, log_level }
    }
}

/// `/var/lib/rbuild` for root, `$XDG_DATA_HOME/rbuild` (or `~/.local/share/rbuild`) otherwise.
pub fn default_root() -> PathBuf {
    let is_root = std::env::var_os("USER").is_some_and(|u| u == "root")
        || std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
            .unwrap_or(false);
    if is_root {
        return PathBuf::from("/var/lib/rbuild");
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("rbuild");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
    PathBuf::from(home).join(".local/share/rbuild")
}

/// Runs the command line and returns the process exit status.
pub fn main() -> i32 {
    let mut command = Cli::command();
    let args = argv::with_default_build(&command, std::env::args_os().collect());
    // The command tree is made once (making it is most of a command's start-up).
    let parsed = command
        .try_get_matches_from_mut(&args)
        .and_then(|mut matches| Cli::from_arg_matches_mut(&mut matches));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(err) => return report::usage_error(&err, argv::command_name(&command, &args)),
    };
    let globals = Globals::resolve(&cli);
    if globals.log_level >= LogLevel::Debug {
        eprintln!("debug: store root {}", globals.root.display());
    }
    let result = match cli.command {
        Command::Build(args) => build::run(&globals, args),
        Command::Parse(args) => parse::run(&globals, args),
        Command::Import(args) => import::run(&globals, args),
        Command::Images(args) => images::run(&globals, args),
        Command::Image(cmd) => image_cmd::run(&globals, cmd),
        Command::Tag(args) => tag::run(&globals, args),
        Command::Builder(cmd) => builder::run(&globals, cmd),
        Command::Rmi(args) => rmi::run(&globals, args),
        Command::Inspect(args) => inspect::run(&globals, args),
        Command::History(args) => history::run(&globals, args),
        Command::Save(args) => save::run(&globals, args),
        Command::Load(args) => load::run(&globals, args),
        Command::Lint(args) => lint::run(&globals, args),
        Command::Run(args) => run::run(&globals, args),
        Command::Ps(args) => run::ps(&globals, args),
        Command::Rm(args) => run::rm(&globals, args),
        Command::Push(args) => push::run(&globals, args),
        Command::Pull(args) => pull::run(&globals, args),
        Command::Login(args) => login::run(&globals, args),
        Command::Logout(args) => logout::run(&globals, args),
        Command::Search(args) => search::run(&globals, args),
        Command::System(cmd) => system::run(&globals, cmd),
        Command::Version(args) => version::run(&globals, args),
        Command::Info(args) => info::run(&globals, args),
        Command::Completion(args) => completion::completion(&globals, args),
        Command::Man(args) => completion::man(&globals, args),
        Command::Create(args) => containers::create(&globals, args),
        Command::Start(args) => containers::start(&globals, args),
        Command::Stop(args) => containers::stop(&globals, args),
        Command::Restart(args) => containers::restart(&globals, args),
        Command::Kill(args) => containers::kill(&globals, args),
        Command::Wait(args) => containers::wait(&globals, args),
        Command::Rename(args) => containers::rename(&globals, args),
        Command::Logs(args) => containers::logs(&globals, args),
        Command::Pause(args) => containers::pause(&globals, args),
        Command::Unpause(args) => containers::unpause(&globals, args),
        Command::ContainerMonitor(args) => containers::monitor_main(&globals, args),
        Command::Volume(cmd) => volume::run(&globals, cmd),
        Command::Commit(args) => commit::run(&globals, args),
        Command::Export(args) => export::run(&globals, args),
        Command::Cp(args) => cp::run(&globals, args),
        Command::Diff(args) => diff::run(&globals, args),
        Command::Exec(args) => exec::run(&globals, args),
        Command::Container(cmd) => container_cmd::run(&globals, cmd),
        Command::Top(args) => top::top(&globals, args),
        Command::Stats(args) => top::stats(&globals, args),
        Command::Network(cmd) => network::run(&globals, cmd),
        Command::Port(args) => port::run(&globals, args),
        Command::PortForwarder(args) => port::forwarder_main(args),
        Command::Attach(args) => attach::attach(&globals, args),
        Command::ExecHolder(args) => exec::holder_main(&globals, args),
        Command::NetworkReaper => network_reaper::run(),
        Command::NetworkResponder(args) => network_reaper::responder(args),
    };
    // This process's temp files (none are in use any more).
    crate::store::end_sessions();
    match result {
        Ok(code) => code,
        // The reader went away (`rbuild images | head -1`): not an error of ours, nothing to
        // say. Exit 0 as `completion` does, instead of docker's death by SIGPIPE (141).
        Err(err) if report::is_broken_pipe(&err) => 0,
        Err(err) => {
            report::error(&globals, &err);
            if globals.log_level >= LogLevel::Debug {
                // The whole chain, one cause per line, with a backtrace when RUST_BACKTRACE=1.
                eprintln!("debug: {err:?}");
            }
            1
        }
    }
}
