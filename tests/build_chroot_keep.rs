//! Chroot isolation keeps a stage's root copy from one RUN step to the next (src/build/chroot.rs):
//! what a step leaves outside its change set is undone, in-place rewrites are still seen, the
//! layers are the namespaced mode's, stages never share a copy, and no copy outlives its build.

mod build_support;

use std::path::Path;

use build_support::{path_str, BuildEnv};

/// `rbuild --log-level info build --progress=plain ARGS` with `SOURCE_DATE_EPOCH` set.
fn build(env: &BuildEnv, args: &[&str]) -> std::process::Output {
    env.env
        .cmd()
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["--log-level", "info", "build", "--progress=plain"])
        .args(args)
        .output()
        .unwrap()
}

/// Copies of a root (`work-*/root`) left in the store's temporary dirs.
fn kept_roots(env: &BuildEnv) -> Vec<String> {
    fn walk(dir: &Path, depth: usize, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if e.file_name() == "root" {
                out.push(path.display().to_string());
            } else if depth > 0 && e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&path, depth - 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&env.env.root().join("tmp"), 3, &mut out);
    out
}

const DOCKERFILE: &str = "\
FROM busybox
RUN echo aaaa > /data && touch -r /bin /data && mkdir -p /keep /w/sub && touch -r /bin /keep && echo x > /w/sub/x
RUN touch -r /data /ref && echo bbbb > /data && touch -r /ref /data && rm /ref && mkdir /keep/t && rmdir /keep/t
COPY f.txt /w/sub/f.txt
RUN stat -c %Y /keep /bin /data > /seen && cat /data /w/sub/f.txt >> /seen && rm -rf /w/sub && mkdir /w/sub
RUN --mount=type=tmpfs,target=/keep/tmp ls -a /w/sub > /listing && ls /keep >> /listing && touch /keep/tmp/gone
RUN ls -a /keep > /listing2
";

/// The third step rewrites /data in place with the same size and gives it its old mtime back,
/// and makes and removes a directory in /keep (changing only /keep's mtime); a COPY lands
/// between RUN steps; a step replaces a directory; a tmpfs mount is placed and removed. The
/// later steps see what a fresh copy shows (/keep's mtime is /bin's again, /data is new,
/// /w/sub is empty, the mount point is gone), and the image is the namespaced build's.
#[test]
fn kept_root_sees_in_place_rewrites_and_forgets_what_steps_left_outside_their_layers() {
    let ns = BuildEnv::new();
    let chroot = BuildEnv::same_base_as(&ns);
    let mut ids = Vec::new();
    for (env, isolation) in [(&ns, "namespaces"), (&chroot, "chroot")] {
        let ctx = env.context("ctx", &[("Dockerfile", DOCKERFILE), ("f.txt", "copied\n")]);
        let iid = env.env.path().join("iid");
        let out = build(
            env,
            &[
                "--isolation",
                isolation,
                "-t",
                "keep:1",
                "--iidfile",
                path_str(&iid),
                path_str(&ctx),
            ],
        );
        build_support::assert_success("rbuild build", &out);
        let progress = build_support::stderr(&out);
        if isolation == "chroot" {
            let kept = progress
                .matches("chroot: root kept from the previous step")
                .count();
            assert_eq!(
                kept, 4,
                "every RUN after the first reuses the copy:\n{progress}"
            );
            assert_eq!(progress.matches("chroot: root copied in").count(), 1);
        }
        ids.push(std::fs::read_to_string(&iid).unwrap());
    }
    let seen = chroot.image_file("keep:1", "/seen").unwrap();
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(lines.len(), 5, "{seen}");
    assert_eq!(lines[0], lines[1], "/keep has /bin's mtime again: {seen}");
    assert_eq!(lines[2], lines[1], "/data kept its mtime: {seen}");
    assert_eq!(
        &lines[3..],
        ["bbbb", "copied"],
        "the in-place rewrite is seen"
    );
    assert_eq!(
        chroot.image_file("keep:1", "/data").as_deref(),
        Some("bbbb\n")
    );
    let listing = chroot.image_file("keep:1", "/listing").unwrap();
    assert_eq!(
        listing, ".\n..\ntmp\n",
        "empty /w/sub, then /keep with the mount point"
    );
    let listing2 = chroot.image_file("keep:1", "/listing2").unwrap();
    assert_eq!(listing2, ".\n..\n", "the mount point is gone from the copy");
    assert_eq!(
        ids[0], ids[1],
        "chroot and namespaces built different images"
    );
    assert!(kept_roots(&chroot).is_empty(), "{:?}", kept_roots(&chroot));
}

/// Stages b and c both start from stage a (in parallel): each gets its own copy, so neither
/// sees the other's steps, and a's steps are seen by both.
#[test]
fn stages_built_on_one_stage_do_not_share_its_kept_root() {
    let env = BuildEnv::new();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox AS a\nRUN echo a > /f\nRUN echo a2 >> /f\n\
             FROM a AS b\nRUN echo b >> /f\nRUN cat /f > /seen-b\n\
             FROM a AS c\nRUN echo c >> /f\nRUN cat /f > /seen-c\n\
             FROM busybox\nCOPY --from=b /seen-b /\nCOPY --from=c /seen-c /\n",
        )],
    );
    let out = build(&env, &["--isolation=chroot", "-t", "st:1", path_str(&ctx)]);
    build_support::assert_success("rbuild build", &out);
    let progress = build_support::stderr(&out);
    assert_eq!(
        progress.matches("chroot: root copied in").count(),
        3,
        "a, b and c each copy a root once:\n{progress}"
    );
    assert_eq!(
        env.image_file("st:1", "/seen-b").as_deref(),
        Some("a\na2\nb\n")
    );
    assert_eq!(
        env.image_file("st:1", "/seen-c").as_deref(),
        Some("a\na2\nc\n")
    );
    assert!(kept_roots(&env).is_empty(), "{:?}", kept_roots(&env));
}

/// A step that changes the copy and then fails: the copy is dropped (not left behind), and
/// the next build's step runs on a fresh copy that has none of the failed step's changes.
#[test]
fn kept_root_of_a_failed_step_is_not_reused() {
    let env = BuildEnv::new();
    let failing = env.context(
        "failing",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo one > /a\nRUN echo broken > /a && echo junk > /junk && exit 4\n",
        )],
    );
    let out = build(&env, &["--isolation=chroot", path_str(&failing)]);
    let err = build_support::assert_failure("rbuild build", &out);
    assert!(err.contains("exit code: 4"), "{err}");
    assert!(kept_roots(&env).is_empty(), "{:?}", kept_roots(&env));
    let fixed = env.context(
        "fixed",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo one > /a\nRUN cat /a > /seen && ls / > /listing\n",
        )],
    );
    let out = build(&env, &["--isolation=chroot", "-t", "f:1", path_str(&fixed)]);
    build_support::assert_success("rbuild build", &out);
    let progress = build_support::stderr(&out);
    assert!(progress.contains("chroot: root copied in"), "{progress}");
    assert_eq!(env.image_file("f:1", "/seen").as_deref(), Some("one\n"));
    let listing = env.image_file("f:1", "/listing").unwrap();
    assert!(!listing.contains("junk"), "{listing}");
}
