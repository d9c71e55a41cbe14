//! Test-only kill points: lets crash tests stop a process at an exact moment, not by timing.
//!
//! When `RBUILD_TEST_KILL_AT=<point>:<n>` is set, the `n`th time this process reaches the
//! named point it sends itself SIGKILL (no destructors, no cleanup: what a `kill -9` or an
//! OOM kill leaves). Unset (always, outside tests) a point costs one cached env lookup.
//!
//! Points: `delete-file` (each file a deletion removes), `trash-renamed` (a snapshot or
//! container dir moved aside, before its files go), `rmi-committed` (after `rmi`'s database
//! commit, before `index.json` is rewritten), `blob-write` (each MiB of a blob streamed into
//! the store), `unpack-applied` (a snapshot unpacked, not yet renamed into place),
//! `step-layer-written` (a build step's layer written, its snapshot not yet moved),
//! `save-write` (each MiB `save -o` writes), `container-started` (a container's process is
//! running), `network-attached` (an address leased and the bridge up, before the container
//! starts), `network-connected` (`network connect`: the veth made in the running container,
//! the lease not yet handed to its runner), `network-reaper-waiting` (the network reaper is about
//! to sleep until an idle bridge's deadline), `db-opened` (the metadata database open for
//! writing, marked open, before the change) and `db-changed` (the change made, before the
//! close).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// The parsed variable: (point, n).
fn target() -> Option<&'static (String, u64)> {
    static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
    TARGET
        .get_or_init(|| {
            let v = std::env::var("RBUILD_TEST_KILL_AT").ok()?;
            let (point, n) = v.rsplit_once(':')?;
            Some((point.to_string(), n.parse().ok()?))
        })
        .as_ref()
}

/// Marks that this process reached `point`; see the module docs.
pub(crate) fn reached(point: &str) {
    let Some((want, n)) = target() else {
        return;
    };
    if want != point {
        return;
    }
    static COUNTS: OnceLock<Mutex<HashMap<String, u64>>> = OnceLock::new();
    let mut counts = COUNTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let count = counts.entry(point.to_string()).or_insert(0);
    *count += 1;
    if *count >= *n {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGKILL);
        // SIGKILL is not delivered asynchronously to a blocked thread; wait for it.
        loop {
            std::thread::park();
        }
    }
}
