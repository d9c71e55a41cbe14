//! Git build contexts (`URL#REF:SUBDIR`), from repositories the tests make (no network).

mod build_support;

use std::path::Path;
use std::process::Command;

use build_support::{ok_cmd, path_str, BuildEnv};

fn git(dir: &Path, args: &[&str]) -> String {
    ok_cmd(
        Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(["-c", "init.defaultBranch=main"])
            .args(args)
            .current_dir(dir),
    )
    .trim()
    .to_string()
}

/// A bare repo `repo.git` with: commit 1 on `main` (tag v1): Dockerfile + msg "one",
/// sub/Dockerfile + sub/msg "sub one"; commit 2 on `main`: msg "two"; branch `other`
/// from commit 1 with msg "other". Returns (bare repo path, commit 1 hash).
fn make_repo(b: &BuildEnv) -> (std::path::PathBuf, String) {
    let work = b.env.path().join("work");
    std::fs::create_dir_all(work.join("sub")).unwrap();
    git(&work, &["init", "-q"]);
    let dockerfile = "FROM busybox\nCOPY msg /msg\n";
    std::fs::write(work.join("Dockerfile"), dockerfile).unwrap();
    std::fs::write(work.join("msg"), "one\n").unwrap();
    std::fs::write(work.join("sub/Dockerfile"), dockerfile).unwrap();
    std::fs::write(work.join("sub/msg"), "sub one\n").unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "one"]);
    git(&work, &["tag", "v1"]);
    let first = git(&work, &["rev-parse", "HEAD"]);
    git(&work, &["checkout", "-q", "-b", "other"]);
    std::fs::write(work.join("msg"), "other\n").unwrap();
    git(&work, &["commit", "-q", "-am", "other"]);
    git(&work, &["checkout", "-q", "main"]);
    std::fs::write(work.join("msg"), "two\n").unwrap();
    git(&work, &["commit", "-q", "-am", "two"]);
    let bare = b.env.path().join("repo.git");
    git(
        b.env.path(),
        &["clone", "-q", "--bare", path_str(&work), path_str(&bare)],
    );
    (bare, first)
}

fn built_msg(b: &BuildEnv, context: &str, tag: &str) -> String {
    b.build(&["-t", tag, context]);
    b.run_in(tag, "cat /msg", &[])
}

#[test]
fn git_contexts_select_ref_and_subdir() {
    let b = BuildEnv::new();
    let (bare, first) = make_repo(&b);
    let path = path_str(&bare).to_string();
    let url = format!("file://{path}");
    // A path ending in .git: the remote's HEAD (main).
    assert_eq!(built_msg(&b, &path, "g:head"), "two\n");
    assert_eq!(
        built_msg(&b, &format!("{url}#other"), "g:branch"),
        "other\n"
    );
    assert_eq!(built_msg(&b, &format!("{path}#v1"), "g:tag"), "one\n");
    assert_eq!(
        built_msg(&b, &format!("{url}#{first}"), "g:commit"),
        "one\n"
    );
    assert_eq!(
        built_msg(&b, &format!("{url}#main:sub"), "g:sub"),
        "sub one\n"
    );
    assert_eq!(
        built_msg(&b, &format!("{path}#:sub"), "g:sub2"),
        "sub one\n"
    );
    // The .git dir is not part of the context.
    let out = b.run_in("g:head", "ls -a /", &[]);
    assert!(!out.lines().any(|l| l == ".git"), "{out}");
}

#[test]
fn git_context_errors_name_the_problem() {
    let b = BuildEnv::new();
    let (bare, _) = make_repo(&b);
    let path = path_str(&bare);
    let err = b.build_fails(&[&format!("{path}#no-such-ref")]);
    assert!(
        err.contains("git context") && err.contains("no-such-ref"),
        "{err}"
    );
    let err = b.build_fails(&[&format!("{path}#main:nope")]);
    assert!(err.contains("\"nope\" is not a directory"), "{err}");
    let err = b.build_fails(&[&format!("{path}#main:../x")]);
    assert!(err.contains("relative path inside the repository"), "{err}");
}
