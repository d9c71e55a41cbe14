//! Build flags CI uses (issue 14): `--no-cache-filter`.

mod build_support;

use build_support::{path_str, BuildEnv};

/// `--no-cache-filter STAGE` re-runs that stage's steps (by name or index) and no other's;
/// what it ran is cached again for the next build.
#[test]
fn no_cache_filter_reruns_only_the_named_stage() {
    let b = BuildEnv::new();
    let ctx = b.context(
        "ncf",
        &[(
            "Dockerfile",
            "FROM busybox AS First\nRUN cat /proc/sys/kernel/random/uuid > /first\n\
             FROM busybox AS second\nCOPY --from=first /first /first\nRUN cat /proc/sys/kernel/random/uuid > /second\n",
        )],
    );
    let stamps = |tag: &str| {
        (
            b.image_file(tag, "/first").unwrap(),
            b.image_file(tag, "/second").unwrap(),
        )
    };
    b.build(&["-t", "a", path_str(&ctx)]);
    let a = stamps("a");
    b.build(&["-t", "b", "--no-cache-filter", "second", path_str(&ctx)]);
    let bb = stamps("b");
    assert_eq!(a.0, bb.0, "stage first stays cached");
    assert_ne!(a.1, bb.1, "stage second re-ran");
    b.build(&["-t", "c", "--no-cache-filter", "FIRST", path_str(&ctx)]);
    let c = stamps("c");
    assert_ne!(bb.0, c.0, "stage first re-ran (name matched without case)");
    assert_ne!(
        bb.1, c.1,
        "second depends on the new /first, so its key changed"
    );
    b.build(&["-t", "d", path_str(&ctx)]);
    assert_eq!(c, stamps("d"), "a filtered build's results are cached");
    b.build(&["-t", "e", "--no-cache-filter", "1", path_str(&ctx)]);
    let e = stamps("e");
    assert_eq!(c.0, e.0, "index 1 is stage second only");
    assert_ne!(c.1, e.1);
}

/// `--provenance`/`--sbom` are accepted (as CI scripts pass them to BuildKit); asking for one
/// says at info level that none is attached.
#[test]
fn provenance_and_sbom_flags_are_accepted() {
    let b = BuildEnv::new();
    let ctx = b.context("prov", &[("Dockerfile", "FROM busybox\nLABEL a=b\n")]);
    b.build(&["--provenance=false", "--sbom=false", path_str(&ctx)]);
    let out = b
        .env
        .cmd()
        .args([
            "--log-level",
            "info",
            "build",
            "--provenance=mode=max",
            "--sbom=true",
        ])
        .arg(&ctx)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--provenance=mode=max: rbuild does not produce attestations"),
        "{err}"
    );
    assert!(err.contains("--sbom=true"), "{err}");
}

/// A real `ssh-agent` on a socket in `dir`, holding one new ed25519 key with comment
/// `comment`; killed when dropped.
struct Agent {
    child: std::process::Child,
    socket: std::path::PathBuf,
}

impl Agent {
    fn start(dir: &std::path::Path, comment: &str) -> Agent {
        use std::process::Command;
        std::fs::create_dir_all(dir).unwrap();
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("ssh-agent (Debian openssh-client)");
        let agent = Agent { child, socket };
        let start = std::time::Instant::now();
        while std::os::unix::net::UnixStream::connect(&agent.socket).is_err() {
            assert!(start.elapsed().as_secs() < 20, "ssh-agent did not start");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let key = dir.join("id_ed25519");
        build_support::ok_cmd(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
                .arg(&key),
        );
        build_support::ok_cmd(
            Command::new("ssh-add")
                .arg(&key)
                .env("SSH_AUTH_SOCK", &agent.socket),
        );
        agent
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `--ssh default` with `RUN --mount=type=ssh`: the step reaches the agent through
/// `SSH_AUTH_SOCK=/run/buildkit/ssh_agent.0` (the host's `ssh-add -l` lists its key); the
/// socket is in no layer, and another agent socket path keeps the step cached (the path is
/// not in the key). A `required=true` mount without `--ssh` fails.
#[test]
fn ssh_agent_forwarded_into_run_and_absent_from_the_layer() {
    let b = BuildEnv::new();
    let ctx = b.context(
        "ssh",
        &[(
            "Dockerfile",
            "FROM busybox\n\
             RUN --mount=type=bind,source=k,target=/k --mount=type=ssh \
             echo \"$SSH_AUTH_SOCK\" > /sock && test -S \"$SSH_AUTH_SOCK\" && \
             $SSH_ADD -l > /keys\n",
        )],
    );
    let ssh_add = build_support::host_tool_bundle(
        std::path::Path::new("/usr/bin/ssh-add"),
        "openssh-client",
        &ctx.join("k"),
        "/k",
    )
    .join(" ");
    let df = std::fs::read_to_string(ctx.join("Dockerfile"))
        .unwrap()
        .replace("$SSH_ADD", &ssh_add);
    std::fs::write(ctx.join("Dockerfile"), df).unwrap();
    let agent = Agent::start(&b.env.path().join("agent1"), "rbuild-test-key");
    let out = b
        .env
        .cmd()
        .args(["build", "--progress=plain", "-t", "s", "--ssh", "default"])
        .arg(&ctx)
        .env("SSH_AUTH_SOCK", &agent.socket)
        .output()
        .unwrap();
    build_support::assert_success("build --ssh default", &out);
    assert_eq!(
        b.image_file("s", "/sock").unwrap().trim(),
        "/run/buildkit/ssh_agent.0"
    );
    let keys = b.image_file("s", "/keys").unwrap();
    assert!(
        keys.contains("rbuild-test-key") && keys.contains("ED25519"),
        "{keys}"
    );
    assert!(b.image_path("s", "/run/buildkit").is_none());
    assert!(b.image_path("s", "/k").is_none());

    let other = Agent::start(&b.env.path().join("agent2"), "other-key");
    let spec = format!("default={}", other.socket.display());
    let progress = b.build(&["-t", "s2", "--ssh", &spec, path_str(&ctx)]);
    assert!(
        build_support::cached_steps(&progress)
            .iter()
            .any(|s| s.contains("RUN --mount=type=bind")),
        "the RUN stays cached: {progress}"
    );

    let req = b.context(
        "ssh-req",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN --mount=type=ssh,required=true true\n",
        )],
    );
    let err = b.build_fails(&[path_str(&req)]);
    assert!(err.contains("ssh agent default is required"), "{err}");
    let err = b.build_fails(&["--ssh", "default=/nonexistent.sock", path_str(&req)]);
    assert!(err.contains("no ssh-agent answers"), "{err}");
}

/// `--build-context NAME=DIR|docker-image://REF`: `COPY --from=NAME` reads the directory,
/// `FROM NAME` starts from it (or from the image REF, never pulling an image called NAME);
/// an unchanged directory keeps the steps after it cached; the named context overrides a
/// Dockerfile stage of the same name (BuildKit's rule).
#[test]
fn build_context_dir_and_docker_image() {
    let b = BuildEnv::new();
    let extra = b.context("extra", &[("hello.txt", "from the named context\n")]);
    let ctx = b.context(
        "bc",
        &[
            (
                "Dockerfile",
                "FROM base\nCOPY --from=extra hello.txt /hello.txt\nRUN cat /hello.txt > /copied\n",
            ),
            ("Dockerfile.dir", "FROM extra\nCOPY Dockerfile /df\n"),
            (
                "Dockerfile.stage",
                "FROM busybox AS extra\nRUN echo stage > /hello.txt\nFROM busybox\nCOPY --from=extra /hello.txt /h\n",
            ),
        ],
    );
    let extra_spec = format!("extra={}", extra.display());
    let args = [
        "-t",
        "bc",
        "--build-context",
        "base=docker-image://busybox:latest",
        "--build-context",
        &extra_spec,
        path_str(&ctx),
    ];
    b.build(&args);
    assert_eq!(
        b.image_file("bc", "/copied").unwrap(),
        "from the named context\n"
    );
    let progress = b.build(&args);
    let cached = build_support::cached_steps(&progress);
    assert!(
        cached.iter().any(|s| s.contains("RUN cat")),
        "an unchanged directory keeps later steps cached: {progress}"
    );

    let df = ctx.join("Dockerfile.dir");
    b.build(&[
        "-t",
        "fromdir",
        "-f",
        path_str(&df),
        "--build-context",
        &extra_spec,
        path_str(&ctx),
    ]);
    assert_eq!(
        b.image_file("fromdir", "/hello.txt").unwrap(),
        "from the named context\n"
    );
    assert!(b.image_file("fromdir", "/df").is_some());
    assert!(
        b.image_path("fromdir", "/bin/busybox").is_none(),
        "the directory is the whole root"
    );

    let df = ctx.join("Dockerfile.stage");
    b.build(&[
        "-t",
        "stage",
        "-f",
        path_str(&df),
        "--build-context",
        &extra_spec,
        path_str(&ctx),
    ]);
    assert_eq!(
        b.image_file("stage", "/h").unwrap(),
        "from the named context\n",
        "the context overrides stage extra"
    );

    let err = b.build_fails(&["--build-context", "x=foo:///l", path_str(&ctx)]);
    assert!(err.contains("not supported"), "{err}");
    // oci-layout:// is read since (tests/build_oci_layout_context.rs): a missing one is named.
    let err = b.build_fails(&["--build-context", "x=oci-layout:///l", path_str(&ctx)]);
    assert!(err.contains("/l: no such directory"), "{err}");
}

/// `build --ulimit` and `--shm-size` reach RUN steps (as BuildKit's), and are not part of the
/// cache key: the same Dockerfile with other values is a cache hit, as with BuildKit.
#[test]
fn build_ulimit_and_shm_size_reach_run_steps() {
    let b = BuildEnv::new();
    let ctx = b.context(
        "limits",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN ulimit -n > /nofile && ulimit -Hn > /nofile_hard && \
             df -k /dev/shm | tail -n 1 | awk '{print $2}' > /shm\n",
        )],
    );
    b.build(&[
        "-t",
        "lim",
        "--ulimit",
        "nofile=512:768",
        "--shm-size",
        "32m",
        path_str(&ctx),
    ]);
    let file = |name: &str| b.image_file("lim", name).unwrap();
    assert_eq!(file("/nofile").trim(), "512");
    assert_eq!(file("/nofile_hard").trim(), "768");
    assert_eq!(file("/shm").trim(), (32 * 1024).to_string());
    // Without the flags the step would see other values; with a cache hit it keeps these.
    b.build(&["-t", "lim2", path_str(&ctx)]);
    assert_eq!(
        b.image_file("lim2", "/nofile").unwrap(),
        b.image_file("lim", "/nofile").unwrap(),
        "cache hit"
    );
    let bad = b
        .env
        .cmd()
        .args(["build", "--ulimit", "nofile", path_str(&ctx)])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--ulimit"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let bad = b
        .env
        .cmd()
        .args(["build", "--shm-size", "lots", path_str(&ctx)])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--shm-size"));
}
