//! What pull, push, save and load show while blobs move: per-layer bars (size, bytes, speed,
//! ETA) on stderr when it is a terminal, else one docker-style line per finished layer
//! (`3f4e2a1b9c0d: Pull complete`) and nothing animated, nothing at all under `-q`. The
//! library only reports events (`registry::Event`, the archive's layer callback); this module
//! owns how they look. The build's step display is `build/progress.rs`, not this.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use clap::ValueEnum;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::registry::Event;

/// `--progress` of the transfer commands (the build's names): `auto` draws bars when stderr
/// is a terminal, else as `plain`; `tty` bars (drawn only on a terminal); `plain` a line per
/// finished layer; `quiet` nothing. (No doc comments on the values: clap would switch the
/// whole `--help` to its long layout.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressFlag {
    Auto,
    Tty,
    Plain,
    Quiet,
}

enum Display {
    Bars {
        multi: MultiProgress,
        bars: Mutex<HashMap<String, ProgressBar>>,
    },
    Plain(Mutex<Box<dyn Write + Send>>),
    Quiet,
}

/// The progress display of one transfer command; shared by its worker threads.
pub struct Transfer {
    display: Display,
    /// What a layer in transit is doing ("Downloading", "Pushing", …).
    verb: &'static str,
}

impl Transfer {
    /// Picks the display for `flag` (`-q` wins); plain lines go to `lines`.
    pub fn new(
        flag: ProgressFlag,
        quiet: bool,
        verb: &'static str,
        lines: impl Write + Send + 'static,
    ) -> Transfer {
        let bars = match (quiet, flag) {
            (true, _) | (_, ProgressFlag::Quiet) => None,
            (_, ProgressFlag::Tty) => Some(true),
            (_, ProgressFlag::Plain) => Some(false),
            (_, ProgressFlag::Auto) => Some(std::io::stderr().is_terminal()),
        };
        let display = match bars {
            None => Display::Quiet,
            Some(true) => Display::Bars {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                bars: Mutex::new(HashMap::new()),
            },
            Some(false) => Display::Plain(Mutex::new(Box::new(lines))),
        };
        Transfer { display, verb }
    }

    /// Shows a registry event (pull and push).
    pub fn registry_event(&self, event: Event) {
        let (digest, status) = match event {
            Event::Bytes {
                digest,
                done,
                total,
            } => return self.bytes(digest.short(), done, total),
            Event::LayerExists(d) => (d, "Layer already exists".to_string()),
            Event::Pushed(d) => (d, "Pushed".to_string()),
            Event::Mounted { digest, from } => (digest, format!("Mounted from {from}")),
            Event::AlreadyExists(d) => (d, "Already exists".to_string()),
            Event::PullComplete(d) => (d, "Pull complete".to_string()),
        };
        self.finished(digest.short(), &status);
    }

    /// `done` of `total` bytes of layer `id` have moved (bars only).
    pub fn bytes(&self, id: &str, done: u64, total: u64) {
        if let Some(bar) = self.bar(id, total) {
            bar.set_length(total);
            bar.set_position(done);
        }
    }

    /// Layer `id` is done: its bar says `status`, or a line `id: status` is written.
    pub fn finished(&self, id: &str, status: &str) {
        match &self.display {
            Display::Quiet => {}
            Display::Plain(out) => {
                let mut o = out.lock().unwrap_or_else(|p| p.into_inner());
                let _ = writeln!(o, "{id}: {status}");
                let _ = o.flush();
            }
            Display::Bars { .. } => {
                if let Some(bar) = self.bar(id, 0) {
                    bar.set_style(done_style());
                    bar.finish_with_message(status.to_string());
                }
            }
        }
    }

    /// The bar of layer `id`, made on first use (`None` unless bars are drawn).
    fn bar(&self, id: &str, total: u64) -> Option<ProgressBar> {
        let Display::Bars { multi, bars } = &self.display else {
            return None;
        };
        let mut bars = bars.lock().unwrap_or_else(|p| p.into_inner());
        let bar = bars.entry(id.to_string()).or_insert_with(|| {
            // Complete before it is added: adding draws it.
            multi.add(
                ProgressBar::new(total)
                    .with_style(active_style())
                    .with_prefix(id.to_string())
                    .with_message(self.verb),
            )
        });
        Some(bar.clone())
    }
}

/// A layer in transit: `3f4e2a1b9c0d: Downloading [====>   ] 12.0 MiB/40.0 MiB 8.1 MiB/s ETA 3s`.
const ACTIVE: &str =
    "{prefix}: {msg:<11} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}";
/// A finished layer: `3f4e2a1b9c0d: Pull complete`, as the plain line.
const DONE: &str = "{prefix}: {msg}";

fn active_style() -> ProgressStyle {
    ProgressStyle::with_template(ACTIVE)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

fn done_style() -> ProgressStyle {
    ProgressStyle::with_template(DONE).unwrap_or_else(|_| ProgressStyle::default_bar())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse() {
        for t in [ACTIVE, DONE] {
            assert!(ProgressStyle::with_template(t).is_ok(), "{t}");
        }
    }
}
