//! A test's own bridge for the network tests: rbuild commands run with `RBUILD_BRIDGE` and
//! `RBUILD_BRIDGE_SUBNET` set, so parallel tests never share a bridge or a subnet. Each test
//! file adds the checks it needs in its own `impl Net` block. They also run with
//! `RBUILD_NETWORK_LINGER_MS=0`: the last container to leave removes the bridge and its
//! rules itself, so a test sees at once that nothing is left (tests/network_linger.rs tests
//! the linger).

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
            .env("RBUILD_NETWORK_LINGER_MS", "0")
            .stdin(Stdio::null());
        cmd
    }

    pub fn run(&self, env: &TestEnv, args: &[&str]) -> Output {
        self.cmd(env, args).output().unwrap()
    }

    pub fn ok(&self, env: &TestEnv, args: &[&str]) -> String {
        assert_success(&format!("rbuild {args:?}"), &self.run(env, args))
    }

    /// Removes every container of `env`'s store: a failed test must not leave detached
    /// containers (and their networks) running.
    pub fn remove_all(&self, env: &TestEnv) {
        let ids = self.run(env, &["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.run(env, &["rm", "-f", id]);
        }
    }
}

/// A test's store (with the busybox image `bb`) and its own default bridge; every container
/// of the store is removed when it is dropped. Test files add their own methods in their own
/// `impl Host` block.
pub struct Host {
    pub env: TestEnv,
    pub net: Net,
}

impl Host {
    pub fn new(bridge: &'static str, octet: u8) -> Host {
        Host {
            env: TestEnv::with_base("bb"),
            net: Net { bridge, octet },
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        self.net.cmd(&self.env, args)
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.net.run(&self.env, args)
    }

    pub fn ok(&self, args: &[&str]) -> String {
        self.net.ok(&self.env, args)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.net.remove_all(&self.env);
    }
}

/// A shell loop, run inside a container, that fetches `url` (waiting up to 10 s for the
/// server) and prints it. busybox `wget -T` crashes (a busybox bug), hence the retries.
pub fn fetch(url: &str) -> String {
    format!(
        "for i in $(seq 100); do wget -qO- {url} 2>/dev/null && exit 0; sleep 0.1; done; \
         echo no answer from {url} >&2; exit 1"
    )
}
