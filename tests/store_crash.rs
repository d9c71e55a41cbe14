//! Crash consistency and in-use safety of the store: commands SIGKILLed at exact points
//! (the test-only `RBUILD_TEST_KILL_AT=<point>:<n>`, see `src/killpoint.rs`), and images
//! removed while containers use them. After each kill, `rbuild system check` must pass and
//! the image must work (all its files there).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{busybox_rootfs_tar, TestEnv};

/// Files in `/many` of the image [`many_files_image`] makes.
const MANY: usize = 3000;

/// A one-layer image `name`: the busybox rootfs plus `/many/f<i>` for `MANY` files.
fn many_files_image(env: &TestEnv, name: &str) -> PathBuf {
    let tar_path = env.path().join("many.tar");
    if !tar_path.exists() {
        let mut builder = tar::Builder::new(std::fs::File::create(&tar_path).unwrap());
        let mut base = tar::Archive::new(std::fs::File::open(busybox_rootfs_tar()).unwrap());
        for entry in base.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut header = entry.header().clone();
            let path = entry.path().unwrap().into_owned();
            let link = entry.link_name().unwrap().map(|l| l.into_owned());
            match link {
                Some(target) => builder.append_link(&mut header, &path, target).unwrap(),
                None => builder.append_data(&mut header, &path, &mut entry).unwrap(),
            }
        }
        let mut dir = tar::Header::new_gnu();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_mode(0o755);
        dir.set_size(0);
        builder
            .append_data(&mut dir, "many/", std::io::empty())
            .unwrap();
        for i in 0..MANY {
            let body = format!("file {i}\n");
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(body.len() as u64);
            builder
                .append_data(&mut h, format!("many/f{i}"), body.as_bytes())
                .unwrap();
        }
        builder.into_inner().unwrap();
    }
    env.ok(&["import", tar_path.to_str().unwrap(), name]);
    tar_path
}

/// `rbuild system check` passes.
fn check_ok(env: &TestEnv) {
    env.ok(&["system", "check"]);
}

/// The number of files the image `name` has in `/many`, counted in a container.
fn files_in_many(env: &TestEnv, name: &str) -> usize {
    env.ok(&[
        "run",
        "--rm",
        name,
        "sh",
        "-c",
        "find /many -type f | wc -l",
    ])
    .trim()
    .parse()
    .unwrap()
}

fn snapshot_dirs(env: &TestEnv) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(env.root().join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

fn tree_bytes(p: &Path) -> u64 {
    let Ok(md) = std::fs::symlink_metadata(p) else {
        return 0; // removed meanwhile
    };
    if !md.is_dir() {
        return md.len();
    }
    std::fs::read_dir(p)
        .map(|d| d.flatten().map(|e| tree_bytes(&e.path())).sum())
        .unwrap_or(0)
}

fn tmp_entries(env: &TestEnv) -> Vec<String> {
    std::fs::read_dir(env.root().join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Issue 10: an `rmi -f` killed while deleting a snapshot left it half-deleted under its
/// final name, and the next load + run used it (fewer files each time, exit 0).
#[test]
fn killed_rmi_leaves_no_half_deleted_snapshot() {
    let env = TestEnv::new();
    many_files_image(&env, "many:1");
    assert_eq!(files_in_many(&env, "many:1"), MANY);
    let before = snapshot_dirs(&env);
    assert_eq!(before.len(), 1);
    env.killed_at("delete-file:500", &["rmi", "-f", "many:1"]);
    // The snapshot is gone from its final name at once (moved aside before deletion).
    assert!(
        snapshot_dirs(&env).is_empty(),
        "a half-deleted snapshot stayed under its final name"
    );
    check_ok(&env);
    many_files_image(&env, "many:1");
    assert_eq!(files_in_many(&env, "many:1"), MANY);
    check_ok(&env);
    assert_eq!(tmp_entries(&env), Vec::<String>::new(), "leftovers in tmp");
}

/// A kill after a snapshot was unpacked but before it was renamed into place leaves no
/// snapshot under the final name; the next run unpacks it whole.
#[test]
fn killed_unpack_leaves_no_partial_snapshot() {
    let env = TestEnv::new();
    many_files_image(&env, "many:1");
    env.killed_at("unpack-applied:1", &["run", "--rm", "many:1", "true"]);
    assert!(snapshot_dirs(&env).is_empty());
    assert_eq!(tmp_entries(&env).len(), 1, "the dead session's dir");
    check_ok(&env);
    assert_eq!(tmp_entries(&env), Vec::<String>::new(), "cleaned");
    assert_eq!(files_in_many(&env, "many:1"), MANY);
}

/// Issue 10: an `rmi` killed after its database commit, before `index.json` was rewritten,
/// left `images` saying "No such image" while `run` (reading index.json) still started it.
#[test]
fn killed_rmi_after_commit_index_follows_database() {
    let env = TestEnv::new();
    env.ok(&["import", busybox_rootfs_tar().to_str().unwrap(), "bb:1"]);
    env.ok(&["run", "--rm", "bb:1", "true"]);
    env.killed_at("rmi-committed:1", &["rmi", "bb:1"]);
    let out = env.run(&["run", "--rm", "bb:1", "true"]);
    assert_eq!(out.status.code(), Some(125), "run started a removed image");
    assert!(common::stderr(&out).contains("No such image"));
    assert!(!env.ok(&["images"]).contains("bb"));
    let index = std::fs::read_to_string(env.root().join("index.json")).unwrap();
    assert!(!index.contains("bb:1"), "index.json repaired: {index}");
    check_ok(&env);
}

/// `system check` reports a snapshot missing files (as older versions' killed deletions
/// left them), and `--repair` drops it so the next run unpacks it whole.
#[test]
fn system_check_finds_and_repairs_an_incomplete_snapshot() {
    let env = TestEnv::new();
    many_files_image(&env, "many:1");
    env.ok(&["run", "--rm", "many:1", "true"]);
    let snap = env.root().join("snapshots").join(&snapshot_dirs(&env)[0]);
    for i in 0..10 {
        std::fs::remove_file(snap.join(format!("many/f{i}"))).unwrap();
    }
    let out = env.run(&["system", "check"]);
    assert_eq!(out.status.code(), Some(1));
    let text = common::stdout(&out);
    assert!(text.contains("10 paths of its layer are missing"), "{text}");
    let out = env.run(&["system", "check", "--repair"]);
    assert!(out.status.success(), "{}", common::stdout(&out));
    assert_eq!(files_in_many(&env, "many:1"), MANY);
    check_ok(&env);
}

/// A `run --rm` container, started and waiting: returns the child and its container ID.
fn running_container(env: &TestEnv, image: &str) -> std::process::Child {
    let mut child = env
        .cmd()
        .args([
            "run",
            "--rm",
            image,
            "sh",
            "-c",
            "echo ready; while :; do sleep 1; done",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    child
}

/// Issue 10: `rmi -f` of an image a running (`--rm`) container uses deleted its lower
/// layers under it. As docker: by ID it is refused, by tag it only untags; the snapshots and
/// blobs stay, also through `image prune -a` and `builder prune -a`.
#[test]
fn rmi_force_keeps_what_a_running_container_uses() {
    let env = TestEnv::new();
    many_files_image(&env, "many:1");
    let id = env.ok(&["images", "-q"]).trim().to_string();
    let mut child = running_container(&env, "many:1");
    let err = env.fails(&["rmi", "-f", &id]);
    assert!(
        err.contains(&format!(
            "conflict: unable to delete {id} (cannot be forced) - image is being used by running container"
        )),
        "{err}"
    );
    let out = env.ok(&["rmi", "-f", "many:1"]);
    assert_eq!(out, "Untagged: many:1\n");
    env.ok(&["image", "prune", "-a", "-f"]);
    env.ok(&["builder", "prune", "-a", "-f"]);
    assert_eq!(snapshot_dirs(&env).len(), 1, "the snapshot stays");
    assert_eq!(env.ok(&["images", "-q"]).trim(), id, "the image stays");
    check_ok(&env);
    // The runner dies: its --rm container's dir is a leftover the next command removes,
    // once every process of the container (which may hold the lease) is gone.
    child.kill().unwrap();
    child.wait().unwrap();
    let dirs: Vec<PathBuf> = std::fs::read_dir(env.root().join("containers"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1);
    let lease = std::fs::File::open(dirs[0].join("lease")).unwrap();
    let start = std::time::Instant::now();
    while lease.try_lock().is_err() {
        assert!(start.elapsed().as_secs() < 20, "the lease stays locked");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(lease);
    check_ok(&env);
    assert_eq!(
        std::fs::read_dir(env.root().join("containers"))
            .unwrap()
            .count(),
        0,
        "the dead --rm container's dir is removed"
    );
    // Now nothing uses the image: it can go.
    env.ok(&["rmi", &id]);
    assert!(snapshot_dirs(&env).is_empty());
}

/// A stopped container keeps its image's layers: `rmi -f` by ID deletes the image but not
/// the snapshot, and `image prune -a` keeps images containers use.
#[test]
fn stopped_container_keeps_its_layers() {
    let env = TestEnv::new();
    many_files_image(&env, "many:1");
    env.ok(&["run", "--name", "c1", "many:1", "true"]);
    let id = env.ok(&["images", "-q"]).trim().to_string();
    env.ok(&["image", "prune", "-a", "-f"]);
    assert_eq!(env.ok(&["images", "-q"]).trim(), id, "prune -a keeps it");
    let out = env.ok(&["rmi", "-f", "many:1"]);
    assert_eq!(out, "Untagged: many:1\n", "by tag: untagged only");
    let out = env.ok(&["rmi", "-f", &id]);
    assert!(out.contains("Deleted: sha256:"), "{out}");
    assert_eq!(
        snapshot_dirs(&env).len(),
        1,
        "the container's snapshot stays"
    );
    env.ok(&["builder", "prune", "-a", "-f"]);
    assert_eq!(snapshot_dirs(&env).len(), 1);
    check_ok(&env);
    env.ok(&["rm", "c1"]);
    check_ok(&env);
}

/// Issue 10: a killed `load` left its half-written blob in `tmp/` (cleaned only after an
/// hour). The next command removes it, and `image prune` counts it as reclaimed.
#[test]
fn killed_load_leftovers_are_cleaned_and_counted() {
    let env = TestEnv::new();
    many_files_image(&env, "many:1");
    let archive = env.path().join("many-save.tar");
    env.ok(&["save", "-o", archive.to_str().unwrap(), "many:1"]);
    env.ok(&["rmi", "many:1"]);
    // Half the archive on its stdin; once load has staged 2 MiB of it (it then waits for
    // more), SIGKILL.
    let bytes = std::fs::read(&archive).unwrap();
    assert!(bytes.len() > 4 << 20);
    let mut child = env
        .cmd()
        .arg("load")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, &bytes[..4 << 20]).unwrap();
    let start = std::time::Instant::now();
    while tree_bytes(&env.root().join("tmp")) < 2 << 20 {
        assert!(start.elapsed().as_secs() < 30, "load never staged 2 MiB");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdin);
    let left = tree_bytes(&env.root().join("tmp"));
    assert!(left >= 2 << 20, "the killed load left {left} bytes");
    let out = env.ok(&["image", "prune", "-f"]);
    assert!(
        !out.contains("Total reclaimed space: 0B"),
        "the leftovers count: {out}"
    );
    assert_eq!(tmp_entries(&env), Vec::<String>::new());
    check_ok(&env);
    env.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(files_in_many(&env, "many:1"), MANY);
}

/// Issue 10: a killed `save -o` left its `.rbuild-save-XXXX` beside the target forever; the
/// next save into that directory removes it (it is unlocked: its writer is dead).
#[test]
fn killed_save_temp_file_is_removed_by_the_next_save() {
    let env = TestEnv::new();
    many_files_image(&env, "many:1");
    let out_dir = env.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let temps = || {
        std::fs::read_dir(&out_dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".rbuild-save-")
            })
            .count()
    };
    let a = out_dir.join("a.tar");
    env.killed_at(
        "save-write:1",
        &["save", "-o", a.to_str().unwrap(), "many:1"],
    );
    assert!(!a.exists());
    assert_eq!(temps(), 1);
    let b = out_dir.join("b.tar");
    env.ok(&["save", "-o", b.to_str().unwrap(), "many:1"]);
    assert_eq!(temps(), 0, "the dead save's temp file is removed");
    assert!(b.is_file());
}

/// A killed build (work dirs, layer temp files in its session dir) leaves nothing once the
/// next command ran, and the image builds afterwards.
#[test]
fn killed_build_leaves_no_work_dirs() {
    let env = TestEnv::new();
    env.ok(&["import", busybox_rootfs_tar().to_str().unwrap(), "bb:1"]);
    let ctx = env.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM bb:1\nRUN mkdir /d && for i in $(seq 200); do echo $i > /d/$i; done\n",
    )
    .unwrap();
    env.killed_at(
        "step-layer-written:1",
        &["build", "-t", "app:1", ctx.to_str().unwrap()],
    );
    check_ok(&env);
    assert_eq!(tmp_entries(&env), Vec::<String>::new());
    env.ok(&["build", "-t", "app:1", ctx.to_str().unwrap()]);
    assert_eq!(
        env.ok(&["run", "--rm", "app:1", "sh", "-c", "ls /d | wc -l"])
            .trim(),
        "200"
    );
    check_ok(&env);
}
