//! An unused bridge stays for a while (its linger) before it and its rules are removed.
//!
//! Why: removing a bridge is slow in the kernel (its `RTM_DELLINK` waits for RCU: ~50 ms
//! here) and setting one up again costs its creation and an `nft` run. When every
//! container's last exit removed the bridge, a `run --rm IMAGE true` on the default network
//! paid all of it each time (80-97 ms against 16-25 ms with `--network none`). A bridge that
//! stays a few seconds is reused by the next container with no netlink create and no `nft`.
//!
//! How: the last user to leave ([`left`]) marks the bridge idle in the IPAM record (when, and
//! for how long it may stay: the linger of its latest user, [`super::config::linger`]) and
//! makes sure a reaper runs: `rbuild network-reaper` ([`reap`]), a detached process (a session
//! of its own, stdio on `/dev/null`, no inherited descriptor, nobody's child:
//! [`rbuild_runtime::detach::orphan`]). One reaper at a time per record: it holds an flock
//! on `reaper.lock` next to the record, and one started while another holds it ends at
//! once. It sleeps until the first idle bridge's deadline, then, under the record's lock,
//! removes what [`clean`] finds expired, and sleeps again while a bridge still lingers;
//! it ends when none does. A user that comes in between clears the mark (and reuses the
//! bridge); a later release sets a later deadline, which the reaper finds when it wakes.
//!
//! Races: the reaper lets go of its lock before the record's when it ends, and a releaser
//! looks for a running reaper while it holds the record's lock, so a releaser that finds
//! the reaper lock taken knows that this reaper will still see its mark.
//!
//! A killed reaper leaves lingering bridges behind: every rbuild command cleans at start
//! ([`super::clean_leftovers`]), removing the expired ones and starting a reaper for the
//! others when none runs. A bridge no live lease uses with no idle mark is what a killed
//! rbuild left: it goes at once, as before bridges lingered. Linger 0 is the old behaviour:
//! the last user removes the bridge itself and no reaper starts.

use std::fs::File;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::state::{lock_file, state_dir, BridgeRecord, Locked};
use super::NetworkError;

/// The hidden subcommand that runs [`reap`].
pub const COMMAND: &str = "network-reaper";

/// Unix time in milliseconds.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The reaper's lock, when no other process holds it.
fn try_reaper_lock() -> Result<Option<File>, NetworkError> {
    lock_file(&state_dir().join("reaper.lock"), false)
}

/// Starts a reaper unless one runs (call with the record's lock held, see the module docs).
fn ensure_reaper() -> Result<(), NetworkError> {
    if try_reaper_lock()?.is_none() {
        return Ok(());
    }
    // The lock just taken is let go here: the new reaper takes it (or one started in the
    // meantime does, and the new one ends).
    let exe = "/proc/self/exe";
    let mut cmd = Command::new(exe);
    cmd.arg(COMMAND)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    rbuild_runtime::detach::orphan(&mut cmd);
    let io = |error| NetworkError::Io {
        path: exe.into(),
        error,
    };
    cmd.spawn().map_err(io)?.wait().map_err(io)?; // the child that forked the reaper
    Ok(())
}

/// The last user of `bridge` left (the caller saves the record): it is removed at once with
/// linger 0, else marked idle for the reaper (or removed at once when no reaper can start).
pub(super) fn left(locked: &mut Locked, bridge: &str) -> Result<(), NetworkError> {
    let Some(record) = locked.state.bridges.get_mut(bridge) else {
        return Ok(());
    };
    if record.linger_ms == 0 {
        return super::tear_down(locked, bridge);
    }
    record.idle_since = Some(now_ms());
    if ensure_reaper().is_err() {
        return super::tear_down(locked, bridge);
    }
    Ok(())
}

/// A user joins `bridge`, which lingers no more; its linger is now `linger`'s.
pub(super) fn reused(record: &mut BridgeRecord, linger: Duration) {
    record.idle_since = None;
    record.linger_ms = linger.as_millis() as u64;
}

/// When an unused bridge goes: `None` for now (it is not marked idle: a leftover), else its
/// deadline. A mark in the future (the clock was set back) counts as expired.
fn deadline(record: &BridgeRecord, now: u64) -> Option<u64> {
    let since = record.idle_since?;
    let due = since.saturating_add(record.linger_ms);
    (since <= now).then_some(due)
}

/// Reclaims the leases of dead processes and removes the bridges (and rules) no live lease
/// uses that are not lingering: their linger passed, or nobody marked them idle. Saves the
/// record when it changed; returns the earliest deadline of the bridges still lingering.
pub(super) fn clean(locked: &mut Locked) -> Result<Option<u64>, NetworkError> {
    let before = locked.state.leases.len();
    locked.state.reclaim_stale();
    let now = now_ms();
    let mut next: Option<u64> = None;
    let mut expired = Vec::new();
    for (bridge, record) in &locked.state.bridges {
        if locked.state.in_use(bridge) {
            continue;
        }
        match deadline(record, now) {
            Some(due) if due > now => next = Some(next.map_or(due, |n| n.min(due))),
            _ => expired.push(bridge.clone()),
        }
    }
    for bridge in &expired {
        super::tear_down(locked, bridge)?;
    }
    if before != locked.state.leases.len() || !expired.is_empty() {
        locked.save()?;
    }
    Ok(next)
}

/// [`clean`] at a command's start; starts a reaper for what still lingers when none runs
/// (the last one was killed).
pub(super) fn clean_at_start(locked: &mut Locked) -> Result<(), NetworkError> {
    if clean(locked)?.is_some() {
        ensure_reaper()?;
    }
    Ok(())
}

/// The reaper's work (see the module docs); returns at once when another reaper runs.
pub fn reap() -> Result<(), NetworkError> {
    let Some(reaper) = try_reaper_lock()? else {
        return Ok(());
    };
    loop {
        let Some(mut locked) = Locked::open(false)? else {
            return Ok(());
        };
        let Some(due) = clean(&mut locked)? else {
            drop(reaper); // before the record's lock: see the module docs
            drop(locked);
            return Ok(());
        };
        drop(locked);
        crate::killpoint::reached("network-reaper-waiting");
        std::thread::sleep(Duration::from_millis(due.saturating_sub(now_ms())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(idle_since: Option<u64>, linger_ms: u64) -> BridgeRecord {
        BridgeRecord {
            subnet: "10.226.9.0/24".parse().unwrap(),
            gateway: std::net::Ipv4Addr::new(10, 226, 9, 1),
            linger_ms,
            idle_since,
        }
    }

    #[test]
    fn deadline_is_the_idle_mark_plus_the_linger_and_a_mark_from_the_future_is_expired() {
        assert_eq!(deadline(&record(None, 1000), 5000), None);
        assert_eq!(deadline(&record(Some(4000), 1000), 4500), Some(5000));
        assert_eq!(deadline(&record(Some(6000), 1000), 5000), None);
    }
}
