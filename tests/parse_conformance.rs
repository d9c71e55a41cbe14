//! BuildKit's parser conformance cases (`/work/shared/conformance/buildkit/frontend/dockerfile/parser`),
//! run through the real `rbuild parse` binary.
//!
//! Skipped cases: none.

mod common;

use std::path::PathBuf;

use common::TestEnv;

fn parser_dir() -> PathBuf {
    common::conformance::dockerfile_dir().join("parser")
}

fn case_dirs(sub: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(parser_dir().join(sub))
        .unwrap_or_else(|e| panic!("reading {sub}: {e}"))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn positive_cases_dump_exactly_like_buildkit() {
    let env = TestEnv::new();
    let cases = case_dirs("testfiles");
    assert_eq!(cases.len(), 33, "expected the 33 upstream cases");
    let mut failures = Vec::new();
    for case in &cases {
        let file = case.join("Dockerfile");
        let expected = std::fs::read_to_string(case.join("result")).expect("read result");
        let out = env.run(&["parse", "-f", file.to_str().unwrap()]);
        let stdout = common::stdout(&out);
        if !out.status.success() || stdout != expected {
            failures.push(format!(
                "{}: status {}\n--- got\n{stdout}--- expected\n{expected}--- stderr\n{}",
                case.display(),
                out.status,
                common::stderr(&out)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn negative_cases_fail_with_a_located_error() {
    let env = TestEnv::new();
    let cases = case_dirs("testfiles-negative");
    let names: Vec<_> = cases
        .iter()
        .map(|c| c.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "empty_dockerfile",
            "env_no_value",
            "only_comments",
            "shykes-nested-json"
        ]
    );
    for case in &cases {
        let file = case.join("Dockerfile");
        // Some tools drop empty files; the empty case must still be exercised.
        let file = if file.exists() {
            file
        } else {
            let empty = env.path().join("empty");
            std::fs::write(&empty, "").unwrap();
            empty
        };
        let out = env.run(&["parse", "-f", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{} should fail", case.display());
        let stderr = common::stderr(&out);
        let prefix = format!("{}:", file.display());
        assert!(
            stderr.starts_with(&prefix),
            "{}: error not located: {stderr}",
            case.display()
        );
        assert!(
            stderr.contains("^"),
            "{}: no caret: {stderr}",
            case.display()
        );
    }
}

#[test]
fn negative_case_messages() {
    let env = TestEnv::new();
    let dir = parser_dir().join("testfiles-negative");
    let expect = [
        ("env_no_value", ":3:5: ENV must have two arguments"),
        (
            "shykes-nested-json",
            ":1:5: when using JSON array syntax, arrays must be comprised of strings only",
        ),
        ("only_comments", ":1:1: file with no instructions"),
    ];
    for (case, message) in expect {
        let file = dir.join(case).join("Dockerfile");
        let stderr = env.fails(&["parse", "-f", file.to_str().unwrap()]);
        assert!(stderr.contains(message), "{case}: {stderr}");
    }
}

#[test]
fn testfile_line_gives_buildkit_line_ranges() {
    let env = TestEnv::new();
    let file = parser_dir().join("testfile-line/Dockerfile");
    let out = env.ok(&["parse", "--json", "-f", file.to_str().unwrap()]);
    let json: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    let lines = |span: &serde_json::Value| {
        (
            span["start_line"].as_u64().unwrap(),
            span["end_line"].as_u64().unwrap(),
        )
    };
    assert_eq!(lines(&json["span"]), (5, 31), "root span");
    let stage = &json["stages"][0];
    let mut children = vec![lines(&stage["span"])];
    for instruction in stage["instructions"].as_array().unwrap() {
        children.push(lines(&instruction["span"]));
    }
    assert_eq!(children, [(5, 5), (11, 12), (17, 31)]);
}
