//! Progress output on stderr.
//!
//! Plain mode (CI logs, `--progress=plain`, the default when stderr is not a terminal) prints
//! BuildKit's plain format:
//!
//! ```text
//! #3 [stage-0 2/4] RUN echo hi
//! #3 0.031 hi
//! #3 DONE 0.1s
//! #4 [stage-0 3/4] COPY index.html ./
//! #4 CACHED
//! ```
//!
//! Tty mode (`--progress=tty`, or `auto` on a terminal) is a compact live display: finished
//! steps scroll up as one line each (`=> [stage-0 2/4] RUN echo hi  0.1s`), running steps
//! stay at the bottom with their elapsed time and last output lines, redrawn in place. A
//! failed step prints its output tail. Quiet mode (`-q`) prints nothing.
//!
//! The live display measures the terminal at each redraw (`crate::terminal`: the ioctl, not
//! `$COLUMNS`), cuts every line to its width in columns (a wrapped line would make the next
//! redraw move the cursor up too few lines and corrupt the screen), shows at most a screen
//! less one line, drops control characters a step printed, and dims output tails only when
//! colour is wanted (`NO_COLOR`). `auto` is plain on a dumb terminal (the CLI's choice).
//!
//! ADD downloads report their bytes ([`Progress::transfer`]): a `=> => downloading` line
//! under the running step on a terminal; in plain mode one line when done
//! (`#4 https://example.com/f.tgz 12.00 MiB / 12.00 MiB done`, BuildKit's form).

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use indicatif::HumanBytes;

use crate::archive::progress::Event;
use crate::terminal;

/// How much to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Nothing.
    Quiet,
    /// BuildKit-like plain lines.
    Plain,
    /// A live display for terminals.
    Tty,
}

/// One vertex (step) of the progress display.
#[derive(Debug)]
pub struct StepHandle {
    id: usize,
    start: Instant,
}

/// Output lines kept per running step in tty mode.
const TTY_TAIL: usize = 5;

/// The most characters of an instruction echoed in a step name or an error (BuildKit shortens
/// long vertex names too): a 50 MB RUN line must not print 50 MB, twice.
pub const ECHO_MAX: usize = 512;

/// `text` as echoed in progress and errors: cut to [`ECHO_MAX`] characters, with `…` and the
/// size of what was left out when cut.
pub fn echo(text: &str) -> Cow<'_, str> {
    // Bytes ≥ characters: a short text needs no count.
    if text.len() <= ECHO_MAX {
        return Cow::Borrowed(text);
    }
    match text.char_indices().nth(ECHO_MAX) {
        None => Cow::Borrowed(text),
        Some((cut, _)) => Cow::Owned(format!(
            "{}… ({} more bytes)",
            &text[..cut],
            text.len() - cut
        )),
    }
}

#[derive(Debug, Default)]
struct Live {
    /// Running steps: id, name, start, last output lines.
    running: Vec<(usize, String, Instant, VecDeque<String>)>,
    /// Lines of the live region currently on screen.
    drawn: usize,
    /// Bytes of each step's current download: done and total (when known).
    transfers: HashMap<usize, (u64, Option<u64>)>,
}

/// Writes progress to stderr.
#[derive(Debug)]
pub struct Progress {
    mode: ProgressMode,
    next: AtomicUsize,
    live: Mutex<Live>,
    /// Whether [`Progress::detail`] lines are shown (`--log-level info` and above).
    details: bool,
}

impl Progress {
    /// A progress writer in `mode`.
    pub fn new(mode: ProgressMode) -> Progress {
        Progress {
            mode,
            next: AtomicUsize::new(1),
            live: Mutex::new(Live::default()),
            details: false,
        }
    }

    /// Shows [`Progress::detail`] lines too (the CLI's `--log-level info`).
    pub fn with_details(mut self, details: bool) -> Progress {
        self.details = details;
        self
    }

    fn line(&self, text: &str) {
        if self.mode == ProgressMode::Plain {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{text}");
        }
    }

    /// Tty mode: prints `permanent` lines above the live region, then redraws it, every
    /// line cut to the terminal's width (100 columns when stderr is no terminal) and the
    /// region to its height less one line (the cursor cannot move above the screen).
    fn redraw(&self, live: &mut Live, permanent: &[String]) {
        let (rows, width) = terminal::stderr_size().unwrap_or((usize::MAX, 100));
        let (dim, undim) = match terminal::colour_wanted() {
            true => ("\x1b[2m", "\x1b[0m"),
            false => ("", ""),
        };
        let mut out = String::new();
        if live.drawn > 0 {
            out.push_str(&format!("\x1b[{}A\x1b[J", live.drawn));
        }
        for p in permanent {
            out.push_str(&fit_line(p, width));
            out.push('\n');
        }
        // (line, dimmed)
        let mut region: Vec<(String, bool)> = Vec::new();
        for (id, name, start, tail) in &live.running {
            let t = start.elapsed().as_secs_f64();
            region.push((format!("=> {name}{TIME}{t:.1}s"), false));
            if let Some(&(done, total)) = live.transfers.get(id) {
                region.push((
                    format!("=> => downloading {}", bytes_of(done, total)),
                    false,
                ));
            }
            region.extend(tail.iter().map(|l| (format!("   {l}"), true)));
        }
        let room = rows.saturating_sub(1).max(1);
        if region.len() > room {
            let hidden = region.len() - (room - 1);
            region.truncate(room - 1);
            region.push((format!("   … {hidden} more lines"), false));
        }
        for (line, dimmed) in &region {
            let line = fit_line(line, width);
            match dimmed {
                true => out.push_str(&format!("{dim}{line}{undim}\n")),
                false => out.push_str(&format!("{line}\n")),
            }
        }
        live.drawn = region.len();
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(out.as_bytes());
        let _ = err.flush();
    }

    fn with_live(&self, f: impl FnOnce(&mut Live) -> Vec<String>) {
        if self.mode != ProgressMode::Tty {
            return;
        }
        if let Ok(mut live) = self.live.lock() {
            let permanent = f(&mut live);
            self.redraw(&mut live, &permanent);
        }
    }

    fn finish(&self, step: &StepHandle, label: &str, with_tail: bool, extra: Option<&str>) {
        self.with_live(|live| {
            let mut lines = Vec::new();
            if let Some(pos) = live.running.iter().position(|r| r.0 == step.id) {
                let (_, name, start, tail) = live.running.remove(pos);
                let t = start.elapsed().as_secs_f64();
                lines.push(format!("=> {label}{name}{TIME}{t:.1}s"));
                if with_tail {
                    lines.extend(tail.into_iter().map(|l| format!("   {l}")));
                }
            }
            if let Some(e) = extra.and_then(|e| e.lines().next()) {
                lines.push(format!("   {e}"));
            }
            lines
        });
    }

    /// Whether a live display wants [`Progress::tick`] called now and then.
    pub fn is_live(&self) -> bool {
        self.mode == ProgressMode::Tty
    }

    /// Redraws the live display (elapsed times of running steps).
    pub fn tick(&self) {
        self.with_live(|_| Vec::new());
    }

    /// Starts step `name` (`#N name`; a long name is cut, see [`echo`]).
    pub fn start(&self, name: &str) -> StepHandle {
        let name = &*echo(name);
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.line(&format!("#{id} {name}"));
        let start = Instant::now();
        self.with_live(|live| {
            live.running
                .push((id, name.to_string(), start, VecDeque::new()));
            Vec::new()
        });
        StepHandle { id, start }
    }

    /// A line of the step's output, with the time since it started.
    pub fn log(&self, step: &StepHandle, text: &str) {
        let t = step.start.elapsed().as_secs_f64();
        self.line(&format!("#{} {t:.3} {text}", step.id));
        self.with_live(|live| {
            if let Some(r) = live.running.iter_mut().find(|r| r.0 == step.id) {
                r.3.push_back(text.to_string());
                if r.3.len() > TTY_TAIL {
                    r.3.pop_front();
                }
            }
            Vec::new()
        });
    }

    /// A download of the step moved bytes, or ended ([`Event::Done`]; `id` is its URL).
    pub fn transfer(&self, step: &StepHandle, event: Event<'_>) {
        if self.mode == ProgressMode::Quiet {
            return;
        }
        let Ok(mut live) = self.live.lock() else {
            return;
        };
        match event {
            Event::Bytes { done, total, .. } => {
                live.transfers.insert(step.id, (done, total));
            }
            Event::Done { id } => {
                let (done, total) = live.transfers.remove(&step.id).unwrap_or((0, Some(0)));
                let text = format!("{} {} done", echo(id), bytes_of(done, total));
                drop(live);
                self.info(step, &text);
            }
        }
    }

    /// A message of the step (no timestamp).
    pub fn info(&self, step: &StepHandle, text: &str) {
        self.line(&format!("#{} {text}", step.id));
        self.with_live(|_| vec![format!("=> => {text}")]);
    }

    /// A detail of the step, shown only [`Progress::with_details`] (how it was run, say).
    pub fn detail(&self, step: &StepHandle, text: &str) {
        if self.details {
            self.info(step, text);
        }
    }

    /// The step was a cache hit.
    pub fn cached(&self, step: &StepHandle) {
        self.line(&format!("#{} CACHED", step.id));
        self.finish(step, "CACHED ", false, None);
    }

    /// The step finished.
    pub fn done(&self, step: &StepHandle) {
        let t = step.start.elapsed().as_secs_f64();
        self.line(&format!("#{} DONE {t:.1}s", step.id));
        self.finish(step, "", false, None);
    }

    /// The step failed.
    pub fn error(&self, step: &StepHandle, text: &str) {
        self.line(&format!("#{} ERROR: {text}", step.id));
        self.finish(step, "ERROR ", true, Some(text));
    }

    /// A warning outside any step.
    pub fn warn(&self, text: &str) {
        self.line(&format!("[Warning] {text}"));
        self.with_live(|_| vec![format!("[Warning] {text}")]);
    }
}

/// Starts the end of a live line that is kept whole when the line is cut (a step's time:
/// the name is cut instead, as BuildKit does). Shown as two spaces.
const TIME: char = '\t';

/// `line` cut to `width` columns, keeping what follows its last [`TIME`] whole.
fn fit_line(line: &str, width: usize) -> String {
    match line.rsplit_once(TIME) {
        Some((text, time)) if terminal::width(time) + 3 <= width => {
            let time = format!("  {time}");
            let text = terminal::fit(text, width - terminal::width(&time));
            format!("{text}{time}")
        }
        _ => terminal::fit(line, width),
    }
}

/// `12.00 MiB / 40.00 MiB`, or `12.00 MiB` of an unknown total.
fn bytes_of(done: u64, total: Option<u64>) -> String {
    match total {
        Some(total) => format!("{} / {}", HumanBytes(done), HumanBytes(total)),
        None => HumanBytes(done).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_lines_keep_their_time_when_cut() {
        assert_eq!(fit_line("=> RUN x\t0.1s", 40), "=> RUN x  0.1s");
        assert_eq!(
            fit_line("=> RUN echo 日本語日本語\t12.5s", 22),
            "=> RUN echo 日…  12.5s"
        );
        assert_eq!(fit_line("=> RUN echo\t0.1s", 5), "=> R…");
        for w in 1..40 {
            let line = fit_line("=> [stage-0 2/3] RUN echo ｗｉｄｅ\t0.1s", w);
            assert!(terminal::width(&line) <= w, "{w}: {line}");
        }
    }

    #[test]
    fn echo_cuts_long_text_on_a_character_boundary() {
        assert_eq!(echo("RUN make"), "RUN make");
        let exact = "x".repeat(ECHO_MAX);
        assert!(matches!(echo(&exact), Cow::Borrowed(_)));
        let long = format!("RUN {}", "é".repeat(1000));
        let cut = echo(&long);
        let (head, tail) = cut.split_once('…').unwrap();
        assert_eq!(head.chars().count(), ECHO_MAX);
        assert_eq!(tail, format!(" ({} more bytes)", long.len() - head.len()));
    }
}
