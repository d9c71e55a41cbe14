//! The crate error: every module's error, plus failures reported from inside the container.

use crate::capabilities::CapabilityError;
use crate::cgroup::CgroupError;
use crate::mounts::MountError;
use crate::namespaces::NamespaceError;
use crate::network::NetworkError;
use crate::process::ProcessError;
use crate::rootfs::RootfsError;
use crate::seccomp::SeccompError;
use crate::user::UserError;

/// Any error of the runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("invalid container spec: {0}")]
    InvalidSpec(String),
    /// Container setup failed inside the container's processes; the message carries the
    /// whole cause chain (`failed to mount overlay on ...: EINVAL: Invalid argument`).
    #[error("container setup failed: {0}")]
    Setup(String),
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error(transparent)]
    Capability(#[from] CapabilityError),
    #[error(transparent)]
    User(#[from] UserError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Network(#[from] NetworkError),
}
