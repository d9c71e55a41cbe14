//! The runner side: start a container's monitor, pass stdio or a pty, wait, map the status.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::thread::JoinHandle;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{self, SetArg, Termios};

use crate::channel::{Channel, Launch, Message};
use crate::init::INIT_ENV;
use crate::seccomp::{self, SeccompProfile};
use crate::signals::{self, Registration};
use crate::spec::{ContainerSpec, Rootfs};
use crate::terminal::window_size;
use crate::{mounts, namespaces, RuntimeError};

/// Errors of starting and supervising the container from the runner.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("failed to start the container monitor ({exe})")]
    Spawn {
        exe: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to pass the spec to the container monitor")]
    Spec(#[source] std::io::Error),
    #[error("failed to talk to the container monitor")]
    Channel(#[source] Errno),
    #[error(
        "the container monitor exited before the container started ({status}); \
         does the program call rbuild_runtime::init_hook() first thing in main?"
    )]
    EarlyExit { status: std::process::ExitStatus },
    #[error("failed to wait for the container")]
    Wait(#[source] std::io::Error),
    #[error("failed to send signal {signal} to the container")]
    Kill {
        signal: i32,
        #[source]
        source: Errno,
    },
    #[error("failed to set up the terminal")]
    Terminal(#[source] Errno),
    #[error("failed to connect into the container's network namespace")]
    Connect(#[source] std::io::Error),
}

/// Where one of the container's standard streams goes.
#[derive(Debug, Default)]
pub enum Io {
    /// The runner's own stream.
    #[default]
    Inherit,
    /// `/dev/null`.
    Null,
    /// A file, pipe or socket (for example one end of [`std::io::pipe`]).
    Fd(OwnedFd),
}

/// The container's stdin, stdout and stderr. With `terminal: true` the process gets a pty
/// instead and the runner copies `stdin` into it (when the caller's stdin is a terminal it
/// is put in raw mode until [`Container::wait`] returns; at end of input the pty gets an
/// EOF character) and its output to `stdout`; `stderr` is then unused. The thread copying
/// `stdin` may stay blocked in a read after the container ended.
#[derive(Debug, Default)]
pub struct Stdio {
    pub stdin: Io,
    pub stdout: Io,
    pub stderr: Io,
}

impl Stdio {
    /// All three inherited from the runner.
    pub fn inherit() -> Stdio {
        Stdio::default()
    }

    /// All three `/dev/null`.
    pub fn null() -> Stdio {
        Stdio {
            stdin: Io::Null,
            stdout: Io::Null,
            stderr: Io::Null,
        }
    }
}

pub(crate) fn to_std(io: Io) -> std::process::Stdio {
    match io {
        Io::Inherit => std::process::Stdio::inherit(),
        Io::Null => std::process::Stdio::null(),
        Io::Fd(fd) => std::process::Stdio::from(fd),
    }
}

/// How a container ended, docker-style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// The exit code, or 128+N when the process was killed by signal N (docker's mapping;
    /// 126 and 127 when the program is not executable or not found).
    pub code: i32,
    /// The signal that killed PID 1, if one did.
    pub signal: Option<i32>,
    /// The kernel's OOM killer killed a process of the container (over its memory limit):
    /// docker's `State.OOMKilled`.
    pub oom_killed: bool,
}

impl ExitStatus {
    pub fn success(&self) -> bool {
        self.code == 0
    }
}

/// A finished container's status and captured output, from [`output`].
#[derive(Debug, Clone)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// A running container. Dropping it without [`Container::wait`] kills it.
#[derive(Debug)]
pub struct Container {
    monitor: Child,
    chan: Channel,
    pid: i32,
    created: Vec<PathBuf>,
    change_root: PathBuf,
    tty: Option<TtyCopy>,
    _forwarding: Registration,
    finished: Option<ExitStatus>,
    notes: Vec<String>,
    /// The user-mode network helper, killed and reaped once the monitor ended.
    network_helper: Option<crate::network::user_mode::Helper>,
}

#[derive(Debug)]
struct TtyCopy {
    output: Option<JoinHandle<()>>,
    input: Option<JoinHandle<()>>,
    /// Dropping it stops the input copy.
    stop: Option<std::io::PipeWriter>,
    /// The caller's terminal and its mode before raw mode.
    restore: Option<(OwnedFd, Termios)>,
    /// The pty master, for [`Container::terminal`].
    master: Option<OwnedFd>,
}

static INIT_PROGRAM: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);

/// Makes the runtime execute `program` (which must call [`crate::init_hook`] first thing in
/// `main`) to set up containers, instead of the running binary; `None` restores the default.
/// For programs that cannot call the hook themselves, such as libtest unit tests: they can
/// point it at the `rbuild` binary (`env!("CARGO_BIN_EXE_rbuild")` in integration tests).
pub fn set_init_program(program: Option<PathBuf>) {
    *INIT_PROGRAM.lock().unwrap_or_else(|e| e.into_inner()) = program;
}

/// The program the runtime re-executes to set up containers: by default the running binary.
pub(crate) fn current_exe() -> PathBuf {
    INIT_PROGRAM
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_else(|| PathBuf::from("/proc/self/exe"))
}

fn validate(spec: &ContainerSpec) -> Result<(), RuntimeError> {
    let invalid = |m: String| Err(RuntimeError::InvalidSpec(m));
    if spec.process.args.is_empty() {
        return invalid("process args are empty".into());
    }
    if !spec.process.cwd.is_absolute() {
        return invalid(format!(
            "working directory {} is not absolute",
            spec.process.cwd.display()
        ));
    }
    let dirs: Vec<&Path> = match &spec.rootfs {
        Rootfs::Dir(d) => vec![d],
        Rootfs::Overlay {
            lowers,
            upper,
            work,
        } => lowers
            .iter()
            .map(PathBuf::as_path)
            .chain([upper.as_path(), work.as_path()])
            .collect(),
    };
    for d in dirs {
        if !d.is_absolute() || !d.is_dir() {
            return invalid(format!(
                "rootfs directory {} must be an existing absolute path",
                d.display()
            ));
        }
    }
    mounts::validate(&spec.mounts)?;
    if let Some(id) = &spec.id {
        let valid = !id.is_empty()
            && id != "."
            && id != ".."
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !valid {
            return invalid(format!("container id {id:?} is not [A-Za-z0-9_.-]+"));
        }
    }
    Ok(())
}

/// The spec's seccomp profile compiled for the container's capability set, packed for the
/// launch description. The last result is kept: runners use one profile (the default) for
/// every container, and compiling it costs more than the comparison.
fn compiled_seccomp(spec: &ContainerSpec) -> Result<Vec<Vec<u64>>, RuntimeError> {
    type Cache = Option<(SeccompProfile, u64, Vec<Vec<u64>>)>;
    static LAST: std::sync::Mutex<Cache> = std::sync::Mutex::new(None);
    let Some(profile) = &spec.seccomp else {
        return Ok(Vec::new());
    };
    // Capability conditions are evaluated against the container's set (its bounding set).
    let caps = spec.capabilities;
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((p, c, packed)) = last.as_ref() {
        if p == profile && *c == caps {
            return Ok(packed.clone());
        }
    }
    let packed = seccomp::pack(&profile.compile(caps)?);
    *last = Some((profile.clone(), caps, packed.clone()));
    Ok(packed)
}

/// `fd` itself when it is above 2, else a close-on-exec duplicate that is.
fn above_stdio(fd: OwnedFd) -> Result<OwnedFd, ProcessError> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC on an open descriptor; the result is checked and owned below.
    let raw = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if raw < 0 {
        return Err(ProcessError::Channel(Errno::last()));
    }
    // SAFETY: `raw` is a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn spec_memfd(launch: &Launch) -> Result<File, ProcessError> {
    let name = c"rbuild-container-spec";
    // SAFETY: memfd_create reads a NUL-terminated name; the result is checked below.
    let raw = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if raw < 0 {
        return Err(ProcessError::Spec(std::io::Error::last_os_error()));
    }
    // SAFETY: `raw` is a fresh descriptor nothing else owns.
    let mut file = unsafe { File::from_raw_fd(raw) };
    let json = serde_json::to_vec(launch).map_err(|e| ProcessError::Spec(e.into()))?;
    file.write_all(&json).map_err(ProcessError::Spec)?;
    file.rewind().map_err(ProcessError::Spec)?;
    Ok(file)
}

/// Starts a container and returns once its process is about to be executed (setup errors
/// are returned here). Signals the runner receives are forwarded to it until it is waited for.
///
/// The thread that calls `spawn` must stay alive until the container ends: the monitor
/// process is killed when its parent thread exits (`PR_SET_PDEATHSIG`).
pub fn spawn(spec: &ContainerSpec, stdio: Stdio) -> Result<Container, RuntimeError> {
    validate(spec)?;
    launch(spec, None, stdio)
}

/// Starts the monitor for `spec`: a new container, or with `join` a process in a running one
/// ([`crate::exec`]).
pub(crate) fn launch(
    spec: &ContainerSpec,
    join: Option<crate::exec::Join>,
    stdio: Stdio,
) -> Result<Container, RuntimeError> {
    // The monitor moves PID 1 (or the joining process) into its cgroups in a few ms.
    crate::cgroup::warm_up_moves(std::time::Duration::ZERO);
    let (ours, theirs) = Channel::pair().map_err(ProcessError::Channel)?;
    let window = if spec.process.terminal {
        [&stdio.stdin, &stdio.stdout]
            .into_iter()
            .find_map(|io| match io {
                Io::Inherit => window_size(0).or_else(|| window_size(1)),
                Io::Null => None,
                Io::Fd(fd) => window_size(fd.as_raw_fd()),
            })
            .map(|ws| (ws.ws_row, ws.ws_col))
            .or(spec.process.console_size)
    } else {
        None
    };
    let seccomp = compiled_seccomp(spec)?;
    // The profile travels compiled; the spec goes without it.
    let mut shipped = spec.clone();
    shipped.seccomp = None;
    let spec_file = spec_memfd(&Launch {
        spec: shipped,
        window,
        seccomp,
        join,
    })?;
    // Both must stay clear of 0..=2, which the child's stdio setup overwrites (a runner
    // with a closed stdin would otherwise get one of them there).
    let theirs = above_stdio(theirs.into_fd())?;
    let spec_file = File::from(above_stdio(spec_file.into())?);
    let (sock_fd, spec_fd) = (theirs.as_raw_fd(), spec_file.as_raw_fd());
    let exe = current_exe();
    let mut cmd = Command::new(&exe);
    cmd.arg0("rbuild-runtime-init")
        .env(INIT_ENV, format!("{sock_fd},{spec_fd}"))
        .process_group(0);
    let terminal = spec.process.terminal;
    let (tty_in, tty_out) = if terminal {
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(to_std(stdio.stderr));
        (Some(stdio.stdin), Some(stdio.stdout))
    } else {
        cmd.stdin(to_std(stdio.stdin))
            .stdout(to_std(stdio.stdout))
            .stderr(to_std(stdio.stderr));
        (None, None)
    };
    // SAFETY: the closure runs between fork and exec and only calls async-signal-safe
    // functions (fcntl, prctl) on descriptors and integers; it does not allocate.
    unsafe {
        cmd.pre_exec(move || {
            for fd in [sock_fd, spec_fd] {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            kill_with_parent()
        });
    }
    let monitor = cmd.spawn().map_err(|source| ProcessError::Spawn {
        exe: exe.clone(),
        source,
    })?;
    drop(theirs);
    drop(spec_file);
    let forwarding = signals::register(monitor.id() as i32);
    // A joining process creates no mount points: nothing to remove afterwards.
    let change_root = match &spec.rootfs {
        _ if join.is_some() => PathBuf::new(),
        Rootfs::Dir(d) => d.clone(),
        Rootfs::Overlay { upper, .. } => upper.clone(),
    };
    let mut container = Container {
        monitor,
        chan: ours,
        pid: 0,
        created: Vec::new(),
        change_root,
        tty: None,
        _forwarding: forwarding,
        finished: None,
        notes: Vec::new(),
        network_helper: None,
    };
    let mut master = None;
    let mut ready = false;
    while !(ready && container.pid != 0) {
        let message = container.chan.recv().map_err(ProcessError::Channel)?;
        match message {
            Some((Message::NeedIdMap, _)) => {
                namespaces::write_id_maps(container.monitor.id() as i32)?;
                container
                    .chan
                    .send(&Message::IdMapDone)
                    .map_err(ProcessError::Channel)?;
            }
            Some((Message::AttachNetwork, _)) => {
                let Some(net) = spec.user_network.as_ref() else {
                    continue;
                };
                let monitor = container.monitor.id() as i32;
                match crate::network::user_mode::start(net, monitor) {
                    Ok(helper) => {
                        container.network_helper = Some(helper);
                        container
                            .chan
                            .send(&Message::NetworkReady)
                            .map_err(ProcessError::Channel)?;
                    }
                    Err(e) => {
                        // PID 1 waits for the network: this makes it fail and end.
                        let message = crate::init::error_chain(&e);
                        let _ = container.chan.send(&Message::Error(message.clone()));
                        let _ = container.finish();
                        return Err(RuntimeError::Setup(message));
                    }
                }
            }
            Some((Message::Pid(pid), _)) => container.pid = pid,
            Some((Message::Created(paths), _)) => {
                // Only relative paths below the rootfs are ever removed again.
                container.created = paths
                    .into_iter()
                    .filter(|p| {
                        p.components()
                            .all(|c| matches!(c, std::path::Component::Normal(_)))
                    })
                    .collect();
            }
            Some((Message::Pty, fd)) => master = fd,
            Some((Message::Note(note), _)) => container.notes.push(note),
            Some((Message::Ready, _)) => ready = true,
            Some((Message::Error(message), _)) => {
                let _ = container.finish();
                return Err(RuntimeError::Setup(message));
            }
            Some((Message::Exit { .. } | Message::IdMapDone | Message::NetworkReady, _)) | None => {
                let status = container.finish_status()?;
                return Err(ProcessError::EarlyExit { status }.into());
            }
        }
    }
    if let (Some(master), Some(stdin), Some(stdout)) = (master, tty_in, tty_out) {
        container.tty = Some(start_tty_copy(master, stdin, stdout)?);
    }
    Ok(container)
}

/// For a child between fork and exec (async-signal-safe: one prctl): SIGKILL when the thread
/// that forked it ends, so that a killed runner leaves neither monitor nor helper behind.
pub(crate) fn kill_with_parent() -> std::io::Result<()> {
    // SAFETY: prctl(2) with integer arguments.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn dup_std(fd: RawFd) -> Option<OwnedFd> {
    // SAFETY: the runner's standard descriptors stay open for the life of the process.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    borrowed.try_clone_to_owned().ok()
}

/// Copies the size of `source` (the runner's terminal) to the pty `master` when it changed;
/// the kernel then sends SIGWINCH to the container's foreground process group.
fn sync_window_size(source: Option<&OwnedFd>, master: &OwnedFd, last: &mut Option<(u16, u16)>) {
    let Some(ws) = source.and_then(|fd| window_size(fd.as_raw_fd())) else {
        return;
    };
    if *last != Some((ws.ws_row, ws.ws_col)) {
        *last = Some((ws.ws_row, ws.ws_col));
        crate::terminal::set_size(master.as_fd(), ws.ws_row, ws.ws_col);
    }
}

fn start_tty_copy(master: OwnedFd, stdin: Io, stdout: Io) -> Result<TtyCopy, ProcessError> {
    let input = match stdin {
        Io::Inherit => dup_std(0),
        Io::Null => None,
        Io::Fd(fd) => Some(fd),
    };
    let output = match stdout {
        Io::Inherit => dup_std(1),
        Io::Null => None,
        Io::Fd(fd) => Some(fd),
    };
    // Size the pty like the runner's terminal, when there is one, and follow its changes.
    let size_source = input
        .iter()
        .chain(output.iter())
        .find(|fd| window_size(fd.as_raw_fd()).is_some())
        .and_then(|fd| fd.try_clone().ok());
    let mut last_size = None;
    sync_window_size(size_source.as_ref(), &master, &mut last_size); // normally already set
    let mut restore = None;
    if let Some(input) = &input {
        if nix::unistd::isatty(input.as_raw_fd()).unwrap_or(false) {
            let saved = termios::tcgetattr(input.as_fd()).map_err(ProcessError::Terminal)?;
            let mut raw = saved.clone();
            termios::cfmakeraw(&mut raw);
            termios::tcsetattr(input.as_fd(), SetArg::TCSANOW, &raw)
                .map_err(ProcessError::Terminal)?;
            let terminal = input
                .try_clone()
                .map_err(|e| ProcessError::Terminal(io_errno(&e)))?;
            restore = Some((terminal, saved));
        }
    }
    let mut reader = File::from(
        master
            .try_clone()
            .map_err(|e| ProcessError::Terminal(io_errno(&e)))?,
    );
    let size_master = master
        .try_clone()
        .map_err(|e| ProcessError::Terminal(io_errno(&e)))?;
    let kept_master = master.try_clone().ok();
    let output_thread = std::thread::spawn(move || {
        let mut sink = output.map(File::from);
        let mut buf = [0u8; 8192];
        loop {
            // Wake up now and then to pass on window size changes.
            let mut fds = [PollFd::new(reader.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(250u16)) {
                Ok(0) | Err(Errno::EINTR) => {
                    sync_window_size(size_source.as_ref(), &size_master, &mut last_size);
                    continue;
                }
                Ok(_) => {}
                Err(_) => break,
            }
            // Ends with EIO once every slave descriptor is closed (the container has exited).
            let n = match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if let Some(sink) = sink.as_mut() {
                if sink.write_all(&buf[..n]).is_err() {
                    sink.flush().ok();
                }
            }
        }
    });
    let (mut input_thread, mut stop) = (None, None);
    if let Some(input) = input {
        let mut writer = File::from(master);
        let (stop_reader, stop_writer) =
            std::io::pipe().map_err(|e| ProcessError::Terminal(io_errno(&e)))?;
        stop = Some(stop_writer);
        input_thread = Some(std::thread::spawn(move || {
            let mut source = File::from(input);
            let mut buf = [0u8; 8192];
            loop {
                let mut fds = [
                    PollFd::new(source.as_fd(), PollFlags::POLLIN),
                    PollFd::new(stop_reader.as_fd(), PollFlags::POLLIN),
                ];
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) => {}
                    Err(Errno::EINTR) => continue,
                    Err(_) => break,
                }
                if fds[1].revents().is_some_and(|r| !r.is_empty()) {
                    break; // the container ended
                }
                let n = source.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    // End of input: the terminal's EOF character (at the start of a line in
                    // canonical mode) so that a reading process sees end of file.
                    let _ = writer.write_all(b"\x04");
                    break;
                }
                if writer.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }));
    }
    Ok(TtyCopy {
        output: Some(output_thread),
        input: input_thread,
        stop,
        restore,
        master: kept_master,
    })
}

fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

impl Container {
    /// The container's PID 1 as seen from the runner.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// What the container goes without and why (no cgroup limits where the runner may not
    /// create cgroups, say): for the runner's debug output.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The container's pty master (a duplicate), when it has a terminal: what a relay of
    /// the terminal from elsewhere resizes ([`crate::terminal::set_size`]).
    pub fn terminal(&self) -> Option<OwnedFd> {
        self.tty
            .as_ref()
            .and_then(|t| t.master.as_ref())
            .and_then(|m| m.try_clone().ok())
    }

    /// Sends `signal` to the container's PID 1 (which, as in docker, ignores signals it has
    /// no handler for, except SIGKILL).
    pub fn kill(&self, signal: i32) -> Result<(), ProcessError> {
        // SAFETY: kill(2) with integer arguments.
        if unsafe { libc::kill(self.pid, signal) } < 0 {
            return Err(ProcessError::Kill {
                signal,
                source: Errno::last(),
            });
        }
        Ok(())
    }

    /// Opens a TCP connection to `port` on the container's loopback address, made from
    /// inside the container's network namespace: the building block of port forwarding
    /// (a listener on the host hands each connection's bytes to one of these). Needs root
    /// (joining the namespace); with `NetworkMode::Host` it is the host's loopback.
    pub fn connect_tcp(&self, port: u16) -> Result<std::net::TcpStream, ProcessError> {
        let ns_path = format!("/proc/{}/ns/net", self.pid);
        let ns = File::open(&ns_path).map_err(ProcessError::Connect)?;
        // Joining a network namespace affects only the calling thread: a short-lived thread
        // joins, connects, and ends; the socket stays in the container's namespace.
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(std::io::Error::from)?;
                    std::net::TcpStream::connect((std::net::Ipv4Addr::LOCALHOST, port))
                })
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("connect thread panicked")))
        })
        .map_err(ProcessError::Connect)
    }

    /// Waits for the container to end and returns its docker-style exit status.
    pub fn wait(mut self) -> Result<ExitStatus, RuntimeError> {
        self.finish()
    }

    fn finish_status(&mut self) -> Result<std::process::ExitStatus, ProcessError> {
        self.monitor.wait().map_err(ProcessError::Wait)
    }

    fn finish(&mut self) -> Result<ExitStatus, RuntimeError> {
        if let Some(status) = self.finished {
            return Ok(status);
        }
        // After Ready only the monitor (and, with `init`, the init) hold the socket; the
        // container's process never does, so an Exit message here is the monitor's.
        let mut reported = None;
        while let Ok(Some((message, _))) = self.chan.recv() {
            if let Message::Exit {
                code,
                signal,
                oom_killed,
            } = message
            {
                reported = Some(ExitStatus {
                    code,
                    signal,
                    oom_killed,
                });
            }
        }
        let monitor_status = self.finish_status()?;
        drop(self.network_helper.take());
        let status = reported.unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt;
            match monitor_status.signal() {
                Some(sig) => ExitStatus {
                    code: 128 + sig,
                    signal: Some(sig),
                    oom_killed: false,
                },
                None => ExitStatus {
                    code: monitor_status.code().unwrap_or(125),
                    signal: None,
                    oom_killed: false,
                },
            }
        });
        if let Some(tty) = self.tty.as_mut() {
            if let Some(handle) = tty.output.take() {
                let _ = handle.join();
            }
            drop(tty.stop.take());
            if let Some(handle) = tty.input.take() {
                let _ = handle.join();
            }
            if let Some((fd, saved)) = tty.restore.take() {
                let _ = termios::tcsetattr(fd.as_fd(), SetArg::TCSANOW, &saved);
            }
        }
        remove_created(&self.change_root, &self.created);
        self.finished = Some(status);
        Ok(status)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if self.finished.is_none() {
            if self.pid > 0 {
                let _ = self.kill(libc::SIGKILL);
            }
            let _ = self.monitor.kill();
            let _ = self.finish();
        }
    }
}

/// Removes the mount points the runtime created (empty files and directories only, last
/// first), so they do not show up in the change set.
pub(crate) fn remove_created(root: &Path, created: &[PathBuf]) {
    for rel in created.iter().rev() {
        // The container may have replaced a parent with a symlink: never follow one.
        let mut parent = root.to_path_buf();
        let mut through_symlink = false;
        for part in rel.parent().into_iter().flat_map(Path::components) {
            parent.push(part);
            through_symlink |= std::fs::symlink_metadata(&parent)
                .map(|m| !m.is_dir())
                .unwrap_or(true);
        }
        if through_symlink {
            continue;
        }
        let path = root.join(rel);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() && m.len() == 0 => {
                let _ = std::fs::remove_file(&path);
            }
            Ok(m) if m.is_dir() => {
                let _ = std::fs::remove_dir(&path); // fails unless empty
            }
            _ => {}
        }
    }
}

/// Runs a container to completion (blocking) and returns its docker-style exit status.
pub fn run(spec: &ContainerSpec, stdio: Stdio) -> Result<ExitStatus, RuntimeError> {
    spawn(spec, stdio)?.wait()
}

/// Runs a container with `stdin` as its input and returns its captured stdout and stderr
/// (with `terminal: true` everything arrives on stdout).
pub fn output(spec: &ContainerSpec, stdin: &[u8]) -> Result<Output, RuntimeError> {
    let pipe = || std::io::pipe().map_err(|e| RuntimeError::from(ProcessError::Spec(e)));
    let (in_r, mut in_w) = pipe()?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let stdio = Stdio {
        stdin: Io::Fd(in_r.into()),
        stdout: Io::Fd(out_w.into()),
        stderr: Io::Fd(err_w.into()),
    };
    let drain = |mut r: std::io::PipeReader| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out_thread = drain(out_r);
    let err_thread = drain(err_r);
    let input = stdin.to_vec();
    let in_thread = std::thread::spawn(move || {
        let _ = in_w.write_all(&input);
    });
    let status = run(spec, stdio)?;
    let _ = in_thread.join();
    Ok(Output {
        status,
        stdout: out_thread.join().unwrap_or_default(),
        stderr: err_thread.join().unwrap_or_default(),
    })
}
