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
    if let Err(e) = common::golden::check(path, actual) {
        failures.push(e);
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
        let stdout = common::stdout(&out);
        let stderr = common::stderr(&out);
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
            check(&dir.join("dump"), &common::stdout(&dump), &mut failures);
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
        let stderr = common::stderr(&out);
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
        let source = shown_text(&std::fs::read(dir.join("Dockerfile")).unwrap());
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

/// The text of a Dockerfile as an error snippet shows it: a UTF-16 file decoded, invalid UTF-8
/// as U+FFFD, a NUL byte as U+2400.
fn shown_text(bytes: &[u8]) -> String {
    let utf16 = |big_endian: bool| {
        let units = bytes[2..].chunks_exact(2).map(|c| {
            let pair = [c[0], c[1]];
            if big_endian {
                u16::from_be_bytes(pair)
            } else {
                u16::from_le_bytes(pair)
            }
        });
        char::decode_utf16(units).map(Result::unwrap).collect()
    };
    match bytes {
        [0xFF, 0xFE, ..] => utf16(false),
        [0xFE, 0xFF, ..] => utf16(true),
        _ => String::from_utf8_lossy(bytes).replace('\0', "\u{2400}"),
    }
}

/// Encodings and bytes that are not Dockerfile text: each rejected at its line and column
/// (issue 10: a UTF-16 file parsed to garbage with exit 0, invalid UTF-8 failed the build with
/// no line, NUL bytes were silently dropped from RUN).
#[test]
fn bad_encodings_and_bytes_are_located() {
    let dir = common::testdata("dockerfile");
    for (case, head) in [
        (
            "err-utf16-le",
            "Dockerfile:1:1: the file is UTF-16 (little-endian) encoded",
        ),
        (
            "err-utf16-be",
            "Dockerfile:1:1: the file is UTF-16 (big-endian) encoded",
        ),
        (
            "err-invalid-utf8",
            "Dockerfile:4:11: invalid UTF-8 (byte 0xe9)",
        ),
        (
            "err-nul-byte",
            "Dockerfile:2:12: NUL byte in the Dockerfile",
        ),
    ] {
        let out = parse(&dir.join(case), false);
        let stderr = common::stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{case}: {stderr}");
        assert!(stderr.starts_with(head), "{case}: {stderr}");
    }
    // A UTF-8 byte order mark is skipped (BuildKit does too): directives after it still count.
    let out = parse(&dir.join("utf8-bom"), false);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(common::stdout(&out).contains("(run \"echo a   b\")"));
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
