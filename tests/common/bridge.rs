//! A test's own bridge for the network tests: rbuild commands run with `RBUILD_BRIDGE` and
//! `RBUILD_BRIDGE_SUBNET` set, so parallel tests never share a bridge or a subnet. Each test
//! file adds the checks it needs in its own `impl Net` block.

use std::process::{Command, Output, Stdio};

use super::{assert_success, TestEnv};

/// This test's bridge: its name and the second octet of its 10.x.0.0/16 subnet.
pub struct Net {
    pub bridge: &'static str,
    pub octet: u8,
}

impl Net {
    pub fn cmd(&self, env: &TestEnv, args: &[&str]) -> Command {
        let mut cmd = env.cmd();
        cmd.args(args)
            .env("RBUILD_BRIDGE", self.bridge)
            .env("RBUILD_BRIDGE_SUBNET", format!("10.{}.0.0/16", self.octet))
            .stdin(Stdio::null());
        cmd
    }

    pub fn run(&self, env: &TestEnv, args: &[&str]) -> Output {
        self.cmd(env, args).output().unwrap()
    }

    pub fn ok(&self, env: &TestEnv, args: &[&str]) -> String {
        assert_success(&format!("rbuild {args:?}"), &self.run(env, args))
    }
}
