//! The container side: what runs in the re-executed binary after [`crate::init_hook`].
//!
//! Process tree of one container:
//!
//! ```text
//! runner (your program, any number of threads)
//!  └─ monitor: /proc/self/exe re-executed, single-threaded; new user (rootless), UTS, IPC
//!     │        and network namespaces; creates and removes the container's cgroup;
//!     │        forwards signals, reports the exit status
//!     └─ PID 1 of a new PID namespace (moved into the cgroup by the monitor meanwhile):
//!        │      new mount and (once in the cgroup) cgroup namespaces,
//!        │      own session keyring, rootfs, pivot_root, privileges, seccomp filter,
//!        │      then exec of the process (or the small init, with `init: true`)
//!        └─ (init mode only) the process
//! ```

use std::convert::Infallible;
use std::ffi::{CString, OsStr};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use crate::capabilities;
use crate::cgroup::Cgroup;
use crate::channel::{Channel, Launch, Message};
use crate::keyring;
use crate::mounts;
use crate::namespaces;
use crate::network;
use crate::paths::resolve_in_root;
use crate::rootfs;
use crate::seccomp;
use crate::signals::supervised_set;
use crate::spec::{ContainerSpec, NetworkMode, DEFAULT_PATH};
use crate::unmount::Keeper;
use crate::RuntimeError;

/// Environment variable that marks a re-executed binary as a container's monitor; its value
/// is `<socket fd>,<spec memfd>`.
pub(crate) const INIT_ENV: &str = "_RBUILD_RUNTIME_INIT";

/// The error and its causes on one line, `a: b: c`.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

/// What a container's process sends its runner of `error` (`Message::Error`): the cause
/// chain, less the "container setup failed" that the runner adds when it wraps the message
/// in [`RuntimeError::Setup`] again.
pub(crate) fn report(error: &RuntimeError) -> String {
    match error {
        RuntimeError::Setup(message) => message.clone(),
        other => error_chain(other),
    }
}

/// Entry of the monitor process; never returns.
pub(crate) fn monitor_main(value: &OsStr) -> ! {
    let set = supervised_set();
    // Signals stay blocked here and are taken with sigwait, so none is lost during setup.
    let _ = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None);
    std::env::remove_var(INIT_ENV);
    let fds: Vec<RawFd> = value
        .to_string_lossy()
        .split(',')
        .filter_map(|s| s.parse().ok())
        .collect();
    let [sock, spec_fd] = fds[..] else {
        eprintln!("rbuild-runtime: malformed {INIT_ENV}");
        std::process::exit(125);
    };
    // SAFETY: the runner passed these two descriptors to this process for it alone.
    let chan = unsafe { Channel::from_raw(sock) };
    // SAFETY: as above; the memfd holding the spec.
    let mut spec_file = unsafe { std::fs::File::from_raw_fd(spec_fd) };
    let mut text = String::new();
    let launch: Launch = match spec_file
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())
        .and_then(|_| serde_json::from_str(&text).map_err(|e| e.to_string()))
    {
        Ok(launch) => launch,
        Err(e) => {
            let _ = chan.send(&Message::Error(format!(
                "failed to read the container spec: {e}"
            )));
            std::process::exit(125);
        }
    };
    drop(spec_file);
    let result = match launch.join {
        Some(join) => crate::exec::monitor(&chan, &launch, join, &set),
        None => monitor(&chan, &launch, &set),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let _ = chan.send(&Message::Error(report(&e)));
            std::process::exit(125);
        }
    }
}

/// A per-container directory holding the rootfs mount point and the `/etc` files.
struct StateDir(PathBuf);

impl StateDir {
    fn create(spec: &ContainerSpec) -> std::io::Result<StateDir> {
        let base = std::env::temp_dir();
        remove_stale_state_dirs(&base);
        let dir = base.join(format!("rbuild-runtime-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir); // a stale one from a recycled pid
        std::fs::create_dir(&dir)?;
        let state = StateDir(dir);
        std::fs::create_dir(state.0.join("rootfs"))?;
        std::fs::create_dir(state.0.join("empty"))?;
        let host_network = spec.network == NetworkMode::Host;
        let hosts = rootfs::hosts_file(host_network, &spec.hostname, &spec.extra_hosts);
        std::fs::write(state.0.join("hosts"), hosts)?;
        std::fs::write(state.0.join("hostname"), format!("{}\n", spec.hostname))?;
        std::fs::write(
            state.0.join("resolv.conf"),
            rootfs::container_resolv_conf(host_network, &spec.dns, &spec.dns_search),
        )?;
        Ok(state)
    }
}

/// Removes state directories whose monitor is gone without cleaning up (it was killed):
/// their mounts lived only in that container's mount namespace, which is gone too.
fn remove_stale_state_dirs(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("rbuild-runtime-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn io_err(what: &str) -> impl FnOnce(std::io::Error) -> RuntimeError + '_ {
    move |e| RuntimeError::Setup(format!("{what}: {e}"))
}

pub(crate) fn chan_err(e: Errno) -> RuntimeError {
    RuntimeError::Setup(format!("lost the runner's socket: {e}"))
}

fn monitor(chan: &Channel, launch: &Launch, set: &SigSet) -> Result<i32, RuntimeError> {
    let spec = &launch.spec;
    let rootless = !nix::unistd::geteuid().is_root();
    if rootless {
        namespaces::unshare_user()?;
        chan.send(&Message::NeedIdMap).map_err(chan_err)?;
        match chan.recv().map_err(chan_err)? {
            Some((Message::IdMapDone, _)) => {}
            other => {
                return Err(RuntimeError::Setup(format!(
                    "expected the id maps to be written, got {other:?}"
                )))
            }
        }
        namespaces::become_root()?;
    }
    let state = StateDir::create(spec).map_err(io_err("failed to create the state directory"))?;
    let name = spec
        .id
        .clone()
        .unwrap_or_else(|| format!("run-{}", std::process::id()));
    // Before anything is mounted: a previous run's unmount of the same upper dir must end.
    let mut keeper = Keeper::lock(&spec.rootfs, spec.volatile_overlay)?;
    let (cgroup, note) = Cgroup::create(&name, &spec.resources)?;
    if let Some(note) = note {
        chan.send(&Message::Note(note)).map_err(chan_err)?;
    }
    let bridged = spec.bridge.is_some() || !spec.extra_bridges.is_empty();
    let bridge = match bridged && spec.network != NetworkMode::Host {
        true => Some(network::HostSide::open()?),
        false => None,
    };
    // A joined network namespace is not ours to make: unshare the others only.
    let network = match spec.join_network {
        Some(pid) => {
            network::join_netns(pid)?;
            NetworkMode::Host
        }
        None => spec.network,
    };
    namespaces::unshare_container(network)?;
    if let Some(host) = bridge {
        host.attach(spec.bridge.as_ref(), &spec.extra_bridges)?;
    }
    if user_network(spec) {
        // The runner starts the helper while PID 1 sets up; PID 1 waits for it before exec.
        chan.send(&Message::AttachNetwork).map_err(chan_err)?;
    }
    // PID 1 learns through this pipe that it is in its cgroup (one byte, 1).
    let (moved_r, moved_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| RuntimeError::Setup(format!("pipe failed: {e}")))?;
    // PID 1 tells through this one that it pivoted into its rootfs (see [`Keeper::hold`]).
    let (pivoted_r, pivoted_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| RuntimeError::Setup(format!("pipe failed: {e}")))?;
    // SAFETY: this process is single-threaded (a fresh exec that started no threads), so
    // the child may allocate and run ordinary Rust code.
    match unsafe { fork() }.map_err(|e| RuntimeError::Setup(format!("fork failed: {e}")))? {
        ForkResult::Child => {
            drop(moved_w);
            drop(pivoted_r);
            let moved = cgroup.is_some().then_some(moved_r);
            let pivoted = keeper.is_some().then_some(pivoted_w);
            let code = match container_main(chan, launch, &state.0, rootless, set, moved, pivoted) {
                Ok(never) => match never {},
                Err(e) => {
                    let _ = chan.send(&Message::Error(report(&e)));
                    125
                }
            };
            // The monitor removes the state directory and the cgroup, not this child.
            std::mem::forget(state);
            std::mem::forget(cgroup);
            // SAFETY: _exit ends this forked child without running the parent's atexit work.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(moved_r);
            chan.send(&Message::Pid(child.as_raw())).map_err(chan_err)?;
            if let Some(cgroup) = &cgroup {
                if let Err(e) = cgroup.add(child.as_raw()) {
                    let _ = kill(child, Signal::SIGKILL);
                    let _ = waitpid(child, None);
                    return Err(e.into());
                }
                // Fails only when PID 1 already ended (a setup error it reported itself).
                let _ = nix::unistd::write(&moved_w, &[1]);
            }
            drop(moved_w);
            drop(pivoted_w);
            if let Some(keeper) = &mut keeper {
                keeper.hold(pivoted_r, child);
            }
            let (code, signal) = supervise(child, set);
            let oom_killed = cgroup.as_ref().is_some_and(Cgroup::oom_killed);
            // Gone before the runner hears of the exit.
            drop(cgroup);
            drop(state);
            if let Some(keeper) = keeper {
                keeper.hand_off();
            }
            let _ = chan.send(&Message::Exit {
                code,
                signal,
                oom_killed,
            });
            Ok(code)
        }
    }
}

/// Whether the runner attaches a user-mode network helper to the container's namespace.
fn user_network(spec: &ContainerSpec) -> bool {
    spec.user_network.is_some() && spec.network != NetworkMode::Host
}

/// Forwards signals to `child` until it ends; returns docker's exit code and the signal.
pub(crate) fn supervise(child: Pid, set: &SigSet) -> (i32, Option<i32>) {
    loop {
        let Ok(signal) = set.wait() else { continue };
        if signal != Signal::SIGCHLD {
            let _ = kill(child, signal);
            continue;
        }
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == child => return (code, None),
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => {
                    return (128 + sig as i32, Some(sig as i32))
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }
}

/// Sets up PID 1 of the container and executes the process.
fn container_main(
    chan: &Channel,
    launch: &Launch,
    state: &Path,
    rootless: bool,
    set: &SigSet,
    moved: Option<OwnedFd>,
    pivoted: Option<OwnedFd>,
) -> Result<Infallible, RuntimeError> {
    let spec = &launch.spec;
    if let Some(note) = keyring::join_new_session()
        .map_err(|e| RuntimeError::Setup(format!("failed to join a new session keyring: {e}")))?
    {
        chan.send(&Message::Note(note)).map_err(chan_err)?;
    }
    // Docker's umask, whatever the runner's: files a RUN step creates must not depend on it.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
        .map_err(|e| RuntimeError::Setup(format!("failed to set the parent-death signal: {e}")))?;
    unshare(CloneFlags::CLONE_NEWNS).map_err(|source| namespaces::NamespaceError::Unshare {
        what: "mount",
        source,
    })?;
    rootfs::make_private()?;
    let root = state.join("rootfs");
    rootfs::mount_rootfs(
        &spec.rootfs,
        &root,
        &state.join("empty"),
        rootless,
        spec.volatile_overlay,
    )?;
    namespaces::set_hostname(&spec.hostname)?;
    if spec.network != NetworkMode::Host {
        namespaces::loopback_up()?;
    }
    let mut created = Vec::new();
    rootfs::mount_proc_sys(&root, spec.privileged, &mut created)?;
    rootfs::mount_dev(&root, spec, &mut created)?;
    rootfs::bind_etc_files(&root, state, &mut created)?;
    mounts::apply(&root, &spec.mounts, &mut created)?;
    let cwd = resolve_in_root(&root, &spec.process.cwd);
    std::fs::create_dir_all(&cwd).map_err(|source| rootfs::RootfsError::Create {
        path: spec.process.cwd.clone(),
        source,
    })?;
    rootfs::pivot_root(&root)?;
    if let Some(pivoted) = pivoted {
        // Fails only when the monitor is gone, and then so is this process (parent-death
        // signal).
        let _ = nix::unistd::write(&pivoted, &[1]);
    }
    if !spec.privileged {
        rootfs::mask_paths()?;
    }
    if spec.readonly_rootfs {
        rootfs::remount_readonly(Path::new("/"))?;
    }
    chan.send(&Message::Created(created)).map_err(chan_err)?;
    nix::unistd::setsid().map_err(|e| RuntimeError::Setup(format!("setsid failed: {e}")))?;
    if spec.process.terminal {
        attach_pty(chan, spec.process.user.uid, launch.window, true)?;
    }
    capabilities::apply_rlimits(&spec.rlimits)?;
    let exec = Exec::prepare(spec);
    let filters = seccomp::unpack(&launch.seccomp);
    // In the cgroup before anything of the container runs (the monitor moved this process
    // while it mounted: moving waits for an RCU grace period), then a cgroup namespace
    // rooted there (while CAP_SYS_ADMIN is still held).
    if let Some(moved) = moved {
        let mut byte = [0u8];
        if nix::unistd::read(moved.as_raw_fd(), &mut byte) != Ok(1) || byte[0] != 1 {
            return Err(RuntimeError::Setup(
                "the monitor did not move the container into its cgroup".into(),
            ));
        }
    }
    namespaces::unshare_cgroup()?;
    if user_network(spec) {
        match chan.recv().map_err(chan_err)? {
            Some((Message::NetworkReady, _)) => {}
            Some((Message::Error(message), _)) => return Err(RuntimeError::Setup(message)),
            other => {
                return Err(RuntimeError::Setup(format!(
                    "expected the user-mode network to be ready, got {other:?}"
                )))
            }
        }
    }
    enter_process(chan, spec, &filters)?;
    if spec.init {
        run_init(exec, spec.process.terminal, set)
    } else {
        exec.exec()
    }
}

/// The last steps before the process (or the init) is executed, for a container's PID 1
/// and for `exec` alike: the user and capabilities (and `no_new_privs`), the working
/// directory, the seccomp filter, then Ready to the runner and the runner's socket closed.
pub(crate) fn enter_process(
    chan: &Channel,
    spec: &ContainerSpec,
    filters: &[seccompiler::BpfProgram],
) -> Result<(), RuntimeError> {
    // Without no_new_privs the kernel accepts a filter only from a process holding
    // CAP_SYS_ADMIN: it goes in first (as runc does), and the profile must then allow the
    // privilege changes that follow (docker's does).
    let keep_privs = !spec.no_new_privileges && !filters.is_empty();
    if keep_privs {
        seccomp::install_keeping_privs(filters)?;
    }
    capabilities::drop_privileges(
        &spec.process.user,
        spec.capabilities,
        spec.no_new_privileges,
    )?;
    nix::unistd::chdir(&spec.process.cwd).map_err(|e| {
        RuntimeError::Setup(format!(
            "failed to change to working directory {}: {e}",
            spec.process.cwd.display()
        ))
    })?;
    // Last, after no_new_privs: from here on only calls every profile must allow (the
    // messages to the runner, close, exec; with `init`, fork and wait) are made here.
    if !keep_privs {
        seccomp::install(filters)?;
    }
    chan.send(&Message::Ready).map_err(chan_err)?;
    // Nothing in the container may hold the runner's socket (the process would also lose it
    // at exec; the init would not). This process ends in exec or _exit, so the Channel's own
    // close never runs after this one.
    let _ = nix::unistd::close(chan.raw());
    Ok(())
}

/// Opens a pty in the container's devpts, sends the master to the runner, and makes the
/// slave the controlling terminal and stdin/stdout/stderr. With `console` (the container's
/// own process, not an `exec`) it is also bound to `/dev/console`.
pub(crate) fn attach_pty(
    chan: &Channel,
    uid: u32,
    window: Option<(u16, u16)>,
    console: bool,
) -> Result<(), RuntimeError> {
    use nix::fcntl::OFlag;
    let err = |what: &str, e: Errno| RuntimeError::Setup(format!("failed to {what}: {e}"));
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(|e| err("open /dev/ptmx", e))?;
    nix::pty::grantpt(&master).map_err(|e| err("grant the pty", e))?;
    nix::pty::unlockpt(&master).map_err(|e| err("unlock the pty", e))?;
    let name = nix::pty::ptsname_r(&master).map_err(|e| err("name the pty", e))?;
    let slave = nix::fcntl::open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| err("open the pty slave", e))?;
    let _ = nix::unistd::fchown(slave, Some(nix::unistd::Uid::from_raw(uid)), None);
    if console {
        // As docker: the pty is also the container's /dev/console.
        let console = Path::new("/dev/console");
        std::fs::File::create(console).map_err(|e| err("create /dev/console", io_errno(&e)))?;
        nix::mount::mount(
            Some(name.as_str()),
            console,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| err("bind the pty to /dev/console", e))?;
    }
    if let Some((rows, cols)) = window {
        crate::terminal::set_size(master.as_fd(), rows, cols);
    }
    chan.send_with(&Message::Pty, Some(master.as_raw_fd()))
        .map_err(chan_err)?;
    drop(master);
    // SAFETY: TIOCSCTTY takes an integer argument; `slave` is an open terminal.
    if unsafe { libc::ioctl(slave, libc::TIOCSCTTY, 0) } < 0 {
        return Err(err("set the controlling terminal", Errno::last()));
    }
    for target in 0..3 {
        nix::unistd::dup2(slave, target).map_err(|e| err("attach the pty", e))?;
    }
    if slave > 2 {
        let _ = nix::unistd::close(slave);
    }
    Ok(())
}

fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Everything `execve` needs, prepared while still privileged (allocation happens here).
pub(crate) struct Exec {
    argv: Vec<CString>,
    envp: Vec<CString>,
    path_env: String,
    arg0: String,
}

impl Exec {
    pub(crate) fn prepare(spec: &ContainerSpec) -> Exec {
        let process = &spec.process;
        let mut env = process.env.clone();
        let has = |env: &[String], key: &str| env.iter().any(|e| e.split('=').next() == Some(key));
        if !has(&env, "PATH") {
            env.push(format!("PATH={DEFAULT_PATH}"));
        }
        if !has(&env, "HOME") {
            let home = process
                .user
                .home
                .clone()
                .unwrap_or_else(|| PathBuf::from("/"));
            env.push(format!("HOME={}", home.display()));
        }
        if process.terminal && !has(&env, "TERM") {
            env.push("TERM=xterm".to_string());
        }
        let path_env = env
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH)
            .to_string();
        let cstr = |s: &str| CString::new(s.replace('\0', "")).unwrap_or_default();
        Exec {
            argv: process.args.iter().map(|a| cstr(a)).collect(),
            envp: env.iter().map(|e| cstr(e)).collect(),
            path_env,
            arg0: process.args.first().cloned().unwrap_or_default(),
        }
    }

    /// Looks the program up and executes it; on failure prints docker's message and exits
    /// 127 (not found) or 126 (not executable).
    pub(crate) fn exec(self) -> ! {
        // The runner's descriptors (and this process's socket to it) must not reach the
        // container's process.
        crate::fds::cloexec_above_stderr();
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
        // Ignored signals survive exec: give the process default dispositions (Rust's
        // runtime ignores SIGPIPE in this binary; the runner may ignore others).
        // The raw syscall, because libc refuses to touch the signals it reserves (32, 33).
        #[repr(C)]
        struct KernelSigaction {
            handler: usize,
            flags: u64,
            restorer: usize,
            mask: u64,
        }
        let default = KernelSigaction {
            handler: libc::SIG_DFL,
            flags: 0,
            restorer: 0,
            mask: 0,
        };
        for signal in 1..=64 {
            if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                // SAFETY: rt_sigaction reads a kernel sigaction (SIG_DFL, no flags, empty
                // mask) of the layout above; the old action is not requested.
                unsafe {
                    libc::syscall(
                        libc::SYS_rt_sigaction,
                        signal,
                        &default,
                        std::ptr::null_mut::<KernelSigaction>(),
                        8,
                    )
                };
            }
        }
        let (code, message) = match self.find() {
            Err(message) => (127, message),
            Ok(path) => {
                let errno = match nix::unistd::execve(&path, &self.argv, &self.envp) {
                    Err(e) => e,
                    Ok(never) => match never {},
                };
                let code = if errno == Errno::ENOENT { 127 } else { 126 };
                (
                    code,
                    format!("exec: {:?}: {}", self.arg0, errno.desc().to_lowercase()),
                )
            }
        };
        let _ = writeln!(std::io::stderr(), "rbuild: {message}");
        // SAFETY: ends the process without unwinding or running destructors.
        unsafe { libc::_exit(code) }
    }

    fn find(&self) -> Result<CString, String> {
        if self.arg0.is_empty() {
            return Err("exec: no command given".to_string());
        }
        if self.arg0.contains('/') {
            return CString::new(self.arg0.as_bytes()).map_err(|e| e.to_string());
        }
        for dir in self.path_env.split(':') {
            let dir = if dir.is_empty() { "." } else { dir };
            let candidate = Path::new(dir).join(&self.arg0);
            if let Ok(meta) = std::fs::metadata(&candidate) {
                use std::os::unix::fs::PermissionsExt;
                if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                    return CString::new(candidate.as_os_str().as_bytes())
                        .map_err(|e| e.to_string());
                }
            }
        }
        Err(format!(
            "exec: {:?}: executable file not found in $PATH",
            self.arg0
        ))
    }
}

/// The small init: runs the process as its child, forwards signals to it, reaps every
/// zombie, and exits with the process's status (128+N when killed by signal N).
fn run_init(exec: Exec, terminal: bool, set: &SigSet) -> ! {
    // SAFETY: single-threaded (forked from the single-threaded monitor).
    let child = match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            if terminal {
                let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
                // Taking the foreground from a background group raises SIGTTOU unless it is
                // blocked; exec unblocks it again.
                let mut ttou = SigSet::empty();
                ttou.add(Signal::SIGTTOU);
                let _ = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&ttou), None);
                let _ = nix::unistd::tcsetpgrp(std::io::stdin(), nix::unistd::getpid());
            }
            exec.exec()
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "rbuild: init: fork failed: {e}");
            // SAFETY: ends the process without unwinding.
            unsafe { libc::_exit(126) }
        }
    };
    let (code, _) = supervise(child, set);
    // Reap whatever else is left before the namespace goes away.
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
    // SAFETY: ends the process without unwinding.
    unsafe { libc::_exit(code) }
}
