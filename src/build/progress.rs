//! Progress output on stderr, BuildKit's plain format:
//!
//! ```text
//! #3 [stage-0 2/4] RUN echo hi
//! #3 0.031 hi
//! #3 DONE 0.1s
//! #4 [stage-0 3/4] COPY index.html ./
//! #4 CACHED
//! ```
//!
//! `--progress=tty` currently prints the same lines (a live display is future work); quiet
//! mode prints nothing (`-q`).

use std::io::Write;
use std::time::Instant;

/// How much to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Nothing.
    Quiet,
    /// BuildKit-like plain lines.
    Plain,
}

/// One vertex (step) of the progress display.
#[derive(Debug)]
pub struct StepHandle {
    id: usize,
    start: Instant,
}

/// Writes progress lines to stderr.
#[derive(Debug)]
pub struct Progress {
    mode: ProgressMode,
    next: std::sync::atomic::AtomicUsize,
}

impl Progress {
    /// A progress writer in `mode`.
    pub fn new(mode: ProgressMode) -> Progress {
        Progress {
            mode,
            next: std::sync::atomic::AtomicUsize::new(1),
        }
    }

    fn line(&self, text: &str) {
        if self.mode == ProgressMode::Plain {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{text}");
        }
    }

    /// Starts step `name` (`#N name`).
    pub fn start(&self, name: &str) -> StepHandle {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.line(&format!("#{id} {name}"));
        StepHandle {
            id,
            start: Instant::now(),
        }
    }

    /// A line of the step's output, with the time since it started.
    pub fn log(&self, step: &StepHandle, text: &str) {
        let t = step.start.elapsed().as_secs_f64();
        self.line(&format!("#{} {t:.3} {text}", step.id));
    }

    /// A message of the step (no timestamp).
    pub fn info(&self, step: &StepHandle, text: &str) {
        self.line(&format!("#{} {text}", step.id));
    }

    /// The step was a cache hit.
    pub fn cached(&self, step: &StepHandle) {
        self.line(&format!("#{} CACHED", step.id));
    }

    /// The step finished.
    pub fn done(&self, step: &StepHandle) {
        let t = step.start.elapsed().as_secs_f64();
        self.line(&format!("#{} DONE {t:.1}s", step.id));
    }

    /// The step failed.
    pub fn error(&self, step: &StepHandle, text: &str) {
        self.line(&format!("#{} ERROR: {text}", step.id));
    }

    /// A warning outside any step.
    pub fn warn(&self, text: &str) {
        self.line(&format!("[Warning] {text}"));
    }
}
