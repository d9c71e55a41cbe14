//! The command line's conventions (issue 14): global options under their own heading in every
//! `--help`, value lists checked by clap, one error style, docker's 125 for `run`'s usage errors,
//! and a `--log-level` that filters.

mod common;

use common::TestEnv;

/// The commands `--help` lists (the lines after `Commands:` up to the next blank line).
fn commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

/// The lines of `help`'s section `heading` (up to the next blank line).
fn section<'a>(help: &'a str, heading: &str) -> Vec<&'a str> {
    help.lines()
        .skip_while(|l| *l != heading)
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .collect()
}

fn assert_global_heading(path: &[String], help: &str) {
    let globals = section(help, "Global Options:");
    for flag in ["--root <DIR>", "--debug", "--log-level <LEVEL>"] {
        assert!(
            globals.iter().any(|l| l.contains(flag)),
            "rbuild {path:?} --help: {flag} not under Global Options:\n{help}"
        );
    }
    let options = section(help, "Options:");
    assert!(
        !options.iter().any(|l| l.contains("--root")),
        "rbuild {path:?} --help lists --root among its own options:\n{help}"
    );
}

#[test]
fn every_help_has_the_global_options_under_their_own_heading() {
    let env = TestEnv::new();
    let top = env.ok(&["--help"]);
    assert_global_heading(&[], &top);
    let mut checked = 0;
    for command in commands(&top) {
        let help = env.ok(&[&command, "--help"]);
        assert_global_heading(std::slice::from_ref(&command), &help);
        checked += 1;
        // Commands with commands of their own (image, builder, system).
        for sub in commands(&help) {
            let help = env.ok(&[&command, &sub, "--help"]);
            assert_global_heading(&[command.clone(), sub.clone()], &help);
            checked += 1;
        }
    }
    assert!(checked > 20, "only {checked} commands found in:\n{top}");
}

#[test]
fn value_lists_are_in_the_help_and_checked_by_clap() {
    let env = TestEnv::new();
    let build = env.ok(&["build", "--help"]);
    assert!(
        build.contains("[possible values: auto, tty, plain, quiet]"),
        "{build}"
    );
    assert!(
        build.contains("[possible values: none, default, host]"),
        "{build}"
    );
    let run = env.ok(&["run", "--help"]);
    // `run --network` also takes network names: its modes are named in the help text.
    assert!(
        run.contains("--network <MODE>") && run.contains("bridge (default"),
        "{run}"
    );
    assert!(
        run.contains("[possible values: error, warn, info, debug]"),
        "{run}"
    );
    for (args, allowed) in [
        (
            &["build", "--progress", "fancy", "."][..],
            "[possible values: auto, tty, plain, quiet]",
        ),
        (
            &["-t", "x", "--network=bridge", "."][..],
            "[possible values: none, default, host]",
        ),
        (
            &["--log-level", "loud", "images"][..],
            "[possible values: error, warn, info, debug]",
        ),
    ] {
        let out = env.run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with("rbuild: error: invalid value"), "{err}");
        assert!(err.contains(allowed), "{args:?}: {err}");
    }
    // `run` reports its errors before the container with docker's 125.
    let out = env.run(&["run", "--network", "nosuch", "img"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("network nosuch not found"));
}

#[test]
fn run_usage_errors_exit_125_and_others_2() {
    let env = TestEnv::new();
    for args in [
        &["run", "--no-such-flag", "img"][..],
        &["run"][..],
        &["--debug", "run", "-p"][..],
    ] {
        let out = env.run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{args:?}: {err}");
        assert!(err.starts_with("rbuild: error: "), "{args:?}: {err}");
    }
    let out = env.run(&["images", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Every line of `stderr` that reports an error is in rbuild's one style (a build's progress
/// lines, `#N ERROR: ...`, are BuildKit's format and not error reports).
fn assert_error_style(what: &str, stderr: &str) {
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with('#') && l.to_lowercase().contains("error"))
        .collect();
    assert!(!errors.is_empty(), "{what}: no error printed");
    for line in errors {
        assert!(
            line.starts_with("rbuild: error: "),
            "{what}: {line:?} in\n{stderr}"
        );
    }
}

#[test]
fn all_errors_have_one_style_with_hints() {
    let env = TestEnv::new();
    // A usage error (clap's), a failed command, a failed item among several, a failed build.
    assert_error_style("clap", &env.fails(&["images", "--bogus"]));
    let err = env.fails(&["tag", "nope:1", "x:2"]);
    assert_error_style("tag", &err);
    assert!(
        err.contains("\nhint: `rbuild images` lists the images"),
        "{err}"
    );
    assert_error_style("rmi", &env.fails(&["rmi", "nope:1"]));
    assert_error_style("inspect", &env.fails(&["inspect", "nope:1"]));
    std::fs::create_dir(env.path().join("ctx")).unwrap();
    std::fs::write(
        env.path().join("ctx/Dockerfile"),
        "FROM scratch\nCOPY missing /\n",
    )
    .unwrap();
    assert_error_style("build", &env.fails(&["build", "--progress=plain", "ctx"]));
}

#[test]
fn log_level_error_silences_warnings() {
    let env = TestEnv::new();
    std::fs::create_dir(env.path().join("ctx")).unwrap();
    std::fs::write(
        env.path().join("ctx/Dockerfile"),
        "FROM scratch\nCOPY f /\n",
    )
    .unwrap();
    std::fs::write(env.path().join("ctx/f"), "f\n").unwrap();
    let no_cache = env.path().join("no-such-cache");
    let cache_from = format!("type=local,src={}", no_cache.display());
    let build = |level: &str| {
        let out = env.run(&[
            "--log-level",
            level,
            "-t",
            "x:1",
            "--progress=plain",
            "--cache-from",
            &cache_from,
            "ctx",
        ]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stderr).unwrap()
    };
    for level in ["warn", "info", "debug"] {
        let err = build(level);
        assert!(
            err.contains("WARNING: importing cache from"),
            "{level}: {err}"
        );
    }
    let err = build("error");
    assert!(!err.contains("WARNING"), "{err}");
    assert!(err.contains("naming to docker.io/library/x:1"), "{err}");
}

/// `rbuild inspect x | head -1` panicked ("failed printing to stdout") and `save`/`images`
/// into a pipe whose reader had exited printed `rbuild: error: Broken pipe`; now the command
/// stops quietly with status 0. The reader end is closed before rbuild starts, so every write
/// fails with EPIPE (no timing involved).
#[test]
fn bug_closed_stdout_pipe_panicked_or_printed_an_error() {
    let env = TestEnv::with_base("bp:1");
    for args in [
        &["inspect", "bp:1"][..],
        &["inspect", "--format", "{{.Id}}", "bp:1"],
        &["images"],
        &["history", "bp:1"],
        &["save", "bp:1"],
        &["ps", "-aq"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = env.cmd().args(args).stdout(writer).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            common::stderr(&out)
        );
        assert_eq!(common::stderr(&out), "", "{args:?}");
    }
}
