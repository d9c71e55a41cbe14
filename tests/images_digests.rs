//! `images --digests` (issue 14): the DIGEST column is the image's repository digest as
//! docker shows it: `<none>` until the image is pushed or pulled, then the digest the
//! registry has (a real registry on loopback; skopeo says which), per repository.

mod common;

use std::process::Command;

use common::registry::Registry;
use common::{assert_success, write_file, TestEnv};

fn build(env: &TestEnv, tag: &str) {
    let ctx = env.path().join("ctx");
    write_file(&ctx, "Dockerfile", "FROM scratch\nCOPY hello.txt /\n");
    write_file(&ctx, "hello.txt", "digests\n");
    env.ok(&["build", "-q", "-t", tag, ctx.to_str().unwrap()]);
}

/// `REPOSITORY:TAG DIGEST` lines of `images` with `args`.
fn digests(env: &TestEnv, args: &[&str]) -> Vec<String> {
    let mut all = vec!["images", "--format", "{{.Repository}}:{{.Tag}} {{.Digest}}"];
    all.extend_from_slice(args);
    let mut lines: Vec<String> = env.ok(&all).lines().map(str::to_string).collect();
    lines.sort();
    lines
}

/// The digest of `reference`'s manifest in the registry, as skopeo reads it.
fn registry_digest(reference: &str) -> String {
    let out = Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            "--format",
            "{{.Digest}}",
            &format!("docker://{reference}"),
        ])
        .output()
        .unwrap();
    assert_success("skopeo inspect", &out).trim().to_string()
}

/// The bug: the DIGEST column showed the local manifest digest for every tagged image, a
/// digest no registry had; docker shows `<none>` until a push or pull records one, and then
/// only on the rows of that repository.
#[test]
fn images_digests_none_before_push_registry_digest_after_push_and_pull() {
    let reg = Registry::plain();
    let env = TestEnv::new();
    let name = format!("{}/dig:1", reg.host());
    let repo = format!("{}/dig", reg.host());
    build(&env, &name);
    env.ok(&["tag", &name, "other:1"]);
    assert_eq!(
        digests(&env, &[]),
        [format!("{repo}:1 <none>"), "other:1 <none>".to_string()]
    );
    let table = env.ok(&["images", "--digests", &repo]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "REPOSITORY",
            "TAG",
            "DIGEST",
            "IMAGE",
            "ID",
            "CREATED",
            "SIZE"
        ]
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(row[..3], [repo.as_str(), "1", "<none>"], "{table}");
    assert!(
        !env.ok(&["images"]).contains("DIGEST"),
        "no DIGEST column without --digests"
    );

    env.ok(&["push", &name]);
    let pushed = registry_digest(&name);
    assert!(pushed.starts_with("sha256:"), "{pushed}");
    assert_eq!(
        digests(&env, &[]),
        [format!("{repo}:1 {pushed}"), "other:1 <none>".to_string()],
        "the digest is the registry's, on the rows of its repository"
    );
    let table = env.ok(&["images", "--digests", "--no-trunc", &repo]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..3], [repo.as_str(), "1", pushed.as_str()], "{table}");
    assert!(
        row[3].starts_with("sha256:") && row[3].len() == 71,
        "--no-trunc shows the whole ID: {table}"
    );
    let short = env.ok(&["images", "--digests", &repo]);
    let row: Vec<&str> = short.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[3].len(), 12, "{short}");

    // Pulled into another store: the same digest.
    let other = TestEnv::new();
    other.ok(&["pull", &name]);
    assert_eq!(digests(&other, &[]), [format!("{repo}:1 {pushed}")]);
    // Untagged there, the image is listed under the repository its digest names.
    other.ok(&["tag", &name, "keep:1"]);
    other.ok(&["rmi", &name]);
    assert_eq!(
        digests(&other, &["--digests"]),
        [
            format!("{repo}:<none> {pushed}"),
            "keep:1 <none>".to_string()
        ]
    );
}
