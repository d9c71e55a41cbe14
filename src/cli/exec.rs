//! `rbuild exec`: run a command in a running container (docker's flags and statuses).

use std::io::IsTerminal;

use clap::Args;
use rbuild_runtime::{Io, Stdio};

use super::common::open_store;
use super::Globals;
use crate::container::attach_client::AttachEnd;
use crate::container::{self, env, ContainerError, ExecOptions};

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Detached mode: run the command in the background
    #[arg(short, long)]
    pub detach: bool,
    /// Keep STDIN open (attach it to the process)
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Set environment variables (KEY=VALUE, or KEY to take the host's value)
    #[arg(short, long = "env", value_name = "KEY[=VALUE]")]
    pub env: Vec<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Override the key sequence for detaching (default ctrl-p,ctrl-q; with -i -t)
    #[arg(long, value_name = "KEYS")]
    pub detach_keys: Option<String>,
    /// Container (name or ID)
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// Command and arguments
    #[arg(
        value_name = "COMMAND",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

/// Docker's status when the process could not be started in the container ("OCI runtime
/// exec failed"); a missing or stopped container is 1, as docker's daemon errors.
const EXIT_EXEC_FAILED: i32 = 126;

/// Runs the command; returns its exit status (docker's: its code, 128+N on signal N, 126/127
/// when it cannot be executed or found, 1 when the container is missing or not running).
pub fn run(globals: &Globals, args: ExecArgs) -> anyhow::Result<i32> {
    let detach_keys = match super::attach::parse_keys(args.detach_keys.as_deref()) {
        Ok(keys) => keys,
        Err(err) => {
            super::report::error(globals, &err);
            return Ok(1);
        }
    };
    if args.interactive && args.tty && !args.detach && !std::io::stdin().is_terminal() {
        super::report::error(globals, &anyhow::anyhow!("the input device is not a TTY"));
        return Ok(1);
    }
    let mut env_entries = Vec::new();
    for arg in &args.env {
        env_entries.extend(env::parse_env_arg(arg, |k| std::env::var(k).ok())?);
    }
    let options = ExecOptions {
        container: args.container,
        args: args.command,
        env: env_entries,
        user: args.user,
        workdir: args.workdir,
        tty: args.tty,
        detach: args.detach,
    };
    if args.interactive && args.tty && !args.detach {
        return run_held(globals, &options, detach_keys);
    }
    let stdio = if args.detach {
        Stdio::null()
    } else {
        Stdio {
            stdin: if args.interactive {
                Io::Inherit
            } else {
                Io::Null
            },
            stdout: Io::Inherit,
            stderr: Io::Inherit,
        }
    };
    let store = open_store(globals)?;
    let started = container::exec(&store, &options, stdio);
    let status = started.and_then(|process| Ok(process.wait()?));
    match status {
        Ok(status) => Ok(status.code),
        Err(err) => Ok(failed(globals, err)),
    }
}

/// Reports `err`; the exit status for it.
fn failed(globals: &Globals, err: ContainerError) -> i32 {
    let code = match &err {
        ContainerError::Runtime(_) | ContainerError::StartFailed(_) => EXIT_EXEC_FAILED,
        _ => 1,
    };
    super::report::error(globals, &err.into());
    code
}

/// `exec -it`: the process under a holder ([`container::exec_holder`]), we its attached
/// client, so that the detach keys can leave it running; our signals go to it through the
/// holder, as they go to a process we hold.
fn run_held(globals: &Globals, options: &ExecOptions, detach_keys: Vec<u8>) -> anyhow::Result<i32> {
    let session = super::attach::Session {
        tty: true,
        stdin: true,
        sig_proxy: true,
        detach_keys,
    };
    let store = open_store(globals)?;
    let exe = super::containers::MONITOR_EXE.as_ref();
    let request = session.request(true, true, false);
    let (attachment, holder) =
        match container::exec_holder::launch_attached(&store, options, exe, &[], &request) {
            Ok(started) => started,
            Err(err) => return Ok(failed(globals, err)),
        };
    match super::attach::exchange(attachment, &session, Some(holder as i32))? {
        AttachEnd::Exited(code) => Ok(code),
        AttachEnd::Detached => Ok(0),
        AttachEnd::Lost => anyhow::bail!("the exec'd process's holder ended without its status"),
    }
}

#[derive(Debug, Args)]
pub struct HolderArgs {
    /// Container ID
    pub id: String,
    /// The exec's name in the container's dir
    pub token: String,
}

/// The hidden holder subcommand ([`container::exec_holder`]): stdout is the pipe to the
/// client, stderr the container's `monitor.log`.
pub fn holder_main(globals: &Globals, args: HolderArgs) -> anyhow::Result<i32> {
    let store = open_store(globals)?;
    Ok(container::exec_holder::serve(
        &store,
        &args.id,
        &args.token,
        std::io::stdout(),
    )?)
}
