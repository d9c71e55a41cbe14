//! The Dockerfile frontend's config part: config instructions (ENV, LABEL, CMD, …) → typed
//! [`ConfigChange`]s with their words expanded, for a build's stages and for the `-c` changes
//! of `import` (one reading of the syntax for both; the changes themselves are applied by
//! [`crate::image::config_rules`], the one owner of those rules).

use std::collections::BTreeMap;

use super::{download, BuildError};
use crate::dockerfile::eval::StageVars;
use crate::dockerfile::instructions::{self, Command, CommandLine, Healthcheck, Instruction};
use crate::dockerfile::shell::ShellLex;
use crate::dockerfile::Heredoc;
use crate::image::config_rules::{CommandForm, ConfigChange};
use crate::image::digest::Digest;
use crate::image::oci;

/// The config change of `cmd`, its words expanded with `env` (the variables as they were
/// before the instruction: docker expands every pair of one ENV with the same values), or
/// `None` when `cmd` does not change the config (ARG, RUN, COPY, ADD).
pub(crate) fn config_change(
    cmd: &Command,
    lex: &ShellLex,
    env: &BTreeMap<String, String>,
) -> Result<Option<ConfigChange>, BuildError> {
    let word = |w: &String| lex.process_word(w, env);
    let pairs = |kvs: &[instructions::KeyValue]| {
        kvs.iter()
            .map(|kv| Ok((word(&kv.key)?, word(&kv.value)?)))
            .collect::<Result<Vec<_>, BuildError>>()
    };
    Ok(Some(match &cmd.instruction {
        Instruction::Env { vars } => ConfigChange::Env(pairs(vars)?),
        Instruction::Label { labels } => ConfigChange::Label(pairs(labels)?),
        Instruction::Maintainer { name } => ConfigChange::Maintainer(name.clone()),
        Instruction::Volume { paths } => {
            ConfigChange::Volume(paths.iter().map(word).collect::<Result<_, _>>()?)
        }
        Instruction::Expose { ports } => {
            let mut words = Vec::new();
            for p in ports {
                words.extend(lex.process_words(p, env)?);
            }
            ConfigChange::Expose(words)
        }
        Instruction::User { user, group } => {
            let mut u = word(user)?;
            if let Some(g) = group {
                u = format!("{u}:{}", word(g)?);
            }
            ConfigChange::User(u)
        }
        Instruction::Stopsignal { signal } => ConfigChange::StopSignal(word(signal)?),
        Instruction::Shell { shell } => ConfigChange::Shell(shell.clone()),
        Instruction::Cmd { command } => ConfigChange::Cmd(command_form(command)),
        Instruction::Entrypoint { command } => ConfigChange::Entrypoint(command_form(command)),
        Instruction::Healthcheck(h) => ConfigChange::Healthcheck(healthcheck(h)),
        Instruction::Onbuild { trigger } => {
            ConfigChange::OnBuild(trigger.original.trim().to_string())
        }
        Instruction::Workdir { path } => ConfigChange::Workdir(word(path)?),
        Instruction::Arg { .. }
        | Instruction::Run(_)
        | Instruction::Copy(_)
        | Instruction::Add(_) => return Ok(None),
    }))
}

/// The history text of `cmd` when the build writes it as written rather than as the config
/// rules describe the change: HEALTHCHECK (as rbuild has always recorded it).
pub(crate) fn history_as_written(cmd: &Command) -> Option<String> {
    match cmd.instruction {
        Instruction::Healthcheck(_) => Some(format!(
            "HEALTHCHECK {}",
            cmd.original.trim().get(11..).unwrap_or("").trim()
        )),
        _ => None,
    }
}

/// A command line as the config rules take it.
pub(crate) fn command_form(command: &CommandLine) -> CommandForm {
    match command {
        CommandLine::Exec(v) => CommandForm::Exec(v.clone()),
        CommandLine::Shell(s) => CommandForm::Shell(s.clone()),
    }
}

/// HEALTHCHECK → the config's `Healthcheck` (durations in nanoseconds).
fn healthcheck(h: &Healthcheck) -> oci::Healthcheck {
    match h {
        Healthcheck::None => oci::Healthcheck {
            test: Some(vec!["NONE".into()]),
            ..oci::Healthcheck::default()
        },
        Healthcheck::Cmd {
            command,
            interval,
            timeout,
            start_period,
            start_interval,
            retries,
        } => {
            let test = match command {
                CommandLine::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
                CommandLine::Exec(v) => std::iter::once("CMD".to_string())
                    .chain(v.iter().cloned())
                    .collect(),
            };
            let nanos = |d: &Option<std::time::Duration>| d.map(|d| d.as_nanos() as i64);
            oci::Healthcheck {
                interval: nanos(interval),
                retries: retries.map(i64::from),
                start_interval: nanos(start_interval),
                start_period: nanos(start_period),
                test: Some(test),
                timeout: nanos(timeout),
            }
        }
    }
}

/// COPY or ADD with its words expanded and its sources sorted by kind: what the engine needs
/// to select, download and copy, without Dockerfile syntax.
#[derive(Debug)]
pub(crate) struct CopyOp {
    pub add: bool,
    /// Local sources (context or `--from` paths and patterns).
    pub sources: Vec<String>,
    /// Heredoc sources: (name, content, expanded when the heredoc asks for it).
    pub inline: Vec<(String, String)>,
    /// ADD http(s) sources.
    pub urls: Vec<String>,
    /// ADD --checksum of the one URL.
    pub checksum: Option<Digest>,
    /// The destination as written (relative to the working directory unless absolute).
    pub dest: String,
    /// `--chown` (`user[:group]`), resolved against the image's files when it runs.
    pub chown: Option<String>,
    pub chmod: Option<u32>,
    pub exclude: Vec<String>,
    pub parents: bool,
    /// `--from`: a stage name or index, or an image.
    pub from: Option<String>,
    /// The history text (`COPY src... dest # buildkit`).
    pub created_by: String,
}

/// COPY/ADD `c` → a [`CopyOp`], words expanded with `env`. Heredoc bodies that expand are
/// expanded as BuildKit does: quotes are plain characters, `\` escapes (the escape is `\`
/// whatever the Dockerfile's escape directive says).
pub(crate) fn copy_op(
    c: &instructions::Copy,
    add: bool,
    lex: &ShellLex,
    env: &BTreeMap<String, String>,
) -> Result<CopyOp, BuildError> {
    let word = |w: &String| lex.process_word(w, env);
    let heredoc_lex = ShellLex::new('\\').skip_process_quotes(true);
    let (mut sources, mut inline, mut urls) = (Vec::new(), Vec::new(), Vec::new());
    for s in &c.sources {
        if s.starts_with("<<") {
            let doc = c.heredoc(s).ok_or_else(|| {
                BuildError::Invalid(format!(
                    "heredoc {:?} has no body",
                    s.trim_start_matches('<')
                ))
            })?;
            let content = match doc.expand {
                true => heredoc_lex.process_word(&doc.content, env)?,
                false => doc.content.clone(),
            };
            inline.push((doc.name.clone(), content));
            continue;
        }
        let s = word(s)?;
        let git = s.starts_with("git@") || s.split('#').next().is_some_and(|u| u.ends_with(".git"));
        if download::is_http(&s) && !add {
            return Err(BuildError::Invalid(format!(
                "COPY does not accept a URL ({s}); use ADD"
            )));
        }
        if git {
            let what = if add { "ADD" } else { "COPY" };
            return Err(BuildError::Unsupported(format!(
                "{what} from a git URL ({s})"
            )));
        }
        match download::is_http(&s) {
            true => urls.push(s),
            false => sources.push(s),
        }
    }
    let checksum = match &c.checksum {
        None => None,
        Some(_) if urls.len() != 1 || c.sources.len() != 1 => {
            return Err(BuildError::Invalid(
                "ADD --checksum needs exactly one source, an http(s) URL".into(),
            ))
        }
        Some(sum) => Some(download::parse_checksum(&word(sum)?)?),
    };
    if !urls.is_empty() && c.unpack == Some(true) {
        return Err(BuildError::Unsupported("ADD --unpack with a URL".into()));
    }
    let chmod = match &c.chmod {
        None => None,
        Some(m) => {
            let m = word(m)?;
            let mode = u32::from_str_radix(&m, 8).ok().filter(|v| *v <= 0o7777);
            Some(mode.ok_or_else(|| {
                BuildError::Invalid(format!(
                    "invalid --chmod {m:?}: only octal modes are supported"
                ))
            })?)
        }
    };
    let mut shown: Vec<&str> = c.sources.iter().map(String::as_str).collect();
    shown.push(&c.dest);
    Ok(CopyOp {
        add,
        sources,
        inline,
        urls,
        checksum,
        dest: word(&c.dest)?,
        chown: c.chown.as_ref().map(word).transpose()?,
        chmod,
        exclude: c.exclude.iter().map(word).collect::<Result<_, _>>()?,
        parents: c.parents,
        from: c.from.as_ref().map(word).transpose()?,
        created_by: format!(
            "{} {} # buildkit",
            if add { "ADD" } else { "COPY" },
            shown.join(" ")
        ),
    })
}

/// RUN with its words expanded: the command (shell form with its heredoc bodies) and mounts.
#[derive(Debug)]
pub(crate) struct ExecOp {
    /// Run with the config's shell when in shell form.
    pub command: CommandForm,
    /// `--mount`s, every value expanded.
    pub mounts: Vec<instructions::Mount>,
    /// `--network=host` (true) or `none` (false); `None` for the build's default.
    pub network_host: Option<bool>,
    /// A bind mount of the build context.
    pub reads_context: bool,
    /// Its environment: `Env`, the visible ARGs, then the proxy args.
    pub env: Vec<String>,
    /// The environment its cache key names (proxy args left out, as BuildKit).
    pub key_env: Vec<String>,
    /// The ARGs it sees beyond `Env` (its history text names them).
    pub visible_args: Vec<(String, String)>,
}

/// RUN `r` → an [`ExecOp`], mount values expanded with the stage's variables `vars`;
/// `proxies` are the proxy build args (in its environment, not in its cache key).
pub(crate) fn exec_op(
    r: &instructions::Run,
    lex: &ShellLex,
    vars: &StageVars,
    proxies: &[(String, String)],
) -> Result<ExecOp, BuildError> {
    let env = &vars.expansion_env();
    if r.security == Some(instructions::Security::Insecure) {
        return Err(BuildError::Unsupported("RUN --security=insecure".into()));
    }
    let mut mounts = r.mounts.clone();
    for m in &mut mounts {
        for v in [
            &mut m.target,
            &mut m.source,
            &mut m.from,
            &mut m.id,
            &mut m.mode,
            &mut m.uid,
            &mut m.gid,
            &mut m.size,
            &mut m.env,
        ]
        .into_iter()
        .flatten()
        {
            *v = lex.process_word(v, env)?;
        }
    }
    let command = match &r.command {
        CommandLine::Exec(v) => CommandForm::Exec(v.clone()),
        CommandLine::Shell(s) => CommandForm::Shell(shell_with_heredocs(s, &r.heredocs)),
    };
    let network_host = match r.network {
        Some(instructions::NetworkMode::Host) => Some(true),
        Some(instructions::NetworkMode::None) => Some(false),
        _ => None,
    };
    let reads_context = mounts
        .iter()
        .any(|m| m.kind == instructions::MountType::Bind && m.from.is_none());
    Ok(ExecOp {
        command,
        mounts,
        network_host,
        reads_context,
        env: vars.run_env(proxies),
        key_env: vars.run_env(&[]),
        visible_args: vars.visible_args(),
    })
}

/// The shell command of a RUN with heredocs: a command that is only `<<EOF` runs the body;
/// otherwise the bodies follow the command line so the shell reads them as here-documents.
fn shell_with_heredocs(command: &str, heredocs: &[Heredoc]) -> String {
    if heredocs.is_empty() {
        return command.to_string();
    }
    let only = command
        .trim()
        .trim_start_matches("<<")
        .trim_start_matches('-');
    let only = only.trim_matches(['"', '\'']);
    if heredocs.len() == 1 && only == heredocs[0].name {
        return heredocs[0].content.clone();
    }
    let mut s = command.to_string();
    for h in heredocs {
        s.push('\n');
        s.push_str(&h.content);
        s.push_str(&h.name);
    }
    s
}

/// The `-c` changes of `import` (and `commit`) → typed changes. Each line is read by the
/// Dockerfile parser and expanded as a Dockerfile's would be, with the variables of `env`
/// (`KEY=value`, the image's `Env`) and of the ENV changes before it. Only the instructions
/// docker accepts there are allowed.
pub fn config_changes(lines: &[String], env: &[String]) -> Result<Vec<ConfigChange>, BuildError> {
    let mut vars = StageVars::new(env);
    let lex = ShellLex::new('\\');
    let mut out = Vec::new();
    for line in lines {
        let bad = |why: String| BuildError::Invalid(format!("invalid change {line:?}: {why}"));
        let cmds =
            instructions::parse_commands(line, "--change").map_err(|e| bad(e.kind.to_string()))?;
        let [cmd] = &cmds[..] else {
            return Err(bad("want one instruction".into()));
        };
        if matches!(
            cmd.instruction,
            Instruction::Shell { .. } | Instruction::Maintainer { .. }
        ) {
            return Err(bad("not supported by import".into()));
        }
        let change = config_change(cmd, &lex, &vars.expansion_env())
            .map_err(|e| bad(e.to_string()))?
            .ok_or_else(|| bad("not supported by import".into()))?;
        if let ConfigChange::Env(pairs) = &change {
            for (k, v) in pairs {
                vars.set_env(k, v);
            }
        }
        out.push(change);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::config_rules::ConfigEditor;
    use crate::image::oci::{ContainerConfig, ImageConfig};

    fn apply(lines: &[&str]) -> Result<ContainerConfig, BuildError> {
        let lines: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        let mut image = ImageConfig::default();
        let mut editor = ConfigEditor::default();
        for change in config_changes(&lines, &[])? {
            editor.apply(&mut image, change)?;
        }
        Ok(image.config.unwrap_or_default())
    }

    #[test]
    fn changes_update_the_config() {
        let c = apply(&[
            r#"CMD ["/bin/sh", "-c", "echo hi"]"#,
            "ENTRYPOINT echo x",
            r#"ENV A=1 B="two words""#,
            "ENV A 3",
            "EXPOSE 80 53/udp",
            "LABEL org.x=y",
            r#"LABEL "quoted.key"="v w" plain=$A"#,
            "ENV C=x",
            "ENV D=${C}y",
        ])
        .unwrap();
        assert_eq!(c.cmd.unwrap(), vec!["/bin/sh", "-c", "echo hi"]);
        assert_eq!(c.entrypoint.unwrap(), vec!["/bin/sh", "-c", "echo x"]);
        // A replaced where it was, as docker's ENV.
        assert_eq!(c.env.unwrap(), vec!["A=3", "B=two words", "C=x", "D=xy"]);
        assert!(c.exposed_ports.unwrap().contains_key("53/udp"));
        let labels = c.labels.unwrap();
        assert_eq!(labels["org.x"], "y");
        assert_eq!(labels["quoted.key"], "v w");
        assert_eq!(labels["plain"], "3");
        for bad in [
            "ENV",
            "ENV =x",
            "LABEL",
            "ENV A=1\nRUN x",
            "RUN x",
            "SHELL [\"a\"]",
        ] {
            assert!(apply(&[bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn one_env_change_expands_with_the_values_before_it() {
        // As a Dockerfile's ENV (docker's rule): D sees C as it was before this change.
        let c = apply(&["ENV C=old", "ENV C=x D=${C}y"]).unwrap();
        assert_eq!(c.env.unwrap(), vec!["C=x", "D=oldy"]);
    }

    #[test]
    fn workdir_change_is_made_absolute() {
        let c = apply(&["WORKDIR rel"]).unwrap();
        assert_eq!(c.working_dir.as_deref(), Some("/rel"));
        let c = apply(&["WORKDIR rel", "WORKDIR sub/../x/"]).unwrap();
        assert_eq!(c.working_dir.as_deref(), Some("/rel/x"));
        let c = apply(&["WORKDIR /srv//app"]).unwrap();
        assert_eq!(c.working_dir.as_deref(), Some("/srv/app"));
        assert!(apply(&["WORKDIR"]).is_err());
    }

    #[test]
    fn heredoc_commands() {
        let h = |name: &str, content: &str| Heredoc {
            name: name.into(),
            expand: true,
            chomp: false,
            fd: 0,
            content: content.into(),
            span: Default::default(),
        };
        assert_eq!(
            shell_with_heredocs("<<EOF", &[h("EOF", "echo a\n")]),
            "echo a\n"
        );
        assert_eq!(
            shell_with_heredocs("cat <<EOF > /x", &[h("EOF", "hi\n")]),
            "cat <<EOF > /x\nhi\nEOF"
        );
    }
}
