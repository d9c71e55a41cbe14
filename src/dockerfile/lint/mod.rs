//! Static checks for common Dockerfile mistakes (Docker's `build --check` idea).
//!
//! [`lint`] walks a parsed Dockerfile and its typed stages and returns [`LintWarning`]s, each
//! with a rule name (BuildKit's check name where one exists), a message, a short explanation
//! and the source location. The `# check=skip=Rule1,Rule2`, `# check=skip=all` and
//! `# check=error=true` parser directive is honoured, and so is a `# check=skip=...` comment
//! directly above one instruction (for that instruction only), as in BuildKit.
//!
//! ```
//! use rbuild::dockerfile::{instructions::parse_instructions, lint::lint, parse};
//!
//! let df = parse("FROM alpine\nMAINTAINER me\nCMD echo hi\n", "Dockerfile").unwrap();
//! let stages = parse_instructions(&df).unwrap();
//! let report = lint(&df, &stages).unwrap();
//! let rules: Vec<_> = report.warnings.iter().map(|w| w.rule).collect();
//! assert_eq!(rules, ["MaintainerDeprecated", "JSONArgsRecommended"]);
//! assert_eq!(report.warnings[1].span.start_line, 3);
//! ```
//!
//! The checks are static: nothing is pulled. Variables that an external base image sets in its
//! config (`GOPATH` in `golang`, for example) cannot be known, so `UndefinedVar` reports them
//! (BuildKit, which reads the base image config, does not); `PATH` is always taken as set, as
//! BuildKit sets a default.

mod checks;
mod run_command;
mod vars;

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

use super::ast::{Dockerfile, Node, Span};
use super::error::{ErrorKind, ParseError};
use super::instructions::{edit_distance, Stages};

/// A check: its name and a one-sentence explanation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// The name used in output and in `# check=skip=` (BuildKit's name where one exists).
    pub name: &'static str,
    /// Why it matters, in one sentence.
    pub description: &'static str,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LintWarning {
    /// The rule name, such as `UndefinedVar`.
    pub rule: &'static str,
    /// What is wrong here, such as `Usage of undefined variable '$FOO'`.
    pub message: String,
    /// The rule's explanation (same for every warning of the rule).
    pub description: &'static str,
    /// Where: the instruction, or the part of it at fault (a `$VAR`, an ARG/ENV name).
    pub span: Span,
}

/// What [`lint`] found, and how the `# check=` directive wants it treated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LintReport {
    /// Warnings in source order (by position, then rule).
    pub warnings: Vec<LintWarning>,
    /// `# check=error=true`: a build should fail when there are warnings.
    pub error_on_warning: bool,
}

impl LintReport {
    /// The report as `rbuild lint` prints it: one `FILE:LINE:COL: warning: Rule: message`
    /// line per warning (`error:` under `# check=error=true`), the rule's explanation
    /// (`  = Rule: ...`) under its first warning, then a summary line (`FILE: 2 warnings`,
    /// `FILE: no warnings`). Each line ends with a newline.
    pub fn to_text(&self, file: &str) -> String {
        let severity = if self.error_on_warning {
            "error"
        } else {
            "warning"
        };
        let mut out = String::new();
        let mut explained = BTreeSet::new();
        for w in &self.warnings {
            out.push_str(&format!(
                "{file}:{}:{}: {severity}: {}: {}\n",
                w.span.start_line, w.span.start_col, w.rule, w.message
            ));
            if explained.insert(w.rule) {
                out.push_str(&format!("  = {}: {}\n", w.rule, w.description));
            }
        }
        match self.warnings.len() {
            0 => out.push_str(&format!("{file}: no warnings\n")),
            1 => out.push_str(&format!("{file}: 1 warning\n")),
            n => out.push_str(&format!("{file}: {n} warnings\n")),
        }
        out
    }
}

/// Every rule [`lint`] knows, in the order of the README table.
pub const RULES: &[Rule] = &[
    checks::WORKDIR_INSTEAD_OF_CD,
    checks::JSON_ARGS_RECOMMENDED,
    checks::COPY_INSTEAD_OF_ADD,
    checks::SECRETS_USED_IN_ARG_OR_ENV,
    checks::APT_LISTS_NOT_CLEANED,
    checks::APT_UPDATE_ALONE,
    checks::MAINTAINER_DEPRECATED,
    checks::STAGE_NAME_CASING,
    checks::FROM_AS_CASING,
    checks::CONSISTENT_INSTRUCTION_CASING,
    checks::DUPLICATE_STAGE_NAME,
    checks::RESERVED_STAGE_NAME,
    checks::MULTIPLE_INSTRUCTIONS_DISALLOWED,
    checks::LEGACY_KEY_VALUE_FORMAT,
    checks::WORKDIR_RELATIVE_PATH,
    checks::NO_EMPTY_CONTINUATION,
    vars::UNDEFINED_VAR,
    vars::UNDEFINED_ARG_IN_FROM,
];

/// The rule called `name`, if there is one.
pub fn rule(name: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.name == name)
}

/// The settings of a `# check=` directive or comment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckConfig {
    /// `skip=all`.
    pub skip_all: bool,
    /// `skip=Rule1,Rule2` (unknown names are ignored, as in BuildKit).
    pub skip: BTreeSet<String>,
    /// `error=true`.
    pub error: bool,
}

impl CheckConfig {
    /// Parses a check value such as `skip=JSONArgsRecommended,StageNameCasing;error=true`.
    /// The message of the error names the bad option.
    pub fn parse(value: &str) -> Result<CheckConfig, String> {
        let mut config = CheckConfig::default();
        let value = value.trim();
        if value.is_empty() {
            return Ok(config);
        }
        for part in value.split(';') {
            let Some((key, val)) = part.split_once('=') else {
                return Err(format!("invalid check option {part:?}"));
            };
            let val = val.trim();
            match key.trim() {
                "skip" if val == "all" => config.skip_all = true,
                "skip" => config
                    .skip
                    .extend(val.split(',').map(|r| r.trim().to_string())),
                // BuildKit's experimental rules: rbuild has none, so there is nothing to enable.
                "experimental" => {}
                "error" => {
                    config.error = match val {
                        "1" | "t" | "T" | "TRUE" | "true" | "True" => true,
                        "0" | "f" | "F" | "FALSE" | "false" | "False" => false,
                        _ => return Err(format!("invalid boolean {val:?} in check option error")),
                    }
                }
                other => return Err(format!("invalid check option {other:?}")),
            }
        }
        Ok(config)
    }

    /// The `# check=` directive of `df` (defaults when there is none).
    pub fn from_dockerfile(df: &Dockerfile) -> Result<CheckConfig, ParseError> {
        let Some(directive) = &df.directives.check else {
            return Ok(CheckConfig::default());
        };
        CheckConfig::parse(&directive.value)
            .map_err(|message| ParseError::in_file(df, directive.span, ErrorKind::Invalid(message)))
    }

    fn skips(&self, rule: &str) -> bool {
        self.skip_all || self.skip.contains(rule)
    }
}

/// Runs every check over `df` and its typed `stages` (from
/// [`super::instructions::parse_instructions`] of the same `df`). Fails only when the
/// `# check=` directive is malformed.
pub fn lint(df: &Dockerfile, stages: &Stages) -> Result<LintReport, ParseError> {
    let config = CheckConfig::from_dockerfile(df)?;
    let mut sink = Sink::new(df);
    checks::run(df, stages, &mut sink);
    vars::run(df, stages, &mut sink);
    let local = instruction_configs(df);
    let mut warnings: Vec<LintWarning> = sink
        .found
        .into_iter()
        .filter(|(node_start, w)| {
            !config.skips(w.rule) && !local.get(node_start).is_some_and(|c| c.skips(w.rule))
        })
        .map(|(_, w)| w)
        .collect();
    warnings.sort_by(|a, b| {
        (a.span.start, a.span.start_line, a.rule).cmp(&(b.span.start, b.span.start_line, b.rule))
    });
    warnings.dedup();
    Ok(LintReport {
        warnings,
        error_on_warning: config.error,
    })
}

/// The `# check=...` comments directly above instructions, by the byte offset where the
/// instruction starts. A malformed comment is ignored, as in BuildKit.
fn instruction_configs(df: &Dockerfile) -> HashMap<usize, CheckConfig> {
    let mut configs = HashMap::new();
    for node in &df.nodes {
        for comment in &node.comments {
            let Some((name, value)) = comment.split_once('=') else {
                continue;
            };
            if !name.trim().eq_ignore_ascii_case("check") {
                continue;
            }
            let value = value.trim().split(' ').next().unwrap_or("");
            if let Ok(config) = CheckConfig::parse(value) {
                configs.insert(node.span.start, config);
            }
            break;
        }
    }
    configs
}

/// Collects warnings with the instruction they belong to.
pub(crate) struct Sink<'a> {
    df: &'a Dockerfile,
    /// The raw node of each instruction, by the byte offset where it starts.
    nodes: HashMap<usize, &'a Node>,
    /// (start of the instruction, warning).
    found: Vec<(usize, LintWarning)>,
}

impl<'a> Sink<'a> {
    fn new(df: &'a Dockerfile) -> Sink<'a> {
        let nodes = df.nodes.iter().map(|n| (n.span.start, n)).collect();
        Sink {
            df,
            nodes,
            found: Vec::new(),
        }
    }

    /// The raw node of the instruction whose span is `span`.
    pub(crate) fn node(&self, span: Span) -> Option<&'a Node> {
        self.nodes.get(&span.start).copied()
    }

    /// Records a warning of `rule` for the instruction spanning `instruction`, located at
    /// `at` (a part of the instruction, or the instruction itself).
    pub(crate) fn warn(&mut self, rule: &Rule, instruction: Span, at: Span, message: String) {
        self.found.push((
            instruction.start,
            LintWarning {
                rule: rule.name,
                message,
                description: rule.description,
                span: at,
            },
        ));
    }

    /// The span of the first occurrence of `needle` in the source text of the instruction
    /// spanning `instruction`, from byte `from` on, for which `accept` (given the text after
    /// the match) holds; the instruction span itself when there is none.
    pub(crate) fn locate(
        &self,
        instruction: Span,
        from: usize,
        needle: &str,
        accept: impl Fn(&str) -> bool,
    ) -> Span {
        let source = &self.df.source;
        let start = from.clamp(instruction.start, instruction.end.min(source.len()));
        let end = instruction.end.min(source.len());
        let Some(text) = source.get(start..end) else {
            return instruction;
        };
        let mut offset = 0;
        while let Some(found) = text[offset..].find(needle) {
            let at = offset + found;
            let after = at + needle.len();
            if accept(&text[after..]) {
                return self.df.span(start + at, start + after);
            }
            offset = after;
        }
        instruction
    }
}

impl Sink<'_> {
    /// The spans of the whitespace-separated words of the instruction spanning `instruction`,
    /// from byte `from` on, with their text.
    pub(crate) fn words(&self, instruction: Span, from: usize) -> Vec<(&str, Span)> {
        let source = &self.df.source;
        let end = instruction.end.min(source.len());
        let start = from.clamp(instruction.start, end);
        let Some(text) = source.get(start..end) else {
            return Vec::new();
        };
        let mut words = Vec::new();
        let mut word_start = None;
        for (i, c) in text.char_indices().chain([(text.len(), ' ')]) {
            match (c.is_whitespace(), word_start) {
                (true, Some(ws)) => {
                    words.push((&text[ws..i], self.df.span(start + ws, start + i)));
                    word_start = None;
                }
                (false, None) => word_start = Some(i),
                _ => {}
            }
        }
        words
    }
}

/// The closest of `options` to `name` (edit distance below 3, and below the name's length),
/// as BuildKit's suggestions; `None` when nothing is close.
pub(crate) fn suggest<'o>(
    name: &str,
    options: impl IntoIterator<Item = &'o str>,
) -> Option<String> {
    let mut best: Option<(usize, &str)> = None;
    let length = name.chars().count();
    for option in options {
        if option == name {
            return None;
        }
        // The distance is at least the difference in length: skip the hopeless ones.
        if option.len().abs_diff(name.len()) >= 3 && option.chars().count().abs_diff(length) >= 3 {
            continue;
        }
        let distance = edit_distance(name, option);
        if distance < 3 && distance < name.chars().count() && best.is_none_or(|(d, _)| distance < d)
        {
            best = Some((distance, option));
        }
    }
    best.map(|(_, option)| option.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_values() {
        let c = CheckConfig::parse("skip=A, B;error=true").unwrap();
        assert!(c.skip.contains("A") && c.skip.contains("B") && c.error && !c.skip_all);
        assert!(CheckConfig::parse(" skip=all ").unwrap().skip_all);
        assert!(CheckConfig::parse("error=maybe").is_err());
        assert!(CheckConfig::parse("bogus=1").is_err());
        assert!(CheckConfig::parse("skip").is_err());
        assert_eq!(CheckConfig::parse("").unwrap(), CheckConfig::default());
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            suggest("VERSOIN", ["VERSION", "OTHER"]).as_deref(),
            Some("VERSION")
        );
        assert_eq!(suggest("ABC", ["XYZ"]), None);
        assert_eq!(suggest("A", ["B"]), None);
        assert_eq!(suggest("FOO", ["FOO", "FOP"]), None);
    }

    #[test]
    fn every_rule_is_listed_once() {
        let names: BTreeSet<_> = RULES.iter().map(|r| r.name).collect();
        assert_eq!(names.len(), RULES.len());
        assert!(RULES.iter().all(|r| !r.description.contains("http")));
    }
}
