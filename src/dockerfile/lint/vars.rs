//! UndefinedVar and UndefinedArgInFrom: a small declared-names pass over the stages.
//!
//! Only names are tracked, never values. In scope for a FROM line: the global ARGs (before the
//! first FROM), the automatic platform args (`TARGETPLATFORM`, `BUILDARCH`, ...) and the proxy
//! args. In scope inside a stage: the ENV and ARG names of a base stage built in this
//! Dockerfile (BuildKit adds ARG values to the environment the next stage starts from),
//! the ARG and ENV names declared earlier in the stage, the proxy args, and `PATH` (BuildKit
//! always sets one). As in BuildKit, the platform args and global ARGs need an `ARG NAME` in
//! the stage to be visible there; the message says so when that is the mistake.
//!
//! Only instructions whose words the builder expands are checked (FROM, COPY, ADD, ENV, ARG,
//! LABEL, EXPOSE, STOPSIGNAL, USER, VOLUME, WORKDIR); RUN, CMD, ENTRYPOINT and HEALTHCHECK are
//! expanded by the shell in the container, where the image's environment applies.

use std::collections::{BTreeMap, HashMap};

use super::{suggest, Rule, Sink};
use crate::dockerfile::ast::{Dockerfile, Span};
use crate::dockerfile::eval::PROXY_ARGS;
use crate::dockerfile::instructions::{Instruction, Stages};
use crate::dockerfile::shell::ShellLex;

pub(crate) const UNDEFINED_VAR: Rule = Rule {
    name: "UndefinedVar",
    description: "Variables should be declared with ARG or ENV before use (variables set by an external base image's config are not visible to this static check)",
};
pub(crate) const UNDEFINED_ARG_IN_FROM: Rule = Rule {
    name: "UndefinedArgInFrom",
    description: "A variable in FROM must be a global ARG (declared before the first FROM) or an automatic platform arg",
};

/// The automatic platform args: set in the global scope only.
const PLATFORM_ARGS: &[&str] = &[
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
];

/// Declared names (the value is a placeholder so that `${v:?}` does not fail).
type Scope = BTreeMap<String, &'static str>;

fn declare(scope: &mut Scope, name: &str) {
    scope.insert(name.to_string(), "x");
}

/// Runs the pass.
pub(crate) fn run(df: &Dockerfile, stages: &Stages, sink: &mut Sink) {
    let lex = ShellLex::new(df.directives.escape);
    let mut global: Scope = Scope::new();
    for name in PLATFORM_ARGS.iter().chain(&PROXY_ARGS) {
        declare(&mut global, name);
    }
    let mut meta_names: Vec<String> = Vec::new();
    for command in &stages.meta_args {
        if let Instruction::Arg { args } = &command.instruction {
            for arg in args {
                if let Some(default) = &arg.default {
                    let mut ctx = Context {
                        lex: &lex,
                        sink,
                        command_span: command.span,
                        meta_names: &[],
                    };
                    ctx.check_word(default, &global, &UNDEFINED_VAR);
                }
                declare(&mut global, &arg.name);
                meta_names.push(arg.name.clone());
            }
        }
    }

    // The ENV and ARG names in scope at the end of each named stage.
    let mut stage_env: HashMap<String, Scope> = HashMap::new();
    for stage in &stages.stages {
        let mut from = Context {
            lex: &lex,
            sink,
            command_span: stage.span,
            meta_names: &[],
        };
        from.check_word(&stage.base, &global, &UNDEFINED_ARG_IN_FROM);
        if let Some(platform) = &stage.platform {
            from.check_word(platform, &global, &UNDEFINED_ARG_IN_FROM);
        }

        // ARG and ENV names share one scope: only names matter here.
        let mut scope: Scope = stage_env
            .get(&stage.base.to_lowercase())
            .cloned()
            .unwrap_or_default();
        declare(&mut scope, "PATH");
        for name in &PROXY_ARGS {
            declare(&mut scope, name);
        }
        for command in &stage.instructions {
            let mut ctx = Context {
                lex: &lex,
                sink,
                command_span: command.span,
                meta_names: &meta_names,
            };
            match &command.instruction {
                Instruction::Arg { args: defs } => {
                    // Each ARG sees the ones before it on the same line.
                    for def in defs {
                        if let Some(default) = &def.default {
                            ctx.check_word(default, &scope, &UNDEFINED_VAR);
                        }
                        declare(&mut scope, &def.name);
                    }
                }
                Instruction::Env { vars } => {
                    // All values of one ENV see the environment before it.
                    for var in vars {
                        ctx.check_word(&var.key, &scope, &UNDEFINED_VAR);
                        ctx.check_word(&var.value, &scope, &UNDEFINED_VAR);
                    }
                    for var in vars {
                        declare(&mut scope, &var.key);
                    }
                }
                instruction => {
                    for word in expanded_words(instruction) {
                        ctx.check_word(word, &scope, &UNDEFINED_VAR);
                    }
                }
            }
        }
        if let Some(name) = &stage.name {
            // BuildKit puts ARG values into the stage's environment, so a stage built on
            // this one sees its ARGs too, not only its ENVs.
            stage_env.insert(name.clone(), scope);
        }
    }
}

/// The words of an instruction that the builder expands (ARG and ENV are handled apart).
fn expanded_words(instruction: &Instruction) -> Vec<&String> {
    match instruction {
        Instruction::Copy(copy) | Instruction::Add(copy) => copy
            .sources
            .iter()
            .filter(|s| !s.starts_with("<<"))
            .chain([&copy.dest])
            .chain(&copy.from)
            .chain(&copy.chown)
            .chain(&copy.chmod)
            .chain(&copy.checksum)
            .collect(),
        Instruction::Label { labels } => labels.iter().flat_map(|l| [&l.key, &l.value]).collect(),
        Instruction::Volume { paths } => paths.iter().collect(),
        Instruction::Expose { ports } => ports.iter().collect(),
        Instruction::Workdir { path } => vec![path],
        Instruction::Stopsignal { signal } => vec![signal],
        Instruction::User { user, group } => [user].into_iter().chain(group).collect(),
        _ => Vec::new(),
    }
}

/// What a check of one instruction needs.
struct Context<'a, 's, 'd> {
    lex: &'a ShellLex,
    sink: &'s mut Sink<'d>,
    command_span: Span,
    /// Global ARG names (to explain that they need redeclaring in the stage).
    meta_names: &'a [String],
}

impl Context<'_, '_, '_> {
    /// Expands `word` against `scope` and reports every unset variable it refers to, once
    /// per instruction. Words that do not expand (syntax errors) are left to the build.
    fn check_word(&mut self, word: &str, scope: &Scope, rule: &Rule) {
        if !word.contains('$') {
            return;
        }
        let Ok((_, matches)) = self.lex.process_word_with_matches(word, scope) else {
            return;
        };
        for name in &matches.unmatched {
            let at = locate_variable(self.sink, self.command_span, name);
            let message = message(name, scope, self.meta_names, rule);
            self.sink.warn(rule, self.command_span, at, message);
        }
    }
}

/// The message for the unset `name`, with a suggestion or a hint when there is one.
fn message(name: &str, scope: &Scope, meta_names: &[String], rule: &Rule) -> String {
    let suggestion = || {
        let options = scope
            .keys()
            .map(String::as_str)
            .filter(|k| !PROXY_ARGS.contains(k));
        suggest(name, options)
    };
    if rule.name == UNDEFINED_ARG_IN_FROM.name {
        match suggestion() {
            Some(s) => format!("FROM argument '{name}' is not declared (did you mean {s}?)"),
            None => format!("FROM argument '{name}' is not declared"),
        }
    } else if PLATFORM_ARGS.contains(&name) || meta_names.iter().any(|m| m == name) {
        format!("Usage of undefined variable '${name}' (it is a global arg: declare it in the stage with ARG {name})")
    } else {
        match suggestion() {
            Some(s) => format!("Usage of undefined variable '${name}' (did you mean ${s}?)"),
            None => format!("Usage of undefined variable '${name}'"),
        }
    }
}

/// Where `$name` or `${name` is written in the instruction; the instruction when not found.
fn locate_variable(sink: &Sink, command_span: Span, name: &str) -> Span {
    // From the keyword on: flags (`--chown=$UID`) come before the arguments.
    let from = command_span.start;
    let not_name_char =
        |rest: &str| !rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
    let plain = sink.locate(command_span, from, &format!("${name}"), not_name_char);
    let braced = sink.locate(command_span, from, &format!("${{{name}"), not_name_char);
    match (plain == command_span, braced == command_span) {
        (false, false) => {
            if plain.start <= braced.start {
                plain
            } else {
                braced
            }
        }
        (false, true) => plain,
        (true, false) => braced,
        (true, true) => command_span,
    }
}
