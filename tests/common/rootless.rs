//! Rootless rbuild for the tests: uid 65534 runs a copy of rbuild (through util-linux's
//! `setpriv`) on a store that root prepared (the busybox base as `bb`, its snapshot
//! unpacked) and handed over; rootless rbuild does not unpack layers yet. Where this machine
//! refuses unprivileged user namespaces or `/dev/net/tun` to the user, [`Rootless::new`]
//! prints the reason and gives `None`, and the test passes without checking anything.
//!
//! Processes are recognised by an environment variable (`RBUILD_TEST_TAG`) that rbuild
//! passes on to its monitors and network helpers, so tests running at once never see each
//! other's.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{assert_success, TestEnv};

pub const NOBODY: u32 = 65534;
/// util-linux's setpriv, by path: some commands run with a `PATH` that lacks it.
pub const SETPRIV: &str = "/usr/bin/setpriv";
pub const HELPERS: [&str; 2] = ["pasta", "slirp4netns"];

pub fn shell(script: &str) -> Output {
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert_success(script, &out);
    out
}

/// Why uid 65534 cannot run rootless containers here (with a user-mode network when `tun`),
/// if it cannot.
pub fn refusal(tun: bool) -> Option<String> {
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
pub struct Rootless {
    pub env: TestEnv,
    pub exe: PathBuf,
    pub home: PathBuf,
    pub tag: String,
}

impl Rootless {
    /// `None` (the reason printed) where this machine refuses what the test needs.
    pub fn new(test: &str) -> Option<Rootless> {
        Rootless::new_with(test, true)
    }

    /// [`Rootless::new`], where `tun`: the test needs a user-mode network.
    pub fn new_with(test: &str, tun: bool) -> Option<Rootless> {
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
        std::fs::copy(super::rbuild_bin(), &exe).unwrap();
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
    pub fn cmd(&self, helper: Option<&str>, args: &[&str]) -> Command {
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

    pub fn run(&self, helper: Option<&str>, args: &[&str]) -> Output {
        self.cmd(helper, args).output().unwrap()
    }

    /// A directory of uid 65534 under the home, for a build context or a volume.
    pub fn dir(&self, name: &str) -> PathBuf {
        let dir = self.home.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY)).unwrap();
        dir
    }

    /// Builds `dockerfile` as uid 65534 (`extra` flags before the context).
    pub fn build(&self, helper: Option<&str>, dockerfile: &str, extra: &[&str]) -> Output {
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
    pub fn tagged(&self) -> Vec<(u32, String)> {
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
    pub fn wait_untagged(&self) -> Vec<(u32, String)> {
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
pub fn is_helper(comm: &str, helper: &str) -> bool {
    comm == helper || (helper == "pasta" && comm.starts_with("passt"))
}

impl Rootless {
    /// The tagged processes that are `helper` (see [`is_helper`]), without the short-lived
    /// children a helper forks to do work in the container's namespace (pasta does, for its
    /// spliced TCP sockets): those have a helper as parent.
    pub fn helpers(&self, helper: &str) -> Vec<(u32, String)> {
        let helpers: Vec<(u32, String)> = self
            .tagged()
            .into_iter()
            .filter(|(_, comm)| is_helper(comm, helper))
            .collect();
        let parent = |pid: u32| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // After the command's name in parentheses: state, then the parent's PID.
            stat.rsplit_once(") ")
                .and_then(|(_, rest)| rest.split(' ').nth(1)?.parse::<u32>().ok())
        };
        helpers
            .iter()
            .filter(|(pid, _)| !parent(*pid).is_some_and(|p| helpers.iter().any(|(h, _)| *h == p)))
            .cloned()
            .collect()
    }
}

impl Drop for Rootless {
    /// A failed test must not leave its containers (monitors, helpers, forwarders) running.
    fn drop(&mut self) {
        for (pid, _) in self.tagged() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}
