//! Small docker behaviours of `rbuild run` (issue 13): supplementary groups, generated
//! names, `-it` without a terminal, `--cidfile` and `--label`. Real binary, real kernel
//! (needs root, as CI).

mod common;

use std::process::Command;

use common::{assert_success, busybox_rootfs_tar, TestEnv};

/// `rbuild run --rm ARGS`: asserts success, returns stdout.
fn run_ok(env: &TestEnv, args: &[&str]) -> String {
    let mut full = vec!["run", "--rm"];
    full.extend_from_slice(args);
    assert_success(&format!("rbuild run {args:?}"), &env.run(&full))
}

/// Imports the busybox rootfs with `/etc/group` replaced by `group` as `name`.
fn import_with_group_file(env: &TestEnv, name: &str, group: &str) {
    let dir = env.path().join("rootfs");
    std::fs::create_dir_all(&dir).unwrap();
    let untar = Command::new("tar")
        .arg("-xf")
        .arg(busybox_rootfs_tar())
        .arg("-C")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(untar.success());
    std::fs::write(dir.join("etc/group"), group).unwrap();
    let tar = env.path().join("groups.tar");
    let pack = Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(&dir)
        .arg(".")
        .status()
        .unwrap();
    assert!(pack.success());
    env.ok(&["import", tar.to_str().unwrap(), name]);
}

/// Docker puts the primary group among the supplementary groups: busybox's `id` prints
/// `groups=0(root)` for root, `groups=1000` for an unknown `1000:1000`, and the primary
/// group with the `/etc/group` entries that list a named user (the kernel sorts them).
#[test]
fn supplementary_groups_include_the_primary_group() {
    let env = TestEnv::with_base("bb");
    assert_eq!(
        run_ok(&env, &["bb", "id"]),
        "uid=0(root) gid=0(root) groups=0(root)\n"
    );
    assert_eq!(
        run_ok(&env, &["-u", "1000:1000", "bb", "id"]),
        "uid=1000(app) gid=1000(app) groups=1000(app)\n"
    );
    assert_eq!(
        run_ok(&env, &["-u", "4242:4343", "bb", "id"]),
        "uid=4242 gid=4343 groups=4343\n"
    );
    import_with_group_file(
        &env,
        "grouped",
        "root:x:0:\nwheel:x:10:root,app\nstaff:x:50:app\napp:x:1000:\n",
    );
    assert_eq!(
        run_ok(&env, &["-u", "app", "grouped", "id"]),
        "uid=1000(app) gid=1000(app) groups=10(wheel),50(staff),1000(app)\n"
    );
    // The default user (root) gets the groups that list root, as docker's busybox shows.
    assert_eq!(
        run_ok(&env, &["grouped", "id"]),
        "uid=0(root) gid=0(root) groups=0(root),10(wheel)\n"
    );
    // An explicit group replaces the listed ones (docker: no /etc/group lookup then).
    assert_eq!(
        run_ok(&env, &["-u", "app:staff", "grouped", "id"]),
        "uid=1000(app) gid=50(staff) groups=50(staff)\n"
    );
}

/// A container run without `--name` gets a docker-style `adjective_surname` name, unique in
/// the store, that `ps` shows and `rm` accepts.
#[test]
fn unnamed_containers_get_generated_names() {
    let env = TestEnv::with_base("bb");
    for _ in 0..3 {
        env.ok(&["run", "bb", "true"]);
    }
    let ps = env.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    let names: Vec<&str> = ps.lines().collect();
    assert_eq!(names.len(), 3, "{ps}");
    for name in &names {
        let (adjective, surname) = name.split_once('_').expect("adjective_surname");
        assert!(
            !adjective.is_empty()
                && !surname.is_empty()
                && name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{name}"
        );
    }
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 3, "names are unique: {ps}");
    // The default table shows them in NAMES.
    let table = env.ok(&["ps", "-a"]);
    assert!(names.iter().all(|n| table.contains(n)), "{table}");
    // rm by the generated name.
    assert_eq!(env.ok(&["rm", names[0]]).trim(), names[0]);
    let left = env.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(!left.lines().any(|n| n == names[0]), "{left}");
    assert_eq!(left.lines().count(), 2);
    // An explicit --name is kept as given.
    env.ok(&["run", "--name", "given", "bb", "true"]);
    assert!(env
        .ok(&["ps", "-a", "--format", "{{.Names}}"])
        .lines()
        .any(|n| n == "given"));
}

/// `run -it` with a stdin that is not a terminal fails before creating anything, with
/// docker's message and docker's status (1: its CLI returns this error as is, not as a
/// start failure); `-t` alone and `-i` alone run.
#[test]
fn interactive_tty_needs_a_terminal_stdin() {
    let env = TestEnv::with_base("bb");
    for flags in [&["-it"][..], &["-i", "-t"], &["--interactive", "--tty"]] {
        let mut args = vec!["run"];
        args.extend_from_slice(flags);
        args.extend(["bb", "true"]);
        let out = env.run_with_stdin(&args, b"");
        assert_eq!(out.status.code(), Some(1), "{flags:?}");
        assert_eq!(
            common::stderr(&out),
            "rbuild: error: the input device is not a TTY\n",
            "{flags:?}"
        );
    }
    assert_eq!(env.ok(&["ps", "-a", "-q"]), "", "no container was created");
    // -t alone: a pty on the output, stdin is not read (docker runs it too).
    let out = env.run(&[
        "run",
        "--rm",
        "-t",
        "bb",
        "sh",
        "-c",
        "tty >/dev/null && echo pty",
    ]);
    assert_eq!(assert_success("run -t", &out), "pty\r\n");
    let out = env.run_with_stdin(&["run", "--rm", "-i", "bb", "cat"], b"in\n");
    assert_eq!(assert_success("run -i", &out), "in\n");
}

/// `--cidfile` gets the full ID (no newline, as docker); an existing file is refused
/// before anything is created, with docker's message, and left alone; a run that fails to
/// create its container leaves no file behind.
#[test]
fn cidfile_holds_the_full_id_and_must_not_exist() {
    let env = TestEnv::with_base("bb");
    let cidfile = env.path().join("cid");
    let path = cidfile.to_str().unwrap();
    env.ok(&["run", "--cidfile", path, "bb", "true"]);
    let id = std::fs::read_to_string(&cidfile).unwrap();
    assert_eq!(id.len(), 64, "{id:?}");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{id:?}");
    assert_eq!(
        env.ok(&["ps", "-a", "-q", "--no-trunc"]).trim(),
        id,
        "the file names the container"
    );

    let out = env.run(&["run", "--rm", "--cidfile", path, "bb", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(
        common::stderr(&out),
        format!(
            "rbuild: error: container ID file found, make sure the other container isn't running or delete {path}\n"
        )
    );
    assert_eq!(std::fs::read_to_string(&cidfile).unwrap(), id, "untouched");
    assert_eq!(env.ok(&["ps", "-a", "-q"]).lines().count(), 1);

    let missing = env.path().join("cid2");
    let out = env.run(&[
        "run",
        "--cidfile",
        missing.to_str().unwrap(),
        "nosuch",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125));
    assert!(!missing.exists(), "no file left by a failed run");
}

/// `-l/--label` is stored on the container over the image's own labels, and
/// `ps --format '{{.Labels}}'` shows them (sorted `k=v` joined by commas).
#[test]
fn labels_are_stored_on_the_container() {
    let env = TestEnv::new();
    env.import_base_with("lb", &["LABEL from.image=yes keep=image"]);
    env.ok(&[
        "run", "-l", "a=1", "--label", "keep=run", "-l", "empty", "lb", "true",
    ]);
    assert_eq!(
        env.ok(&["ps", "-a", "--format", "{{.Labels}}"]),
        "a=1,empty=,from.image=yes,keep=run\n"
    );
    let json = env.ok(&["ps", "-a", "--format", "json"]);
    assert!(
        json.contains(r#""Labels":"a=1,empty=,from.image=yes,keep=run""#),
        "{json}"
    );
}
