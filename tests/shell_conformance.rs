//! BuildKit's shell lexer conformance data (`envVarTest`, `wordsTest`), run against
//! `rbuild::dockerfile::shell`. The data format is described in the conformance README.

mod common;

use std::path::PathBuf;

use rbuild::dockerfile::shell::ShellLex;

fn data_file(name: &str) -> PathBuf {
    common::conformance::dockerfile_dir()
        .join("shell")
        .join(name)
}

fn read(name: &str) -> String {
    let path = data_file(name);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
}

/// `PLATFORM | INPUT | EXPECTED`, through `process_word` with a fixed environment.
///
/// `W` lines are Windows-only: there, variable names are case-insensitive (`$pwd` finds `PWD`).
/// rbuild builds Linux images with case-sensitive lookups, so they are skipped and counted.
#[test]
fn env_var_test() {
    let lex = ShellLex::new('\\');
    let env = [
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ];
    let (mut passed, mut skipped_windows, mut expected_errors) = (0, 0, 0);
    let mut failures = Vec::new();
    for (index, line) in read("envVarTest").lines().enumerate() {
        let line_number = index + 1;
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.trim().split('|').collect();
        assert_eq!(
            fields.len(),
            3,
            "line {line_number}: want 3 fields: {line:?}"
        );
        let (platform, input, expected) = (fields[0].trim(), fields[1].trim(), fields[2].trim());
        match platform {
            "A" | "U" => {}
            "W" => {
                skipped_windows += 1;
                continue;
            }
            other => panic!("line {line_number}: unknown platform {other:?}"),
        }
        let got = lex.process_word(input, &env);
        let ok = match (&got, expected) {
            (Err(_), "error") => {
                expected_errors += 1;
                true
            }
            (Ok(result), expected) => expected != "error" && result == expected,
            (Err(_), _) => false,
        };
        if ok {
            passed += 1;
        } else {
            failures.push(format!(
                "line {line_number}: {input:?} gave {got:?}, want {expected:?}"
            ));
        }
    }
    println!(
        "envVarTest: {passed} passed ({expected_errors} of them expected errors), {} failed, \
         {skipped_windows} skipped (W: Windows-only, case-insensitive names)",
        failures.len()
    );
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
    // The data file has 230 test lines (see the conformance README): all must have run.
    assert_eq!(
        passed + skipped_windows,
        230,
        "not every line of envVarTest ran"
    );
}

/// `INPUT|EXPECTED` through `process_words`, with `ENV name=value` lines adding to the
/// environment as the file goes.
#[test]
fn words_test() {
    let lex = ShellLex::new('\\');
    let mut env: Vec<(String, String)> = Vec::new();
    let mut passed = 0;
    let mut failures = Vec::new();
    for (index, line) in read("wordsTest").lines().enumerate() {
        let line_number = index + 1;
        if line.starts_with('#') {
            continue;
        }
        if let Some(assignment) = line.strip_prefix("ENV ") {
            let assignment = assignment.trim_start_matches(' ');
            let (name, value) = assignment.split_once('=').unwrap_or((assignment, ""));
            env.push((name.to_string(), value.to_string()));
            continue;
        }
        let fields: Vec<&str> = line.split('|').collect();
        assert_eq!(
            fields.len(),
            2,
            "line {line_number}: want exactly one '|': {line:?}"
        );
        let input = fields[0].trim();
        let expected: Vec<&str> = fields[1].trim_start_matches(' ').split(',').collect();
        let got = match lex.process_words(input, &env) {
            Ok(words) => words,
            Err(_) => vec!["error".to_string()],
        };
        if got == expected {
            passed += 1;
        } else {
            failures.push(format!(
                "line {line_number}: {input:?} gave {got:?}, want {expected:?}"
            ));
        }
    }
    println!("wordsTest: {passed} passed, {} failed", failures.len());
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
    assert_eq!(passed, 24, "wordsTest has 24 test lines");
}
