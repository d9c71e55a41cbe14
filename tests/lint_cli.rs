//! `rbuild lint` through the real binary: output formats, exit codes, check directives,
//! stdin, and the parse error path.

mod common;

use common::{stderr, stdout, testdata, TestEnv};

/// Writes `source` as `Dockerfile` in the environment's directory.
fn dockerfile(env: &TestEnv, source: &str) {
    std::fs::write(env.path().join("Dockerfile"), source).unwrap();
}

#[test]
fn mistakes_fixture_matches_expected_output_and_exits_1() {
    let env = TestEnv::new();
    let source = std::fs::read_to_string(testdata("lint/mistakes/Dockerfile")).unwrap();
    dockerfile(&env, &source);
    let out = env.run(&["lint"]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let expected = std::fs::read_to_string(testdata("lint/mistakes/expected.txt")).unwrap();
    assert_eq!(stdout(&out), expected);
    assert_eq!(stderr(&out), "");
}

#[test]
fn clean_dockerfile_exits_0() {
    let env = TestEnv::new();
    let path = testdata("lint/clean/Dockerfile");
    let out = env.run(&["lint", "-f", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "stdout: {}", stdout(&out));
    assert_eq!(stdout(&out), format!("{}: no warnings\n", path.display()));
}

#[test]
fn warning_lines_name_file_line_column_and_rule() {
    let env = TestEnv::new();
    std::fs::write(
        env.path().join("app.Dockerfile"),
        "FROM alpine\n\nCMD  echo hi\n",
    )
    .unwrap();
    let out = env.run(&["lint", "--file", "app.Dockerfile"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "app.Dockerfile:3:1: warning: JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals"
    );
    assert!(lines[1].starts_with("  = JSONArgsRecommended: "), "{text}");
    assert_eq!(lines.last(), Some(&"app.Dockerfile: 1 warning"));
}

#[test]
fn json_format() {
    let env = TestEnv::new();
    dockerfile(&env, "FROM alpine\nWORKDIR /app/$SUB\nMAINTAINER me\n");
    let out = env.run(&["lint", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(json["file"], "Dockerfile");
    assert_eq!(json["error_on_warning"], false);
    let warnings = json["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 2);
    assert_eq!(warnings[0]["rule"], "UndefinedVar");
    assert_eq!(warnings[0]["line"], 2);
    assert_eq!(warnings[0]["column"], 14);
    assert_eq!(warnings[0]["end_column"], 18);
    assert_eq!(warnings[0]["message"], "Usage of undefined variable '$SUB'");
    assert!(!warnings[0]["description"].as_str().unwrap().is_empty());
    assert_eq!(warnings[1]["rule"], "MaintainerDeprecated");
    assert_eq!(warnings[1]["line"], 3);

    dockerfile(&env, "FROM alpine\n");
    let out = env.run(&["lint", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["warnings"], serde_json::json!([]));
}

#[test]
fn reads_stdin() {
    let env = TestEnv::new();
    let out = env.run_with_stdin(&["lint", "-f", "-"], b"FROM alpine AS Build\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).starts_with(
            "Dockerfile:1:16: warning: StageNameCasing: Stage name 'Build' should be lowercase\n"
        ),
        "{}",
        stdout(&out)
    );
}

#[test]
fn check_directive_skip_and_error() {
    let env = TestEnv::new();
    dockerfile(
        &env,
        "# check=skip=JSONArgsRecommended,MaintainerDeprecated\nFROM alpine\nMAINTAINER me\nCMD run\n",
    );
    let out = env.run(&["lint"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(stdout(&out), "Dockerfile: no warnings\n");

    dockerfile(&env, "# check=skip=all\nFROM alpine\nMAINTAINER me\n");
    assert_eq!(env.run(&["lint"]).status.code(), Some(0));

    // error=true: the same warnings, reported as errors; the exit status is 1 either way.
    dockerfile(&env, "# check=error=true\nFROM alpine\nMAINTAINER me\n");
    let out = env.run(&["lint"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).starts_with("Dockerfile:3:1: error: MaintainerDeprecated: "),
        "{}",
        stdout(&out)
    );
    let out = env.run(&["lint", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["error_on_warning"], true);

    // Only MaintainerDeprecated is skipped: the CMD still warns.
    dockerfile(
        &env,
        "# check=skip=MaintainerDeprecated\nFROM alpine\nMAINTAINER me\nCMD run\n",
    );
    let out = env.run(&["lint"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).starts_with("Dockerfile:4:1: warning: JSONArgsRecommended"));
    assert!(!stdout(&out).contains("MaintainerDeprecated"));
}

#[test]
fn parse_error_prints_location_with_caret_and_exits_1() {
    let env = TestEnv::new();
    dockerfile(&env, "FROM alpine\nRUNN echo hi\n");
    let out = env.run(&["lint"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out),
        "Dockerfile:2:1: unknown instruction: RUNN (did you mean RUN?)\n  2 | RUNN echo hi\n      ^\n"
    );

    // Typed-instruction errors take the same path.
    dockerfile(&env, "FROM alpine\nCOPY --bogus a b\n");
    let out = env.run(&["lint", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).starts_with("Dockerfile:2:6: unknown flag: --bogus"),
        "{}",
        stderr(&out)
    );

    // So does a malformed check directive.
    dockerfile(&env, "# check=skip=all;colour=red\nFROM alpine\n");
    let out = env.run(&["lint"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("Dockerfile:1:1: invalid check option \"colour\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn missing_file_is_an_error() {
    let env = TestEnv::new();
    let err = env.fails(&["lint", "-f", "nope/Dockerfile"]);
    assert!(err.contains("reading nope/Dockerfile"), "{err}");
}

#[test]
fn bad_format_is_rejected() {
    let env = TestEnv::new();
    dockerfile(&env, "FROM alpine\n");
    let err = env.fails(&["lint", "--format", "xml"]);
    assert!(err.contains("xml"), "{err}");
}
