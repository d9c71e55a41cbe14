//! Rootless networking (issue 12): rbuild run by uid 65534 gives RUN steps and containers a
//! user-mode network (pasta or slirp4netns) with no flag. They reach a server in a network
//! namespace the test creates (joined to the host by a veth pair on 198.18.x.0/30, the
//! benchmarking range; traffic stays on this machine); `--network none` cannot; the helper
//! lives exactly as long as the container, also when rbuild is killed with SIGKILL; with
//! neither helper installed the error names both packages; published ports forward through
//! pasta's options and slirp4netns's API socket.
//!
//! How rbuild runs as uid 65534, where a test is skipped, and how the helper processes are
//! found: [`common::rootless`].
//!
//! (No `wget -T`: Debian 12's busybox-static crashes on it, on the host too.)

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::published::{free_port, http_get};
use common::rootless::{is_helper, shell, Rootless, HELPERS, NOBODY, SETPRIV};
use common::{assert_failure, assert_success, TestEnv};

/// busybox httpd serving `hello-outside` in a network namespace of its own, at
/// 198.18.`n`.2:8080 (the host side of the veth pair is 198.18.`n`.1/30).
struct OutsideServer {
    ns: String,
    httpd: Child,
    url: String,
}

impl OutsideServer {
    fn start(env: &TestEnv, n: u8) -> OutsideServer {
        let ns = format!("rbt-rl{n}");
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        let _ = Command::new("ip")
            .args(["link", "del", &format!("{ns}h")])
            .output();
        shell(&format!(
            "set -e; ip netns add {ns}; ip link add {ns}h type veth peer name eth0 netns {ns}
             ip addr add 198.18.{n}.1/30 dev {ns}h; ip link set {ns}h up
             ip -n {ns} addr add 198.18.{n}.2/30 dev eth0; ip -n {ns} link set eth0 up"
        ));
        let www = env.path().join(format!("www{n}"));
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(www.join("index.html"), "hello-outside\n").unwrap();
        let address = Ipv4Addr::new(198, 18, n, 2);
        let httpd = Command::new("ip")
            .args(["netns", "exec", &ns, "busybox", "httpd", "-f"])
            .arg("-p")
            .arg(format!("{address}:8080"))
            .arg("-h")
            .arg(&www)
            .spawn()
            .unwrap();
        let target = SocketAddrV4::new(address, 8080).into();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "httpd in {ns} did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        OutsideServer {
            ns,
            httpd,
            url: format!("http://{address}:8080/"),
        }
    }
}

impl Drop for OutsideServer {
    fn drop(&mut self) {
        let _ = self.httpd.kill();
        let _ = self.httpd.wait();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

/// A container (as uid 65534, `helper`'s network) that fetches `url`, prints
/// `/etc/resolv.conf` and `fetched`, then waits for the file `go` in a volume.
struct Waiting {
    child: Child,
    printed: String,
    go: PathBuf,
}

impl Drop for Waiting {
    /// A failed test must not leave its rbuild (and, through it, the container) running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_waiting(rl: &Rootless, helper: &str, url: &str) -> Waiting {
    let volume = rl.dir(&format!("vol-{helper}"));
    let script = format!(
        "wget -q -O- {url}; cat /etc/resolv.conf; echo fetched; \
         while [ ! -e /w/go ]; do sleep 0.05; done"
    );
    let mount = format!("{}:/w", volume.display());
    let mut child = rl
        .cmd(
            Some(helper),
            &["run", "--rm", "-v", &mount, "bb", "sh", "-c", &script],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut printed = String::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap());
    loop {
        let mut line = String::new();
        if lines.read_line(&mut line).unwrap() == 0 {
            let status = child.wait().unwrap();
            panic!("the container ended ({status}) before fetching: {printed}");
        }
        printed.push_str(&line);
        if line == "fetched\n" {
            break;
        }
    }
    Waiting {
        child,
        printed,
        go: volume.join("go"),
    }
}

/// `helper` (pasta or slirp4netns) as the default network: a container and a RUN step reach
/// the outside server, resolv.conf names the helper's DNS forwarder, the helper runs while
/// the container does and nothing tagged is left after it ended.
fn outbound_through(helper: &str, n: u8, dns: &str) {
    let Some(rl) = Rootless::new(&format!("outbound-{helper}")) else {
        return;
    };
    let outside = OutsideServer::start(&rl.env, n);
    let mut waiting = start_waiting(&rl, helper, &outside.url);
    assert!(
        waiting.printed.starts_with("hello-outside\n"),
        "{}",
        waiting.printed
    );
    assert!(
        waiting.printed.contains(&format!("nameserver {dns}\n")),
        "{}",
        waiting.printed
    );
    let helpers = rl.helpers(helper);
    assert_eq!(helpers.len(), 1, "one {helper} while it runs: {helpers:?}");
    std::fs::write(&waiting.go, "").unwrap();
    let status = waiting.child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(rl.wait_untagged(), [], "left after the container ended");

    let out = rl.build(
        Some(helper),
        &format!(
            "FROM bb\nRUN wget -q -O /got {}\nRUN cat /got\n",
            outside.url
        ),
        &[],
    );
    let log = assert_success("rootless build", &out);
    let log = log + &common::stderr(&out);
    assert!(log.contains("hello-outside"), "{log}");
    assert_eq!(rl.wait_untagged(), [], "left after the build");
}

#[test]
fn container_and_run_step_reach_outside_through_pasta() {
    outbound_through("pasta", 41, "169.254.1.1");
}

#[test]
fn container_and_run_step_reach_outside_through_slirp4netns() {
    outbound_through("slirp4netns", 42, "10.0.2.3");
}

/// Without a flag the helper is chosen automatically (pasta first); `--network none` (run
/// and build) cannot reach the outside server.
#[test]
fn automatic_choice_and_network_none_rootless() {
    let Some(rl) = Rootless::new("none") else {
        return;
    };
    let outside = OutsideServer::start(&rl.env, 43);
    let fetch = format!("wget -q -O- {}", outside.url);
    let out = rl.run(None, &["run", "--rm", "bb", "sh", "-c", &fetch]);
    assert_eq!(assert_success("automatic", &out), "hello-outside\n");
    let out = rl.run(
        None,
        &["run", "--rm", "--network", "none", "bb", "sh", "-c", &fetch],
    );
    assert_failure("run --network none", &out);
    let out = rl.build(
        None,
        &format!("FROM bb\nRUN {fetch}\n"),
        &["--network", "none"],
    );
    assert_failure("build --network none", &out);
    assert_eq!(rl.wait_untagged(), []);
}

/// SIGKILL of rbuild while its container runs: the helper dies with it (parent-death
/// signal), and so do the container's processes.
#[test]
fn helper_is_gone_after_sigkill_of_rbuild() {
    let Some(rl) = Rootless::new("sigkill") else {
        return;
    };
    let outside = OutsideServer::start(&rl.env, 44);
    for helper in HELPERS {
        let mut waiting = start_waiting(&rl, helper, &outside.url);
        assert!(waiting.printed.starts_with("hello-outside\n"));
        let running = rl.tagged();
        assert!(
            running.iter().any(|(_, c)| is_helper(c, helper)),
            "{helper} runs: {running:?}"
        );
        waiting.child.kill().unwrap();
        waiting.child.wait().unwrap();
        assert_eq!(
            rl.wait_untagged(),
            [],
            "{helper}: left after SIGKILL of rbuild"
        );
    }
}

/// With neither pasta nor slirp4netns on PATH, the default network is a clear error naming
/// both packages (run and build); `--network host` and `none` still work.
#[test]
fn neither_helper_installed_is_a_clear_error() {
    let Some(rl) = Rootless::new("nohelper") else {
        return;
    };
    let empty = rl.dir("empty-path");
    let without = |args: &[&str]| rl.cmd(None, args).env("PATH", &empty).output().unwrap();
    let err = assert_failure("run", &without(&["run", "--rm", "bb", "true"]));
    for word in ["pasta", "passt", "slirp4netns", "--network host"] {
        assert!(err.contains(word), "{word}: {err}");
    }
    std::fs::write(rl.dir("ctx").join("Dockerfile"), "FROM bb\nRUN true\n").unwrap();
    let ctx = rl.home.join("ctx");
    let err = assert_failure(
        "build",
        &without(&["build", "--no-cache", ctx.to_str().unwrap()]),
    );
    assert!(
        err.contains("passt") && err.contains("slirp4netns"),
        "{err}"
    );
    for network in ["host", "none"] {
        let out = without(&["run", "--rm", "--network", network, "bb", "true"]);
        assert_success(network, &out);
    }
    let out = rl.run(Some("slirp"), &["run", "--rm", "bb", "true"]);
    let err = assert_failure("unknown helper", &out);
    assert!(err.contains("expected pasta or slirp4netns"), "{err}");
}

/// A helper that fails before configuring the namespace (here a stand-in `pasta` that says
/// what the real one says without access to /dev/net/tun) fails the start with its output;
/// the container's process never runs and nothing is left.
#[test]
fn failing_helper_is_a_clear_error() {
    use std::os::unix::fs::PermissionsExt;
    let Some(rl) = Rootless::new("failing") else {
        return;
    };
    let bin = rl.dir("fake-bin");
    let fake = bin.join("pasta");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'Failed to open tun socket in namespace' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = rl
        .cmd(Some("pasta"), &["run", "--rm", "bb", "echo", "ran"])
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .output()
        .unwrap();
    let err = assert_failure("run with a failing pasta", &out);
    assert!(
        err.contains("pasta: it exited (exit status: 1) before the network was configured")
            && err.contains("Failed to open tun socket in namespace"),
        "{err}"
    );
    assert!(!common::stdout(&out).contains("ran"));
    assert_eq!(rl.wait_untagged(), []);
}

/// Regression: rootless `rbuild run` of any image as root failed with "failed to set
/// supplementary groups [0]: EPERM" (the user namespace with a single mapping denies
/// setgroups, and root's only group is its primary one).
#[test]
fn rootless_run_failed_setting_supplementary_group_root() {
    let Some(rl) = Rootless::new_with("groups", false) else {
        return;
    };
    let out = rl.run(None, &["run", "--rm", "--network", "none", "bb", "id"]);
    let id = assert_success("run id", &out);
    assert!(id.starts_with("uid=0(root) gid=0(root)"), "{id}");
}

// ---- published ports through the library's API alone (`-p`: tests/rootless_ports.rs) ----

const PORT_CHILD_ENV: &str = "RBUILD_TEST_PORT_CHILD";

/// Not a test by itself: `published_port_*` run it as uid 65534 in a copy of this test
/// binary. It starts a busybox httpd container on `helper`'s network with container port 80
/// published on 127.0.0.1:`port`, says `ready`, and ends it when its stdin closes.
#[test]
#[ignore = "run by the published_port tests as uid 65534"]
fn published_port_child() {
    let Ok(value) = std::env::var(PORT_CHILD_ENV) else {
        return;
    };
    let parts: Vec<&str> = value.split(',').collect();
    let [rbuild, rootfs, port] = parts[..] else {
        panic!("{PORT_CHILD_ENV}={value}");
    };
    rbuild_runtime::set_init_program(Some(PathBuf::from(rbuild)));
    let args = ["httpd", "-f", "-p", "80", "-h", "/www"];
    let mut spec = rbuild_runtime::ContainerSpec::new(
        rbuild_runtime::Rootfs::Dir(PathBuf::from(rootfs)),
        args.iter().map(|s| s.to_string()).collect(),
    );
    let forward = rbuild::network::rootless::PortForward {
        host_ip: Some(Ipv4Addr::LOCALHOST.into()),
        host_port: port.parse().unwrap(),
        container_port: 80,
        proto: rbuild::network::rootless::Protocol::Tcp,
    };
    rbuild::network::rootless::attach(&mut spec, &[forward]).unwrap();
    let container = rbuild_runtime::spawn(&spec, rbuild_runtime::Stdio::null()).unwrap();
    println!("ready");
    std::io::stdout().flush().unwrap();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    container
        .kill(nix::sys::signal::Signal::SIGKILL as i32)
        .unwrap();
    container.wait().unwrap();
}

fn published_port_through(helper: &str) {
    let Some(rl) = Rootless::new(&format!("port-{helper}")) else {
        return;
    };
    let rootfs = rl.env.path().join("rootfs");
    std::fs::create_dir(&rootfs).unwrap();
    shell(&format!(
        "tar -xf '{}' -C '{root}' && mkdir -p '{root}/www' && echo hello-published > \
         '{root}/www/index.html' && chown -R {NOBODY}:{NOBODY} '{root}'",
        common::busybox_rootfs_tar().display(),
        root = rootfs.display()
    ));
    let test_exe = rl.env.path().join("test-binary");
    std::fs::copy(std::env::current_exe().unwrap(), &test_exe).unwrap();
    let port = free_port();
    let mut child = Command::new(SETPRIV)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&test_exe)
        .args([
            "--exact",
            "published_port_child",
            "--ignored",
            "--nocapture",
        ])
        .env(
            PORT_CHILD_ENV,
            format!("{},{},{port}", rl.exe.display(), rootfs.display()),
        )
        .env("RBUILD_ROOTLESS_NETWORK", helper)
        .env("RBUILD_TEST_TAG", &rl.tag)
        .env("HOME", &rl.home)
        .current_dir(&rl.home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if lines.read_line(&mut line).unwrap() == 0 {
            panic!("the port child ended ({:?}): {seen}", child.wait());
        }
        seen.push_str(&line);
        if line == "ready\n" {
            break;
        }
    }
    assert_eq!(
        http_get((Ipv4Addr::LOCALHOST, port).into()),
        "hello-published\n"
    );
    drop(child.stdin.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}: {seen}");
    assert_eq!(rl.wait_untagged(), [], "left after the container ended");
    assert!(
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err(),
        "port {port} still forwarded"
    );
}

#[test]
fn published_port_through_pasta() {
    published_port_through("pasta");
}

#[test]
fn published_port_through_slirp4netns() {
    published_port_through("slirp4netns");
}
