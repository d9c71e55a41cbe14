//! What pull, push, save, load and import show while blobs move: per-layer bars (size,
//! bytes, speed, ETA) on stderr when it is a terminal, else one docker-style line per
//! finished layer (`3f4e2a1b9c0d: Pull complete`) and nothing animated, nothing at all under
//! `-q`. The library only reports events (`registry::Event`, `archive::progress::Event`);
//! this module owns how they look. Bars are laid out for the terminal's width (measured by
//! the ioctl, `crate::terminal`): speed and ETA are left out on narrow terminals so that no
//! line wraps. The build's step display (and its ADD downloads) is `build/progress.rs`.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;

use clap::{Args, ValueEnum};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::archive::progress::Event as ArchiveEvent;
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

/// `-q` and `--progress` of save, load and import (pull and push have their own, with their
/// own help texts).
#[derive(Debug, Clone, Copy, Args)]
pub struct ProgressArgs {
    /// Suppress progress output
    #[arg(short, long)]
    pub quiet: bool,
    /// Progress output (auto: bars when stderr is a terminal, else a line per layer)
    #[arg(long, value_enum, default_value = "auto", value_name = "TYPE")]
    pub progress: ProgressFlag,
}

impl ProgressArgs {
    /// The display these flags ask for, with a layer in transit doing `verb`; plain lines go
    /// to stderr (stdout carries the archive, or what scripts read: an ID, `Loaded image:`).
    pub fn transfer(&self, verb: &'static str) -> Transfer {
        Transfer::new(self.progress, self.quiet, verb, std::io::stderr())
    }
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
            (_, ProgressFlag::Auto) => Some(crate::terminal::stderr_is_live()),
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
            } => return self.bytes(digest.short(), done, Some(total)),
            Event::LayerExists(d) => (d, "Layer already exists".to_string()),
            Event::Pushed(d) => (d, "Pushed".to_string()),
            Event::Mounted { digest, from } => (digest, format!("Mounted from {from}")),
            Event::AlreadyExists(d) => (d, "Already exists".to_string()),
            Event::PullComplete(d) => (d, "Pull complete".to_string()),
        };
        self.finished(digest.short(), &status);
    }

    /// Shows an archive event (save, load, import): a finished layer says `done_status`.
    pub fn archive_event(&self, event: ArchiveEvent<'_>, done_status: &str) {
        match event {
            ArchiveEvent::Bytes { id, done, total } => self.bytes(id, done, total),
            ArchiveEvent::Done { id } => self.finished(id, done_status),
        }
    }

    /// `done` of `total` (when known) bytes of layer `id` have moved (bars only).
    pub fn bytes(&self, id: &str, done: u64, total: Option<u64>) {
        if let Some(bar) = self.bar(id, total) {
            if let Some(total) = total {
                bar.set_length(total);
            }
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
                if let Some(bar) = self.bar(id, None) {
                    bar.set_style(done_style());
                    bar.finish_with_message(status.to_string());
                }
            }
        }
    }

    /// The bar of layer `id`, made on first use (`None` unless bars are drawn).
    fn bar(&self, id: &str, total: Option<u64>) -> Option<ProgressBar> {
        let Display::Bars { multi, bars } = &self.display else {
            return None;
        };
        let mut bars = bars.lock().unwrap_or_else(|p| p.into_inner());
        let bar = bars.entry(id.to_string()).or_insert_with(|| {
            let width = crate::terminal::stderr_size().map_or(80, |(_, cols)| cols);
            let bar = match total {
                Some(total) => ProgressBar::new(total),
                None => ProgressBar::no_length(),
            };
            // Complete before it is added: adding draws it.
            multi.add(
                bar.with_style(active_style(width, total.is_some()))
                    .with_prefix(crate::terminal::fit(id, ID_WIDTH))
                    .with_message(self.verb),
            )
        });
        Some(bar.clone())
    }
}

/// The most columns a layer's name takes (a short ID; an imported file's name is cut).
const ID_WIDTH: usize = 12;

/// A layer in transit on a terminal of 100 columns or more:
/// `3f4e2a1b9c0d: Downloading [====>   ] 12.0 MiB/40.0 MiB 8.1 MiB/s ETA 3s` (the bar takes
/// what the rest, at most 83 columns, leaves).
const ACTIVE: &str =
    "{prefix}: {msg:<11} [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}";
/// From 60 columns: no speed or ETA (at most 54 columns besides the bar).
const ACTIVE_MEDIUM: &str = "{prefix}: {msg:<11} [{wide_bar}] {bytes}/{total_bytes}";
/// Narrower: the ID, the bar and the percentage (these fit from 24 columns).
const ACTIVE_NARROW: &str = "{prefix} [{wide_bar}] {percent:>3}%";
/// Of unknown size (an import from stdin), from 60 columns: bytes so far and speed.
const COUNTING: &str = "{prefix}: {msg:<11} {bytes} {binary_bytes_per_sec}";
/// Of unknown size, narrower.
const COUNTING_NARROW: &str = "{prefix} {bytes}";
/// A finished layer: `3f4e2a1b9c0d: Pull complete`, as the plain line.
const DONE: &str = "{prefix}: {msg}";

/// The style of a layer in transit on a terminal `width` columns wide.
fn active_style(width: usize, sized: bool) -> ProgressStyle {
    let template = match (sized, width) {
        (true, 100..) => ACTIVE,
        (true, 60..) => ACTIVE_MEDIUM,
        (true, _) => ACTIVE_NARROW,
        (false, 60..) => COUNTING,
        (false, _) => COUNTING_NARROW,
    };
    ProgressStyle::with_template(template)
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
        for t in [
            ACTIVE,
            ACTIVE_MEDIUM,
            ACTIVE_NARROW,
            COUNTING,
            COUNTING_NARROW,
            DONE,
        ] {
            assert!(ProgressStyle::with_template(t).is_ok(), "{t}");
        }
    }

    /// A terminal of `width` columns that keeps what is written to it.
    #[derive(Debug)]
    struct Recorder {
        width: u16,
        written: std::sync::Arc<Mutex<Vec<String>>>,
    }

    impl indicatif::TermLike for Recorder {
        fn width(&self) -> u16 {
            self.width
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(s)
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.written.lock().unwrap().push(s.to_string());
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// At 60 and 200 columns (and the widths where the layout changes), a bar in transit at
    /// its widest (a 13-column verb, sizes near 1 GiB, a slow speed and long ETA) fits.
    #[test]
    fn bars_fit_the_terminal_width() {
        for width in [24, 59, 60, 99, 100, 200] {
            for sized in [true, false] {
                let written = std::sync::Arc::new(Mutex::new(Vec::new()));
                let term = Recorder {
                    width,
                    written: written.clone(),
                };
                let bar = match sized {
                    true => ProgressBar::new(1023 << 20),
                    false => ProgressBar::no_length(),
                };
                let bar = bar
                    .with_style(active_style(width.into(), sized))
                    .with_prefix("3f4e2a1b9c0d")
                    .with_message("Loading layer");
                bar.set_draw_target(ProgressDrawTarget::term_like(Box::new(term)));
                bar.set_position(1000 << 20);
                bar.tick();
                let lines = written.lock().unwrap();
                let drawn: Vec<&String> = lines.iter().filter(|l| !l.trim().is_empty()).collect();
                assert!(!drawn.is_empty(), "{width}");
                for l in drawn {
                    let w = console::measure_text_width(l);
                    assert!(w <= width.into(), "{width} {sized}: {w}: {l:?}");
                }
            }
        }
    }
}
