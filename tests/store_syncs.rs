//! The metadata database's fewer syncs (issue 13's container speed): a write session's
//! open mark rides on its commit's first sync (see `src/store/db_file.rs`). These drive the real binary: the store stays readable and
//! consistent across container cycles, image commands and SIGKILLs at exact points of a
//! session (`RBUILD_TEST_KILL_AT`, see `src/killpoint.rs`). What a host crash leaves is
//! replayed in db_file's unit tests.

mod common;

use common::TestEnv;

fn names(env: &TestEnv) -> String {
    env.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"])
}

/// Container cycles with image commands in between keep every change, and `system check`
/// passes throughout.
#[test]
fn container_cycles_and_image_commands_keep_the_database_consistent() {
    let env = TestEnv::with_base("bb");
    for i in 0..3 {
        let name = format!("c{i}");
        let id = env.ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            &name,
            "bb",
            "sleep",
            "1000",
        ]);
        assert!(
            names(&env).contains(&format!("{name} Up")),
            "{}",
            names(&env)
        );
        env.ok(&["stop", "-t", "0", id.trim()]);
        assert!(names(&env).contains(&format!("{name} Exited (137)")));
        env.ok(&["tag", "bb", &format!("bb:{i}")]);
        env.ok(&["system", "check"]);
        if i > 0 {
            env.ok(&["rm", &format!("c{}", i - 1)]);
        }
    }
    let listed = names(&env);
    assert_eq!(listed.lines().count(), 1, "{listed}");
    let images = env.ok(&["images", "--format", "{{.Tag}}"]);
    for tag in ["0", "1", "2"] {
        assert!(images.lines().any(|l| l == tag), "{images}");
    }
}

/// A command killed with the database open for writing (its mark not yet synced) or right
/// after its commit (before redb's close) leaves a database the next commands open: the
/// change there or not, never half, and `system check` passes.
#[test]
fn killed_write_sessions_leave_the_database_usable() {
    let env = TestEnv::with_base("bb");
    env.ok(&[
        "create",
        "--network",
        "none",
        "--name",
        "first",
        "bb",
        "true",
    ]);
    env.killed_at("db-opened:1", &["rename", "first", "second"]);
    assert!(names(&env).starts_with("first "), "{}", names(&env));
    env.ok(&["system", "check"]);
    env.killed_at("db-changed:1", &["rename", "first", "third"]);
    assert!(names(&env).starts_with("third "), "{}", names(&env));
    env.ok(&["system", "check"]);
    env.killed_at("db-changed:1", &["tag", "bb", "bb:killed"]);
    let images = env.ok(&["images", "--format", "{{.Tag}}"]);
    assert!(images.lines().any(|l| l == "killed"), "{images}");
    env.ok(&["system", "check"]);
    env.ok(&["rename", "third", "fourth"]);
    env.ok(&["rm", "fourth"]);
    assert_eq!(names(&env).trim(), "");
}
