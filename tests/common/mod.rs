//! The shared test kit: run the real `rbuild` binary in a temp store root, read what it
//! printed, assert success or failure with the command and its output in the panic message,
//! inspect images as JSON. [`golden`] compares output with golden files (bless switch
//! `RBUILD_BLESS=1`); [`http`] serves downloads on loopback; [`registry`] runs a real
//! registry and a token server on loopback.
//!
//! Every test binary includes this module (`mod common;`, or through `build_support`), so a
//! helper that two test files need lives here once instead of as a private copy in each.
#![allow(dead_code)]

pub mod bridge;
pub mod conformance;
pub mod containers;
pub mod golden;
pub mod http;
pub mod published;
pub mod registry;
pub mod rootless;
pub mod tmux;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// Path of the `rbuild` binary cargo built for these tests.
pub fn rbuild_bin() -> &'static str {
    env!("CARGO_BIN_EXE_rbuild")
}

/// The project's root directory (for `testdata/`).
pub fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `testdata/<rel>`.
pub fn testdata(rel: &str) -> PathBuf {
    project_dir().join("testdata").join(rel)
}

/// A temp directory with a store root inside, and a way to run rbuild against it.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
}

impl TestEnv {
    pub fn new() -> TestEnv {
        TestEnv::new_in(&std::env::temp_dir())
    }

    /// An environment in a new temp directory under `parent`: for one that lives in a
    /// `static` (never dropped), under cargo's `CARGO_TARGET_TMPDIR` rather than in /tmp.
    pub fn new_in(parent: &Path) -> TestEnv {
        TestEnv {
            dir: tempfile::Builder::new()
                .prefix("rbuild-test-")
                .tempdir_in(parent)
                .expect("create temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// A `rbuild` command with `--root` set to this environment's store.
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new(rbuild_bin());
        cmd.arg("--root").arg(self.root());
        cmd.env_remove("RBUILD_ROOT");
        cmd.current_dir(self.path());
        cmd
    }

    /// Runs rbuild with `args`, stdin closed, and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("spawn rbuild")
    }

    /// Runs rbuild with `args` and `input` on its stdin (a write error such as a closed pipe is
    /// ignored: the command may not read it), and returns its output.
    pub fn run_with_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self.spawn(args);
        let mut stdin = child.stdin.take().expect("piped stdin");
        std::thread::scope(|scope| {
            scope.spawn(move || {
                let _ = std::io::Write::write_all(&mut stdin, input);
            });
            child.wait_with_output().expect("wait for rbuild")
        })
    }

    /// Starts rbuild with `args`, its stdin, stdout and stderr piped.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.cmd()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rbuild")
    }

    /// Runs rbuild and asserts it succeeded; returns stdout as a string.
    pub fn ok(&self, args: &[&str]) -> String {
        assert_success(&format!("rbuild {args:?}"), &self.run(args))
    }

    /// Runs rbuild and asserts it failed; returns stderr as a string.
    pub fn fails(&self, args: &[&str]) -> String {
        assert_failure(&format!("rbuild {args:?}"), &self.run(args))
    }

    /// A store with the busybox base (see [`busybox_rootfs_tar`]) imported as `name`.
    pub fn with_base(name: &str) -> TestEnv {
        let env = TestEnv::new();
        env.import_base(name);
        env
    }

    /// Imports the busybox base as `name`.
    pub fn import_base(&self, name: &str) {
        self.import_base_with(name, &[]);
    }

    /// Imports the busybox base as `name` with `changes` (each a `-c` Dockerfile
    /// instruction); returns the image ID.
    pub fn import_base_with(&self, name: &str, changes: &[&str]) -> String {
        let mut args = vec!["import"];
        for c in changes {
            args.extend(["-c", c]);
        }
        args.extend([busybox_rootfs_tar().to_str().expect("utf-8"), name]);
        self.ok(&args).trim().to_string()
    }

    /// Imports the busybox base plus `entries` of the dir `extra` (`./usr/bin/tool`, appended
    /// with their owners and modes) as `name`, with `changes` (each a `-c` Dockerfile
    /// instruction); returns the image ID.
    pub fn import_base_plus(
        &self,
        name: &str,
        changes: &[&str],
        extra: &Path,
        entries: &[&str],
    ) -> String {
        let tar = self.path().join(format!("{name}-base-plus.tar"));
        std::fs::copy(busybox_rootfs_tar(), &tar).expect("copy the base tar");
        let status = Command::new("tar")
            .args(["--append", "--numeric-owner", "-f"])
            .arg(&tar)
            .arg("-C")
            .arg(extra)
            .args(entries)
            .status()
            .expect("run tar");
        assert!(status.success(), "tar --append failed");
        let mut args = vec!["import"];
        for c in changes {
            args.extend(["-c", c]);
        }
        args.extend([tar.to_str().expect("utf-8"), name]);
        self.ok(&args).trim().to_string()
    }

    /// Waits (up to 30 s) until `ps` lists the container `name` as running. A foreground
    /// `run` records the start once its process is set up, which can be after the process
    /// already did something a test waits for (a file it made).
    pub fn wait_running(&self, name: &str) {
        let start = std::time::Instant::now();
        loop {
            let ps = self.ok(&["ps", "--format", "{{.Names}}"]);
            if ps.lines().any(|l| l == name) {
                return;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(30),
                "container {name} never showed up as running"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// `rbuild inspect NAME` as JSON: the one element of the array it prints.
    pub fn inspect(&self, name: &str) -> serde_json::Value {
        let out = self.ok(&["inspect", name]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("inspect JSON");
        v[0].clone()
    }
}

/// What the process wrote to stdout (lossy UTF-8).
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What the process wrote to stderr (lossy UTF-8).
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts that `out`, the output of `what` (a command line, shown in the panic message),
/// succeeded; returns its stdout.
pub fn assert_success(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

/// Asserts that `out`, the output of `what`, failed; returns its stderr.
pub fn assert_failure(what: &str, out: &Output) -> String {
    assert!(
        !out.status.success(),
        "{what} unexpectedly succeeded\nstdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
    stderr(out)
}

/// Runs `cmd` (any program, e.g. `env.cmd()` with stdin set), asserts it succeeded and returns
/// its stdout; the panic names the command.
pub fn ok_cmd(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e} (see .ci/setup)"));
    assert_success(&format!("{cmd:?}"), &out)
}

/// The SHA-256 of `bytes` in hex (the `sha2` crate; see [`sha256sum_hex`] for an independent
/// check).
pub fn sha256_hex(bytes: impl AsRef<[u8]>) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes.as_ref()))
}

/// The SHA-256 of `bytes` in hex as coreutils' `sha256sum` computes it: a digest that does
/// not come from the Rust code under test.
pub fn sha256sum_hex(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn sha256sum");
    let mut stdin = child.stdin.take().expect("piped stdin");
    std::io::Write::write_all(&mut stdin, bytes).expect("write to sha256sum");
    drop(stdin);
    let out = child.wait_with_output().expect("wait for sha256sum");
    String::from_utf8(out.stdout).expect("utf-8")[..64].to_string()
}

/// Writes `content` to `root/rel`, creating its parent directories.
pub fn write_file(root: &Path, rel: &str, content: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("create parent dirs");
    std::fs::write(path, content).expect("write file");
}

/// A tar of the busybox base rootfs, made by testdata/base/busybox-rootfs.sh and shared by
/// every test process: it is named for what it is made from (the script and the busybox
/// binary), so it is made once and never stale, and written aside then renamed, so a
/// process never sees half of it. (One per process used to be left behind in the temp
/// directory by every test binary run.)
pub fn busybox_rootfs_tar() -> &'static Path {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        let script = testdata("base/busybox-rootfs.sh");
        let busybox = std::env::var_os("BUSYBOX").unwrap_or_else(|| "/bin/busybox".into());
        let mut inputs = std::fs::read(&script).expect("read busybox-rootfs.sh");
        inputs.extend(
            std::fs::read(&busybox)
                .unwrap_or_else(|e| panic!("{busybox:?}: {e} (is busybox-static installed?)")),
        );
        let dir = std::env::temp_dir().join("rbuild-test-base");
        std::fs::create_dir_all(&dir).expect("create base dir");
        let tar = dir.join(format!("busybox-rootfs-{}.tar", &sha256_hex(&inputs)[..16]));
        if tar.exists() {
            return tar;
        }
        let part = dir.join(format!("busybox-rootfs.{}.part", std::process::id()));
        let status = Command::new("bash")
            .arg(&script)
            .arg("--tar")
            .arg(&part)
            .status()
            .expect("run busybox-rootfs.sh");
        assert!(
            status.success(),
            "busybox-rootfs.sh failed (is busybox-static installed?)"
        );
        std::fs::rename(&part, &tar).expect("rename the base tar into place");
        tar
    })
}

/// Copies the host's `keyctl` (Debian package `keyutils`), its shared libraries and the
/// dynamic loader into `dir`, so that a busybox container with `dir` mounted at `mount` can
/// run it; returns that command line (append keyctl's arguments).
pub fn keyctl_bundle(dir: &Path, mount: &str) -> Vec<String> {
    host_tool_bundle(Path::new("/usr/bin/keyctl"), "keyutils", dir, mount)
}

/// Copies the host's program `tool` (from Debian package `package`), its shared libraries and
/// the dynamic loader into `dir`, so that a busybox container with `dir` mounted at `mount`
/// can run it; returns that command line (append the tool's arguments).
pub fn host_tool_bundle(tool: &Path, package: &str, dir: &Path, mount: &str) -> Vec<String> {
    std::fs::create_dir_all(dir).unwrap();
    assert!(
        tool.exists(),
        "{} missing: install {package}",
        tool.display()
    );
    let tool_name = tool.file_name().unwrap().to_string_lossy().into_owned();
    std::fs::copy(tool, dir.join(&tool_name)).unwrap();
    let ldd = Command::new("ldd").arg(tool).output().expect("ldd");
    let mut loader = None;
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let Some(path) = line.split_whitespace().find(|w| w.starts_with('/')) else {
            continue;
        };
        let name = Path::new(path)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        std::fs::copy(path, dir.join(&name)).unwrap();
        if name.starts_with("ld-linux") {
            loader = Some(name);
        }
    }
    let loader = loader.expect("dynamic loader in ldd output");
    vec![
        format!("{mount}/{loader}"),
        "--library-path".into(),
        mount.into(),
        format!("{mount}/{tool_name}"),
    ]
}

/// A `user` key in root's user keyring on the host, revoked and unlinked when dropped.
pub struct HostKey {
    pub description: String,
    pub id: String,
}

/// Adds a `user` key with a description unique to this process and `tag` to root's user
/// keyring with the host's `keyctl`.
pub fn add_host_key(tag: &str) -> HostKey {
    let description = format!("rbuild-test-{tag}-{}", std::process::id());
    let out = Command::new("keyctl")
        .args(["add", "user", &description, "host-secret", "@u"])
        .output()
        .expect("keyctl add");
    assert!(out.status.success(), "{out:?}");
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    HostKey { description, id }
}

impl Drop for HostKey {
    fn drop(&mut self) {
        let _ = Command::new("keyctl").args(["revoke", &self.id]).output();
        let _ = Command::new("keyctl")
            .args(["unlink", &self.id, "@u"])
            .output();
    }
}

/// Waits (up to 20 s) for `path` to appear: the point a test's container reached, which it
/// marks by creating a file in a shared directory.
pub fn wait_for(path: &Path) {
    let start = std::time::Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Waits for every child (spawned with piped stdout and stderr) and asserts they all
/// succeeded, listing every failure with its stderr (with runs that wait for each other,
/// the first failure in order is often not the one that says why); returns the outputs.
#[allow(dead_code)]
pub fn wait_all_succeeded(children: Vec<std::process::Child>) -> Vec<Output> {
    let outputs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait for child"))
        .collect();
    let failed: Vec<String> = outputs
        .iter()
        .enumerate()
        .filter(|(_, o)| !o.status.success())
        .map(|(i, o)| format!("#{i}: {}: {}", o.status, stderr(o)))
        .collect();
    assert!(failed.is_empty(), "runs failed:\n{}", failed.join("\n"));
    outputs
}

/// Runs the shell command line `command` on a terminal: a pseudo-terminal made by
/// util-linux's `script`, `TERM=xterm`, stdin from /dev/null and no `RBUILD_ROOT` (the
/// command names its `--root`). Asserts it succeeded (`what` names it in the panic) and
/// returns what the terminal showed, control sequences included; redirect in `command` what
/// must not reach the terminal.
pub fn run_on_terminal(what: &str, command: &str) -> String {
    let out = Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .env("TERM", "xterm")
        .env_remove("RBUILD_ROOT")
        .stdin(Stdio::null())
        .output()
        .expect("spawn script (util-linux)");
    assert_success(what, &out)
}

impl TestEnv {
    /// `WRAPPER WRAPPER_ARGS rbuild --root ROOT` (a tool that measures or traces rbuild,
    /// such as `/usr/bin/time` or `strace`), stdin closed, no `RBUILD_ROOT`: add rbuild's
    /// arguments.
    pub fn cmd_under<S: AsRef<std::ffi::OsStr>>(
        &self,
        wrapper: &str,
        wrapper_args: impl IntoIterator<Item = S>,
    ) -> Command {
        let mut cmd = Command::new(wrapper);
        cmd.args(wrapper_args)
            .arg(rbuild_bin())
            .arg("--root")
            .arg(self.root())
            .env_remove("RBUILD_ROOT")
            .stdin(Stdio::null());
        cmd
    }
}

impl TestEnv {
    /// `rbuild args` under strace (its threads and children too: a monitor it starts) with
    /// the trace of `syscalls` in `trace`: spawned with stdout piped, not waited for.
    pub fn spawn_traced(&self, trace: &Path, syscalls: &str, args: &[&str]) -> std::process::Child {
        let trace = trace.display().to_string();
        self.cmd_under("strace", ["-f", "-qq", "-e", syscalls, "-o", &trace])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn strace (Debian package strace)")
    }

    /// The paths `rbuild args` opened (open/openat, its threads and children too), by strace.
    pub fn opened_paths(&self, args: &[&str]) -> Vec<String> {
        let trace = self.path().join("trace.txt");
        let out = self
            .spawn_traced(&trace, "trace=open,openat", args)
            .wait_with_output()
            .unwrap();
        assert_success(&format!("strace rbuild {args:?}"), &out);
        traced_paths(&trace)
    }
}

/// The paths in strace's `trace` of open/openat calls, in order.
pub fn traced_paths(trace: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(trace).expect("strace output");
    text.lines()
        .filter_map(|l| Some(l.split('"').nth(1)?.to_string()))
        .collect()
}

impl TestEnv {
    /// Runs rbuild `args` in this store with the kill point `point` ([`killed_at`]).
    pub fn killed_at(&self, point: &str, args: &[&str]) -> Output {
        killed_at(self.cmd().args(args).stdin(Stdio::null()), point)
    }
}

/// Runs `cmd` with the test-only kill point `point` (`NAME:N`, see src/killpoint.rs) and
/// asserts that it died there (SIGKILL); returns its output.
pub fn killed_at(cmd: &mut Command, point: &str) -> Output {
    let out = cmd.env("RBUILD_TEST_KILL_AT", point).output().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(9),
        "not killed at {point}: {out:?}"
    );
    out
}

/// The PIDs of the processes whose command line (its arguments, lossily as UTF-8)
/// `matches`.
pub fn pids_with_args(matches: impl Fn(&[String]) -> bool) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if matches(&args) {
            found.push(pid);
        }
    }
    found
}
