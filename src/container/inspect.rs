//! `inspect` of containers: docker's JSON shape, built in one place from the container's
//! record (state) and its runtime spec (`spec.json`: config, limits, mounts).

use rbuild_runtime::{ContainerSpec, MountKind, NetworkMode, Rlimit};
use serde_json::{json, Value};

use super::{spec_file, ContainerError};
use crate::store::{ContainerRecord, ContainerStatus, Store};

/// Docker's zero time, for a container that never started or never finished.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn rfc3339(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
        .unwrap_or_else(|| ZERO_TIME.to_string())
}

/// The `docker inspect` object of container `name` (name, ID or unique ID prefix).
pub fn inspect(store: &Store, name: &str) -> Result<Value, ContainerError> {
    // Settled: a container whose monitor died shows as exited, as in `ps`.
    let record = super::find(store, name)?;
    let spec = spec_file::load(store, &record.id)?;
    let mut value = inspect_value(&record, &spec);
    // The networks it is on, with its addresses there while it runs, as docker lists them:
    // its own (`bridge`, `none`, `host` or a user network; nothing for `container:NAME`),
    // then those `network connect` added.
    let own = value["HostConfig"]["NetworkMode"]
        .as_str()
        .filter(|n| !n.starts_with(super::network_join::PREFIX))
        .filter(|_| !record.left_own_network)
        .map(|n| (n.to_string(), record.network_extras.aliases.clone()));
    let connected = record
        .connected
        .iter()
        .map(|e| (e.network.clone(), e.aliases.clone()));
    let networks: Vec<_> = own.into_iter().chain(connected).collect();
    let settings = crate::network::connect::settings(store.root(), &record.id, &networks)?;
    // docker repeats the default bridge's endpoint at the top of NetworkSettings, where
    // scripts read `{{.NetworkSettings.IPAddress}}`.
    if let Some(bridge) = settings.get("bridge") {
        for key in ["IPAddress", "IPPrefixLen", "Gateway", "MacAddress"] {
            value["NetworkSettings"][key] = bridge[key].clone();
        }
    }
    value["NetworkSettings"]["Networks"] = settings;
    Ok(value)
}

/// The object for a record and its spec (see [`inspect`]).
pub fn inspect_value(record: &ContainerRecord, spec: &ContainerSpec) -> Value {
    let running = record.is_running();
    let status = match record.status {
        _ if running => "running",
        ContainerStatus::Created => "created",
        _ => "exited",
    };
    let started = match record.status {
        ContainerStatus::Created => ZERO_TIME.to_string(),
        _ => rfc3339(record.created),
    };
    let finished = record
        .finished
        .filter(|_| !running)
        .map_or_else(|| ZERO_TIME.to_string(), rfc3339);
    let process = &spec.process;
    let user = match (process.user.uid, process.user.gid) {
        (0, 0) => String::new(),
        (uid, gid) => format!("{uid}:{gid}"),
    };
    let r = &spec.resources;
    let memory = r.memory.unwrap_or(0);
    // docker stores twice the memory as the swap limit when only the memory is limited.
    let memory_swap = r
        .memory_swap
        .unwrap_or(if memory > 0 { 2 * memory as i64 } else { 0 });
    // The record names a network the container joins (`bridge`, a user network,
    // `container:NAME`); without one, the spec says host or none.
    let network = match (&record.network, &spec.network) {
        (Some(network), _) => network.as_str(),
        (None, NetworkMode::Host) => "host",
        (None, NetworkMode::None | NetworkMode::Private) => "none",
    };
    let mut binds = Vec::new();
    let mut mounts = Vec::new();
    let mut tmpfs = serde_json::Map::new();
    for m in &spec.mounts {
        let destination = m.destination.display().to_string();
        match &m.kind {
            MountKind::Bind { source } => {
                let source = source.display().to_string();
                let mode = if m.readonly { "ro" } else { "" };
                binds.push(if m.readonly {
                    format!("{source}:{destination}:ro")
                } else {
                    format!("{source}:{destination}")
                });
                mounts.push(json!({
                    "Type": "bind",
                    "Source": source,
                    "Destination": destination,
                    "Mode": mode,
                    "RW": !m.readonly,
                    "Propagation": "rprivate",
                }));
            }
            MountKind::Tmpfs {
                size,
                mode,
                options: extra,
            } => {
                let mut options = Vec::new();
                if let Some(size) = size {
                    options.push(format!("size={size}"));
                }
                if let Some(mode) = mode {
                    options.push(format!("mode={mode:o}"));
                }
                options.extend(extra.iter().cloned());
                tmpfs.insert(destination, Value::String(options.join(",")));
            }
        }
    }
    let ulimits: Vec<Value> = spec
        .rlimits
        .iter()
        .map(|l: &Rlimit| {
            let n = |v: u64| if v == u64::MAX { -1 } else { v as i64 };
            json!({"Name": l.resource.name(), "Soft": n(l.soft), "Hard": n(l.hard)})
        })
        .collect();
    let security_opt: Vec<&str> = match spec.seccomp {
        None => vec!["seccomp=unconfined"],
        Some(_) => Vec::new(),
    };
    let (path, args) = record
        .command
        .split_first()
        .map_or((String::new(), Vec::new()), |(p, a)| {
            (p.clone(), a.to_vec())
        });
    let mut out = json!({
        "Id": record.id,
        "Created": rfc3339(record.created),
        "Path": path,
        "Args": args,
        "State": {
            "Status": status,
            "Running": running,
            "Paused": false,
            "Restarting": false,
            "OOMKilled": record.oom_killed,
            "Dead": false,
            "Pid": if running { record.pid.unwrap_or(0) } else { 0 },
            "ExitCode": if running { 0 } else { record.exit_code.unwrap_or(0) },
            "Error": "",
            "StartedAt": started,
            "FinishedAt": finished,
        },
        "Image": record.image_id.to_string(),
        "Name": format!("/{}", record.name),
        "RestartCount": 0,
        "Driver": "overlay",
        "Platform": "linux",
        "HostConfig": {
            "Binds": binds,
            "NetworkMode": network,
            "AutoRemove": false,
            "ReadonlyRootfs": spec.readonly_rootfs,
            "Init": spec.init,
            "SecurityOpt": security_opt,
            "Privileged": spec.privileged,
            "ShmSize": spec.shm_size.unwrap_or(rbuild_runtime::DEFAULT_SHM_SIZE),
            "Tmpfs": tmpfs,
            "Memory": memory,
            "MemorySwap": memory_swap,
            "NanoCpus": r.nano_cpus.unwrap_or(0),
            "CpuShares": r.cpu_shares.unwrap_or(0),
            "PidsLimit": r.pids_max,
            "Ulimits": ulimits,
            "PortBindings": crate::network::ports::docker_ports(&record.ports),
        },
        "Mounts": mounts,
        "Config": {
            "Hostname": spec.hostname,
            "Domainname": "",
            "User": user,
            "Tty": process.terminal,
            "Env": process.env,
            "Cmd": record.command,
            "Image": record.image,
            "WorkingDir": process.cwd.display().to_string(),
            "Entrypoint": Value::Null,
            "Labels": record.labels,
        },
        "NetworkSettings": {
            "IPAddress": "",
            "IPPrefixLen": 0,
            "Gateway": "",
            "MacAddress": "",
            "Networks": {},
            "Ports": crate::network::ports::docker_ports(if running {
                &record.published_ports
            } else {
                &[]
            }),
        },
    });
    // docker's State.Health, present only for a container with a health check.
    if let Some(health) = &record.health {
        let log: Vec<Value> = health
            .log
            .iter()
            .map(|r| {
                json!({
                    "Start": r.start.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
                    "End": r.end.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
                    "ExitCode": r.exit_code,
                    "Output": r.output,
                })
            })
            .collect();
        out["State"]["Health"] = json!({
            "Status": health.status,
            "FailingStreak": health.failing_streak,
            "Log": log,
        });
    }
    out
}
