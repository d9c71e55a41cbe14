//! Golden cases in `testdata/dockerfile/<case>/`, run through the real `rbuild parse` binary
//! (with `-f Dockerfile` inside the case directory, so errors name `Dockerfile`).
//!
//! Each case has a `Dockerfile` and either
//! - `error`: the exact stderr of `rbuild parse --json` (message, line:col, line and caret), which
//!   must exit with status 1; or
//! - `dump` (BuildKit dump of `rbuild parse`) and `parse.json` (`rbuild parse --json`), both
//!   compared byte for byte.
//!
//! To regenerate the expected files after an intended change, run with `RBUILD_BLESS=1` and
//! review the diff.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn cases() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(common::testdata("dockerfile"))
        .expect("read testdata/dockerfile")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.join("Dockerfile").exists())
        .collect();
    dirs.sort();
    dirs
}

fn parse(dir: &Path, json: bool) -> std::process::Output {
    let mut cmd = Command::new(common::rbuild_bin());
    cmd.current_dir(dir).arg("parse").args(["-f", "Dockerfile"]);
    if json {
        cmd.arg("--json");
    }
    cmd.output().expect("run rbuild")
}

fn check(path: &Path, actual: &str, failures: &mut Vec<String>) {
    if std::env::var_os("RBUILD_BLESS").is_some() {
        std::fs::write(path, actual).expect("write expected file");
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    if expected != actual {
        failures.push(format!(
            "{}:\n--- expected\n{expected}\n--- got\n{actual}",
            path.display()
        ));
    }
}

#[test]
fn golden_cases() {
    let cases = cases();
    assert!(cases.len() >= 40, "only {} cases found", cases.len());
    let mut failures = Vec::new();
    for dir in &cases {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let out = parse(dir, true);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if name.starts_with("err-") {
            if out.status.code() != Some(1) || !stdout.is_empty() {
                failures.push(format!(
                    "{name}: expected exit 1 and no output, got {}",
                    out.status
                ));
            }
            check(&dir.join("error"), &stderr, &mut failures);
        } else {
            if !out.status.success() {
                failures.push(format!("{name}: failed: {stderr}"));
                continue;
            }
            check(&dir.join("parse.json"), &stdout, &mut failures);
            let dump = parse(dir, false);
            check(
                &dir.join("dump"),
                &String::from_utf8_lossy(&dump.stdout),
                &mut failures,
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Every error case names the file, a line and a column, quotes that line and puts a caret
/// under the column, whatever its message.
#[test]
fn errors_show_file_line_col_and_caret() {
    for dir in cases().iter().filter(|d| d.ends_with_err()) {
        let out = parse(dir, true);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mut lines = stderr.lines();
        let head = lines.next().unwrap_or_default();
        let mut parts = head.splitn(4, ':');
        assert_eq!(
            parts.next(),
            Some("Dockerfile"),
            "{}: {head}",
            dir.display()
        );
        let line: usize = parts.next().unwrap().parse().expect("line number");
        let col: usize = parts.next().unwrap().parse().expect("column");
        let source = std::fs::read_to_string(dir.join("Dockerfile")).unwrap();
        let source_line = source
            .lines()
            .nth(line - 1)
            .unwrap_or("")
            .trim_end_matches('\r');
        let quoted = lines.next().unwrap_or_default();
        assert_eq!(
            quoted,
            format!("  {line} | {source_line}"),
            "{}",
            dir.display()
        );
        let caret = lines.next().unwrap_or_default();
        let prefix = format!("  {line} | ").len();
        assert_eq!(
            caret.chars().count(),
            prefix + col,
            "{}: caret not under column {col}",
            dir.display()
        );
        assert!(caret.ends_with('^'));
    }
}

trait IsErrCase {
    fn ends_with_err(&self) -> bool;
}

impl IsErrCase for PathBuf {
    fn ends_with_err(&self) -> bool {
        self.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("err-"))
    }
}
