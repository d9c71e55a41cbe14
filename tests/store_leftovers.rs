//! The leftover cleaning every command does first (`Store::clean_leftovers`): cheap when no
//! process died (it reads `<root>/tmp` only, not every snapshot and container lease), and
//! still complete after a kill: a SIGKILLed `run --rm` marks its container in its session
//! dir, so the next command removes that container's dir; `system check` still looks at
//! every container (dead `--rm` containers without a mark, as earlier versions left them).

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::TestEnv;

/// `run --rm bb true` SIGKILLed once its container runs: leaves the container's dir.
fn killed_rm_run(env: &TestEnv) -> PathBuf {
    let out = env
        .cmd()
        .args(["run", "--rm", "--network", "none", "bb", "true"])
        .env("RBUILD_TEST_KILL_AT", "container-started:1")
        .stdin(Stdio::null())
        .output()
        .expect("spawn rbuild");
    assert_eq!(out.status.signal(), Some(9), "killed by its kill point");
    let dirs = entries(&env.root().join("containers"));
    assert_eq!(dirs.len(), 1, "the killed run left its container dir");
    dirs.into_iter().next().unwrap()
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// Every command cleaned leftovers by listing every snapshot dir and reading every
/// container's lease, with nothing to clean. Now a command with no dead process behind it
/// opens neither (a store with an image and a stopped container, and a finished `--rm` run).
#[test]
fn clean_leftovers_reads_no_snapshot_or_lease_when_no_process_died() {
    let env = TestEnv::with_base("bb");
    env.ok(&[
        "run",
        "--name",
        "stopped",
        "--network",
        "none",
        "bb",
        "true",
    ]);
    env.ok(&["run", "--rm", "--network", "none", "bb", "true"]);
    assert_eq!(entries(&env.root().join("containers")).len(), 1);
    let opened = env.opened_paths(&["images"]);
    let root = env.root().display().to_string();
    let store_reads: Vec<&String> = opened
        .iter()
        .filter(|p| {
            p.starts_with(&format!("{root}/snapshots"))
                || p.starts_with(&format!("{root}/containers"))
        })
        .collect();
    assert!(store_reads.is_empty(), "{store_reads:?}\nall: {opened:?}");
    // The check is real: the session dirs were looked at.
    assert!(opened.contains(&format!("{root}/tmp")), "{opened:?}");
}

/// A killed `run --rm`: the next command removes its container dir and its session dir.
/// While something still holds the container's lease (a child of the killed runner that
/// has not exited yet; the test holds it here), the dir stays, and so does the session that
/// names it: the command after that removes both.
#[test]
fn killed_rm_run_is_cleaned_once_its_lease_is_free() {
    let env = TestEnv::with_base("bb");
    let dir = killed_rm_run(&env);
    let lease = std::fs::File::open(dir.join("lease")).expect("lease");
    lease.lock().expect("hold the lease");
    env.ok(&["images"]);
    assert!(dir.is_dir(), "a held lease keeps the container");
    let tmp = entries(&env.root().join("tmp"));
    assert_eq!(
        tmp.len(),
        1,
        "the dead session stays with its mark: {tmp:?}"
    );
    drop(lease);
    env.ok(&["images"]);
    assert!(
        !dir.exists(),
        "the container dir goes once its lease is free"
    );
    assert_eq!(entries(&env.root().join("tmp")), Vec::<PathBuf>::new());
    env.ok(&["system", "check"]);
}

/// A dead `--rm` container without a mark (an earlier version's runner killed): commands
/// leave it; `system check` looks at every container and removes it.
#[test]
fn system_check_removes_an_unmarked_dead_rm_container() {
    let env = TestEnv::with_base("bb");
    let dir = killed_rm_run(&env);
    for session in entries(&env.root().join("tmp")) {
        for e in entries(&session) {
            if e.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("rm-container-")
            {
                std::fs::remove_file(e).unwrap();
            }
        }
    }
    env.ok(&["images"]);
    assert!(dir.is_dir(), "no mark: the cheap cleaning does not look");
    env.ok(&["system", "check"]);
    assert!(!dir.exists());
}
