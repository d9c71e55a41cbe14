//! Rootless networking (issue 12): rbuild run by uid 65534 gives RUN steps and containers a
//! user-mode network (pasta or slirp4netns) with no flag. They reach a server in a network
//! namespace the test creates (joined to the host by a veth pair on 198.18.x.0/30, the
//! benchmarking range; traffic stays on this machine); `--network none` cannot; the helper
//! lives exactly as long as the container, also when rbuild is killed with SIGKILL; with
//! neither helper installed the error names both packages; published ports forward through
//! pasta's options and slirp4netns's API socket.
//!
//! The store is prepared by root and handed to uid 65534 (rootless rbuild does not unpack
//! layers yet). Where this machine refuses unprivileged user namespaces or `/dev/net/tun` to
//! the user, each test prints the reason and passes without checking anything.
//!
//! (No `wget -T`: Debian 12's busybox-static crashes on it, on the host too.)
//!
//! Helper processes are recognised by an environment variable (`RBUILD_TEST_TAG`) that
//! rbuild passes on to them, so tests running at once never see each other's.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{assert_failure, assert_success, TestEnv};

const NOBODY: u32 = 65534;
/// util-linux's setpriv, by path: some commands run with a `PATH` that lacks it.
const SETPRIV: &str = "/usr/bin/setpriv";
const HELPERS: [&str; 2] = ["pasta", "slirp4netns"];

fn shell(script: &str) -> Output {
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert_success(script, &out);
    out
}

/// Why uid 65534 cannot run rootless containers here (with a user-mode network when `tun`),
/// if it cannot.
fn refusal(tun: bool) -> Option<String> {
    for helper in HELPERS {
        assert!(
            Path::new("/usr/bin").join(helper).exists(),
            "{helper} is missing: install passt and slirp4netns (.ci/setup does)"
        );
    }
    let probe = |script: &str| {
        Command::new(SETPRIV)
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .args(["sh", "-c", script])
            .output()
            .expect("run setpriv (util-linux)")
    };
    let userns = probe("unshare --user --map-root-user --net true");
    if !userns.status.success() {
        return Some(format!(
            "this kernel refuses user namespaces to uid 65534: {}",
            String::from_utf8_lossy(&userns.stderr).trim()
        ));
    }
    if tun
        && !probe("test -r /dev/net/tun -a -w /dev/net/tun")
            .status
            .success()
    {
        return Some(
            "/dev/net/tun is not read-writable by uid 65534 (udev makes it 0666; \
             .ci/setup does where there is no udev)"
                .into(),
        );
    }
    None
}

/// A store prepared by root (the busybox base as `bb`, its snapshot unpacked) and handed to
/// uid 65534, with a copy of rbuild it can execute.
struct Rootless {
    env: TestEnv,
    exe: PathBuf,
    home: PathBuf,
    tag: String,
}

impl Rootless {
    /// `None` (the reason printed) where this machine refuses what the test needs.
    fn new(test: &str) -> Option<Rootless> {
        Rootless::new_with(test, true)
    }

    /// [`Rootless::new`], where `tun`: the test needs a user-mode network.
    fn new_with(test: &str, tun: bool) -> Option<Rootless> {
        use std::os::unix::fs::PermissionsExt;
        if let Some(reason) = refusal(tun) {
            eprintln!("skipped {test}: {reason}");
            return None;
        }
        let env = TestEnv::new();
        std::fs::set_permissions(env.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        env.import_base("bb");
        env.ok(&["run", "--rm", "--network", "none", "bb", "true"]);
        let exe = env.path().join("rbuild");
        std::fs::copy(common::rbuild_bin(), &exe).unwrap();
        let home = env.path().join("home");
        std::fs::create_dir(&home).unwrap();
        shell(&format!(
            "chown -R {NOBODY}:{NOBODY} '{}' '{}'",
            env.root().display(),
            home.display()
        ));
        let tag = format!("{test}-{}", std::process::id());
        Some(Rootless {
            env,
            exe,
            home,
            tag,
        })
    }

    /// rbuild as uid 65534 on this store, with `helper` chosen (`None`: automatic).
    fn cmd(&self, helper: Option<&str>, args: &[&str]) -> Command {
        let mut cmd = Command::new(SETPRIV);
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&self.exe)
            .arg("--root")
            .arg(self.env.root())
            .args(args)
            .env_remove("RBUILD_ROOT")
            .env_remove("RBUILD_ROOTLESS_NETWORK")
            .env("HOME", &self.home)
            .env("RBUILD_TEST_TAG", &self.tag)
            .current_dir(&self.home)
            .stdin(Stdio::null());
        if let Some(helper) = helper {
            cmd.env("RBUILD_ROOTLESS_NETWORK", helper);
        }
        cmd
    }

    fn run(&self, helper: Option<&str>, args: &[&str]) -> Output {
        self.cmd(helper, args).output().unwrap()
    }

    /// A directory of uid 65534 under the home, for a build context or a volume.
    fn dir(&self, name: &str) -> PathBuf {
        let dir = self.home.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY)).unwrap();
        dir
    }

    /// Builds `dockerfile` as uid 65534 (`extra` flags before the context).
    fn build(&self, helper: Option<&str>, dockerfile: &str, extra: &[&str]) -> Output {
        let ctx = self.dir("ctx");
        std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
        let ctx = ctx.to_str().unwrap().to_string();
        let mut args = vec!["build", "--progress=plain", "--no-cache"];
        args.extend(extra);
        args.push(&ctx);
        self.run(helper, &args)
    }

    /// The processes that carry this test's tag (rbuild, container monitors, helpers), as
    /// (pid, command name).
    fn tagged(&self) -> Vec<(u32, String)> {
        let needle = format!("RBUILD_TEST_TAG={}\0", self.tag);
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
                continue;
            };
            if environ
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
            {
                let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                found.push((pid, comm.trim().to_string()));
            }
        }
        found
    }

    /// Waits up to 10 s for every tagged process to be gone; returns what is left.
    fn wait_untagged(&self) -> Vec<(u32, String)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = self.tagged();
            if left.is_empty() || Instant::now() > deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Whether command name `comm` is `helper`'s: pasta re-executes itself as `passt.avx2`
/// where the CPU has AVX2.
fn is_helper(comm: &str, helper: &str) -> bool {
    comm == helper || (helper == "pasta" && comm.starts_with("passt"))
}

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
    let running = rl.tagged();
    let helpers: Vec<_> = running
        .iter()
        .filter(|(_, c)| is_helper(c, helper))
        .collect();
    assert_eq!(helpers.len(), 1, "one {helper} while it runs: {running:?}");
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

// ---- published ports, through the library's API (the `-p` flag is not rbuild's yet) ----

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

/// GET / on 127.0.0.1:`port`, retried until the body arrives (httpd starts a moment after
/// the container's process does).
fn http_get_retrying(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let attempt = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
            let mut reply = String::new();
            s.read_to_string(&mut reply)?;
            Ok(reply)
        });
        match attempt {
            Ok(reply) if reply.contains("\r\n\r\n") => {
                return reply.split("\r\n\r\n").nth(1).unwrap_or("").to_string()
            }
            _ if Instant::now() > deadline => panic!("no answer on 127.0.0.1:{port}: {attempt:?}"),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// A free TCP port on the host's loopback (bound and released).
fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
    assert_eq!(http_get_retrying(port), "hello-published\n");
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
