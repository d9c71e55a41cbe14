//! `rbuild exec` into a running container, through the real binary on the real kernel (as
//! root): namespaces, files, cgroup, privileges, pty and exit statuses.

mod common;
mod running_support;

use common::{assert_success, stderr, stdout, TestEnv};
use running_support::Running;

fn code(out: &std::process::Output) -> i32 {
    out.status.code().expect("rbuild exited by a signal")
}

/// A busybox container that writes `/written`, then sleeps as its PID 1.
fn sleeper<'a>(env: &'a TestEnv, name: &str) -> Running<'a> {
    Running::start(
        env,
        name,
        &[
            "--hostname",
            "inside",
            "-e",
            "FROM_RUN=yes",
            "bb",
            "sh",
            "-c",
            "echo written-by-the-container > /written; exec sleep 1000",
        ],
    )
}

#[test]
fn exec_sees_the_containers_pid_namespace_and_files() {
    let env = TestEnv::with_base("bb");
    let _c = sleeper(&env, "c1");
    // The file the container's process wrote, in its overlay.
    assert_eq!(
        env.ok(&["exec", "c1", "cat", "/written"]),
        "written-by-the-container\n"
    );
    // The container's PID 1 is the sleep; the exec'd process is another PID in that namespace.
    let ps = env.ok(&["exec", "c1", "ps", "-o", "pid,args"]);
    let first = ps.lines().nth(1).unwrap_or_default();
    assert_eq!(
        first.split_whitespace().collect::<Vec<_>>(),
        ["1", "sleep", "1000"],
        "{ps}"
    );
    assert_eq!(ps.lines().count(), 3, "header, PID 1 and ps itself: {ps}");
    // Its hostname (UTS namespace), environment, user and working directory.
    let out = env.ok(&[
        "exec",
        "c1",
        "sh",
        "-c",
        "hostname; echo $FROM_RUN; id -u; pwd",
    ]);
    assert_eq!(out, "inside\nyes\n0\n/\n");
    let out = env.ok(&[
        "exec",
        "-u",
        "nobody",
        "-w",
        "/tmp",
        "-e",
        "FROM_RUN=over",
        "-e",
        "NEW=1",
        "c1",
        "sh",
        "-c",
        "id; pwd; echo $FROM_RUN $NEW",
    ]);
    assert_eq!(
        out,
        "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\n/tmp\nover 1\n"
    );
    // A file written by exec is seen by the container's other processes.
    env.ok(&["exec", "c1", "sh", "-c", "echo from-exec > /tmp/x"]);
    assert_eq!(env.ok(&["exec", "c1", "cat", "/tmp/x"]), "from-exec\n");
}

#[test]
fn exec_joins_the_cgroup_with_the_containers_privileges() {
    let env = TestEnv::with_base("bb");
    let c = sleeper(&env, "c2");
    let id = c.id();
    let status = "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status";
    let from_run = env.ok(&["run", "--rm", "bb", "sh", "-c", status]);
    let from_exec = env.ok(&["exec", "c2", "sh", "-c", status]);
    assert_eq!(from_exec, from_run);
    assert!(from_exec.contains("NoNewPrivs:\t1") && from_exec.contains("Seccomp:\t2"));
    // Inside its cgroup namespace the process sees its group as the root.
    let cgroup = env.ok(&["exec", "c2", "cat", "/proc/self/cgroup"]);
    assert!(
        cgroup
            .lines()
            .any(|l| l.ends_with(":pids:/") || l == "0::/"),
        "{cgroup}"
    );
    // From the host: a detached exec's process is in the container's group.
    assert_eq!(env.ok(&["exec", "-d", "c2", "sleep", "567"]), "");
    let (root, _) = rbuild_runtime::host_pids_hierarchy().expect("pids hierarchy");
    let procs = root.join("rbuild").join(&id).join("cgroup.procs");
    let start = std::time::Instant::now();
    loop {
        let pids = std::fs::read_to_string(&procs).unwrap();
        let found = pids.lines().any(|p| {
            std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c == b"sleep\x00567\x00")
        });
        if found {
            break;
        }
        assert!(
            start.elapsed().as_secs() < 10,
            "sleep 567 not in {}: {pids}",
            procs.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn exec_exit_status_passes_through() {
    let env = TestEnv::with_base("bb");
    let _c = sleeper(&env, "c3");
    assert_eq!(code(&env.run(&["exec", "c3", "sh", "-c", "exit 3"])), 3);
    assert_eq!(
        code(&env.run(&["exec", "c3", "sh", "-c", "kill -9 $$"])),
        137
    );
    let out = env.run(&["exec", "c3", "no-such-program"]);
    assert_eq!(code(&out), 127);
    assert!(
        stderr(&out).contains("executable file not found"),
        "{}",
        stderr(&out)
    );
    let out = env.run(&["exec", "c3", "/etc/passwd"]);
    assert_eq!(code(&out), 126);
    // bug: the setup error came back wrapped twice ("container setup failed: container
    // setup failed: failed to change to working directory ...").
    let out = env.run(&["exec", "-w", "/no/such", "c3", "true"]);
    assert_eq!(code(&out), 126);
    assert_eq!(
        stderr(&out).matches("container setup failed").count(),
        1,
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("/no/such"), "{}", stderr(&out));
    let out = env.run(&["exec", "-u", "nosuchuser", "c3", "true"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("unable to find user nosuchuser"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn exec_it_gets_a_pty() {
    let env = TestEnv::with_base("bb");
    let _c = sleeper(&env, "c4");
    // `script` runs the command on a pty of its own: stdin is a terminal, as for a user.
    let command = format!(
        "{} --root {} exec -it c4 sh -c 'tty; echo $TERM'",
        common::rbuild_bin(),
        env.root().display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run script (util-linux)");
    let text = assert_success("script exec -it", &out);
    assert!(text.contains("/dev/pts/"), "{text}");
    assert!(text.contains("xterm"), "{text}");
    // Without -t the process has no terminal.
    let out = env.run(&["exec", "c4", "tty"]);
    assert_eq!(stdout(&out), "not a tty\n");
    // -i -t with a stdin that is not a terminal: docker's error.
    let out = env.run(&["exec", "-it", "c4", "true"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("the input device is not a TTY"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn exec_in_a_stopped_container_is_refused() {
    let env = TestEnv::with_base("bb");
    env.ok(&["run", "--name", "done", "bb", "true"]);
    let out = env.run(&["exec", "done", "true"]);
    assert_eq!(code(&out), 1);
    let id = env.ok(&["ps", "-a", "-q", "--no-trunc"]).trim().to_string();
    assert!(
        stderr(&out).contains(&format!("container {id} is not running")),
        "{}",
        stderr(&out)
    );
    let out = env.run(&["exec", "nosuch", "true"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("No such container: nosuch"),
        "{}",
        stderr(&out)
    );
}
