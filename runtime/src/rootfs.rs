//! The container's root filesystem: overlayfs (or a bind of a plain directory), `/proc`,
//! `/sys`, a minimal `/dev`, per-container `/etc` files, `pivot_root`, and docker's masked
//! and read-only paths.

use std::ffi::CString;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};

use crate::paths::ensure_mountpoint;
use crate::spec::{ContainerSpec, Rootfs, DEFAULT_SHM_SIZE};

/// Errors of root filesystem setup.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("failed to mount {what} on {target}")]
    Mount {
        what: String,
        target: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("failed to create {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("overlay path {path} contains ':' or ',', which overlayfs options cannot express")]
    BadOverlayPath { path: PathBuf },
    #[error("failed to {step} while switching to the new root")]
    PivotRoot {
        step: &'static str,
        #[source]
        source: Errno,
    },
}

fn mount_err(what: impl Into<String>, target: &Path) -> impl FnOnce(Errno) -> RootfsError + '_ {
    let what = what.into();
    move |source| RootfsError::Mount {
        what,
        target: target.to_path_buf(),
        source,
    }
}

fn create_err(path: &Path) -> impl FnOnce(std::io::Error) -> RootfsError + '_ {
    move |source| RootfsError::Create {
        path: path.to_path_buf(),
        source,
    }
}

/// Docker's masked paths: files get `/dev/null` bound over them, directories an empty
/// read-only tmpfs.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's read-only paths.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Makes every mount in the (new) mount namespace private, so nothing propagates back.
pub(crate) fn make_private() -> Result<(), RootfsError> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(mount_err("private propagation", Path::new("/")))
}

/// Mounts the root filesystem at `target`; `rootless` adds overlayfs's `userxattr`.
pub(crate) fn mount_rootfs(
    rootfs: &Rootfs,
    target: &Path,
    empty_lower: &Path,
    rootless: bool,
    volatile: bool,
) -> Result<(), RootfsError> {
    match rootfs {
        Rootfs::Dir(dir) => mount(
            Some(dir.as_path()),
            target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(mount_err(format!("bind of {}", dir.display()), target)),
        Rootfs::Overlay {
            lowers,
            upper,
            work,
        } => {
            let mut lower_dirs: Vec<&Path> = lowers.iter().rev().map(PathBuf::as_path).collect();
            if lower_dirs.is_empty() {
                lower_dirs.push(empty_lower);
            }
            for path in lower_dirs
                .iter()
                .copied()
                .chain([upper.as_path(), work.as_path()])
            {
                let text = path.to_string_lossy();
                if text.contains(':') || text.contains(',') {
                    return Err(RootfsError::BadOverlayPath {
                        path: path.to_path_buf(),
                    });
                }
            }
            let lowerdir: Vec<String> =
                lower_dirs.iter().map(|p| p.display().to_string()).collect();
            let mut options = format!(
                "lowerdir={},upperdir={},workdir={}",
                lowerdir.join(":"),
                upper.display(),
                work.display()
            );
            if rootless {
                options.push_str(",userxattr");
            }
            // mount(2) data is limited to one page; the new mount API appends one lower at a time.
            if options.len() < 4000 {
                // Renamed directories and metadata-only copy-ups cannot be expressed in a
                // layer, so both are turned off; `volatile` skips syncs of the upper dir.
                // Kernels without these options get the plain mount.
                let strict = format!("{options},redirect_dir=off,metacopy=off");
                let mut attempts = vec![strict.clone(), options.clone()];
                if volatile {
                    attempts.insert(0, format!("{strict},volatile"));
                }
                let mut result = Err(Errno::EINVAL);
                for data in &attempts {
                    result = mount(
                        Some("overlay"),
                        target,
                        Some("overlay"),
                        MsFlags::empty(),
                        Some(data.as_str()),
                    );
                    if result != Err(Errno::EINVAL) {
                        break;
                    }
                }
                result.map_err(mount_err("overlay", target))
            } else {
                mount_overlay_fsconfig(&lower_dirs, upper, work, rootless, volatile, target)
                    .or_else(|_| {
                        // Before Linux 6.8 (no `lowerdir+`): lower paths relative to their
                        // common parent, which must then fit in a page.
                        let (common, lowerdir) = relative_lowerdir(&lower_dirs);
                        let mut options = format!(
                            "lowerdir={lowerdir},upperdir={},workdir={}",
                            upper.display(),
                            work.display()
                        );
                        if rootless {
                            options.push_str(",userxattr");
                        }
                        if options.len() >= 4096 {
                            return Err(Errno::E2BIG);
                        }
                        let previous = std::env::current_dir().map_err(|_| Errno::ENOENT)?;
                        nix::unistd::chdir(&common)?;
                        let result = mount(
                            Some("overlay"),
                            target,
                            Some("overlay"),
                            MsFlags::empty(),
                            Some(options.as_str()),
                        );
                        nix::unistd::chdir(&previous)?;
                        result
                    })
                    .map_err(mount_err("overlay (many lower directories)", target))
            }
        }
    }
}

/// The deepest directory containing every lower, and the lowers relative to it joined for
/// `lowerdir=` (topmost first, as given).
fn relative_lowerdir(lowers_top_first: &[&Path]) -> (PathBuf, String) {
    let mut common = lowers_top_first
        .first()
        .and_then(|l| l.parent())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    while !lowers_top_first.iter().all(|l| l.starts_with(&common)) {
        if !common.pop() {
            break;
        }
    }
    let relative: Vec<String> = lowers_top_first
        .iter()
        .map(|l| match l.strip_prefix(&common) {
            Ok(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
            _ => ".".to_string(),
        })
        .collect();
    (common, relative.join(":"))
}

fn cstring(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

fn path_cstring(p: &Path) -> Result<CString, Errno> {
    CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| Errno::EINVAL)
}

/// Overlay through fsopen/fsconfig/fsmount/move_mount (Linux 6.8+ for `lowerdir+`).
fn mount_overlay_fsconfig(
    lowers_top_first: &[&Path],
    upper: &Path,
    work: &Path,
    rootless: bool,
    volatile: bool,
    target: &Path,
) -> Result<(), Errno> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
    let mnt = overlay_fsmount(lowers_top_first, Some((upper, work)), rootless, volatile)?;
    let empty = cstring("");
    let target = path_cstring(target)?;
    // SAFETY: move_mount(2) reads two NUL-terminated paths; descriptors are valid.
    check_rc(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            std::os::fd::AsRawFd::as_raw_fd(&mnt),
            empty.as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    })
    .map(drop)
}

fn check_rc(rc: libc::c_long) -> Result<libc::c_long, Errno> {
    if rc < 0 {
        Err(Errno::last())
    } else {
        Ok(rc)
    }
}

/// A detached overlay mount (fsopen/fsconfig/fsmount, one `lowerdir+` per lower): attached
/// nowhere, gone when the returned descriptor is closed. Without `upper_work` the overlay
/// is read-only (then at least two lowers are needed).
pub(crate) fn overlay_fsmount(
    lowers_top_first: &[&Path],
    upper_work: Option<(&Path, &Path)>,
    rootless: bool,
    volatile: bool,
) -> Result<std::os::fd::OwnedFd, Errno> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_SET_FLAG: libc::c_uint = 0;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    const MOUNT_ATTR_RDONLY: libc::c_uint = 1;
    let check = check_rc;
    let fstype = cstring("overlay");
    // SAFETY: fsopen(2) reads a NUL-terminated filesystem name.
    let fs = check(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) })?;
    // SAFETY: `fs` is the descriptor fsopen just returned and nothing else owns it.
    let fs = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fs as i32) };
    let fd = std::os::fd::AsRawFd::as_raw_fd(&fs);
    let set = |key: &str, value: Option<&CString>| -> Result<(), Errno> {
        let key = cstring(key);
        let (cmd, value_ptr) = match value {
            Some(v) => (FSCONFIG_SET_STRING, v.as_ptr()),
            None => (FSCONFIG_SET_FLAG, std::ptr::null()),
        };
        // SAFETY: fsconfig(2) reads the NUL-terminated key and value (or null for a flag).
        check(unsafe { libc::syscall(libc::SYS_fsconfig, fd, cmd, key.as_ptr(), value_ptr, 0) })
            .map(drop)
    };
    for lower in lowers_top_first {
        set("lowerdir+", Some(&path_cstring(lower)?))?;
    }
    if let Some((upper, work)) = upper_work {
        set("upperdir", Some(&path_cstring(upper)?))?;
        set("workdir", Some(&path_cstring(work)?))?;
    }
    if rootless {
        set("userxattr", None)?;
    }
    // As for mount(2): no redirects, no metacopy; older kernels may not know the keys.
    let off = cstring("off");
    let _ = set("redirect_dir", Some(&off));
    let _ = set("metacopy", Some(&off));
    if volatile {
        let _ = set("volatile", None);
    }
    // SAFETY: FSCONFIG_CMD_CREATE takes no key or value.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fd,
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    })?;
    let attrs = if upper_work.is_none() {
        MOUNT_ATTR_RDONLY
    } else {
        0
    };
    // SAFETY: fsmount(2) on the configured context descriptor; integer flags only.
    let mnt = check(unsafe { libc::syscall(libc::SYS_fsmount, fd, FSMOUNT_CLOEXEC, attrs) })?;
    // SAFETY: `mnt` is the mount descriptor fsmount just returned.
    Ok(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(mnt as i32) })
}

/// Mounts `/proc` and `/sys` (read-only unless `privileged`, as docker) under `root`.
pub(crate) fn mount_proc_sys(
    root: &Path,
    privileged: bool,
    created: &mut Vec<PathBuf>,
) -> Result<(), RootfsError> {
    let common = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let proc_dir = ensure_mountpoint(root, Path::new("/proc"), true, created)
        .map_err(create_err(Path::new("/proc")))?;
    mount(Some("proc"), &proc_dir, Some("proc"), common, None::<&str>)
        .map_err(mount_err("proc", &proc_dir))?;
    let sys_dir = ensure_mountpoint(root, Path::new("/sys"), true, created)
        .map_err(create_err(Path::new("/sys")))?;
    let sys_flags = if privileged {
        common
    } else {
        common | MsFlags::MS_RDONLY
    };
    match mount(
        Some("sysfs"),
        &sys_dir,
        Some("sysfs"),
        sys_flags,
        None::<&str>,
    ) {
        Ok(()) => Ok(()),
        // Rootless without a network namespace of our own: sysfs cannot be mounted; bind it.
        Err(Errno::EPERM) => {
            mount(
                Some("/sys"),
                &sys_dir,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(mount_err("bind of /sys", &sys_dir))?;
            if privileged {
                return Ok(());
            }
            remount_readonly(&sys_dir)
        }
        Err(source) => Err(RootfsError::Mount {
            what: "sysfs".into(),
            target: sys_dir,
            source,
        }),
    }
}

/// The device nodes of a minimal `/dev`: (name, major, minor).
const DEVICES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// A tmpfs `/dev` with null, zero, full, random, urandom, tty, a private devpts, shm
/// (`spec.shm_size`, 64 MiB by default), mqueue and the usual symlinks; with
/// `spec.privileged` every host device node too (docker's `--privileged`), then
/// `spec.devices`. Devices are created with mknod, or bound from the host where mknod is
/// not permitted (rootless).
pub(crate) fn mount_dev(
    root: &Path,
    spec: &ContainerSpec,
    created: &mut Vec<PathBuf>,
) -> Result<(), RootfsError> {
    let dev = ensure_mountpoint(root, Path::new("/dev"), true, created)
        .map_err(create_err(Path::new("/dev")))?;
    mount(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )
    .map_err(mount_err("tmpfs", &dev))?;
    for (name, major, minor) in DEVICES {
        let host = Path::new("/dev").join(name);
        make_node(
            &dev.join(name),
            &host,
            'c',
            makedev(*major, *minor),
            0o666,
            None,
        )?;
    }
    let pts = dev.join("pts");
    std::fs::create_dir_all(&pts).map_err(create_err(&pts))?;
    let pts_flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    mount(
        Some("devpts"),
        &pts,
        Some("devpts"),
        pts_flags,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )
    .or_else(|_| {
        // gid 5 (tty) is not mapped in a rootless user namespace.
        mount(
            Some("devpts"),
            &pts,
            Some("devpts"),
            pts_flags,
            Some("newinstance,ptmxmode=0666,mode=0620"),
        )
    })
    .map_err(mount_err("devpts", &pts))?;
    let shm = dev.join("shm");
    std::fs::create_dir_all(&shm).map_err(create_err(&shm))?;
    let shm_options = format!(
        "mode=1777,size={}",
        spec.shm_size.unwrap_or(DEFAULT_SHM_SIZE)
    );
    mount(
        Some("shm"),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(shm_options.as_str()),
    )
    .map_err(mount_err("tmpfs", &shm))?;
    let mqueue = dev.join("mqueue");
    std::fs::create_dir_all(&mqueue).map_err(create_err(&mqueue))?;
    mount(
        Some("mqueue"),
        &mqueue,
        Some("mqueue"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(mount_err("mqueue", &mqueue))?;
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("core", "/proc/kcore"),
    ] {
        let path = dev.join(link);
        symlink(target, &path).map_err(create_err(&path))?;
    }
    if spec.privileged {
        copy_host_devices(Path::new("/dev"), &dev)?;
    }
    for node in &spec.devices {
        let path = crate::paths::resolve_in_root(root, &node.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(create_err(parent))?;
        }
        // A node given twice, or over one of the defaults: the last one wins.
        let _ = umount2(&path, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&path);
        make_node(
            &path,
            &node.host,
            node.kind,
            makedev(node.major, node.minor),
            node.mode,
            Some((node.uid, node.gid)),
        )?;
    }
    Ok(())
}

/// Makes device node `path` (`kind` `'c'` or `'b'`) with exactly `mode` and the owner, or,
/// where mknod is not permitted (rootless), binds `host` over an empty file there.
fn make_node(
    path: &Path,
    host: &Path,
    kind: char,
    device: u64,
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<(), RootfsError> {
    let sflag = if kind == 'b' {
        SFlag::S_IFBLK
    } else {
        SFlag::S_IFCHR
    };
    let mode = Mode::from_bits_truncate(mode & 0o7777);
    let node_err = |e: Errno| RootfsError::Create {
        path: path.to_path_buf(),
        source: e.into(),
    };
    match mknod(path, sflag, mode, device) {
        Ok(()) => {
            // mknod honours the umask; make the mode exact.
            nix::sys::stat::fchmodat(
                None,
                path,
                mode,
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            )
            .map_err(node_err)?;
            if let Some((uid, gid)) = owner {
                // An owner the user namespace does not map keeps root's ownership.
                let _ = nix::unistd::chown(
                    path,
                    Some(nix::unistd::Uid::from_raw(uid)),
                    Some(nix::unistd::Gid::from_raw(gid)),
                );
            }
            Ok(())
        }
        Err(Errno::EPERM) => {
            std::fs::File::create(path).map_err(create_err(path))?;
            mount(
                Some(host),
                path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(mount_err(format!("bind of {}", host.display()), path))
        }
        Err(source) => Err(RootfsError::Create {
            path: path.to_path_buf(),
            source: source.into(),
        }),
    }
}

/// `--privileged`: every character and block device under the host's `host` made in `dev`
/// (subdirectories too), as runc does: not the host's ptys, shm, mqueue or console, and no
/// node the container's `/dev` already has.
fn copy_host_devices(host: &Path, dev: &Path) -> Result<(), RootfsError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Ok(entries) = std::fs::read_dir(host) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if matches!(
            name.to_str(),
            Some("pts" | "shm" | "mqueue" | "console" | ".lxc" | ".lxd-mounts" | ".udev")
        ) {
            continue;
        }
        let target = dev.join(&name);
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        let kind = meta.file_type();
        if kind.is_dir() {
            std::fs::create_dir_all(&target).map_err(create_err(&target))?;
            copy_host_devices(&entry.path(), &target)?;
        } else if (kind.is_char_device() || kind.is_block_device())
            && target.symlink_metadata().is_err()
        {
            let class = if kind.is_block_device() { 'b' } else { 'c' };
            make_node(
                &target,
                &entry.path(),
                class,
                meta.rdev(),
                meta.mode(),
                Some((meta.uid(), meta.gid())),
            )?;
        }
    }
    Ok(())
}

/// Binds the per-container files (`hosts`, `hostname`, `resolv.conf` in `state`) over the
/// rootfs's `/etc/<name>`, recording mount points it had to create.
pub(crate) fn bind_etc_files(
    root: &Path,
    state: &Path,
    created: &mut Vec<PathBuf>,
) -> Result<(), RootfsError> {
    for name in ["hosts", "hostname", "resolv.conf"] {
        let dest = Path::new("/etc").join(name);
        let target = ensure_mountpoint(root, &dest, false, created).map_err(create_err(&dest))?;
        let source = state.join(name);
        mount(
            Some(source.as_path()),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(mount_err(format!("bind of {}", source.display()), &target))?;
    }
    Ok(())
}

/// Makes `root` the root directory (pivot_root, then detaches the old root).
pub(crate) fn pivot_root(root: &Path) -> Result<(), RootfsError> {
    let err = |step| move |source| RootfsError::PivotRoot { step, source };
    nix::unistd::chdir(root).map_err(err("chdir to the new root"))?;
    nix::unistd::pivot_root(".", ".").map_err(err("pivot_root"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(err("detach the old root"))?;
    nix::unistd::chdir("/").map_err(err("chdir to /"))
}

/// Remounts the bind mount or filesystem at `path` read-only, keeping its other flags
/// (locked flags such as nosuid must be kept in a user namespace).
pub(crate) fn remount_readonly(path: &Path) -> Result<(), RootfsError> {
    let current = nix::sys::statvfs::statvfs(path)
        .map(|s| s.flags())
        .map_err(mount_err("read-only remount (statvfs)", path))?;
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    use nix::sys::statvfs::FsFlags;
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if current.contains(fs) {
            flags |= ms;
        }
    }
    mount(None::<&str>, path, None::<&str>, flags, None::<&str>)
        .map_err(mount_err("read-only remount", path))
}

/// Applies docker's masked and read-only paths (after pivot_root; missing paths are skipped).
pub(crate) fn mask_paths() -> Result<(), RootfsError> {
    for path in READONLY_PATHS.iter().map(Path::new) {
        if !path.exists() {
            continue;
        }
        mount(
            Some(path),
            path,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(mount_err("bind", path))?;
        remount_readonly(path)?;
    }
    for path in MASKED_PATHS.iter().map(Path::new) {
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        let result = if meta.is_dir() {
            mount(
                Some("tmpfs"),
                path,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None::<&str>,
            )
        } else {
            mount(
                Some("/dev/null"),
                path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
        };
        result.map_err(mount_err("mask", path))?;
    }
    Ok(())
}

/// The contents of the per-container `/etc/hosts`.
pub fn hosts_file(host_network: bool, hostname: &str, extra: &[(String, String)]) -> String {
    let mut out = String::new();
    if host_network {
        out.push_str(&std::fs::read_to_string("/etc/hosts").unwrap_or_default());
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
    } else {
        out.push_str("127.0.0.1\tlocalhost\n");
        out.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
        out.push_str(&format!("127.0.1.1\t{hostname}\n"));
    }
    for (name, address) in extra {
        out.push_str(&format!("{address}\t{name}\n"));
    }
    out
}

/// The host's resolver configuration a container's is derived from: `/etc/resolv.conf`, but
/// when that names only systemd-resolved's local stub (`127.0.0.53`) and the container has
/// its own network, the upstream servers resolved itself uses
/// (`/run/systemd/resolve/resolv.conf`), as docker does.
pub fn host_resolv_conf(host_network: bool) -> String {
    let etc = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let stub = etc.lines().any(|l| {
        let mut words = l.split_whitespace();
        words.next() == Some("nameserver") && words.next() == Some("127.0.0.53")
    });
    if host_network || !stub {
        return etc;
    }
    std::fs::read_to_string("/run/systemd/resolve/resolv.conf").unwrap_or(etc)
}

/// The per-container `/etc/resolv.conf` from the host's: with the host network it is a copy;
/// otherwise loopback name servers (unreachable from another network namespace) are dropped
/// and, when none remain, Google's public servers are used, as docker does.
pub fn resolv_conf(host_network: bool, host: &str) -> String {
    if host_network {
        return host.to_string();
    }
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            let addr = words.next().unwrap_or("");
            if addr.starts_with("127.") || addr == "::1" {
                continue;
            }
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if servers == 0 {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

/// A container's `/etc/resolv.conf`: the host's ([`host_resolv_conf`], [`resolv_conf`]) with
/// `servers` and `search` over it when given ([`override_dns`]).
pub fn container_resolv_conf(host_network: bool, servers: &[String], search: &[String]) -> String {
    let host = host_resolv_conf(host_network);
    override_dns(resolv_conf(host_network, &host), servers, search)
}

/// `resolv` with its `nameserver` lines replaced by `servers` and its `search` lines by
/// `search`, when given (docker's `--dns` and `--dns-search`).
pub fn override_dns(resolv: String, servers: &[String], search: &[String]) -> String {
    if servers.is_empty() && search.is_empty() {
        return resolv;
    }
    let mut out = String::new();
    for line in resolv.lines() {
        let key = line.split_whitespace().next();
        let replaced = (key == Some("nameserver") && !servers.is_empty())
            || (key == Some("search") && !search.is_empty());
        if !replaced {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    for server in servers {
        out.push_str(&format!("nameserver {server}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_lowerdir_uses_the_common_parent() {
        let a = Path::new("/var/lib/rbuild/snapshots/aaa");
        let b = Path::new("/var/lib/rbuild/snapshots/bbb");
        let c = Path::new("/var/lib/rbuild/other/ccc");
        assert_eq!(
            relative_lowerdir(&[a, b]),
            (
                PathBuf::from("/var/lib/rbuild/snapshots"),
                "aaa:bbb".to_string()
            )
        );
        assert_eq!(
            relative_lowerdir(&[a, c]),
            (
                PathBuf::from("/var/lib/rbuild"),
                "snapshots/aaa:other/ccc".to_string()
            )
        );
        assert_eq!(
            relative_lowerdir(&[a]),
            (
                PathBuf::from("/var/lib/rbuild/snapshots"),
                "aaa".to_string()
            )
        );
    }

    #[test]
    fn resolv_conf_drops_loopback_servers() {
        let host = "search example.com\nnameserver 127.0.0.53\nnameserver 10.0.0.2\n";
        assert_eq!(
            resolv_conf(false, host),
            "search example.com\nnameserver 10.0.0.2\n"
        );
        assert_eq!(
            resolv_conf(false, "nameserver 127.0.0.1\n"),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        assert_eq!(resolv_conf(true, host), host);
    }

    #[test]
    fn dns_flags_replace_servers_and_search() {
        let host = "search a.example\nnameserver 10.0.0.2\noptions ndots:2\n";
        assert_eq!(override_dns(host.into(), &[], &[]), host);
        assert_eq!(
            override_dns(host.into(), &["192.0.2.53".into()], &["b.test".into()]),
            "options ndots:2\nsearch b.test\nnameserver 192.0.2.53\n"
        );
    }

    #[test]
    fn hosts_has_localhost_hostname_and_extras() {
        let h = hosts_file(false, "box", &[("db".into(), "10.1.2.3".into())]);
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(h.contains("127.0.1.1\tbox\n"));
        assert!(h.ends_with("10.1.2.3\tdb\n"));
    }
}
