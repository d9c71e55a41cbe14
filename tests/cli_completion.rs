//! `rbuild completion SHELL` and `rbuild man DIR` (issue 14).

mod common;

use common::{rbuild_bin, TestEnv};
use std::process::Command;

/// Runs `script` in bash with `$RBUILD` set to the binary; returns stdout, asserting that bash
/// succeeded and printed nothing on stderr.
fn bash(script: &str) -> String {
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", script])
        .env("RBUILD", rbuild_bin())
        .output()
        .expect("bash");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty(),
        "{script}: {stderr}"
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn bash_completion_loads_and_completes_commands_and_values() {
    let registered = bash(r#"source <("$RBUILD" completion bash); complete -p rbuild"#);
    assert!(registered.contains("-F _rbuild rbuild"), "{registered}");
    // What bash offers after `rbuild ima` and after `rbuild build --progress `.
    let complete = |words: &str| {
        bash(&format!(
            r#"source <("$RBUILD" completion bash)
COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))
COMP_LINE="${{COMP_WORDS[*]}}"; COMP_POINT=${{#COMP_LINE}}
_rbuild rbuild "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
echo "${{COMPREPLY[*]}}""#
        ))
    };
    let commands: Vec<String> = complete("rbuild ima")
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(commands, ["images", "image"]);
    assert_eq!(
        complete("rbuild build --progress ''").trim(),
        "auto tty plain quiet"
    );
    assert_eq!(
        complete("rbuild --log-level ''").trim(),
        "error warn info debug"
    );
}

#[test]
fn zsh_and_fish_scripts_and_unknown_shells() {
    let env = TestEnv::new();
    let zsh = env.ok(&["completion", "zsh"]);
    assert!(zsh.starts_with("#compdef rbuild"), "{zsh}");
    let fish = env.ok(&["completion", "fish"]);
    assert!(
        fish.contains("complete -c rbuild") && fish.contains("-l progress"),
        "{fish}"
    );
    let err = env.fails(&["completion", "tcsh"]);
    assert!(
        err.starts_with("rbuild: error: invalid value 'tcsh'"),
        "{err}"
    );
    assert!(err.contains("bash") && err.contains("fish"), "{err}");
}

#[test]
fn completion_to_a_closed_pipe_exits_quietly() {
    let out = bash(r#""$RBUILD" completion bash | head -c 10; echo " ${PIPESTATUS[0]}""#);
    assert!(out.ends_with(" 0\n"), "{out:?}");
}

#[test]
fn man_writes_a_page_per_command() {
    let env = TestEnv::new();
    let dir = env.path().join("man1");
    env.ok(&["man", dir.to_str().unwrap()]);
    for page in [
        "rbuild.1",
        "rbuild-build.1",
        "rbuild-run.1",
        "rbuild-image-prune.1",
    ] {
        let text =
            std::fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.starts_with(".ie") || text.contains(".TH "), "{page}");
    }
    // man renders the build page with its options.
    let out = Command::new("man")
        .arg("-l")
        .arg(dir.join("rbuild-build.1"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .expect("man (Debian package man-db)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("rbuild-build - Build an image from a Dockerfile"),
        "{text}"
    );
    assert!(
        text.contains("--tag") && text.contains("--progress"),
        "{text}"
    );
}
