//! The Dockerfile frontend (build/convert.rs): instructions read and expanded once, by the
//! shell lexer, as BuildKit does. Each test is named after a bug it fixed.

mod build_support;

use build_support::{path_str, BuildEnv};

#[test]
fn copy_heredoc_expanded_by_a_second_expander_unlike_buildkit() {
    // COPY heredoc bodies were expanded by their own `$NAME`/`${NAME}` substitution: no
    // `${v:-default}`, and backslashes kept. BuildKit expands them with its shell lexer
    // (quotes are plain characters, `\` escapes): moby/buildkit's testCopyHeredocSpecialSymbols
    // and testHeredocVarSubstitution.
    let b = BuildEnv::new();
    let ctx = b.context(
        "heredoc",
        &[(
            "Dockerfile",
            r#"FROM busybox
ARG name=world
COPY <<EOF /quotes
"quotes" '${name}' "${name}"
EOF
COPY <<EOF /slash1
\
EOF
COPY <<EOF /slash2
\\
EOF
COPY <<EOF /slash3
\$name
EOF
COPY <<EOF /default
${unset:-dflt} ${name:+set}
EOF
COPY <<"EOF" /raw
\\ \$name ${name}
EOF
"#,
        )],
    );
    b.build(&["-t", "heredoc:1", path_str(&ctx)]);
    let f = |p: &str| b.image_file("heredoc:1", p).unwrap();
    assert_eq!(f("/quotes"), "\"quotes\" 'world' \"world\"\n");
    assert_eq!(f("/slash1"), "\n");
    assert_eq!(f("/slash2"), "\\\n");
    assert_eq!(f("/slash3"), "$name\n");
    assert_eq!(f("/default"), "dflt set\n");
    assert_eq!(f("/raw"), "\\\\ \\$name ${name}\n");
}
