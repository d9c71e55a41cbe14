//! An unused bridge lingers (issues 12 and 13, speed): once the last container left, the
//! bridge and its rules stay for the linger, the next container reuses them (same link, no
//! `nft` run), and a detached reaper removes them after it, with no further rbuild command;
//! a killed reaper leaves them to the next command; linger 0 removes them at once.
//!
//! Each test has its own bridge and subnet ([`Net`]) and its own IPAM record
//! (`RBUILD_NETWORK_STATE`): the reaper and its lock belong to a record, so the tests' reapers
//! never see each other's bridges. Needs root, as CI.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::bridge::Net;
use common::{assert_success, killed_at, TestEnv};

/// A store with the busybox image `bb`, its own bridge and its own IPAM record.
struct Lingering {
    env: TestEnv,
    net: Net,
    state: PathBuf,
}

impl Lingering {
    fn new(bridge: &'static str, octet: u8) -> Lingering {
        let env = TestEnv::with_base("bb");
        let state = env.path().join("network-state");
        Lingering {
            env,
            net: Net { bridge, octet },
            state,
        }
    }

    /// rbuild `args` with a linger of `linger_ms`.
    fn cmd(&self, linger_ms: u64, args: &[&str]) -> Command {
        let mut cmd = self.net.cmd(&self.env, args);
        self.envs(&mut cmd, linger_ms);
        cmd
    }

    fn envs(&self, cmd: &mut Command, linger_ms: u64) {
        cmd.env("RBUILD_BRIDGE", self.net.bridge)
            .env(
                "RBUILD_BRIDGE_SUBNET",
                format!("10.{}.0.0/16", self.net.octet),
            )
            .env("RBUILD_NETWORK_STATE", &self.state)
            .env("RBUILD_NETWORK_LINGER_MS", linger_ms.to_string());
    }

    fn ok(&self, linger_ms: u64, args: &[&str]) -> String {
        let out = self.cmd(linger_ms, args).output().unwrap();
        assert_success(&format!("rbuild {args:?}"), &out)
    }

    /// The bridge's interface index, `None` when it does not exist.
    fn ifindex(&self) -> Option<u32> {
        ifindex(self.net.bridge)
    }

    /// Whether rbuild's nftables table has the bridge's chains.
    fn has_rules(&self) -> bool {
        has_rules(self.net.bridge)
    }

    /// The IPAM record.
    fn record(&self) -> serde_json::Value {
        let bytes = std::fs::read(self.state.join("state.json")).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    /// The bridge's entry in the record (`null` when it has none).
    fn bridge_record(&self) -> serde_json::Value {
        self.record()["bridges"][self.net.bridge].clone()
    }

    /// Asserts that the bridge, its rules and its record are there.
    fn assert_lingers(&self, what: &str) {
        assert!(self.ifindex().is_some(), "{what}: the bridge is gone");
        assert!(self.has_rules(), "{what}: the rules are gone");
        assert!(
            self.bridge_record()["idle_since"].is_u64(),
            "{what}: not marked idle: {}",
            self.record()
        );
    }

    /// Asserts that the bridge, its rules and its record are gone.
    fn assert_gone(&self, what: &str) {
        assert_eq!(self.ifindex(), None, "{what}: the bridge stays");
        assert!(!self.has_rules(), "{what}: the rules stay");
        assert!(
            self.bridge_record().is_null(),
            "{what}: recorded: {}",
            self.record()
        );
    }

    /// Waits (at most `within`) for the bridge and its rules to go.
    fn wait_gone(&self, within: Duration) {
        let deadline = Instant::now() + within;
        // The record is saved last (after the link and the rules went): wait for all three.
        while self.ifindex().is_some() || self.has_rules() || !self.bridge_record().is_null() {
            assert!(Instant::now() < deadline, "still there after {within:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The running reapers of this test's record (their environment names it).
    fn reapers(&self) -> Vec<i32> {
        let want = format!("RBUILD_NETWORK_STATE={}", self.state.display());
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            let zombie = stat
                .rsplit_once(") ")
                .is_some_and(|(_, s)| s.starts_with('Z'));
            if !zombie
                && cmdline.split(|b| *b == 0).any(|a| a == b"network-reaper")
                && environ.split(|b| *b == 0).any(|v| v == want.as_bytes())
            {
                pids.push(pid);
            }
        }
        pids
    }

    /// Waits (at most 10 s) until no reaper of this record runs. A reaper exists once the
    /// command that started it returned (it waits for its exec), so none listed means the
    /// reaper ended; the test never takes the reaper's lock itself (a reaper that found it
    /// taken would end without its work).
    fn wait_no_reaper(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.reapers().is_empty() {
            assert!(Instant::now() < deadline, "the reaper still runs");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (at most 10 s) until a process holds the reaper's lock (seen in
    /// `/proc/locks`, without taking it): from then on a container that leaves starts no
    /// other reaper. A reaper that runs may not have taken it yet.
    fn wait_reaper_locked(&self) {
        use std::os::unix::fs::MetadataExt;
        let inode = std::fs::metadata(self.state.join("reaper.lock"))
            .unwrap()
            .ino();
        let held = format!(":{inode} ");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string("/proc/locks")
            .unwrap()
            .lines()
            .any(|l| l.contains(&held))
        {
            assert!(Instant::now() < deadline, "no reaper holds its lock");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Lingering {
    /// Leaves nothing behind, whatever the test did: ends the reapers, and has rbuild remove
    /// the bridge as expired (its record's linger set to 0).
    fn drop(&mut self) {
        for pid in self.reapers() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        let path = self.state.join("state.json");
        let Ok(bytes) = std::fs::read(&path) else {
            return;
        };
        let mut record: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        if let Some(bridges) = record["bridges"].as_object_mut() {
            for bridge in bridges.values_mut() {
                bridge["linger_ms"] = 0.into();
            }
        }
        std::fs::write(&path, record.to_string()).unwrap();
        let _ = self.cmd(0, &["images"]).output();
    }
}

/// The interface index of `bridge`, `None` when it does not exist.
fn ifindex(bridge: &str) -> Option<u32> {
    let index = std::fs::read_to_string(format!("/sys/class/net/{bridge}/ifindex")).ok()?;
    Some(index.trim().parse().unwrap())
}

/// Whether rbuild's nftables table has the chains of `bridge`.
fn has_rules(bridge: &str) -> bool {
    let out = Command::new("nft")
        .args(["list", "table", "ip", "rbuild"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    table.contains(&format!("chain post-{bridge} "))
}

fn run_true(l: &Lingering, linger_ms: u64) -> Output {
    let out = l
        .cmd(linger_ms, &["run", "--rm", "bb", "true"])
        .output()
        .unwrap();
    assert_success("run --rm bb true", &out);
    out
}

/// The bridge and its rules stay after the last container left (the command returned: the
/// reaper does not hold its output open), then go within the linger and a margin with no
/// further rbuild command: the detached reaper removed them.
#[test]
fn idle_bridge_stays_for_the_linger_and_the_reaper_removes_it() {
    let l = Lingering::new("rbuildlg1", 236);
    run_true(&l, 5000);
    // The linger counts from the idle mark, made as the container left.
    let since = l.bridge_record()["idle_since"]
        .as_u64()
        .expect("marked idle");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        now - since < 4000,
        "{} ms since the idle mark: the test cannot see the linger",
        now - since
    );
    l.assert_lingers("right after the last container left");
    assert_eq!(l.reapers().len(), 1, "one reaper runs");
    l.wait_gone(Duration::from_secs(5 + 10));
    assert!(l.bridge_record().is_null(), "recorded: {}", l.record());
    l.wait_no_reaper();
}

/// A second container within the linger gets the same bridge (same interface index) and
/// runs no `nft` (traced); it starts no second reaper either. A new user clears the idle mark.
#[test]
fn a_second_container_within_the_linger_reuses_the_bridge() {
    let l = Lingering::new("rbuildlg2", 237);
    run_true(&l, 60_000);
    let first = l.ifindex().expect("the bridge lingers");
    let reapers = l.reapers();
    assert_eq!(reapers.len(), 1, "one reaper runs");
    l.wait_reaper_locked();

    let trace = l.env.path().join("trace");
    let mut cmd = l.env.cmd_under(
        "strace",
        [
            "-f",
            "-qq",
            "-e",
            "trace=execve",
            "-o",
            trace.to_str().unwrap(),
        ],
    );
    cmd.args(["run", "--rm", "bb", "true"]);
    l.envs(&mut cmd, 60_000);
    assert_success("traced run --rm bb true", &cmd.output().unwrap());
    let trace = std::fs::read_to_string(&trace).unwrap();
    let execs: Vec<&str> = trace.lines().filter(|l| l.contains("execve(")).collect();
    assert!(
        execs.iter().any(|l| l.contains("\"run\"")),
        "the trace shows rbuild: {trace}"
    );
    for program in ["\"nft\"", "network-reaper"] {
        assert!(
            !execs.iter().any(|l| l.contains(program)),
            "{program} ran: {execs:#?}"
        );
    }
    assert_eq!(l.ifindex(), Some(first), "the bridge was made again");
    assert_eq!(l.reapers(), reapers, "the same single reaper");
    l.assert_lingers("after the second container");

    // While a container runs, the bridge is not idle.
    let id = l.ok(60_000, &["run", "-d", "bb", "sleep", "300"]);
    assert!(
        l.bridge_record()["idle_since"].is_null(),
        "idle while used: {}",
        l.record()
    );
    assert_eq!(l.ifindex(), Some(first));
    l.ok(60_000, &["rm", "-f", id.trim()]);
    // The monitor releases its lease as it ends.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !l.bridge_record()["idle_since"].is_u64() {
        assert!(Instant::now() < deadline, "not idle: {}", l.record());
        std::thread::sleep(Duration::from_millis(20));
    }
    l.assert_lingers("after rm -f");
}

/// The reaper killed (SIGKILL at its kill point, before it sleeps): the bridge stays past
/// its linger, and the next rbuild command (any) removes it and its rules.
#[test]
fn a_killed_reaper_leaves_the_bridge_to_the_next_command() {
    let l = Lingering::new("rbuildlg3", 238);
    // Long enough for the reaper to reach its kill point (it cleans without waiting once
    // the linger has passed), on a loaded machine too.
    let linger_ms = 3000;
    let out = l
        .cmd(linger_ms, &["run", "--rm", "bb", "true"])
        .env("RBUILD_TEST_KILL_AT", "network-reaper-waiting:1")
        .output()
        .unwrap();
    assert_success("run --rm bb true", &out);
    l.wait_no_reaper();
    assert!(l.reapers().is_empty(), "a reaper runs: {:?}", l.reapers());
    let record = l.bridge_record();
    let due = record["idle_since"].as_u64().expect("marked idle") + linger_ms;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    std::thread::sleep(Duration::from_millis(due.saturating_sub(now) + 200));
    l.assert_lingers("past the linger with its reaper killed");

    l.ok(linger_ms, &["images"]);
    l.assert_gone("after the next command");
}

/// Linger 0: the last container removes the bridge and its rules itself, before its command
/// returns, and no reaper starts.
#[test]
fn linger_0_removes_the_bridge_when_the_last_container_leaves() {
    let l = Lingering::new("rbuildlg4", 239);
    run_true(&l, 0);
    l.assert_gone("right after the last container left");
    assert!(l.reapers().is_empty(), "a reaper runs: {:?}", l.reapers());
}

/// rbuild killed with the bridge up (a linger set): no user released the bridge, so nothing
/// marked it idle, and the next command removes it at once, as a killed rbuild's leftover.
#[test]
fn killed_rbuild_with_a_linger_leaves_nothing_after_the_next_start() {
    let l = Lingering::new("rbuildlg5", 240);
    killed_at(
        &mut l.cmd(60_000, &["run", "--rm", "bb", "true"]),
        "network-attached:1",
    );
    assert!(l.ifindex().is_some(), "the bridge is up");
    l.ok(60_000, &["images"]);
    l.assert_gone("after the next command");
}

/// Regression: the last bridge of one IPAM record deleted rbuild's whole nftables table,
/// with the rules of another record's bridge in it (records are moved by
/// `RBUILD_NETWORK_STATE`, as these tests do; the table is host-wide).
#[test]
fn bug_last_bridge_of_one_record_deleted_the_table_under_another_records_bridge() {
    let lingering = Lingering::new("rbuildlg6", 241);
    run_true(&lingering, 60_000);
    lingering.assert_lingers("the first record's bridge");
    let other = Lingering::new("rbuildlg7", 242);
    run_true(&other, 0);
    other.assert_gone("the other record's bridge, its last user gone");
    lingering.assert_lingers("the first record's bridge after the other's went");
}

/// A user network's bridge lingers as the default one does, and `network rm` removes it (and
/// its rules) at once.
#[test]
fn a_user_networks_bridge_lingers_and_network_rm_removes_it_at_once() {
    let l = Lingering::new("rbuildlg8", 243);
    let id = l.ok(
        60_000,
        &["network", "create", "--subnet", "10.227.7.0/24", "lgnet"],
    );
    let bridge = format!("rbuild-{}", &id.trim()[..8]);
    l.ok(60_000, &["run", "--rm", "--network", "lgnet", "bb", "true"]);
    assert!(ifindex(&bridge).is_some(), "{bridge} is gone");
    assert!(has_rules(&bridge), "the rules of {bridge} are gone");
    l.ok(60_000, &["network", "rm", "lgnet"]);
    assert_eq!(ifindex(&bridge), None, "{bridge} stays");
    assert!(!has_rules(&bridge), "the rules of {bridge} stay");
}
