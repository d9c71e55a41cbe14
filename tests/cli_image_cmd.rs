//! `rbuild image …` (docker's management-command spellings, dispatched by `cli/image_cmd.rs`):
//! every subcommand runs the same command as its top-level spelling.

mod common;

use common::golden::table;
use common::{busybox_rootfs_tar, TestEnv};

#[test]
fn image_subcommands_run_the_top_level_commands() {
    let env = TestEnv::new();
    let tar = busybox_rootfs_tar().to_str().unwrap();
    let id = env.ok(&["image", "import", tar, "base:1"]);
    assert_eq!(env.ok(&["images", "-q", "--no-trunc"]), id);
    for ls in ["ls", "list"] {
        assert_eq!(
            table(&env.ok(&["image", ls])),
            table(&env.ok(&["images"])),
            "image {ls}"
        );
    }
    assert_eq!(
        env.ok(&["image", "inspect", "base:1"]),
        env.ok(&["inspect", "base:1"])
    );
    assert_eq!(
        table(&env.ok(&["image", "history", "--no-trunc", "base:1"])),
        table(&env.ok(&["history", "--no-trunc", "base:1"]))
    );
    env.ok(&["image", "tag", "base:1", "other:2"]);
    assert_eq!(env.inspect("other:2")["Id"], id.trim());

    let saved = env.path().join("saved.tar");
    env.ok(&["image", "save", "-o", saved.to_str().unwrap(), "other:2"]);
    let env2 = TestEnv::new();
    let loaded = env2.ok(&["image", "load", "-q", "-i", saved.to_str().unwrap()]);
    assert_eq!(loaded, "Loaded image: other:2\n");
    assert_eq!(env2.inspect("other:2")["Id"], id.trim());

    for rm in ["rm", "remove"] {
        env.ok(&["tag", "base:1", "gone:1"]);
        let out = env.ok(&["image", rm, "gone:1"]);
        assert_eq!(out, "Untagged: gone:1\n", "image {rm}");
    }
    env.ok(&["image", "rm", "other:2", "base:1"]);
    let out = env.ok(&["image", "prune", "-a", "-f"]);
    assert!(out.ends_with("Total reclaimed space: 0B\n"), "{out}");
    assert_eq!(env.ok(&["images", "-q"]), "");
}
