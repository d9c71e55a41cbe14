//! `run`'s privilege and device flags on the real kernel as root: `--cap-add`/`--cap-drop`
//! (the effective set `/proc/self/status` shows, a dropped CAP_CHOWN refusing `chown`),
//! `--privileged` (every capability, no seccomp, the host's devices, writable `/sys`),
//! `--security-opt no-new-privileges=false`, `--tmpfs`, `--shm-size`, `--device` and the
//! device cgroup every other container gets.

mod common;

use common::{stderr, stdout, TestEnv};

fn code(out: &std::process::Output) -> i32 {
    out.status.code().expect("rbuild exited by a signal")
}

/// Asserts that `out`'s stderr contains `needle`.
fn assert_stderr(out: &std::process::Output, needle: &str) {
    assert!(stderr(out).contains(needle), "{needle}: {}", stderr(out));
}

/// `rbuild ARGS` must fail before the start (125) saying `needle`.
fn refused(env: &TestEnv, args: &[&str], needle: &str) {
    let out = env.run(args);
    assert_eq!(code(&out), 125, "{args:?}: {}", stderr(&out));
    assert_stderr(&out, needle);
}

/// `run --rm bb sh -c SCRIPT` with `flags` before the image; the output when it succeeded.
fn sh(env: &TestEnv, flags: &[&str], script: &str) -> String {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["bb", "sh", "-c", script]);
    let out = env.run(&args);
    assert_eq!(code(&out), 0, "{flags:?} {script}: {}", stderr(&out));
    stdout(&out)
}

/// The value of `field` (`CapEff`, `NoNewPrivs` ...) in the container's `/proc/self/status`.
fn status_field(env: &TestEnv, flags: &[&str], field: &str) -> String {
    let out = sh(env, flags, &format!("grep '^{field}:' /proc/self/status"));
    out.split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

/// The options of the mount at `target` inside the container.
fn mount_options(env: &TestEnv, flags: &[&str], target: &str) -> String {
    let out = sh(env, flags, "cat /proc/mounts");
    out.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(target))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap_or_else(|| panic!("no mount at {target}: {out}"))
        .to_string()
}

/// Every capability the kernel knows that this (root) test process has: what a privileged
/// container gets.
fn all_capabilities() -> String {
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let bounding = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    format!("{:016x}", (u64::MAX >> (63 - last)) & bounding)
}

#[test]
fn cap_add_and_cap_drop_set_the_effective_capabilities() {
    let env = TestEnv::with_base("bb");
    assert_eq!(status_field(&env, &[], "CapEff"), "00000000a80425fb");
    assert_eq!(
        status_field(&env, &["--cap-drop", "chown"], "CapEff"),
        "00000000a80425fa"
    );
    // Any case, with or without CAP_; the bounding set follows.
    let flags = ["--cap-add", "CAP_SYS_ADMIN", "--cap-add", "net_admin"];
    assert_eq!(status_field(&env, &flags, "CapEff"), "00000000a82435fb");
    assert_eq!(status_field(&env, &flags, "CapBnd"), "00000000a82435fb");
    let flags = ["--cap-drop", "ALL", "--cap-add", "Chown"];
    assert_eq!(status_field(&env, &flags, "CapEff"), "0000000000000001");
    assert_eq!(
        status_field(
            &env,
            &["--cap-add", "all", "--cap-drop", "sys_admin"],
            "CapEff"
        ),
        format!(
            "{:016x}",
            u64::from_str_radix(&all_capabilities(), 16).unwrap() & !(1 << 21)
        )
    );
    refused(
        &env,
        &["run", "--rm", "--cap-add", "bogus", "bb", "true"],
        "unknown capability: \"CAP_BOGUS\"",
    );
}

#[test]
fn dropped_cap_chown_makes_chown_fail() {
    let env = TestEnv::with_base("bb");
    let script = "touch /f && chown 1:1 /f && echo changed";
    assert_eq!(sh(&env, &[], script), "changed\n");
    let out = env.run(&[
        "run",
        "--rm",
        "--cap-drop",
        "CHOWN",
        "bb",
        "sh",
        "-c",
        script,
    ]);
    assert_ne!(code(&out), 0);
    assert_stderr(&out, "Operation not permitted");
    // The capability is gone from an `exec` into the container too (it runs from the same
    // recorded spec).
    let _ = env.run(&["rm", "-f", "nochown"]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "nochown",
        "--cap-drop",
        "chown",
        "bb",
        "sleep",
        "60",
    ]);
    let out = env.run(&["exec", "nochown", "grep", "^CapEff:", "/proc/self/status"]);
    env.ok(&["rm", "-f", "nochown"]);
    assert!(
        stdout(&out).contains("00000000a80425fa"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn privileged_has_every_capability_host_devices_and_writable_sys() {
    let env = TestEnv::with_base("bb");
    assert!(std::path::Path::new("/dev/loop-control").exists());
    let privileged = ["--privileged"];
    assert_eq!(
        status_field(&env, &privileged, "CapEff"),
        all_capabilities()
    );
    assert_eq!(status_field(&env, &privileged, "Seccomp"), "0");
    assert_eq!(status_field(&env, &privileged, "NoNewPrivs"), "0");
    assert_eq!(
        sh(&env, &privileged, "test -c /dev/loop-control && echo yes"),
        "yes\n"
    );
    let sys = mount_options(&env, &privileged, "/sys");
    assert!(sys.starts_with("rw"), "{sys}");
    // No read-only (or masked) paths in /proc: /proc/sys is /proc's own, writable.
    let mounts = sh(&env, &privileged, "cat /proc/mounts");
    assert!(!mounts.contains(" /proc/sys "), "{mounts}");
    // Not privileged: none of that.
    assert_eq!(status_field(&env, &[], "Seccomp"), "2");
    assert_eq!(status_field(&env, &[], "NoNewPrivs"), "1");
    assert_eq!(
        sh(&env, &[], "test -e /dev/loop-control || echo absent"),
        "absent\n"
    );
    assert!(mount_options(&env, &[], "/sys").starts_with("ro"));
    assert!(mount_options(&env, &[], "/proc/sys").starts_with("ro"));
}

#[test]
fn security_opt_no_new_privileges_false_clears_the_flag() {
    let env = TestEnv::with_base("bb");
    let off = ["--security-opt", "no-new-privileges=false"];
    assert_eq!(status_field(&env, &off, "NoNewPrivs"), "0");
    let on = ["--privileged", "--security-opt", "no-new-privileges"];
    assert_eq!(status_field(&env, &on, "NoNewPrivs"), "1");
    refused(
        &env,
        &[
            "run",
            "--rm",
            "--security-opt",
            "no-new-privileges=maybe",
            "bb",
            "true",
        ],
        "expected true or false",
    );
}

#[test]
fn tmpfs_flag_mounts_a_tmpfs_with_docker_defaults() {
    let env = TestEnv::with_base("bb");
    let options = mount_options(&env, &["--tmpfs", "/scratch:size=1m,mode=1770"], "/scratch");
    for want in ["rw", "nosuid", "nodev", "noexec", "size=1024k", "mode=1770"] {
        assert!(options.split(',').any(|o| o == want), "{want}: {options}");
    }
    let options = mount_options(&env, &["--tmpfs", "/x:exec,ro"], "/x");
    assert!(options.starts_with("ro"), "{options}");
    assert!(!options.split(',').any(|o| o == "noexec"), "{options}");
    // The size holds: a 2 MiB write stops at 1 MiB.
    let out = sh(
        &env,
        &["--tmpfs", "/scratch:size=1m"],
        "head -c 2097152 /dev/zero > /scratch/big; stat -c %s /scratch/big",
    );
    assert_eq!(out, "1048576\n");
    refused(
        &env,
        &["run", "--rm", "--tmpfs", "relative", "bb", "true"],
        "it must be absolute",
    );
}

#[test]
fn shm_size_sets_the_size_of_dev_shm() {
    let env = TestEnv::with_base("bb");
    let default = mount_options(&env, &[], "/dev/shm");
    assert!(default.contains("size=65536k"), "{default}");
    let bigger = mount_options(&env, &["--shm-size", "128m"], "/dev/shm");
    assert!(bigger.contains("size=131072k"), "{bigger}");
    refused(
        &env,
        &["run", "--rm", "--shm-size", "lots", "bb", "true"],
        "invalid size",
    );
}

#[test]
fn device_flag_makes_the_node_and_the_device_cgroup_allows_only_it() {
    let env = TestEnv::with_base("bb");
    // Any other container may make the node (CAP_MKNOD) but not open it: docker's default
    // device cgroup.
    let out = env.run(&[
        "run",
        "--rm",
        "bb",
        "sh",
        "-c",
        "mknod /lc c 10 237 && : < /lc && echo opened",
    ]);
    assert_ne!(code(&out), 0, "{}", stdout(&out));
    assert_stderr(&out, "Operation not permitted");
    // --device: the node, opened for reading and writing.
    let both = ["--device", "/dev/loop-control:/dev/lc"];
    let out = sh(
        &env,
        &both,
        "ls -l /dev/lc && : < /dev/lc && : > /dev/lc && echo opened",
    );
    assert!(out.starts_with("crw-------"), "{out}");
    assert!(out.contains("10, 237"), "{out}");
    assert!(out.ends_with("opened\n"), "{out}");
    // Read-only permission: writing is refused by the cgroup.
    let out = env.run(&[
        "run",
        "--rm",
        "--device",
        "/dev/loop-control:r",
        "bb",
        "sh",
        "-c",
        ": < /dev/loop-control && echo read; : > /dev/loop-control",
    ]);
    assert_eq!(stdout(&out), "read\n");
    assert_stderr(&out, "Operation not permitted");
    refused(
        &env,
        &["run", "--rm", "--device", "/etc/passwd", "bb", "true"],
        "not a device node",
    );
}

#[test]
fn ps_size_shows_the_writable_layer_and_the_virtual_size() {
    let env = TestEnv::with_base("bb");
    // 1500 bytes written, one file of the image deleted (a whiteout: 0 bytes), a hard link
    // counted once.
    env.ok(&[
        "run",
        "--name",
        "writer",
        "bb",
        "sh",
        "-c",
        "head -c 1500 /dev/zero > /data && ln /data /again && rm /bin/ls",
    ]);
    let image_bytes: u64 = env
        .ok(&["inspect", "--type", "image", "--format", "{{.Size}}", "bb"])
        .trim()
        .parse()
        .unwrap();
    let out = env.ok(&["ps", "-a", "-s", "--format", "{{.Names}} {{.Size}}"]);
    assert_eq!(
        out,
        format!("writer 1.5kB (virtual {})\n", megabytes(image_bytes + 1500))
    );
    // The default table gets a SIZE column.
    let table = env.ok(&["ps", "-a", "-s"]);
    let header = table.lines().next().unwrap();
    assert!(header.trim_end().ends_with("SIZE"), "{header}");
    assert!(table.contains("1.5kB (virtual "), "{table}");
    // A template naming .Size measures too (as docker); otherwise nothing is measured.
    let out = env.ok(&["ps", "-a", "--format", "{{.Size}}"]);
    assert!(out.starts_with("1.5kB (virtual "), "{out}");
    let out = env.ok(&["ps", "-a", "--format", "json"]);
    assert!(out.contains(r#""Size":"0B""#), "{out}");
}

/// `n` bytes in MB with docker's 3 significant digits (for sizes of 1 to 10 MB).
fn megabytes(n: u64) -> String {
    assert!((1_000_000..10_000_000).contains(&n), "{n}");
    let s = format!("{:.2}", n as f64 / 1e6);
    format!("{}MB", s.trim_end_matches('0').trim_end_matches('.'))
}

/// Waits until container `name`'s STATUS shows a health result; returns the STATUS.
fn health_result(env: &TestEnv, name: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let status = env.ok(&[
            "ps",
            "-a",
            "--filter",
            &format!("name={name}"),
            "--format",
            "{{.Status}}",
        ]);
        if status.contains("(healthy)") || status.contains("(unhealthy)") {
            return status;
        }
        assert!(std::time::Instant::now() < deadline, "{name}: {status}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `run -d --name NAME` of a sleeping container with `flags` and a health check every 50 ms
/// (one failure makes it unhealthy); its STATUS once the check has a result.
fn checked(env: &TestEnv, name: &str, flags: &[&str]) -> String {
    let mut args = vec!["run", "-d", "--name", name, "--health-interval", "50ms"];
    args.extend_from_slice(&["--health-retries", "1"]);
    args.extend_from_slice(flags);
    args.extend_from_slice(&["bb", "sleep", "1000"]);
    env.ok(&args);
    health_result(env, name)
}

#[test]
fn health_check_runs_with_the_containers_capabilities_and_seccomp() {
    let env = TestEnv::with_base("bb");
    // Joined as `exec` joins: the container's capability set (CHOWN dropped), its seccomp
    // filter and no_new_privs; nsenter gave the check root's full set and no filter.
    let check = "grep -q '^CapEff:.*a80425fa' /proc/self/status \
                 && grep -q '^Seccomp:.*2' /proc/self/status \
                 && grep -q '^NoNewPrivs:.*1' /proc/self/status";
    let status = checked(&env, "h", &["--cap-drop", "chown", "--health-cmd", check]);
    assert!(status.contains("(healthy)"), "{status}");
    // A check over its timeout is killed and fails.
    let flags = ["--health-cmd", "sleep 100", "--health-timeout", "200ms"];
    let status = checked(&env, "slow", &flags);
    assert!(status.contains("(unhealthy)"), "{status}");
    let log = env.ok(&["inspect", "--format", "{{json .State.Health.Log}}", "slow"]);
    assert!(log.contains("exceeded timeout"), "{log}");
    env.ok(&["rm", "-f", "h", "slow"]);
}

#[test]
fn run_attach_connects_only_the_named_streams() {
    let env = TestEnv::with_base("bb");
    let script = "echo out; echo err >&2";
    let out = env.run(&["run", "--rm", "-a", "stdout", "bb", "sh", "-c", script]);
    assert_eq!(
        (stdout(&out).as_str(), stderr(&out).as_str()),
        ("out\n", "")
    );
    let out = env.run(&["run", "--rm", "-a", "STDERR", "bb", "sh", "-c", script]);
    assert_eq!(
        (stdout(&out).as_str(), stderr(&out).as_str()),
        ("", "err\n")
    );
    // stdin only when named (with -i).
    let out = env.run_with_stdin(&["run", "--rm", "-i", "-a", "stdout", "bb", "cat"], b"in\n");
    assert_eq!(stdout(&out), "");
    let out = env.run_with_stdin(
        &[
            "run", "--rm", "-i", "-a", "stdin", "-a", "stdout", "bb", "cat",
        ],
        b"in\n",
    );
    assert_eq!(stdout(&out), "in\n");
    refused(
        &env,
        &["run", "--rm", "-a", "stdbad", "bb", "true"],
        "valid streams are STDIN, STDOUT and STDERR",
    );
    refused(
        &env,
        &["run", "-d", "-a", "stdout", "bb", "true"],
        "cannot specify both --attach and --detach",
    );
}

/// `--device-cgroup-rule` allows a device by number without a node made (docker's flag): a
/// node the container makes itself opens then, for the access given; the default cgroup
/// still refuses every other device, and a malformed rule is refused before anything runs.
#[test]
fn device_cgroup_rule_allows_a_node_the_container_makes() {
    let env = TestEnv::with_base("bb");
    let script = "mknod /lc c 10 237 && : < /lc && echo read && : > /lc && echo written; \
                  mknod /lo b 7 0 && : < /lo && echo block";
    let out = env.run(&[
        "run",
        "--rm",
        "--device-cgroup-rule",
        "c 10:* r",
        "bb",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(stdout(&out), "read\n");
    assert_stderr(&out, "Operation not permitted");
    let out = env.run(&[
        "run",
        "--rm",
        "--device-cgroup-rule",
        "c 10:237 rw",
        "bb",
        "sh",
        "-c",
        "mknod /lc c 10 237 && : < /lc && : > /lc && echo opened",
    ]);
    assert_eq!(stdout(&out), "opened\n", "{out:?}");
    refused(
        &env,
        &[
            "run",
            "--rm",
            "--device-cgroup-rule",
            "c 10 rw",
            "bb",
            "true",
        ],
        "expected MAJOR:MINOR",
    );
}
