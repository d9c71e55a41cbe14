//! Behaviour of `rbuild::dockerfile::shell` beyond the conformance data files: pattern
//! substitutions, matched/unmatched tracking, mandatory variables, escapes and field splitting.
//! The cases follow what BuildKit's `TestProcessWithMatches`, `TestShellParserMandatoryEnvVars`
//! and `TestProcessWithMatchesPlatform` check, written here as data.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rbuild::dockerfile::shell::{ExpandErrorKind, ShellLex};

/// One `process_word_with_matches` case. `expected: None` means the word must be rejected.
struct Case {
    input: &'static str,
    env: &'static [(&'static str, &'static str)],
    expected: Option<&'static str>,
    matched: &'static [&'static str],
    unmatched: &'static [&'static str],
}

const fn ok(
    input: &'static str,
    env: &'static [(&'static str, &'static str)],
    expected: &'static str,
    matched: &'static [&'static str],
    unmatched: &'static [&'static str],
) -> Case {
    Case {
        input,
        env,
        expected: Some(expected),
        matched,
        unmatched,
    }
}

const fn err(input: &'static str, env: &'static [(&'static str, &'static str)]) -> Case {
    Case {
        input,
        env,
        expected: None,
        matched: &[],
        unmatched: &[],
    }
}

const FOO_BAR: &[(&str, &str)] = &[("FOO", "xxx"), ("BAR", "")];
const XXYY: &[(&str, &str)] = &[("FOO", "xxyy")];

const CASES: &[Case] = &[
    // plain references
    ok("x", &[("DUMMY", "dummy")], "x", &[], &[]),
    ok("x ${UNUSED}", &[("DUMMY", "dummy")], "x ", &[], &["UNUSED"]),
    ok("x ${FOO}", &[("FOO", "y")], "x y", &["FOO"], &[]),
    ok("$FOO$BAR.", FOO_BAR, "xxx.", &["BAR", "FOO"], &[]),
    // - and :-
    ok(
        "${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}",
        FOO_BAR,
        "xxx  ccc",
        &["BAR", "FOO"],
        &["BAZ"],
    ),
    ok(
        "${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}",
        FOO_BAR,
        "xxx bbb ccc",
        &["BAR", "FOO"],
        &["BAZ"],
    ),
    ok("${FOO:-}", FOO_BAR, "xxx", &["FOO"], &[]),
    ok("${FOO:-}", &[], "", &[], &["FOO"]),
    // + and :+
    ok(
        "${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}",
        FOO_BAR,
        "aaa bbb ",
        &["BAR", "FOO"],
        &["BAZ"],
    ),
    ok(
        "${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}",
        FOO_BAR,
        "aaa  ",
        &["BAR", "FOO"],
        &["BAZ"],
    ),
    // ? and :?
    ok("${FOO?aaa}", FOO_BAR, "xxx", &["FOO"], &[]),
    ok("${BAR?bbb}", FOO_BAR, "", &["BAR"], &[]),
    err("${BAZ?ccc}", FOO_BAR),
    ok("${FOO:?aaa}", FOO_BAR, "xxx", &["FOO"], &[]),
    err("${BAR:?bbb}", FOO_BAR),
    err("${BAZ:?ccc}", FOO_BAR),
    err("${BAZ:?}", FOO_BAR),
    // assignment is not supported
    err("${FOO=aaa}", FOO_BAR),
    err("${FOO=:aaa}", FOO_BAR),
    err("${FOO=}", &[]),
    err("${FOO:=aaa}", FOO_BAR),
    // # and ##
    ok(
        r"${FOO#()[]{\}^$.\*\?|\\}",
        &[("FOO", r"()[]{}^$.*?|\x")],
        "x",
        &["FOO"],
        &[],
    ),
    ok("${FOO#*x*y}", XXYY, "y", &["FOO"], &[]),
    ok("${FOO#*}", XXYY, "xxyy", &["FOO"], &[]),
    ok(
        "${FOO#$BAR}",
        &[("FOO", "xxyy"), ("BAR", "x")],
        "xyy",
        &["BAR", "FOO"],
        &[],
    ),
    ok(
        "${FOO#$BAR}",
        &[("FOO", "xxyy"), ("BAR", "")],
        "xxyy",
        &["BAR", "FOO"],
        &[],
    ),
    ok("${FOO#}", XXYY, "xxyy", &["FOO"], &[]),
    ok("${FOO##*x}", XXYY, "yy", &["FOO"], &[]),
    ok("${FOO##}", XXYY, "xxyy", &["FOO"], &[]),
    ok(r"${FOO#?\?}", &[("FOO", "???y")], "?y", &["FOO"], &[]),
    ok(
        "${FOO#*.}",
        &[("FOO", "file.tar.gz")],
        "tar.gz",
        &["FOO"],
        &[],
    ),
    ok("${FOO##*.}", &[("FOO", "file.tar.gz")], "gz", &["FOO"], &[]),
    ok("${FOO#z}", XXYY, "xxyy", &["FOO"], &[]),
    ok("${NOPE#x}", &[], "", &[], &["NOPE"]),
    // brackets are literal, as in Docker
    ok("${FOO#[ab]}", &[("FOO", "[ab]c")], "c", &["FOO"], &[]),
    ok("${FOO#[ab]}", &[("FOO", "ac")], "ac", &["FOO"], &[]),
    // % and %%
    ok(r"${FOO%%\**}", &[("FOO", "xx**")], "xx", &["FOO"], &[]),
    ok(
        "${ABC:-.}${FOO%x}${ABC:-.}",
        XXYY,
        ".xxyy.",
        &["FOO"],
        &["ABC"],
    ),
    ok(r"${FOO%%\**\*}", &[("FOO", "a***yy*")], "a", &["FOO"], &[]),
    ok("${FOO%}", XXYY, "xxyy", &["FOO"], &[]),
    ok(
        "${FOO%%$BAR}",
        &[("FOO", "xxyy"), ("BAR", "")],
        "xxyy",
        &["BAR", "FOO"],
        &[],
    ),
    ok("${FOO%y}", XXYY, "xxy", &["FOO"], &[]),
    ok("${FOO%%y*}", XXYY, "xx", &["FOO"], &[]),
    ok(
        "${FOO%.*}",
        &[("FOO", "file.tar.gz")],
        "file.tar",
        &["FOO"],
        &[],
    ),
    ok(
        "${FOO%%.*}",
        &[("FOO", "file.tar.gz")],
        "file",
        &["FOO"],
        &[],
    ),
    ok("${FOO%?}", &[("FOO", "한국어")], "한국", &["FOO"], &[]),
    // modifiers that do not take ':'
    err("${FOO:#}", &[]),
    err("${FOO:##}", &[]),
    err("${FOO:%}", &[]),
    err("${FOO:%%}", &[]),
    // invalid escapes in patterns
    err(r"${FOO#\x}", XXYY),
    err(r"${FOO/\x/y}", XXYY),
    // / and //
    ok(
        "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
        &[("FOO", "/foo*/*/*.txt"), ("NEEDLE", r"\*/")],
        "/foo.*/*.txt - /foo..*.txt",
        &["FOO", "NEEDLE"],
        &[],
    ),
    ok(
        "${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
        &[("FOO", "/tmp/tmp/bar.txt"), ("NEEDLE", "/tmp")],
        "/tmp/bar.txt - /bar.txt",
        &["FOO", "NEEDLE"],
        &[],
    ),
    ok(
        "${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
        &[
            ("FOO", "/a/foo/b/c.txt"),
            ("NEEDLE", "/?/"),
            ("REPLACEMENT", "/"),
        ],
        "/foo/b/c.txt - /foo/c.txt",
        &["FOO", "NEEDLE", "REPLACEMENT"],
        &[],
    ),
    ok(
        "${FOO/$NEEDLE/$REPLACEMENT}",
        &[
            ("FOO", "http://google.de"),
            ("NEEDLE", "http://"),
            ("REPLACEMENT", "https://"),
        ],
        "https://google.de",
        &["FOO", "NEEDLE", "REPLACEMENT"],
        &[],
    ),
    ok(
        r"${FOO//\//\/}",
        &[("FOO", "/tmp/foo.txt")],
        r"\/tmp\/foo.txt",
        &["FOO"],
        &[],
    ),
    ok(
        "${FOO/o/0} ${FOO//o/0}",
        &[("FOO", "foo")],
        "f0o f00",
        &["FOO"],
        &[],
    ),
    ok("${FOO/o*/0}", &[("FOO", "foo boo")], "f0", &["FOO"], &[]),
    ok(
        "${FOO/$BAR/ww}",
        &[("FOO", "xxyy"), ("BAR", "")],
        "wwxxyy",
        &["BAR", "FOO"],
        &[],
    ),
    err("${FOO//ww}", XXYY),
    err("${FOO//}", XXYY),
    ok("${FOO///}", XXYY, "xxyy", &["FOO"], &[]),
    ok("${FOO///}", &[], "", &[], &["FOO"]),
    // nesting
    ok("${A:-${B}}", &[("B", "b")], "b", &["B"], &["A"]),
    ok("${A:-${B:-${C:-c}}}", &[], "c", &[], &["A", "B", "C"]),
    ok(
        "${A:+${B}-x}",
        &[("A", "a"), ("B", "b")],
        "b-x",
        &["A", "B"],
        &[],
    ),
    // positional and special parameters are never set, and are not variables
    ok("$1${@}${#:-x}$$", &[("1", "one")], "x", &[], &[]),
    // a stray } is literal
    ok("a}b${A}}", &[("A", "a")], "a}ba}", &["A"], &[]),
    // quotes
    ok(r#"'$A'"$A"\$A"#, &[("A", "a")], "$Aa$A", &["A"], &[]),
    // case-sensitive lookups
    ok("$path", &[("PATH", "/bin")], "", &[], &["path"]),
];

#[test]
fn process_with_matches() {
    let lex = ShellLex::new('\\');
    let mut failures = Vec::new();
    for case in CASES {
        let got = lex.process_word_with_matches(case.input, case.env);
        match (&got, case.expected) {
            (Err(_), None) => continue,
            (Ok((result, matches)), Some(expected)) => {
                let matched: BTreeSet<String> =
                    case.matched.iter().map(|s| s.to_string()).collect();
                let unmatched: BTreeSet<String> =
                    case.unmatched.iter().map(|s| s.to_string()).collect();
                if result == expected
                    && matches.matched == matched
                    && matches.unmatched == unmatched
                {
                    continue;
                }
            }
            _ => {}
        }
        failures.push(format!(
            "{:?} with {:?}: got {got:?}, want {:?} matched {:?} unmatched {:?}",
            case.input, case.env, case.expected, case.matched, case.unmatched
        ));
    }
    println!("{} cases, {} failed", CASES.len(), failures.len());
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
}

#[test]
fn mandatory_variables() {
    let lex = ShellLex::new('\\');
    let set = [("VAR", "plain"), ("ARG", "x")];
    let empty = [("VAR", ""), ("ARG", "x")];
    let unset = [("ARG", "x")];
    let no_empty = "${VAR:?message here$ARG}";
    let no_unset = "${VAR?message here$ARG}";

    assert_eq!(lex.process_word(no_empty, &set).unwrap(), "plain");
    for env in [&empty[..], &unset[..]] {
        let error = lex.process_word(no_empty, env).unwrap_err();
        assert_eq!(
            error.kind,
            ExpandErrorKind::Required {
                name: "VAR".into(),
                message: "message herex".into()
            }
        );
        assert_eq!(
            error.to_string(),
            r#"failed to process "${VAR:?message here$ARG}": VAR: message herex"#
        );
    }

    assert_eq!(lex.process_word(no_unset, &set).unwrap(), "plain");
    assert_eq!(lex.process_word(no_unset, &empty).unwrap(), "");
    let error = lex.process_word(no_unset, &unset).unwrap_err();
    assert!(error.to_string().ends_with("VAR: message herex"), "{error}");

    // Docker's default wording when there is no message.
    let error = lex.process_word("${VAR:?}", &empty).unwrap_err();
    assert!(
        error
            .to_string()
            .ends_with("VAR: is not allowed to be empty"),
        "{error}"
    );
    let error = lex.process_word("${VAR?}", &unset).unwrap_err();
    assert!(
        error
            .to_string()
            .ends_with("VAR: is not allowed to be unset"),
        "{error}"
    );
}

#[test]
fn platform_release_name() {
    let lex = ShellLex::new('\\');
    let release =
        "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz";
    let base = [("VERSION", "v1.2.3"), ("TARGETOS", "linux")];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut env: Vec<(&str, &str)> = base.to_vec();
        env.extend_from_slice(extra);
        lex.process_word(release, &env).unwrap()
    };
    assert_eq!(
        with(&[("TARGETARCH", "arm"), ("TARGETVARIANT", "v7")]),
        "something-v1.2.3.linux-arm-v7.tar.gz"
    );
    assert_eq!(
        with(&[("TARGETARCH", "arm64"), ("TARGETVARIANT", "")]),
        "something-v1.2.3.linux-arm64.tar.gz"
    );
    assert_eq!(
        with(&[("TARGETARCH", "arm64")]),
        "something-v1.2.3.linux-arm64.tar.gz"
    );
}

#[test]
fn error_messages_name_what_failed() {
    let lex = ShellLex::new('\\');
    let env = [("PWD", "/home")];
    let cases = [
        (
            "he${PWD:=000}xx",
            "unsupported modifier (:=) in substitution of variable \"PWD\"",
        ),
        (
            "${FOO:#x}",
            "unsupported modifier (:#) in substitution of variable \"FOO\"",
        ),
        ("${}", "syntax error: bad substitution"),
        ("${PWD", "syntax error: missing '}'"),
        ("${PWD:-abc", "syntax error: missing '}'"),
        ("${PWD/abc", "syntax error: missing '/' in ${}"),
        (
            "'abc",
            "unexpected end of statement while looking for matching single-quote",
        ),
        (
            "\"abc",
            "unexpected end of statement while looking for matching double-quote",
        ),
        (
            r"${PWD#\x}",
            r#"invalid pattern (\x) in substitution of variable "PWD": invalid escape '\x'"#,
        ),
    ];
    for (input, message) in cases {
        let error = lex.process_word(input, &env).unwrap_err();
        assert_eq!(error.word, input);
        assert_eq!(
            error.to_string(),
            format!("failed to process {input:?}: {message}")
        );
    }
}

#[test]
fn backtick_escape() {
    let lex = ShellLex::new('`');
    let env = [("A", "a")];
    assert_eq!(lex.process_word(r"C:\dir`$A", &env).unwrap(), r"C:\dir$A");
    assert_eq!(lex.process_word("\"`\"$A\"", &env).unwrap(), "\"a");
    assert_eq!(lex.process_word("x``", &env).unwrap(), "x`");
    assert_eq!(lex.process_words("a` b c", &env).unwrap(), ["a b", "c"]);
}

#[test]
fn field_splitting() {
    let lex = ShellLex::new('\\');
    let env = [("SPACED", " a  b "), ("EMPTY", "")];
    let cases: &[(&str, &[&str])] = &[
        ("x $SPACED y", &["x", "a", "b", "y"]),
        ("x\"$SPACED\"y", &["x a  b y"]),
        ("a \"\" '' b", &["a", "b"]),
        ("$EMPTY", &[]),
        ("hello${NOPE:-x}", &["hellox"]),
        ("pre${EMPTY:-a b}post", &["prea", "bpost"]),
        ("cat << EOF", &["cat", "<< EOF"]),
        ("a<b", &["a<b"]),
        ("a\\\tb", &["a\tb"]),
        ("\t a \n b \t", &["a", "b"]),
    ];
    for (input, expected) in cases {
        assert_eq!(
            &lex.process_words(input, &env).unwrap(),
            expected,
            "input {input:?}"
        );
    }
}

#[test]
fn env_sources() {
    let lex = ShellLex::new('\\');
    let pairs = vec![
        ("A".to_string(), "1".to_string()),
        ("A".to_string(), "2".to_string()),
    ];
    assert_eq!(
        lex.process_word("$A", &pairs).unwrap(),
        "2",
        "a later pair wins"
    );
    assert_eq!(lex.process_word("$A", pairs.as_slice()).unwrap(), "2");
    let btree: BTreeMap<String, String> = [("A".to_string(), "b".to_string())].into();
    assert_eq!(lex.process_word("$A", &btree).unwrap(), "b");
    let hash: HashMap<&str, &str> = [("A", "h")].into();
    assert_eq!(lex.process_word("$A", &hash).unwrap(), "h");
}

#[test]
fn options_for_heredocs_and_display() {
    let env = [("A", "a")];
    // raw quotes: quotes stay, but still group words
    let lex = ShellLex::new('\\').raw_quotes(true);
    assert_eq!(
        lex.process_words("x 'b c' \"$A d\"", &env).unwrap(),
        ["x", "'b c'", "\"a d\""]
    );
    // raw escapes: escapes stay, but still escape
    let lex = ShellLex::new('\\').raw_escapes(true);
    assert_eq!(
        lex.process_words(r"a\ b \$A", &env).unwrap(),
        [r"a\ b", r"\$A"]
    );
    // quotes as ordinary characters
    let lex = ShellLex::new('\\').skip_process_quotes(true);
    assert_eq!(
        lex.process_word("'$A' \"$A\" it's", &env).unwrap(),
        "'a' \"a\" it's"
    );
    // unset variables left as written
    let lex = ShellLex::new('\\').skip_unset_env(true);
    let cases = [
        ("$A $B", "a $B"),
        ("${B}", "${B}"),
        ("${B:-$A}", "${B:-a}"),
        ("${B?must}", "${B?must}"),
        ("${B#x*}", "${B#x*}"),
        ("${B/x/y} ${B//x/$A}", "${B/x/y} ${B//x/a}"),
        ("$1", "$1"),
        ("${A:-x}", "a"),
    ];
    for (input, expected) in cases {
        assert_eq!(
            lex.process_word(input, &env).unwrap(),
            expected,
            "{input:?}"
        );
    }
    let (_, matches) = lex.process_word_with_matches("$A $B", &env).unwrap();
    assert_eq!(matches.unmatched.iter().collect::<Vec<_>>(), ["B"]);
    // BuildKit's heredoc detection: a quoted heredoc word differs between the two modes
    let plain = ShellLex::new('\\').skip_unset_env(true);
    let raw = plain.raw_quotes(true);
    let empty: [(&str, &str); 0] = [];
    assert_eq!(plain.process_words("<<'EOF'", &empty).unwrap(), ["<<EOF"]);
    assert_eq!(raw.process_words("<<'EOF'", &empty).unwrap(), ["<<'EOF'"]);
    assert_eq!(raw.process_words("<<EOF", &empty).unwrap(), ["<<EOF"]);
}

#[test]
fn replacement_on_an_unset_variable() {
    let lex = ShellLex::new('\\');
    // Like Docker: the value is empty, and an empty pattern matches at its start.
    assert_eq!(
        lex.process_word("${NOPE/$E/ww}", &[("E", "")]).unwrap(),
        "ww"
    );
    assert_eq!(lex.process_word("${NOPE/x/ww}", &[("E", "")]).unwrap(), "");
}
