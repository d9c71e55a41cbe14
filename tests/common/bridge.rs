//! A test's own bridge for the network tests: rbuild commands run with `RBUILD_BRIDGE` and
//! `RBUILD_BRIDGE_SUBNET` set, so parallel tests never share a bridge or a subnet. Each test
//! file adds the checks it needs in its own `impl Net` block. They also run with
//! `RBUILD_NETWORK_LINGER_MS=0`: the last container to leave removes the bridge and its
//! rules itself, so a test sees at once that nothing is left (tests/network_linger.rs tests
//! the linger).

use std::net::Ipv4Addr;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

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

    /// A detached busybox httpd `name` serving `hello-<name>`; returns its ID.
    pub fn httpd(&self, name: &str, flags: &[&str]) -> String {
        let script = format!(
            "mkdir /www && echo hello-{name} > /www/index.html && exec httpd -f -p 80 -h /www"
        );
        let mut args = vec!["run", "-d", "--name", name];
        args.extend(flags);
        args.extend(["bb", "sh", "-c", &script]);
        self.ok(&args).trim().to_string()
    }

    /// `exec`s `script` in container `name`.
    pub fn exec(&self, name: &str, script: &str) -> Output {
        self.run(&["exec", name, "sh", "-c", script])
    }

    pub fn exec_ok(&self, name: &str, script: &str) -> String {
        self.ok(&["exec", name, "sh", "-c", script])
    }

    /// The addresses of container `name` on each network, from `inspect`.
    pub fn addresses(&self, name: &str) -> serde_json::Value {
        let out = self.ok(&["inspect", "--type", "container", name]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v[0]["NetworkSettings"]["Networks"].clone()
    }

    /// The address of container `name` on `network`, from `inspect`.
    pub fn address_on(&self, name: &str, network: &str) -> Ipv4Addr {
        let networks = self.addresses(name);
        let ip = networks[network]["IPAddress"].as_str().unwrap_or("");
        ip.parse()
            .unwrap_or_else(|_| panic!("{name} has no address on {network}: {networks}"))
    }

    /// Creates network `name` on `subnet` (removing a leftover of an interrupted run);
    /// returns its bridge's name.
    pub fn network_on(&self, name: &str, subnet: &str) -> String {
        let _ = self.run(&["network", "rm", name]);
        let id = self.ok(&["network", "create", "--subnet", subnet, name]);
        format!("rbuild-{}", &id.trim()[..8])
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

/// The host's link names.
pub fn links() -> Vec<String> {
    let out = Command::new("ip").args(["-o", "link"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
        .collect()
}

/// The host end of the veth of the container with `address` (rbuild's naming).
pub fn veth(address: Ipv4Addr) -> String {
    format!("rbuild{:08x}", u32::from(address))
}

/// The leases of the host's IPAM record that container `id` owns, as (bridge, address).
pub fn leases_of(id: &str) -> Vec<(String, String)> {
    let state = std::fs::read_to_string("/run/rbuild/network/state.json").unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&state).unwrap_or_default();
    v["leases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["owner"] == id)
        .map(|l| (l["bridge"].to_string(), l["address"].to_string()))
        .collect()
}

/// Asserts that none of `bridges` and `veths` is on the host (the kernel removes a dead
/// namespace's veth asynchronously: waits for that a little), that nftables has no rule of
/// the bridges and that no lease names them.
pub fn assert_nothing_left(bridges: &[&str], veths: &[String]) {
    let left = || {
        links()
            .into_iter()
            .filter(|l| bridges.contains(&l.as_str()) || veths.contains(l))
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !left().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(left(), Vec::<String>::new(), "links left on the host");
    let table = Command::new("nft")
        .args(["list", "table", "ip", "rbuild"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    let state = std::fs::read_to_string("/run/rbuild/network/state.json").unwrap_or_default();
    for bridge in bridges {
        assert!(!table.contains(bridge), "rules of {bridge} left: {table}");
        assert!(!state.contains(bridge), "lease of {bridge} left: {state}");
    }
}
