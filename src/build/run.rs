//! RUN: one container on an overlay of the parent's snapshots plus a fresh upper dir.
//!
//! Output (stdout and stderr, merged) is streamed to the progress display line by line; the
//! last lines are kept for the error message when the command fails.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use rbuild_runtime::{ContainerSpec, Io, NetworkMode, Rootfs, Stdio};

use super::layered::Layered;
use super::progress::{Progress, StepHandle};
use super::{io_err, BuildError};

/// Lines of output kept for the error of a failed RUN.
const TAIL_LINES: usize = 20;

/// A fully evaluated RUN.
#[derive(Debug, Clone)]
pub(crate) struct RunSpec {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: String,
    pub network_host: bool,
    pub mounts: Vec<rbuild_runtime::MountSpec>,
    /// Join the default network, configured for the store at this root
    /// ([`crate::network::attach_default`]); `None`: loopback only (or the host's).
    pub default_network: Option<PathBuf>,
    /// `build --add-host` entries.
    pub add_hosts: Vec<String>,
    /// `build --ulimit`: replace the runtime's default limit of the same resource.
    pub ulimits: Vec<rbuild_runtime::Rlimit>,
    /// `build --shm-size`.
    pub shm_size: Option<u64>,
}

/// Where a RUN step's root comes from.
pub(crate) enum RunRoot<'a> {
    /// An overlay of the lowers with `upper`/`work` (empty dirs on the store's filesystem;
    /// `empty` stands in for no lowers); on success the changes are in `upper`.
    Overlay {
        upper: &'a Path,
        work: &'a Path,
        empty: &'a Path,
    },
    /// Chroot isolation in a materialised copy of the lowers, changed in place.
    Chroot(&'a Path),
}

/// Runs `spec` on `lowers` in `root`. Returns the runtime's notes (what chroot isolation
/// could not provide).
pub(crate) fn execute(
    spec: &RunSpec,
    lowers: &[PathBuf],
    root: RunRoot<'_>,
    progress: &Progress,
    step: &StepHandle,
) -> Result<Vec<String>, BuildError> {
    let view = Layered { lowers };
    let user = if spec.user.is_empty() {
        rbuild_runtime::UserSpec::root()
    } else {
        rbuild_runtime::resolve_user_from(
            &view.read_to_string("/etc/passwd"),
            &view.read_to_string("/etc/group"),
            &spec.user,
        )?
    };
    // Chroot isolation has no network namespace to attach (its steps use the host's network).
    let chroot = matches!(root, RunRoot::Chroot(_));
    let rootfs = match root {
        RunRoot::Overlay { upper, work, empty } => Rootfs::Overlay {
            lowers: if lowers.is_empty() {
                vec![empty.to_path_buf()]
            } else {
                lowers.to_vec()
            },
            upper: upper.to_path_buf(),
            work: work.to_path_buf(),
        },
        RunRoot::Chroot(dir) => Rootfs::Dir(dir.to_path_buf()),
    };
    let mut container = ContainerSpec::new(rootfs, spec.args.clone());
    container.process.env = spec.env.clone();
    container.process.cwd = PathBuf::from(if spec.cwd.is_empty() { "/" } else { &spec.cwd });
    container.process.user = user;
    container.mounts = spec.mounts.clone();
    // The upper dir becomes a layer (written and fsynced as a blob) right after the step:
    // skip overlayfs's sync of it on unmount, which costs far more than the step itself.
    container.volatile_overlay = true;
    for limit in &spec.ulimits {
        crate::container::limits::override_rlimit(&mut container.rlimits, *limit);
    }
    if spec.shm_size.is_some() {
        container.shm_size = spec.shm_size;
    }
    container.network = if spec.network_host {
        NetworkMode::Host
    } else {
        NetworkMode::None
    };
    // Released (the address) after the step.
    let default_network = spec.default_network.is_some() && !spec.network_host && !chroot;
    let rootless = default_network && crate::network::rootless::applies();
    let attached = match &spec.default_network {
        Some(root) if default_network && !rootless => {
            Some(crate::network::attach_default(root, "build")?)
        }
        _ => None,
    };
    container.bridge = attached.as_ref().and_then(|a| a.attachment.clone());
    let extras = crate::network::Extras {
        add_hosts: spec.add_hosts.clone(),
        ..Default::default()
    };
    extras.apply(&mut container)?;
    if rootless {
        crate::network::rootless::attach(&mut container, &[])
            .map_err(crate::network::NetworkError::from)?;
    }
    let (reader, writer) = std::io::pipe().map_err(io_err("pipe"))?;
    let writer2 = writer.try_clone().map_err(io_err("pipe"))?;
    let stdio = Stdio {
        stdin: Io::Null,
        stdout: Io::Fd(writer.into()),
        stderr: Io::Fd(writer2.into()),
    };
    let running = match container.rootfs {
        Rootfs::Dir(_) => Running::Chroot(rbuild_runtime::chroot::spawn(&container, stdio)?),
        Rootfs::Overlay { .. } => {
            Running::Namespaced(Box::new(rbuild_runtime::spawn(&container, stdio)?))
        }
    };
    let mut tail: VecDeque<String> = VecDeque::new();
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buf);
                for line in text.trim_end_matches(['\n', '\r']).split('\r') {
                    progress.log(step, line);
                    tail.push_back(line.to_string());
                    if tail.len() > TAIL_LINES {
                        tail.pop_front();
                    }
                }
            }
        }
    }
    let (status, notes) = match running {
        Running::Namespaced(c) => (c.wait()?, Vec::new()),
        Running::Chroot(c) => {
            let notes = c.notes().to_vec();
            (c.wait()?, notes)
        }
    };
    drop(attached);
    if !status.success() {
        return Err(BuildError::RunFailed {
            command: super::progress::echo(&spec.args.join(" ")).into_owned(),
            code: status.code,
            tail: tail.into_iter().collect(),
        });
    }
    Ok(notes)
}

/// A started RUN process.
enum Running {
    Namespaced(Box<rbuild_runtime::Container>),
    Chroot(rbuild_runtime::chroot::Chroot),
}

/// Removes directories of `upper` that overlayfs only copied up (the runtime's mount points
/// under `/etc` and the like, removed again after the run): empty, not opaque, and a
/// directory with the same mode and owner in the lowers. What remains is the real change set.
pub(crate) fn prune_copy_ups(upper: &Path, lowers: &[PathBuf]) {
    fn walk(dir: &Path, rel: &mut Vec<String>, view: Layered<'_>) -> bool {
        use std::os::unix::fs::MetadataExt;
        let Ok(entries) = std::fs::read_dir(dir) else {
            return false;
        };
        let mut empty = true;
        for e in entries.flatten() {
            let path = e.path();
            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if !is_dir {
                empty = false;
                continue;
            }
            rel.push(e.file_name().to_string_lossy().into_owned());
            let child_empty = walk(&path, rel, view);
            let same_as_lower = child_empty
                && !rbuild_runtime::changes::is_opaque(&path).unwrap_or(true)
                && match (view.lookup(rel), std::fs::symlink_metadata(&path)) {
                    (Some(lower), Ok(md)) => std::fs::symlink_metadata(lower).is_ok_and(|l| {
                        l.is_dir()
                            && l.mode() == md.mode()
                            && l.uid() == md.uid()
                            && l.gid() == md.gid()
                    }),
                    _ => false,
                };
            rel.pop();
            if same_as_lower && std::fs::remove_dir(&path).is_ok() {
                continue;
            }
            empty = false;
        }
        empty
    }
    walk(upper, &mut Vec::new(), Layered { lowers });
}
