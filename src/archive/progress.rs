//! What `save`, `load` and `import` report while bytes move, for the CLI to draw (bars on a
//! terminal, a line per finished layer otherwise); `registry::Event` is the same for pull and
//! push. The library only reports; it never prints.

use std::io::{self, Read};

/// A step of a layer's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// `done` bytes of layer `id` (its short ID) have moved, of `total` when known. Sent at
    /// most every [`REPORT_EVERY`] bytes and once at the end.
    Bytes {
        id: &'a str,
        done: u64,
        total: Option<u64>,
    },
    /// Layer `id` is complete: written to the output (save), checked and stored (load).
    Done { id: &'a str },
}

/// A sink for [`Event`]s.
pub type Progress<'a> = &'a (dyn Fn(Event<'_>) + Sync);

/// The sink of callers that show nothing.
pub fn no_progress(_: Event<'_>) {}

/// How many bytes may move between two [`Event::Bytes`] of one layer: often enough for a
/// bar, rare enough to cost nothing.
pub const REPORT_EVERY: u64 = 256 << 10;

/// A reader that reports the bytes read through it as [`Event::Bytes`] of `id`.
pub struct Counted<'a, R> {
    inner: R,
    id: &'a str,
    total: Option<u64>,
    done: u64,
    reported: u64,
    progress: Progress<'a>,
}

impl<'a, R: Read> Counted<'a, R> {
    /// Counts what is read from `inner` as layer `id` of `total` bytes (when known).
    pub fn new(inner: R, id: &'a str, total: Option<u64>, progress: Progress<'a>) -> Self {
        Counted {
            inner,
            id,
            total,
            done: 0,
            reported: 0,
            progress,
        }
    }

    fn report(&mut self) {
        self.reported = self.done;
        (self.progress)(Event::Bytes {
            id: self.id,
            done: self.done,
            total: self.total,
        });
    }
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        let at_end = n == 0 || self.total.is_some_and(|t| self.done >= t);
        if (at_end && self.reported != self.done) || self.done - self.reported >= REPORT_EVERY {
            self.report();
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn counted_reports_rarely_and_at_the_end() {
        let seen = Mutex::new(Vec::new());
        let sink = |e: Event<'_>| {
            if let Event::Bytes { done, total, .. } = e {
                seen.lock().unwrap().push((done, total));
            }
        };
        let data = vec![1u8; 1 << 20];
        let mut r = Counted::new(&data[..], "abc", Some(1 << 20), &sink);
        io::copy(&mut r, &mut io::sink()).unwrap();
        let seen = seen.into_inner().unwrap();
        assert_eq!(seen.last(), Some(&(1 << 20, Some(1 << 20))));
        assert!(seen.len() <= 5, "{seen:?}");
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "{seen:?}");
    }
}
