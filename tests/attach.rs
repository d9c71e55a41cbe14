//! `rbuild attach`, `start -a -i`, the foreground `run -it` and `--detach-keys` (issue 13)
//! through the real binary: the container's monitor serves its attach socket, clients come
//! and go. Terminal cases run in a tmux server of the test's own (its socket in a temp dir).
//!
//! Waits are on conditions (a line read, a screen showing a text, a process ending), never
//! on sleeps alone.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::tmux::Tmux;
use common::{assert_success, stderr, stdout};

/// A store with busybox as `bb`, containers force-removed at the end.
type Env = common::containers::Containers;

/// A container that prints `tick N` every 50 ms until `/go` exists in it, then `bye` on
/// stdout and `bye-err` on stderr, and exits with `code`.
fn ticker(code: i32) -> String {
    format!(
        "i=0; while [ ! -e /go ]; do echo tick $i; i=$((i+1)); sleep 0.05; done; \
         echo bye; echo bye-err >&2; exit {code}"
    )
}

/// Reads `child`'s stdout lines until one starts with `prefix`; returns the reader.
fn read_until(out: &mut BufReader<std::process::ChildStdout>, prefix: &str) {
    let mut line = String::new();
    loop {
        line.clear();
        let n = out.read_line(&mut line).expect("read attach output");
        assert!(n > 0, "attach ended before printing {prefix:?}");
        if line.starts_with(prefix) {
            return;
        }
    }
}

/// The rest of a child's stdout and stderr and its exit code, once it ended.
fn finish(
    mut child: Child,
    mut out: BufReader<std::process::ChildStdout>,
) -> (String, String, i32) {
    let mut rest = String::new();
    out.read_to_string(&mut rest).expect("read stdout");
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("piped")
        .read_to_string(&mut err)
        .expect("read stderr");
    let status = child.wait().expect("wait");
    (rest, err, status.code().unwrap_or(-1))
}

/// `attach` shows a running container's output as it is written, stdout and stderr kept
/// apart, and ends with the container's exit code when it exits.
#[test]
fn attach_streams_live_output_and_ends_with_the_exit_code() {
    let env = Env::new();
    env.0
        .ok(&["run", "-d", "--name", "c", "bb", "sh", "-c", &ticker(4)]);
    let mut attach = env.0.spawn(&["attach", "c"]);
    let mut out = BufReader::new(attach.stdout.take().unwrap());
    read_until(&mut out, "tick ");
    assert_eq!(env.status_of("c").split(' ').next(), Some("Up"));
    env.0.ok(&["exec", "c", "touch", "/go"]);
    let (rest, err, code) = finish(attach, out);
    assert_eq!(
        code, 4,
        "attach ends with the container's code; stderr: {err}"
    );
    assert!(rest.ends_with("bye\n"), "stdout: {rest:?}");
    assert_eq!(err, "bye-err\n", "stderr apart");
    assert!(env.status_of("c").starts_with("Exited (4)"));
    // A stopped container cannot be attached to (docker's message).
    let err = env.0.fails(&["attach", "c"]);
    assert!(
        err.contains("You cannot attach to a stopped container"),
        "{err}"
    );
}

/// A client that reads slowly still gets all the output and the exit code: the monitor
/// waits for its clients before it ends (before, it ended with the container, cutting off
/// what was still queued, the exit code included; the client of a `--rm` container then
/// found no container left to ask for the code).
#[test]
fn bug_a_slow_client_lost_the_end_of_the_output_and_the_exit_code() {
    let env = Env::new();
    // 20 writes of 64 KiB: far more than the pipe and socket buffers hold, in fewer
    // chunks than a client's queue holds (a client whose queue is full is let go).
    let script = "dd if=/dev/zero bs=65536 count=20 2>/dev/null; exit 3";
    env.0
        .ok(&["create", "--rm", "--name", "slow", "bb", "sh", "-c", script]);
    let mut client = env.0.spawn(&["start", "-a", "slow"]);
    let stdout = client.stdout.take().unwrap();
    // Nothing read until the process ended (the client is stuck writing its stdout), and
    // a second more: time enough for a monitor that does not wait for its client to end
    // (the test passes however long the monitor takes).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = env.0.ok(&["ps", "-a", "--format", "{{.Status}}"]);
        if status.is_empty() || status.starts_with("Exited") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the container never ended: {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    let (rest, err, code) = finish(client, BufReader::new(stdout));
    assert_eq!(code, 3, "the container's exit code; stderr: {err}");
    assert_eq!(rest.len(), 20 * 65536, "all the output");
    assert!(rest.bytes().all(|b| b == 0));
}

/// The input of `attach` reaches the process of a `run -d -i` container; an attached
/// `--no-stdin` client's does not; `start -ai` feeds a created `-i` container and closes its
/// stdin at the end of the input, as docker's `run -i`.
#[test]
fn attach_input_reaches_the_process() {
    let env = Env::new();
    // A background loop ticks (so a client can tell it is attached) while PID 1 reads.
    let script = "(while :; do echo tick; sleep 0.05; done) & read a; echo got:$a; exit 0";
    env.0
        .ok(&["run", "-d", "-i", "--name", "rd", "bb", "sh", "-c", script]);
    let mut quiet = env.0.spawn(&["attach", "--no-stdin", "rd"]);
    let mut quiet_out = BufReader::new(quiet.stdout.take().unwrap());
    read_until(&mut quiet_out, "tick");
    // Had this reached the process, it would print got:lost and exit.
    quiet.stdin.take().unwrap().write_all(b"lost\n").unwrap();
    let out = env.0.run_with_stdin(&["attach", "rd"], b"hello\n");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let printed = stdout(&out);
    let got: Vec<&str> = printed.lines().filter(|l| *l != "tick").collect();
    assert_eq!(got, ["got:hello"]);
    let (rest, _, code) = finish(quiet, quiet_out);
    assert_eq!(code, 0);
    assert!(rest.lines().any(|l| l == "got:hello"), "{rest}");

    env.0.ok(&["create", "-i", "--name", "cat", "bb", "cat"]);
    let out = env
        .0
        .run_with_stdin(&["start", "-ai", "cat"], b"one\ntwo\n");
    assert_eq!(stdout(&out), "one\ntwo\n", "{}", stderr(&out));
    assert_eq!(out.status.code(), Some(0));
    assert!(env.status_of("cat").starts_with("Exited (0)"));
}

/// Two clients at once both get the output; one killed mid-stream disturbs neither the
/// container nor the other client, which ends with the exit code.
#[test]
fn two_clients_at_once_and_one_goes_away() {
    let env = Env::new();
    env.0
        .ok(&["run", "-d", "--name", "c", "bb", "sh", "-c", &ticker(9)]);
    let mut first = env.0.spawn(&["attach", "c"]);
    let mut second = env.0.spawn(&["attach", "c"]);
    let mut first_out = BufReader::new(first.stdout.take().unwrap());
    let mut second_out = BufReader::new(second.stdout.take().unwrap());
    read_until(&mut first_out, "tick ");
    read_until(&mut second_out, "tick ");
    first.kill().unwrap();
    first.wait().unwrap();
    drop(first_out);
    // The container runs on and the second client still reads it.
    read_until(&mut second_out, "tick ");
    read_until(&mut second_out, "tick ");
    assert_eq!(env.status_of("c").split(' ').next(), Some("Up"));
    env.0.ok(&["exec", "c", "touch", "/go"]);
    let (rest, _, code) = finish(second, second_out);
    assert_eq!(code, 9);
    assert!(rest.ends_with("bye\n"), "{rest:?}");
}

/// With the signal proxy (default) SIGINT to `attach` reaches the process (its trap exits
/// 3); with `--sig-proxy=false` a signal (TERM) ends `attach` alone and the container runs
/// on.
#[test]
fn signals_are_proxied_unless_disabled() {
    let env = Env::new();
    let script = "trap 'echo trapped; exit 3' INT; while :; do echo tick; sleep 0.05; done";
    env.0
        .ok(&["run", "-d", "--name", "c", "bb", "sh", "-c", script]);
    let mut unproxied = env.0.spawn(&["attach", "--sig-proxy=false", "c"]);
    let mut out = BufReader::new(unproxied.stdout.take().unwrap());
    read_until(&mut out, "tick");
    // TERM, not INT: a test run from a non-interactive shell's background job inherits
    // SIGINT ignored, and the client (as docker's) keeps what it inherited.
    kill(&unproxied, "TERM");
    let status = unproxied.wait().unwrap();
    assert_eq!(status.code(), None, "ended by the signal");
    assert!(env.status_of("c").starts_with("Up"));

    let mut proxied = env.0.spawn(&["attach", "c"]);
    let mut out = BufReader::new(proxied.stdout.take().unwrap());
    read_until(&mut out, "tick");
    kill(&proxied, "INT");
    let (rest, err, code) = finish(proxied, out);
    assert_eq!(code, 3, "{err}");
    assert!(rest.lines().any(|l| l == "trapped"), "{rest}");
}

fn kill(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Bad `--detach-keys` are refused before anything happens: `run` with docker's 125 (and
/// no container made), `start`, `attach` and `exec` with 1.
#[test]
fn bad_detach_keys_are_an_error() {
    let env = Env::new();
    let out = env.0.run(&["run", "--detach-keys", "ctrl-1", "bb", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("invalid detach keys \"ctrl-1\""),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.0.ok(&["ps", "-aq"]), "", "nothing created");
    env.0.ok(&["run", "-d", "--name", "c", "bb", "sleep", "60"]);
    for args in [
        &["attach", "--detach-keys", "ctrl-p,", "c"][..],
        &["start", "-a", "--detach-keys", "alt-x", "c"],
        &["exec", "--detach-keys", "ctrl-pp", "c", "true"],
    ] {
        let out = env.0.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).contains("invalid detach keys"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    // Good keys (docker's syntax) pass.
    env.0
        .ok(&["exec", "--detach-keys", "ctrl-a,X,ctrl-@", "c", "true"]);
}

impl Tmux {
    /// Starts `command` (sh) in a new 100×30 session `name`; when it ends the pane shows
    /// `rc=N` and stays.
    fn start(&self, name: &str, command: &str) {
        let script: PathBuf = self.dir.path().join(format!("{name}.sh"));
        std::fs::write(&script, format!("{command}\necho rc=$?\nsleep 600\n")).unwrap();
        let out = self
            .tmux()
            .args(["new-session", "-d", "-s", name, "-x", "100", "-y", "30"])
            .arg(format!("sh {}", script.display()))
            .output()
            .expect("tmux");
        assert_success("tmux new-session", &out);
    }

    fn keys(&self, name: &str, keys: &[&str]) {
        let out = self
            .tmux()
            .args(["send-keys", "-t", name])
            .args(keys)
            .output()
            .unwrap();
        assert_success("tmux send-keys", &out);
    }

    fn screen(&self, name: &str) -> String {
        self.capture(name, true)
    }

    /// Runs `command` (a shell attached with `--detach-keys ctrl-x,d`) in session `name`:
    /// Ctrl-P Ctrl-Q go to the shell (ash recalls the previous command with Ctrl-P, ignores
    /// Ctrl-Q; Enter runs it again), then Ctrl-X d detaches (`rc=0`).
    fn detach_with_ctrl_x_d(&self, name: &str, command: &str) {
        self.start(name, command);
        self.wait_line(name, |l| l.ends_with("/ #"));
        self.keys(name, &["echo one-$((1+1))", "Enter"]);
        self.wait_line(name, |l| l == "one-2");
        self.keys(name, &["C-p", "C-q", "Enter"]);
        self.wait_count(name, "one-2", 2);
        assert!(
            !self.screen(name).contains("rc="),
            "not detached by ctrl-p,ctrl-q"
        );
        self.keys(name, &["C-x", "d"]);
        self.wait_line(name, |l| l.ends_with("rc=0"));
    }

    /// Waits (up to 20 s) until the screen of `name` shows `line` `n` times.
    fn wait_count(&self, name: &str, line: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.screen(name).lines().filter(|l| *l == line).count() < n {
            assert!(Instant::now() < deadline, "{}", self.screen(name));
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (up to 20 s) until the screen of `name` has a line satisfying `want`.
    fn wait_line(&self, name: &str, want: impl Fn(&str) -> bool) -> String {
        self.wait_screen(name, |screen| screen.lines().any(|l| want(l.trim_end())))
    }

    /// Waits until the shell printed its prompt again after the line `marker`: all that
    /// the command typed with it wrote is on the screen (it comes in several writes, and
    /// what is not relayed yet when the detach keys arrive is not shown any more).
    fn wait_prompt_after(&self, name: &str, marker: &str) -> String {
        self.wait_screen(name, |screen| {
            screen
                .lines()
                .skip_while(|l| *l != marker)
                .any(|l| l.trim_end().ends_with("/ #"))
        })
    }

    fn wait_screen(&self, name: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let screen = self.screen(name);
            if want(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "never shown on {name}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn rbuild_line(env: &Env, args: &str) -> String {
    format!(
        "{} --root {} {args}",
        common::rbuild_bin(),
        env.0.root().display()
    )
}

/// `run -it` then Ctrl-P Ctrl-Q: `run` returns (status 0, nothing printed after) and the
/// container runs on (ps: Up); `attach` gets its terminal back (sized as the client's),
/// and the shell's exit ends `attach` with its code.
#[test]
fn detach_keys_leave_it_running_and_attach_again() {
    let env = Env::new();
    let tmux = Tmux::new();
    tmux.start("run", &rbuild_line(&env, "run -it --name t bb sh"));
    tmux.wait_line("run", |l| l.ends_with("/ #"));
    tmux.keys("run", &["echo mark-$((6*7))", "Enter"]);
    tmux.wait_prompt_after("run", "mark-42");
    tmux.keys("run", &["C-p", "C-q"]);
    let screen = tmux.wait_line("run", |l| l.ends_with("rc=0"));
    let after: Vec<&str> = screen
        .lines()
        .skip_while(|l| *l != "mark-42")
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(after, ["/ # rc=0"], "nothing printed on detach:\n{screen}");
    assert!(
        env.status_of("t").starts_with("Up"),
        "{}",
        env.status_of("t")
    );

    tmux.start("again", &rbuild_line(&env, "attach t"));
    // Attached once the shell answers a command typed here.
    tmux.keys("again", &["stty size; exit 6", "Enter"]);
    let screen = tmux.wait_line("again", |l| l.ends_with("rc=6"));
    assert!(screen.lines().any(|l| l == "30 100"), "{screen}");
    assert!(env.status_of("t").starts_with("Exited (6)"));
}

/// `--detach-keys`: with `ctrl-x,d` Ctrl-P Ctrl-Q go to the container (ash recalls the
/// previous command with Ctrl-P) and Ctrl-X d detaches; `start -ai --detach-keys` too.
#[test]
fn custom_detach_keys() {
    let env = Env::new();
    let tmux = Tmux::new();
    env.0.ok(&["create", "-it", "--name", "t", "bb", "sh"]);
    tmux.detach_with_ctrl_x_d(
        "start",
        &rbuild_line(&env, "start -ai --detach-keys ctrl-x,d t"),
    );
    assert!(env.status_of("t").starts_with("Up"));
    tmux.start(
        "attach",
        &rbuild_line(&env, "attach --detach-keys ctrl-a t"),
    );
    tmux.keys("attach", &["echo back", "Enter"]);
    tmux.wait_line("attach", |l| l == "back");
    tmux.keys("attach", &["C-a"]);
    tmux.wait_line("attach", |l| l.ends_with("rc=0"));
    assert!(env.status_of("t").starts_with("Up"));
}

/// Bug: `run -it --rm` returned (the exit code arrived) while the monitor was still
/// removing the container, and a `ps -a` right after could list it: the CLI waited for the
/// lease through the container dir, which the removal had already moved away. Now the
/// lease is opened before the run ends.
#[test]
fn bug_run_it_rm_listed_after_it_returned() {
    let env = Env::new();
    let tmux = Tmux::new();
    for i in 0..5 {
        let session = format!("rm{i}");
        let ps = rbuild_line(&env, "ps -a --format {{.Names}}");
        let run = rbuild_line(&env, &format!("run -it --rm --name gone{i} bb sh"));
        tmux.start(&session, &format!("{run}; rc=$?; {ps}; (exit $rc)"));
        tmux.wait_line(&session, |l| l.ends_with("/ #"));
        tmux.keys(&session, &["exit 2", "Enter"]);
        let screen = tmux.wait_line(&session, |l| l.ends_with("rc=2"));
        assert!(!screen.contains(&format!("gone{i}\n")), "{screen}");
    }
}

/// A store with container `t` running `sleep 1000` (detached).
fn with_sleeper() -> Env {
    let env = Env::new();
    env.0
        .ok(&["run", "-d", "--name", "t", "bb", "sleep", "1000"]);
    env
}

/// The `args` column of the processes in container `name` (an `exec` of `ps`; its own line
/// left out).
fn processes(env: &Env, name: &str) -> Vec<String> {
    env.0
        .ok(&["exec", name, "ps", "-o", "args"])
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with("ps "))
        .map(str::to_string)
        .collect()
}

/// Waits (up to 20 s) until container `name` runs a process whose args are `args`, `n` of them.
fn wait_processes(env: &Env, name: &str, args: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = processes(env, name);
        if now.iter().filter(|l| l.as_str() == args).count() == n {
            return;
        }
        assert!(Instant::now() < deadline, "{args} x{n}: {now:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `exec -it CTR sh`, then Ctrl-P Ctrl-Q: `exec` returns (status 0, nothing printed) and the
/// shell runs on in the container (docker's detach of an exec; before, the keys reached the
/// shell and `exec` could not detach). The exec'd shell's own exit status still comes back
/// when it ends attached, a signal's 128+N too.
#[test]
fn exec_it_detach_keys_leave_the_process_running() {
    let env = with_sleeper();
    let tmux = Tmux::new();
    tmux.start("exec", &rbuild_line(&env, "exec -it t sh"));
    tmux.wait_line("exec", |l| l.ends_with("/ #"));
    tmux.keys("exec", &["echo mark-$((6*7)); stty size", "Enter"]);
    let screen = tmux.wait_prompt_after("exec", "mark-42");
    tmux.keys("exec", &["C-p", "C-q"]);
    let screen_after = tmux.wait_line("exec", |l| l.ends_with("rc=0"));
    let after: Vec<&str> = screen_after
        .lines()
        .skip_while(|l| *l != "mark-42")
        .skip(2)
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(
        after,
        ["/ # rc=0"],
        "nothing printed on detach:\n{screen_after}"
    );
    assert!(
        screen.contains("30 100"),
        "the pty has the client's size:\n{screen}"
    );
    // The detached shell is still there, beside PID 1.
    wait_processes(&env, "t", "sh", 1);
    assert!(env.status_of("t").starts_with("Up"));

    // Not detached: the status as before.
    tmux.start("code", &rbuild_line(&env, "exec -it t sh"));
    tmux.wait_line("code", |l| l.ends_with("/ #"));
    tmux.keys("code", &["exit 5", "Enter"]);
    tmux.wait_line("code", |l| l.ends_with("rc=5"));
    tmux.start("signal", &rbuild_line(&env, "exec -it t sh"));
    tmux.wait_line("signal", |l| l.ends_with("/ #"));
    tmux.keys("signal", &["kill -9 $$", "Enter"]);
    tmux.wait_line("signal", |l| l.ends_with("rc=137"));
    // Only the detached shell is left.
    wait_processes(&env, "t", "sh", 1);
}

/// `exec -it --detach-keys ctrl-x,d`: Ctrl-P Ctrl-Q reach the shell (ash recalls the
/// previous command with Ctrl-P), Ctrl-X d detaches and the shell runs on.
#[test]
fn exec_it_custom_detach_keys() {
    let env = with_sleeper();
    let tmux = Tmux::new();
    tmux.detach_with_ctrl_x_d(
        "exec",
        &rbuild_line(&env, "exec -it --detach-keys ctrl-x,d t sh"),
    );
    wait_processes(&env, "t", "sh", 1);
}

/// The PID of the `rbuild ... exec -it` process of `env` whose command line contains
/// `marker` (the client running in a tmux pane).
fn exec_client_pid(env: &Env, marker: &str) -> i32 {
    let root = env.0.root().display().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = common::pids_with_args(|args| {
            args.contains(&root)
                && args.iter().any(|a| a == "exec")
                && args.iter().any(|a| a.contains(marker))
        });
        if let Some(pid) = found.first() {
            return *pid;
        }
        assert!(Instant::now() < deadline, "no exec client with {marker}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `exec -it` as before the holder: a SIGTERM to the `exec` command reaches the process
/// (which exits with its own status here), and the statuses of a process that cannot be set
/// up (126), is not found (127), or of a missing container (1) are docker's.
#[test]
fn exec_it_signals_and_failures_as_before() {
    let env = with_sleeper();
    let tmux = Tmux::new();
    tmux.start(
        "term",
        &rbuild_line(
            &env,
            "exec -it t sh -c 'trap \"echo got-term; exit 3\" TERM; echo ready-term; \
             while :; do sleep 0.05; done'",
        ),
    );
    tmux.wait_line("term", |l| l == "ready-term");
    let client = exec_client_pid(&env, "ready-term");
    let out = Command::new("kill")
        .args(["-TERM", &client.to_string()])
        .output()
        .unwrap();
    assert_success("kill -TERM", &out);
    let screen = tmux.wait_line("term", |l| l.ends_with("rc=3"));
    assert!(screen.lines().any(|l| l == "got-term"), "{screen}");
    for (name, args, rc) in [
        ("workdir", "exec -it -w /no/such/dir t sh", "rc=126"),
        ("missing", "exec -it t no-such-program", "rc=127"),
        ("nosuch", "exec -it nosuch sh", "rc=1"),
    ] {
        tmux.start(name, &rbuild_line(&env, args));
        tmux.wait_line(name, |l| l.ends_with(rc));
    }
}
