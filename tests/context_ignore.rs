//! `.dockerignore` semantics, following the behaviour pinned by moby/patternmatcher's tests
//! (written here as our own cases) and Docker's ignore-file reading rules.

use rbuild::context::{ContextError, IgnoreMatcher};

fn matcher(lines: &[&str]) -> IgnoreMatcher {
    IgnoreMatcher::parse(&lines.join("\n"))
        .unwrap_or_else(|err| panic!("patterns {lines:?} rejected: {err}"))
}

/// (pattern, path, excluded)
const SINGLE: &[(&str, &str, bool)] = &[
    ("**", "file", true),
    ("**", "file/", true),
    ("**/", "file", true),
    ("**/", "file/", true),
    ("**", "dir/file", true),
    ("**/", "dir/file", true),
    ("**", "dir/file/", true),
    ("**/", "dir/file/", true),
    ("**/**", "dir/file", true),
    ("**/**", "dir/file/", true),
    ("dir/**", "dir/file", true),
    ("dir/**", "dir/file/", true),
    ("dir/**", "dir/dir2/file", true),
    ("dir/**", "dir/dir2/file/", true),
    ("**/dir", "dir", true),
    ("**/dir", "dir/file", true),
    ("**/dir2/*", "dir/dir2/file", true),
    ("**/dir2/*", "dir/dir2/file/", true),
    ("**/dir2/**", "dir/dir2/dir3/file", true),
    ("**/dir2/**", "dir/dir2/dir3/file/", true),
    ("**file", "file", true),
    ("**file", "dir/file", true),
    ("**/file", "dir/file", true),
    ("**file", "dir/dir/file", true),
    ("**/file", "dir/dir/file", true),
    ("**/file*", "dir/dir/file", true),
    ("**/file*", "dir/dir/file.txt", true),
    ("**/file*txt", "dir/dir/file.txt", true),
    ("**/file*.txt", "dir/dir/file.txt", true),
    ("**/file*.txt*", "dir/dir/file.txt", true),
    ("**/**/*.txt", "dir/dir/file.txt", true),
    ("**/**/*.txt2", "dir/dir/file.txt", false),
    ("**/*.txt", "file.txt", true),
    ("**/**/*.txt", "file.txt", true),
    ("a**/*.txt", "a/file.txt", true),
    ("a**/*.txt", "a/dir/file.txt", true),
    ("a**/*.txt", "a/dir/dir/file.txt", true),
    ("a/*.txt", "a/dir/file.txt", false),
    ("a/*.txt", "a/file.txt", true),
    ("a/*.txt**", "a/file.txt", true),
    ("a[b-d]e", "ae", false),
    ("a[b-d]e", "ace", true),
    ("a[b-d]e", "aae", false),
    ("a[^b-d]e", "aze", true),
    (".*", ".foo", true),
    (".*", "foo", false),
    ("abc.def", "abcdef", false),
    ("abc.def", "abc.def", true),
    ("abc.def", "abcZdef", false),
    ("abc?def", "abcZdef", true),
    ("abc?def", "abcdef", false),
    ("a\\\\", "a\\", true),
    ("**/foo/bar", "foo/bar", true),
    ("**/foo/bar", "dir/foo/bar", true),
    ("**/foo/bar", "dir/dir2/foo/bar", true),
    ("abc/**", "abc", false),
    ("abc/**", "abc/def", true),
    ("abc/**", "abc/def/ghi", true),
    ("**/.foo", ".foo", true),
    ("**/.foo", "bar.foo", false),
    ("a(b)c/def", "a(b)c/def", true),
    ("a(b)c/def", "a(b)c/xyz", false),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
    (
        "dist/*.whl",
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        true,
    ),
    ("a\\*b", "a*b", true),
    // Go filepath.Match behaviour
    ("abc", "abc", true),
    ("*", "abc", true),
    ("*c", "abc", true),
    ("a*", "a", true),
    ("a*", "abc", true),
    ("a*", "ab/c", true), // the parent "ab" matches
    ("a*/b", "abc/b", true),
    ("a*/b", "a/c/b", false),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", true),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", false),
    ("a*b?c*x", "abxbbxdbxebxczzx", true),
    ("a*b?c*x", "abxbbxdbxebxczzy", false),
    ("ab[c]", "abc", true),
    ("ab[b-d]", "abc", true),
    ("ab[e-g]", "abc", false),
    ("ab[^c]", "abc", false),
    ("ab[^b-d]", "abc", false),
    ("ab[^e-g]", "abc", true),
    ("a\\*b", "ab", false),
    ("a?b", "a☺b", true),
    ("a[^a]b", "a☺b", true),
    ("a???b", "a☺b", false),
    ("a[^a][^a][^a]b", "a☺b", false),
    ("[a-ζ]*", "α", true),
    ("*[a-ζ]", "A", false),
    ("a?b", "a/b", false),
    ("a*b", "a/b", false),
    ("[\\]a]", "]", true),
    ("[\\-]", "-", true),
    ("[x\\-]", "x", true),
    ("[x\\-]", "-", true),
    ("[x\\-]", "z", false),
    ("[\\-x]", "x", true),
    ("[\\-x]", "-", true),
    ("[\\-x]", "a", false),
    ("*x", "xxx", true),
    // cleaning: leading '/', '.', '..' and trailing '/' in patterns and paths
    ("/docs", "docs/README.md", true),
    ("./docs/", "docs/a", true),
    ("a/../b", "b", true),
    ("a/../b", "a/b", false),
    ("docs", "./docs/x", true),
    ("docs", "/docs", true),
    // a directory pattern covers everything below it
    ("node_modules", "node_modules/pkg/index.js", true),
    ("node_modules", "src/node_modules/x", false),
    ("**/node_modules", "src/node_modules/x", true),
    ("*/temp*", "somedir/temporary.txt", true),
    ("*/temp*", "somedir/sub/temporary.txt", false),
    ("*/*/temp*", "somedir/subdir/temporary.txt", true),
    ("temp?", "tempa", true),
    ("temp?", "tempab", false),
];

/// (patterns, path, excluded)
const MULTI: &[(&[&str], &str, bool)] = &[
    (&["**", "!util/docker/web"], "util/docker/web/foo", false),
    (
        &["**", "!util/docker/web", "util/docker/web/foo"],
        "util/docker/web/foo",
        true,
    ),
    (
        &[
            "**",
            "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        ],
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        false,
    ),
    (
        &["**", "!dist/*.whl"],
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        false,
    ),
    (&["*"], "fileutils.go", true),
    (&["*.go"], "fileutils.go", true),
    (&["!fileutils.go", "*.go"], "fileutils.go", true),
    (&["*.go", "!fileutils.go"], "fileutils.go", false),
    (&["docs", "!docs/README.md"], "docs/README.md", false),
    (&["docs/", "!docs/README.md"], "docs/README.md", false),
    (&["docs/*", "!docs/README.md"], "docs/README.md", false),
    (&["docs", "!docs/README.md"], "docs/other.md", true),
    (&["docs", "!docs/README.md"], "docs", true),
    (
        &["*.md", "!README*.md", "README-secret.md"],
        "README.md",
        false,
    ),
    (
        &["*.md", "!README*.md", "README-secret.md"],
        "README-secret.md",
        true,
    ),
    (
        &["*.md", "!README*.md", "README-secret.md"],
        "CHANGES.md",
        true,
    ),
    (
        &["*.md", "README-secret.md", "!README*.md"],
        "README-secret.md",
        false,
    ),
    (&[], "any/path/there", false),
    (&["*.go"], ".", false),
];

#[test]
fn single_patterns() {
    let mut failures = Vec::new();
    for &(pattern, path, expected) in SINGLE {
        if matcher(&[pattern]).is_excluded(path) != expected {
            failures.push(format!(
                "pattern {pattern:?} path {path:?}: want excluded={expected}"
            ));
        }
    }
    println!(
        "{} single-pattern cases, {} failed",
        SINGLE.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn multiple_patterns_last_match_wins() {
    let mut failures = Vec::new();
    for &(patterns, path, expected) in MULTI {
        if matcher(patterns).is_excluded(path) != expected {
            failures.push(format!(
                "patterns {patterns:?} path {path:?}: want excluded={expected}"
            ));
        }
    }
    println!(
        "{} multi-pattern cases, {} failed",
        MULTI.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn malformed_patterns_are_rejected_with_line_numbers() {
    for bad in [
        "[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "[", "[^", "[^bc", "a[", "[z-a]",
    ] {
        let text = format!("ok\n# comment\n{bad}\n");
        match IgnoreMatcher::parse(&text) {
            Err(ContextError::IgnorePattern { line, pattern, .. }) => {
                assert_eq!(line, 3, "{bad:?}");
                assert_eq!(pattern, bad);
            }
            other => panic!("{bad:?}: want an error, got {other:?}"),
        }
    }
    let err = IgnoreMatcher::parse("a\n  !  \n").unwrap_err();
    assert!(err.to_string().starts_with("line 2: "), "{err}");
}

#[test]
fn file_syntax() {
    // comments only at the start of a line, BOM dropped, whitespace trimmed, blank lines skipped
    let m = IgnoreMatcher::parse(
        "\u{feff}first\n# comment\n  #notacomment  \n\n\t spaced \r\n !  spaced/keep \n",
    )
    .unwrap();
    assert!(m.is_excluded("first"));
    assert!(!m.is_excluded("comment"));
    assert!(m.is_excluded("#notacomment"));
    assert!(m.is_excluded("spaced/other"));
    assert!(!m.is_excluded("spaced/keep"));
    assert!(!m.is_excluded("other"));
    assert!(IgnoreMatcher::parse("").unwrap().is_empty());
    assert!(IgnoreMatcher::parse("# only\n\n").unwrap().is_empty());
}

#[test]
fn root_is_never_excluded() {
    let m = matcher(&["**", "*", "."]);
    assert!(!m.is_excluded("."));
    assert!(!m.is_excluded(""));
    assert!(!m.is_excluded("/"));
    assert!(m.is_excluded("x"));
}

#[test]
fn walking_into_excluded_directories() {
    // No exceptions: never.
    assert!(!matcher(&["docs"]).may_include_below("docs"));
    // Plain exceptions: only where one lies below.
    let m = matcher(&["docs", "!docs/api/README.md"]);
    assert!(m.may_include_below("docs"));
    assert!(m.may_include_below("docs/api"));
    assert!(!m.may_include_below("docs/other"));
    assert!(!m.may_include_below("doc"));
    let m = matcher(&["*", "!keep/**"]);
    assert!(m.may_include_below("keep"));
    assert!(!m.may_include_below("drop"));
    // An exception with wildcards could match anywhere.
    assert!(matcher(&["docs", "!**/*.md"]).may_include_below("docs/deep"));
}

/// Where `.dockerignore` differs from `.gitignore` (why the `ignore` crate is not used; see the
/// README, "Why not these crates"): a pattern without `/` is matched from the context root only,
/// an exception re-includes a file below an excluded directory, and a trailing `/` is cleaned
/// away, so it also matches a file.
#[test]
fn dockerignore_is_not_gitignore() {
    let m = matcher(&["*.md"]);
    assert!(m.is_excluded("README.md"));
    assert!(
        !m.is_excluded("docs/guide.md"),
        "gitignore would exclude it"
    );
    let m = matcher(&["docs", "!docs/api/README.md"]);
    assert!(m.is_excluded("docs/other.md"));
    assert!(
        !m.is_excluded("docs/api/README.md"),
        "gitignore cannot re-include below an excluded directory"
    );
    assert!(
        matcher(&["build/"]).is_excluded("build"),
        "gitignore's `build/` would match only a directory"
    );
}
