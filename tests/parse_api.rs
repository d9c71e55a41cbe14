//! The library API of `rbuild::dockerfile` (what the build engine calls), and `rbuild parse -f -`.

mod common;

use rbuild::dockerfile::{self, instructions, ErrorKind};

#[test]
fn nodes_keep_spans_and_original_text() {
    let src = "FROM alpine\n\n  run echo a \\\n    b\nCOPY --from=x a /b\n";
    let df = dockerfile::parse(src, "Dockerfile").unwrap();
    let run = &df.nodes[1];
    assert_eq!(run.keyword, "run");
    assert_eq!(&*run.original, "run echo a     b");
    assert_eq!((run.span.start_line, run.span.start_col), (3, 3));
    assert_eq!((run.span.end_line, run.span.end_col), (4, 6));
    assert_eq!(&src[run.span.start..run.span.end], "run echo a \\\n    b");
    let copy = &df.nodes[2];
    assert_eq!(copy.flags[0].text, "--from=x");
    assert_eq!(
        (copy.flags[0].span.start_line, copy.flags[0].span.start_col),
        (5, 6)
    );
    assert_eq!(
        &src[copy.flags[0].span.start..copy.flags[0].span.end],
        "--from=x"
    );
    assert_eq!(copy.args, ["a", "/b"]);
}

#[test]
fn directives_are_read_only_at_the_top() {
    let df = dockerfile::parse(
        "\u{feff}# Syntax = docker/dockerfile:1 \n#escape=`\n# check=skip=all\nFROM a\n",
        "Dockerfile",
    )
    .unwrap();
    assert_eq!(df.directives.escape, '`');
    assert_eq!(
        df.directives.syntax.as_ref().unwrap().value,
        "docker/dockerfile:1"
    );
    assert_eq!(df.directives.check.as_ref().unwrap().value, "skip=all");
    // After a blank line a directive is an ordinary comment.
    let df = dockerfile::parse("\n# escape=`\nFROM a\n", "Dockerfile").unwrap();
    assert_eq!(df.directives.escape, '\\');
    assert!(df.directives.escape_directive.is_none());
}

#[test]
fn heredoc_flags_are_recorded() {
    let src = "FROM a\nRUN <<-'EOF' 5<<B\n\t$X\n\tEOF\n$Y\nB\nRUN next\n";
    let df = dockerfile::parse(src, "Dockerfile").unwrap();
    let heredocs = &df.nodes[1].heredocs;
    assert_eq!(heredocs.len(), 2);
    assert_eq!(
        (
            heredocs[0].name.as_str(),
            heredocs[0].expand,
            heredocs[0].chomp
        ),
        ("EOF", false, true)
    );
    assert_eq!(heredocs[0].content, "$X\n");
    assert_eq!(
        (
            heredocs[1].name.as_str(),
            heredocs[1].expand,
            heredocs[1].fd
        ),
        ("B", true, 5)
    );
    assert_eq!(heredocs[1].content, "$Y\n");
    assert_eq!(df.nodes[1].span.end_line, 6);
    assert_eq!(&*df.nodes[2].original, "RUN next");
}

#[test]
fn typed_stages_and_meta_args() {
    let src = "ARG V=1\nFROM a AS one\nRUN x\nFROM one\nCOPY --from=one /a /b\n";
    let df = dockerfile::parse(src, "Dockerfile").unwrap();
    let typed = instructions::parse_instructions(&df).unwrap();
    assert_eq!(typed.meta_args.len(), 1);
    assert_eq!(typed.stages.len(), 2);
    assert_eq!(typed.stages[0].name.as_deref(), Some("one"));
    assert_eq!(typed.stages[1].base, "one");
    match &typed.stages[1].instructions[0].instruction {
        instructions::Instruction::Copy(copy) => {
            assert_eq!(copy.from.as_deref(), Some("one"));
            assert_eq!(copy.sources, ["/a"]);
            assert_eq!(copy.dest, "/b");
        }
        other => panic!("expected COPY, got {other:?}"),
    }
}

#[test]
fn error_display_renders_location_line_and_caret() {
    let df = dockerfile::parse("FROM a\nCOPY --nope x y\n", "build/Dockerfile.dev").unwrap();
    let err = instructions::parse_instructions(&df).unwrap_err();
    assert_eq!((err.line, err.col), (2, 6));
    assert!(matches!(*err.kind, ErrorKind::UnknownFlag { .. }));
    assert_eq!(
        err.to_string(),
        "build/Dockerfile.dev:2:6: unknown flag: --nope (valid flags for COPY: --from, --chown, \
         --chmod, --link, --exclude, --parents)\n  2 | COPY --nope x y\n           ^"
    );
}

#[test]
fn misspelled_keywords_get_a_suggestion() {
    for (typo, keyword) in [
        ("RUNN", "RUN"),
        ("CPOY", "COPY"),
        ("ENTRYPONT", "ENTRYPOINT"),
        ("WORKDRI", "WORKDIR"),
        ("HEALTCHECK", "HEALTHCHECK"),
    ] {
        let df = dockerfile::parse(&format!("FROM a\n{typo} x\n"), "Dockerfile").unwrap();
        let err = instructions::parse_instructions(&df).unwrap_err();
        assert_eq!(
            err.message(),
            format!("unknown instruction: {typo} (did you mean {keyword}?)")
        );
    }
}

#[test]
fn odd_inputs_give_errors_not_panics() {
    for src in [
        "",
        "\\",
        "\\\n",
        "<<",
        "RUN <<",
        "RUN <<\"",
        "\r",
        "\r\n",
        "`",
        "# escape=`\n`",
        "FROM a\nRUN <<EOF",
        "FROM a\nRUN <<''\n\n",
        "ONBUILD",
        "ONBUILD ONBUILD",
        "FROM a\nCOPY <<A",
        "\u{feff}",
        "FROM \u{0}\u{85}\u{a0}x",
        "FROM a\nRUN [\"\\ud800\"]",
    ] {
        if let Ok(df) = dockerfile::parse(src, "Dockerfile") {
            let _ = dockerfile::dump::dump(&df);
            if let Err(err) = instructions::parse_instructions(&df) {
                assert!(err.to_string().starts_with("Dockerfile:"));
            }
        }
    }
}

#[test]
fn cli_reads_stdin() {
    let out =
        common::TestEnv::new().run_with_stdin(&["parse", "-f", "-"], b"FROM a\nCMD [\"x\"]\n");
    assert!(out.status.success());
    assert_eq!(common::stdout(&out), "(from \"a\")\n(cmd \"x\")\n");
}

#[test]
fn cli_reports_errors_with_the_given_file_name() {
    let env = common::TestEnv::new();
    let path = env.path().join("my.Dockerfile");
    std::fs::write(&path, "FROM a\nRUN <<EOF\nno end\n").unwrap();
    let out = env.run(&["parse", "-f", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = common::stderr(&out);
    assert_eq!(
        stderr,
        format!(
            "{}:2:5: unterminated heredoc EOF\n  2 | RUN <<EOF\n          ^\n",
            path.display()
        )
    );
}

#[test]
fn cli_prints_warnings_on_stderr() {
    let env = common::TestEnv::new();
    let path = env.path().join("Dockerfile");
    std::fs::write(&path, "FROM a\nRUN a \\\n\n  b\n").unwrap();
    let out = env.run(&["parse", "-f", path.to_str().unwrap()]);
    assert!(out.status.success());
    assert_eq!(common::stdout(&out), "(from \"a\")\n(run \"a   b\")\n");
    assert_eq!(
        common::stderr(&out),
        format!(
            "{}:2:1: warning: empty continuation line found in: RUN a   b\n",
            path.display()
        )
    );
}

/// Inputs that would take minutes with a quadratic step finish quickly (the bound is generous
/// for debug builds on a loaded machine).
#[test]
fn pathological_inputs_stay_linear() {
    let cases: Vec<(&str, String)> = vec![
        (
            "escape run",
            format!("FROM a\nRUN {}x\n", "\\".repeat(300_000)),
        ),
        ("many heredoc lines", "FROM a\nRUN a<<b\n".repeat(30_000)),
        (
            "many heredocs",
            "FROM a\nRUN <<EOF\nx\nEOF\n".repeat(20_000),
        ),
        (
            "long continuation",
            format!("FROM a\nRUN a \\\n{}b\n", "  x \\\n# c\n\n".repeat(50_000)),
        ),
        (
            "many words",
            format!("FROM a\nRUN {}\n", "<<a ".repeat(100_000)),
        ),
        (
            "long comment",
            format!("# {}\nFROM a\n", "#\\".repeat(300_000)),
        ),
    ];
    for (name, src) in cases {
        let start = std::time::Instant::now();
        let result = dockerfile::parse(&src, "Dockerfile");
        if let Ok(df) = &result {
            let _ = instructions::parse_instructions(df);
        }
        let took = start.elapsed();
        assert!(
            took < std::time::Duration::from_secs(20),
            "{name}: {took:?} for {} bytes",
            src.len()
        );
    }
}
