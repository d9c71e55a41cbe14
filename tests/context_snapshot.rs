//! Scanning real context directories: walking, ignore rules, symlinks, the digest cache,
//! selection digests and COPY source resolution.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::time::Duration;

mod common;

use common::{sha256_hex, write_file as write};
use rbuild::context::{
    ContextError, ContextSnapshot, EntryKind, IgnoreMatcher, MetadataCache, RACY_WINDOW,
};
use tempfile::TempDir;

/// A context dir and a cache dir outside it.
struct Fixture {
    dir: TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = TempDir::new().unwrap();
        fs::create_dir(dir.path().join("ctx")).unwrap();
        Fixture { dir }
    }
    fn ctx(&self) -> std::path::PathBuf {
        self.dir.path().join("ctx")
    }
    fn cache(&self) -> MetadataCache {
        MetadataCache::open(&self.dir.path().join("cache")).unwrap()
    }
    fn scan(&self, ignore: &str, cache: &mut MetadataCache) -> ContextSnapshot {
        let ignore = IgnoreMatcher::parse(ignore).unwrap();
        ContextSnapshot::scan(&self.ctx(), &ignore, cache).unwrap()
    }
}

fn paths(snapshot: &ContextSnapshot) -> Vec<&str> {
    snapshot.entries().iter().map(|e| e.path.as_str()).collect()
}

#[test]
fn walks_sorted_with_metadata() {
    let fx = Fixture::new();
    let ctx = fx.ctx();
    write(&ctx, "a.b", "dot");
    write(&ctx, "a/b", "inner");
    write(&ctx, "Z", "upper");
    write(&ctx, "a/c/d.txt", "deep");
    fs::set_permissions(ctx.join("a/b"), fs::Permissions::from_mode(0o4751)).unwrap();
    symlink("c/d.txt", ctx.join("a/link")).unwrap();
    let mut cache = fx.cache();
    let snap = fx.scan("", &mut cache);
    // Component order: a directory right before its contents, bytes order within a level.
    assert_eq!(
        paths(&snap),
        [".", "Z", "a", "a/b", "a/c", "a/c/d.txt", "a/link", "a.b"]
    );
    let file = snap.get("a/b").unwrap();
    assert_eq!(file.mode, 0o4751);
    assert_eq!(file.size, 5);
    assert_eq!(file.uid, fs::metadata(ctx.join("a/b")).unwrap().uid());
    match &file.kind {
        EntryKind::File { digest } => assert_eq!(digest.hex(), sha256_hex("inner")),
        other => panic!("a/b: {other:?}"),
    }
    assert_eq!(snap.get("a").unwrap().kind, EntryKind::Dir);
    assert_eq!(
        snap.get("a/link").unwrap().kind,
        EntryKind::Symlink {
            target: "c/d.txt".into()
        }
    );
    assert_eq!(snap.subtree("a/c").unwrap().len(), 2);
    assert_eq!(snap.subtree(".").unwrap().len(), 8);
    assert!(snap.get("missing").is_none());
    assert_eq!(cache.stats().misses, 4);
}

use std::os::unix::fs::MetadataExt;

#[test]
fn symlink_out_of_context_stays_a_symlink() {
    let fx = Fixture::new();
    let ctx = fx.ctx();
    let outside = fx.dir.path().join("secret");
    fs::write(&outside, "do not read").unwrap();
    fs::create_dir(fx.dir.path().join("outside-dir")).unwrap();
    fs::write(fx.dir.path().join("outside-dir/f"), "x").unwrap();
    symlink(&outside, ctx.join("abs-link")).unwrap();
    symlink("../secret", ctx.join("rel-link")).unwrap();
    symlink("../outside-dir", ctx.join("dir-link")).unwrap();
    let mut cache = fx.cache();
    let snap = fx.scan("", &mut cache);
    assert_eq!(paths(&snap), [".", "abs-link", "dir-link", "rel-link"]);
    for entry in &snap.entries()[1..] {
        assert!(matches!(entry.kind, EntryKind::Symlink { .. }), "{entry:?}");
    }
    assert_eq!(cache.stats().misses, 0, "nothing outside was read");
    // Resolving them stays inside the context: the targets do not exist there.
    for source in ["abs-link", "rel-link", "dir-link/f"] {
        assert!(
            matches!(
                snap.resolve_source(source),
                Err(ContextError::NotFound { .. })
            ),
            "{source}"
        );
    }
}

#[test]
fn ignore_rules_apply_to_the_walk() {
    let fx = Fixture::new();
    let ctx = fx.ctx();
    for file in [
        "Dockerfile",
        ".dockerignore",
        "src/main.rs",
        "src/gen/out.rs",
        "docs/api/README.md",
        "docs/api/other.md",
        "docs/guide.md",
        "node_modules/x/index.js",
        "target/debug/big",
    ] {
        write(&ctx, file, file);
    }
    let mut cache = fx.cache();
    let snap = fx.scan(
        "# build outputs\n/target\n**/node_modules\nsrc/gen\ndocs\n!docs/api/README.md\nDockerfile\n.dockerignore\n",
        &mut cache,
    );
    // docs and docs/api are excluded but kept as parents of the exception.
    assert_eq!(
        paths(&snap),
        [
            ".",
            "docs",
            "docs/api",
            "docs/api/README.md",
            "src",
            "src/main.rs"
        ]
    );
    // Only the kept files were hashed; excluded trees were not even walked.
    assert_eq!(cache.stats().misses, 2);

    // An exception with a wildcard makes excluded directories walked.
    let snap = fx.scan("*\n!**/*.md\n", &mut cache);
    assert_eq!(
        paths(&snap),
        [
            ".",
            "docs",
            "docs/api",
            "docs/api/README.md",
            "docs/api/other.md",
            "docs/guide.md"
        ]
    );
}

#[test]
fn load_prefers_the_dockerfile_specific_ignore_file() {
    let fx = Fixture::new();
    let ctx = fx.ctx();
    write(&ctx, "build/app.Dockerfile", "FROM scratch");
    write(&ctx, ".dockerignore", "from-root");
    let (m, file) = IgnoreMatcher::load(&ctx, Some(&ctx.join("build/app.Dockerfile"))).unwrap();
    assert_eq!(file.as_deref(), Some(ctx.join(".dockerignore").as_path()));
    assert!(m.is_excluded("from-root"));

    write(&ctx, "build/app.Dockerfile.dockerignore", "from-specific");
    let (m, file) = IgnoreMatcher::load(&ctx, Some(&ctx.join("build/app.Dockerfile"))).unwrap();
    assert_eq!(
        file.as_deref(),
        Some(ctx.join("build/app.Dockerfile.dockerignore").as_path())
    );
    assert!(m.is_excluded("from-specific"));
    assert!(!m.is_excluded("from-root"));

    fs::remove_file(ctx.join(".dockerignore")).unwrap();
    let (m, file) = IgnoreMatcher::load(&ctx, None).unwrap();
    assert!(m.is_empty() && file.is_none());

    write(&ctx, ".dockerignore", "ok\n[bad\n");
    let err = IgnoreMatcher::load(&ctx, None).unwrap_err();
    let message = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(
        message.contains(".dockerignore") && message.contains("line 2"),
        "{message}"
    );
}

#[test]
fn cache_hits_touches_and_changes() {
    let fx = Fixture::new();
    let ctx = fx.ctx();
    for i in 0..20 {
        write(
            &ctx,
            &format!("dir{}/file{i}", i % 3),
            &format!("content {i}"),
        );
    }
    write(&ctx, "touched", "same");
    write(&ctx, "changed", "before");
    // Files younger than the racy window are never remembered: let them age.
    std::thread::sleep(RACY_WINDOW + Duration::from_millis(200));

    let mut cache = fx.cache();
    let first = fx.scan("", &mut cache);
    assert_eq!(cache.stats().misses, 22);
    assert_eq!(cache.stats().hits, 0);
    assert!(cache.stats().bytes_hashed > 0);

    // A re-scan of the unchanged context reads nothing, also after reopening the database.
    drop(cache);
    let mut cache = fx.cache();
    let second = fx.scan("", &mut cache);
    assert_eq!(cache.stats().hits, 22);
    assert_eq!(cache.stats().misses, 0);
    assert_eq!(cache.stats().bytes_hashed, 0);
    assert_eq!(first, second);

    // Touch one file (same content, new timestamps) and rewrite another.
    let written = std::time::Instant::now();
    fs::File::options()
        .write(true)
        .open(ctx.join("touched"))
        .unwrap()
        .set_modified(std::time::SystemTime::now())
        .unwrap();
    fs::write(ctx.join("changed"), "after!").unwrap();
    cache.reset_stats();
    let within = written.elapsed() < RACY_WINDOW;
    let third = fx.scan("", &mut cache);
    assert_eq!(cache.stats().misses, 2);
    assert_eq!(cache.stats().hits, 20);
    assert_eq!(
        first.get("touched").unwrap().kind,
        third.get("touched").unwrap().kind,
        "a touched file keeps its digest"
    );
    assert_ne!(
        first.get("changed").unwrap().kind,
        third.get("changed").unwrap().kind
    );
    match &third.get("changed").unwrap().kind {
        EntryKind::File { digest } => assert_eq!(digest.hex(), sha256_hex("after!")),
        other => panic!("{other:?}"),
    }
    // Recently changed files were not remembered, so they are hashed again (when the third
    // scan started within the window of the changes, as it does unless this thread
    // stalled).
    cache.reset_stats();
    fx.scan("", &mut cache);
    assert!(cache.stats().misses == 2 || !within, "{:?}", cache.stats());
}

#[test]
fn selection_digest_covers_content_mode_owner_not_mtime() {
    let fx = Fixture::new();
    let ctx = fx.ctx();
    write(&ctx, "app/a.txt", "a");
    write(&ctx, "app/sub/b.txt", "b");
    write(&ctx, "other.txt", "o");
    let mut cache = fx.cache();
    let digest = |cache: &mut MetadataCache, selection: &[&str]| {
        fx.scan("", cache)
            .digest_of(selection.iter().copied())
            .unwrap()
    };
    let base = digest(&mut cache, &["app"]);
    assert_eq!(base, digest(&mut cache, &["app"]), "deterministic");
    assert_eq!(base, digest(&mut cache, &["/app/"]), "the path is cleaned");
    assert_ne!(base, digest(&mut cache, &["app", "other.txt"]));
    assert_ne!(base, digest(&mut cache, &["app/sub"]));

    // mtime: no change
    fs::File::options()
        .write(true)
        .open(ctx.join("app/a.txt"))
        .unwrap()
        .set_modified(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1000))
        .unwrap();
    assert_eq!(base, digest(&mut cache, &["app"]));
    // a change outside the selection: no change
    fs::write(ctx.join("other.txt"), "changed").unwrap();
    assert_eq!(base, digest(&mut cache, &["app"]));
    // mode
    fs::set_permissions(ctx.join("app/a.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    let after_mode = digest(&mut cache, &["app"]);
    assert_ne!(base, after_mode);
    // owner
    std::os::unix::fs::chown(ctx.join("app/a.txt"), Some(4242), Some(4242)).unwrap();
    let after_owner = digest(&mut cache, &["app"]);
    assert_ne!(after_mode, after_owner);
    // content
    fs::write(ctx.join("app/sub/b.txt"), "B").unwrap();
    assert_ne!(after_owner, digest(&mut cache, &["app"]));
    // a new file
    let before_new = digest(&mut cache, &["app"]);
    write(&ctx, "app/new", "");
    assert_ne!(before_new, digest(&mut cache, &["app"]));

    let snap = fx.scan("", &mut cache);
    assert!(matches!(
        snap.digest_of(["nope"]),
        Err(ContextError::NotFound { path }) if path == "nope"
    ));
}

#[test]
fn resolving_copy_sources() {
    let fx = Fixture::new();
    let ctx = fx.ctx();
    write(&ctx, "src/a.rs", "a");
    write(&ctx, "src/b.rs", "b");
    write(&ctx, "src/c.txt", "c");
    write(&ctx, "src/deep/d.rs", "d");
    write(&ctx, "conf/app.toml", "t");
    symlink("conf", ctx.join("conf-link")).unwrap();
    symlink("/conf/app.toml", ctx.join("abs-link")).unwrap();
    symlink("../../conf/app.toml", ctx.join("src/up-link")).unwrap();
    symlink("loop2", ctx.join("loop1")).unwrap();
    symlink("loop1", ctx.join("loop2")).unwrap();
    let mut cache = fx.cache();
    let snap = fx.scan("src/c.txt\n", &mut cache);

    let names = |source: &str| -> Vec<(String, String)> {
        snap.resolve_source(source)
            .unwrap_or_else(|err| panic!("{source}: {err}"))
            .into_iter()
            .map(|m| (m.path, m.entry.path.clone()))
            .collect()
    };
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(names("src/a.rs"), [pair("src/a.rs", "src/a.rs")]);
    assert_eq!(names("/src/./a.rs"), [pair("src/a.rs", "src/a.rs")]);
    assert_eq!(names("."), [pair(".", ".")]);
    assert_eq!(
        names("src/*.rs"),
        [pair("src/a.rs", "src/a.rs"), pair("src/b.rs", "src/b.rs")]
    );
    assert_eq!(names("src/[ab].rs").len(), 2);
    assert_eq!(names("src/?.rs").len(), 2);
    assert_eq!(names("*/*.rs").len(), 2, "* does not cross /");
    // symlinks are followed inside the context, named after the link
    assert_eq!(
        names("conf-link/app.toml"),
        [pair("conf-link/app.toml", "conf/app.toml")]
    );
    assert_eq!(names("conf-link"), [pair("conf-link", "conf")]);
    assert_eq!(names("abs-link"), [pair("abs-link", "conf/app.toml")]);
    // `..` in a link target stops at the context root
    assert_eq!(names("src/up-link"), [pair("src/up-link", "conf/app.toml")]);

    for (source, check) in [
        ("../x", "outside"),
        ("src/../../x", "outside"),
        ("..", "outside"),
        ("missing", "notfound"),
        ("src/c.txt", "notfound"), // excluded by the ignore file
        ("*.nothing", "notfound"),
        ("src/a.rs/x", "notfound"),
        ("loop1", "loop"),
        ("src/[", "pattern"),
    ] {
        let err = snap.resolve_source(source).unwrap_err();
        let ok = match (&err, check) {
            (ContextError::OutsideContext { path }, "outside") => path == source,
            (ContextError::NotFound { path }, "notfound") => path == source,
            (ContextError::SymlinkLoop { .. }, "loop") => true,
            (ContextError::SourcePattern { .. }, "pattern") => true,
            _ => false,
        };
        assert!(ok, "{source}: got {err:?}");
        assert!(err.to_string().contains(source), "{err} names {source}");
    }
}

#[test]
fn scan_errors_name_the_path() {
    let fx = Fixture::new();
    let mut cache = fx.cache();
    let missing = fx.dir.path().join("nope");
    let err = ContextSnapshot::scan(&missing, &IgnoreMatcher::empty(), &mut cache).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    let file = fx.dir.path().join("file");
    fs::write(&file, "x").unwrap();
    let err = ContextSnapshot::scan(&file, &IgnoreMatcher::empty(), &mut cache).unwrap_err();
    assert!(matches!(err, ContextError::NotADirectory { .. }), "{err}");
}

/// Two caches on one directory (as two builds on one store) need no lock: both work, and
/// the last to write leaves a valid index.
#[test]
fn caches_share_a_directory_and_memory_cache_works() {
    let fx = Fixture::new();
    write(&fx.ctx(), "f", "x");
    write(&fx.ctx(), "g", "y");
    std::thread::sleep(RACY_WINDOW + Duration::from_millis(200));
    let mut first = fx.cache();
    let mut second = fx.cache();
    fx.scan("", &mut first);
    fx.scan("", &mut second);
    assert_eq!(first.stats().misses, 2);
    assert_eq!(
        second.stats().hits,
        2,
        "the second saw what the first wrote"
    );
    let scans: Vec<_> = (0..4)
        .map(|_| {
            let ctx = fx.ctx();
            let dir = fx.dir.path().join("cache");
            std::thread::spawn(move || {
                let mut cache = MetadataCache::open(&dir).unwrap();
                for _ in 0..20 {
                    ContextSnapshot::scan(&ctx, &IgnoreMatcher::empty(), &mut cache).unwrap();
                }
                cache.stats()
            })
        })
        .collect();
    for scan in scans {
        assert_eq!(scan.join().unwrap().misses, 0);
    }

    let mut memory = MetadataCache::in_memory();
    let snap = fx.scan("", &mut memory);
    assert_eq!(memory.stats().misses, 2);
    assert_eq!(snap.entries().len(), 3);
    fx.scan("", &mut memory);
    assert_eq!(memory.stats().hits, 2);
}

/// An index file that is damaged (torn, truncated, garbage) is ignored, never trusted: the
/// files are hashed again and the index is rewritten.
#[test]
fn damaged_index_is_ignored() {
    let fx = Fixture::new();
    write(&fx.ctx(), "a/b", "content b");
    write(&fx.ctx(), "c", "content c");
    std::thread::sleep(RACY_WINDOW + Duration::from_millis(200));
    let mut cache = fx.cache();
    let good = fx.scan("", &mut cache);
    let dir = fx.dir.path().join("cache");
    let files: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "one index file per context: {files:?}");
    let index = fs::read(&files[0]).unwrap();
    let mut flipped = index.clone();
    let at = index.len() / 2;
    flipped[at] ^= 1;
    let damages = [
        index[..index.len() - 1].to_vec(),
        index[..index.len() / 2].to_vec(),
        Vec::new(),
        flipped,
        b"garbage".repeat(100),
    ];
    for damaged in damages {
        fs::write(&files[0], &damaged).unwrap();
        let mut cache = fx.cache();
        let snap = fx.scan("", &mut cache);
        assert_eq!(snap, good);
        assert_eq!(cache.stats().misses, 2);
        assert_eq!(fs::read(&files[0]).unwrap(), index, "rewritten");
        let mut cache = fx.cache();
        fx.scan("", &mut cache);
        assert_eq!(cache.stats().hits, 2);
    }
}

/// A context scanned with other ignore rules keeps the digests of the files this scan does
/// not see; the digests of deleted files are dropped; an unchanged context writes nothing.
#[test]
fn index_keeps_excluded_files_and_drops_deleted_ones() {
    let fx = Fixture::new();
    let ctx = fx.ctx();
    write(&ctx, "keep", "k");
    write(&ctx, "logs/a.log", "a");
    write(&ctx, "gone", "g");
    std::thread::sleep(RACY_WINDOW + Duration::from_millis(200));
    let mut cache = fx.cache();
    fx.scan("", &mut cache);
    assert_eq!(cache.stats().misses, 3);
    cache.reset_stats();
    fx.scan("logs\n", &mut cache);
    assert_eq!((cache.stats().hits, cache.stats().misses), (2, 0));
    cache.reset_stats();
    fx.scan("", &mut cache);
    assert_eq!(
        (cache.stats().hits, cache.stats().misses),
        (3, 0),
        "logs/a.log kept"
    );

    let dir = fx.dir.path().join("cache");
    let index_file = fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
    let size = fs::metadata(&index_file).unwrap().len();
    fs::remove_file(ctx.join("gone")).unwrap();
    fx.scan("", &mut cache);
    let smaller = fs::metadata(&index_file).unwrap().len();
    assert!(smaller < size, "the deleted file's record is dropped");
    let before = fs::metadata(&index_file).unwrap().modified().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    fx.scan("", &mut cache);
    assert_eq!(
        fs::metadata(&index_file).unwrap().modified().unwrap(),
        before,
        "an unchanged context does not rewrite its index"
    );
}

/// The walk (with its pruning of excluded directories) keeps exactly the paths that
/// `is_excluded` does not exclude, plus the parents of those.
#[test]
fn walk_agrees_with_is_excluded() {
    let fx = Fixture::new();
    let ctx = fx.ctx();
    let files = [
        "a/b/c/file.txt",
        "a/b/c/file.md",
        "a/b/other.txt",
        "a/top.md",
        "a/keep/x",
        "x/a/b/deep.md",
        "x/y",
        "README.md",
        "Dockerfile",
        ".git/config",
        ".git/objects/ab/cdef",
    ];
    for file in files {
        write(&ctx, file, file);
    }
    let mut all: Vec<String> = Vec::new();
    for file in files {
        let mut prefix = String::new();
        for part in file.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            if !all.contains(&prefix) {
                all.push(prefix.clone());
            }
        }
    }
    let ignore_files = [
        "a",
        "a\n!a/keep",
        "a\n!a/b/c/file.md",
        "a/b\n!a",
        "!a\na/b",
        "**/*.md",
        "*\n!**/*.md",
        "*\n!a/b/**",
        "*\n!a/b/*",
        "**\n!x/a",
        ".git\n*.md\n!README.md",
        "a/**/c\n!a/b/c/*.txt",
        "**/b\n!x/a/b/deep.md",
    ];
    let mut cache = fx.cache();
    for text in ignore_files {
        let ignore = IgnoreMatcher::parse(text).unwrap();
        let mut expected: Vec<String> = Vec::new();
        for path in &all {
            if !ignore.is_excluded(path) {
                let mut prefix = String::new();
                for part in path.split('/') {
                    if !prefix.is_empty() {
                        prefix.push('/');
                    }
                    prefix.push_str(part);
                    if !expected.contains(&prefix) {
                        expected.push(prefix.clone());
                    }
                }
            }
        }
        let snap = ContextSnapshot::scan(&ctx, &ignore, &mut cache).unwrap();
        let mut got: Vec<String> = snap.entries()[1..].iter().map(|e| e.path.clone()).collect();
        got.sort();
        expected.sort();
        assert_eq!(got, expected, "ignore file {text:?}");
    }
}

/// The error chain (as the CLI prints it, `{:#}`) names the file and the cause once each.
#[test]
fn context_errors_say_their_cause_once() {
    let fx = Fixture::new();
    let ctx = fx.ctx();
    write(&ctx, ".dockerignore", "ok\n[bad\n");
    let err = IgnoreMatcher::load(&ctx, None).unwrap_err();
    let chain = format!("{:#}", anyhow::Error::new(err));
    assert!(chain.starts_with(&format!("{}: line 2:", ctx.join(".dockerignore").display())));
    assert_eq!(chain.matches("line 2").count(), 1, "{chain}");

    let missing = ctx.join("no-such-dir");
    let ignore = IgnoreMatcher::parse("").unwrap();
    let err = ContextSnapshot::scan(&missing, &ignore, &mut fx.cache()).unwrap_err();
    let chain = format!("{:#}", anyhow::Error::new(err));
    assert_eq!(chain.matches("No such file").count(), 1, "{chain}");
    assert!(chain.starts_with(missing.to_str().unwrap()), "{chain}");
}

/// The walk lists directories on several threads, yet its entries and its first error are
/// those of a walk in path order, every time.
#[test]
fn parallel_walk_is_deterministic() {
    use std::os::unix::ffi::OsStrExt;
    let fx = Fixture::new();
    let ctx = fx.ctx();
    let mut expected = vec![".".to_string()];
    for d in 0..30 {
        expected.push(format!("d{d:02}"));
        expected.push(format!("d{d:02}/s"));
        for f in 0..5 {
            write(&ctx, &format!("d{d:02}/s/f{f}"), &format!("{d} {f}"));
            expected.push(format!("d{d:02}/s/f{f}"));
        }
        write(&ctx, &format!("d{d:02}.txt"), "t");
        expected.push(format!("d{d:02}.txt"));
    }
    let mut cache = fx.cache();
    let first = fx.scan("", &mut cache);
    assert_eq!(paths(&first), expected);
    for _ in 0..10 {
        assert_eq!(fx.scan("", &mut cache), first);
    }
    // Bad names in three directories: problems in path order, the entries unchanged; a
    // selection above one fails with the first in path order.
    for d in [20, 3, 7] {
        let bad = ctx
            .join(format!("d{d:02}/s"))
            .join(std::ffi::OsStr::from_bytes(b"bad\xff"));
        fs::write(bad, "").unwrap();
    }
    for _ in 0..10 {
        let snap = ContextSnapshot::scan(&ctx, &IgnoreMatcher::empty(), &mut cache).unwrap();
        assert_eq!(paths(&snap), expected);
        let problems: Vec<&str> = snap.problems().iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            problems,
            [
                "d03/s/bad\u{FFFD}",
                "d07/s/bad\u{FFFD}",
                "d20/s/bad\u{FFFD}"
            ]
        );
        match snap.digest_of(["."]).unwrap_err() {
            ContextError::Unusable { path, .. } => assert_eq!(path, "d03/s/bad\u{FFFD}"),
            other => panic!("{other:?}"),
        }
    }
}

/// Issue 10: a file name that is not UTF-8 failed every build, even one whose `.dockerignore`
/// excludes it. Excluded, it is not looked at; kept, it fails only a selection that takes it,
/// naming it.
#[test]
fn non_utf8_names_fail_only_the_selections_that_take_them() {
    use std::os::unix::ffi::OsStrExt;
    let fx = Fixture::new();
    let ctx = fx.ctx();
    write(&ctx, "app/main.c", "int main;");
    write(&ctx, "logs/ok.txt", "ok");
    fs::write(
        ctx.join("logs")
            .join(std::ffi::OsStr::from_bytes(b"caf\xe9.log")),
        "x",
    )
    .unwrap();
    std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(b"t\xff"), ctx.join("app/link"))
        .unwrap();

    let excluded = fx.scan("logs/*.log\napp/link\n", &mut fx.cache());
    assert!(excluded.problems().is_empty(), "{:?}", excluded.problems());
    excluded.digest_of(["."]).unwrap();

    let kept = fx.scan("", &mut fx.cache());
    assert_eq!(
        paths(&kept),
        [".", "app", "app/main.c", "logs", "logs/ok.txt"]
    );
    kept.digest_of(["app/main.c", "logs/ok.txt"]).unwrap();
    for (selection, problem) in [
        ("logs", "logs/caf\u{FFFD}.log"),
        (".", "app/link"),
        ("app", "app/link"),
    ] {
        let err = kept.digest_of([selection]).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(&err, ContextError::Unusable { path, .. } if path == problem),
            "{text}"
        );
        assert!(text.contains("not UTF-8"), "{text}");
    }
    let err = kept.resolve_source("logs/*.log").unwrap_err();
    assert!(err.to_string().contains(r#""caf\xE9.log""#), "{err}");
    assert!(kept.resolve_source("logs/*.txt").is_ok());
}
