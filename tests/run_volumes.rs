//! Volumes through the real binary on the real kernel (needs root, as CI): named and
//! anonymous volumes, `--mount`, `--volumes-from`, docker's backup/restore recipe and the
//! `volume` commands.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{assert_success, stderr, TestEnv};

fn code(out: &Output) -> i32 {
    out.status.code().expect("rbuild exited by a signal")
}

/// The host dir of volume `name`, from `volume inspect`.
fn mountpoint(env: &TestEnv, name: &str) -> PathBuf {
    PathBuf::from(
        env.ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", name])
            .trim(),
    )
}

fn volume_names(env: &TestEnv) -> Vec<String> {
    env.ok(&["volume", "ls", "-q"])
        .lines()
        .map(str::to_string)
        .collect()
}

/// The busybox rootfs plus `/seed` (dir 0750 owned by 1000:1001, holding `file` 0640 owned
/// by 1000:1001 and a symlink), imported with `changes` as `name`.
fn import_with_seed(env: &TestEnv, name: &str, changes: &[&str]) {
    let extra = env.path().join("extra");
    let seed = extra.join("seed");
    std::fs::create_dir_all(&seed).unwrap();
    std::fs::write(seed.join("file"), "from the image\n").unwrap();
    std::os::unix::fs::symlink("file", seed.join("link")).unwrap();
    for (path, mode) in [(&seed, 0o750), (&seed.join("file"), 0o640)] {
        std::os::unix::fs::chown(path, Some(1000), Some(1001)).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    env.import_base_plus(name, changes, &extra, &["./seed"]);
}

#[test]
fn named_volume_is_made_on_first_use_and_survives_its_container() {
    let env = TestEnv::with_base("bb");
    env.ok(&[
        "run",
        "--name",
        "writer",
        "-v",
        "keep:/data",
        "bb",
        "sh",
        "-c",
        "echo kept > /data/f",
    ]);
    let dir = mountpoint(&env, "keep");
    assert_eq!(dir, env.root().join("volumes/keep/_data"));
    assert_eq!(std::fs::read_to_string(dir.join("f")).unwrap(), "kept\n");
    env.ok(&["rm", "-v", "writer"]);
    // rm -v removes anonymous volumes only.
    assert_eq!(volume_names(&env), ["keep"]);
    let out = env.ok(&["run", "--rm", "-v", "keep:/other", "bb", "cat", "/other/f"]);
    assert_eq!(out, "kept\n");
    // --mount names the same volume.
    let out = env.ok(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,source=keep,target=/m",
        "bb",
        "cat",
        "/m/f",
    ]);
    assert_eq!(out, "kept\n");
}

#[test]
fn read_only_volumes_refuse_writes() {
    let env = TestEnv::with_base("bb");
    env.ok(&["volume", "create", "ro-vol"]);
    for args in [
        ["-v", "ro-vol:/data:ro"],
        ["--mount", "source=ro-vol,target=/data,readonly"],
    ] {
        let mut full = vec!["run", "--rm"];
        full.extend(args);
        full.extend(["bb", "touch", "/data/x"]);
        let out = env.run(&full);
        assert_ne!(code(&out), 0, "{args:?}");
        assert!(
            stderr(&out).contains("Read-only file system"),
            "{}",
            stderr(&out)
        );
    }
    assert!(!mountpoint(&env, "ro-vol").join("x").exists());
    // The same volume read-write: the write lands.
    env.ok(&[
        "run",
        "--rm",
        "-v",
        "ro-vol:/data",
        "bb",
        "touch",
        "/data/x",
    ]);
    assert!(mountpoint(&env, "ro-vol").join("x").exists());
}

/// Docker's data-volume-container recipe, verbatim: back up a container's volume through
/// `--volumes-from` into a tar in the current directory, restore it into a new container's
/// volume, read it back.
#[test]
fn backup_and_restore_through_volumes_from_round_trip_a_file() {
    let env = TestEnv::with_base("busybox");
    env.ok(&[
        "run",
        "--name",
        "dbdata",
        "-v",
        "/dbdata",
        "busybox",
        "sh",
        "-c",
        "echo precious > /dbdata/file",
    ]);
    let cwd = env.path().join("backup-dir");
    std::fs::create_dir(&cwd).unwrap();
    let pwd_mount = format!("{}:/backup", cwd.display());
    let backup = |args: &[&str]| {
        let mut cmd = env.cmd();
        cmd.current_dir(&cwd).args(args);
        common::ok_cmd(&mut cmd)
    };
    backup(&[
        "run",
        "--rm",
        "--volumes-from",
        "dbdata",
        "-v",
        &pwd_mount,
        "busybox",
        "tar",
        "cvf",
        "/backup/backup.tar",
        "/dbdata",
    ]);
    let listing = Command::new("tar")
        .arg("tf")
        .arg(cwd.join("backup.tar"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&listing.stdout).contains("dbdata/file"));
    env.ok(&[
        "run", "--name", "dbstore2", "-v", "/dbdata", "busybox", "true",
    ]);
    backup(&[
        "run",
        "--rm",
        "--volumes-from",
        "dbstore2",
        "-v",
        &pwd_mount,
        "busybox",
        "sh",
        "-c",
        "cd /dbdata && tar xvf /backup/backup.tar --strip 1",
    ]);
    let out = env.ok(&[
        "run",
        "--rm",
        "--volumes-from",
        "dbstore2:ro",
        "busybox",
        "cat",
        "/dbdata/file",
    ]);
    assert_eq!(out, "precious\n");
    // :ro forces the borrowed volume read-only.
    let out = env.run(&[
        "run",
        "--rm",
        "--volumes-from",
        "dbstore2:ro",
        "busybox",
        "touch",
        "/dbdata/x",
    ]);
    assert_ne!(code(&out), 0);
    // The borrowed volumes are in use by the containers that made them.
    env.ok(&["rm", "-v", "dbdata", "dbstore2"]);
    assert!(volume_names(&env).is_empty(), "{:?}", volume_names(&env));
}

#[test]
fn anonymous_volume_is_seeded_from_the_image_with_owners_and_modes() {
    let env = TestEnv::new();
    import_with_seed(&env, "seeded", &["VOLUME /seed"]);
    let out = env.ok(&[
        "run",
        "--name",
        "c1",
        "seeded",
        "sh",
        "-c",
        "cat /seed/file; echo more > /seed/new",
    ]);
    assert_eq!(out, "from the image\n");
    let names = volume_names(&env);
    assert_eq!(names.len(), 1, "{names:?}");
    let data = mountpoint(&env, &names[0]);
    let dir = std::fs::metadata(&data).unwrap();
    assert_eq!(
        (dir.uid(), dir.gid(), dir.mode() & 0o7777),
        (1000, 1001, 0o750)
    );
    let file = std::fs::metadata(data.join("file")).unwrap();
    assert_eq!(
        (file.uid(), file.gid(), file.mode() & 0o7777),
        (1000, 1001, 0o640)
    );
    assert_eq!(
        std::fs::read_link(data.join("link")).unwrap(),
        Path::new("file")
    );
    assert_eq!(std::fs::read_to_string(data.join("new")).unwrap(), "more\n");
    let inspect: serde_json::Value =
        serde_json::from_str(&env.ok(&["volume", "inspect", &names[0]])).unwrap();
    assert_eq!(
        inspect[0]["Labels"],
        serde_json::json!({"com.docker.volume.anonymous": ""})
    );

    // -v /path on an image without VOLUME: seeded too; a named volume with content is not.
    let out = env.ok(&["run", "--rm", "-v", "/seed", "seeded", "cat", "/seed/file"]);
    assert_eq!(out, "from the image\n");
    env.ok(&["volume", "create", "full"]);
    std::fs::write(mountpoint(&env, "full").join("mine"), "x").unwrap();
    let out = env.ok(&["run", "--rm", "-v", "full:/seed", "seeded", "ls", "/seed"]);
    assert_eq!(out, "mine\n");
    // nocopy: an empty named volume stays empty.
    let out = env.ok(&[
        "run",
        "--rm",
        "-v",
        "empty:/seed:nocopy",
        "seeded",
        "ls",
        "-A",
        "/seed",
    ]);
    assert_eq!(out, "");
}

#[test]
fn volume_in_use_cannot_be_removed() {
    let env = TestEnv::with_base("bb");
    env.ok(&["run", "--name", "user", "-v", "busy:/data", "bb", "true"]);
    let id = env.ok(&["ps", "-aq", "--no-trunc"]).trim().to_string();
    let err = env.fails(&["volume", "rm", "busy"]);
    assert!(
        err.contains(&format!("remove busy: volume is in use - [{id}]")),
        "{err}"
    );
    assert!(mountpoint(&env, "busy").is_dir());
    env.ok(&["rm", "user"]);
    assert_eq!(env.ok(&["volume", "rm", "busy"]), "busy\n");
    let err = env.fails(&["volume", "rm", "busy"]);
    assert!(err.contains("No such volume: busy"), "{err}");
    env.ok(&["volume", "rm", "-f", "busy"]);
    assert!(!env.root().join("volumes/busy").exists());
}

#[test]
fn volume_prune_removes_only_unused_volumes() {
    let env = TestEnv::with_base("bb");
    // In use (a stopped container): an anonymous and a named volume.
    env.ok(&[
        "run",
        "--name",
        "holder",
        "-v",
        "/anon-used",
        "-v",
        "named-used:/n",
        "bb",
        "true",
    ]);
    // Unused: an anonymous volume (its container is removed without -v) and a named one.
    env.ok(&["run", "--name", "gone", "-v", "/anon-free", "bb", "true"]);
    env.ok(&["rm", "gone"]);
    env.ok(&["volume", "create", "--label", "keep=yes", "named-free"]);
    assert_eq!(volume_names(&env).len(), 4);
    let dangling = env.ok(&["volume", "ls", "-q", "-f", "dangling=true"]);
    assert_eq!(dangling.lines().count(), 2, "{dangling}");
    assert!(dangling.contains("named-free"));

    // Without --all: unused anonymous volumes only.
    let out = env.ok(&["volume", "prune", "-f"]);
    assert!(out.starts_with("Deleted Volumes:\n"), "{out}");
    assert_eq!(out.lines().count(), 4, "{out}");
    assert!(out.contains("Total reclaimed space:"), "{out}");
    let left = volume_names(&env);
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(left.contains(&"named-free".to_string()));
    // --all with a label filter that excludes it, then without.
    env.ok(&["volume", "prune", "-f", "-a", "--filter", "label!=keep"]);
    assert_eq!(volume_names(&env).len(), 3);
    let out = env.ok(&["volume", "prune", "-f", "--all"]);
    assert!(out.contains("named-free\n"), "{out}");
    let left = volume_names(&env);
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&"named-used".to_string()));
    // The prompt: no answer, nothing removed.
    env.ok(&["rm", "holder"]);
    let out = env.run_with_stdin(&["volume", "prune", "-a"], b"n\n");
    assert_success("prune answered no", &out);
    assert_eq!(volume_names(&env).len(), 2);
}

#[test]
fn rm_v_and_rm_flag_remove_anonymous_volumes() {
    let env = TestEnv::new();
    import_with_seed(&env, "vol", &["VOLUME /seed"]);
    env.ok(&["run", "--rm", "vol", "true"]);
    env.ok(&[
        "run", "--rm", "--name", "named-rm", "-v", "/x", "vol", "true",
    ]);
    assert!(volume_names(&env).is_empty(), "{:?}", volume_names(&env));
    assert_eq!(
        std::fs::read_dir(env.root().join("volumes"))
            .unwrap()
            .count(),
        0
    );
    env.ok(&["run", "--name", "kept", "vol", "true"]);
    assert_eq!(volume_names(&env).len(), 1);
    env.ok(&["rm", "kept"]);
    assert_eq!(volume_names(&env).len(), 1, "rm without -v keeps them");
    env.ok(&["run", "--name", "kept2", "-v", "named:/n", "vol", "true"]);
    env.ok(&["rm", "-v", "kept2"]);
    let mut left = volume_names(&env);
    left.retain(|n| n != "named");
    assert_eq!(left.len(), 1, "only kept's volume is left: {left:?}");
}

#[test]
fn mount_flag_follows_docker() {
    let env = TestEnv::with_base("bb");
    let host = env.path().join("host");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("h"), "host file\n").unwrap();
    let bind = format!("type=bind,source={},target=/h,readonly", host.display());
    let out = env.ok(&["run", "--rm", "--mount", &bind, "bb", "cat", "/h/h"]);
    assert_eq!(out, "host file\n");
    let out = env.ok(&[
        "run",
        "--rm",
        "--mount",
        "type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1770",
        "bb",
        "sh",
        "-c",
        "stat -c %a /t; grep ' /t ' /proc/mounts",
    ]);
    assert!(out.starts_with("1770\n"), "{out}");
    assert!(out.contains("size=1024k"), "{out}");
    for (mount, message) in [
        ("type=volume,source=v", "target is required"),
        (
            "type=bind,source=/no/such/host/dir,target=/x",
            "invalid mount config for type \"bind\": bind source path does not exist: /no/such/host/dir",
        ),
        ("type=tmpfs,target=/x,volume-nocopy", "cannot mix 'volume-*' options with mount type 'tmpfs'"),
        ("type=volume,target=/x,volume-opt=type=nfs", "volume option \"type\" is not supported"),
    ] {
        let out = env.run(&["run", "--rm", "--mount", mount, "bb", "true"]);
        assert_eq!(code(&out), 125, "{mount}");
        assert!(stderr(&out).contains(message), "{mount}: {}", stderr(&out));
    }
    let out = env.run(&["run", "--rm", "-v", "a1:/x", "-v", "a2:/x", "bb", "true"]);
    assert_eq!(code(&out), 125);
    assert!(
        stderr(&out).contains("Duplicate mount point: /x"),
        "{}",
        stderr(&out)
    );
    assert!(
        volume_names(&env).is_empty(),
        "nothing is made for a refused container"
    );
    let out = env.run(&["run", "--rm", "-v", "x:/x", "bb", "true"]);
    assert_eq!(code(&out), 125);
    assert!(stderr(&out).contains("includes invalid characters for a local volume name"));
    let out = env.run(&["run", "--rm", "--volumes-from", "nosuch", "bb", "true"]);
    assert_eq!(code(&out), 125);
    assert!(
        stderr(&out).contains("No such container: nosuch"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn volume_commands_print_docker_shapes() {
    let env = TestEnv::with_base("bb");
    assert_eq!(
        env.ok(&["volume", "create", "--label", "a=b", "v1"]),
        "v1\n"
    );
    assert_eq!(
        env.ok(&["volume", "create", "v1"]),
        "v1\n",
        "create is idempotent"
    );
    let generated = env.ok(&["volume", "create"]);
    assert_eq!(generated.trim().len(), 64, "{generated}");
    let table = env.ok(&["volume", "ls"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0], "DRIVER    VOLUME NAME");
    assert!(lines.contains(&"local     v1"), "{table}");
    assert_eq!(env.ok(&["volume", "ls", "-q", "-f", "label=a=b"]), "v1\n");
    assert_eq!(env.ok(&["volume", "ls", "-q", "-f", "name=v"]), "v1\n");
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["volume", "inspect", "v1"])).unwrap();
    let v = &v[0];
    assert_eq!(v["Name"], "v1");
    assert_eq!(v["Driver"], "local");
    assert_eq!(v["Scope"], "local");
    assert_eq!(v["Labels"], serde_json::json!({"a": "b"}));
    assert_eq!(v["Options"], serde_json::Value::Null);
    let created = v["CreatedAt"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(created).is_ok(),
        "{created}"
    );
    let err = env.fails(&["volume", "create", "-o", "type=tmpfs", "v2"]);
    assert!(err.contains("not supported"), "{err}");
    assert!(env
        .fails(&["volume", "inspect", "nope"])
        .contains("No such volume: nope"));
}

/// A `volume create` killed after its dir was renamed into place but before the record was
/// committed leaves a dir nothing lists; the next creation of that name replaces it.
#[test]
fn volume_creation_killed_before_its_commit_leaves_no_volume() {
    let env = TestEnv::new();
    let out = env
        .cmd()
        .args(["volume", "create", "half"])
        .env("RBUILD_TEST_KILL_AT", "volume-renamed:1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), None, "killed by its kill point");
    assert!(env.root().join("volumes/half/_data").is_dir());
    assert!(volume_names(&env).is_empty());
    std::fs::write(env.root().join("volumes/half/_data/stale"), "x").unwrap();
    env.ok(&["volume", "create", "half"]);
    assert_eq!(volume_names(&env), ["half"]);
    assert_eq!(
        std::fs::read_dir(mountpoint(&env, "half")).unwrap().count(),
        0
    );
}

/// An unnamed `--rm` container whose `rbuild run` is SIGKILLed leaves its dir and its
/// anonymous volumes; the next command removes both, as the runner would have (named
/// volumes stay).
#[test]
fn anonymous_volumes_of_a_killed_rm_run_go_with_its_dir() {
    let env = TestEnv::with_base("bb");
    let out = env
        .cmd()
        .args(["run", "--rm", "-v", "/anon", "-v", "named:/n", "bb", "true"])
        .env("RBUILD_TEST_KILL_AT", "container-started:1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), None, "killed by its kill point");
    let volumes = std::fs::read_dir(env.root().join("volumes"))
        .unwrap()
        .count();
    assert_eq!(volumes, 2, "the killed run left its volumes");
    assert_eq!(volume_names(&env), ["named"]);
    assert_eq!(
        std::fs::read_dir(env.root().join("containers"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(env.root().join("volumes"))
            .unwrap()
            .count(),
        1
    );
}

/// Detached containers (`run -d`, watched by the monitor) hold their volumes while they run;
/// `rm -f -v` and `--rm` remove their anonymous volumes.
#[test]
fn detached_containers_hold_and_release_their_volumes() {
    let env = TestEnv::with_base("bb");
    let id = env.ok(&[
        "run", "-d", "-v", "/anon", "-v", "nv:/n", "bb", "sleep", "30",
    ]);
    let id = id.trim();
    assert_eq!(volume_names(&env).len(), 2);
    let err = env.fails(&["volume", "rm", "nv"]);
    assert!(err.contains(&format!("volume is in use - [{id}]")), "{err}");
    env.ok(&["rm", "-f", "-v", id]);
    assert_eq!(volume_names(&env), ["nv"]);
    env.ok(&["run", "-d", "--rm", "-v", "/anon2", "bb", "true"]);
    // The monitor removes the container, then its volumes, once the process has exited.
    let start = std::time::Instant::now();
    while volume_names(&env) != ["nv"] || !env.ok(&["ps", "-aq"]).is_empty() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "--rm -d left {:?}",
            volume_names(&env)
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
