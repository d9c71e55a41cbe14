//! `rbuild run`, `ps`, `rm` through the real binary on the real kernel (needs root, as CI).
//!
//! Each test imports the busybox rootfs (tests/common) into its own store root as `bb`, and
//! derives images from it with `rbuild import -c`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{add_host_key, assert_success, busybox_rootfs_tar, keyctl_bundle, wait_for, TestEnv};

/// A store with the busybox rootfs imported as `bb`.
fn env_with_base() -> TestEnv {
    TestEnv::with_base("bb")
}

/// The busybox rootfs plus `/usr/bin/showargs`, a script printing `[$0][$1]...`, imported
/// with `changes` as `name`.
fn import_showargs(env: &TestEnv, name: &str, changes: &[&str]) {
    let dir = env.path().join("extra");
    let script = dir.join("usr/bin/showargs");
    if !script.exists() {
        std::fs::create_dir_all(dir.join("usr/bin")).unwrap();
        std::fs::write(&script, "#!/bin/sh\nprintf '[%s]' \"$0\" \"$@\"\necho\n").unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    env.import_base_plus(name, changes, &dir, &["./usr/bin/showargs"]);
}

fn run(env: &TestEnv, args: &[&str]) -> Output {
    let mut full = vec!["run", "--rm"];
    full.extend_from_slice(args);
    env.run(&full)
}

/// `rbuild run --rm ARGS`: asserts exit status 0 and returns stdout.
fn run_ok(env: &TestEnv, args: &[&str]) -> String {
    assert_success(&format!("rbuild run {args:?}"), &run(env, args))
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("rbuild exited by a signal")
}

fn containers_dir(env: &TestEnv) -> PathBuf {
    env.root().join("containers")
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn isolation() {
    let env = env_with_base();
    let out = run_ok(
        &env,
        &[
            "--hostname",
            "box1",
            "bb",
            "sh",
            "-c",
            "echo pid=$$; ls /proc | grep -c '^[0-9]'; hostname; \
             grep -E 'CapEff|NoNewPrivs' /proc/self/status; grep ' /proc/sys ' /proc/mounts",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "pid=1", "{out}");
    // sh, and the ls and grep of the pipeline at most: no host processes.
    let count: u32 = lines[1].parse().unwrap();
    assert!(count <= 3, "{out}");
    assert_eq!(lines[2], "box1");
    assert_eq!(
        lines[3], "CapEff:\t00000000a80425fb",
        "docker's default set"
    );
    assert_eq!(lines[4], "NoNewPrivs:\t1");
    assert!(lines[5].contains(" ro,"), "/proc/sys read-only: {out}");

    // ps shows the container's own PID 1.
    let ps = run_ok(&env, &["bb", "ps", "-o", "pid,args"]);
    let first = ps.lines().nth(1).unwrap();
    assert!(first.trim_start().starts_with("1 "), "{ps}");
    assert!(first.contains("ps -o pid,args"), "{ps}");

    // Without CAP_SYS_ADMIN mount fails; /proc/sys cannot be written.
    let out = run(&env, &["bb", "mount", "-t", "tmpfs", "t", "/tmp"]);
    assert_ne!(code(&out), 0);
    let out = run(
        &env,
        &["bb", "sh", "-c", "echo x > /proc/sys/kernel/hostname"],
    );
    assert_ne!(code(&out), 0);
    assert!(common::stderr(&out).contains("Read-only file system"));

    // The default hostname is the short container ID, also in HOSTNAME.
    let out = run_ok(&env, &["bb", "sh", "-c", "hostname; echo $HOSTNAME"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0].len(), 12);
    assert!(lines[0].chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(lines[0], lines[1]);
}

#[test]
fn networks() {
    let env = env_with_base();
    let none = run_ok(&env, &["--network", "none", "bb", "cat", "/proc/net/dev"]);
    let ifaces: Vec<&str> = none.lines().skip(2).collect();
    assert_eq!(ifaces.len(), 1, "{none}");
    assert!(ifaces[0].trim_start().starts_with("lo:"));
    // The default (as root): the bridge network, loopback and eth0.
    let bridge = run_ok(&env, &["bb", "cat", "/proc/net/dev"]);
    let ifaces: Vec<&str> = bridge.lines().skip(2).map(str::trim_start).collect();
    assert_eq!(ifaces.len(), 2, "{bridge}");
    assert!(ifaces.iter().any(|l| l.starts_with("eth0:")), "{bridge}");
    // The host's network namespace (compared by namespace: parallel tests add and remove
    // interfaces on the host meanwhile).
    let host = run_ok(
        &env,
        &["--network", "host", "bb", "readlink", "/proc/self/ns/net"],
    );
    let host_netns = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_eq!(host.trim(), host_netns.to_string_lossy());
    assert_eq!(code(&run(&env, &["--network", "bridge", "bb", "true"])), 0);
    assert_eq!(
        code(&run(&env, &["--network", "nosuch", "bb", "true"])),
        125
    );
}

#[test]
fn exit_codes() {
    let env = env_with_base();
    assert_eq!(code(&run(&env, &["bb", "true"])), 0);
    assert_eq!(code(&run(&env, &["bb", "false"])), 1);
    assert_eq!(code(&run(&env, &["bb", "sh", "-c", "exit 42"])), 42);
    let out = run(&env, &["bb", "/etc/passwd"]);
    assert_eq!(code(&out), 126);
    let out = run(&env, &["bb", "no-such-program"]);
    assert_eq!(code(&out), 127);
    assert!(common::stderr(&out).contains("not found"));
    // As PID 1 the shell is immune to its own SIGKILL (as in docker); behind --init it is not.
    let out = run(&env, &["--init", "bb", "sh", "-c", "kill -9 $$"]);
    assert_eq!(code(&out), 137);
    // The image by ID prefix, full ID and full reference.
    let short = env.ok(&["images", "-q"]).trim().to_string();
    let full = env.ok(&["images", "-q", "--no-trunc"]).trim().to_string();
    for name in [short.as_str(), full.as_str(), "docker.io/library/bb:latest"] {
        assert_eq!(run_ok(&env, &[name, "echo", "ok"]), "ok\n", "{name}");
    }
    // rbuild itself failing: docker's 125.
    let out = run(&env, &["no-such-image", "true"]);
    assert_eq!(code(&out), 125);
    assert!(common::stderr(&out).contains("No such image"));
    let out = run(&env, &["-w", "relative", "bb", "true"]);
    assert_eq!(code(&out), 125);
    let out = run(&env, &["-u", "nosuchuser", "bb", "true"]);
    assert_eq!(code(&out), 125);
    // No --rm containers left behind.
    assert_eq!(entries(&containers_dir(&env)), 0);
}

#[test]
fn sigterm_reaches_the_process() {
    let env = env_with_base();
    let shared = env.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    let volume = format!("{}:/out", shared.display());
    let child = env
        .cmd()
        .args([
            "run",
            "--rm",
            "-v",
            &volume,
            "bb",
            "sh",
            "-c",
            "trap 'echo got-term > /out/term; exit 7' TERM; touch /out/ready; \
             while :; do sleep 1 & wait; done",
        ])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&shared.join("ready"));
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 7);
    assert_eq!(
        std::fs::read_to_string(shared.join("term")).unwrap(),
        "got-term\n"
    );
}

#[test]
fn init_reaps_zombies() {
    let env = env_with_base();
    // The subshell's background sleep is orphaned to PID 1, the init, which must reap it.
    let out = run_ok(
        &env,
        &[
            "--init",
            "bb",
            "sh",
            "-c",
            // Waits (10 s at most) until the orphan is gone, a zombie included; an init
            // that does not reap leaves it there.
            "(sleep 0.2 &); i=0; while [ $i -lt 200 ] && ps -o stat,args | \
             grep -q -e '^Z' -e '[s]leep 0.2'; do sleep 0.05; i=$((i+1)); done; \
             ps -o pid,stat,args",
        ],
    );
    let lines: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(lines.len(), 2, "only the init and this shell: {out}");
    assert!(lines[0].trim_start().starts_with("1 "), "{out}");
    assert!(!lines[0].contains("sh -c"), "PID 1 is the init: {out}");
    assert!(!out.contains(" Z "), "{out}");
}

#[test]
fn tty_and_stdin() {
    let env = env_with_base();
    // -t: the process gets a pty (script gives rbuild a terminal).
    let root = env.root();
    let command = format!(
        "{} --root {} run --rm -t bb sh -c 'tty; echo TERM=$TERM'",
        common::rbuild_bin(),
        root.display()
    );
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = common::stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("/dev/pts/"), "{text}");
    assert!(text.contains("TERM=xterm"), "{text}");
    // Without -t: no tty.
    let out = run(&env, &["bb", "tty"]);
    assert_eq!(code(&out), 1);
    assert!(common::stdout(&out).contains("not a tty"));

    // -i passes stdin through; without -i the container's stdin is /dev/null.
    let with_stdin = |args: &[&str]| env.run_with_stdin(args, b"hi\n");
    let out = with_stdin(&["run", "--rm", "-i", "bb", "cat"]);
    assert_eq!(code(&out), 0);
    assert_eq!(common::stdout(&out), "hi\n");
    let out = with_stdin(&["run", "--rm", "bb", "cat"]);
    assert_eq!(code(&out), 0);
    assert_eq!(common::stdout(&out), "");
}

#[test]
fn users() {
    let env = env_with_base();
    assert!(run_ok(&env, &["bb", "id"]).starts_with("uid=0(root) gid=0(root)"));
    let by_name = run_ok(&env, &["-u", "app", "bb", "sh", "-c", "id; echo $HOME"]);
    assert!(
        by_name.starts_with("uid=1000(app) gid=1000(app)"),
        "{by_name}"
    );
    assert!(by_name.ends_with("/home/app\n"), "{by_name}");
    let by_ids = run_ok(&env, &["-u", "33:1", "bb", "id"]);
    assert!(
        by_ids.starts_with("uid=33(www-data) gid=1(daemon)"),
        "{by_ids}"
    );
    let unknown = run_ok(&env, &["-u", "4242:4343", "bb", "id"]);
    assert!(unknown.starts_with("uid=4242 gid=4343"), "{unknown}");
    // The image's USER applies unless -u overrides it.
    env.ok(&[
        "import",
        "-c",
        "USER nobody",
        busybox_rootfs_tar().to_str().unwrap(),
        "asnobody",
    ]);
    assert!(run_ok(&env, &["asnobody", "id"]).starts_with("uid=65534(nobody)"));
    assert!(run_ok(&env, &["-u", "root", "asnobody", "id"]).starts_with("uid=0(root)"));
}

#[test]
fn environment_and_workdir() {
    let env = env_with_base();
    env.ok(&[
        "import",
        "-c",
        "ENV FROM_IMAGE=img KEEP=image",
        "-c",
        "WORKDIR /srv/app",
        busybox_rootfs_tar().to_str().unwrap(),
        "withenv",
    ]);
    let env_file = env.path().join("vars.env");
    std::fs::write(&env_file, "# comment\nFILEVAR=from file\nKEEP=file\n").unwrap();
    let out = env
        .cmd()
        .env("HOSTVAR", "from-host")
        .args([
            "run",
            "--rm",
            "--env-file",
            env_file.to_str().unwrap(),
            "-e",
            "A=1",
            "-e",
            "HOSTVAR",
            "-e",
            "NOT_ON_HOST_XYZ",
            "-e",
            "FROM_IMAGE=overridden",
            "withenv",
            "env",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(code(&out), 0);
    let text = String::from_utf8(out.stdout).unwrap();
    let vars: Vec<&str> = text.lines().collect();
    for want in [
        "A=1",
        "HOSTVAR=from-host",
        "FROM_IMAGE=overridden",
        "FILEVAR=from file",
        "KEEP=file",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME=/root",
    ] {
        assert!(vars.contains(&want), "{want} missing from:\n{text}");
    }
    assert!(vars.iter().any(|v| v.starts_with("HOSTNAME=")));
    assert!(!text.contains("NOT_ON_HOST_XYZ"));
    assert!(!text.contains("FROM_IMAGE=img"));

    // WorkingDir from the image (created when missing), -w overrides it.
    assert_eq!(run_ok(&env, &["withenv", "pwd"]), "/srv/app\n");
    assert_eq!(run_ok(&env, &["-w", "/tmp", "withenv", "pwd"]), "/tmp\n");
    assert_eq!(run_ok(&env, &["-w", "/new/dir", "bb", "pwd"]), "/new/dir\n");
    assert_eq!(run_ok(&env, &["bb", "pwd"]), "/\n");
    // TERM only comes with a tty, as in docker.
    assert!(!run_ok(&env, &["bb", "env"]).contains("TERM="));
}

/// Docker's ENTRYPOINT × CMD table, plus run arguments and --entrypoint. `showargs` prints
/// its argv as `[$0][$1]...`; `$0` in a shell form shows what `sh -c` received as `$0`.
#[test]
fn entrypoint_and_cmd_combinations() {
    let env = env_with_base();
    let sa = "[/usr/bin/showargs]";
    let cases: &[(&[&str], &[&str], String)] = &[
        // No ENTRYPOINT.
        (&[r#"CMD ["showargs", "c1"]"#], &[], format!("{sa}[c1]")),
        (
            &[r#"CMD ["showargs", "c1"]"#],
            &["showargs", "r1"],
            format!("{sa}[r1]"),
        ),
        (
            &[r#"CMD showargs "$0" c1"#],
            &[],
            format!("{sa}[/bin/sh][c1]"),
        ),
        (
            &[r#"CMD showargs "$0" c1"#],
            &["showargs", "-x"],
            format!("{sa}[-x]"),
        ),
        // Shell-form ENTRYPOINT: CMD and run arguments only reach sh's $0 and $1...
        (
            &[r#"ENTRYPOINT showargs "$0" ep"#],
            &[],
            format!("{sa}[/bin/sh][ep]"),
        ),
        (
            &[r#"ENTRYPOINT showargs "$0" ep"#],
            &["r1", "r2"],
            format!("{sa}[r1][ep]"),
        ),
        (
            &[r#"ENTRYPOINT showargs "$0" ep"#, r#"CMD ["c1"]"#],
            &[],
            format!("{sa}[c1][ep]"),
        ),
        (
            &[r#"ENTRYPOINT showargs "$0" ep"#, "CMD c1 c2"],
            &[],
            format!("{sa}[/bin/sh][ep]"),
        ),
        // Exec-form ENTRYPOINT: CMD (or the run arguments) are its arguments.
        (
            &[r#"ENTRYPOINT ["showargs", "ep"]"#],
            &[],
            format!("{sa}[ep]"),
        ),
        (
            &[r#"ENTRYPOINT ["showargs", "ep"]"#],
            &["-I"],
            format!("{sa}[ep][-I]"),
        ),
        (
            &[r#"ENTRYPOINT ["showargs", "ep"]"#, r#"CMD ["c1", "c 2"]"#],
            &[],
            format!("{sa}[ep][c1][c 2]"),
        ),
        (
            &[r#"ENTRYPOINT ["showargs", "ep"]"#, r#"CMD ["c1"]"#],
            &["r1"],
            format!("{sa}[ep][r1]"),
        ),
        (
            &[r#"ENTRYPOINT ["showargs", "ep"]"#, "CMD c1 c2"],
            &[],
            format!("{sa}[ep][/bin/sh][-c][c1 c2]"),
        ),
        (
            &[r#"ENTRYPOINT ["showargs", "ep"]"#, "CMD c1 c2"],
            &["r1"],
            format!("{sa}[ep][r1]"),
        ),
    ];
    for (i, (changes, args, want)) in cases.iter().enumerate() {
        let name = format!("combo{i}");
        import_showargs(&env, &name, changes);
        let mut run_args = vec![name.as_str()];
        run_args.extend_from_slice(args);
        let got = run_ok(&env, &run_args);
        assert_eq!(got.trim_end(), want, "{changes:?} with {args:?}");
    }

    // --entrypoint replaces ENTRYPOINT and drops the image's CMD; '' clears it.
    import_showargs(
        &env,
        "both",
        &[r#"ENTRYPOINT ["echo", "ep"]"#, r#"CMD ["c1"]"#],
    );
    let with = |args: &[&str]| run_ok(&env, args).trim_end().to_string();
    assert_eq!(with(&["--entrypoint", "showargs", "both"]), sa);
    assert_eq!(
        with(&["--entrypoint", "showargs", "both", "r1", "r 2"]),
        format!("{sa}[r1][r 2]")
    );
    assert_eq!(
        with(&["--entrypoint", "", "both", "showargs", "x"]),
        format!("{sa}[x]")
    );
    let out = run(&env, &["--entrypoint", "", "both"]);
    assert_eq!(code(&out), 125);
    assert!(common::stderr(&out).contains("no command specified"));
    // An image with neither: the run arguments are the command; none at all is an error.
    let out = run(&env, &["bb"]);
    assert_eq!(code(&out), 125);
}

#[test]
fn volumes_and_read_only() {
    let env = env_with_base();
    let data = env.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("in.txt"), "from host\n").unwrap();
    let rw = format!("{}:/data", data.display());
    let ro = format!("{}:/data:ro", data.display());
    let out = run_ok(
        &env,
        &[
            "-v",
            &rw,
            "bb",
            "sh",
            "-c",
            "cat /data/in.txt; echo out > /data/out.txt",
        ],
    );
    assert_eq!(out, "from host\n");
    assert_eq!(
        std::fs::read_to_string(data.join("out.txt")).unwrap(),
        "out\n"
    );
    let out = run(&env, &["-v", &ro, "bb", "touch", "/data/x"]);
    assert_ne!(code(&out), 0);
    assert!(!data.join("x").exists());
    // A missing host dir is created.
    let created = env.path().join("made/by/run");
    let spec = format!("{}:/m", created.display());
    run_ok(&env, &["-v", &spec, "bb", "touch", "/m/f"]);
    assert!(created.join("f").exists());
    // Relative host paths are refused (a plain name is a named volume: tests/run_volumes.rs).
    assert_eq!(code(&run(&env, &["-v", "./named:/x", "bb", "true"])), 125);

    let out = run(&env, &["--read-only", "bb", "touch", "/x"]);
    assert_ne!(code(&out), 0);
    assert!(common::stderr(&out).contains("Read-only"));
    run_ok(&env, &["--read-only", "-v", &rw, "bb", "touch", "/data/ok"]);
}

#[test]
fn kept_containers_ps_rm_and_rmi() {
    let env = env_with_base();
    // --rm leaves nothing.
    run_ok(&env, &["bb", "sh", "-c", "echo x > /file"]);
    assert_eq!(entries(&containers_dir(&env)), 0);
    assert_eq!(env.ok(&["ps", "-a", "-q"]), "");
    // docker's tabwriter: 3 spaces of padding, columns at least 10 wide.
    assert_eq!(
        env.ok(&["ps", "-a"]),
        "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    NAMES\n"
    );

    // Without --rm the container dir (with its changes) and record stay.
    let out = env.run(&[
        "run",
        "--name",
        "keep1",
        "bb",
        "sh",
        "-c",
        "echo x > /file; exit 3",
    ]);
    assert_eq!(code(&out), 3);
    let dirs: Vec<_> = std::fs::read_dir(containers_dir(&env))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1);
    assert_eq!(
        std::fs::read_to_string(dirs[0].join("upper/file")).unwrap(),
        "x\n"
    );
    let id = dirs[0].file_name().unwrap().to_str().unwrap().to_string();
    assert_eq!(env.ok(&["ps", "-a", "-q"]).trim(), &id[..12]);
    assert_eq!(env.ok(&["ps", "-q"]).trim(), "", "not running");
    let ps = env.ok(&["ps", "-a"]);
    let row = ps.lines().nth(1).unwrap();
    assert!(
        row.contains("keep1") && row.contains("Exited (3)") && row.contains(" bb "),
        "{ps}"
    );

    // Names are unique.
    let out = env.run(&["run", "--name", "keep1", "bb", "true"]);
    assert_eq!(code(&out), 125);
    assert!(common::stderr(&out).contains("already in use"));

    // rmi refuses while a container uses the image.
    let err = env.fails(&["rmi", "bb"]);
    assert!(
        err.contains(&format!(
            "conflict: unable to remove repository reference \"bb\" (must force) - container {} is using its referenced image",
            &id[..12]
        )),
        "{err}"
    );
    let image_id = env.ok(&["images", "-q"]).trim().to_string();
    let err = env.fails(&["rmi", &image_id]);
    assert!(
        err.contains(&format!(
            "conflict: unable to delete {image_id} (must be forced) - image is being used by stopped container {}",
            &id[..12]
        )),
        "{err}"
    );
    // Untagging one of several tags is fine.
    env.ok(&["tag", "bb", "bb2"]);
    env.ok(&["rmi", "bb2"]);
    assert_eq!(env.ok(&["images", "-q"]).trim(), image_id);

    // A named --rm container frees its name when it ends.
    run_ok(&env, &["--name", "temp", "bb", "true"]);
    run_ok(&env, &["--name", "temp", "bb", "true"]);

    assert_eq!(env.ok(&["rm", "keep1"]).trim(), "keep1");
    assert_eq!(entries(&containers_dir(&env)), 0);
    assert_eq!(env.ok(&["ps", "-a", "-q"]), "");
    let err = env.fails(&["rm", "keep1"]);
    assert!(err.contains("No such container"), "{err}");
    env.ok(&["rmi", "bb"]);
}

#[test]
fn rm_force_kills_a_running_container() {
    let env = env_with_base();
    let shared = env.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    let volume = format!("{}:/out", shared.display());
    let child = env
        .cmd()
        .args([
            "run",
            "--name",
            "busy",
            "-v",
            &volume,
            "bb",
            "sh",
            "-c",
            "touch /out/ready; while :; do sleep 1; done",
        ])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&shared.join("ready"));
    env.wait_running("busy");
    let ps = env.ok(&["ps"]);
    assert!(ps.contains("busy") && ps.contains("Up "), "{ps}");
    let err = env.fails(&["rm", "busy"]);
    assert!(err.contains("container is running"), "{err}");
    env.ok(&["rm", "-f", "busy"]);
    // SIGKILL from outside the container ends PID 1: 128+9.
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 137);
    assert_eq!(env.ok(&["ps", "-a", "-q"]), "");
    assert_eq!(entries(&containers_dir(&env)), 0);
}

/// Errors before the container starts say their cause once, with docker's wording, and exit 125.
#[test]
fn setup_errors_name_their_cause_once() {
    let env = env_with_base();
    let out = run(&env, &["-u", "nosuchuser", "bb", "true"]);
    assert_eq!(code(&out), 125);
    let err = common::stderr(&out);
    assert_eq!(
        err.trim_end(),
        "rbuild: error: unable to find user nosuchuser: no matching entries in passwd file"
    );
    let out = run(&env, &["-u", "0:nosuchgroup", "bb", "true"]);
    assert_eq!(code(&out), 125);
    let err = common::stderr(&out);
    assert_eq!(
        err.trim_end(),
        "rbuild: error: unable to find group nosuchgroup: no matching entries in group file"
    );
    let missing = env.path().join("no-such-env-file");
    let out = run(
        &env,
        &["--env-file", missing.to_str().unwrap(), "bb", "true"],
    );
    assert_eq!(code(&out), 125);
    let err = common::stderr(&out);
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    assert!(err.contains(missing.to_str().unwrap()), "{err}");
}

#[test]
fn seccomp_default_unconfined_and_custom_profiles() {
    let env = env_with_base();
    let status = ["bb", "grep", "^Seccomp:", "/proc/self/status"];
    assert_eq!(run_ok(&env, &status), "Seccomp:\t2\n");
    let mut args = vec!["--security-opt", "seccomp=unconfined"];
    args.extend(status);
    assert_eq!(run_ok(&env, &args), "Seccomp:\t0\n");
    // The docker default denies new user namespaces (busybox `unshare -U`).
    let out = run(&env, &["bb", "unshare", "-U", "true"]);
    assert_ne!(code(&out), 0);
    let err = common::stderr(&out);
    assert!(err.contains("Operation not permitted"), "{err}");
    // A profile file in docker's format that denies mkdir.
    let profile = env.path().join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let out = run(&env, &["--security-opt", &opt, "bb", "mkdir", "/tmp/d"]);
    assert_eq!(code(&out), 1);
    let err = common::stderr(&out);
    assert!(err.contains("Operation not permitted"), "{err}");
    assert_eq!(
        run_ok(&env, &["--security-opt", &opt, "bb", "echo", "still runs"]),
        "still runs\n"
    );
    // A broken profile: 125, naming the file and the problem.
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": 7}"#,
    )
    .unwrap();
    let out = run(&env, &["--security-opt", &opt, "bb", "true"]);
    assert_eq!(code(&out), 125);
    let err = common::stderr(&out);
    assert!(
        err.contains("no-mkdir.json") && err.contains("invalid type"),
        "{err}"
    );
    let out = run(
        &env,
        &["--security-opt", "apparmor=unconfined", "bb", "true"],
    );
    assert_eq!(code(&out), 125);
    assert!(common::stderr(&out).contains("apparmor=unconfined"));
}

#[test]
fn host_keys_are_out_of_reach() {
    // The bug: a key added to root's user keyring on the host was listed and read from run.
    let env = env_with_base();
    let bundle = env.path().join("keyctl");
    let keyctl = keyctl_bundle(&bundle, "/k");
    let volume = format!("{}:/k:ro", bundle.display());
    let key = add_host_key("run");
    let (description, id) = (key.description.as_str(), key.id.as_str());
    let script = format!(
        "{k} request user {description}; {k} show @s; cat /proc/keys | wc -l",
        k = keyctl.join(" ")
    );
    // By default keyctl is denied; /proc/keys is masked.
    let out = run(&env, &["-v", &volume, "bb", "sh", "-c", &script]);
    let (stdout, stderr) = (common::stdout(&out), common::stderr(&out));
    assert!(!stdout.contains(id), "{stdout}");
    assert!(stderr.contains("Operation not permitted"), "{stderr}");
    assert_eq!(stdout.lines().last(), Some("0"), "{stdout}");
    // Unconfined, the container's session keyring is its own and empty.
    let out = run(
        &env,
        &[
            "--security-opt",
            "seccomp=unconfined",
            "-v",
            &volume,
            "bb",
            "sh",
            "-c",
            &script,
        ],
    );
    let (stdout, stderr) = (common::stdout(&out), common::stderr(&out));
    assert!(!stdout.contains(id), "{stdout}");
    assert!(stderr.contains("Required key not available"), "{stderr}");
    assert!(stdout.contains("_ses"), "a session keyring: {stdout}");
    assert!(!stdout.contains(description), "{stdout}");
    assert_eq!(stdout.lines().last(), Some("0"), "{stdout}");
}

#[test]
fn fork_loop_stops_at_the_default_pids_limit() {
    // The bug: a container could start any number of processes. podman's default: 2048.
    let env = env_with_base();
    let out_dir = env.path().join("out");
    let volume = format!("{}:/out", out_dir.display());
    let out = run(
        &env,
        &[
            "-v",
            &volume,
            "bb",
            "sh",
            "-c",
            "n=0; while [ $n -lt 2100 ]; do sleep 60 & n=$((n+1)); echo $n > /out/n; done",
        ],
    );
    let stderr = common::stderr(&out);
    assert!(stderr.contains("can't fork"), "{stderr}");
    // sh itself is one of the 2048.
    let count: u32 = std::fs::read_to_string(out_dir.join("n"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!((2000..2048).contains(&count), "{count} processes started");
    assert!(entries(&containers_dir(&env)) == 0, "--rm cleaned up");
}
