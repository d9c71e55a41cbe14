//! The per-instruction and per-stage checks (everything but variable scoping).

use std::collections::HashMap;

use super::run_command::{apt_subcommand, is_cd_only, removes_apt_lists, simple_commands};
use super::{Rule, Sink};
use crate::dockerfile::ast::{Dockerfile, Node};
use crate::dockerfile::instructions::{
    Command, CommandLine, Copy, Instruction, MountType, Run, Stage, Stages,
};

pub(crate) const WORKDIR_INSTEAD_OF_CD: Rule = Rule {
    name: "WorkdirInsteadOfCd",
    description: "A RUN that only changes directory has no effect on later instructions; use WORKDIR to change the working directory",
};
pub(crate) const JSON_ARGS_RECOMMENDED: Rule = Rule {
    name: "JSONArgsRecommended",
    description: "Shell-form CMD and ENTRYPOINT run under /bin/sh -c, which does not pass signals such as SIGTERM on to the program; use the JSON (exec) form",
};
pub(crate) const COPY_INSTEAD_OF_ADD: Rule = Rule {
    name: "CopyInsteadOfAdd",
    description: "ADD also fetches URLs and unpacks archives; for plain local files COPY says what is meant and has no surprises",
};
pub(crate) const SECRETS_USED_IN_ARG_OR_ENV: Rule = Rule {
    name: "SecretsUsedInArgOrEnv",
    description: "ARG and ENV values are kept in the image config and history; pass secrets with RUN --mount=type=secret instead",
};
pub(crate) const APT_LISTS_NOT_CLEANED: Rule = Rule {
    name: "AptListsNotCleaned",
    description: "apt-get install leaves the package lists in /var/lib/apt/lists; remove them in the same RUN (rm -rf /var/lib/apt/lists/*) or they bloat the layer",
};
pub(crate) const APT_UPDATE_ALONE: Rule = Rule {
    name: "AptUpdateAlone",
    description: "apt-get update in a RUN without an install: a cached layer keeps stale lists for later installs; run update and install in the same RUN",
};
pub(crate) const MAINTAINER_DEPRECATED: Rule = Rule {
    name: "MaintainerDeprecated",
    description: "The MAINTAINER instruction is deprecated; use a label (LABEL org.opencontainers.image.authors=...) to name the image author",
};
pub(crate) const STAGE_NAME_CASING: Rule = Rule {
    name: "StageNameCasing",
    description: "Stage names are case-insensitive and stored lowercase; write them in lowercase",
};
pub(crate) const FROM_AS_CASING: Rule = Rule {
    name: "FromAsCasing",
    description: "The AS keyword should match the case of the FROM keyword",
};
pub(crate) const CONSISTENT_INSTRUCTION_CASING: Rule = Rule {
    name: "ConsistentInstructionCasing",
    description: "All instructions of a Dockerfile should use the same casing (all uppercase or all lowercase)",
};
pub(crate) const DUPLICATE_STAGE_NAME: Rule = Rule {
    name: "DuplicateStageName",
    description:
        "Stage names should be unique; a later stage with the same name hides the earlier one",
};
pub(crate) const RESERVED_STAGE_NAME: Rule = Rule {
    name: "ReservedStageName",
    description: "The names scratch and context are reserved and should not name a stage",
};
pub(crate) const MULTIPLE_INSTRUCTIONS_DISALLOWED: Rule = Rule {
    name: "MultipleInstructionsDisallowed",
    description: "Only the last CMD, ENTRYPOINT or HEALTHCHECK of a stage takes effect; the earlier ones are dead code",
};
pub(crate) const WORKDIR_RELATIVE_PATH: Rule = Rule {
    name: "WorkdirRelativePath",
    description: "A relative WORKDIR before any absolute one in this Dockerfile depends on the base image's working directory, which can change",
};
pub(crate) const NO_EMPTY_CONTINUATION: Rule = Rule {
    name: "NoEmptyContinuation",
    description:
        "An empty line inside a continued instruction is accepted today but will become an error",
};
pub(crate) const LEGACY_KEY_VALUE_FORMAT: Rule = Rule {
    name: "LegacyKeyValueFormat",
    description: "The ENV/LABEL key value form (whitespace separator) is legacy and ambiguous; write key=value",
};

/// BuildKit's words for secret-looking names: a name is suspicious when one of its
/// `_`-separated parts (case-insensitive) is one of these...
const SECRET_WORDS: &[&str] = &[
    "apikey",
    "auth",
    "credential",
    "credentials",
    "key",
    "password",
    "pword",
    "passwd",
    "secret",
    "token",
];
/// ...and none of its parts is one of these.
const NOT_SECRET_WORDS: &[&str] = &["public", "file", "version"];

/// Runs the checks of this module.
pub(crate) fn run(df: &Dockerfile, stages: &Stages, sink: &mut Sink) {
    check_casing(df, sink);
    for command in &stages.meta_args {
        check_secrets(command, sink);
    }
    for warning in &df.warnings {
        if warning.message.starts_with("empty continuation line") {
            let message = "Empty continuation line".to_string();
            sink.warn(&NO_EMPTY_CONTINUATION, warning.span, warning.span, message);
        }
    }
    // Per stage (by index): the state at its end, which a stage built on it starts from.
    let mut ends: Vec<StageState> = Vec::new();
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (index, stage) in stages.stages.iter().enumerate() {
        check_from(stage, &names, sink);
        let parent = names.get(stage.base.to_lowercase().as_str()).copied();
        let mut state = parent.map(|p| ends[p]).unwrap_or_default();
        let mut seen: HashMap<&'static str, &Command> = HashMap::new();
        for (i, command) in stage.instructions.iter().enumerate() {
            check_command(command, &stage.instructions[i + 1..], state, sink);
            if let Some(name) = once_per_stage(&command.instruction) {
                if let Some(previous) = seen.insert(name, command) {
                    sink.warn(
                        &MULTIPLE_INSTRUCTIONS_DISALLOWED,
                        previous.span,
                        previous.span,
                        format!("Multiple {name} instructions should not be used in the same stage because only the last one will be used"),
                    );
                }
            }
            match command.instruction {
                Instruction::Shell { .. } => state.shell = true,
                Instruction::Workdir { .. } => state.workdir = true,
                _ => {}
            }
        }
        ends.push(state);
        if let Some(name) = &stage.name {
            names.insert(name.as_str(), index);
        }
    }
}

/// What earlier instructions of a stage (or of the stage it is built on) have set.
#[derive(Debug, Clone, Copy, Default)]
struct StageState {
    /// A SHELL instruction: shell-form CMD/ENTRYPOINT are then deliberate.
    shell: bool,
    /// A WORKDIR instruction: later relative ones are relative to it.
    workdir: bool,
}

fn once_per_stage(instruction: &Instruction) -> Option<&'static str> {
    match instruction {
        Instruction::Cmd { .. } => Some("CMD"),
        Instruction::Entrypoint { .. } => Some("ENTRYPOINT"),
        Instruction::Healthcheck(_) => Some("HEALTHCHECK"),
        _ => None,
    }
}

/// The keyword as written (first word of the line).
fn written_keyword(node: &Node) -> &str {
    node.original.split_whitespace().next().unwrap_or("")
}

/// ConsistentInstructionCasing: as BuildKit, the majority casing among instructions written
/// all-lowercase or all-uppercase wins (uppercase on a tie); every instruction not written
/// in it is reported.
fn check_casing(df: &Dockerfile, sink: &mut Sink) {
    let (mut lower, mut upper) = (0, 0);
    for node in &df.nodes {
        let keyword = written_keyword(node);
        if keyword == keyword.to_lowercase() {
            lower += 1;
        } else if keyword == keyword.to_uppercase() {
            upper += 1;
        }
    }
    let majority_lower = lower > upper;
    for node in &df.nodes {
        let keyword = written_keyword(node);
        let wanted = if majority_lower {
            (keyword != keyword.to_lowercase()).then_some("lowercase")
        } else {
            (keyword != keyword.to_uppercase()).then_some("uppercase")
        };
        if let Some(wanted) = wanted {
            sink.warn(
                &CONSISTENT_INSTRUCTION_CASING,
                node.span,
                node.span,
                format!(
                    "Command '{keyword}' should match the case of the command majority ({wanted})"
                ),
            );
        }
    }
}

/// StageNameCasing, FromAsCasing, ReservedStageName, DuplicateStageName.
fn check_from(stage: &Stage, earlier: &HashMap<&str, usize>, sink: &mut Sink) {
    let Some(node) = sink.node(stage.span) else {
        return;
    };
    let [_, as_word, name] = node.args.as_slice() else {
        return;
    };
    // Where the `AS` and the name are written (the FROM span when the line is unusual, for
    // example split by a continuation inside a word).
    let words = sink.words(stage.span, node.args_span.start);
    let (as_at, name_at) = match words.as_slice() {
        [_, (a, a_at), (n, n_at)] if a == as_word && n == name => (*a_at, *n_at),
        _ => (stage.span, stage.span),
    };
    if name != &name.to_lowercase() {
        sink.warn(
            &STAGE_NAME_CASING,
            stage.span,
            name_at,
            format!("Stage name '{name}' should be lowercase"),
        );
    }
    let from = written_keyword(node);
    let from_upper = from == from.to_uppercase();
    let from_lower = from == from.to_lowercase();
    let as_upper = as_word == &as_word.to_uppercase();
    let as_lower = as_word == &as_word.to_lowercase();
    if (from_upper && !as_upper) || (from_lower && !as_lower) {
        sink.warn(
            &FROM_AS_CASING,
            stage.span,
            as_at,
            format!("'{as_word}' and '{from}' keywords' casing do not match"),
        );
    }
    let lower = name.to_lowercase();
    if lower == "scratch" || lower == "context" {
        sink.warn(
            &RESERVED_STAGE_NAME,
            stage.span,
            name_at,
            format!("Stage name should not use the same name as reserved stage {lower:?}"),
        );
    }
    if earlier.contains_key(lower.as_str()) {
        sink.warn(
            &DUPLICATE_STAGE_NAME,
            stage.span,
            name_at,
            format!("Duplicate stage name {lower:?}, stage names should be unique"),
        );
    }
}

fn check_command(command: &Command, later: &[Command], state: StageState, sink: &mut Sink) {
    let span = command.span;
    match &command.instruction {
        Instruction::Run(run) => {
            if let CommandLine::Shell(script) = &run.command {
                let later_run = later
                    .iter()
                    .any(|c| matches!(c.instruction, Instruction::Run(_)));
                if run.heredocs.is_empty() && is_cd_only(script) && later_run {
                    sink.warn(
                        &WORKDIR_INSTEAD_OF_CD,
                        span,
                        span,
                        format!("RUN {} does not change the directory of later instructions; use WORKDIR", script.trim()),
                    );
                }
            }
            check_apt(run, span, sink);
        }
        Instruction::Cmd {
            command: CommandLine::Shell(_),
        }
        | Instruction::Entrypoint {
            command: CommandLine::Shell(_),
        } if !state.shell => {
            let name = if matches!(command.instruction, Instruction::Cmd { .. }) {
                "CMD"
            } else {
                "ENTRYPOINT"
            };
            sink.warn(
                &JSON_ARGS_RECOMMENDED,
                span,
                span,
                format!("JSON arguments recommended for {name} to prevent unintended behavior related to OS signals"),
            );
        }
        Instruction::Add(add) => {
            if let Some(message) = copy_would_do(add) {
                sink.warn(&COPY_INSTEAD_OF_ADD, span, span, message);
            }
        }
        Instruction::Env { .. } | Instruction::Label { .. } => {
            if matches!(command.instruction, Instruction::Env { .. }) {
                check_secrets(command, sink);
            }
            check_legacy_key_value(command, sink);
        }
        Instruction::Arg { .. } => check_secrets(command, sink),
        // A path starting with a variable may well be absolute.
        Instruction::Workdir { path }
            if !state.workdir && !path.starts_with('/') && !path.starts_with('$') =>
        {
            sink.warn(
                &WORKDIR_RELATIVE_PATH,
                span,
                span,
                format!("Relative workdir {path:?} can have unexpected results if the base image changes"),
            );
        }
        Instruction::Maintainer { .. } => sink.warn(
            &MAINTAINER_DEPRECATED,
            span,
            span,
            "Maintainer instruction is deprecated in favor of using label".to_string(),
        ),
        _ => {}
    }
}

/// Why COPY would do for this ADD, or `None` when ADD is needed (or might be).
fn copy_would_do(add: &Copy) -> Option<String> {
    if add.checksum.is_some() || add.keep_git_dir || add.unpack.is_some() {
        return None;
    }
    let mut plain = Vec::new();
    for source in &add.sources {
        if source.starts_with("<<") {
            continue;
        }
        // A variable could hold a URL: we cannot tell.
        if source.contains('$') || is_remote(source) || looks_like_archive(source) {
            return None;
        }
        plain.push(source.as_str());
    }
    if plain.is_empty() {
        return None;
    }
    Some(format!(
        "ADD of local {} {}: COPY does the same without ADD's URL fetching and archive unpacking",
        if plain.len() == 1 {
            "source"
        } else {
            "sources"
        },
        plain.join(" ")
    ))
}

fn is_remote(source: &str) -> bool {
    source.contains("://") || source.starts_with("git@")
}

/// True when the name ends like a (possibly compressed) tar archive, which ADD unpacks.
fn looks_like_archive(source: &str) -> bool {
    let lower = source.to_lowercase();
    const EXTENSIONS: &[&str] = &[
        ".tar", ".tgz", ".tbz", ".tbz2", ".txz", ".tzst", ".tlz", ".taz", ".gz", ".bz2", ".xz",
        ".zst", ".lz4", ".lzma", ".z",
    ];
    EXTENSIONS.iter().any(|e| lower.ends_with(e))
}

/// True when `name` looks like it holds a secret (BuildKit's rule: a `_`-separated part is a
/// secret word and no part is an allowed word).
pub(crate) fn is_secret_name(name: &str) -> bool {
    let parts: Vec<String> = name.split('_').map(str::to_lowercase).collect();
    parts.iter().any(|p| SECRET_WORDS.contains(&p.as_str()))
        && !parts.iter().any(|p| NOT_SECRET_WORDS.contains(&p.as_str()))
}

fn check_secrets(command: &Command, sink: &mut Sink) {
    let (instruction, keys): (&str, Vec<&str>) = match &command.instruction {
        Instruction::Arg { args } => ("ARG", args.iter().map(|a| a.name.as_str()).collect()),
        Instruction::Env { vars } => ("ENV", vars.iter().map(|v| v.key.as_str()).collect()),
        _ => return,
    };
    let from = sink
        .node(command.span)
        .map_or(command.span.start, |n| n.args_span.start);
    for key in keys {
        if !is_secret_name(key) {
            continue;
        }
        let at = sink.locate(command.span, from, key, |rest| {
            rest.is_empty() || rest.starts_with(|c: char| c == '=' || c.is_whitespace())
        });
        sink.warn(
            &SECRETS_USED_IN_ARG_OR_ENV,
            command.span,
            at,
            format!(
                "Do not use ARG or ENV instructions for sensitive data ({instruction} {key:?})"
            ),
        );
    }
}

fn check_legacy_key_value(command: &Command, sink: &mut Sink) {
    let Some(node) = sink.node(command.span) else {
        return;
    };
    // The raw AST keeps ENV/LABEL as (key, value, separator) triples; "" is the legacy form.
    if node
        .args
        .chunks(3)
        .any(|c| c.get(2).is_some_and(|s| s.is_empty()))
    {
        let name = node.keyword.to_uppercase();
        sink.warn(
            &LEGACY_KEY_VALUE_FORMAT,
            command.span,
            command.span,
            format!(
                "\"{name} key=value\" should be used instead of legacy \"{name} key value\" format"
            ),
        );
    }
}

/// The shell script a RUN runs: the shell-form command and its heredoc bodies, or the script
/// of an exec-form `sh -c`.
fn run_script(run: &Run) -> Option<String> {
    match &run.command {
        CommandLine::Shell(line) => {
            let mut script = line.clone();
            for heredoc in &run.heredocs {
                script.push('\n');
                script.push_str(&heredoc.content);
            }
            Some(script)
        }
        CommandLine::Exec(args) => match args.as_slice() {
            [shell, flag, script, ..]
                if flag == "-c"
                    && ["sh", "bash", "/bin/sh", "/bin/bash"].contains(&shell.as_str()) =>
            {
                Some(script.clone())
            }
            _ => None,
        },
    }
}

fn check_apt(run: &Run, span: crate::dockerfile::Span, sink: &mut Sink) {
    let Some(script) = run_script(run) else {
        return;
    };
    let commands = simple_commands(&script);
    let subcommands: Vec<&str> = commands.iter().filter_map(|w| apt_subcommand(w)).collect();
    let installs = subcommands.contains(&"install");
    let upgrades = subcommands.iter().any(|s| {
        matches!(
            *s,
            "install" | "upgrade" | "dist-upgrade" | "full-upgrade" | "build-dep"
        )
    });
    if subcommands.contains(&"update") && !upgrades {
        sink.warn(
            &APT_UPDATE_ALONE,
            span,
            span,
            "apt-get update without an install in the same RUN".to_string(),
        );
    }
    // Lists on a cache or tmpfs mount never reach the layer.
    let lists_mounted = run.mounts.iter().any(|m| {
        matches!(m.kind, MountType::Cache | MountType::Tmpfs)
            && m.target.as_deref().is_some_and(|t| {
                matches!(
                    t.trim_end_matches('/'),
                    "/var/lib/apt" | "/var/lib/apt/lists"
                )
            })
    });
    if installs && !lists_mounted && !commands.iter().any(|w| removes_apt_lists(w)) {
        sink.warn(
            &APT_LISTS_NOT_CLEANED,
            span,
            span,
            "apt-get install without rm -rf /var/lib/apt/lists/* in the same RUN".to_string(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        for name in [
            "PASSWORD",
            "db_password",
            "GITHUB_TOKEN",
            "API_KEY",
            "apikey",
            "AWS_SECRET_ACCESS_KEY",
            "auth",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in [
            "PUBLIC_KEY",
            "KEY_FILE",
            "TOKEN_VERSION",
            "KEYBOARD",
            "MONKEY",
            "PASSWORDS",
            "USER",
        ] {
            assert!(!is_secret_name(name), "{name}");
        }
    }

    #[test]
    fn archives() {
        assert!(looks_like_archive("rootfs.tar.gz"));
        assert!(looks_like_archive("x.TGZ"));
        assert!(!looks_like_archive("app.py"));
        assert!(!looks_like_archive("."));
    }
}
