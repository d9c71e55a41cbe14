//! Detached containers and their lifecycle through the real binary on the real kernel:
//! `run -d` and its monitor, `logs`, `ps` STATUS and filters, `stop`, `kill`, `wait`,
//! `start`, `restart`, `rename`, `rm -f`, `create`, `container prune`, restart policies.
//!
//! Waits are on conditions (a log line, a file, `wait` returning), never on sleeps alone.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{assert_success, stdout};

/// A store with busybox as `bb`, containers force-removed at the end.
type Env = common::containers::Containers;

impl Env {
    /// `run -d ARGS`: asserts success, returns the printed ID.
    fn run_d(&self, args: &[&str]) -> String {
        let mut full = vec!["run", "-d"];
        full.extend_from_slice(args);
        let id = self.0.ok(&full).trim().to_string();
        assert_eq!(id.len(), 64, "run -d prints the full ID: {id:?}");
        id
    }

    /// Waits until `logs NAME` contains `text`.
    fn wait_for_log(&self, name: &str, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self.0.run(&["logs", name]);
            if stdout(&out).contains(text) {
                return;
            }
            assert!(Instant::now() < deadline, "{text:?} never logged by {name}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Whether some process's argv is exactly `argv` (its command line ends with a NUL: the
/// split leaves an empty last piece).
fn process_exists(argv: &[&str]) -> bool {
    !common::pids_with_args(|args| {
        args.iter()
            .map(String::as_str)
            .eq(argv.iter().copied().chain([""]))
    })
    .is_empty()
}

/// Waits up to 10 s for a process whose argv is exactly `argv`. A start is announced once
/// the container's process is set up and about to exec (as `runc start`, docker's): the
/// exec itself can come a moment after `run -d` returned.
fn wait_for_process(argv: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !process_exists(argv) {
        assert!(Instant::now() < deadline, "{argv:?} never ran");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn detached_container_survives_the_cli_and_stops() {
    let env = Env::new();
    let id = env.run_d(&["--name", "web", "bb", "sleep", "31711"]);
    // The CLI has exited; the container's process runs on.
    wait_for_process(&["sleep", "31711"]);
    assert!(
        env.status_of("web").starts_with("Up "),
        "{}",
        env.status_of("web")
    );
    assert_eq!(env.0.ok(&["ps", "-q", "--no-trunc"]).trim(), id);
    // sleep as PID 1 ignores SIGTERM: stop waits -t seconds, then SIGKILL (137).
    let started = Instant::now();
    assert_eq!(env.0.ok(&["stop", "-t", "1", "web"]).trim(), "web");
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(
        env.status_of("web").starts_with("Exited (137) "),
        "{}",
        env.status_of("web")
    );
    assert!(!process_exists(&["sleep", "31711"]));
    assert_eq!(env.0.ok(&["ps", "-q"]), "");
}

#[test]
fn logs_keep_both_streams_with_times_and_tail() {
    let env = Env::new();
    env.run_d(&[
        "--name",
        "chat",
        "bb",
        "sh",
        "-c",
        "echo one; echo two >&2; echo three",
    ]);
    assert_eq!(env.0.ok(&["wait", "chat"]).trim(), "0");
    let out = env.0.run(&["logs", "chat"]);
    assert_eq!(stdout(&out), "one\nthree\n");
    assert_eq!(common::stderr(&out), "two\n");
    // The last entry of either stream (their order is the order the monitor read them in).
    let last = env.0.run(&["logs", "--tail", "1", "chat"]);
    let both = stdout(&last) + &common::stderr(&last);
    assert!(both == "three\n" || both == "two\n", "{both:?}");
    let stamped = env.0.ok(&["logs", "-t", "chat"]);
    let (time, text) = stamped.lines().next().unwrap().split_once(' ').unwrap();
    assert_eq!(text, "one");
    assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{time}");
    assert_eq!(env.0.ok(&["logs", "--since", "1h", "chat"]), "one\nthree\n");
    assert_eq!(env.0.ok(&["logs", "--until", "1h", "chat"]), "");
    // The log is docker's json-file format.
    let dir = env.0.root().join("containers");
    let id = env.0.ok(&["ps", "-aq", "--no-trunc"]).trim().to_string();
    let log = std::fs::read_to_string(dir.join(&id).join(format!("{id}-json.log"))).unwrap();
    let entries: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let first = entries.iter().find(|e| e["stream"] == "stdout").unwrap();
    assert_eq!(first["log"], "one\n");
    assert!(entries
        .iter()
        .any(|e| e["stream"] == "stderr" && e["log"] == "two\n"));
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn logs_follow_follows_until_the_container_exits() {
    let env = Env::new();
    let shared = env.0.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    let volume = format!("{}:/x", shared.display());
    let script = "echo first; until [ -e /x/go ]; do sleep 0.02; done; echo second";
    env.run_d(&["--name", "f", "-v", &volume, "bb", "sh", "-c", script]);
    let mut logs = env
        .0
        .cmd()
        .args(["logs", "-f", "f"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(logs.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "first");
    std::fs::write(shared.join("go"), "").unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "second");
    assert!(lines.next().is_none(), "logs -f ends with the container");
    assert!(logs.wait().unwrap().success());
}

#[test]
fn killed_monitor_is_shown_as_exited() {
    let env = Env::new();
    // The monitor SIGKILLs itself once the container runs (test kill point).
    let out = env
        .0
        .cmd()
        .args(["run", "-d", "--name", "orphan", "bb", "sleep", "31712"])
        .env("RBUILD_TEST_KILL_AT", "monitor-running:1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_success("run -d", &out);
    // The container died with its monitor (parent-death signal) and is not "running".
    assert_eq!(env.0.ok(&["wait", "orphan"]).trim(), "137");
    assert!(env.status_of("orphan").starts_with("Exited (137) "));
    assert_eq!(env.0.ok(&["ps", "-q"]), "");
    let deadline = Instant::now() + Duration::from_secs(10);
    while process_exists(&["sleep", "31712"]) {
        assert!(
            Instant::now() < deadline,
            "the container outlived its monitor"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // And it can be started again.
    env.0.ok(&["start", "orphan"]);
    assert!(env.status_of("orphan").starts_with("Up "));
}

#[test]
fn stop_uses_the_images_stopsignal() {
    let env = Env::new();
    env.0.import_base_with("sig", &["STOPSIGNAL SIGUSR1"]);
    let script = "trap 'exit 7' USR1; echo ready; while :; do sleep 0.05; done";
    env.run_d(&["--name", "s", "sig", "sh", "-c", script]);
    env.wait_for_log("s", "ready");
    let started = Instant::now();
    env.0.ok(&["stop", "-t", "30", "s"]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "not killed by the timeout"
    );
    assert!(
        env.status_of("s").starts_with("Exited (7) "),
        "{}",
        env.status_of("s")
    );
    // --stop-signal overrides it.
    let script = "trap 'exit 9' HUP; echo ready; while :; do sleep 0.05; done";
    env.run_d(&[
        "--name",
        "h",
        "--stop-signal",
        "HUP",
        "sig",
        "sh",
        "-c",
        script,
    ]);
    env.wait_for_log("h", "ready");
    env.0.ok(&["stop", "h"]);
    assert!(env.status_of("h").starts_with("Exited (9) "));
}

#[test]
fn stop_timeout_flag_then_sigkill() {
    let env = Env::new();
    env.run_d(&["--name", "t", "--stop-timeout", "1", "bb", "sleep", "1000"]);
    let started = Instant::now();
    env.0.ok(&["stop", "t"]);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(8),
        "{took:?}"
    );
    assert_eq!(env.0.ok(&["wait", "t"]).trim(), "137");
}

#[test]
fn start_runs_again_with_filesystem_changes_kept() {
    let env = Env::new();
    let script = "echo x >> /counted; wc -l < /counted; exit 3";
    env.run_d(&["--name", "again", "bb", "sh", "-c", script]);
    assert_eq!(env.0.ok(&["wait", "again"]).trim(), "3");
    let out = env.0.run(&["start", "-a", "again"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(stdout(&out).trim(), "2");
    assert!(env.status_of("again").starts_with("Exited (3) "));
    // restart of a stopped container starts it.
    env.0.ok(&["restart", "again"]);
    assert_eq!(env.0.ok(&["wait", "again"]).trim(), "3");
    assert_eq!(env.0.ok(&["logs", "--tail", "1", "again"]).trim(), "3");
}

#[test]
fn restart_on_failure_3_restarts_exactly_3_times() {
    let env = Env::new();
    env.run_d(&[
        "--name",
        "crash",
        "--restart",
        "on-failure:3",
        "bb",
        "sh",
        "-c",
        "echo run; exit 1",
    ]);
    // `wait` returns once the monitor gave up.
    assert_eq!(env.0.ok(&["wait", "crash"]).trim(), "1");
    assert_eq!(env.0.ok(&["logs", "crash"]), "run\n".repeat(4));
    // A clean exit is not restarted.
    env.run_d(&[
        "--name",
        "fine",
        "--restart",
        "on-failure",
        "bb",
        "sh",
        "-c",
        "echo run",
    ]);
    assert_eq!(env.0.ok(&["wait", "fine"]).trim(), "0");
    assert_eq!(env.0.ok(&["logs", "fine"]), "run\n");
}

#[test]
fn restart_always_until_stopped() {
    let env = Env::new();
    env.run_d(&[
        "--name",
        "loop",
        "--restart",
        "always",
        "bb",
        "sh",
        "-c",
        "echo run; sleep 0.05",
    ]);
    env.wait_for_log("loop", "run\nrun\nrun\n");
    env.0.ok(&["stop", "loop"]);
    assert!(
        env.status_of("loop").starts_with("Exited ("),
        "{}",
        env.status_of("loop")
    );
    assert_eq!(env.0.ok(&["ps", "-q"]), "");
    // `start --all-restartable` brings back `always` containers, not others.
    env.run_d(&["--name", "plain", "bb", "true"]);
    env.0.ok(&["wait", "plain"]);
    let out = env.0.ok(&["start", "--all-restartable"]);
    assert_eq!(out.lines().count(), 1, "{out}");
    let status = env.status_of("loop");
    assert!(
        status.starts_with("Up ") || status.starts_with("Restarting"),
        "{status}"
    );
    assert!(env.status_of("plain").starts_with("Exited (0)"));
}

#[test]
fn kill_sends_the_signal_and_wait_reports_the_code() {
    let env = Env::new();
    let script = "trap 'exit 5' USR2; echo ready; while :; do sleep 0.05; done";
    env.run_d(&["--name", "k", "bb", "sh", "-c", script]);
    env.wait_for_log("k", "ready");
    env.0.ok(&["kill", "-s", "SIGUSR2", "k"]);
    assert_eq!(env.0.ok(&["wait", "k"]).trim(), "5");
    let err = env.0.fails(&["kill", "k"]);
    assert!(err.contains("is not running"), "{err}");
}

#[test]
fn rm_force_removes_running_and_stopped_containers() {
    let env = Env::new();
    env.run_d(&["bb", "sleep", "31713"]);
    env.run_d(&["bb", "sleep", "31714"]);
    env.run_d(&["bb", "true"]);
    let ids = env.0.ok(&["ps", "-aq"]);
    let mut args = vec!["rm", "-f"];
    args.extend(ids.lines());
    assert_eq!(env.0.ok(&args).lines().count(), 3);
    assert_eq!(env.0.ok(&["ps", "-aq"]), "");
    assert!(!process_exists(&["sleep", "31713"]));
    let left: Vec<_> = std::fs::read_dir(env.0.root().join("containers"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // Without -f a running container stays.
    env.run_d(&["--name", "busy", "bb", "sleep", "1000"]);
    assert!(env
        .0
        .fails(&["rm", "busy"])
        .contains("container is running"));
}

#[test]
fn create_start_rename_prune() {
    let env = Env::new();
    let id = env
        .0
        .ok(&["create", "--name", "made", "bb", "sh", "-c", "echo hi"]);
    assert_eq!(id.trim().len(), 64);
    assert_eq!(env.status_of("made"), "Created");
    env.0.ok(&["rename", "made", "renamed"]);
    assert!(env.0.fails(&["start", "made"]).contains("made"));
    assert_eq!(env.0.ok(&["start", "renamed"]).trim(), "renamed");
    assert_eq!(env.0.ok(&["wait", "renamed"]).trim(), "0");
    assert_eq!(env.0.ok(&["logs", "renamed"]), "hi\n");
    env.run_d(&["--name", "up", "bb", "sleep", "1000"]);
    env.run_d(&["--name", "other", "bb", "true"]);
    assert!(env
        .0
        .fails(&["rename", "renamed", "up"])
        .contains("already in use"));
    env.0.ok(&["wait", "other"]);
    let out = env.0.ok(&["container", "prune", "-f"]);
    assert!(out.starts_with("Deleted Containers:\n"), "{out}");
    assert_eq!(out.lines().count(), 4, "{out}");
    assert_eq!(env.0.ok(&["ps", "-a", "--format", "{{.Names}}"]), "up\n");
}

#[test]
fn ps_filters_last_and_statuses() {
    let env = Env::new();
    env.run_d(&["--name", "zero", "-l", "tier=db", "bb", "true"]);
    env.0.ok(&["wait", "zero"]);
    env.run_d(&["--name", "four", "bb", "sh", "-c", "exit 4"]);
    env.0.ok(&["wait", "four"]);
    env.run_d(&["--name", "live", "bb", "sleep", "1000"]);
    env.0.ok(&["create", "--name", "new", "bb", "true"]);
    let names = |args: &[&str]| {
        let mut full = vec!["ps", "--format", "{{.Names}}"];
        full.extend_from_slice(args);
        let mut v: Vec<String> = env.0.ok(&full).lines().map(str::to_string).collect();
        v.sort();
        v.join(",")
    };
    assert_eq!(names(&[]), "live");
    assert_eq!(names(&["-f", "status=exited"]), "four,zero");
    assert_eq!(names(&["-f", "exited=4"]), "four");
    assert_eq!(names(&["-f", "status=created"]), "new");
    assert_eq!(names(&["-a", "-f", "label=tier=db"]), "zero");
    assert_eq!(names(&["-a", "-f", "label=tier"]), "zero");
    assert_eq!(names(&["-a", "-f", "name=ou"]), "four");
    assert_eq!(names(&["-a", "-f", "ancestor=bb"]), "four,live,new,zero");
    assert_eq!(names(&["-n", "2"]).split(',').count(), 2);
    assert_eq!(names(&["-l"]).split(',').count(), 1);
    assert_eq!(
        env.0
            .ok(&[
                "ps",
                "-a",
                "-f",
                "status=running",
                "--format",
                "{{.Status}}"
            ])
            .trim()
            .split(' ')
            .next(),
        Some("Up")
    );
}

#[test]
fn run_d_start_error_exits_125_and_rm_with_d_removes() {
    let env = Env::new();
    // A working directory that is a file fails in the monitor, before the process runs.
    let out = env.0.run(&[
        "run",
        "-d",
        "--name",
        "broken",
        "-w",
        "/etc/passwd",
        "bb",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    assert!(stdout(&out).is_empty());
    assert!(common::stderr(&out).contains("/etc/passwd"), "{out:?}");
    assert_eq!(env.status_of("broken"), "Created");
    // -d --rm: removed once it ends.
    // `true` may end and be removed before `wait` asks (then docker says "No such
    // container" too), so the check is that it leaves `ps -a` soon.
    env.run_d(&["--rm", "--name", "gone", "bb", "true"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let names = env.0.ok(&["ps", "-a", "--format", "{{.Names}}"]);
        if names.trim() == "broken" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "--rm container never removed: {names}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(env
        .0
        .fails(&["run", "-d", "--rm", "--restart", "always", "bb", "true"])
        .contains("conflicting options"));
}

#[test]
fn pause_freezes_every_process_until_unpause() {
    let env = Env::new();
    let shared = env.0.path().join("ticks");
    std::fs::create_dir(&shared).unwrap();
    let volume = format!("{}:/x", shared.display());
    // A child process writes: the freezer must stop the whole tree, not just PID 1.
    let script = "sh -c 'while :; do echo . >> /x/n; sleep 0.01; done' & wait";
    let id = env.run_d(&["--name", "p", "-v", &volume, "bb", "sh", "-c", script]);
    let size = || {
        std::fs::metadata(shared.join("n"))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    let grows = |from: u64| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while size() <= from {
            assert!(Instant::now() < deadline, "the container does not run");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    grows(0);
    env.0.ok(&["pause", "p"]);
    assert!(
        env.status_of("p").ends_with(" (Paused)"),
        "{}",
        env.status_of("p")
    );
    assert_eq!(
        env.0
            .ok(&["ps", "-f", "status=paused", "--format", "{{.Names}}"]),
        "p\n"
    );
    let frozen = size();
    // A running loop writes every 10 ms; a frozen one not once in 300 ms.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(size(), frozen, "a paused container wrote");
    assert!(env.0.fails(&["pause", "p"]).contains("already paused"));
    env.0.ok(&["unpause", "p"]);
    grows(frozen);
    assert!(env.status_of("p").starts_with("Up ") && !env.status_of("p").contains("Paused"));
    assert!(env.0.fails(&["unpause", "p"]).contains("not paused"));
    // A paused container stops (signalled, then thawed).
    env.0.ok(&["pause", "p"]);
    env.0.ok(&["stop", "-t", "1", "p"]);
    assert!(
        env.status_of("p").starts_with("Exited (137) "),
        "{}",
        env.status_of("p")
    );
    // On a v1 freezer (this kind of host) the group made for the pause went with it.
    let v1_group = std::path::Path::new("/sys/fs/cgroup/freezer/rbuild").join(&id);
    assert!(!v1_group.exists(), "{} left behind", v1_group.display());
}

/// Polls `ps` until container `name`'s STATUS ends with `suffix`.
fn wait_for_status(env: &Env, name: &str, suffix: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = env.status_of(name);
        if status.ends_with(suffix) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: {status:?}, never {suffix:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn health_check_goes_starting_healthy_unhealthy() {
    let env = Env::new();
    let shared = env.0.path().join("health");
    std::fs::create_dir(&shared).unwrap();
    let volume = format!("{}:/x", shared.display());
    let check = "test -e /x/ok";
    env.run_d(&[
        "--name",
        "h",
        "-v",
        &volume,
        "--health-cmd",
        check,
        "--health-interval",
        "50ms",
        "--health-retries",
        "3",
        "bb",
        "sleep",
        "1000",
    ]);
    // Failures before the first success leave it "starting" until the retries run out;
    // make it pass first.
    std::fs::write(shared.join("ok"), "").unwrap();
    wait_for_status(&env, "h", "(healthy)");
    std::fs::remove_file(shared.join("ok")).unwrap();
    wait_for_status(&env, "h", "(unhealthy)");
    // The image's HEALTHCHECK, run inside the container (its root, not the host's).
    env.0.import_base_with(
        "hc",
        &["HEALTHCHECK --interval=50ms --retries=1 CMD test -e /bin/busybox"],
    );
    env.run_d(&["--name", "img", "hc", "sleep", "1000"]);
    wait_for_status(&env, "img", "(healthy)");
    // --no-healthcheck turns it off.
    env.run_d(&["--name", "off", "--no-healthcheck", "hc", "sleep", "1000"]);
    assert!(
        !env.status_of("off").contains("health"),
        "{}",
        env.status_of("off")
    );
}

#[test]
fn health_check_failures_in_start_period_do_not_count() {
    let env = Env::new();
    let shared = env.0.path().join("runs");
    std::fs::create_dir(&shared).unwrap();
    let volume = format!("{}:/x", shared.display());
    // Each check leaves a trace, then fails.
    env.run_d(&[
        "--name",
        "s",
        "-v",
        &volume,
        "--health-cmd",
        "echo . >> /x/runs; false",
        "--health-interval",
        "50ms",
        "--health-retries",
        "1",
        "--health-start-period",
        "1h",
        "bb",
        "sleep",
        "1000",
    ]);
    let runs = || {
        std::fs::read_to_string(shared.join("runs"))
            .unwrap_or_default()
            .len()
            / 2
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while runs() < 3 {
        assert!(Instant::now() < deadline, "the check does not run");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        env.status_of("s").ends_with("(health: starting)"),
        "{}",
        env.status_of("s")
    );
}
