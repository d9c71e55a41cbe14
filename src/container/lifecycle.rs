//! Acting on existing containers: `stop`, `kill`, `wait`, `rename`, `rm`, `container prune`,
//! and reading a record's true state ([`settle`]).
//!
//! A container runs while some process (the foreground runner or the detached monitor)
//! holds its lease lock ([`Store::container_running`]); these commands signal the
//! container's PID 1 and then wait on that lock, never on timing.

use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::create::{now, valid_name};
use super::ContainerError;
use crate::store::{ContainerRecord, ContainerStatus, RestartPolicy, Store, StoreError};

/// `stop`'s wait before SIGKILL when neither `-t` nor `--stop-timeout` says (docker's).
pub const DEFAULT_STOP_TIMEOUT: u64 = 10;

/// The record of `name` with a runner that died (killed with its container, see
/// [`super::monitor`]) recorded as exited: exit code 137 (the container got SIGKILL), at
/// the time this was noticed. Other records come back as they are.
pub fn settle(store: &Store, record: ContainerRecord) -> Result<ContainerRecord, StoreError> {
    if record.status != ContainerStatus::Running || store.container_running(&record) {
        return Ok(record);
    }
    let runner = record.runner_pid;
    let finished = now();
    let changed = store.modify_container(&record.id, |r| {
        // Only the run that was seen dead (a new `start` records another runner).
        if r.status == ContainerStatus::Running && r.runner_pid == runner {
            r.status = ContainerStatus::Exited;
            r.exit_code = Some(128 + Signal::SIGKILL as i32);
            r.finished = Some(finished);
            r.pid = None;
        }
    })?;
    Ok(changed.unwrap_or(record))
}

/// Every record, settled ([`settle`]), newest first.
pub fn list(store: &Store) -> Result<Vec<ContainerRecord>, StoreError> {
    store
        .list_containers()?
        .into_iter()
        .map(|r| settle(store, r))
        .collect()
}

/// The settled record of container `name` (name, ID or unique ID prefix).
pub fn find(store: &Store, name: &str) -> Result<ContainerRecord, StoreError> {
    settle(store, store.resolve_container(name)?)
}

/// Parses a signal as docker does: `SIGTERM`, `TERM`, `term` or `15`.
pub fn parse_signal(value: &str) -> Result<Signal, ContainerError> {
    let bad = || ContainerError::BadSignal(value.to_string());
    if let Ok(n) = value.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let upper = value.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse().map_err(|_| bad())
}

/// Parses `--restart`: `no`, `always`, `unless-stopped`, `on-failure[:N]`.
pub fn parse_restart(value: &str) -> Result<RestartPolicy, ContainerError> {
    let bad = || ContainerError::BadRestart(value.to_string());
    Ok(match value.split_once(':') {
        None | Some((_, "")) if value.trim_end_matches(':') == "no" || value.is_empty() => {
            RestartPolicy::No
        }
        None if value == "always" => RestartPolicy::Always,
        None if value == "unless-stopped" => RestartPolicy::UnlessStopped,
        None if value == "on-failure" => RestartPolicy::OnFailure { max: 0 },
        Some(("on-failure", n)) => RestartPolicy::OnFailure {
            max: n.parse().map_err(|_| bad())?,
        },
        _ => return Err(bad()),
    })
}

/// Sends `signal` to the container's PID 1; a process already gone is not an error.
fn signal_pid1(record: &ContainerRecord, signal: Signal) -> Result<(), ContainerError> {
    let Some(pid) = record.pid else {
        return Ok(()); // between two runs of a restart policy: nothing to signal
    };
    match nix::sys::signal::kill(Pid::from_raw(pid), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(error) => Err(ContainerError::Kill {
            id: record.id.clone(),
            error,
        }),
    }
}

/// Thaws a paused container after a signal was sent to it (a frozen process acts on
/// signals, SIGKILL included, only once thawed), as docker's `stop`/`kill` do.
fn thaw_after_signal(record: &ContainerRecord) -> Result<(), ContainerError> {
    if record.paused {
        rbuild_runtime::set_frozen(&record.id, false)?;
    }
    Ok(())
}

/// `pause`: freezes every process of the running container (cgroup freezer).
pub fn pause(store: &Store, name: &str) -> Result<String, ContainerError> {
    let record = find(store, name)?;
    if !store.container_running(&record) {
        return Err(ContainerError::NotRunning(record.name));
    }
    if record.paused {
        return Err(ContainerError::Paused(record.name));
    }
    rbuild_runtime::set_frozen(&record.id, true)?;
    store.modify_container(&record.id, |r| r.paused = true)?;
    Ok(record.id)
}

/// `unpause`.
pub fn unpause(store: &Store, name: &str) -> Result<String, ContainerError> {
    let record = find(store, name)?;
    if !store.container_running(&record) || !record.paused {
        return Err(ContainerError::NotPaused(record.name));
    }
    rbuild_runtime::set_frozen(&record.id, false)?;
    store.modify_container(&record.id, |r| r.paused = false)?;
    Ok(record.id)
}

/// Marks the container stopped by the user (no restart policy brings it back), then the
/// latest record. Only a restart policy ever reads the mark (the monitor's restart
/// decision, `start --all-restartable`), and the policy is fixed when the container is
/// created: without one, `record` is returned as it is and no write transaction (4-5
/// fdatasyncs) delays `stop`, `kill` and `rm -f`.
fn mark_stopped(
    store: &Store,
    record: &ContainerRecord,
) -> Result<Option<ContainerRecord>, ContainerError> {
    if record.restart == RestartPolicy::No {
        return Ok(Some(record.clone()));
    }
    Ok(store.modify_container(&record.id, |r| r.manually_stopped = true)?)
}

/// `stop`: the container's stop signal to its PID 1, then, when it has not ended after
/// `timeout` seconds (default: its `--stop-timeout`, else 10), SIGKILL; returns when it has
/// stopped (its runner released the lease). A stopped container is left as it is; one
/// waiting for its restart policy's next run stays stopped.
pub fn stop(store: &Store, name: &str, timeout: Option<u64>) -> Result<String, ContainerError> {
    let record = find(store, name)?;
    // The lease, not the status: a monitor between two runs holds it too.
    if !store.lease_locked(&record.id) {
        return Ok(record.id);
    }
    let Some(record) = mark_stopped(store, &record)? else {
        return Ok(record.id);
    };
    let signal = parse_signal(record.stop_signal.as_deref().unwrap_or("SIGTERM"))?;
    let timeout = timeout
        .or(record.stop_timeout)
        .unwrap_or(DEFAULT_STOP_TIMEOUT);
    signal_pid1(&record, signal)?;
    thaw_after_signal(&record)?;
    if !store.wait_lease_free(&record.id, Some(Duration::from_secs(timeout))) {
        // The PID recorded now when another process may have taken the PID's place: a
        // restart, or a `start` while the poll above slept. With `-t 0` and no restart
        // policy nothing can have (the record was read a moment ago, the lease was held).
        let unchanged = timeout == 0 && record.restart == RestartPolicy::No;
        let latest = match unchanged && record.pid.is_some() {
            true => record.clone(),
            false => store.resolve_container(&record.id)?,
        };
        signal_pid1(&latest, Signal::SIGKILL)?;
        store.wait_lease_free(&record.id, None);
    }
    Ok(record.id)
}

/// `kill`: `signal` to the container's PID 1 (running containers only). Like docker, a
/// killed container is not restarted by its policy.
pub fn kill(store: &Store, name: &str, signal: Signal) -> Result<String, ContainerError> {
    let record = find(store, name)?;
    if !store.container_running(&record) {
        return Err(ContainerError::NotRunning(record.name));
    }
    let record = mark_stopped(store, &record)?.unwrap_or(record);
    signal_pid1(&record, signal)?;
    thaw_after_signal(&record)?;
    Ok(record.id)
}

/// `wait`: blocks until the container is not running, then returns its exit code.
pub fn wait(store: &Store, name: &str) -> Result<i32, ContainerError> {
    let record = find(store, name)?;
    store.wait_lease_free(&record.id, None);
    let record = match find(store, &record.id) {
        Ok(r) => r,
        // Removed once it ended (`run -d --rm`): its exit code went with it.
        Err(StoreError::NoSuchContainer(_)) => return Ok(record.exit_code.unwrap_or(0)),
        Err(e) => return Err(e.into()),
    };
    Ok(record.exit_code.unwrap_or(0))
}

/// `rename`.
pub fn rename(store: &Store, name: &str, new_name: &str) -> Result<(), ContainerError> {
    let new_name = new_name.strip_prefix('/').unwrap_or(new_name);
    if !valid_name(new_name) {
        return Err(ContainerError::BadName(new_name.to_string()));
    }
    let record = store.resolve_container(name)?;
    store.modify_container(&record.id, |r| r.name = new_name.to_string())?;
    Ok(())
}

/// `rm`: deletes a stopped container (record and dir); with `force` a running one is killed
/// (SIGKILL) first. Returns the container's ID.
pub fn remove(store: &Store, name: &str, force: bool) -> Result<String, ContainerError> {
    let record = find(store, name)?;
    if store.lease_locked(&record.id) {
        if !force {
            return Err(ContainerError::Running(record.name));
        }
        let latest = mark_stopped(store, &record)?;
        let latest = latest.as_ref().unwrap_or(&record);
        signal_pid1(latest, Signal::SIGKILL)?;
        thaw_after_signal(latest)?;
        // The overlay is mounted in the container's mount namespace: wait for it to go.
        store.wait_lease_free(&record.id, Some(Duration::from_secs(10)));
    }
    store.remove_container(&record.id)?;
    Ok(record.id)
}

/// `container prune`: removes every container that is not running; returns their IDs.
pub fn prune(store: &Store) -> Result<Vec<String>, ContainerError> {
    let mut removed = Vec::new();
    for record in list(store)? {
        if !store.container_running(&record) {
            store.remove_container(&record.id)?;
            removed.push(record.id);
        }
    }
    Ok(removed)
}

/// The containers `start --all-restartable` starts (after a reboot, nothing runs): restart
/// policy `always`; `unless-stopped` unless the user stopped it; `on-failure` when it was
/// running when the host went down (its runner died).
pub fn restartable(store: &Store) -> Result<Vec<ContainerRecord>, StoreError> {
    let mut out = Vec::new();
    for record in store.list_containers()? {
        if store.container_running(&record) {
            continue;
        }
        let was_running = record.status == ContainerStatus::Running;
        let wanted = match record.restart {
            RestartPolicy::No => false,
            RestartPolicy::Always => true,
            RestartPolicy::UnlessStopped => !record.manually_stopped,
            RestartPolicy::OnFailure { .. } => was_running && !record.manually_stopped,
        };
        if wanted {
            out.push(settle(store, record)?);
        }
    }
    Ok(out)
}
