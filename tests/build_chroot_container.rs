//! rbuild inside an unprivileged container, as in CI: `podman run --rm` with podman's default
//! seccomp profile and capabilities (no `--privileged`; `--network host` only to reach the
//! registry on loopback). The image is the busybox base plus the rbuild binary and the glibc
//! libraries it links; the store is a volume (as an emptyDir in Kubernetes).
//!
//! One podman image and one test: podman costs about a second per container.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::registry::Registry;
use common::{assert_success, busybox_rootfs_tar, rbuild_bin, testdata, TestEnv};

/// `podman` with its own storage under `dir` (the host's is left alone).
fn podman(dir: &Path) -> Command {
    let mut cmd = Command::new("podman");
    cmd.arg("--root")
        .arg(dir.join("storage"))
        .arg("--runroot")
        .arg(dir.join("run"));
    cmd
}

/// Imports the test image: busybox, `/usr/local/bin/rbuild` and what `ldd` lists for it.
fn make_image(dir: &Path) -> String {
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(rootfs.join("usr/local/bin")).unwrap();
    common::ok_cmd(
        Command::new("tar")
            .arg("-xf")
            .arg(busybox_rootfs_tar())
            .arg("-C")
            .arg(&rootfs),
    );
    std::fs::copy(rbuild_bin(), rootfs.join("usr/local/bin/rbuild")).unwrap();
    let ldd = common::ok_cmd(Command::new("ldd").arg(rbuild_bin()));
    for lib in ldd.split_whitespace().filter(|w| w.starts_with('/')) {
        let dest = rootfs.join(lib.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(lib, &dest).unwrap(); // follows the symlink: the library itself
    }
    let tar = dir.join("rootfs.tar");
    common::ok_cmd(
        Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
    );
    let name = "localhost/rbuild-chroot-test:latest".to_string();
    let out = podman(dir)
        .arg("import")
        .arg(&tar)
        .arg(&name)
        .output()
        .unwrap();
    assert_success("podman import", &out);
    name
}

/// Runs `script` (sh) in a fresh container of `image` as `user`, with `/ctx` (read-only),
/// `/in` (read-only), and `store` at `/store`; returns the output.
fn run_in_container(dir: &Path, image: &str, user: &str, store: &Path, script: &str) -> Output {
    std::fs::create_dir_all(store).unwrap();
    // Writable for the non-root run too.
    std::fs::set_permissions(store, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let vol = |host: &Path, at: &str| format!("{}:{at}", host.display());
    podman(dir)
        .args(["run", "--rm", "--network", "host", "--user", user])
        .args(["-v", &vol(&testdata("chroot"), "/ctx:ro")])
        .args(["-v", &vol(&dir.join("in"), "/in:ro")])
        .args(["-v", &vol(store, "/store")])
        .args([
            "-e",
            "SOURCE_DATE_EPOCH=1700000000",
            "-e",
            "RBUILD_ROOT=/store",
        ])
        .args([image, "sh", "-c", script])
        .output()
        .unwrap()
}

/// The last line of stdout: the image ID `rbuild inspect` printed.
fn last_line(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout.lines().last().unwrap_or_default().trim().to_string()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn rbuild_builds_pushes_and_reuses_the_cache_in_an_unprivileged_container() {
    // Outside, with namespaces: the digest to match, and the base image to share.
    let outside = TestEnv::with_base("busybox:latest");
    let dir = outside.path().to_path_buf();
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("token"), "s3cret-value").unwrap();
    let base = input.join("busybox.tar");
    outside.ok(&["save", "-o", base.to_str().unwrap(), "busybox:latest"]);
    let out = outside
        .cmd()
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["build", "-q", "--isolation", "namespaces"])
        .args([
            "--secret",
            &format!("id=tok,src={}", input.join("token").display()),
        ])
        .arg(testdata("chroot"))
        .output()
        .unwrap();
    let want = assert_success("namespaced build", &out).trim().to_string();

    let image = make_image(&dir);
    let registry = Registry::plain();
    let app = format!("{}/chroot/app:1", registry.host());
    let cache = format!("type=registry,ref={}/chroot/cache:1", registry.host());
    let build = |extra: &str| {
        format!(
            "rbuild load -i /in/busybox.tar && rbuild --log-level info build --progress=plain \
             --secret id=tok,src=/in/token -t {app} --push {extra} /ctx && \
             rbuild inspect --format '{{{{.Id}}}}' {app}"
        )
    };

    // 1. Cold: auto falls back to chroot (and says so), same digest, pushed, cache exported.
    let first = run_in_container(
        &dir,
        &image,
        "0:0",
        &dir.join("store-1"),
        &build(&format!("--cache-to {cache},mode=max")),
    );
    let log = text(&first);
    assert!(first.status.success(), "{log}");
    assert!(log.contains("namespaces cannot be created here"), "{log}");
    assert!(log.contains("isolation: chroot"), "{log}");
    assert_eq!(last_line(&first), want, "digest differs:\n{log}");
    let repos = registry.catalog();
    assert!(repos.contains(&"chroot/app".to_string()), "{repos:?}");

    // 2. A fresh container and store: everything comes from the registry cache.
    let second = run_in_container(
        &dir,
        &image,
        "0:0",
        &dir.join("store-2"),
        &build(&format!("--cache-from {cache}")),
    );
    let log = text(&second);
    assert!(second.status.success(), "{log}");
    assert!(!log.contains("isolation:"), "a RUN step ran:\n{log}");
    assert_eq!(last_line(&second), want, "{log}");

    // 3. A non-root user: what is missing is said plainly.
    for f in ["busybox.tar", "token"] {
        let mode = std::os::unix::fs::PermissionsExt::from_mode(0o644);
        std::fs::set_permissions(input.join(f), mode).unwrap();
    }
    let third = run_in_container(&dir, &image, "1000:1000", &dir.join("store-3"), &build(""));
    let log = text(&third);
    assert!(!third.status.success(), "{log}");
    assert!(
        log.contains("run rbuild as root inside the container"),
        "{log}"
    );
}
