//! The CLI's documentation stays true (issue 14):
//! - every long flag of every visible command appears in the docs (`README.md` or `docs/`), so
//!   a flag added without a word in the docs fails here;
//! - `build --help` and `run --help` match the snapshots in `testdata/help/`, so a change to
//!   the help text is a reviewed change. After an intended change, run with `RBUILD_BLESS=1`
//!   and review the diff.

mod common;

use std::path::Path;
use std::process::Command;

use clap::CommandFactory;

/// README.md and every Markdown file under docs/, concatenated.
fn docs_text() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut text = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let mut dirs = vec![root.join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read docs/") {
            let path = entry.expect("docs/ entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                text.push_str(&std::fs::read_to_string(&path).expect("read doc"));
            }
        }
    }
    text
}

/// `(command path, --flag)` for every visible long flag of `cmd` and its visible subcommands.
fn long_flags(cmd: &clap::Command, path: &str, out: &mut Vec<(String, String)>) {
    for arg in cmd.get_arguments() {
        if arg.is_hide_set() {
            continue;
        }
        if let Some(long) = arg.get_long() {
            if long != "help" && long != "version" {
                out.push((path.to_string(), format!("--{long}")));
            }
        }
    }
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        let sub_path = format!("{path} {}", sub.get_name());
        long_flags(sub, sub_path.trim(), out);
    }
}

#[test]
fn every_long_flag_of_every_command_is_documented() {
    let docs = docs_text();
    let mut flags = Vec::new();
    long_flags(&rbuild::cli::Cli::command(), "rbuild", &mut flags);
    assert!(
        flags.len() > 100,
        "the walk found too few flags: {}",
        flags.len()
    );
    // A flag counts as documented when its long form appears followed by something that cannot
    // continue a flag name (so `--tag` is not satisfied by `--tags`).
    let documented = |flag: &str| {
        docs.match_indices(flag).any(|(at, _)| {
            !docs[at + flag.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
        })
    };
    let missing: Vec<String> = flags
        .iter()
        .filter(|(_, flag)| !documented(flag))
        .map(|(cmd, flag)| format!("{cmd} {flag}"))
        .collect();
    assert!(
        missing.is_empty(),
        "flags with no word in README.md or docs/:\n{}",
        missing.join("\n")
    );
}

fn check_help_snapshot(command: &str) {
    let out = Command::new(common::rbuild_bin())
        .args([command, "--help"])
        .env_remove("COLUMNS")
        .output()
        .expect("run rbuild");
    assert!(out.status.success(), "{command} --help failed");
    let actual = String::from_utf8(out.stdout).expect("utf-8 help");
    let expected_file = common::testdata("help").join(format!("{command}.txt"));
    if std::env::var_os("RBUILD_BLESS").is_some() {
        std::fs::create_dir_all(expected_file.parent().unwrap()).unwrap();
        std::fs::write(&expected_file, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&expected_file)
        .unwrap_or_else(|e| panic!("{}: {e} (run with RBUILD_BLESS=1)", expected_file.display()));
    assert!(
        actual == expected,
        "`rbuild {command} --help` differs from {} (RBUILD_BLESS=1 to accept):\n{}",
        expected_file.display(),
        line_diff(&expected, &actual)
    );
}

/// The lines only in `expected` (`-`) and only in `actual` (`+`), in order: enough to review.
fn line_diff(expected: &str, actual: &str) -> String {
    let exp: Vec<&str> = expected.lines().collect();
    let act: Vec<&str> = actual.lines().collect();
    let mut out = String::new();
    for line in exp.iter().filter(|l| !act.contains(l)) {
        out.push_str(&format!("-{line}\n"));
    }
    for line in act.iter().filter(|l| !exp.contains(l)) {
        out.push_str(&format!("+{line}\n"));
    }
    out
}

#[test]
fn build_help_matches_its_snapshot() {
    check_help_snapshot("build");
}

#[test]
fn run_help_matches_its_snapshot() {
    check_help_snapshot("run");
}
