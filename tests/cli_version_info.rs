//! `rbuild version` and `rbuild info` (issue 14).

mod common;

use common::{project_dir, TestEnv};
use std::process::Command;

/// The value of the `KEY:` line of `text`.
fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {key}: line in\n{text}"))
        .trim()
}

#[test]
fn version_names_the_commit_and_build_date() {
    let env = TestEnv::new();
    let out = env.ok(&["version"]);
    assert_eq!(field(&out, "Version"), env!("CARGO_PKG_VERSION"));
    // The checkout's HEAD (cargo ran build.rs again when it moved), or "unknown" outside git.
    let head = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(project_dir())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8(o.stdout).unwrap().trim().to_string());
    let commit = field(&out, "Git commit");
    assert_eq!(commit, head.as_deref().unwrap_or("unknown"), "{out}");
    let built = chrono::DateTime::parse_from_rfc3339(field(&out, "Built"))
        .unwrap_or_else(|e| panic!("Built is not RFC 3339: {e}\n{out}"));
    let now = chrono::Utc::now();
    assert!(built <= now && built.timestamp() > 1_700_000_000, "{built}");
    assert!(field(&out, "OS/Arch").starts_with("linux/"), "{out}");
    // `--version` has the same facts on one line; `-V` only the version.
    let long = env.ok(&["--version"]);
    assert_eq!(
        long.trim(),
        format!(
            "rbuild {} (commit {commit}, built {})",
            env!("CARGO_PKG_VERSION"),
            field(&out, "Built")
        )
    );
    assert_eq!(
        env.ok(&["-V"]).trim(),
        format!("rbuild {}", env!("CARGO_PKG_VERSION"))
    );
}

/// The cgroup version that holds the `pids` controller, read independently of rbuild.
fn pids_cgroup_version() -> Option<&'static str> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    for line in mounts.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f[2] == "cgroup2" {
            let controllers =
                std::fs::read_to_string(format!("{}/cgroup.controllers", f[1])).unwrap_or_default();
            if controllers.split_whitespace().any(|c| c == "pids") {
                return Some("2");
            }
        }
    }
    mounts
        .lines()
        .any(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            f[2] == "cgroup" && f[3].split(',').any(|o| o == "pids")
        })
        .then_some("1")
}

#[test]
fn info_describes_the_store_and_the_host() {
    let env = TestEnv::new();
    let out = env.ok(&["info"]);
    assert_eq!(
        field(&out, "Store root"),
        env.root().to_str().unwrap(),
        "{out}"
    );
    let driver = field(&out, "Storage driver");
    let overlay = std::fs::read_to_string("/proc/filesystems")
        .unwrap()
        .contains("\toverlay\n");
    assert!(driver.starts_with("overlay"), "{out}");
    assert_eq!(driver.contains("overlayfs: yes"), overlay, "{out}");
    let cgroup = field(&out, "Cgroup version");
    match pids_cgroup_version() {
        Some(v) => assert!(
            cgroup.starts_with(&format!("{v} (pids controller at /")),
            "{out}"
        ),
        None => assert!(cgroup.starts_with("none"), "{out}"),
    }
    let euid = Command::new("id").arg("-u").output().unwrap();
    let root = String::from_utf8(euid.stdout).unwrap().trim() == "0";
    assert_eq!(field(&out, "Rootless"), (!root).to_string(), "{out}");
    let security = field(&out, "Security options");
    assert!(security.contains("seccomp"), "{out}");
    assert!(security.contains("no-new-privileges"), "{out}");
    assert_eq!(field(&out, "rbuild version"), env!("CARGO_PKG_VERSION"));
}
