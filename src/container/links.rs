//! docker's legacy links (`--link NAME[:ALIAS]`, the default bridge only): at each start, the
//! linked container's address goes into `/etc/hosts` under the alias, its name and short ID,
//! and its ports and environment into the linking container's environment, with docker's
//! names:
//!
//! - `ALIAS_NAME=/<this container>/<alias>`;
//! - per port the linked image EXPOSEs (`80/tcp`): `ALIAS_PORT_80_TCP=tcp://ADDR:80` and its
//!   parts `…_ADDR`, `…_PORT`, `…_PROTO`; `ALIAS_PORT` is the lowest port's URL;
//! - `ALIAS_ENV_<KEY>=<value>` for each ENV of the linked container (image ENV and `-e`),
//!   `HOME` and `PATH` left out;
//!
//! where `ALIAS` is the alias in upper case with `-` as `_`. A variable the container sets
//! itself wins. The linked container must be running (docker refuses a link to a stopped
//! one too); the values are those of this start, as docker's.

use rbuild_runtime::ContainerSpec;

use super::{config, ContainerError};
use crate::store::{ContainerRecord, Store};

/// Adds the hosts entries and variables of `container`'s links to `spec`.
pub(super) fn apply(
    store: &Store,
    container: &ContainerRecord,
    spec: &mut ContainerSpec,
) -> Result<(), ContainerError> {
    for link in &container.network_extras.links {
        let (name, alias) = link.split_once(':').unwrap_or((link, link));
        let target = store.resolve_container(name)?;
        let not_running = || {
            ContainerError::StartFailed(format!(
                "cannot link to a non running container: /{} AS /{}/{alias}",
                target.name, container.name
            ))
        };
        if !store.container_running(&target) {
            return Err(not_running());
        }
        let address = crate::network::default_bridge_address(store.root(), &target.id)?
            .ok_or_else(not_running)?;
        let mut names = vec![alias.to_string(), target.short_id().to_string()];
        if target.name != alias {
            names.push(target.name.clone());
        }
        spec.extra_hosts
            .push((names.join(" "), address.to_string()));
        let target_config = config::load(store, &target.id)?.unwrap_or_default();
        let ports: Vec<String> = target_config
            .exposed_ports
            .map(|p| p.into_keys().collect())
            .unwrap_or_default();
        let vars = link_env(
            &container.name,
            alias,
            &address.to_string(),
            &ports,
            &target_config.env.unwrap_or_default(),
        );
        for var in vars {
            let key = var.split('=').next().unwrap_or("");
            let set = spec
                .process
                .env
                .iter()
                .any(|e| e.split('=').next() == Some(key));
            if !set {
                spec.process.env.push(var);
            }
        }
    }
    Ok(())
}

/// The variables of one link (see the module docs). `ports` as the image lists them
/// (`80/tcp`, `53/udp`, `8080` meaning tcp), `env` as `KEY=value`.
fn link_env(
    container: &str,
    alias: &str,
    address: &str,
    ports: &[String],
    env: &[String],
) -> Vec<String> {
    let prefix = alias.to_ascii_uppercase().replace('-', "_");
    let mut vars = vec![format!("{prefix}_NAME=/{container}/{alias}")];
    let mut ports: Vec<(u16, String)> = ports
        .iter()
        .filter_map(|p| {
            let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            Some((port.parse().ok()?, proto.to_ascii_lowercase()))
        })
        .collect();
    ports.sort();
    if let Some((port, proto)) = ports.first() {
        vars.push(format!("{prefix}_PORT={proto}://{address}:{port}"));
    }
    for (port, proto) in &ports {
        let var = format!("{prefix}_PORT_{port}_{}", proto.to_ascii_uppercase());
        vars.push(format!("{var}={proto}://{address}:{port}"));
        vars.push(format!("{var}_ADDR={address}"));
        vars.push(format!("{var}_PORT={port}"));
        vars.push(format!("{var}_PROTO={proto}"));
    }
    for entry in env {
        let Some((key, value)) = entry.split_once('=') else {
            continue;
        };
        if key != "HOME" && key != "PATH" {
            vars.push(format!("{prefix}_ENV_{key}={value}"));
        }
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_link_variables() {
        let vars = link_env(
            "web",
            "my-db",
            "10.88.0.5",
            &["5432/tcp".into(), "53/udp".into()],
            &["PATH=/bin".into(), "PGUSER=admin".into(), "EMPTY=".into()],
        );
        assert_eq!(
            vars,
            [
                "MY_DB_NAME=/web/my-db",
                "MY_DB_PORT=udp://10.88.0.5:53",
                "MY_DB_PORT_53_UDP=udp://10.88.0.5:53",
                "MY_DB_PORT_53_UDP_ADDR=10.88.0.5",
                "MY_DB_PORT_53_UDP_PORT=53",
                "MY_DB_PORT_53_UDP_PROTO=udp",
                "MY_DB_PORT_5432_TCP=tcp://10.88.0.5:5432",
                "MY_DB_PORT_5432_TCP_ADDR=10.88.0.5",
                "MY_DB_PORT_5432_TCP_PORT=5432",
                "MY_DB_PORT_5432_TCP_PROTO=tcp",
                "MY_DB_ENV_PGUSER=admin",
                "MY_DB_ENV_EMPTY=",
            ]
        );
    }
}
