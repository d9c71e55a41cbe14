//! Global flags: --root / RBUILD_ROOT and --debug.

mod common;

use common::{rbuild_bin, TestEnv};
use std::path::Path;
use std::process::Command;

#[test]
fn root_comes_from_flag_then_env() {
    let env = TestEnv::new();
    let from_env = env.path().join("env-root");
    let from_flag = env.path().join("flag-root");
    // `rbuild --debug [--root FLAG] images -q` with RBUILD_ROOT set: the debug line names
    // the store root in use.
    let root_used = |flag: Option<&Path>| -> String {
        let mut cmd = Command::new(rbuild_bin());
        cmd.arg("--debug");
        if let Some(flag) = flag {
            cmd.arg("--root").arg(flag);
        }
        let out = cmd
            .args(["images", "-q"])
            .env("RBUILD_ROOT", &from_env)
            .output()
            .unwrap();
        assert!(out.status.success());
        common::stderr(&out)
    };
    let err = root_used(None);
    assert!(
        err.contains(&format!("debug: store root {}", from_env.display())),
        "{err}"
    );
    assert!(
        from_env.join("oci-layout").exists(),
        "store created at RBUILD_ROOT"
    );
    let err = root_used(Some(&from_flag));
    assert!(
        err.contains(&format!("debug: store root {}", from_flag.display())),
        "{err}"
    );
}

#[test]
fn debug_prints_the_error_chain_and_default_level_does_not() {
    let env = TestEnv::new();
    let quiet = env.fails(&["parse", "-f", "no/such/Dockerfile"]);
    assert!(!quiet.contains("debug:"), "{quiet}");
    let loud = env.fails(&["--log-level", "debug", "parse", "-f", "no/such/Dockerfile"]);
    assert!(loud.contains("debug: "), "{loud}");
    assert!(loud.contains("no/such/Dockerfile"), "{loud}");
}
