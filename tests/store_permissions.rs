//! The store is owner-only (issue 10): what containers and image layers put there (setuid
//! files, device nodes) is out of other local users' reach, checked as uid 65534 with
//! `setpriv`; a store made with open modes is fixed when opened; a non-root user inside a
//! container and a store owned by a non-root user still work.

mod common;

use std::ffi::OsStr;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{busybox_rootfs_tar, stderr, stdout, TestEnv};

const NOBODY: &str = "65534";

/// Directories that must be owner-only besides the root.
const PRIVATE_DIRS: [&str; 5] = ["snapshots", "containers", "tmp", "pool", "cache-mounts"];

/// Runs `args` as uid and gid 65534 without supplementary groups (and without capabilities
/// once `args[0]` runs).
fn as_nobody<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new("setpriv")
        .args([
            format!("--reuid={NOBODY}"),
            format!("--regid={NOBODY}"),
            "--clear-groups".to_string(),
            "--".to_string(),
        ])
        .args(args)
        .output()
        .expect("run setpriv")
}

/// A test environment whose temp dir (0700 from `tempfile`) other users may enter, so that
/// only the store's own modes stand between them and its content.
fn open_env() -> TestEnv {
    let env = TestEnv::new();
    std::fs::set_permissions(env.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    env
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .mode()
        & 0o7777
}

/// Asserts that uid 65534 reaches the store root itself (its parent is open) but gets
/// EACCES for `target` below it.
fn assert_unreachable_for_nobody(root: &Path, target: &Path) {
    let out = as_nobody(&[
        OsStr::new("stat"),
        OsStr::new("-c"),
        OsStr::new("%a"),
        root.as_os_str(),
    ]);
    assert!(out.status.success(), "control: {}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "700");
    let out = as_nobody(&[OsStr::new("stat"), target.as_os_str()]);
    assert!(
        !out.status.success(),
        "uid 65534 reached {}",
        target.display()
    );
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );
}

/// The one path `rel` under any direct subdirectory of `dir`.
fn find_below(dir: &Path, rel: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path().join(rel))
        .filter(|p| p.symlink_metadata().is_ok())
        .collect();
    assert_eq!(found.len(), 1, "{rel} under {}: {found:?}", dir.display());
    found[0].clone()
}

#[test]
fn setuid_copy_made_in_a_container_is_unreachable_for_other_users() {
    let env = open_env();
    let root = env.root();
    env.ok(&["import", busybox_rootfs_tar().to_str().unwrap(), "bb"]);
    env.ok(&[
        "run",
        "bb",
        "sh",
        "-c",
        "cp /bin/busybox /x && chmod 4755 /x",
    ]);
    let x = find_below(&root.join("containers"), "upper/x");
    // The container really left a setuid-root executable on the host.
    let md = std::fs::metadata(&x).unwrap();
    assert_eq!((md.uid(), md.mode() & 0o7777), (0, 0o4755));
    assert_unreachable_for_nobody(&root, &x);
    // (Through a shell: setpriv keeps root's capabilities until its own exec, so exec'ing
    // `x` directly would resolve the path with them.)
    let out = as_nobody(&[
        OsStr::new("sh"),
        OsStr::new("-c"),
        OsStr::new("exec \"$0\" id -u"),
        x.as_os_str(),
    ]);
    assert!(!out.status.success(), "ran it: {}", stdout(&out));
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );
    // A non-root user inside a container still reads the image and writes its own files
    // (overlayfs reaches the store's dirs with the mounter's credentials).
    let out = env.ok(&[
        "run",
        "--rm",
        "-u",
        "65534:65534",
        "bb",
        "sh",
        "-c",
        "id -u && grep -c root /etc/passwd && echo hi > /tmp/f && cat /tmp/f",
    ]);
    assert_eq!(out, "65534\n1\nhi\n");
}

/// The busybox rootfs plus a character device 1:3 (what /dev/null is) at `/devnode`.
fn tar_with_device(dest: &Path) {
    let mut input = tar::Archive::new(std::fs::File::open(busybox_rootfs_tar()).unwrap());
    let mut out = tar::Builder::new(std::fs::File::create(dest).unwrap());
    for entry in input.entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header().clone();
        out.append(&header, &mut entry).unwrap();
    }
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Char);
    header.set_path("devnode").unwrap();
    header.set_mode(0o666);
    header.set_device_major(1).unwrap();
    header.set_device_minor(3).unwrap();
    header.set_size(0);
    header.set_cksum();
    out.append(&header, std::io::empty()).unwrap();
    out.finish().unwrap();
}

#[test]
fn device_node_from_an_image_layer_is_unreachable_for_other_users() {
    let env = open_env();
    let root = env.root();
    let tar = env.path().join("dev.tar");
    tar_with_device(&tar);
    env.ok(&["import", tar.to_str().unwrap(), "dev:v1"]);
    // Running unpacks the layer into its snapshot.
    env.ok(&["run", "--rm", "dev:v1", "true"]);
    let node = find_below(&root.join("snapshots"), "devnode");
    let md = std::fs::symlink_metadata(&node).unwrap();
    assert!(md.file_type().is_char_device(), "{md:?}");
    assert_eq!(md.rdev(), makedev(1, 3));
    assert_unreachable_for_nobody(&root, &node);
    let out = as_nobody(&[OsStr::new("head"), OsStr::new("-c1"), node.as_os_str()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );
}

/// `makedev` for small numbers (glibc's encoding).
fn makedev(major: u64, minor: u64) -> u64 {
    ((major & 0xfff) << 8) | (minor & 0xff)
}

#[test]
fn old_store_with_open_modes_is_made_private_on_open() {
    let env = TestEnv::new();
    let root = env.root();
    env.ok(&["images"]);
    let private: Vec<PathBuf> = std::iter::once(root.clone())
        .chain(PRIVATE_DIRS.iter().map(|d| root.join(d)))
        .collect();
    for p in &private {
        assert_eq!(mode(p), 0o700, "{}", p.display());
    }
    // A store from before: everything 0755.
    for p in &private {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    env.ok(&["images"]);
    for p in &private {
        assert_eq!(mode(p), 0o700, "{} was not fixed", p.display());
    }
    // A store that belongs to someone else is left as it is.
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&root, Some(65534), Some(65534)).unwrap();
    env.ok(&["images"]);
    assert_eq!(mode(&root), 0o755);
    std::os::unix::fs::chown(&root, Some(0), Some(0)).unwrap();
}

#[test]
fn store_of_a_non_root_user_is_private_and_usable() {
    let env = open_env();
    // A copy of rbuild uid 65534 can surely execute (the build dir may be private).
    let exe = env.path().join("rbuild");
    std::fs::copy(common::rbuild_bin(), &exe).unwrap();
    let home = env.path().join("home");
    std::fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
    let root = home.join("store");
    let out = Command::new("setpriv")
        .args([
            format!("--reuid={NOBODY}"),
            format!("--regid={NOBODY}"),
            "--clear-groups".to_string(),
            "--".to_string(),
        ])
        .arg(&exe)
        .arg("--root")
        .arg(&root)
        .args(["images", "-q"])
        .env("HOME", &home)
        .env_remove("RBUILD_ROOT")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    for p in std::iter::once(root.clone()).chain(PRIVATE_DIRS.iter().map(|d| root.join(d))) {
        let md = std::fs::metadata(&p).unwrap();
        assert_eq!(
            (md.uid(), md.mode() & 0o7777),
            (65534, 0o700),
            "{}",
            p.display()
        );
    }
}
