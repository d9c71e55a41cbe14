//! `rbuild [BUILD OPTIONS] CONTEXT` is `rbuild build [BUILD OPTIONS] CONTEXT` (issue 14).

mod build_support;

use build_support::{assert_success, BuildEnv};
use std::process::{Command, Output, Stdio};

const DOCKERFILE: &str = "FROM busybox\nRUN echo built > /out\nCOPY hello /hello\n";

/// Runs rbuild in `env`'s store and directory with `args`, a fixed SOURCE_DATE_EPOCH.
fn rbuild(env: &BuildEnv, args: &[&str]) -> Output {
    env.env
        .cmd()
        .args(args)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .stdin(Stdio::null())
        .output()
        .expect("spawn rbuild")
}

fn image_id(env: &BuildEnv, image: &str) -> String {
    env.inspect(image)["Id"].as_str().unwrap().to_string()
}

#[test]
fn build_without_the_word_build_makes_the_same_image() {
    let with_word = BuildEnv::new();
    let without = BuildEnv::same_base_as(&with_word);
    for env in [&with_word, &without] {
        env.context("app", &[("Dockerfile", DOCKERFILE), ("hello", "hi\n")]);
    }
    let out = rbuild(
        &with_word,
        &["build", "--progress=plain", "-t", "x:1", "app"],
    );
    assert_success("rbuild build -t x:1 app", &out);
    // `cmd()` puts the global `--root DIR` first, then come the build options, as CI calls it.
    let out = rbuild(&without, &["--progress=plain", "-t", "x:1", "app"]);
    assert_success("rbuild -t x:1 app", &out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("RUN echo built"), "build progress: {err}");
    let id = image_id(&with_word, "x:1");
    assert!(id.starts_with("sha256:"), "{id:?}");
    assert_eq!(id, image_id(&without, "x:1"), "same image both ways");

    // `-f` and `.` as the context, from inside the context directory.
    std::fs::write(without.env.path().join("app/Dockerfile.prod"), DOCKERFILE).unwrap();
    let out = without
        .env
        .cmd()
        .current_dir(without.env.path().join("app"))
        .args(["-f", "Dockerfile.prod", "-t", "app:2", "-q", "."])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    assert_success("rbuild -f Dockerfile.prod -t app:2 -q .", &out);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), id);
}

#[test]
fn commands_still_win_and_a_context_named_images_is_a_path() {
    let env = BuildEnv::new();
    // `rbuild images` lists images; it is not a build of a directory named images.
    env.context("images", &[("Dockerfile", DOCKERFILE), ("hello", "hi\n")]);
    let list = env.env.ok(&["images"]);
    assert!(list.starts_with("REPOSITORY"), "{list}");
    assert!(list.contains("busybox"), "{list}");
    // `./images` is the context directory.
    let out = rbuild(&env, &["-t", "from-dir:1", "-q", "./images"]);
    assert_success("rbuild -t from-dir:1 ./images", &out);
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(image_id(&env, "from-dir:1"), id);
}

#[test]
fn unknown_flags_and_commands_are_still_clear_errors() {
    let env = BuildEnv::new();
    env.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    let err = env.env.fails(&["--no-such-flag", "-t", "x", "ctx"]);
    assert!(
        err.contains("unexpected argument '--no-such-flag'"),
        "{err}"
    );
    // A mistyped command is not taken for a context (no such path).
    let err = env.env.fails(&["imagse"]);
    assert!(err.contains("unrecognized subcommand 'imagse'"), "{err}");
    assert!(err.contains("images"), "suggests the command: {err}");
    // A context that does not exist, given as a path.
    let err = env.env.fails(&["-t", "x", "./nope"]);
    assert!(err.contains("\"./nope\" not found"), "{err}");
}

#[test]
fn help_shows_both_forms() {
    let out = Command::new(env!("CARGO_BIN_EXE_rbuild"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("rbuild [OPTIONS] <COMMAND>"), "{help}");
    assert!(
        help.contains("rbuild [OPTIONS] [BUILD OPTIONS] CONTEXT"),
        "{help}"
    );
    assert!(help.contains("./images"), "{help}");
    let out = Command::new(env!("CARGO_BIN_EXE_rbuild"))
        .args(["build", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("`rbuild -t app:1 .` is this command"),
        "{help}"
    );
}
