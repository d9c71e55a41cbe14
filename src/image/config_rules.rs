//! The image config rules: the one place where ENV, CMD, ENTRYPOINT, LABEL, EXPOSE, VOLUME,
//! USER, WORKDIR, STOPSIGNAL, SHELL, HEALTHCHECK, ONBUILD and MAINTAINER change an image
//! config.
//!
//! The values arrive typed and already expanded: the Dockerfile frontend (`build`) and the
//! `-c` changes of `import` turn text into [`ConfigChange`]s; no Dockerfile syntax is read
//! here. Both then get the same results (EXPOSE ranges and validation, ENTRYPOINT clearing an
//! inherited CMD, WORKDIR made absolute and cleaned), so they cannot drift apart.

use std::collections::BTreeMap;

use super::oci::{ContainerConfig, Healthcheck, ImageConfig};

/// The shell a shell-form command runs with when the config names none.
pub const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// A change that the config rules refuse.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// An EXPOSE word that is not `port[-port][/tcp|udp|sctp]` with ports 1-65535.
    #[error("invalid EXPOSE port {0:?}")]
    Port(String),
    /// `VOLUME ""`.
    #[error("VOLUME specified can not be an empty string")]
    EmptyVolume,
}

/// A command as written: exec form, or shell form (run with the config's `Shell`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandForm {
    /// `["prog", "arg"]`
    Exec(Vec<String>),
    /// `prog arg`
    Shell(String),
}

/// One change to an image config, with expanded values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    /// ENV pairs, in order.
    Env(Vec<(String, String)>),
    /// LABEL pairs, in order.
    Label(Vec<(String, String)>),
    Cmd(CommandForm),
    Entrypoint(CommandForm),
    /// EXPOSE words: `80`, `53/udp`, `8000-8002/tcp`.
    Expose(Vec<String>),
    Volume(Vec<String>),
    User(String),
    /// WORKDIR, absolute or relative to the current one.
    Workdir(String),
    StopSignal(String),
    Shell(Vec<String>),
    Healthcheck(Healthcheck),
    /// An ONBUILD trigger, as written after `ONBUILD `.
    OnBuild(String),
    Maintainer(String),
}

/// Applies changes to one image config, in order.
///
/// It remembers whether CMD was set by its changes: ENTRYPOINT clears a CMD inherited from the
/// base image (docker's rule for a Dockerfile stage and for `commit`/`import -c`), but not one
/// set before it by the same stage or change list.
#[derive(Debug, Clone, Default)]
pub struct ConfigEditor {
    cmd_set: bool,
}

impl ConfigEditor {
    /// Applies `change` to `image` and returns the history text docker writes for it.
    /// The change is taken by value: a huge LABEL moves into the config without a copy.
    pub fn apply(
        &mut self,
        image: &mut ImageConfig,
        change: ConfigChange,
    ) -> Result<String, ConfigError> {
        if let ConfigChange::Maintainer(name) = change {
            let history = format!("MAINTAINER {name}");
            image.author = Some(name);
            return Ok(history);
        }
        let config = image.config.get_or_insert_with(ContainerConfig::default);
        self.apply_container(config, change)
    }

    fn apply_container(
        &mut self,
        config: &mut ContainerConfig,
        change: ConfigChange,
    ) -> Result<String, ConfigError> {
        let json = |v: &[String]| serde_json::to_string(v).unwrap_or_default();
        Ok(match change {
            ConfigChange::Env(pairs) => {
                let env = config.env.get_or_insert_with(Vec::new);
                let mut history = String::from("ENV");
                for (key, value) in pairs {
                    history.push_str(&format!(" {key}={value}"));
                    set_env(env, &key, &value);
                }
                history
            }
            ConfigChange::Label(pairs) => {
                // Written straight into the history text: no per-label copies to join.
                let mut history = String::from("LABEL");
                let labels = config.labels.get_or_insert_with(BTreeMap::new);
                for (key, value) in pairs {
                    history.reserve(key.len() + value.len() + 2);
                    for part in [" ", &key, "=", &value] {
                        history.push_str(part);
                    }
                    labels.insert(key, value);
                }
                history
            }
            ConfigChange::Cmd(command) => {
                let v = command_vec(Some(config), command);
                let history = format!("CMD {}", json(&v));
                config.cmd = Some(v);
                self.cmd_set = true;
                history
            }
            ConfigChange::Entrypoint(command) => {
                let v = command_vec(Some(config), command);
                let history = format!("ENTRYPOINT {}", json(&v));
                config.entrypoint = Some(v);
                if !self.cmd_set {
                    config.cmd = None;
                }
                history
            }
            ConfigChange::Expose(words) => {
                let mut done = Vec::new();
                for word in &words {
                    done.extend(expose_ports(word)?);
                }
                let ports = config.exposed_ports.get_or_insert_with(BTreeMap::new);
                for p in &done {
                    ports.insert(p.clone(), serde_json::json!({}));
                }
                format!("EXPOSE {}", done.join(" "))
            }
            ConfigChange::Volume(paths) => {
                if paths.iter().any(String::is_empty) {
                    return Err(ConfigError::EmptyVolume);
                }
                let volumes = config.volumes.get_or_insert_with(BTreeMap::new);
                for p in &paths {
                    volumes.insert(p.clone(), serde_json::json!({}));
                }
                format!("VOLUME {}", json(&paths))
            }
            ConfigChange::User(user) => {
                let history = format!("USER {user}");
                config.user = Some(user);
                history
            }
            ConfigChange::Workdir(path) => {
                let dir = workdir(config, &path);
                let history = format!("WORKDIR {dir}");
                config.working_dir = Some(dir);
                history
            }
            ConfigChange::StopSignal(signal) => {
                let history = format!("STOPSIGNAL {signal}");
                config.stop_signal = Some(signal);
                history
            }
            ConfigChange::Shell(shell) => {
                let history = format!("SHELL {}", json(&shell));
                config.shell = Some(shell);
                history
            }
            ConfigChange::Healthcheck(check) => {
                let history = format!("HEALTHCHECK {}", json(check.test.as_deref().unwrap_or(&[])));
                config.healthcheck = Some(check);
                history
            }
            ConfigChange::OnBuild(trigger) => {
                let history = format!("ONBUILD {trigger}");
                config.on_build.get_or_insert_with(Vec::new).push(trigger);
                history
            }
            ConfigChange::Maintainer(_) => unreachable!("applied to the image config"),
        })
    }
}

/// The shell shell-form commands of `config` run with (its `Shell`, else `/bin/sh -c`).
pub fn shell(config: Option<&ContainerConfig>) -> Vec<String> {
    config
        .and_then(|c| c.shell.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_SHELL.iter().map(|s| s.to_string()).collect())
}

/// The argv of `command` in `config`: exec form as is, shell form after the config's shell
/// (CMD, ENTRYPOINT and RUN alike).
pub fn command_vec(config: Option<&ContainerConfig>, command: CommandForm) -> Vec<String> {
    match command {
        CommandForm::Exec(v) => v,
        CommandForm::Shell(s) => {
            let mut v = shell(config);
            v.push(s);
            v
        }
    }
}

/// `key=value` into an `Env` list: replaces the variable where it is, or appends it.
fn set_env(env: &mut Vec<String>, key: &str, value: &str) {
    let entry = format!("{key}={value}");
    let name = |e: &str| e.split_once('=').map_or(e, |(k, _)| k).to_string();
    match env.iter_mut().find(|e| name(e) == key) {
        Some(slot) => *slot = entry,
        None => env.push(entry),
    }
}

/// WORKDIR `path` from the config's current working directory: absolute, lexically
/// cleaned (`.`, `..` and repeated slashes resolved), as docker stores it (an empty path
/// names the current directory, as BuildKit's join).
fn workdir(config: &ContainerConfig, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        let current = config.working_dir.as_deref().unwrap_or("");
        format!("{}/{path}", current.trim_end_matches('/'))
    };
    // Rooted first, so a relative inherited WorkingDir cannot leave the result relative.
    super::path::clean(&format!("/{joined}"))
}

/// One EXPOSE word → `port/proto` keys: `80` is `80/tcp`, a range `8000-8002/udp` gives each
/// port (as docker); a port must be 1-65535 and the protocol tcp, udp or sctp.
pub fn expose_ports(word: &str) -> Result<Vec<String>, ConfigError> {
    let bad = || ConfigError::Port(word.to_string());
    let lower = word.to_ascii_lowercase();
    let (ports, proto) = lower.split_once('/').unwrap_or((lower.as_str(), "tcp"));
    if !matches!(proto, "tcp" | "udp" | "sctp") {
        return Err(bad());
    }
    let parse = |p: &str| p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad);
    let (first, last) = match ports.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => {
            let p = parse(ports)?;
            (p, p)
        }
    };
    if last < first {
        return Err(bad());
    }
    Ok((first..=last).map(|p| format!("{p}/{proto}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(changes: Vec<ConfigChange>, config: ContainerConfig) -> ContainerConfig {
        let mut image = ImageConfig {
            config: Some(config),
            ..ImageConfig::default()
        };
        let mut editor = ConfigEditor::default();
        for c in changes {
            editor.apply(&mut image, c).unwrap();
        }
        image.config.unwrap()
    }

    #[test]
    fn expose_words() {
        assert_eq!(expose_ports("80").unwrap(), ["80/tcp"]);
        assert_eq!(expose_ports("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(
            expose_ports("8000-8002").unwrap(),
            ["8000/tcp", "8001/tcp", "8002/tcp"]
        );
        for bad in ["0", "x", "80/icmp", "9-1", "70000"] {
            assert!(expose_ports(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn entrypoint_clears_an_inherited_cmd_only() {
        let base = ContainerConfig {
            cmd: Some(vec!["base".into()]),
            ..ContainerConfig::default()
        };
        let entry = || ConfigChange::Entrypoint(CommandForm::Exec(vec!["e".into()]));
        let cmd = || ConfigChange::Cmd(CommandForm::Shell("c".into()));
        assert_eq!(apply(vec![entry()], base.clone()).cmd, None);
        assert_eq!(
            apply(vec![cmd(), entry()], base).cmd.unwrap(),
            ["/bin/sh", "-c", "c"]
        );
    }

    #[test]
    fn env_replaces_in_place_and_workdir_is_cleaned() {
        let base = ContainerConfig {
            env: Some(vec!["A=1".into(), "B=2".into()]),
            working_dir: Some("/srv/".into()),
            ..ContainerConfig::default()
        };
        let c = apply(
            vec![
                ConfigChange::Env(vec![("A".into(), "3".into())]),
                ConfigChange::Workdir("app/../x//y/.".into()),
            ],
            base,
        );
        assert_eq!(c.env.unwrap(), ["A=3", "B=2"]);
        assert_eq!(c.working_dir.unwrap(), "/srv/x/y");
    }
}
