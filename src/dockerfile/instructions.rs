//! Typed instructions built from the raw AST (BuildKit's `instructions` step).
//!
//! [`parse_instructions`] validates each node (flags, argument counts, forms) and returns the
//! build stages, split at FROM, with the ARGs before the first FROM kept as `meta_args`.
//! Word values stay raw (unexpanded, quotes kept where the raw AST keeps them); the build
//! engine expands them later with the shell lexer.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use super::ast::{Dockerfile, Heredoc, Node, Span};
use super::error::{ErrorKind, ParseError};
use super::line_parsers::KEYWORDS;

/// The typed Dockerfile: meta ARGs and stages.
#[derive(Debug, Clone, Serialize)]
pub struct Stages {
    /// ARG instructions before the first FROM.
    pub meta_args: Vec<Command>,
    /// The build stages, in order.
    pub stages: Vec<Stage>,
}

/// One build stage: a FROM and the instructions after it.
#[derive(Debug, Clone, Serialize)]
pub struct Stage {
    /// `AS name`, lowercased as BuildKit does.
    pub name: Option<String>,
    /// The base image (or stage name), unexpanded.
    pub base: String,
    /// `--platform`, unexpanded.
    pub platform: Option<String>,
    /// The FROM instruction.
    pub span: Span,
    /// The FROM line as written (shared with its node).
    pub original: std::sync::Arc<str>,
    /// The instructions after FROM.
    pub instructions: Vec<Command>,
}

/// An instruction with its location.
#[derive(Debug, Clone, Serialize)]
pub struct Command {
    /// What it does.
    pub instruction: Instruction,
    /// Where it is (heredoc bodies included).
    pub span: Span,
    /// The logical line as written (shared with its node).
    pub original: std::sync::Arc<str>,
}

/// A command given in shell form (one string for `/bin/sh -c`) or exec form (JSON array).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CommandLine {
    /// `RUN echo hi`
    Shell(String),
    /// `RUN ["echo", "hi"]`
    Exec(Vec<String>),
}

/// A typed instruction (FROM is a [`Stage`]).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Instruction {
    Run(Run),
    Copy(Copy),
    Add(Copy),
    Cmd { command: CommandLine },
    Entrypoint { command: CommandLine },
    Env { vars: Vec<KeyValue> },
    Arg { args: Vec<ArgDef> },
    Label { labels: Vec<KeyValue> },
    Maintainer { name: String },
    Volume { paths: Vec<String> },
    Expose { ports: Vec<String> },
    Workdir { path: String },
    User { user: String, group: Option<String> },
    Healthcheck(Healthcheck),
    Onbuild { trigger: Box<Command> },
    Shell { shell: Vec<String> },
    Stopsignal { signal: String },
}

/// `key=value` (ENV, LABEL). The value is raw: quotes and escapes are still in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

/// One ARG: `name` or `name=default` (default raw).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArgDef {
    pub name: String,
    pub default: Option<String>,
}

/// RUN.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub command: CommandLine,
    pub mounts: Vec<Mount>,
    pub network: Option<NetworkMode>,
    pub security: Option<Security>,
    /// Heredocs named on the line; a command that is only `<<EOF` runs the body as a script.
    pub heredocs: Vec<Heredoc>,
}

/// `RUN --network=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    Default,
    None,
    Host,
}

/// `RUN --security=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    Sandbox,
    Insecure,
}

/// `RUN --mount=type=...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

/// Cache mount sharing mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

/// A `--mount` of RUN. Values are raw (unexpanded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    pub kind: MountType,
    /// Where it appears in the container (default for secret: `/run/secrets/<id>`).
    pub target: Option<String>,
    /// Path in the source (context, stage or image).
    pub source: Option<String>,
    /// A stage or image to take the source from.
    pub from: Option<String>,
    pub readonly: bool,
    /// Cache, secret or ssh id.
    pub id: Option<String>,
    pub sharing: Option<Sharing>,
    /// Octal mode (cache, secret, ssh), raw.
    pub mode: Option<String>,
    pub uid: Option<String>,
    pub gid: Option<String>,
    /// Secret/ssh: fail when not provided.
    pub required: bool,
    /// tmpfs size, raw.
    pub size: Option<String>,
    /// Secret: expose as this environment variable.
    pub env: Option<String>,
}

/// COPY and ADD. Flags that do not apply to the instruction are rejected at parse time.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Copy {
    /// Sources, raw; a heredoc source is written `<<NAME` and described in `heredocs`.
    pub sources: Vec<String>,
    pub dest: String,
    /// Given as a JSON array.
    pub json: bool,
    pub heredocs: Vec<Heredoc>,
    /// COPY --from.
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub exclude: Vec<String>,
    /// COPY --parents.
    pub parents: bool,
    /// ADD --keep-git-dir.
    pub keep_git_dir: bool,
    /// ADD --checksum.
    pub checksum: Option<String>,
    /// ADD --unpack (None: default behaviour, unpack local archives only).
    pub unpack: Option<bool>,
}

impl Copy {
    /// The heredoc a source refers to (`<<EOF`, `<<-"EOF"`, ...), if it is one.
    pub fn heredoc(&self, source: &str) -> Option<&Heredoc> {
        let marker = super::heredoc::markers(source).ok()?.into_iter().next()?;
        self.heredocs.iter().find(|h| h.name == marker.name)
    }
}

/// HEALTHCHECK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable the base image's check.
    None,
    /// `HEALTHCHECK [options] CMD command`. Durations serialize as nanoseconds, as in the
    /// image config.
    Cmd {
        command: CommandLine,
        #[serde(serialize_with = "nanos")]
        interval: Option<Duration>,
        #[serde(serialize_with = "nanos")]
        timeout: Option<Duration>,
        #[serde(serialize_with = "nanos")]
        start_period: Option<Duration>,
        #[serde(serialize_with = "nanos")]
        start_interval: Option<Duration>,
        retries: Option<u32>,
    },
}

fn nanos<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&(d.as_nanos() as u64)),
        None => s.serialize_none(),
    }
}

/// Parses the typed stages of `df`.
pub fn parse_instructions(df: &Dockerfile) -> Result<Stages, ParseError> {
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for node in &df.nodes {
        if node.keyword == "from" {
            stages.push(parse_from(df, node)?);
            continue;
        }
        let command = parse_command(df, node, &node.heredocs)?;
        match stages.last_mut() {
            Some(stage) => stage.instructions.push(command),
            None if matches!(command.instruction, Instruction::Arg { .. }) => {
                meta_args.push(command)
            }
            None => {
                return Err(ParseError::in_file(
                    df,
                    node.span,
                    ErrorKind::BeforeFrom(node.keyword.to_uppercase()),
                ))
            }
        }
    }
    if stages.is_empty() {
        let span = df.nodes.first().map(|n| n.span).unwrap_or_default();
        return Err(ParseError::in_file(df, span, ErrorKind::NoFrom));
    }
    Ok(Stages { meta_args, stages })
}

/// The typed instructions of a text without FROM, named `file_name` in errors: ONBUILD
/// triggers of a base image and the `-c` changes of `import`, read as a Dockerfile's.
pub fn parse_commands(text: &str, file_name: &str) -> Result<Vec<Command>, ParseError> {
    let df = super::parse(&format!("FROM scratch\n{text}\n"), file_name)?;
    let stages = parse_instructions(&df)?;
    Ok(stages
        .stages
        .into_iter()
        .next()
        .map(|s| s.instructions)
        .unwrap_or_default())
}

/// The JSON printed by `rbuild parse --json`: directives, the line range of all instructions,
/// warnings, meta args and stages with spans.
pub fn to_json(df: &Dockerfile, stages: &Stages) -> Result<String, serde_json::Error> {
    let span = match (df.nodes.first(), df.nodes.last()) {
        (Some(first), Some(last)) => df.span(first.span.start, last.span.end),
        _ => Span::default(),
    };
    serde_json::to_string_pretty(&serde_json::json!({
        "file": df.file_name,
        "directives": df.directives,
        "span": span,
        "warnings": df.warnings,
        "meta_args": stages.meta_args,
        "stages": stages.stages,
    }))
}

fn err(df: &Dockerfile, span: Span, kind: ErrorKind) -> ParseError {
    ParseError::in_file(df, span, kind)
}

fn count_error(df: &Dockerfile, node: &Node, expected: &str) -> ParseError {
    err(
        df,
        node.span,
        ErrorKind::ArgumentCount {
            instruction: node.keyword.to_uppercase(),
            expected: expected.to_string(),
        },
    )
}

fn parse_from(df: &Dockerfile, node: &Node) -> Result<Stage, ParseError> {
    let mut flags = Flags::parse(df, node, &[("platform", FlagKind::String)])?;
    let args = &node.args;
    let name = match args.len() {
        1 => None,
        3 if args[1].eq_ignore_ascii_case("as") => {
            let name = args[2].to_lowercase();
            if !valid_stage_name(&name) {
                return Err(err(
                    df,
                    find_in_args(df, node, &args[2]),
                    ErrorKind::Invalid(format!(
                        "invalid name for build stage: {:?}, name can't start with a number or contain symbols",
                        args[2]
                    )),
                ));
            }
            Some(name)
        }
        _ => return Err(count_error(df, node, "either one or three arguments")),
    };
    Ok(Stage {
        name,
        base: args[0].clone(),
        platform: flags.string("platform"),
        span: node.span,
        original: node.original.clone(),
        instructions: Vec::new(),
    })
}

/// The span of the last occurrence of `needle` in the arguments of `node` (the arguments'
/// start if it is not found verbatim).
fn find_in_args(df: &Dockerfile, node: &Node, needle: &str) -> Span {
    let start = node.args_span.start;
    let end = node.span.end.min(df.source.len());
    match df.source.get(start..end).and_then(|s| s.rfind(needle)) {
        Some(i) => df.span(start + i, start + i + needle.len()),
        None => node.args_span,
    }
}

fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

fn command_line(node: &Node) -> CommandLine {
    if node.json {
        CommandLine::Exec(node.args.clone())
    } else {
        CommandLine::Shell(node.args.first().cloned().unwrap_or_default())
    }
}

fn parse_command(
    df: &Dockerfile,
    node: &Node,
    heredocs: &[Heredoc],
) -> Result<Command, ParseError> {
    let at_least_one = |n: &Node| {
        if n.args.is_empty() {
            Err(count_error(df, n, "at least one argument"))
        } else {
            Ok(())
        }
    };
    let no_flags = |n: &Node| Flags::parse(df, n, &[]).map(|_| ());
    let instruction = match node.keyword.as_str() {
        "run" => {
            let mut flags = Flags::parse(
                df,
                node,
                &[
                    ("mount", FlagKind::List),
                    ("network", FlagKind::String),
                    ("security", FlagKind::String),
                ],
            )?;
            at_least_one(node)?;
            let mounts = flags
                .list("mount")
                .into_iter()
                .map(|(value, span)| parse_mount(&value).map_err(|m| err(df, span, m)))
                .collect::<Result<_, _>>()?;
            let network = match flags.string_at("network") {
                None => None,
                Some((v, span)) => Some(match v.as_str() {
                    "default" => NetworkMode::Default,
                    "none" => NetworkMode::None,
                    "host" => NetworkMode::Host,
                    _ => {
                        return Err(flag_value(
                            df,
                            span,
                            "network",
                            "expected default, none or host",
                        ))
                    }
                }),
            };
            let security = match flags.string_at("security") {
                None => None,
                Some((v, span)) => Some(match v.as_str() {
                    "sandbox" => Security::Sandbox,
                    "insecure" => Security::Insecure,
                    _ => {
                        return Err(flag_value(
                            df,
                            span,
                            "security",
                            "expected sandbox or insecure",
                        ))
                    }
                }),
            };
            Instruction::Run(Run {
                command: command_line(node),
                mounts,
                network,
                security,
                heredocs: heredocs.to_vec(),
            })
        }
        "copy" | "add" => {
            let is_copy = node.keyword == "copy";
            let specs: &[(&str, FlagKind)] = if is_copy {
                &[
                    ("from", FlagKind::String),
                    ("chown", FlagKind::String),
                    ("chmod", FlagKind::String),
                    ("link", FlagKind::Bool),
                    ("exclude", FlagKind::List),
                    ("parents", FlagKind::Bool),
                ]
            } else {
                &[
                    ("chown", FlagKind::String),
                    ("chmod", FlagKind::String),
                    ("link", FlagKind::Bool),
                    ("exclude", FlagKind::List),
                    ("keep-git-dir", FlagKind::Bool),
                    ("checksum", FlagKind::String),
                    ("unpack", FlagKind::Bool),
                ]
            };
            let mut flags = Flags::parse(df, node, specs)?;
            if node.args.len() < 2 {
                return Err(count_error(
                    df,
                    node,
                    "at least two arguments (one or more sources and a destination)",
                ));
            }
            let (dest, sources) = node.args.split_last().unwrap_or((&node.args[0], &[]));
            let copy = Copy {
                sources: sources.to_vec(),
                dest: dest.clone(),
                json: node.json,
                heredocs: heredocs.to_vec(),
                from: flags.string("from"),
                chown: flags.string("chown"),
                chmod: flags.string("chmod"),
                link: flags.bool("link").unwrap_or(false),
                exclude: flags.list("exclude").into_iter().map(|(v, _)| v).collect(),
                parents: flags.bool("parents").unwrap_or(false),
                keep_git_dir: flags.bool("keep-git-dir").unwrap_or(false),
                checksum: flags.string("checksum"),
                unpack: flags.bool("unpack"),
            };
            if is_copy {
                Instruction::Copy(copy)
            } else {
                Instruction::Add(copy)
            }
        }
        "cmd" => {
            no_flags(node)?;
            Instruction::Cmd {
                command: command_line(node),
            }
        }
        "entrypoint" => {
            no_flags(node)?;
            Instruction::Entrypoint {
                command: command_line(node),
            }
        }
        "env" | "label" => {
            no_flags(node)?;
            at_least_one(node)?;
            let pairs = node
                .args
                .chunks(3)
                .map(|c| KeyValue {
                    key: c[0].clone(),
                    value: c.get(1).cloned().unwrap_or_default(),
                })
                .collect::<Vec<_>>();
            if let Some(empty) = pairs.iter().find(|p| p.key.is_empty()) {
                return Err(err(
                    df,
                    node.args_span,
                    ErrorKind::Invalid(format!(
                        "{} names can not be blank (value {:?})",
                        node.keyword.to_uppercase(),
                        empty.value
                    )),
                ));
            }
            if node.keyword == "env" {
                Instruction::Env { vars: pairs }
            } else {
                Instruction::Label { labels: pairs }
            }
        }
        "arg" => {
            no_flags(node)?;
            at_least_one(node)?;
            let args = node
                .args
                .iter()
                .map(|word| {
                    let (name, default) = match word.split_once('=') {
                        Some((n, v)) => (n.to_string(), Some(v.to_string())),
                        None => (word.clone(), None),
                    };
                    if name.is_empty() {
                        return Err(err(
                            df,
                            node.args_span,
                            ErrorKind::Invalid(format!("ARG names can not be blank: {word:?}")),
                        ));
                    }
                    Ok(ArgDef { name, default })
                })
                .collect::<Result<_, _>>()?;
            Instruction::Arg { args }
        }
        "maintainer" | "workdir" | "stopsignal" | "user" => {
            no_flags(node)?;
            let [value] = node.args.as_slice() else {
                return Err(count_error(df, node, "exactly one argument"));
            };
            let value = value.clone();
            match node.keyword.as_str() {
                "maintainer" => Instruction::Maintainer { name: value },
                "workdir" => Instruction::Workdir { path: value },
                "stopsignal" => Instruction::Stopsignal { signal: value },
                _ => match value.split_once(':') {
                    Some((user, group)) => Instruction::User {
                        user: user.to_string(),
                        group: Some(group.to_string()),
                    },
                    None => Instruction::User {
                        user: value,
                        group: None,
                    },
                },
            }
        }
        "volume" => {
            no_flags(node)?;
            at_least_one(node)?;
            if node.args.iter().any(|p| p.trim().is_empty()) {
                return Err(err(
                    df,
                    node.args_span,
                    ErrorKind::Invalid("VOLUME specified can not be an empty string".into()),
                ));
            }
            Instruction::Volume {
                paths: node.args.clone(),
            }
        }
        "expose" => {
            no_flags(node)?;
            at_least_one(node)?;
            Instruction::Expose {
                ports: node.args.clone(),
            }
        }
        "shell" => {
            no_flags(node)?;
            at_least_one(node)?;
            if !node.json {
                return Err(err(
                    df,
                    node.args_span,
                    ErrorKind::Invalid("SHELL requires the arguments to be in JSON form".into()),
                ));
            }
            Instruction::Shell {
                shell: node.args.clone(),
            }
        }
        "healthcheck" => Instruction::Healthcheck(parse_healthcheck(df, node)?),
        "onbuild" => {
            no_flags(node)?;
            let Some(child) = node.children.first() else {
                return Err(count_error(df, node, "at least one argument"));
            };
            match child.keyword.as_str() {
                "onbuild" => {
                    return Err(err(
                        df,
                        child.span,
                        ErrorKind::Onbuild(
                            "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into(),
                        ),
                    ))
                }
                "from" | "maintainer" => {
                    return Err(err(
                        df,
                        child.span,
                        ErrorKind::Onbuild(format!(
                            "{} isn't allowed as an ONBUILD trigger",
                            child.keyword.to_uppercase()
                        )),
                    ))
                }
                _ => {}
            }
            let mut trigger = parse_command(df, child, heredocs)?;
            trigger.span = child.span;
            Instruction::Onbuild {
                trigger: Box::new(trigger),
            }
        }
        // FROM starts a stage (see parse_from) and is rejected as an ONBUILD trigger above.
        "from" => {
            return Err(err(
                df,
                node.span,
                ErrorKind::Invalid("FROM is not allowed here".into()),
            ))
        }
        _ => return Err(unknown_instruction(df, node)),
    };
    Ok(Command {
        instruction,
        span: node.span,
        original: node.original.clone(),
    })
}

fn unknown_instruction(df: &Dockerfile, node: &Node) -> ParseError {
    let written = node
        .original
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string();
    let lower = node.keyword.as_str();
    let suggestion = KEYWORDS
        .iter()
        .map(|k| (edit_distance(lower, k), *k))
        .min()
        .filter(|(d, k)| *d <= 2.max(k.len() / 3) && *d < lower.len().max(1))
        .map(|(_, k)| k.to_uppercase());
    err(
        df,
        node.span,
        ErrorKind::UnknownInstruction {
            name: written,
            suggestion,
        },
    )
}

/// Levenshtein distance between two strings (in characters).
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn flag_value(df: &Dockerfile, span: Span, flag: &str, message: &str) -> ParseError {
    err(
        df,
        span,
        ErrorKind::FlagValue {
            flag: flag.to_string(),
            message: message.to_string(),
        },
    )
}

fn parse_healthcheck(df: &Dockerfile, node: &Node) -> Result<Healthcheck, ParseError> {
    let mut flags = Flags::parse(
        df,
        node,
        &[
            ("interval", FlagKind::String),
            ("timeout", FlagKind::String),
            ("start-period", FlagKind::String),
            ("start-interval", FlagKind::String),
            ("retries", FlagKind::String),
        ],
    )?;
    let Some(kind) = node.args.first() else {
        return Err(count_error(df, node, "at least one argument"));
    };
    match kind.to_uppercase().as_str() {
        "NONE" => {
            if node.args.len() > 1 {
                return Err(err(
                    df,
                    node.args_span,
                    ErrorKind::Invalid("HEALTHCHECK NONE takes no arguments".into()),
                ));
            }
            if let Some(flag) = node.flags.first() {
                return Err(err(
                    df,
                    flag.span,
                    ErrorKind::Invalid("HEALTHCHECK NONE takes no options".into()),
                ));
            }
            Ok(Healthcheck::None)
        }
        "CMD" => {
            if node.args.len() < 2 {
                return Err(err(
                    df,
                    node.args_span,
                    ErrorKind::Invalid("missing command after HEALTHCHECK CMD".into()),
                ));
            }
            let command = if node.json {
                CommandLine::Exec(node.args[1..].to_vec())
            } else {
                CommandLine::Shell(node.args[1].clone())
            };
            let mut duration = |name: &str| -> Result<Option<Duration>, ParseError> {
                let Some((value, span)) = flags.string_at(name) else {
                    return Ok(None);
                };
                let d = parse_go_duration(&value).ok_or_else(|| {
                    flag_value(df, span, name, &format!("invalid duration {value:?}"))
                })?;
                if !d.is_zero() && d < Duration::from_millis(1) {
                    return Err(flag_value(df, span, name, "cannot be less than 1ms"));
                }
                Ok(Some(d))
            };
            let interval = duration("interval")?;
            let timeout = duration("timeout")?;
            let start_period = duration("start-period")?;
            let start_interval = duration("start-interval")?;
            let retries = match flags.string_at("retries") {
                None => None,
                Some((v, span)) => Some(v.parse::<u32>().map_err(|_| {
                    flag_value(
                        df,
                        span,
                        "retries",
                        &format!("expected a number >= 0, not {v:?}"),
                    )
                })?),
            };
            Ok(Healthcheck::Cmd {
                command,
                interval,
                timeout,
                start_period,
                start_interval,
                retries,
            })
        }
        _ => Err(err(
            df,
            node.args_span,
            ErrorKind::Invalid(format!("unknown type {kind:?} in HEALTHCHECK (try CMD)")),
        )),
    }
}

/// Parses a Go duration (`300ms`, `1.5h`, `2h45m`, `0`).
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let number: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// Parses `--mount` CSV options.
fn parse_mount(value: &str) -> Result<Mount, ErrorKind> {
    let bad = |message: String| ErrorKind::FlagValue {
        flag: "mount".into(),
        message,
    };
    let mut mount = Mount {
        kind: MountType::Bind,
        target: None,
        source: None,
        from: None,
        readonly: false,
        id: None,
        sharing: None,
        mode: None,
        uid: None,
        gid: None,
        required: false,
        size: None,
        env: None,
    };
    let mut readonly = None;
    for field in split_csv(value).map_err(bad)? {
        let (key, val) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_lowercase(), Some(v.to_string())),
            None => (field.trim().to_lowercase(), None),
        };
        let need =
            |v: Option<String>| v.ok_or_else(|| bad(format!("option {key:?} needs a value")));
        let boolean = |v: &Option<String>| match v.as_deref().map(str::to_lowercase).as_deref() {
            None | Some("true") | Some("1") => Ok(true),
            Some("false") | Some("0") => Ok(false),
            Some(other) => Err(bad(format!("invalid boolean {other:?} for {key}"))),
        };
        match key.as_str() {
            "type" => {
                mount.kind = match need(val)?.as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "tmpfs" => MountType::Tmpfs,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    other => return Err(bad(format!("unsupported mount type {other:?}"))),
                }
            }
            "target" | "dst" | "destination" => mount.target = Some(need(val)?),
            "source" | "src" => mount.source = Some(need(val)?),
            "from" => mount.from = Some(need(val)?),
            "readonly" | "ro" => readonly = Some(boolean(&val)?),
            "readwrite" | "rw" => readonly = Some(!boolean(&val)?),
            "id" => mount.id = Some(need(val)?),
            "sharing" => {
                mount.sharing = Some(match need(val)?.as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    other => return Err(bad(format!("unsupported sharing value {other:?}"))),
                })
            }
            "mode" => mount.mode = Some(need(val)?),
            "uid" => mount.uid = Some(need(val)?),
            "gid" => mount.gid = Some(need(val)?),
            "required" => mount.required = boolean(&val)?,
            "size" => mount.size = Some(need(val)?),
            "env" => mount.env = Some(need(val)?),
            other => return Err(bad(format!("unexpected key {other:?} in {field:?}"))),
        }
    }
    for (name, value) in [
        ("mode", &mount.mode),
        ("uid", &mount.uid),
        ("gid", &mount.gid),
    ] {
        if let Some(v) = value {
            let radix = if name == "mode" { 8 } else { 10 };
            if !v.contains('$') && u32::from_str_radix(v, radix).is_err() {
                return Err(bad(format!("invalid {name} {v:?}")));
            }
        }
    }
    if mount.sharing.is_some() && mount.kind != MountType::Cache {
        return Err(bad("sharing is only valid for type=cache".into()));
    }
    if matches!(
        mount.kind,
        MountType::Bind | MountType::Cache | MountType::Tmpfs
    ) && mount.target.is_none()
    {
        return Err(bad("mount target must be specified".into()));
    }
    if mount.kind == MountType::Secret && mount.id.is_none() && mount.target.is_none() {
        return Err(bad("secret mount needs an id or a target".into()));
    }
    // Bind mounts are read-only unless rw is given; the others are writable unless ro is.
    mount.readonly = readonly.unwrap_or(mount.kind == MountType::Bind);
    Ok(mount)
}

/// Splits a CSV record (`a=b,"c=d,e",f`); double quotes group, `""` is a literal quote.
fn split_csv(s: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    if quoted {
        return Err(format!("unterminated quote in {s:?}"));
    }
    fields.push(field);
    Ok(fields.into_iter().filter(|f| !f.is_empty()).collect())
}

/// How a flag takes values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlagKind {
    /// `--link`, `--link=true|false`.
    Bool,
    /// `--from=x` (once).
    String,
    /// `--mount=...` (repeatable).
    List,
}

/// The flags of one node, checked against the instruction's specs.
struct Flags {
    values: HashMap<&'static str, Vec<(Option<String>, Span)>>,
}

impl Flags {
    fn parse(
        df: &Dockerfile,
        node: &Node,
        specs: &[(&'static str, FlagKind)],
    ) -> Result<Flags, ParseError> {
        let mut values: HashMap<&'static str, Vec<(Option<String>, Span)>> = HashMap::new();
        for flag in &node.flags {
            let text = flag.text.strip_prefix("--").unwrap_or(&flag.text);
            let (name, value) = match text.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (text, None),
            };
            let Some(&(spec_name, kind)) = specs.iter().find(|(n, _)| *n == name) else {
                let valid = if specs.is_empty() {
                    "none".to_string()
                } else {
                    specs
                        .iter()
                        .map(|(n, _)| format!("--{n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                return Err(err(
                    df,
                    flag.span,
                    ErrorKind::UnknownFlag {
                        flag: name.to_string(),
                        instruction: node.keyword.to_uppercase(),
                        valid,
                    },
                ));
            };
            let entry = values.entry(spec_name).or_default();
            if !entry.is_empty() && kind != FlagKind::List {
                return Err(err(
                    df,
                    flag.span,
                    ErrorKind::DuplicateFlag(name.to_string()),
                ));
            }
            match kind {
                FlagKind::Bool => {
                    if let Some(v) = &value {
                        if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") {
                            return Err(flag_value(
                                df,
                                flag.span,
                                name,
                                &format!("expecting a boolean (true or false), not {v:?}"),
                            ));
                        }
                    }
                }
                FlagKind::String | FlagKind::List => {
                    if value.is_none() {
                        return Err(flag_value(df, flag.span, name, "missing a value"));
                    }
                }
            }
            entry.push((value, flag.span));
        }
        Ok(Flags { values })
    }

    fn string_at(&mut self, name: &str) -> Option<(String, Span)> {
        let (value, span) = self.values.remove(name)?.into_iter().next()?;
        Some((value.unwrap_or_default(), span))
    }

    fn string(&mut self, name: &str) -> Option<String> {
        self.string_at(name).map(|(v, _)| v)
    }

    fn bool(&mut self, name: &str) -> Option<bool> {
        let (value, _) = self.values.remove(name)?.into_iter().next()?;
        Some(value.is_none_or(|v| v.eq_ignore_ascii_case("true")))
    }

    fn list(&mut self, name: &str) -> Vec<(String, Span)> {
        self.values
            .remove(name)
            .unwrap_or_default()
            .into_iter()
            .map(|(v, s)| (v.unwrap_or_default(), s))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("300ms"), Some(Duration::from_millis(300)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_go_duration("s"), None);
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("runn", "run"), 1);
        assert_eq!(edit_distance("cpoy", "copy"), 2);
    }

    #[test]
    fn copy_sources_find_their_heredoc() {
        let df =
            crate::dockerfile::parse("FROM a\nCOPY <<-'A' b <<B /d/\nx\nA\ny\nB\n", "D").unwrap();
        let stages = parse_instructions(&df).unwrap();
        let Instruction::Copy(copy) = &stages.stages[0].instructions[0].instruction else {
            panic!("not a COPY");
        };
        assert_eq!(
            copy.heredoc(&copy.sources[0]).map(|h| h.content.as_str()),
            Some("x\n")
        );
        assert!(copy.heredoc(&copy.sources[1]).is_none());
        assert_eq!(
            copy.heredoc(&copy.sources[2]).map(|h| h.content.as_str()),
            Some("y\n")
        );
    }

    #[test]
    fn csv_fields() {
        assert_eq!(
            split_csv(r#"type=bind,"source=a,b",ro"#).unwrap(),
            ["type=bind", "source=a,b", "ro"]
        );
    }
}
