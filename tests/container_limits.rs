//! Resource limits of `rbuild run` (`-m`, `--memory-swap`, `--cpus`, `--cpu-shares`,
//! `--pids-limit`, `--ulimit`) through the host's cgroups (v2, or v1 on hybrid hosts), on the
//! real kernel as root.

mod common;
mod running_support;

use common::{stderr, TestEnv};
use running_support::Running;

fn code(out: &std::process::Output) -> i32 {
    out.status.code().expect("rbuild exited by a signal")
}

/// Allocates `mb` MiB in a shell variable (busybox `head` and `tr`), then says `survived`.
fn allocate(mb: u32) -> String {
    format!(
        "x=$(head -c {} /dev/zero | tr '\\0' a); echo survived",
        mb * 1024 * 1024
    )
}

#[test]
fn memory_limit_kills_a_process_that_exceeds_it() {
    let env = TestEnv::with_base("bb");
    // Under the limit: fine.
    let out = env.run(&["run", "--rm", "-m", "64m", "bb", "sh", "-c", &allocate(8)]);
    assert_eq!(common::stdout(&out), "survived\n", "{}", stderr(&out));
    // Over it: the OOM killer ends the process (SIGKILL: 137), docker's OOMKilled is set.
    let out = env.run(&[
        "run",
        "--name",
        "hog",
        "-m",
        "32m",
        "bb",
        "sh",
        "-c",
        &allocate(100),
    ]);
    assert_eq!(code(&out), 137, "{}", stderr(&out));
    assert!(!common::stdout(&out).contains("survived"));
    let state = &env.ok(&[
        "inspect",
        "--type",
        "container",
        "--format",
        "{{json .State}}",
        "hog",
    ]);
    let state: serde_json::Value = serde_json::from_str(state).unwrap();
    assert_eq!(state["OOMKilled"], true, "{state}");
    assert_eq!(state["ExitCode"], 137, "{state}");
    // Without a memory limit the same allocation succeeds, and OOMKilled stays false.
    env.ok(&["run", "--name", "free", "bb", "sh", "-c", &allocate(100)]);
    let oom = env.ok(&["inspect", "--format", "{{.State.OOMKilled}}", "free"]);
    assert_eq!(oom, "false\n");
}

/// `run --rm --pids-limit LIMIT` of a loop starting up to 100 background sleeps, each
/// counted in `/out/n`; returns the output and the count reached.
fn fork_loop(env: &TestEnv, limit: &str) -> (std::process::Output, u32) {
    let out_dir = env.path().join("out");
    let volume = format!("{}:/out", out_dir.display());
    let out = env.run(&[
        "run",
        "--rm",
        "--pids-limit",
        limit,
        "-v",
        &volume,
        "bb",
        "sh",
        "-c",
        "n=0; while [ $n -lt 100 ]; do sleep 60 & n=$((n+1)); echo $n > /out/n; done",
    ]);
    let count = std::fs::read_to_string(out_dir.join("n"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (out, count)
}

#[test]
fn pids_limit_10_stops_a_fork_bomb() {
    let env = TestEnv::with_base("bb");
    let (out, count) = fork_loop(&env, "10");
    assert!(stderr(&out).contains("can't fork"), "{}", stderr(&out));
    // sh itself is one of the 10.
    assert!((1..10).contains(&count), "{count} processes started");
    // -1 lifts the limit (docker's meaning): 100 processes start.
    let (out, count) = fork_loop(&env, "-1");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(count, 100);
}

#[test]
fn limits_are_set_in_the_containers_cgroups() {
    let env = TestEnv::with_base("bb");
    let running = Running::start(
        &env,
        "limited",
        &[
            "-m",
            "64m",
            "--memory-swap",
            "100m",
            "--cpus",
            "0.5",
            "--cpu-shares",
            "512",
            "--pids-limit",
            "10",
            "bb",
            "sleep",
            "1000",
        ],
    );
    let id = running.id();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let v1 = |controller: &str| {
        mountinfo.lines().find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let opts = right.split(' ').nth(2)?;
            (right.starts_with("cgroup ") && opts.split(',').any(|o| o == controller))
                .then(|| std::path::PathBuf::from(left.split(' ').nth(4).unwrap_or("")))
        })
    };
    let read = |mount: &std::path::Path, file: &str| {
        std::fs::read_to_string(mount.join("rbuild").join(&id).join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .trim()
            .to_string()
    };
    match (v1("memory"), v1("cpu"), v1("pids")) {
        (Some(memory), Some(cpu), Some(pids)) => {
            assert_eq!(read(&memory, "memory.limit_in_bytes"), "67108864");
            assert_eq!(read(&memory, "memory.memsw.limit_in_bytes"), "104857600");
            assert_eq!(read(&cpu, "cpu.cfs_quota_us"), "50000");
            assert_eq!(read(&cpu, "cpu.cfs_period_us"), "100000");
            assert_eq!(read(&cpu, "cpu.shares"), "512");
            assert_eq!(read(&pids, "pids.max"), "10");
        }
        _ => {
            // A cgroup v2 host.
            let unified = std::path::Path::new("/sys/fs/cgroup");
            assert_eq!(read(unified, "memory.max"), "67108864");
            assert_eq!(read(unified, "cpu.max"), "50000 100000");
            assert_eq!(read(unified, "pids.max"), "10");
        }
    }
}

#[test]
fn ulimits_replace_the_defaults() {
    let env = TestEnv::with_base("bb");
    let out = env.ok(&[
        "run",
        "--rm",
        "--ulimit",
        "nofile=100:200",
        "--ulimit",
        "core=0",
        "bb",
        "sh",
        "-c",
        "ulimit -n; ulimit -Hn; ulimit -c",
    ]);
    assert_eq!(out, "100\n200\n0\n");
}

#[test]
fn limits_docker_refuses_are_errors_before_the_start() {
    let env = TestEnv::with_base("bb");
    for (flags, message) in [
        (&["-m", "1m"][..], "Minimum memory limit allowed is 6MB"),
        (&["-m", "lots"][..], "invalid size"),
        (&["--memory-swap", "1g"][..], "always set the Memory limit"),
        (
            &["-m", "64m", "--memory-swap", "32m"][..],
            "should be larger than memory limit",
        ),
        (&["--cpus", "4096"][..], "range of CPUs is from 0.01"),
        (&["--ulimit", "bogus=1"][..], "invalid ulimit type: bogus"),
        (
            &["--ulimit", "nofile=10:5"][..],
            "soft limit must be less than or equal",
        ),
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend(["bb", "true"]);
        let out = env.run(&args);
        assert_eq!(code(&out), 125, "{flags:?}");
        assert!(
            stderr(&out).contains(message),
            "{flags:?}: {}",
            stderr(&out)
        );
    }
    assert_eq!(env.ok(&["ps", "-a", "-q"]), "", "nothing created");
}
