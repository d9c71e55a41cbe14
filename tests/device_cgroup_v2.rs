//! The device cgroup on cgroup v2 (issue 13): an eBPF `BPF_PROG_TYPE_CGROUP_DEVICE` program
//! on the container's v2 group, through the real binary on the real kernel (as root).
//!
//! The project's hosts have a hybrid layout (v1 controllers, cgroup v2 at
//! `/sys/fs/cgroup/unified` without controllers), where rbuild uses the v1 `devices`
//! hierarchy as runc does; `RBUILD_TEST_DEVICES_V2=1` makes it use the v2 tree there, the
//! path a pure cgroup v2 host takes. The v1 group is then not made, so the program alone
//! stands between the container and the host's devices.

mod common;

use common::{stderr, stdout, TestEnv};

/// `rbuild ARGS` with the device filter on cgroup v2.
fn on_v2(env: &TestEnv, args: &[&str]) -> std::process::Output {
    env.cmd()
        .env("RBUILD_TEST_DEVICES_V2", "1")
        .args(args)
        .output()
        .expect("run rbuild")
}

/// `run --rm FLAGS... bb sh -c SCRIPT` on cgroup v2: asserts its stdout is `want` and,
/// with `denied`, that its stderr says `Operation not permitted`.
fn sh_v2(env: &TestEnv, flags: &[&str], script: &str, want: &str, denied: bool) {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["bb", "sh", "-c", script]);
    let out = on_v2(env, &args);
    assert_eq!(stdout(&out), want, "{flags:?} {script}: {}", stderr(&out));
    let says = stderr(&out).contains("Operation not permitted");
    assert_eq!(says, denied, "{flags:?} {script}: {}", stderr(&out));
}

/// The mount point of the host's cgroup v2 tree.
fn v2_mount() -> std::path::PathBuf {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    mountinfo
        .lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            right
                .starts_with("cgroup2 ")
                .then(|| left.split(' ').nth(4).unwrap().into())
        })
        .expect("a cgroup2 mount on this host")
}

/// Outside the allow list a device cannot be opened (`EPERM`), though the container may
/// make its node; `/dev/null` can; `--device` adds one, `:r` only for reading. The same
/// cases as `container_flags`' v1 test, so both filters are seen to agree.
#[test]
fn v2_device_filter_denies_unlisted_devices_and_allows_device_flag() {
    let env = TestEnv::with_base("bb");
    let null_then_made = ": < /dev/null && : > /dev/null && echo null-ok; \
                          mknod /lc c 10 237 && echo made && : < /lc && echo opened";
    sh_v2(&env, &[], null_then_made, "null-ok\nmade\n", true);
    let lc = ": < /dev/lc && : > /dev/lc && echo opened";
    sh_v2(
        &env,
        &["--device", "/dev/loop-control:/dev/lc"],
        lc,
        "opened\n",
        false,
    );
    let read_only = ": < /dev/lc && echo read; : > /dev/lc";
    sh_v2(
        &env,
        &["--device", "/dev/loop-control:/dev/lc:r"],
        read_only,
        "read\n",
        true,
    );
    // --privileged: no device cgroup at all.
    let made = "mknod /lc c 10 237 && : < /lc && echo opened";
    sh_v2(&env, &["--privileged"], made, "opened\n", false);
}

/// The container (and an `exec` into it) is in `rbuild/<id>` of the v2 tree, and in no v1
/// `devices` group of rbuild's: the denial above is the program's.
#[test]
fn v2_device_filter_is_on_the_containers_v2_group_and_exec_joins_it() {
    let env = TestEnv::with_base("bb");
    let out = on_v2(&env, &["run", "-d", "--name", "d", "bb", "sleep", "1000"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    let pid = env.ok(&["inspect", "-f", "{{.State.Pid}}", "d"]);
    let cgroups = std::fs::read_to_string(format!("/proc/{}/cgroup", pid.trim())).unwrap();
    assert!(
        cgroups.lines().any(|l| l == format!("0::/rbuild/{id}")),
        "{cgroups}"
    );
    assert!(
        !cgroups.lines().any(|l| l.contains(":devices:/rbuild")),
        "{cgroups}"
    );
    assert!(v2_mount().join("rbuild").join(&id).is_dir());
    let out = env.run(&["exec", "d", "sh", "-c", "mknod /x c 10 237 && : < /x"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("Operation not permitted"),
        "{}",
        stderr(&out)
    );
    env.ok(&["rm", "-f", "d"]);
    // Removed with the container (the program goes with the group).
    assert!(!v2_mount().join("rbuild").join(&id).exists());
}
