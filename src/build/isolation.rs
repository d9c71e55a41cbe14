//! How RUN steps are isolated: `--isolation auto|namespaces|rootless|chroot`
//! (`RBUILD_ISOLATION`).
//!
//! - `namespaces`: the runtime's containers (root): overlayfs, new UTS/IPC/network/PID/mount
//!   namespaces, docker's capabilities and seccomp profile.
//! - `rootless`: the same in a user namespace (a non-root user; the runtime does it whenever
//!   rbuild does not run as root).
//! - `chroot`: no namespace, no mount: the step runs chrooted in a copy of its snapshots (see
//!   `rbuild_runtime::chroot` and `image::layer::treediff`); for unprivileged containers
//!   (CI jobs), where the others are impossible. The build container is the boundary.
//! - `auto` (default): the strongest the environment allows, found by a forked child trying
//!   to create the namespaces (once per process).

use std::fmt;

use super::BuildError;

/// The `--isolation` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    #[default]
    Auto,
    Namespaces,
    Rootless,
    Chroot,
}

impl std::str::FromStr for Isolation {
    type Err = BuildError;

    fn from_str(s: &str) -> Result<Isolation, BuildError> {
        match s {
            "auto" | "" => Ok(Isolation::Auto),
            "namespaces" | "oci" => Ok(Isolation::Namespaces),
            "rootless" => Ok(Isolation::Rootless),
            "chroot" => Ok(Isolation::Chroot),
            other => Err(BuildError::Invalid(format!(
                "isolation {other:?}: expected auto, namespaces, rootless or chroot"
            ))),
        }
    }
}

impl fmt::Display for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Isolation::Auto => "auto",
            Isolation::Namespaces => "namespaces",
            Isolation::Rootless => "rootless",
            Isolation::Chroot => "chroot",
        })
    }
}

/// The isolation RUN steps get, and the plain words to say once when `auto` fell back.
#[derive(Debug, Clone)]
pub(crate) struct Chosen {
    pub isolation: Isolation,
    pub fallback: Option<String>,
}

/// Resolves `requested` for this process (`auto` probes; see the module docs).
pub(crate) fn choose(requested: Isolation) -> Result<Chosen, BuildError> {
    let rootless = !nix::unistd::geteuid().is_root();
    let namespaced = if rootless {
        Isolation::Rootless
    } else {
        Isolation::Namespaces
    };
    let chosen = |isolation| {
        Ok(Chosen {
            isolation,
            fallback: None,
        })
    };
    match requested {
        Isolation::Chroot if rootless => Err(no_chroot(None)),
        Isolation::Chroot => chosen(Isolation::Chroot),
        Isolation::Namespaces | Isolation::Rootless if requested != namespaced => {
            Err(BuildError::Invalid(format!(
                "--isolation {requested}: rbuild runs as {}; use --isolation {namespaced} (or auto)",
                if rootless { "a non-root user" } else { "root" }
            )))
        }
        Isolation::Namespaces | Isolation::Rootless => chosen(requested),
        Isolation::Auto => match rbuild_runtime::chroot::namespaces_allowed(rootless) {
            Ok(()) => chosen(namespaced),
            Err(errno) if rootless => Err(no_chroot(Some(errno))),
            Err(errno) => Ok(Chosen {
                isolation: Isolation::Chroot,
                fallback: Some(format!(
                    "namespaces cannot be created here (unshare: {}; a container's default \
                     seccomp profile and capabilities forbid them): RUN steps use chroot \
                     isolation, which protects nothing outside the build container",
                    errno.desc()
                )),
            }),
        },
    }
}

fn no_chroot(errno: Option<nix::errno::Errno>) -> BuildError {
    let why = match errno {
        Some(e) => format!(
            "user namespaces cannot be created here (unshare: {}), and ",
            e.desc()
        ),
        None => String::new(),
    };
    BuildError::Invalid(format!(
        "RUN needs isolation: {why}chroot isolation needs root (CAP_SYS_CHROOT); run rbuild \
         as root inside the container (the container itself needs no privileges)"
    ))
}
