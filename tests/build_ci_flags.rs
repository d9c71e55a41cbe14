//! Build flags CI uses (issue 14): `--no-cache-filter`.

mod build_support;

use build_support::{path_str, BuildEnv};

/// `--no-cache-filter STAGE` re-runs that stage's steps (by name or index) and no other's;
/// what it ran is cached again for the next build.
#[test]
fn no_cache_filter_reruns_only_the_named_stage() {
    let b = BuildEnv::new();
    let ctx = b.context(
        "ncf",
        &[(
            "Dockerfile",
            "FROM busybox AS First\nRUN cat /proc/sys/kernel/random/uuid > /first\n\
             FROM busybox AS second\nCOPY --from=first /first /first\nRUN cat /proc/sys/kernel/random/uuid > /second\n",
        )],
    );
    let stamps = |tag: &str| {
        (
            b.image_file(tag, "/first").unwrap(),
            b.image_file(tag, "/second").unwrap(),
        )
    };
    b.build(&["-t", "a", path_str(&ctx)]);
    let a = stamps("a");
    b.build(&["-t", "b", "--no-cache-filter", "second", path_str(&ctx)]);
    let bb = stamps("b");
    assert_eq!(a.0, bb.0, "stage first stays cached");
    assert_ne!(a.1, bb.1, "stage second re-ran");
    b.build(&["-t", "c", "--no-cache-filter", "FIRST", path_str(&ctx)]);
    let c = stamps("c");
    assert_ne!(bb.0, c.0, "stage first re-ran (name matched without case)");
    assert_ne!(
        bb.1, c.1,
        "second depends on the new /first, so its key changed"
    );
    b.build(&["-t", "d", path_str(&ctx)]);
    assert_eq!(c, stamps("d"), "a filtered build's results are cached");
    b.build(&["-t", "e", "--no-cache-filter", "1", path_str(&ctx)]);
    let e = stamps("e");
    assert_eq!(c.0, e.0, "index 1 is stage second only");
    assert_ne!(c.1, e.1);
}

/// `--provenance`/`--sbom` are accepted (as CI scripts pass them to BuildKit); asking for one
/// says at info level that none is attached.
#[test]
fn provenance_and_sbom_flags_are_accepted() {
    let b = BuildEnv::new();
    let ctx = b.context("prov", &[("Dockerfile", "FROM busybox\nLABEL a=b\n")]);
    b.build(&["--provenance=false", "--sbom=false", path_str(&ctx)]);
    let out = b
        .env
        .cmd()
        .args([
            "--log-level",
            "info",
            "build",
            "--provenance=mode=max",
            "--sbom=true",
        ])
        .arg(&ctx)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--provenance=mode=max: rbuild does not produce attestations"),
        "{err}"
    );
    assert!(err.contains("--sbom=true"), "{err}");
}
