//! Pinned build cache keys (issue 11, "Tests and habits"): a build whose every input is fixed
//! must make the same cache keys and image ID on every host and in every version.
//!
//! A cache key is `sha256("rbuild cache v1\n" + parent key + canonical step JSON)`
//! (`build::steps::step_key`). A change in how a step's canonical JSON is serialised (field
//! names or order, a new field, another number format), or in the image config, changes every
//! key: every existing cache then misses, silently. So:
//!
//! IF THIS TEST FAILS after a change that was not meant to change keys, the change altered the
//! serialisation: undo that part. If the change of keys is intended (a new input really
//! belongs in the key), bump the version string in `step_key` (`rbuild cache v1` → `v2`) in
//! the same commit, say so in its message, and then update the pinned values here.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{ok_cmd, TestEnv};
use rbuild::store::Store;

/// Builds `FROM scratch` + one COPY of a fixed file + a WORKDIR (two layer steps) with
/// SOURCE_DATE_EPOCH, and returns (image ID, the store's cache keys sorted).
fn build_fixed(env: &TestEnv) -> (String, Vec<String>) {
    let ctx = env.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    for (name, content) in [
        (
            "Dockerfile",
            "FROM scratch\nCOPY a.txt /a.txt\nWORKDIR /w\n",
        ),
        ("a.txt", "pinned\n"),
    ] {
        std::fs::write(ctx.join(name), content).unwrap();
        std::fs::set_permissions(ctx.join(name), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let id = ok_cmd(
        env.cmd()
            .args(["build", "-q", "-t", "pinned:1", "."])
            .current_dir(&ctx)
            .env("SOURCE_DATE_EPOCH", "1700000000"),
    );
    let store = Store::open(&env.root()).expect("open store");
    let mut keys: Vec<String> = store
        .cache_records()
        .expect("cache records")
        .into_keys()
        .collect();
    keys.sort();
    (id.trim().to_string(), keys)
}

#[test]
fn cache_keys_and_image_id_of_a_fixed_build_are_pinned() {
    let env = TestEnv::new();
    let (id, keys) = build_fixed(&env);
    assert_eq!(
        keys,
        [
            "b186e180eb538dec0676cca957ec932ea695c468a3c2cc38efc4c3dbf28615cf",
            "f2672d2931d563a942eaf36d14b3575ea68c61b0149140f5095b21a7cfbaff94",
        ],
        "the cache keys changed: read the comment at the top of tests/cache_key.rs"
    );
    assert_eq!(
        id, "sha256:1e821ba692e1bee998f0c9263b57766808d916d3bee1c59743b18474d051c1a2",
        "the image ID changed: read the comment at the top of tests/cache_key.rs"
    );
}
