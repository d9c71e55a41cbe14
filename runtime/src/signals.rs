//! Signal forwarding from the runner process to its running containers.
//!
//! While at least one container runs, the runner handles SIGTERM, SIGINT, SIGHUP, SIGQUIT,
//! SIGUSR1 and SIGUSR2 by sending the same signal to every container's setup process, which
//! forwards it to the container's PID 1. When the last container ends the previous
//! dispositions come back.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

/// Signals passed on to the container.
pub const FORWARDED_SIGNALS: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

const SLOTS: usize = 128;
static TARGETS: [AtomicI32; SLOTS] = [const { AtomicI32::new(0) }; SLOTS];
static INSTALLED: Mutex<(usize, Vec<(Signal, SigAction)>)> = Mutex::new((0, Vec::new()));

extern "C" fn forward(signal: libc::c_int) {
    for target in &TARGETS {
        let pid = target.load(Ordering::Relaxed);
        if pid > 0 {
            // SAFETY: kill(2) is async-signal-safe and takes plain integers.
            unsafe { libc::kill(pid, signal) };
        }
    }
}

/// Forwarding to one process, undone on drop.
#[derive(Debug)]
pub(crate) struct Registration {
    slot: Option<usize>,
}

/// Starts forwarding the runner's signals to `pid`.
pub(crate) fn register(pid: i32) -> Registration {
    let slot = TARGETS.iter().position(|t| {
        t.compare_exchange(0, pid, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    });
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if installed.0 == 0 {
        let action = SigAction::new(
            SigHandler::Handler(forward),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        installed.1 = FORWARDED_SIGNALS
            .iter()
            // SAFETY: `forward` only calls async-signal-safe functions and reads atomics.
            .filter_map(|s| unsafe { sigaction(*s, &action) }.ok().map(|old| (*s, old)))
            .collect();
    }
    installed.0 += 1;
    Registration { slot }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            TARGETS[slot].store(0, Ordering::SeqCst);
        }
        let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
        installed.0 = installed.0.saturating_sub(1);
        if installed.0 == 0 {
            let previous = std::mem::take(&mut installed.1);
            for (signal, action) in previous {
                // SAFETY: restores the disposition that was in place before `register`.
                let _ = unsafe { sigaction(signal, &action) };
            }
        }
    }
}

/// The set of forwarded signals plus SIGCHLD (what the setup processes block and wait for).
pub(crate) fn supervised_set() -> SigSet {
    let mut set = SigSet::empty();
    for s in FORWARDED_SIGNALS {
        set.add(s);
    }
    set.add(Signal::SIGCHLD);
    set
}
