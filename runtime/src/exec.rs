//! Joining a running container (`docker exec`): a new process in the container's
//! namespaces and cgroups, with the container's privileges, rlimits and seccomp filter.
//!
//! As for a new container, the runner re-executes its binary ([`crate::init_hook`]) and that
//! fresh, single-threaded monitor does the joining: `setns` into a PID namespace applies to
//! the caller's children only, and `setns` into a mount or user namespace refuses a
//! multi-threaded caller. The monitor opens the container's namespace files and the
//! `cgroup.procs` files of its rbuild groups (both through the host's `/proc` and
//! `/sys/fs/cgroup`, before anything is joined), joins the PID namespace for its next child
//! and forks; the child moves itself into the cgroups (before the cgroup namespace, whose
//! root hides the source group), joins the user (rootless), cgroup, IPC, UTS, network and
//! mount namespaces (the mount namespace's root is the container's root after its
//! `pivot_root`), then takes the container's steps from `setsid` on: pty, rlimits, user,
//! capabilities, `no_new_privs`, working directory, seccomp, exec. The monitor forwards
//! signals and reports the exit status as for a container; with `detach` it leaves once the
//! process is started (the process then belongs to the container's PID 1, as an orphan in
//! its PID namespace).

use std::convert::Infallible;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;

use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::unistd::{fork, ForkResult};
use serde::{Deserialize, Serialize};

use crate::capabilities;
use crate::cgroup;
use crate::channel::{Channel, Launch, Message};
use crate::init::{attach_pty, chan_err, enter_process, report, supervise, Exec};
use crate::keyring;
use crate::process::{launch, Container, Stdio};
use crate::seccomp;
use crate::spec::ContainerSpec;
use crate::RuntimeError;

/// Which container an `exec` joins, as the launch description carries it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Join {
    /// The container's PID 1 as the runner sees it.
    pub(crate) pid: i32,
    /// Leave the process running on its own once started (`exec -d`).
    pub(crate) detach: bool,
}

/// The namespaces joined, in order: the user namespace first (it grants the rights for the
/// others), the mount namespace last (after it the host's `/proc` is out of sight).
const NAMESPACES: [(&str, CloneFlags); 6] = [
    ("user", CloneFlags::CLONE_NEWUSER),
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// Starts `spec.process` inside the running container whose PID 1 is `pid` (as the runner
/// sees it) and returns once it is about to be executed; [`Container::wait`] then returns its
/// docker-style exit status. The rest of `spec` is the container's own (its rlimits and
/// seccomp profile apply; its rootfs, mounts and network are the container's already). With
/// `detach`, the process is left running and `wait` returns at once with status 0.
///
/// Needs the rights to join the container (root, or the rootless runner that started it).
pub fn exec(
    pid: i32,
    spec: &ContainerSpec,
    detach: bool,
    stdio: Stdio,
) -> Result<Container, RuntimeError> {
    if spec.process.args.is_empty() {
        return Err(RuntimeError::InvalidSpec("process args are empty".into()));
    }
    if !spec.process.cwd.is_absolute() {
        return Err(RuntimeError::InvalidSpec(format!(
            "working directory {} is not absolute",
            spec.process.cwd.display()
        )));
    }
    launch(spec, Some(Join { pid, detach }), stdio)
}

fn setup_err(what: &str) -> impl FnOnce(nix::errno::Errno) -> RuntimeError + '_ {
    move |e| RuntimeError::Setup(format!("{what}: {e}"))
}

/// The joining monitor (see the module docs); returns the process's exit code.
pub(crate) fn monitor(
    chan: &Channel,
    launch: &Launch,
    join: Join,
    set: &SigSet,
) -> Result<i32, RuntimeError> {
    let target = join.pid;
    let not_running = || RuntimeError::Setup(format!("container process {target} is gone"));
    let open_ns = |name: &str| -> Result<Option<File>, RuntimeError> {
        let theirs = format!("/proc/{target}/ns/{name}");
        let Ok(file) = File::open(&theirs) else {
            // No such namespace type on this kernel (cgroup), or the container is gone.
            return if std::path::Path::new(&format!("/proc/{target}")).exists() {
                Ok(None)
            } else {
                Err(not_running())
            };
        };
        let ours = std::fs::metadata(format!("/proc/self/ns/{name}")).ok();
        let same = match (file.metadata(), ours) {
            (Ok(a), Some(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        };
        Ok((!same).then_some(file))
    };
    let pid_ns = open_ns("pid")?;
    let mut namespaces = Vec::new();
    for (name, flag) in NAMESPACES {
        if let Some(file) = open_ns(name)? {
            namespaces.push((name, flag, file));
        }
    }
    let cgroups = cgroup::procs_files_of(target)?;
    if let Some(ns) = &pid_ns {
        setns(ns, CloneFlags::CLONE_NEWPID)
            .map_err(setup_err("failed to join the pid namespace"))?;
    }
    // SAFETY: this process is single-threaded (a fresh exec that started no threads), so
    // the child may allocate and run ordinary Rust code.
    match unsafe { fork() }.map_err(setup_err("fork failed"))? {
        ForkResult::Child => {
            let code = match joined_main(chan, launch, join, cgroups, namespaces) {
                Ok(never) => match never {},
                Err(e) => {
                    let _ = chan.send(&Message::Error(report(&e)));
                    125
                }
            };
            // SAFETY: _exit ends this forked child without running the parent's atexit work.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            chan.send(&Message::Pid(child.as_raw())).map_err(chan_err)?;
            if join.detach {
                return Ok(0);
            }
            let (code, signal) = supervise(child, set);
            let _ = chan.send(&Message::Exit {
                code,
                signal,
                oom_killed: false,
            });
            let _ = kill(child, Signal::SIGKILL); // already gone; never left behind
            Ok(code)
        }
    }
}

/// The joining child: into the cgroups and namespaces, then the container's privileges.
fn joined_main(
    chan: &Channel,
    launch: &Launch,
    join: Join,
    cgroups: Vec<File>,
    namespaces: Vec<(&str, CloneFlags, File)>,
) -> Result<Infallible, RuntimeError> {
    let spec = &launch.spec;
    if let Some(note) =
        keyring::join_new_session().map_err(setup_err("failed to join a new session keyring"))?
    {
        chan.send(&Message::Note(note)).map_err(chan_err)?;
    }
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    if !join.detach {
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
            .map_err(setup_err("failed to set the parent-death signal"))?;
    }
    for mut procs in cgroups {
        // "0": the writing process itself.
        procs.write_all(b"0").map_err(|e| {
            RuntimeError::Setup(format!("failed to join the container's cgroup: {e}"))
        })?;
    }
    for (name, flag, file) in &namespaces {
        setns(file, *flag).map_err(|e| {
            RuntimeError::Setup(format!(
                "failed to join the container's {name} namespace: {e}"
            ))
        })?;
    }
    drop(namespaces);
    nix::unistd::setsid().map_err(setup_err("setsid failed"))?;
    if spec.process.terminal {
        attach_pty(chan, spec.process.user.uid, launch.window, false)?;
    }
    capabilities::apply_rlimits(&spec.rlimits)?;
    let exec = Exec::prepare(spec);
    let filters = seccomp::unpack(&launch.seccomp);
    enter_process(chan, spec, &filters)?;
    exec.exec()
}
