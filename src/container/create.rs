//! Creating a container: the image and options resolved into a record, a runtime spec and a
//! leased container dir.

use std::fs;
use std::io::Read;
use std::path::PathBuf;

use rbuild_runtime::{ContainerSpec, Rootfs};

use super::{command, env, io_err, names, volumes, ContainerError, RunOptions};
use crate::store::{ContainerRecord, ContainerStatus, HeldLease, Lease, Store, StoreError};

/// Resolves the image and options into a container record (status `Created`) and a runtime
/// spec, and creates the container's dir (upper and work dirs) with its lease, held while
/// the returned [`HeldLease`] lives.
pub(super) fn create(
    store: &Store,
    options: &RunOptions,
) -> Result<(ContainerRecord, ContainerSpec, HeldLease), ContainerError> {
    if let Some(name) = &options.name {
        if !valid_name(name) {
            return Err(ContainerError::BadName(name.clone()));
        }
    }
    if let Some(dir) = &options.workdir {
        if !dir.starts_with('/') {
            return Err(ContainerError::BadWorkdir(dir.clone()));
        }
    }
    let capabilities = options.privileges.capabilities()?;
    // A tag is one point lookup in the database (a read, no fsync): the cost does not grow
    // with the number of tags in the store.
    let image = store.resolve_image(&options.image)?;
    let image_id = image.id.clone();
    let config = store.image_config(&image.id)?;
    let lowers = store.layer_snapshot_dirs(&image.layers)?;
    let cc = config.config.unwrap_or_default();
    let mut labels = cc.labels.clone().unwrap_or_default();
    labels.extend(options.labels.clone());
    let args = command::combine(
        cc.entrypoint.as_deref(),
        cc.cmd.as_deref(),
        options.entrypoint.as_deref(),
        &options.args,
    );
    if args.is_empty() {
        return Err(ContainerError::NoCommand);
    }
    let user_name = options
        .user
        .clone()
        .or_else(|| cc.user.clone())
        .unwrap_or_default();
    let user = if user_name.is_empty() {
        // Docker's default user is root with the groups /etc/group lists root in; the
        // home stays /root even in an image without /etc/passwd.
        let groups = rbuild_runtime::resolve_user_in_layers(&lowers, "")?.additional_gids;
        rbuild_runtime::UserSpec {
            additional_gids: groups,
            ..rbuild_runtime::UserSpec::root()
        }
    } else {
        rbuild_runtime::resolve_user_in_layers(&lowers, &user_name)?
    }
    .with_primary_group_supplementary();
    let id = new_id()?;
    let hostname = options
        .hostname
        .clone()
        .unwrap_or_else(|| id[..12].to_string());
    let cwd = options
        .workdir
        .clone()
        .or(cc.working_dir.clone())
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".to_string());
    let env = env::merge(
        &hostname,
        options.tty,
        cc.env.as_deref().unwrap_or_default(),
        &options.env,
    );

    let image_volumes: Vec<String> = cc
        .volumes
        .iter()
        .flatten()
        .map(|(p, _)| p.clone())
        .collect();
    let mounts = volumes::resolve(store, options, &image_volumes, &lowers)?;

    // The container dir appears with its lease, which keeps the snapshots from `rmi` and
    // the collectors, and the volumes from `volume rm`; a snapshot or volume removed before
    // that is made again.
    let lease = Lease {
        image_id: image.id.clone(),
        layers: image.layers.iter().map(|l| l.digest.clone()).collect(),
        chains: image.chain_ids(),
        recorded: options.recorded(),
        volumes: mounts.volumes.clone(),
        own_volumes: mounts.anonymous.clone(),
    };
    let leased = (|| {
        for _ in 0..3 {
            if let Some(held) = store.lease_container(&id, &lease, &["upper", "work", "empty"])? {
                return Ok(held);
            }
            store.layer_snapshot_dirs(&image.layers)?;
            volumes::ensure(store, &mounts.volumes)?;
        }
        Err(StoreError::Conflict(format!(
            "the layers of {} or its volumes keep being removed while the container starts",
            image.id.short()
        ))
        .into())
    })();
    let held = match leased {
        Ok(held) => held,
        Err(e) => {
            volumes::remove_anonymous_volumes(store, &mounts.anonymous);
            return Err(e);
        }
    };
    let dir = held.dir.clone();
    super::config::save(
        &dir,
        &super::config::container_config(&cc, options, &labels),
    )?;
    let upper = dir.join("upper");
    let work = dir.join("work");
    let lowers = if lowers.is_empty() {
        // An image without layers: overlayfs needs at least one lower dir.
        vec![dir.join("empty")]
    } else {
        lowers
    };
    let mut spec = ContainerSpec::new(
        Rootfs::Overlay {
            lowers,
            upper,
            work,
        },
        args.clone(),
    );
    spec.process.env = env;
    spec.process.cwd = PathBuf::from(cwd);
    spec.process.user = user;
    spec.process.terminal = options.tty;
    spec.hostname = hostname;
    spec.network = options.network;
    spec.init = options.init;
    spec.readonly_rootfs = options.read_only;
    spec.mounts = mounts.mounts;
    spec.seccomp = options.seccomp.clone();
    spec.resources = options.resources.clone();
    options.privileges.apply(&mut spec, capabilities);
    spec.rlimits = options.rlimits.clone();
    // The container's cgroup is rbuild/<id>.
    spec.id = Some(id.clone());
    // A --rm container's upper dir is deleted right after: no need to sync it.
    spec.volatile_overlay = options.remove;

    let record = ContainerRecord {
        name: options.name.clone().unwrap_or_else(|| id[..12].to_string()),
        id,
        image: options.image.clone(),
        image_id,
        command: args,
        created: now(),
        status: ContainerStatus::Created,
        exit_code: None,
        finished: None,
        runner_pid: None,
        pid: None,
        labels,
        started: None,
        restart: options.restart,
        restart_count: 0,
        manually_stopped: false,
        auto_remove: options.remove && options.detach,
        stop_signal: options.stop_signal.clone().or(cc.stop_signal.clone()),
        stop_timeout: options.stop_timeout,
        anonymous_volumes: mounts.anonymous,
        paused: false,
        healthcheck: super::health::resolve(cc.healthcheck.as_ref(), &options.health),
        health: None,
        oom_killed: false,
        network: options.attach_network.clone(),
        network_extras: options.network_extras.clone(),
        ports: crate::network::ports::requested(
            &options.ports,
            options.publish_all,
            cc.exposed_ports.iter().flatten().map(|(p, _)| p.as_str()),
        )
        .map_err(crate::network::NetworkError::from)?,
        published_ports: Vec::new(),
        connected: Vec::new(),
        open_stdin: options.interactive,
        left_own_network: false,
    };
    Ok((record, spec, held))
}

pub(super) fn random_bytes<const N: usize>() -> Result<[u8; N], ContainerError> {
    let mut bytes = [0u8; N];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(io_err("/dev/urandom"))?;
    Ok(bytes)
}

/// A new random container ID: 64 hex digits.
fn new_id() -> Result<String, ContainerError> {
    Ok(hex::encode(random_bytes::<32>()?))
}

/// Records a new container; one run without `--name` gets a generated name not in use.
pub(super) fn add_record(
    store: &Store,
    record: &mut ContainerRecord,
    named: bool,
) -> Result<(), ContainerError> {
    if named {
        return Ok(store.add_container(record)?);
    }
    let random = || random_bytes::<8>().map(u64::from_le_bytes);
    names::claim(random, |name| {
        record.name = name.to_string();
        store.add_container(record)
    })?;
    Ok(())
}

pub(super) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub(super) fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("web-1.a_b"));
        assert!(!valid_name(""));
        assert!(!valid_name("-x"));
        assert!(!valid_name("a/b"));
    }
}
