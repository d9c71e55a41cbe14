//! Running a created container's process once: the one place that starts a container,
//! records it running and records how it ended. The foreground `run` and the detached
//! monitor ([`super::monitor`]) both come through here, so whatever the record learns at
//! start or exit is the same for both.

use rbuild_runtime::{Container, ContainerSpec, ExitStatus, Stdio};

use super::create::now;
use super::ContainerError;
use crate::store::{ContainerRecord, ContainerStatus, Store};

/// What one run of the process left.
#[derive(Debug)]
pub(super) struct Execution {
    pub status: ExitStatus,
    /// Problems recording the state (the run itself went fine).
    pub warnings: Vec<String>,
    /// What the container went without ([`Container::notes`]).
    pub notes: Vec<String>,
    /// The record with the exit recorded; `None` without an `id`, when it is gone (`rm -f`
    /// while it ran) or when recording failed (see `warnings`).
    pub record: Option<ContainerRecord>,
}

/// Attaches the container of `container` to its network (the address is released, and the
/// bridge removed when this was its last user, once the process ended), starts `spec` with
/// `stdio`, records it running (when `id` names a recorded container),
/// calls `announce` once the start is as good as recorded (the store's lock held for it, see
/// [`Store::change_container_announced`]), then `started` with the running container, waits
/// for it and records its exit code and time. What `started` returns is held while the
/// process runs and dropped after it ended (per-run resources: see [`super::monitor`]).
/// The caller holds the container's lease.
/// `Err` means the process never started; the record then stays as it was.
pub(super) fn execute<R>(
    store: &Store,
    container: &ContainerRecord,
    id: Option<&str>,
    spec: &ContainerSpec,
    stdio: Stdio,
    announce: impl FnOnce(),
    started: impl FnOnce(&Container) -> R,
) -> Result<Execution, ContainerError> {
    // The address lease belongs to this process (the CLI's foreground run, or the monitor).
    // Rootless, the default network is a user-mode one (pasta or slirp4netns) instead of
    // the bridge.
    let user_mode =
        container.network.as_deref() == Some("bridge") && crate::network::rootless::applies();
    let shared = container
        .network
        .as_deref()
        .and_then(|n| n.strip_prefix(super::network_join::PREFIX));
    // Its own network (eth0), then the networks `network connect` added (eth1, …).
    let joins = container.network.is_some() && shared.is_none() && !user_mode;
    let (attached, endpoints) = match joins {
        true => {
            let own = super::connect::own_network(container)
                .map(|n| (n, dns_names(container, &container.network_extras.aliases)));
            crate::network::connect::join(
                store.root(),
                own,
                &container.connected,
                &container.id,
                |e| dns_names(container, &e.aliases),
            )?
        }
        false => (None, Vec::new()),
    };
    let mut spec = spec.clone();
    spec.bridge = attached.as_ref().and_then(|a| a.attachment.clone());
    spec.extra_bridges = endpoints
        .iter()
        .filter_map(|a| a.attachment.clone())
        .collect();
    container.network_extras.apply(&mut spec)?;
    if joins {
        super::connect::configure_dns(container, &mut spec);
    }
    if let Some(target) = shared {
        super::network_join::apply(store, target, &mut spec)?;
    }
    super::links::apply(store, container, &mut spec)?;
    // Bound before the process starts: a taken port stops the start here.
    let mut published = if user_mode {
        crate::network::publish::publish_rootless(&mut spec, &container.ports)?
    } else {
        crate::network::publish::publish(&container.id, &container.ports, attached.as_ref())?
    };
    let owner = container.id.clone();
    let container = rbuild_runtime::spawn(&spec, stdio)?;
    // Rootless UDP ports are forwarded from inside the container's namespaces, which exist
    // only now; when that fails, the container is killed (its drop) before it is recorded.
    published.forward_into(container.pid())?;
    published.installed()?;
    let mut warnings = Vec::new();
    // Both changes always change the record (the status): no read first.
    let mut record = |change: &dyn Fn(&mut crate::store::ContainerRecord),
                      locked: &mut dyn FnMut()| {
        let id = id?;
        store
            .change_container_announced(id, change, locked)
            .unwrap_or_else(|e| {
                warnings.push(format!("failed to record container {id}: {e}"));
                None
            })
    };
    let pid = container.pid();
    let started_at = now();
    let mut announce = Some(announce);
    let mut announce = || announce.take().into_iter().for_each(|f| f());
    let _ = record(
        &|r| {
            r.status = ContainerStatus::Running;
            r.runner_pid = Some(std::process::id());
            r.pid = Some(pid);
            r.started = Some(started_at);
            r.exit_code = None;
            r.finished = None;
            r.published_ports = published.ports.clone();
        },
        &mut announce,
    );
    // Unrecorded (foreground `run` without a record), or the store's lock failed.
    announce();
    crate::killpoint::reached("container-started");
    let notes = container.notes().to_vec();
    let held = started(&container);
    let status = container.wait()?;
    drop(held);
    drop(published);
    drop(attached);
    drop(endpoints);
    // What `network connect` handed to this process while the container ran.
    let left = crate::network::connect::leave(&owner);
    if let Some(id) = id {
        // A `pause` on a cgroup v1 host moved the processes into a freezer group of their own.
        rbuild_runtime::remove_freezer_group(id);
    }
    let finished = now();
    let recorded = record(
        &|r| {
            r.status = ContainerStatus::Exited;
            r.exit_code = Some(status.code);
            r.oom_killed = status.oom_killed;
            r.finished = Some(finished);
            r.pid = None;
            r.paused = false;
            r.published_ports.clear();
        },
        &mut || {},
    );
    if let Err(e) = left {
        warnings.push(format!("failed to release the container's addresses: {e}"));
    }
    Ok(Execution {
        status,
        warnings,
        notes,
        record: recorded,
    })
}

/// The names a container answers to on a user network, as docker's: its name, its
/// `aliases` there (`--network-alias`, `network connect --alias`) and its short ID.
pub(super) fn dns_names(container: &ContainerRecord, aliases: &[String]) -> Vec<String> {
    let mut names = vec![container.name.clone()];
    names.extend(aliases.iter().cloned());
    names.push(container.short_id().to_string());
    names.dedup();
    names
}
