//! Where the shared conformance data is (BuildKit's parser and shell test files, read in
//! place and never copied into the project): `RBUILD_CONFORMANCE` when set, else
//! `shared/conformance` beside the project (`../shared` from its root, as on the development
//! machine and in CI), else the machine's own `/work/shared/conformance` (for a clone made
//! elsewhere, e.g. under /tmp).

use std::path::PathBuf;

/// The conformance data's root; panics naming every place looked at when none has it.
pub fn dir() -> PathBuf {
    let candidates: Vec<PathBuf> = std::env::var_os("RBUILD_CONFORMANCE")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance"),
            PathBuf::from("/work/shared/conformance"),
        ])
        .collect();
    candidates
        .iter()
        .find(|d| d.join("buildkit").is_dir())
        .cloned()
        .unwrap_or_else(|| panic!("no conformance data in any of {candidates:?}"))
}

/// BuildKit's Dockerfile front-end test data (`buildkit/frontend/dockerfile`).
pub fn dockerfile_dir() -> PathBuf {
    dir().join("buildkit/frontend/dockerfile")
}
