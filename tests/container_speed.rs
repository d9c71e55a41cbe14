//! The container commands' speed work (issue 13) keeps their behaviour: commands that only
//! read containers do not write the database, and a `run -d --rm` container is removed
//! before anyone waiting for it sees it stopped.

mod common;

use common::{stdout, TestEnv};

/// The metadata database's bytes (a write transaction always changes its header), read
/// under the store's lock as rbuild reads it: `run -d` returns while its monitor may still
/// be recording the start (holding the lock).
fn database(env: &TestEnv) -> Vec<u8> {
    let lock = std::fs::File::open(env.root().join("lock")).unwrap();
    lock.lock().unwrap();
    std::fs::read(env.root().join("meta.redb")).unwrap()
}

/// `exec`, `ps`, `inspect`, `logs` and a `stop` of a stopped container only read the
/// database: before, each opened it for writing (three to six fdatasyncs per command, the
/// largest part of `exec`'s time on a busy disk).
#[test]
fn reading_commands_leave_the_database_unchanged() {
    let env = TestEnv::with_base("bb");
    let id = env.ok(&["run", "-d", "--network", "none", "bb", "sleep", "1000"]);
    let id = id.trim();
    let before = database(&env);
    env.ok(&["exec", id, "true"]);
    env.ok(&["ps", "-a"]);
    env.ok(&["inspect", id]);
    env.ok(&["logs", id]);
    assert!(
        database(&env) == before,
        "a reading command wrote the database"
    );
    env.ok(&["rm", "-f", id]);
    let id = env.ok(&["create", "--network", "none", "bb", "true"]);
    let before = database(&env);
    env.ok(&["stop", id.trim()]);
    env.ok(&["ps", "-a"]);
    assert!(
        database(&env) == before,
        "stop of a created container wrote"
    );
}

/// Regression: the monitor of a `run -d --rm` container released the container's lease
/// (what `stop` and `wait` wait for) before removing it, so `ps -a` right after `stop` could
/// still list it (a read that got faster made that happen every time in
/// containers_life::run_d_start_error_exits_125_and_rm_with_d_removes).
#[test]
fn bug_stop_returned_before_run_d_rm_removed_the_container() {
    let env = TestEnv::with_base("bb");
    for i in 0..3 {
        let name = format!("gone{i}");
        env.ok(&[
            "run",
            "-d",
            "--rm",
            "--network",
            "none",
            "--name",
            &name,
            "bb",
            "sleep",
            "1000",
        ]);
        env.ok(&["stop", "-t", "0", &name]);
        let out = env.run(&["ps", "-a", "--format", "{{.Names}}"]);
        assert!(
            !stdout(&out).contains(&name),
            "{name} still listed: {out:?}"
        );
    }
}

/// `stop` returns once the container's processes are gone, without waiting for the kernel's
/// sync of the store's filesystem at the overlay's last unmount (300-500 ms on a busy disk,
/// most of `stop`'s time): the unmount goes on in a child nobody waits for, held here by the
/// test hook. It keeps the upper dir locked, and the next `start` waits for it (two overlays
/// on one upper dir are refused or warned about by the kernel), then sees the files kept.
#[test]
fn stop_does_not_wait_for_the_rootfs_unmount_and_start_does() {
    let env = TestEnv::with_base("bb");
    let release = env.path().join("release-unmount");
    let id = common::ok_cmd(
        env.cmd()
            .env("RBUILD_TEST_UNMOUNT_HOLD", &release)
            .args(["run", "-d", "--network", "none", "bb", "sh", "-c"])
            .arg("echo kept > /f; exec sleep 1000"),
    );
    let id = id.trim();
    while env.run(&["exec", id, "test", "-f", "/f"]).status.code() != Some(0) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // `timeout`: a stop that waited for the held unmount would hang.
    let stopped = std::process::Command::new("timeout")
        .args(["120", common::rbuild_bin(), "--root"])
        .arg(env.root())
        .args(["stop", "-t", "0", id])
        .env_remove("RBUILD_ROOT")
        .output()
        .unwrap();
    common::assert_success("stop", &stopped);
    let upper = env.root().join("containers").join(id).join("upper");
    let free = std::process::Command::new("flock")
        .arg("-n")
        .arg(&upper)
        .arg("true")
        .status()
        .unwrap();
    assert!(!free.success(), "the unmount was not pending after stop");
    let status = env.ok(&["ps", "-a", "--format", "{{.Status}}"]);
    assert!(status.starts_with("Exited (137)"), "{status}");
    let mut start = env
        .cmd()
        .args(["start", id])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        start.try_wait().unwrap().is_none(),
        "start went on while the previous overlay was still mounted"
    );
    std::fs::write(&release, "").unwrap();
    assert!(start.wait().unwrap().success());
    assert_eq!(env.ok(&["exec", id, "cat", "/f"]).trim(), "kept");
    env.ok(&["rm", "-f", id]);
}

/// How many times `trace` (strace of open/openat) opened the store's metadata database.
fn database_opens(env: &TestEnv, trace: &std::path::Path) -> usize {
    let db = env.root().join("meta.redb").display().to_string();
    common::traced_paths(trace)
        .iter()
        .filter(|p| **p == db)
        .count()
}

/// A `run -d` / `stop` / `rm` cycle opens the metadata database 8 times (each open reads
/// redb's allocator state, some 2 ms here; the cycle opened it 13 times before): `run -d`
/// reads the image and writes the new record, its monitor reads the record and records the
/// start, then the exit, with no read before or after either; `stop -t 0` of a container
/// without a restart policy reads once (the PID it signals cannot change), and `rm` reads
/// once and removes the record (without `-v` it does not look the container up first).
#[test]
fn run_stop_rm_cycle_opens_the_database_eight_times() {
    let env = TestEnv::with_base("bb");
    // The store's first container also creates its table (one write more, once).
    let first = env.ok(&["create", "--network", "none", "bb", "true"]);
    env.ok(&["rm", first.trim()]);
    let traces = env.path().join("traces");
    std::fs::create_dir(&traces).unwrap();
    let trace = |name: &str| traces.join(name);
    let mut run = env.spawn_traced(
        &trace("run"),
        "trace=openat",
        &["run", "-d", "--network", "none", "bb", "sleep", "1000"],
    );
    // The ID line: the CLI is done, the monitor (traced too) runs the container.
    let mut id = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(run.stdout.take().unwrap()),
        &mut id,
    )
    .unwrap();
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id:?}");
    for (name, args) in [("stop", &["stop", "-t", "0", id][..]), ("rm", &["rm", id])] {
        let out = env
            .spawn_traced(&trace(name), "trace=openat", args)
            .wait_with_output()
            .unwrap();
        common::assert_success(name, &out);
    }
    // strace of `run -d` ends with the monitor, which recorded the exit before `stop` returned.
    assert!(run.wait().unwrap().success());
    let opens = [
        (
            "run -d and its monitor (start and exit)",
            database_opens(&env, &trace("run")),
            5,
        ),
        ("stop", database_opens(&env, &trace("stop")), 1),
        ("rm", database_opens(&env, &trace("rm")), 2),
    ];
    for (what, got, want) in opens {
        assert_eq!(got, want, "database opens of {what}: {opens:?}");
    }
}
