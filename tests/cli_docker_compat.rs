//! Docker's behaviour where scripts depend on it (issue 14): sizes as docker reports them,
//! `images PATTERN`, `save REPO`, `RepoDigests`, and the flags docker accepts.

mod common;

use common::{write_file, TestEnv};

/// Builds `tag` FROM scratch from `dockerfile` with `hello.txt` (14 bytes) in the context.
fn build_scratch(env: &TestEnv, tag: &str, dockerfile: &str) {
    build_scratch_at(env, tag, dockerfile, None);
}

/// [`build_scratch`], with SOURCE_DATE_EPOCH = `epoch` when given (the image's creation time).
fn build_scratch_at(env: &TestEnv, tag: &str, dockerfile: &str, epoch: Option<&str>) {
    let ctx = env
        .path()
        .join(format!("ctx-{}", tag.replace([':', '/'], "-")));
    write_file(&ctx, "Dockerfile", dockerfile);
    write_file(&ctx, "hello.txt", "hello, golden\n");
    let mut build = env.cmd();
    build.args(["build", "-q", "-t", tag, ctx.to_str().unwrap()]);
    if let Some(epoch) = epoch {
        build.env("SOURCE_DATE_EPOCH", epoch);
    }
    common::ok_cmd(&mut build);
}

/// Each line of `rbuild history --format '{{.Size}}\t{{.CreatedBy}}' IMAGE`, newest first.
fn history_sizes(env: &TestEnv, image: &str) -> Vec<String> {
    env.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.Size}}\t{{.CreatedBy}}",
        image,
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

/// The bug: `history` showed a layer's tar size (2.56kB for a 14-byte COPY, 1.02kB for the
/// empty layer of a WORKDIR), `images` and `inspect .Size` their sum; docker shows the file
/// content: 14B and 0B. Kept through save and load, and counted by import.
#[test]
fn bug_sizes_were_tar_sizes_not_content_sizes() {
    let env = TestEnv::new();
    build_scratch(
        &env,
        "sizes:1",
        "FROM scratch\nCOPY hello.txt /srv/hello.txt\nWORKDIR /srv\n",
    );
    let lines = history_sizes(&env, "sizes:1");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("0B\tWORKDIR /srv"), "{lines:?}");
    assert!(lines[1].starts_with("14B\tCOPY hello.txt"), "{lines:?}");
    assert_eq!(
        env.ok(&["images", "--format", "{{.Size}}", "sizes"]).trim(),
        "14B"
    );
    assert_eq!(env.inspect("sizes:1")["Size"], 14);

    // save + load into another store: the loaded layers are counted as they are checked.
    let tar = env.path().join("sizes.tar");
    env.ok(&["save", "-o", tar.to_str().unwrap(), "sizes:1"]);
    let other = TestEnv::new();
    other.ok(&["load", "-i", tar.to_str().unwrap()]);
    assert_eq!(history_sizes(&other, "sizes:1"), lines);
    assert_eq!(other.inspect("sizes:1")["Size"], 14);

    // import: the rootfs tar's file content, not the tar's size.
    let rootfs = env.path().join("rootfs");
    write_file(&rootfs, "a/one", "12345");
    write_file(&rootfs, "b", "1234567");
    let rootfs_tar = env.path().join("rootfs.tar");
    let status = std::process::Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&rootfs_tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    env.ok(&["import", rootfs_tar.to_str().unwrap(), "imported:1"]);
    assert_eq!(env.inspect("imported:1")["Size"], 12);
}

/// `images PATTERN`: the argument is docker's `reference` filter, a pattern over the familiar
/// name (with or without its tag); plain names still list every tag of the repository.
#[test]
fn images_argument_is_a_reference_pattern() {
    let env = TestEnv::new();
    build_scratch(&env, "repo-a:1", "FROM scratch\nCOPY hello.txt /\n");
    env.ok(&["tag", "repo-a:1", "repo-b:2"]);
    env.ok(&["tag", "repo-a:1", "repo-a:2"]);
    env.ok(&["tag", "repo-a:1", "other:1"]);
    let list = |arg: &str| {
        let mut rows: Vec<String> = env
            .ok(&["images", "--format", "{{.Repository}}:{{.Tag}}", arg])
            .lines()
            .map(str::to_string)
            .collect();
        rows.sort();
        rows
    };
    assert_eq!(list("repo-*"), ["repo-a:1", "repo-a:2", "repo-b:2"]);
    assert_eq!(list("repo-*:2"), ["repo-a:2", "repo-b:2"]);
    assert_eq!(list("repo-[b-z]"), ["repo-b:2"]);
    assert_eq!(list("repo-a"), ["repo-a:1", "repo-a:2"]);
    assert_eq!(list("docker.io/library/other"), ["other:1"]);
    assert!(list("nothing-*").is_empty());
    let err = env.fails(&["images", "repo-["]);
    assert!(err.contains("invalid reference pattern"), "{err}");
}

/// Every `repository:tag` in `env`'s store, sorted.
fn all_tags(env: &TestEnv) -> Vec<String> {
    let mut rows: Vec<String> = env
        .ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .lines()
        .map(str::to_string)
        .collect();
    rows.sort();
    rows
}

/// `save REPO` (no tag) saves every tag of the repository, as docker; `save REPO:TAG` that
/// tag only, whatever the format.
#[test]
fn save_repository_without_tag_saves_all_its_tags() {
    let env = TestEnv::new();
    build_scratch(&env, "app:1", "FROM scratch\nCOPY hello.txt /\n");
    build_scratch(&env, "app:2", "FROM scratch\nCOPY hello.txt /two\n");
    env.ok(&["tag", "app:2", "app:latest"]);
    env.ok(&["tag", "app:1", "other:1"]);
    for format in ["docker-archive", "oci-archive"] {
        let tar = env.path().join(format!("app-{format}.tar"));
        let tar = tar.to_str().unwrap();
        env.ok(&["save", "--format", format, "-o", tar, "app"]);
        let other = TestEnv::new();
        other.ok(&["load", "-i", tar]);
        assert_eq!(
            all_tags(&other),
            ["app:1", "app:2", "app:latest"],
            "{format}"
        );

        env.ok(&["save", "--format", format, "-o", tar, "app:2"]);
        let other = TestEnv::new();
        other.ok(&["load", "-i", tar]);
        assert_eq!(all_tags(&other), ["app:2"], "{format}");
    }
}

/// The bug: `inspect` made up a `RepoDigests` entry (`repo@<manifest digest>`) for every tag
/// of an image only built, imported or loaded, which no registry holds; docker shows `[]`
/// until a push or pull (tests/registry_e2e.rs checks the entries those record).
#[test]
fn bug_repo_digests_listed_for_images_never_pushed() {
    let env = TestEnv::new();
    build_scratch(&env, "built:1", "FROM scratch\nCOPY hello.txt /\n");
    assert_eq!(env.inspect("built:1")["RepoDigests"], serde_json::json!([]));
    env.import_base("imported:1");
    assert_eq!(
        env.inspect("imported:1")["RepoDigests"],
        serde_json::json!([])
    );
    let tar = env.path().join("built.tar");
    env.ok(&["save", "-o", tar.to_str().unwrap(), "built:1"]);
    let other = TestEnv::new();
    other.ok(&["load", "-i", tar.to_str().unwrap()]);
    assert_eq!(
        other.inspect("built:1")["RepoDigests"],
        serde_json::json!([])
    );
}

/// Docker's flags scripts pass: `history -H` / `--human=false` (bytes and RFC 3339 times),
/// `inspect --type image` (and `--type container` looks for containers only).
#[test]
fn history_human_and_inspect_type_accepted() {
    let env = TestEnv::new();
    let dockerfile = "FROM scratch\nCOPY hello.txt /\n";
    build_scratch_at(&env, "h:1", dockerfile, Some("1700000000"));
    let fmt = "{{.CreatedSince}}|{{.Size}}";
    assert_eq!(
        env.ok(&["history", "--human=false", "--format", fmt, "h:1"])
            .trim(),
        "2023-11-14T22:13:20Z|14"
    );
    let human = env.ok(&["history", "-H", "--format", fmt, "h:1"]);
    assert!(human.trim().ends_with("ago|14B"), "{human}");
    assert_eq!(env.ok(&["history", "--format", fmt, "h:1"]), human);

    let id = env.ok(&["inspect", "--type", "image", "-f", "{{.Size}}", "h:1"]);
    assert_eq!(id.trim(), "14");
    let err = env.fails(&["inspect", "--type", "container", "h:1"]);
    assert!(err.contains("No such container: h:1"), "{err}");
    let err = env.fails(&["inspect", "--type", "volume", "h:1"]);
    assert!(err.contains("invalid value 'volume'"), "{err}");
}

/// `image prune --filter until=…|label=…`: only images created before the time, or with the
/// label, are pruned, as docker.
#[test]
fn image_prune_filters_until_and_label() {
    let env = TestEnv::new();
    let dockerfile = "FROM scratch\nCOPY hello.txt /old\n";
    build_scratch_at(&env, "old:1", dockerfile, Some("1700000000"));
    build_scratch(&env, "new:1", "FROM scratch\nCOPY hello.txt /new\n");
    build_scratch(
        &env,
        "lab:1",
        "FROM scratch\nCOPY hello.txt /lab\nLABEL keep=no\n",
    );
    env.ok(&["image", "prune", "-a", "-f", "--filter", "until=24h"]);
    assert_eq!(all_tags(&env), ["lab:1", "new:1"]);
    env.ok(&["image", "prune", "-a", "-f", "--filter", "label=keep=no"]);
    assert_eq!(all_tags(&env), ["new:1"]);
    env.ok(&[
        "image",
        "prune",
        "-a",
        "-f",
        "--filter",
        "until=2020-01-01T00:00:00Z",
    ]);
    assert_eq!(all_tags(&env), ["new:1"]);
    let err = env.fails(&["image", "prune", "-a", "-f", "--filter", "until=soon"]);
    assert!(err.contains("invalid filter 'until=soon'"), "{err}");
    let err = env.fails(&["image", "prune", "-a", "-f", "--filter", "dangling=true"]);
    assert!(err.contains("invalid filter"), "{err}");
}
