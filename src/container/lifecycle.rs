//! Acting on existing containers: `rm` (and, later, stop, start, kill and the like).

use std::path::PathBuf;
use std::time::Duration;

use super::ContainerError;
use crate::store::Store;

/// `rm`: deletes a stopped container (record and dir); with `force` a running one is killed
/// (SIGKILL) first. Returns the container's ID.
pub fn remove(store: &Store, name: &str, force: bool) -> Result<String, ContainerError> {
    let record = store.resolve_container(name)?;
    if record.is_running() {
        if !force {
            return Err(ContainerError::Running(record.name));
        }
        if let Some(pid) = record.pid {
            let target = nix::unistd::Pid::from_raw(pid);
            match nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGKILL) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                Err(error) => {
                    return Err(ContainerError::Kill {
                        id: record.id,
                        error,
                    })
                }
            }
            // The overlay is mounted in the container's mount namespace: wait for it to go.
            let proc_dir = PathBuf::from(format!("/proc/{pid}"));
            for _ in 0..200 {
                if !proc_dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    store.remove_container(&record.id)?;
    Ok(record.id)
}
