//! The build cache (hits and misses, judged by what ran) and reproducible image digests.

mod build_support;

use build_support::{cached_steps, ok_cmd, path_str, BuildEnv};

const DOCKERFILE: &str = "FROM busybox
RUN echo first-run-executed && head -c 16 /dev/urandom | od -x > /random-1
COPY a.txt /a.txt
RUN echo second-run-executed && head -c 16 /dev/urandom | od -x > /random-2
COPY b.txt /b.txt
RUN echo third-run-executed && head -c 16 /dev/urandom | od -x > /random-3
LABEL version=1
";

fn ran(progress: &str) -> Vec<&str> {
    ["first", "second", "third"]
        .into_iter()
        .filter(|n| {
            // Output lines are "#N SECONDS TEXT".
            progress.lines().any(|l| {
                let mut parts = l.splitn(3, ' ');
                let (_, t, text) = (parts.next(), parts.next(), parts.next());
                t.is_some_and(|t| t.parse::<f64>().is_ok())
                    && text == Some(format!("{n}-run-executed").as_str())
            })
        })
        .collect()
}

#[test]
fn cache_hits_and_invalidation() {
    let b = BuildEnv::new();
    let ctx = b.context(
        "cache",
        &[
            ("a.txt", "a\n"),
            ("b.txt", "b\n"),
            ("Dockerfile", DOCKERFILE),
        ],
    );
    let c = path_str(&ctx);
    let p1 = b.build(&["-t", "c:1", c]);
    assert_eq!(ran(&p1), ["first", "second", "third"]);
    assert!(cached_steps(&p1).is_empty(), "{p1}");
    let random3 = b.image_file("c:1", "/random-3").unwrap();

    // Nothing changed: every step is a hit, nothing runs, same image.
    let p2 = b.build(&["-t", "c:2", c]);
    assert!(ran(&p2).is_empty(), "{p2}");
    assert_eq!(cached_steps(&p2).len(), 5, "{p2}");
    assert_eq!(b.inspect("c:1")["Id"], b.inspect("c:2")["Id"]);

    // Touching a file without changing it keeps the cache.
    let later = filetime::FileTime::from_unix_time(2_000_000_000, 0);
    filetime::set_file_mtime(ctx.join("b.txt"), later).unwrap();
    let p3 = b.build(&["-t", "c:3", c]);
    assert!(ran(&p3).is_empty(), "{p3}");
    assert_eq!(b.image_file("c:3", "/random-3").unwrap(), random3);

    // Changing b.txt invalidates from the step that reads it; earlier steps stay cached.
    std::fs::write(ctx.join("b.txt"), "b changed\n").unwrap();
    let p4 = b.build(&["-t", "c:4", c]);
    assert_eq!(ran(&p4), ["third"], "{p4}");
    let cached = cached_steps(&p4);
    assert_eq!(cached.len(), 3, "{p4}");
    assert!(
        cached[2].contains("RUN echo second-run-executed"),
        "{cached:?}"
    );
    assert_eq!(b.image_file("c:4", "/b.txt").unwrap(), "b changed\n");
    assert_ne!(b.image_file("c:4", "/random-3").unwrap(), random3);

    // A config-only change (LABEL) re-runs nothing.
    std::fs::write(
        ctx.join("Dockerfile"),
        DOCKERFILE.replace("version=1", "version=2"),
    )
    .unwrap();
    let p5 = b.build(&["-t", "c:5", c]);
    assert!(ran(&p5).is_empty(), "{p5}");

    // --no-cache runs everything again.
    let p6 = b.build(&["--no-cache", "-t", "c:6", c]);
    assert_eq!(ran(&p6), ["first", "second", "third"]);
    assert!(cached_steps(&p6).is_empty());

    // A build arg a RUN can see is part of its key.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nARG V=1\nRUN echo first-run-executed\n",
    )
    .unwrap();
    b.build(&[c]);
    assert!(ran(&b.build(&[c])).is_empty());
    assert_eq!(ran(&b.build(&["--build-arg", "V=2", c])), ["first"]);
}

#[test]
fn source_date_epoch_gives_identical_digests() {
    let one = BuildEnv::new();
    let two = BuildEnv::same_base_as(&one);
    let dockerfile = "FROM busybox\nCOPY . /src/\nRUN echo built > /built.txt && mkdir -p /var/x\nWORKDIR /app\nCMD [\"cat\", \"/built.txt\"]\n";
    let files = [("f.txt", "same content\n"), ("Dockerfile", dockerfile)];
    let c1 = one.context("ctx", &files);
    let c2 = two.context("other-ctx", &files);
    // Different mtimes in the two contexts do not matter.
    filetime::set_file_mtime(
        c2.join("f.txt"),
        filetime::FileTime::from_unix_time(1_234_567_890, 0),
    )
    .unwrap();
    let build = |b: &BuildEnv, c: &std::path::Path| {
        ok_cmd(
            b.env
                .cmd()
                .args(["build", "-q", path_str(c)])
                .env("SOURCE_DATE_EPOCH", "1700000000"),
        )
        .trim()
        .to_string()
    };
    let id1 = build(&one, &c1);
    let id2 = build(&two, &c2);
    assert_eq!(id1, id2);
    let v = one.inspect(&id1);
    assert_eq!(v["Created"], "2023-11-14T22:13:20Z");
    // Without SOURCE_DATE_EPOCH the two differ (mtimes and times are real).
    let id3 = one.build_id(&["--no-cache", path_str(&c1)]);
    assert_ne!(id3, id1);
}

fn inode(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().ino()
}

/// A COPY that runs again shares the files it copied before (the store's file pool) instead
/// of copying them anew; what changed, or got other metadata, is a new file.
#[test]
fn copy_snapshots_share_unchanged_files() {
    use std::os::unix::fs::MetadataExt;
    let b = BuildEnv::new();
    let ctx = b.context(
        "pool",
        &[
            ("a.txt", "a\n"),
            ("b.txt", "b\n"),
            ("dup1.txt", "same\n"),
            ("dup2.txt", "same\n"),
            ("Dockerfile", "FROM busybox\nCOPY . /ctx/\n"),
        ],
    );
    let c = path_str(&ctx);
    b.build(&["-t", "p:1", c]);
    let file = |image: &str, path: &str| b.image_path(image, path).unwrap();
    // Identical files at two paths stay two files (the layer has no hard links).
    assert_ne!(
        inode(&file("p:1", "/ctx/dup1.txt")),
        inode(&file("p:1", "/ctx/dup2.txt"))
    );

    std::fs::write(ctx.join("b.txt"), "b changed\n").unwrap();
    b.build(&["-t", "p:2", c]);
    assert_eq!(
        inode(&file("p:1", "/ctx/a.txt")),
        inode(&file("p:2", "/ctx/a.txt"))
    );
    assert_ne!(
        inode(&file("p:1", "/ctx/b.txt")),
        inode(&file("p:2", "/ctx/b.txt"))
    );
    assert_eq!(b.image_file("p:1", "/ctx/b.txt").unwrap(), "b\n");
    assert_eq!(b.image_file("p:2", "/ctx/b.txt").unwrap(), "b changed\n");
    let out = b.run_in("p:2", "cat /ctx/a.txt /ctx/b.txt", &[]);
    assert_eq!(out, "a\nb changed\n");

    // --no-cache runs the COPY again: the same files. (Not necessarily the same layer: the
    // created /ctx directory gets the time of the build.)
    b.build(&["--no-cache", "-t", "p:3", c]);
    assert_eq!(
        inode(&file("p:2", "/ctx/a.txt")),
        inode(&file("p:3", "/ctx/a.txt"))
    );

    // Other metadata, another file: the shared one keeps its mode.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nCOPY --chmod=600 . /ctx/\n",
    )
    .unwrap();
    b.build(&["-t", "p:4", c]);
    let (shared, private) = (file("p:2", "/ctx/a.txt"), file("p:4", "/ctx/a.txt"));
    assert_ne!(inode(&shared), inode(&private));
    assert_eq!(std::fs::metadata(&private).unwrap().mode() & 0o7777, 0o600);
    assert_eq!(std::fs::metadata(&shared).unwrap().mode() & 0o7777, 0o644);

    // Once no image or cache record needs them, prune leaves no pooled file behind.
    let pool = b.env.root().join("pool");
    assert!(std::fs::read_dir(&pool).unwrap().count() > 0);
    b.env.ok(&["rmi", "p:1", "p:2", "p:3", "p:4"]);
    // Snapshots younger than the store's grace period may be a concurrent build's: age them.
    let old = filetime::FileTime::from_unix_time(1_000_000_000, 0);
    for e in std::fs::read_dir(b.env.root().join("snapshots"))
        .unwrap()
        .flatten()
    {
        filetime::set_file_mtime(e.path(), old).unwrap();
    }
    b.env.ok(&["builder", "prune", "-a", "-f"]);
    let left: Vec<_> = std::fs::read_dir(&pool).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Steps that succeeded before a failing step are cached: the fixed build does not run them.
#[test]
fn steps_before_a_failure_are_cached() {
    let b = BuildEnv::new();
    let ctx = b.context(
        "fails",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo first-run-executed\nRUN exit 3\n",
        )],
    );
    let c = path_str(&ctx);
    let p1 = b.build_fails(&["-t", "f:1", c]);
    assert_eq!(ran(&p1), ["first"], "{p1}");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN echo first-run-executed\nRUN echo second-run-executed\n",
    )
    .unwrap();
    let p2 = b.build(&["-t", "f:1", c]);
    assert_eq!(ran(&p2), ["second"], "{p2}");
}

/// A rebuild in which every step is a cache hit writes nothing to the store: the database
/// file is not even opened for writing (its mtime stays), no blob is written again (no temp
/// file is made; blobs are only touched), the context cache is not rewritten and no context
/// file is read.
#[test]
fn noop_rebuild_writes_nothing() {
    use std::os::unix::fs::MetadataExt;
    let b = BuildEnv::new();
    let ctx = b.context(
        "noop",
        &[
            ("a.txt", "a\n"),
            ("b.txt", "b\n"),
            ("Dockerfile", DOCKERFILE),
        ],
    );
    // Files younger than the context cache's racy window are hashed on every scan.
    std::thread::sleep(rbuild::context::RACY_WINDOW + std::time::Duration::from_millis(200));
    let first = b.build_id(&["-t", "noop:1", path_str(&ctx)]);
    let root = b.env.root();
    // Path, inode and mtime of what a write would change.
    let state = || {
        let mut paths = vec![
            root.join("meta.redb"),
            root.join("index.json"),
            root.join("tmp"),
            root.join("context-cache"),
            root.join("blobs/sha256"),
        ];
        for dir in ["context-cache", "blobs/sha256"] {
            paths.extend(
                std::fs::read_dir(root.join(dir))
                    .unwrap()
                    .map(|e| e.unwrap().path()),
            );
        }
        paths.sort();
        paths
            .into_iter()
            .map(|p| {
                let m = std::fs::metadata(&p).unwrap();
                // Blobs a build uses are touched (for the garbage collector's grace period).
                if p.parent() == Some(&root.join("blobs/sha256")) {
                    return (p, m.ino(), 0, 0);
                }
                (p, m.ino(), m.mtime(), m.mtime_nsec())
            })
            .collect::<Vec<_>>()
    };
    let before = state();
    let progress = b.build(&["-t", "noop:1", path_str(&ctx)]);
    assert!(ran(&progress).is_empty(), "{progress}");
    assert!(progress.contains(" 0 hashed, 3 from cache"), "{progress}");
    assert_eq!(b.build_id(&["-t", "noop:1", path_str(&ctx)]), first);
    let after = state();
    for (was, is) in before.iter().zip(&after) {
        assert_eq!(was, is, "changed by a no-op rebuild");
    }
    assert_eq!(before.len(), after.len());
}

/// `COPY --from` is keyed by the content of the stage it copies from (its layers' chain ID),
/// not by that stage's steps: a stage that runs again and makes the same layers keeps the
/// copy and what follows it cached; a stage that makes other content does not.
#[test]
fn copy_from_a_stage_is_keyed_by_its_content() {
    let b = BuildEnv::new();
    let ctx = b.context(
        "from",
        &[(
            "Dockerfile",
            "FROM busybox AS builder\nARG X\nARG OUT=built\nRUN echo \"$OUT\" > /out\n\
             FROM busybox\nCOPY --from=builder /out /out\nRUN echo second-run-executed\n",
        )],
    );
    let build = |args: &[&str]| {
        let out = b
            .env
            .cmd()
            .args(["build", "--progress=plain", "-t", "from:1"])
            .args(args)
            .arg(path_str(&ctx))
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .unwrap();
        let text = build_support::stderr(&out);
        assert!(out.status.success(), "{text}");
        text
    };
    let p1 = build(&["--build-arg", "X=1"]);
    assert_eq!(ran(&p1), ["second"], "{p1}");
    // X changes the builder's RUN (it runs again) but not its output: same layers.
    let p2 = build(&["--build-arg", "X=2"]);
    assert!(
        !cached_steps(&p2)
            .iter()
            .any(|s| s.contains("echo \"$OUT\"")),
        "{p2}"
    );
    assert!(ran(&p2).is_empty(), "{p2}");
    // Other output: the copy and the step after it run again.
    let p3 = build(&["--build-arg", "X=2", "--build-arg", "OUT=other"]);
    assert_eq!(ran(&p3), ["second"], "{p3}");
    assert_eq!(b.image_file("from:1", "/out").unwrap(), "other\n");
}
