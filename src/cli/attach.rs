//! `rbuild attach`, and the attached client that `start -a` and the foreground `run -it`
//! share: the container's output to our stdout/stderr, our stdin to the process (a local
//! terminal in raw mode, its size passed on), the detach keys, the signal proxy.

use std::io::IsTerminal;
use std::os::fd::AsFd;

use anyhow::Context;
use clap::Args;

use super::common::open_store;
use super::Globals;
use crate::container::attach::AttachRequest;
use crate::container::attach_client::{AttachEnd, Attachment};
use crate::container::{self, detach_keys, spec_file};
use crate::store::Store;

#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Do not attach STDIN
    #[arg(long)]
    pub no_stdin: bool,
    /// Proxy all received signals to the process (not with a terminal)
    #[arg(long, value_name = "BOOL", default_value = "true", num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub sig_proxy: bool,
    /// Override the key sequence for detaching a container (default ctrl-p,ctrl-q)
    #[arg(long, value_name = "KEYS")]
    pub detach_keys: Option<String>,
    /// Container (name or ID)
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// How the attached client behaves.
#[derive(Debug, Clone)]
pub(super) struct Session {
    /// The container has a terminal.
    pub tty: bool,
    /// Our stdin goes to the process.
    pub stdin: bool,
    /// Forward our signals to the process (never with a terminal, as docker).
    pub sig_proxy: bool,
    /// The detach sequence (with a terminal and stdin only, as docker).
    pub detach_keys: Vec<u8>,
}

impl Session {
    /// What to ask the monitor for; `close_stdin`: docker's `StdinOnce`.
    pub(super) fn request(&self, stdout: bool, stderr: bool, close_stdin: bool) -> AttachRequest {
        AttachRequest {
            stdin: self.stdin,
            stdout,
            stderr,
            close_stdin,
            size: self.tty.then(local_size).flatten(),
        }
    }
}

/// The size of our terminal (stdout's, else stdin's).
fn local_size() -> Option<(u16, u16)> {
    rbuild_runtime::terminal::size(std::io::stdout().as_fd())
        .or_else(|| rbuild_runtime::terminal::size(std::io::stdin().as_fd()))
}

/// The detach keys of a `--detach-keys` value (docker's default without one).
pub(super) fn parse_keys(value: Option<&str>) -> anyhow::Result<Vec<u8>> {
    Ok(detach_keys::parse(value.unwrap_or_default())?)
}

/// docker's refusal of `-i` with a terminal container when our stdin is not a terminal.
pub(super) fn check_input_terminal(session: &Session) -> anyhow::Result<()> {
    anyhow::ensure!(
        !(session.tty && session.stdin) || std::io::stdin().is_terminal(),
        "the input device is not a TTY"
    );
    Ok(())
}

/// Relays between us and container `id` until its process ends (its exit code) or we
/// detach (0, and nothing printed, as docker). An ended container that will not be
/// restarted is waited for until its monitor let go (it recorded the exit, or removed the
/// container: `--rm`), so that `ps` right after shows it exited, as after docker's.
pub(super) fn relay(
    store: &Store,
    id: &str,
    attachment: Attachment,
    session: &Session,
) -> anyhow::Result<i32> {
    let restart = container::find(store, id)?.restart;
    let lease = store.open_lease(id);
    let proxy_to = match session.sig_proxy && !session.tty {
        true => container::find(store, id)?.pid,
        false => None,
    };
    let end = exchange(attachment, session, proxy_to)?;
    Ok(match end {
        AttachEnd::Exited(code) => {
            if let Some(lease) = lease.filter(|_| restart == crate::store::RestartPolicy::No) {
                let _ = lease.lock_shared();
            }
            code
        }
        AttachEnd::Detached => 0,
        AttachEnd::Lost => container::wait(store, id)?,
    })
}

/// The client's side of a session (a container's or an `exec`'s): our terminal in raw mode
/// when the session has one and our stdin, the input passed on (watching for the detach
/// keys), the sizes followed, the output relayed until the process ends or we detach; our
/// signals go to `proxy_to` meanwhile.
pub(super) fn exchange(
    attachment: Attachment,
    session: &Session,
    proxy_to: Option<i32>,
) -> anyhow::Result<AttachEnd> {
    let _raw = match session.tty && session.stdin {
        true => rbuild_runtime::terminal::RawMode::enter(std::io::stdin().as_fd()),
        false => None,
    };
    let _proxy = proxy_to.map(rbuild_runtime::terminal::SignalProxy::start);
    if session.stdin {
        let input = std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .context("stdin")?;
        let keys = session.tty.then(|| session.detach_keys.clone());
        attachment.send_input(std::fs::File::from(input), keys);
    }
    if session.tty {
        follow_size(attachment.resizer());
    }
    Ok(attachment.relay(std::io::stdout(), std::io::stderr())?)
}

/// Passes our terminal's size changes on (checked four times a second, as the runtime
/// follows a local terminal), until the connection is gone.
fn follow_size(resizer: container::attach_client::Resizer) {
    std::thread::spawn(move || {
        let mut last = local_size();
        loop {
            std::thread::sleep(std::time::Duration::from_millis(250));
            let now = local_size();
            if now != last {
                last = now;
                if let Some((rows, cols)) = now {
                    if !resizer.resize(rows, cols) {
                        return;
                    }
                }
            }
        }
    });
}

/// Whether container `id` has a terminal (its recorded spec says).
pub(super) fn has_tty(store: &Store, id: &str) -> anyhow::Result<bool> {
    Ok(spec_file::load(store, id)?.process.terminal)
}

/// `attach`: to a running container, until it ends or we detach.
pub fn attach(globals: &Globals, args: AttachArgs) -> anyhow::Result<i32> {
    let detach_keys = parse_keys(args.detach_keys.as_deref())?;
    let store = open_store(globals)?;
    let record = container::find(&store, &args.container)?;
    anyhow::ensure!(
        store.container_running(&record),
        "You cannot attach to a stopped container, start it first"
    );
    anyhow::ensure!(
        !record.paused,
        "You cannot attach to a paused container, unpause it first"
    );
    let session = Session {
        tty: has_tty(&store, &record.id)?,
        stdin: record.open_stdin && !args.no_stdin,
        sig_proxy: args.sig_proxy,
        detach_keys,
    };
    check_input_terminal(&session)?;
    let attachment = Attachment::connect(&store, &record.id, &session.request(true, true, false))?;
    relay(&store, &record.id, attachment, &session)
}

/// The foreground `run -it` (see docs/containers.md for why it goes through the monitor):
/// creates the container, starts it with us attached, relays until it ends or we detach.
/// `streams`: `-a`'s stdin, stdout, stderr.
pub(super) fn run_attached(
    globals: &Globals,
    options: &container::RunOptions,
    streams: [bool; 3],
    detach_keys: Vec<u8>,
) -> anyhow::Result<i32> {
    let session = Session {
        tty: true,
        stdin: streams[0],
        sig_proxy: false,
        detach_keys,
    };
    let started = (|| -> anyhow::Result<_> {
        let store = open_store(globals)?;
        let record = container::create_container(&store, options)?;
        let request = session.request(streams[1], streams[2], true);
        let attachment = super::containers::launch_attached(&store, &record.id, &request)?;
        Ok((store, record.id, attachment))
    })();
    match started {
        Ok((store, id, attachment)) => relay(&store, &id, attachment, &session),
        Err(err) => {
            super::report::error(globals, &err);
            Ok(super::run::EXIT_RUN_FAILED)
        }
    }
}
