//! The container commands' speed work (issue 13) keeps their behaviour: commands that only
//! read containers do not write the database, and a `run -d --rm` container is removed
//! before anyone waiting for it sees it stopped.

mod common;

use common::{stdout, TestEnv};

/// The metadata database's bytes (a write transaction always changes its header).
fn database(env: &TestEnv) -> Vec<u8> {
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
