//! Real-kernel container tests (run as root, as CI does).
//!
//! `harness = false`: the runtime re-executes this very binary to set up each container,
//! so `main` calls `rbuild_runtime::init_hook()` first, like the `rbuild` binary. Tests run
//! one after another (signals sent to this process must reach only one container).
//! `cargo test -p rbuild-runtime --test containers [FILTER]`.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rbuild_runtime::{
    changes, ContainerSpec, Io, MountKind, MountSpec, NetworkMode, Output, Rootfs, RuntimeError,
    Stdio,
};

static BASE: OnceLock<PathBuf> = OnceLock::new();

/// A temporary directory for the whole run (busybox rootfs and one dir per test).
fn base() -> &'static Path {
    BASE.get().expect("base dir set in main")
}

/// The busybox rootfs, built once per test binary.
fn busybox() -> PathBuf {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS
        .get_or_init(|| {
            let dir = base().join("busybox");
            let script =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/base/busybox-rootfs.sh");
            let status = std::process::Command::new("bash")
                .arg(script)
                .arg(&dir)
                .status()
                .expect("run busybox-rootfs.sh");
            assert!(status.success(), "busybox-rootfs.sh failed");
            dir
        })
        .clone()
}

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = base().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An overlay over the busybox rootfs with a fresh upper dir; returns the rootfs and upper.
fn overlay(name: &str) -> (Rootfs, PathBuf) {
    let dir = scratch(name);
    let (upper, work) = (dir.join("upper"), dir.join("work"));
    std::fs::create_dir(&upper).unwrap();
    std::fs::create_dir(&work).unwrap();
    let rootfs = Rootfs::Overlay {
        lowers: vec![busybox()],
        upper: upper.clone(),
        work,
    };
    (rootfs, upper)
}

/// `sh -c script` in an overlay over busybox.
fn sh(name: &str, script: &str) -> ContainerSpec {
    let (rootfs, _) = overlay(name);
    ContainerSpec::new(rootfs, vec!["sh".into(), "-c".into(), script.into()])
}

fn output(spec: &ContainerSpec, stdin: &[u8]) -> Output {
    rbuild_runtime::output(spec, stdin).unwrap_or_else(|e| panic!("run failed: {e}"))
}

fn stdout_of(spec: &ContainerSpec) -> String {
    let out = output(spec, b"");
    assert!(
        out.status.success(),
        "exit {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn status_line<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
        .unwrap_or_else(|| panic!("{key} missing in:\n{status}"))
}

// ---- isolation ----

fn sees_only_its_own_pids() {
    let out = stdout_of(&sh("pids", "echo $$; ls -d /proc/[0-9]*"));
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("1"), "the process is PID 1: {out}");
    let pids: Vec<u32> = lines
        .map(|l| l.trim_start_matches("/proc/").parse().unwrap())
        .collect();
    // sh (1) and ls; the host's processes (this test binary among them) are not visible.
    assert!(pids.len() <= 2 && pids.iter().all(|p| *p < 10), "{pids:?}");
    assert!(!pids.contains(&std::process::id()) || std::process::id() < 10);
}

fn has_its_own_hostname() {
    let mut spec = sh(
        "hostname",
        "hostname; cat /etc/hostname; grep boxy /etc/hosts",
    );
    spec.hostname = "boxy".into();
    let out = stdout_of(&spec);
    assert_eq!(out, "boxy\nboxy\n127.0.1.1\tboxy\n");
    let host = nix::unistd::gethostname().unwrap();
    assert_ne!(host.to_str(), Some("boxy"));
}

fn sees_none_of_the_hosts_mounts() {
    let out = stdout_of(&sh("mounts", "cut -d' ' -f5 /proc/self/mountinfo"));
    let allowed = |m: &str| {
        [
            "/",
            "/proc",
            "/sys",
            "/dev",
            "/dev/pts",
            "/dev/shm",
            "/dev/mqueue",
        ]
        .contains(&m)
            || ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"].contains(&m)
            || rbuild_runtime::MASKED_PATHS.contains(&m)
            || rbuild_runtime::READONLY_PATHS.contains(&m)
    };
    for m in out.lines() {
        assert!(allowed(m), "unexpected mount {m} in:\n{out}");
    }
    // The host's own mounts (for example whatever is mounted under /mnt or /run) are absent.
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let host_only: Vec<&str> = host
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| !allowed(m))
        .collect();
    for m in host_only {
        assert!(!out.lines().any(|l| l == m), "host mount {m} visible");
    }
}

fn container_mounts_do_not_reach_the_host() {
    // While a container runs, none of its mounts (overlay root, /proc, /dev, binds) may
    // show up in the host's mount table: they live in its private mount namespace.
    let dir = scratch("leak");
    std::fs::create_dir_all(dir.join("vol")).unwrap();
    let (rootfs, upper) = overlay("leak-c");
    let mut spec = ContainerSpec::new(rootfs, vec!["sleep".into(), "10".into()]);
    spec.mounts = vec![MountSpec {
        destination: "/vol".into(),
        kind: MountKind::Bind {
            source: dir.join("vol"),
        },
        readonly: true,
    }];
    let container = rbuild_runtime::spawn(&spec, Stdio::null()).unwrap();
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let theirs = std::fs::read_to_string(format!("/proc/{}/mountinfo", container.pid())).unwrap();
    container.kill(libc::SIGKILL).unwrap();
    container.wait().unwrap();
    assert!(
        theirs.contains(" /vol "),
        "the container has its mounts: {theirs}"
    );
    for needle in ["rbuild-runtime-", upper.to_str().unwrap(), " /vol "] {
        assert!(
            !host.contains(needle),
            "{needle} leaked into the host:\n{host}"
        );
    }
}

fn mount_is_denied() {
    let out = output(
        &sh("mountdeny", "mkdir -p /mnt && mount -t tmpfs none /mnt"),
        b"",
    );
    assert_ne!(out.status.code, 0);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ermission denied") || err.contains("not permitted"),
        "{err}"
    );
}

fn proc_sys_is_read_only() {
    let out = output(
        &sh("procsys", "echo other > /proc/sys/kernel/hostname"),
        b"",
    );
    assert_ne!(out.status.code, 0);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Read-only"));
    let out = stdout_of(&sh(
        "procsys2",
        "grep -E ' /proc/sys | /sys ' /proc/self/mountinfo | cut -d' ' -f5,6; \
         touch /sys/x 2>/dev/null || echo sys-ro",
    ));
    assert!(out.contains("/proc/sys ro,"), "{out}");
    assert!(out.contains("/sys ro,"), "{out}");
    assert!(out.ends_with("sys-ro\n"), "{out}");
    // Docker's masked files that exist on this kernel read as empty in the container.
    let masked: Vec<&str> = rbuild_runtime::MASKED_PATHS
        .iter()
        .copied()
        .filter(|p| p.starts_with("/proc/") && Path::new(p).is_file())
        .collect();
    assert!(!masked.is_empty());
    for path in masked {
        let host_len = std::fs::read(path).unwrap().len();
        let out = stdout_of(&sh("masked", &format!("wc -c < {path}")));
        assert_eq!(out, "0\n", "{path} (host: {host_len} bytes)");
    }
}

fn capabilities_and_no_new_privs_are_dockers() {
    // (`; true`: busybox sh would exec cat directly, with SIGQUIT ignored)
    let out = stdout_of(&sh("caps", "cat /proc/self/status; true"));
    let docker = format!("{:016x}", rbuild_runtime::default_capability_mask());
    assert_eq!(docker, "00000000a80425fb");
    assert_eq!(status_line(&out, "CapEff:"), docker);
    assert_eq!(status_line(&out, "CapPrm:"), docker);
    assert_eq!(status_line(&out, "CapBnd:"), docker);
    assert_eq!(status_line(&out, "CapAmb:"), "0000000000000000");
    assert_eq!(status_line(&out, "NoNewPrivs:"), "1");
    // Nothing ignored or blocked is inherited from the runner (SIGPIPE in particular).
    assert_eq!(status_line(&out, "SigIgn:"), "0000000000000000");
    assert_eq!(status_line(&out, "SigBlk:"), "0000000000000000");

    let mut spec = sh("caps-user", "cat /proc/self/status");
    spec.process.user = rbuild_runtime::resolve_user(&busybox(), "app").unwrap();
    let out = stdout_of(&spec);
    assert_eq!(status_line(&out, "CapEff:"), "0000000000000000");
    assert_eq!(status_line(&out, "CapBnd:"), docker);
    assert_eq!(status_line(&out, "NoNewPrivs:"), "1");
}

fn dev_is_minimal() {
    let out = stdout_of(&sh("dev", "ls /dev | tr '\\n' ' '; echo; ls -l /dev/null"));
    assert!(
        out.starts_with(
            "core fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero \n"
        ),
        "{out}"
    );
    assert!(out.contains("1,   3"), "/dev/null is char 1,3: {out}");
    let out = stdout_of(&sh(
        "dev2",
        "echo hi > /dev/null && head -c 4 /dev/zero | wc -c",
    ));
    assert_eq!(out.trim(), "4");
}

fn network_none_has_only_loopback_and_host_sees_host() {
    let out = stdout_of(&sh(
        "net-none",
        "ls /sys/class/net; cat /sys/class/net/lo/operstate",
    ));
    let mut lines: Vec<&str> = out.lines().collect();
    let _state = lines.pop();
    assert_eq!(lines, vec!["lo"]);
    // The same namespace (its identity: the host's interfaces come and go meanwhile).
    let host = std::fs::read_link("/proc/self/ns/net").unwrap();
    let mut spec = sh("net-host", "readlink /proc/self/ns/net");
    spec.network = NetworkMode::Host;
    let out = stdout_of(&spec);
    assert_eq!(
        out.trim(),
        host.to_string_lossy(),
        "the host's network namespace"
    );
}

fn tcp_connection_into_the_network_namespace() {
    // Free on the host: the test shows the server is not reachable there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (rootfs, _) = overlay("connect");
    let spec = ContainerSpec::new(
        rootfs,
        ["httpd", "-f", "-p", &port.to_string(), "-h", "/etc"]
            .map(String::from)
            .to_vec(),
    );
    let container = rbuild_runtime::spawn(&spec, Stdio::null()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stream = loop {
        match container.connect_tcp(port) {
            Ok(stream) => break stream,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("cannot connect: {e}"),
        }
    };
    std::io::Write::write_all(&mut stream, b"GET /issue HTTP/1.0\r\n\r\n").unwrap();
    let mut response = String::new();
    std::io::Read::read_to_string(&mut stream, &mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.ends_with("rbuild-test-busybox\n"), "{response}");
    // The server listens only in the container's namespace, not on the host's loopback.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(
        container.connect_tcp(port).is_ok(),
        "still listening inside"
    );
    container.kill(libc::SIGKILL).unwrap();
    assert_eq!(container.wait().unwrap().code, 137);
}

// ---- process ----

fn exit_codes_follow_docker() {
    let code = |name: &str, args: &[&str]| {
        let (rootfs, _) = overlay(name);
        let spec = ContainerSpec::new(rootfs, args.iter().map(|s| s.to_string()).collect());
        output(&spec, b"")
    };
    assert_eq!(code("x0", &["true"]).status.code, 0);
    assert_eq!(code("x1", &["false"]).status.code, 1);
    assert_eq!(code("x3", &["sh", "-c", "exit 3"]).status.code, 3);
    let out = code("x126", &["/etc/passwd"]);
    assert_eq!(out.status.code, 126);
    assert!(String::from_utf8_lossy(&out.stderr).contains("permission denied"));
    let out = code("x127", &["no-such-program"]);
    assert_eq!(out.status.code, 127);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("executable file not found in $PATH"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(code("x127b", &["/no/such/file"]).status.code, 127);
}

fn sigkill_gives_137() {
    let (rootfs, _) = overlay("kill");
    let spec = ContainerSpec::new(rootfs, vec!["sleep".into(), "100".into()]);
    let container = rbuild_runtime::spawn(&spec, Stdio::null()).unwrap();
    assert!(container.pid() > 0);
    container.kill(libc::SIGKILL).unwrap();
    let status = container.wait().unwrap();
    assert_eq!((status.code, status.signal), (137, Some(9)));

    // With the init, a process killing itself is reported as 128+9 as well.
    let mut spec = sh("kill-init", "kill -9 $$");
    spec.init = true;
    assert_eq!(output(&spec, b"").status.code, 137);
}

/// Spawns `spec` with stdout piped, waits for a "ready" line, sends `signal` to this test
/// process (the runner), and returns the exit status and the rest of the output.
fn signal_runner(spec: &ContainerSpec, signal: i32) -> (rbuild_runtime::ExitStatus, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    let stdio = Stdio {
        stdin: Io::Null,
        stdout: Io::Fd(writer.into()),
        stderr: Io::Inherit,
    };
    let container = rbuild_runtime::spawn(spec, stdio).unwrap();
    let mut reader = BufReader::new(reader);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    // SAFETY: sending a signal to our own process; the runtime's handler is installed while
    // the container runs.
    unsafe { libc::kill(libc::getpid(), signal) };
    let status = container.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    (status, rest)
}

fn sigterm_to_runner_reaches_the_process() {
    let spec = sh(
        "sigterm",
        "trap 'echo got TERM; exit 42' TERM; echo ready; while true; do sleep 0.05; done",
    );
    let (status, rest) = signal_runner(&spec, libc::SIGTERM);
    assert_eq!(status.code, 42);
    assert_eq!(rest, "got TERM\n");

    // With the init the process is not PID 1, so SIGTERM's default action applies: 128+15.
    let mut spec = sh("sigterm-init", "echo ready; exec sleep 100");
    spec.init = true;
    let (status, _) = signal_runner(&spec, libc::SIGTERM);
    assert_eq!(status.code, 143);

    let mut spec = sh(
        "sigusr1",
        "trap 'echo got USR1; exit 7' USR1; echo ready; while true; do sleep 0.05; done",
    );
    spec.init = true;
    let (status, rest) = signal_runner(&spec, libc::SIGUSR1);
    assert_eq!((status.code, rest.as_str()), (7, "got USR1\n"));
}

fn init_reaps_zombies() {
    // The subshell exits at once, so its `sleep` is orphaned and reparented to PID 1, the
    // init, which must reap it when it is killed: afterwards no zombie is left (a zombie
    // keeps its /proc entry). Each step is waited for (10 s at most), not slept through.
    let mut spec = sh(
        "zombies",
        "echo $$; tr '\\0' ' ' < /proc/1/cmdline; echo; \
         p=$( (sleep 1000 >/dev/null 2>&1 & echo $!) ); i=0; \
         until grep -q '^Name:.sleep$' /proc/$p/status && grep -q '^PPid:.1$' /proc/$p/status; \
         do i=$((i+1)); [ $i -gt 1000 ] && break; sleep 0.01; done; \
         cat /proc/$p/stat; echo ---; kill $p; i=0; \
         while [ -e /proc/$p ] && [ $i -lt 1000 ]; do i=$((i+1)); sleep 0.01; done; \
         cat /proc/[0-9]*/stat",
    );
    spec.init = true;
    let out = stdout_of(&spec);
    let mut lines = out.lines();
    assert_ne!(
        lines.next(),
        Some("1"),
        "with init the process is not PID 1"
    );
    assert!(lines.next().unwrap().starts_with("rbuild-runtime-init"));
    // (comm, state, ppid) of every process listed
    let parse = |l: &str| {
        let comm = l
            .split_once(" (")
            .unwrap()
            .1
            .rsplit_once(") ")
            .unwrap()
            .0
            .to_string();
        let rest: Vec<String> = l
            .rsplit(") ")
            .next()
            .unwrap()
            .split(' ')
            .map(String::from)
            .collect();
        (comm, rest[0].clone(), rest[1].clone())
    };
    let rest: Vec<&str> = lines.collect();
    let split = rest.iter().position(|l| *l == "---").unwrap();
    let before: Vec<_> = rest[..split].iter().map(|l| parse(l)).collect();
    let after: Vec<_> = rest[split + 1..].iter().map(|l| parse(l)).collect();
    assert!(
        before
            .iter()
            .any(|(c, _, ppid)| c == "sleep" && ppid == "1"),
        "orphan reparented to the init: {out}"
    );
    assert!(
        after.iter().all(|(_, state, _)| state != "Z"),
        "zombie left: {out}"
    );
    assert!(
        !after.iter().any(|(c, _, ppid)| c == "sleep" && ppid == "1"),
        "orphan gone: {out}"
    );
}

fn terminal_mode_gives_a_tty() {
    let mut spec = sh(
        "tty",
        "tty; [ -t 0 ] && echo stdin-is-tty; echo $TERM; stat -c %t,%T /dev/console /dev/pts/0",
    );
    spec.process.terminal = true;
    let out = output(&spec, b"");
    assert_eq!(out.status.code, 0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("/dev/pts/0\r\n"), "{text:?}");
    assert!(text.contains("stdin-is-tty\r\nxterm\r\n"), "{text:?}");
    // /dev/console is the same pty (major 136 = 0x88).
    assert!(text.ends_with("88,0\r\n88,0\r\n"), "{text:?}");

    let mut spec = sh("tty2", "read line; echo got:$line; cat; echo eof");
    spec.process.terminal = true;
    let out = output(&spec, b"typed\nmore\n");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("got:typed"), "{text:?}");
    assert!(
        text.ends_with("more\r\neof\r\n"),
        "input end reaches the process: {text:?}"
    );
}

fn terminal_with_init_and_window_size() {
    // The init gives the pty's foreground to the process.
    let mut spec = sh("tty-init", "tty; echo $$");
    spec.process.terminal = true;
    spec.init = true;
    let out = output(&spec, b"");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("/dev/pts/0\r\n"), "{text:?}");
    assert_ne!(text.lines().nth(1), Some("1\r"), "{text:?}");

    // When the runner's stdin is a terminal, the container's pty gets its size.
    let pty = nix::pty::openpty(
        Some(&nix::pty::Winsize {
            ws_row: 40,
            ws_col: 100,
            ws_xpixel: 0,
            ws_ypixel: 0,
        }),
        None,
    )
    .unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    let mut spec = sh("tty-size", "stty size");
    spec.process.terminal = true;
    let terminal = pty.slave.try_clone().unwrap();
    let canonical = |fd: &std::os::fd::OwnedFd| {
        nix::sys::termios::tcgetattr(fd)
            .unwrap()
            .local_flags
            .contains(nix::sys::termios::LocalFlags::ICANON)
    };
    assert!(canonical(&terminal));
    let stdio = Stdio {
        stdin: Io::Fd(pty.slave),
        stdout: Io::Fd(writer.into()),
        stderr: Io::Null,
    };
    let status = rbuild_runtime::run(&spec, stdio).unwrap();
    assert_eq!(status.code, 0);
    let mut text = String::new();
    std::io::Read::read_to_string(&mut BufReader::new(reader), &mut text).unwrap();
    assert_eq!(text, "40 100\r\n");
    // The caller's terminal was in raw mode while the container ran, and is restored.
    assert!(canonical(&terminal), "terminal mode restored");
    drop(pty.master);
}

fn stdin_is_piped() {
    let out = output(&sh("stdin", "cat; echo; wc -c"), b"hello");
    assert_eq!(out.status.code, 0);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "hello\n0\n");
    let out = stdout_of(&sh("notty", "tty || true"));
    assert_eq!(out, "not a tty\n");
}

fn user_switching_by_name_and_ids() {
    let cases = [
        (
            "app",
            "uid=1000(app) gid=1000(app) groups=50(staff)",
            "/home/app",
        ),
        ("33:50", "uid=33(www-data) gid=50(staff)", "/var/www"),
        (
            "www-data:staff",
            "uid=33(www-data) gid=50(staff)",
            "/var/www",
        ),
        ("4242", "uid=4242 gid=0(root)", "/"),
        ("", "uid=0(root) gid=0(root)", "/root"),
    ];
    for (i, (user, id, home)) in cases.iter().enumerate() {
        let mut spec = sh(&format!("user{i}"), "id; echo $HOME");
        spec.process.user = rbuild_runtime::resolve_user(&busybox(), user).unwrap();
        let out = stdout_of(&spec);
        let mut lines = out.lines();
        let got = lines.next().unwrap();
        // busybox `id` lists the groups in the kernel's order; compare as sets.
        let sorted = |s: &str| {
            let (head, groups) = s.split_once(" groups=").unwrap_or((s, ""));
            let mut g: Vec<&str> = groups.split(',').collect();
            g.sort();
            format!("{head} groups={}", g.join(","))
        };
        assert_eq!(sorted(got), sorted(id), "user {user:?}");
        assert_eq!(lines.next(), Some(*home), "HOME of {user:?}");
    }
    let err = rbuild_runtime::resolve_user(&busybox(), "nosuch").unwrap_err();
    assert!(err.to_string().contains("nosuch"));
}

fn env_and_workdir() {
    let mut spec = sh("env", "echo $FOO; pwd; echo $PATH");
    spec.process.env = vec!["FOO=bar baz".into()];
    spec.process.cwd = "/srv/app".into();
    let out = stdout_of(&spec);
    assert_eq!(
        out,
        format!("bar baz\n/srv/app\n{}\n", rbuild_runtime::DEFAULT_PATH)
    );
    // A large environment (more than a socket message could carry) arrives whole.
    let mut spec = sh("env-large", "env | grep -c '^BIG'; echo ${BIG1999}");
    spec.process.env = (0..2000)
        .map(|i| format!("BIG{i}={}", "v".repeat(200)))
        .collect();
    assert_eq!(stdout_of(&spec), format!("2000\n{}\n", "v".repeat(200)));
    // A user who cannot enter the working directory fails before exec.
    let mut spec = sh("env-denied", "true");
    spec.process.cwd = "/root".into();
    spec.process.user = rbuild_runtime::resolve_user(&busybox(), "app").unwrap();
    match rbuild_runtime::run(&spec, Stdio::null()) {
        Err(RuntimeError::Setup(msg)) => assert!(msg.contains("/root"), "{msg}"),
        other => panic!("expected a setup error, got {other:?}"),
    }
}

fn no_descriptors_leak_into_the_container() {
    // A descriptor the runner leaves inheritable must not reach the container's process.
    let (reader, writer) = std::io::pipe().unwrap();
    let raw = std::os::fd::AsRawFd::as_raw_fd(&writer);
    // SAFETY: clearing FD_CLOEXEC on a descriptor this test owns.
    unsafe { libc::fcntl(raw, libc::F_SETFD, 0) };
    for init in [false, true] {
        let mut spec = sh("fds", "ls /proc/self/fd | tr '\\n' ' '");
        spec.init = init;
        assert_eq!(stdout_of(&spec), "0 1 2 3 ", "init: {init}");
    }
    drop((reader, writer));
}

fn runner_with_closed_stdin_and_stdout() {
    // The runtime's own descriptors must not land on 0..=2, where the monitor's stdio
    // setup would overwrite them: with 0 and 1 closed, a socket pair takes exactly those.
    // In a process of its own, which closes them and never needs them back (the runtime's
    // threads may still hold a descriptor there when `run` returns).
    let (rootfs, _) = overlay("closed-stdio");
    let Rootfs::Overlay {
        lowers,
        upper,
        work,
    } = rootfs
    else {
        unreachable!("an overlay")
    };
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--closed-stdio-child")
        .arg(&lowers[0])
        .arg(&upper)
        .arg(&work)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--closed-stdio-child LOWER UPPER WORK`: closes fds 0 and 1, runs `true` in the overlay,
/// exits with its code (99 when the run failed).
fn closed_stdio_child(lower: &str, upper: &str, work: &str) {
    let spec = ContainerSpec::new(
        Rootfs::Overlay {
            lowers: vec![PathBuf::from(lower)],
            upper: PathBuf::from(upper),
            work: PathBuf::from(work),
        },
        vec!["true".into()],
    );
    // SAFETY: closing fds 0 and 1 of this process, which owns nothing there and exits
    // right after.
    unsafe {
        libc::close(0);
        libc::close(1);
    }
    match rbuild_runtime::run(&spec, Stdio::null()) {
        Ok(status) => std::process::exit(status.code),
        Err(e) => {
            eprintln!("run failed: {e}");
            std::process::exit(99);
        }
    }
}

fn umask_is_dockers() {
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let out = stdout_of(&sh("umask", "umask; mkdir /d; stat -c %a /d"));
    nix::sys::stat::umask(old);
    assert_eq!(out, "0022\n755\n");
}

fn rlimits_are_set() {
    let out = stdout_of(&sh("rlimit", "ulimit -n"));
    assert_eq!(out, "1024\n");
}

// ---- filesystem ----

fn overlay_upper_records_changes() {
    for volatile in [false, true] {
        upper_records_changes(volatile);
    }
}

fn upper_records_changes(volatile: bool) {
    let (rootfs, upper) = overlay(&format!("changes-{volatile}"));
    let mut spec = ContainerSpec::new(
        rootfs,
        vec![
            "sh".into(),
            "-c".into(),
            "set -e; echo new > /added; echo more >> /etc/issue; rm /etc/group; \
             rm -rf /home; mkdir /home; touch /home/x; \
             grep -c ' / .*overlay.*volatile' /proc/self/mountinfo || true"
                .into(),
        ],
    );
    spec.volatile_overlay = volatile;
    let out = stdout_of(&spec);
    assert_eq!(
        out,
        if volatile { "1\n" } else { "0\n" },
        "volatile: {volatile}"
    );
    assert_eq!(
        std::fs::read_to_string(upper.join("added")).unwrap(),
        "new\n"
    );
    assert_eq!(
        std::fs::read_to_string(upper.join("etc/issue")).unwrap(),
        "rbuild-test-busybox\nmore\n"
    );
    let group = std::fs::symlink_metadata(upper.join("etc/group")).unwrap();
    assert!(changes::is_whiteout(&group), "deleted file is a whiteout");
    assert!(
        changes::is_opaque(&upper.join("home")).unwrap(),
        "replaced dir is opaque"
    );
    assert!(!changes::is_opaque(&upper.join("etc")).unwrap());
    assert!(upper.join("home/x").exists());
    assert!(!upper.join("home/app").exists());
    // The runtime's own mount points are not part of the change set.
    for name in [
        "etc/hosts",
        "etc/hostname",
        "etc/resolv.conf",
        "proc",
        "dev",
    ] {
        let p = upper.join(name);
        assert!(
            std::fs::symlink_metadata(&p).is_err(),
            "{name} left in the upper dir"
        );
    }
    // The lower snapshot is untouched.
    assert!(busybox().join("etc/group").exists());
}

fn renamed_directories_are_copied_not_redirected() {
    // With redirect_dir=off a renamed lower directory is copied up whole, so the change set
    // stays expressible as a layer (no overlay.redirect xattr pointing into a lower).
    let (rootfs, upper) = overlay("rename");
    let spec = ContainerSpec::new(
        rootfs,
        vec![
            "sh".into(),
            "-c".into(),
            "mv /home /home2 && ls /home2".into(),
        ],
    );
    assert_eq!(stdout_of(&spec), "app\n");
    assert!(upper.join("home2/app").is_dir());
    let home = std::fs::symlink_metadata(upper.join("home")).unwrap();
    assert!(changes::is_whiteout(&home));
}

fn minimal_rootfs_gets_mount_points_that_leave_no_trace() {
    // A rootfs with nothing but a static busybox: /proc, /sys, /dev and /etc are created for
    // the container and removed again afterwards, so the change set holds only real changes.
    let dir = scratch("minimal");
    let lower = dir.join("lower");
    std::fs::create_dir_all(lower.join("bin")).unwrap();
    std::fs::copy(busybox().join("bin/busybox"), lower.join("bin/busybox")).unwrap();
    let (upper, work) = (dir.join("upper"), dir.join("work"));
    std::fs::create_dir(&upper).unwrap();
    std::fs::create_dir(&work).unwrap();
    let spec = ContainerSpec::new(
        Rootfs::Overlay {
            lowers: vec![lower],
            upper: upper.clone(),
            work,
        },
        vec![
            "/bin/busybox".into(),
            "sh".into(),
            "-c".into(),
            "/bin/busybox cat /etc/hostname; /bin/busybox touch /made".into(),
        ],
    );
    assert_eq!(stdout_of(&spec), "rbuild\n");
    let mut left: Vec<String> = std::fs::read_dir(&upper)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["made"]);
}

fn empty_lowers_and_file_bind_mounts() {
    // FROM scratch: no lower at all; the only program is a bind-mounted file.
    let dir = scratch("scratch");
    let (upper, work) = (dir.join("upper"), dir.join("work"));
    std::fs::create_dir(&upper).unwrap();
    std::fs::create_dir(&work).unwrap();
    let mut spec = ContainerSpec::new(
        Rootfs::Overlay {
            lowers: Vec::new(),
            upper: upper.clone(),
            work,
        },
        ["/bin/busybox", "sh", "-c", "/bin/busybox ls /"]
            .map(String::from)
            .to_vec(),
    );
    spec.mounts = vec![MountSpec {
        destination: "/bin/busybox".into(),
        kind: MountKind::Bind {
            source: busybox().join("bin/busybox"),
        },
        readonly: true,
    }];
    assert_eq!(stdout_of(&spec), "bin\ndev\netc\nproc\nsys\n");
    // Every mount point was created by the runtime, so nothing is left in the change set.
    assert_eq!(std::fs::read_dir(&upper).unwrap().count(), 0);
}

fn readonly_rootfs() {
    let mut spec = sh(
        "readonly",
        "touch /x 2>/dev/null || echo ro; echo ok > /dev/shm/y && cat /dev/shm/y",
    );
    spec.readonly_rootfs = true;
    assert_eq!(stdout_of(&spec), "ro\nok\n");
}

fn plain_directory_rootfs() {
    let dir = scratch("dirroot").join("rootfs");
    let status = std::process::Command::new("cp")
        .args(["-a"])
        .arg(busybox())
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    let spec = ContainerSpec::new(
        Rootfs::Dir(dir.clone()),
        vec![
            "sh".into(),
            "-c".into(),
            "echo hi > /out; cat /etc/issue".into(),
        ],
    );
    assert_eq!(stdout_of(&spec), "rbuild-test-busybox\n");
    assert_eq!(std::fs::read_to_string(dir.join("out")).unwrap(), "hi\n");
    assert!(!dir.join("etc/hosts").exists(), "mount point removed again");
}

fn many_lowers_exceed_a_page() {
    // 60 layers with long paths: the mount(2) option string would exceed 4096 bytes.
    let dir = scratch("lowers");
    let mut lowers = vec![busybox()];
    for i in 0..60 {
        let layer = dir.join(format!("layer-{i:03}-{}", "x".repeat(70)));
        std::fs::create_dir_all(layer.join("layers")).unwrap();
        std::fs::write(layer.join("layers").join(i.to_string()), "").unwrap();
        std::fs::write(layer.join("top"), format!("{i}\n")).unwrap();
        lowers.push(layer);
    }
    let (upper, work) = (dir.join("upper"), dir.join("work"));
    std::fs::create_dir(&upper).unwrap();
    std::fs::create_dir(&work).unwrap();
    let spec = ContainerSpec::new(
        Rootfs::Overlay {
            lowers,
            upper,
            work,
        },
        vec![
            "sh".into(),
            "-c".into(),
            "cat /top; ls /layers | wc -l".into(),
        ],
    );
    assert_eq!(stdout_of(&spec), "59\n60\n");
}

fn bind_tmpfs_and_readonly_mounts() {
    let dir = scratch("binds");
    let (rw, ro) = (dir.join("rw"), dir.join("ro"));
    std::fs::create_dir_all(&rw).unwrap();
    std::fs::create_dir_all(&ro).unwrap();
    std::fs::write(ro.join("data"), "ro-data\n").unwrap();
    let mut spec = sh(
        "binds-c",
        "echo written > /vol/rw/f; cat /vol/ro/data; touch /vol/ro/x 2>/dev/null || echo ro-denied; \
         echo t > /scratch/t && grep ' /scratch ' /proc/mounts | cut -d' ' -f3",
    );
    spec.mounts = vec![
        MountSpec {
            destination: "/vol/rw".into(),
            kind: MountKind::Bind { source: rw.clone() },
            readonly: false,
        },
        MountSpec {
            destination: "/vol/ro".into(),
            kind: MountKind::Bind { source: ro.clone() },
            readonly: true,
        },
        MountSpec {
            destination: "/scratch".into(),
            kind: MountKind::Tmpfs {
                size: Some(1 << 20),
                mode: None,
                options: Vec::new(),
            },
            readonly: false,
        },
    ];
    let out = stdout_of(&spec);
    assert_eq!(out, "ro-data\nro-denied\ntmpfs\n");
    assert_eq!(std::fs::read_to_string(rw.join("f")).unwrap(), "written\n");
    assert!(!ro.join("x").exists());
}

fn another_init_program() {
    // A program other than the running one can set up containers (what libtest-based tests
    // of other crates need): here a copy of this test binary.
    let dir = scratch("init-program");
    let copy = dir.join("init-copy");
    std::fs::copy(std::env::current_exe().unwrap(), &copy).unwrap();
    rbuild_runtime::set_init_program(Some(copy.clone()));
    let (rootfs, _) = overlay("init-program-c");
    let spec = ContainerSpec::new(rootfs, vec!["sleep".into(), "10".into()]);
    let spawned = rbuild_runtime::spawn(&spec, Stdio::null());
    rbuild_runtime::set_init_program(None);
    let container = spawned.unwrap();
    // PID 1's parent is the monitor, which runs the copy.
    let status = std::fs::read_to_string(format!("/proc/{}/status", container.pid())).unwrap();
    let monitor = status_line(&status, "PPid:").to_string();
    let monitor_exe = std::fs::read_link(format!("/proc/{monitor}/exe")).unwrap();
    container.kill(libc::SIGKILL).unwrap();
    assert_eq!(container.wait().unwrap().code, 137);
    assert_eq!(monitor_exe, copy);
    // A program that does not call init_hook gets a clear error.
    rbuild_runtime::set_init_program(Some("/bin/true".into()));
    let result = rbuild_runtime::run(&spec, Stdio::null());
    rbuild_runtime::set_init_program(None);
    let err = result.unwrap_err().to_string();
    assert!(err.contains("init_hook"), "{err}");
}

fn stale_state_dirs_are_removed() {
    // What a killed monitor leaves behind (no process can have a pid above pid_max).
    let stale = std::env::temp_dir().join("rbuild-runtime-4194305");
    std::fs::create_dir_all(stale.join("rootfs")).unwrap();
    std::fs::write(stale.join("hosts"), "").unwrap();
    let (rootfs, _) = overlay("stale");
    let spec = ContainerSpec::new(rootfs, vec!["true".into()]);
    assert_eq!(rbuild_runtime::run(&spec, Stdio::null()).unwrap().code, 0);
    assert!(!stale.exists());
}

fn setup_errors_are_reported() {
    // A missing rootfs is rejected before anything starts.
    let spec = ContainerSpec::new(Rootfs::Dir("/no/such/rootfs".into()), vec!["true".into()]);
    match rbuild_runtime::run(&spec, Stdio::null()) {
        Err(RuntimeError::InvalidSpec(msg)) => assert!(msg.contains("/no/such/rootfs")),
        other => panic!("expected InvalidSpec, got {other:?}"),
    }
    // Failures inside the container's setup come back with their cause: a hostname longer
    // than the kernel allows,
    let mut spec = sh("badhost", "true");
    spec.hostname = "h".repeat(100);
    match rbuild_runtime::run(&spec, Stdio::null()) {
        Err(RuntimeError::Setup(msg)) => {
            assert!(msg.contains("failed to set hostname"), "{msg}");
            assert!(msg.contains("EINVAL"), "{msg}");
        }
        other => panic!("expected a setup error, got {other:?}"),
    }
    // and upper and work dirs on different filesystems, which overlayfs refuses.
    let dir = scratch("badoverlay");
    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    std::fs::create_dir(dir.join("work")).unwrap();
    let dev = |p: &Path| std::os::unix::fs::MetadataExt::dev(&std::fs::metadata(p).unwrap());
    assert_ne!(
        dev(shm.path()),
        dev(&dir),
        "/dev/shm must be its own filesystem"
    );
    let spec = ContainerSpec::new(
        Rootfs::Overlay {
            lowers: vec![busybox()],
            upper: shm.path().to_path_buf(),
            work: dir.join("work"),
        },
        vec!["true".into()],
    );
    match rbuild_runtime::run(&spec, Stdio::null()) {
        Err(RuntimeError::Setup(msg)) => assert!(msg.contains("mount overlay"), "{msg}"),
        other => panic!("expected a setup error, got {other:?}"),
    }
}

fn concurrent_containers_from_threads() {
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let spec = sh(&format!("par{i}"), &format!("echo {i}; hostname"));
            std::thread::spawn(move || stdout_of(&spec))
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), format!("{i}\nrbuild\n"));
    }
}

fn startup_time() {
    let mut times = Vec::new();
    for i in 0..20 {
        let (rootfs, _) = overlay(&format!("bench{i}"));
        let spec = ContainerSpec::new(rootfs, vec!["true".into()]);
        let start = Instant::now();
        let status = rbuild_runtime::run(&spec, Stdio::null()).unwrap();
        times.push(start.elapsed());
        assert!(status.success());
    }
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "    run([\"true\"]) median of 20: {:.1} ms",
        median.as_secs_f64() * 1e3
    );
    assert!(median < Duration::from_secs(1), "{times:?}");
}

fn seccomp_is_on_by_default_and_off_when_unconfined() {
    let line = "grep '^Seccomp:' /proc/self/status";
    assert_eq!(stdout_of(&sh("seccomp-on", line)), "Seccomp:\t2\n");
    // With the init, the init itself (PID 1) and the process are filtered.
    let mut spec = sh(
        "seccomp-init",
        "grep '^Seccomp:' /proc/1/status /proc/self/status | cut -d/ -f3-",
    );
    spec.init = true;
    let out = stdout_of(&spec);
    assert_eq!(out, "1/status:Seccomp:\t2\nself/status:Seccomp:\t2\n");
    let mut spec = sh("seccomp-off", line);
    spec.seccomp = None;
    assert_eq!(stdout_of(&spec), "Seccomp:\t0\n");
}

fn seccomp_denies_what_dockers_profile_denies() {
    let results = probe(&probe_spec("probe-default", &["--probe", "syscalls"]));
    for denied in [
        "unshare_user",
        "clone_newuser",
        "socket_vsock",
        "keyctl",
        "add_key",
        "request_key",
        "io_uring_setup",
        "perf_event_open",
        "open_by_handle_at",
        "bpf",
        "personality_no_aslr",
        "kexec_load",
    ] {
        assert_eq!(results[denied], "EPERM", "{denied}: {results:?}");
    }
    // clone3 gets ENOSYS, so that libc falls back to clone, whose flags the filter can see.
    assert_eq!(results["clone3"], "ENOSYS", "{results:?}");
    // Ordinary calls work; raw sockets too for root, as in docker (CAP_NET_RAW is in its
    // default set; docker's profile allows every socket family but AF_VSOCK).
    for allowed in [
        "getpid",
        "mkdir",
        "socket_tcp",
        "socket_raw",
        "fork",
        "personality_query",
    ] {
        assert_eq!(results[allowed], "ok", "{allowed}: {results:?}");
    }
    // Unconfined, the same calls reach the kernel: the EPERMs above are the filter's.
    let mut spec = probe_spec("probe-unconfined", &["--probe", "syscalls"]);
    spec.seccomp = None;
    let open = probe(&spec);
    for reached in ["keyctl", "add_key", "clone3"] {
        assert_eq!(open[reached], "ok", "{reached}: {open:?}");
    }
    assert_eq!(open["request_key"], "ENOKEY", "{open:?}");
    assert_ne!(open["socket_vsock"], "EPERM", "{open:?}");
    // Any other user has no capabilities: no raw sockets either.
    let mut spec = probe_spec("probe-user", &["--probe", "syscalls"]);
    spec.process.user = rbuild_runtime::resolve_user(&busybox(), "app").unwrap();
    assert_eq!(probe(&spec)["socket_raw"], "EPERM");
}

fn custom_seccomp_profile_denies_mkdir() {
    let dir = scratch("seccomp-custom");
    let file = dir.join("deny-mkdir.json");
    std::fs::write(
        &file,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
    )
    .unwrap();
    let mut spec = sh(
        "seccomp-custom-c",
        "touch /tmp/file && echo touched; mkdir /tmp/dir || echo denied",
    );
    spec.seccomp = Some(rbuild_runtime::SeccompProfile::from_file(&file).unwrap());
    let out = output(&spec, b"");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "touched\ndenied\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Permission denied"), "{err}");
    // A broken profile names the file and the problem.
    std::fs::write(&file, r#"{"defaultAction": "SCMP_ACT_NOPE"}"#).unwrap();
    let err = rbuild_runtime::SeccompProfile::from_file(&file)
        .unwrap_err()
        .to_string();
    assert!(err.contains("deny-mkdir.json"), "{err}");
    assert!(err.contains("SCMP_ACT_NOPE"), "{err}");
}

/// `keyctl(cmd, a, b, c, d)` in this process.
fn keyctl(cmd: libc::c_long, a: libc::c_long, b: libc::c_long) -> libc::c_long {
    // SAFETY: keyctl with integer arguments only.
    unsafe { libc::syscall(libc::SYS_keyctl, cmd, a, b, 0, 0) }
}

fn containers_get_their_own_session_keyring() {
    // The bug: a key in root's keyrings on the host could be listed and read from inside.
    let description = format!("rbuild-test-{}", std::process::id());
    let c_description = std::ffi::CString::new(description.clone()).unwrap();
    // SAFETY: add_key reads the NUL-terminated strings and the 6-byte payload given.
    let key = unsafe {
        libc::syscall(
            libc::SYS_add_key,
            c"user".as_ptr(),
            c_description.as_ptr(),
            c"secret".as_ptr(),
            6usize,
            -4 as libc::c_long, // KEY_SPEC_USER_KEYRING
        )
    };
    assert!(key > 0, "add_key: {}", nix::errno::Errno::last());
    // Revoked however the test ends.
    struct Revoke(libc::c_long);
    impl Drop for Revoke {
        fn drop(&mut self) {
            keyctl(3, self.0, 0); // KEYCTL_REVOKE
            keyctl(9, self.0, -4); // KEYCTL_UNLINK from @u
        }
    }
    let _revoke = Revoke(key);
    let host_session = keyctl(0, -3, 0); // KEYCTL_GET_KEYRING_ID of @s
    let args = ["--probe", "keys", description.as_str()];
    // By default keyctl, add_key and request_key are denied outright; /proc/keys is masked.
    let denied = probe(&probe_spec("keys-default", &args));
    for call in ["search_session", "search_user", "request"] {
        assert_eq!(denied[call], "EPERM", "{call}: {denied:?}");
    }
    assert_eq!(denied["proc_keys_lines"], "0", "{denied:?}");
    // Unconfined, the container has a new, empty session keyring of its own: the key is not
    // found through it, nor by request_key (which searches the session).
    let mut spec = probe_spec("keys-unconfined", &args);
    spec.seccomp = None;
    let open = probe(&spec);
    assert_ne!(open["session_id"], host_session.to_string(), "{open:?}");
    assert_eq!(open["search_session"], "ENOKEY", "{open:?}");
    assert_eq!(open["request"], "ENOKEY", "{open:?}");
    assert_eq!(open["proc_keys_lines"], "0", "{open:?}");
    // Root's user keyring itself is still there by its special ID: the container's root is
    // the host's uid 0 (no user namespace), as in docker and runc. Only seccomp closes that.
    assert_eq!(open["search_user"], "ok", "{open:?}");
}

/// The group `rbuild/<id>` in whichever hierarchy has the pids controller, if it exists.
fn pids_group(id: &str) -> Option<PathBuf> {
    [
        "/sys/fs/cgroup/pids",
        "/sys/fs/cgroup/unified",
        "/sys/fs/cgroup",
    ]
    .iter()
    .map(|root| Path::new(root).join("rbuild").join(id))
    .find(|p| p.join("pids.max").exists())
}

fn fork_loop_stops_at_the_pids_limit() {
    // The container's cgroup exists while it runs, with the limit, and PID 1 is in it.
    let (rootfs, _) = overlay("pids-group");
    let mut spec = ContainerSpec::new(rootfs, vec!["sleep".into(), "30".into()]);
    spec.resources.pids_max = Some(20);
    spec.id = Some("rbuild-test-pids-group".into());
    let container = rbuild_runtime::spawn(&spec, Stdio::null()).unwrap();
    let group = pids_group("rbuild-test-pids-group").expect("the container's group exists");
    assert_eq!(
        std::fs::read_to_string(group.join("pids.max")).unwrap(),
        "20\n"
    );
    let procs = std::fs::read_to_string(group.join("cgroup.procs")).unwrap();
    assert_eq!(procs.trim(), container.pid().to_string());
    container.kill(libc::SIGKILL).unwrap();
    container.wait().unwrap();
    assert!(!group.exists(), "{} removed", group.display());

    // A fork loop stops at the limit (sh itself is one of the 20).
    let (rootfs, upper) = overlay("pids");
    let script = "cat /proc/self/cgroup > /tmp/cgroup; n=0; \
                  while [ $n -lt 100 ]; do sleep 30 & n=$((n+1)); echo $n > /tmp/started; done";
    let mut spec = ContainerSpec::new(rootfs, vec!["sh".into(), "-c".into(), script.into()]);
    spec.resources.pids_max = Some(20);
    spec.id = Some("rbuild-test-pids".into());
    let out = output(&spec, b"");
    let started: u32 = std::fs::read_to_string(upper.join("tmp/started"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        (10..20).contains(&started),
        "{started} processes started; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Inside, the cgroup namespace is rooted at the container's group.
    let inside = std::fs::read_to_string(upper.join("tmp/cgroup")).unwrap();
    assert!(inside.lines().all(|l| l.ends_with(":/")), "{inside}");
    assert!(pids_group("rbuild-test-pids").is_none(), "group removed");
}

fn stale_cgroups_are_removed_after_the_monitor_is_killed() {
    // SIGKILL of the runner kills the monitor (parent-death signal), which leaves its group.
    let (rootfs, _) = overlay("pids-stale");
    let mut spec = ContainerSpec::new(rootfs, vec!["sleep".into(), "30".into()]);
    spec.id = Some("rbuild-test-stale".into());
    let container = rbuild_runtime::spawn(&spec, Stdio::null()).unwrap();
    let group = pids_group("rbuild-test-stale").expect("group exists");
    let status = std::fs::read_to_string(format!("/proc/{}/status", container.pid())).unwrap();
    let monitor: i32 = status_line(&status, "PPid:").parse().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(monitor),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    let _ = container.wait();
    // PID 1 dies with its monitor (parent-death signal); wait until the group is empty.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(group.join("cgroup.procs"))
        .unwrap()
        .trim()
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "the container's processes are gone"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(group.exists(), "left behind by the killed monitor");
    // The next container's start removes it (once it is old enough not to be one that is
    // being set up: a minute, 0 here).
    std::env::set_var("RBUILD_CGROUP_STALE_AFTER_SECS", "0");
    let (rootfs, _) = overlay("pids-stale-next");
    let spec = ContainerSpec::new(rootfs, vec!["true".into()]);
    assert!(rbuild_runtime::run(&spec, Stdio::null()).unwrap().success());
    std::env::remove_var("RBUILD_CGROUP_STALE_AFTER_SECS");
    assert!(!group.exists(), "stale group removed");
}

// ---- rootless ----

/// Runs in this test binary started as uid 65534 by `rootless_as_nobody`: one container over
/// the rootfs `lower`, with upper and work dirs under `dir`; prints what it saw.
fn rootless_child(lower: &str, dir: &str) {
    let dir = Path::new(dir);
    let spec = ContainerSpec::new(
        Rootfs::Overlay {
            lowers: vec![PathBuf::from(lower)],
            upper: dir.join("upper"),
            work: dir.join("work"),
        },
        vec![
            "sh".into(),
            "-c".into(),
            "id -u; cat /proc/self/uid_map; echo x > /new; rm /etc/issue; hostname; \
             ls /sys/class/net; grep CapEff /proc/self/status"
                .into(),
        ],
    );
    // Second: a plain directory rootfs, the host's network (sysfs then cannot be mounted and
    // is bound instead), the init, and a tty.
    let mut second = ContainerSpec::new(
        Rootfs::Dir(PathBuf::from(lower)),
        vec![
            "sh".into(),
            "-c".into(),
            "readlink /proc/self/ns/net; ls /sys/class/net | grep -cx lo; tty; \
             cat /proc/1/cmdline | tr '\\0' '\\n' | head -1"
                .into(),
        ],
    );
    second.network = NetworkMode::Host;
    second.init = true;
    second.process.terminal = true;
    for spec in [spec, second] {
        match rbuild_runtime::output(&spec, b"") {
            Ok(out) => {
                print!("{}", String::from_utf8_lossy(&out.stdout));
                eprint!("{}", String::from_utf8_lossy(&out.stderr));
                if out.status.code != 0 {
                    std::process::exit(out.status.code);
                }
            }
            Err(e) => {
                let mut chain = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    chain.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                eprintln!("rootless run failed: {chain}");
                std::process::exit(99);
            }
        }
    }
}

fn rootless_as_nobody() {
    // A rootless store unpacks layers as the caller, so the rootfs belongs to the caller
    // (root inside); host root's files would be unmapped and read-only there.
    let dir = scratch("rootless");
    for sub in ["upper", "work"] {
        std::fs::create_dir(dir.join(sub)).unwrap();
    }
    let lower = dir.join("lower");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(busybox())
        .arg(&lower)
        .status()
        .unwrap();
    assert!(status.success());
    let nobody = "65534";
    let status = std::process::Command::new("chown")
        .args(["-R", &format!("{nobody}:{nobody}")])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    // A copy of this test binary that uid 65534 can surely execute (the build directory
    // may sit under a private home).
    let exe = dir.join("containers-test");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = std::process::Command::new("setpriv")
        .args([
            &format!("--reuid={nobody}"),
            &format!("--regid={nobody}"),
            "--clear-groups",
        ])
        .arg(&exe)
        .arg("--rootless-child")
        .arg(&lower)
        .arg(&dir)
        .env("TMPDIR", &dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}\n{stdout}\n{stderr}", out.status);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "0", "root inside: {stdout}");
    let map: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        map,
        ["0", nobody, "1"],
        "the caller is mapped to root: {stdout}"
    );
    assert_eq!(&lines[2..4], ["rbuild", "lo"], "{stdout}");
    assert_eq!(lines[4], "CapEff:\t00000000a80425fb", "{stdout}");
    // The host's network namespace (its identity: the host's interfaces come and go
    // meanwhile), and a sysfs that shows its interfaces (bound: it cannot be mounted).
    let host_net = std::fs::read_link("/proc/self/ns/net").unwrap();
    // (str::lines also strips the pty's carriage returns)
    assert_eq!(
        lines[5],
        host_net.to_string_lossy(),
        "host network: {stdout}"
    );
    assert_eq!(lines[6], "1", "sysfs: {stdout}");
    assert_eq!(lines[7], "/dev/pts/0", "{stdout}");
    assert_eq!(lines[8], "rbuild-runtime-init", "{stdout}");
    // The change set: a new file owned by the caller, a whiteout for the deleted one
    // (rootless overlay uses the user.overlay.* xattrs).
    let upper = dir.join("upper");
    let meta = std::fs::metadata(upper.join("new")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 65534);
    let issue = std::fs::symlink_metadata(upper.join("etc/issue")).unwrap();
    assert!(changes::is_whiteout(&issue), "whiteout for /etc/issue");
}

// ---- host safety: seccomp, keyrings, pids cgroup ----

/// A directory with this test binary, the shared libraries it needs and the dynamic loader,
/// for running it inside a busybox container as a syscall probe: `(dir, argv prefix)`, to be
/// bind-mounted at `/probe`.
fn probe_dir() -> (PathBuf, Vec<String>) {
    static DIR: OnceLock<(PathBuf, Vec<String>)> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = base().join("probe");
        std::fs::create_dir_all(&dir).unwrap();
        let exe = std::env::current_exe().unwrap();
        std::fs::copy(&exe, dir.join("probe")).unwrap();
        let ldd = std::process::Command::new("ldd")
            .arg(&exe)
            .output()
            .unwrap();
        assert!(ldd.status.success(), "ldd failed");
        let mut loader = None;
        for line in String::from_utf8_lossy(&ldd.stdout).lines() {
            // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` or `/lib64/ld-linux... (0x...)`
            let path = line
                .split_whitespace()
                .find(|w| w.starts_with('/'))
                .map(PathBuf::from);
            let Some(path) = path else { continue };
            let name = path.file_name().unwrap().to_owned();
            std::fs::copy(&path, dir.join(&name)).unwrap();
            if name.to_string_lossy().starts_with("ld-linux") {
                loader = Some(name.to_string_lossy().into_owned());
            }
        }
        let loader = loader.expect("dynamic loader in ldd output");
        let argv = vec![
            format!("/probe/{loader}"),
            "--library-path".into(),
            "/probe".into(),
            "/probe/probe".into(),
        ];
        (dir, argv)
    })
    .clone()
}

/// A spec running the probe (`probe_main`) with `args` in an overlay over busybox.
fn probe_spec(name: &str, args: &[&str]) -> ContainerSpec {
    let (dir, mut argv) = probe_dir();
    argv.extend(args.iter().map(|a| a.to_string()));
    let (rootfs, _) = overlay(name);
    let mut spec = ContainerSpec::new(rootfs, argv);
    spec.mounts.push(MountSpec {
        destination: "/probe".into(),
        kind: MountKind::Bind { source: dir },
        readonly: true,
    });
    spec
}

/// The probe's `name=result` lines.
fn probe(spec: &ContainerSpec) -> std::collections::BTreeMap<String, String> {
    stdout_of(spec)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Inside a container: makes each system call of interest once and prints `name=ok` or
/// `name=ERRNO`.
fn probe_main(what: &str, arg: Option<&str>) {
    fn result(rc: libc::c_long) -> String {
        if rc < 0 {
            format!("{:?}", nix::errno::Errno::last())
        } else {
            "ok".into()
        }
    }
    /// For clone-like calls: the child leaves at once, the parent reaps it.
    fn forked(rc: libc::c_long) -> String {
        if rc == 0 {
            // SAFETY: the child of a raw clone ends here without touching shared state.
            unsafe { libc::_exit(0) };
        }
        if rc > 0 {
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(rc as i32), None);
        }
        result(rc)
    }
    let user_keyring: libc::c_long = -4; // KEY_SPEC_USER_KEYRING
    let session_keyring: libc::c_long = -3; // KEY_SPEC_SESSION_KEYRING
                                            // SAFETY (all calls below): raw system calls with integer arguments or pointers to
                                            // local buffers that outlive the call; descriptors they return are leaked on purpose.
    unsafe {
        match what {
            "syscalls" => {
                let mut args = [0u64; 11];
                let mut params = [0u8; 120];
                let mut attr = [0u8; 128];
                let handle = [0u8; 16];
                let flags = (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_long;
                args[4] = libc::SIGCHLD as u64; // exit_signal
                attr[0..4].copy_from_slice(&1u32.to_ne_bytes()); // PERF_TYPE_SOFTWARE
                attr[4..8].copy_from_slice(&128u32.to_ne_bytes()); // size
                let calls: Vec<(&str, String)> = vec![
                    ("getpid", result(libc::syscall(libc::SYS_getpid))),
                    (
                        "mkdir",
                        result(libc::mkdir(c"/tmp/probe-dir".as_ptr(), 0o755) as libc::c_long),
                    ),
                    (
                        "socket_tcp",
                        result(libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) as libc::c_long),
                    ),
                    (
                        "socket_raw",
                        result(
                            libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP)
                                as libc::c_long,
                        ),
                    ),
                    (
                        "socket_vsock",
                        result(libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM, 0) as libc::c_long),
                    ),
                    (
                        "unshare_user",
                        result(libc::unshare(libc::CLONE_NEWUSER) as libc::c_long),
                    ),
                    (
                        "clone_newuser",
                        forked(libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0)),
                    ),
                    (
                        "clone3",
                        forked(libc::syscall(libc::SYS_clone3, args.as_mut_ptr(), 88usize)),
                    ),
                    (
                        "fork",
                        forked(libc::syscall(
                            libc::SYS_clone,
                            libc::SIGCHLD as libc::c_long,
                            0,
                            0,
                            0,
                            0,
                        )),
                    ),
                    (
                        "keyctl",
                        result(libc::syscall(libc::SYS_keyctl, 0, session_keyring, 0)),
                    ),
                    (
                        "add_key",
                        result(libc::syscall(
                            libc::SYS_add_key,
                            c"user".as_ptr(),
                            c"probe".as_ptr(),
                            c"x".as_ptr(),
                            1usize,
                            session_keyring,
                        )),
                    ),
                    (
                        "request_key",
                        result(libc::syscall(
                            libc::SYS_request_key,
                            c"user".as_ptr(),
                            c"probe-missing".as_ptr(),
                            std::ptr::null::<libc::c_char>(),
                            0,
                        )),
                    ),
                    (
                        "io_uring_setup",
                        result(libc::syscall(
                            libc::SYS_io_uring_setup,
                            1,
                            params.as_mut_ptr(),
                        )),
                    ),
                    (
                        "perf_event_open",
                        result(libc::syscall(
                            libc::SYS_perf_event_open,
                            attr.as_ptr(),
                            0,
                            -1,
                            -1,
                            0,
                        )),
                    ),
                    (
                        "open_by_handle_at",
                        result(libc::syscall(
                            libc::SYS_open_by_handle_at,
                            libc::AT_FDCWD,
                            handle.as_ptr(),
                            0,
                        )),
                    ),
                    ("bpf", result(libc::syscall(libc::SYS_bpf, 0, 0, 0))),
                    (
                        "personality_query",
                        result(libc::syscall(libc::SYS_personality, 0xffff_ffffu64)),
                    ),
                    (
                        "personality_no_aslr",
                        result(libc::syscall(libc::SYS_personality, 0x0040000u64)),
                    ),
                    (
                        "kexec_load",
                        result(libc::syscall(libc::SYS_kexec_load, 0, 0, 0, 0)),
                    ),
                ];
                for (name, rc) in calls {
                    println!("{name}={rc}");
                }
            }
            "keys" => {
                // Can the host's key (in root's user keyring) be found from here?
                let description = std::ffi::CString::new(arg.unwrap()).unwrap();
                let find = |keyring: libc::c_long| {
                    libc::syscall(
                        libc::SYS_keyctl,
                        10, // KEYCTL_SEARCH
                        keyring,
                        c"user".as_ptr(),
                        description.as_ptr(),
                        0,
                    )
                };
                println!(
                    "session_id={}",
                    libc::syscall(libc::SYS_keyctl, 0, session_keyring, 0)
                );
                println!("search_session={}", result(find(session_keyring)));
                println!("search_user={}", result(find(user_keyring)));
                let request = libc::syscall(
                    libc::SYS_request_key,
                    c"user".as_ptr(),
                    description.as_ptr(),
                    std::ptr::null::<libc::c_char>(),
                    0,
                );
                println!("request={}", result(request));
                let keys = std::fs::read_to_string("/proc/keys").unwrap_or_default();
                println!("proc_keys_lines={}", keys.lines().count());
            }
            other => panic!("unknown probe {other}"),
        }
    }
}

fn main() {
    rbuild_runtime::init_hook();
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--probe") {
        probe_main(&args[2], args.get(3).map(String::as_str));
        return;
    }
    if args.get(1).map(String::as_str) == Some("--rootless-child") {
        rootless_child(&args[2], &args[3]);
        return;
    }
    if args.get(1).map(String::as_str) == Some("--closed-stdio-child") {
        closed_stdio_child(&args[2], &args[3], &args[4]);
        return;
    }
    let tests: &[(&str, fn())] = &[
        ("sees_only_its_own_pids", sees_only_its_own_pids),
        ("has_its_own_hostname", has_its_own_hostname),
        (
            "sees_none_of_the_hosts_mounts",
            sees_none_of_the_hosts_mounts,
        ),
        (
            "container_mounts_do_not_reach_the_host",
            container_mounts_do_not_reach_the_host,
        ),
        ("mount_is_denied", mount_is_denied),
        ("proc_sys_is_read_only", proc_sys_is_read_only),
        (
            "capabilities_and_no_new_privs_are_dockers",
            capabilities_and_no_new_privs_are_dockers,
        ),
        ("dev_is_minimal", dev_is_minimal),
        (
            "network_none_has_only_loopback_and_host_sees_host",
            network_none_has_only_loopback_and_host_sees_host,
        ),
        (
            "tcp_connection_into_the_network_namespace",
            tcp_connection_into_the_network_namespace,
        ),
        ("exit_codes_follow_docker", exit_codes_follow_docker),
        ("sigkill_gives_137", sigkill_gives_137),
        (
            "sigterm_to_runner_reaches_the_process",
            sigterm_to_runner_reaches_the_process,
        ),
        ("init_reaps_zombies", init_reaps_zombies),
        ("terminal_mode_gives_a_tty", terminal_mode_gives_a_tty),
        (
            "terminal_with_init_and_window_size",
            terminal_with_init_and_window_size,
        ),
        ("stdin_is_piped", stdin_is_piped),
        (
            "user_switching_by_name_and_ids",
            user_switching_by_name_and_ids,
        ),
        ("env_and_workdir", env_and_workdir),
        (
            "no_descriptors_leak_into_the_container",
            no_descriptors_leak_into_the_container,
        ),
        (
            "runner_with_closed_stdin_and_stdout",
            runner_with_closed_stdin_and_stdout,
        ),
        ("umask_is_dockers", umask_is_dockers),
        ("rlimits_are_set", rlimits_are_set),
        (
            "overlay_upper_records_changes",
            overlay_upper_records_changes,
        ),
        (
            "renamed_directories_are_copied_not_redirected",
            renamed_directories_are_copied_not_redirected,
        ),
        (
            "minimal_rootfs_gets_mount_points_that_leave_no_trace",
            minimal_rootfs_gets_mount_points_that_leave_no_trace,
        ),
        (
            "empty_lowers_and_file_bind_mounts",
            empty_lowers_and_file_bind_mounts,
        ),
        ("readonly_rootfs", readonly_rootfs),
        ("plain_directory_rootfs", plain_directory_rootfs),
        ("many_lowers_exceed_a_page", many_lowers_exceed_a_page),
        (
            "bind_tmpfs_and_readonly_mounts",
            bind_tmpfs_and_readonly_mounts,
        ),
        ("another_init_program", another_init_program),
        ("stale_state_dirs_are_removed", stale_state_dirs_are_removed),
        ("setup_errors_are_reported", setup_errors_are_reported),
        (
            "concurrent_containers_from_threads",
            concurrent_containers_from_threads,
        ),
        (
            "seccomp_is_on_by_default_and_off_when_unconfined",
            seccomp_is_on_by_default_and_off_when_unconfined,
        ),
        (
            "seccomp_denies_what_dockers_profile_denies",
            seccomp_denies_what_dockers_profile_denies,
        ),
        (
            "custom_seccomp_profile_denies_mkdir",
            custom_seccomp_profile_denies_mkdir,
        ),
        (
            "containers_get_their_own_session_keyring",
            containers_get_their_own_session_keyring,
        ),
        (
            "fork_loop_stops_at_the_pids_limit",
            fork_loop_stops_at_the_pids_limit,
        ),
        (
            "stale_cgroups_are_removed_after_the_monitor_is_killed",
            stale_cgroups_are_removed_after_the_monitor_is_killed,
        ),
        ("rootless_as_nobody", rootless_as_nobody),
        ("startup_time", startup_time),
    ];
    if args.iter().any(|a| a == "--list") {
        for (name, _) in tests {
            println!("{name}: test");
        }
        return;
    }
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let tmp = tempfile::Builder::new()
        .prefix("rbuild-runtime-test-")
        .tempdir()
        .expect("temp dir");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    BASE.set(tmp.path().to_path_buf()).unwrap();
    let selected: Vec<_> = tests
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    println!("\nrunning {} container tests", selected.len());
    let started = Instant::now();
    let mut failed = Vec::new();
    for (name, test) in selected.iter().copied() {
        let t = Instant::now();
        let ok = std::panic::catch_unwind(*test).is_ok();
        println!(
            "test {name} ... {} ({} ms)",
            if ok { "ok" } else { "FAILED" },
            t.elapsed().as_millis()
        );
        if !ok {
            failed.push(*name);
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed; finished in {:.2}s\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        selected.len() - failed.len(),
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    drop(tmp);
    if !failed.is_empty() {
        eprintln!("failed: {failed:?}");
        std::process::exit(1);
    }
}
