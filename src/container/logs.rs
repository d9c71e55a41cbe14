//! Container logs: what a detached container writes to stdout and stderr, kept in
//! `<container dir>/<id>-json.log` in docker's json-file format, one JSON object per line:
//! `{"log":"hello\n","stream":"stdout","time":"2026-12-04T16:05:23.123456789Z"}`.
//!
//! The monitor ([`super::monitor`]) appends; `logs` reads while the container runs and
//! after it exited. A line longer than [`MAX_LINE`] is cut into several entries (docker
//! cuts at the same size); a last line without a newline is logged without one. When the
//! file reaches [`MAX_SIZE`] it is renamed to `<id>-json.log.1` (replacing the previous
//! one) and a new file started, so a chatty container keeps at most twice that on disk
//! (docker's default json-file driver keeps everything; its `max-size` option does this).
//! Readers follow the rename ([`LogReader`]).

use std::fs;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{io_err, ContainerError};

/// Size at which the log is rotated.
pub const MAX_SIZE: u64 = 10 * 1024 * 1024;
/// Longest entry: longer lines are split.
pub const MAX_LINE: usize = 16 * 1024;

/// One entry, as docker's json-file driver writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The bytes written (invalid UTF-8 replaced), newline included when there was one.
    pub log: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    pub time: DateTime<Utc>,
}

/// The log of the container `id` whose dir is `dir`.
pub fn log_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}-json.log"))
}

fn rotated_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// The appending side, shared by the threads copying the container's streams.
#[derive(Debug)]
pub(super) struct LogWriter {
    path: PathBuf,
    file: fs::File,
    size: u64,
    max_size: u64,
}

impl LogWriter {
    pub(super) fn open(path: PathBuf, max_size: u64) -> Result<LogWriter, ContainerError> {
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let size = file.metadata().map_err(io_err(&path))?.len();
        Ok(LogWriter {
            path,
            file,
            size,
            max_size,
        })
    }

    fn append(&mut self, stream: &str, bytes: &[u8]) -> std::io::Result<()> {
        let entry = LogEntry {
            log: String::from_utf8_lossy(bytes).into_owned(),
            stream: stream.to_string(),
            time: Utc::now(),
        };
        let mut line = serde_json::to_vec(&entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        if self.size > 0 && self.size + line.len() as u64 > self.max_size {
            fs::rename(&self.path, rotated_path(&self.path))?;
            self.file = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            self.size = 0;
        }
        // One write per entry (O_APPEND): a reader never sees half an entry followed by
        // another stream's.
        self.file.write_all(&line)?;
        self.size += line.len() as u64;
        Ok(())
    }
}

/// Copies `source` (one of the container's streams) into the log (`None`: no log, an
/// `exec`'s streams), line by line, until end of file, handing every chunk read to `tee` as
/// soon as it arrives (the attached clients see a prompt that has no newline yet); returns
/// the thread doing it.
pub(super) fn copy_stream(
    mut source: impl Read + Send + 'static,
    stream: &'static str,
    log: Option<Arc<Mutex<LogWriter>>>,
    mut tee: impl FnMut(&[u8]) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; MAX_LINE];
        let mut line: Vec<u8> = Vec::with_capacity(MAX_LINE);
        let append = |entry: &[u8]| {
            let Some(log) = &log else { return };
            let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
            // A full disk loses log lines, never the container.
            let _ = log.append(stream, entry);
        };
        loop {
            let n = match source.read(&mut buf) {
                Ok(0) => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
                Ok(n) => n,
            };
            tee(&buf[..n]);
            line.extend_from_slice(&buf[..n]);
            // Complete lines, and pieces of MAX_LINE bytes of a longer one, are entries.
            let mut start = 0;
            while let Some(end) = line[start..]
                .iter()
                .take(MAX_LINE)
                .position(|b| *b == b'\n')
                .map(|i| start + i + 1)
                .or_else(|| (line.len() - start >= MAX_LINE).then_some(start + MAX_LINE))
            {
                append(&line[start..end]);
                start = end;
            }
            line.drain(..start);
        }
        if !line.is_empty() {
            append(&line);
        }
    })
}

/// Reads a container's log: first everything there is ([`LogReader::open`]), then what was
/// added since ([`LogReader::more`], for `logs -f`).
#[derive(Debug)]
pub struct LogReader {
    path: PathBuf,
    file: Option<BufReader<fs::File>>,
    /// An entry's bytes read without their newline yet (the writer is mid-write).
    partial: Vec<u8>,
}

impl LogReader {
    /// Opens the log at `path` ([`log_path`]) and returns every entry in it (the rotated
    /// file's first). A container that never ran has no log: no entries.
    pub fn open(path: PathBuf) -> Result<(LogReader, Vec<LogEntry>), ContainerError> {
        let mut entries = Vec::new();
        if let Ok(old) = fs::File::open(rotated_path(&path)) {
            let mut partial = Vec::new();
            read_entries(&mut BufReader::new(old), &mut partial, &mut entries)
                .map_err(io_err(rotated_path(&path)))?;
        }
        let mut reader = LogReader {
            path,
            file: None,
            partial: Vec::new(),
        };
        entries.extend(reader.more()?);
        Ok((reader, entries))
    }

    /// The entries appended since the last call; follows a rotation (the rest of the old
    /// file, then the new one from its start).
    pub fn more(&mut self) -> Result<Vec<LogEntry>, ContainerError> {
        let mut entries = Vec::new();
        if self.file.is_none() {
            match fs::File::open(&self.path) {
                Ok(f) => self.file = Some(BufReader::new(f)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(entries),
                Err(e) => return Err(io_err(&self.path)(e)),
            }
        }
        let file = self.file.as_mut().expect("opened above");
        read_entries(file, &mut self.partial, &mut entries).map_err(io_err(&self.path))?;
        // Rotated: the name now belongs to a new file; the old one is complete.
        let current = fs::metadata(&self.path).ok().map(|m| (m.dev(), m.ino()));
        let ours = file.get_ref().metadata().ok().map(|m| (m.dev(), m.ino()));
        if current.is_some() && current != ours {
            read_entries(file, &mut self.partial, &mut entries).map_err(io_err(&self.path))?;
            self.file = None;
            self.partial.clear();
            entries.extend(self.more()?);
        }
        Ok(entries)
    }
}

/// Reads the complete entries from `file`'s position on; a last entry without its newline
/// stays in `partial` (the position is where it ends, so the next read continues it).
fn read_entries(
    file: &mut BufReader<fs::File>,
    partial: &mut Vec<u8>,
    entries: &mut Vec<LogEntry>,
) -> std::io::Result<()> {
    loop {
        let n = file.read_until(b'\n', partial)?;
        if n == 0 || partial.last() != Some(&b'\n') {
            return Ok(());
        }
        if let Ok(entry) = serde_json::from_slice(partial) {
            entries.push(entry);
        }
        partial.clear();
    }
}

/// Where a reader is in the log: the size of the current file (for `start -a`, which
/// shows only what the new run writes).
pub fn log_end(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

impl LogReader {
    /// A reader of the entries written after the current file's byte `offset` ([`log_end`]).
    pub fn from_offset(path: PathBuf, offset: u64) -> Result<LogReader, ContainerError> {
        let mut reader = LogReader {
            path,
            file: None,
            partial: Vec::new(),
        };
        if let Ok(mut f) = fs::File::open(&reader.path) {
            f.seek(SeekFrom::Start(offset))
                .map_err(io_err(&reader.path))?;
            reader.file = Some(BufReader::new(f));
        }
        Ok(reader)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The copy hands every chunk on at once and logs whole lines (a long one cut at
    /// MAX_LINE, a last one without newline as it is), as the line-reading copy did.
    #[test]
    fn copy_stream_tees_chunks_and_logs_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x-json.log");
        let log = Arc::new(Mutex::new(LogWriter::open(path.clone(), MAX_SIZE).unwrap()));
        let long = "x".repeat(MAX_LINE + 3);
        let input = format!("one\n/ # {long}\nlast");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let tee = seen.clone();
        let copy = copy_stream(
            std::io::Cursor::new(input.clone().into_bytes()),
            "stdout",
            Some(log),
            move |b| tee.lock().unwrap().extend_from_slice(b),
        );
        copy.join().unwrap();
        assert_eq!(*seen.lock().unwrap(), input.as_bytes());
        let (_, entries) = LogReader::open(path).unwrap();
        let logged: Vec<&str> = entries.iter().map(|e| e.log.as_str()).collect();
        let cut = format!("/ # {long}");
        assert_eq!(
            logged,
            [
                "one\n",
                &cut[..MAX_LINE],
                &format!("{}\n", &cut[MAX_LINE..]),
                "last"
            ]
        );
    }

    #[test]
    fn rotation_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x-json.log");
        let mut w = LogWriter::open(path.clone(), 500).unwrap();
        w.append("stdout", b"one\n").unwrap();
        let (mut r, first) = LogReader::open(path.clone()).unwrap();
        assert_eq!(first.len(), 1);
        for i in 0..10 {
            w.append("stderr", format!("line {i}\n").as_bytes())
                .unwrap();
        }
        assert!(rotated_path(&path).exists());
        let more: Vec<String> = r.more().unwrap().into_iter().map(|e| e.log).collect();
        let want: Vec<String> = (0..10).map(|i| format!("line {i}\n")).collect();
        assert_eq!(more, want);
        assert!(fs::metadata(&path).unwrap().len() <= 500);
    }
}
