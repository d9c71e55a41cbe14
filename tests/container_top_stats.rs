//! `rbuild top` and `rbuild stats --no-stream`: a running container's processes and resource
//! use from its cgroups, through the real binary (root, real kernel).

mod common;
mod running_support;

use common::TestEnv;
use running_support::Running;

#[test]
fn top_lists_the_processes_of_the_container_only() {
    let env = TestEnv::with_base("bb");
    let _c = Running::start(
        &env,
        "t1",
        &["bb", "sh", "-c", "sleep 1001 & sleep 1002 & wait"],
    );
    // An exec'd process is the container's too.
    env.ok(&["exec", "-d", "t1", "sleep", "1003"]);
    let start = std::time::Instant::now();
    let out = loop {
        let out = env.ok(&["top", "t1"]);
        if out.contains("sleep 1003") || start.elapsed().as_secs() > 10 {
            break out;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut lines = out.lines();
    let header = lines.next().unwrap();
    assert!(header.contains("PID") && header.contains("CMD"), "{out}");
    let mut sorted: Vec<String> = lines
        .map(|l| l.split_whitespace().skip(7).collect::<Vec<_>>().join(" "))
        .collect();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "sh -c sleep 1001 & sleep 1002 & wait",
            "sleep 1001",
            "sleep 1002",
            "sleep 1003"
        ],
        "{out}"
    );
    // ps options pass through.
    let out = env.ok(&["top", "t1", "-o", "pid,args"]);
    assert!(
        out.starts_with("  PID COMMAND") || out.contains("PID"),
        "{out}"
    );
    assert_eq!(out.lines().count(), 5, "{out}");
}

#[test]
fn top_and_stats_of_a_stopped_container_are_refused() {
    let env = TestEnv::with_base("bb");
    env.ok(&["run", "--name", "gone", "bb", "true"]);
    for args in [&["top", "gone"][..], &["stats", "--no-stream", "gone"][..]] {
        let out = env.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(common::stderr(&out).contains("is not running"), "{args:?}");
    }
}

#[test]
fn stats_shows_cpu_memory_and_pids_from_the_cgroup() {
    let env = TestEnv::with_base("bb");
    let _busy = Running::start(
        &env,
        "busy",
        &[
            "-m",
            "64m",
            "bb",
            "sh",
            "-c",
            "sleep 1000 & while :; do :; done",
        ],
    );
    let _idle = Running::start(&env, "idle", &["bb", "sleep", "1000"]);
    let out = env.ok(&["stats", "--no-stream"]);
    let header = out.lines().next().unwrap();
    for title in [
        "CONTAINER ID",
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "PIDS",
    ] {
        assert!(header.contains(title), "{out}");
    }
    assert_eq!(out.lines().count(), 3, "{out}");
    let format = "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.PIDs}}";
    let out = env.ok(&["stats", "--no-stream", "--format", format, "busy", "idle"]);
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(rows.len(), 2, "{out}");
    let cpu = |s: &str| s.trim_end_matches('%').parse::<f64>().unwrap();
    assert_eq!(rows[0][0], "busy");
    assert!(cpu(rows[0][1]) > 5.0, "a busy loop uses CPU: {out}");
    assert!(rows[0][2].ends_with(" / 64MiB"), "the memory limit: {out}");
    assert_eq!(rows[0][3], "2", "sh and sleep: {out}");
    assert_eq!(rows[1][0], "idle");
    assert!(cpu(rows[1][1]) < cpu(rows[0][1]), "{out}");
    assert_eq!(rows[1][3], "1", "{out}");
}
