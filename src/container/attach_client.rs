//! The client's end of the attach socket ([`super::attach`]): connect, relay the output to
//! the caller's writers, pass input on (watching for the detach keys), resize the pty.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::attach::{frame, open_dir, read_frame, via_dir, AttachRequest, Kind};
use super::detach_keys::DetachMatcher;
use super::{io_err, ContainerError};
use crate::store::Store;

/// How an attach ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachEnd {
    /// The process ended with this code.
    Exited(i32),
    /// The detach keys were typed: the container runs on.
    Detached,
    /// The monitor closed the connection without a code (it was killed, or let a slow
    /// client go): the caller asks the store how the container ended.
    Lost,
}

/// A connection to a container's monitor.
#[derive(Debug)]
pub struct Attachment {
    reader: UnixStream,
    /// Frames to the monitor come from the input and resize threads: one writer at a time.
    writer: Arc<Mutex<UnixStream>>,
    detached: Arc<AtomicBool>,
}

/// Sends the client's terminal size to the monitor ([`Attachment::resizer`]).
#[derive(Debug, Clone)]
pub struct Resizer {
    writer: Arc<Mutex<UnixStream>>,
}

impl Resizer {
    /// `false` once the connection is gone.
    pub fn resize(&self, rows: u16, cols: u16) -> bool {
        let mut payload = rows.to_be_bytes().to_vec();
        payload.extend_from_slice(&cols.to_be_bytes());
        send(&self.writer, Kind::Resize, &payload).is_ok()
    }
}

fn send(writer: &Mutex<UnixStream>, kind: Kind, payload: &[u8]) -> std::io::Result<()> {
    let mut writer = writer.lock().unwrap_or_else(|e| e.into_inner());
    writer.write_all(&frame(kind, payload))
}

impl Attachment {
    /// Connects to the monitor of container `id` (which must be running, or be started
    /// with [`super::monitor::launch_attached`]) and sends `request`.
    pub fn connect(
        store: &Store,
        id: &str,
        request: &AttachRequest,
    ) -> Result<Attachment, ContainerError> {
        Attachment::connect_at(store, id, super::attach::SOCKET, request)
    }

    /// As [`Attachment::connect`], to socket `name` in the container's dir (an `exec`'s
    /// holder: [`super::exec_holder`]).
    pub(super) fn connect_at(
        store: &Store,
        id: &str,
        name: &str,
        request: &AttachRequest,
    ) -> Result<Attachment, ContainerError> {
        let dir = store.container_dir(id);
        let handle = open_dir(&dir)?;
        let path = dir.join(name);
        let stream = UnixStream::connect(via_dir(&handle, name)).map_err(io_err(&path))?;
        let writer = stream.try_clone().map_err(io_err(&path))?;
        let hello = serde_json::to_vec(request).expect("a request serializes");
        let attachment = Attachment {
            reader: stream,
            writer: Arc::new(Mutex::new(writer)),
            detached: Arc::new(AtomicBool::new(false)),
        };
        send(&attachment.writer, Kind::Hello, &hello).map_err(io_err(&path))?;
        Ok(attachment)
    }

    pub fn resizer(&self) -> Resizer {
        Resizer {
            writer: self.writer.clone(),
        }
    }

    /// Passes what `source` gives to the process, in a thread of its own, until its end
    /// (which the monitor may pass on as the end of the process's stdin) or, with
    /// `detach_keys`, until the keys are typed: then the connection is closed and
    /// [`Attachment::relay`] returns [`AttachEnd::Detached`].
    pub fn send_input(&self, mut source: impl Read + Send + 'static, detach_keys: Option<Vec<u8>>) {
        let writer = self.writer.clone();
        let detached = self.detached.clone();
        let mut matcher = detach_keys.map(DetachMatcher::new);
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            let mut out = Vec::new();
            loop {
                let n = match source.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = send(&writer, Kind::CloseStdin, &[]);
                        return;
                    }
                    Ok(n) => n,
                };
                out.clear();
                let detach = match matcher.as_mut() {
                    Some(m) => m.feed(&buf[..n], &mut out),
                    None => {
                        out.extend_from_slice(&buf[..n]);
                        false
                    }
                };
                if !out.is_empty() && send(&writer, Kind::Stdin, &out).is_err() {
                    return;
                }
                if detach {
                    detached.store(true, Ordering::SeqCst);
                    let writer = writer.lock().unwrap_or_else(|e| e.into_inner());
                    let _ = writer.shutdown(std::net::Shutdown::Both);
                    return;
                }
            }
        });
    }

    /// Writes the container's output to `stdout` and `stderr` until the process ends or
    /// the client detaches.
    pub fn relay(
        mut self,
        mut stdout: impl Write,
        mut stderr: impl Write,
    ) -> Result<AttachEnd, ContainerError> {
        loop {
            let next = read_frame(&mut self.reader);
            if self.detached.load(Ordering::SeqCst) {
                return Ok(AttachEnd::Detached);
            }
            let Ok(Some((kind, payload))) = next else {
                return Ok(AttachEnd::Lost);
            };
            let sink: &mut dyn Write = match kind {
                Kind::Stdout => &mut stdout,
                Kind::Stderr => &mut stderr,
                Kind::Exit if payload.len() == 4 => {
                    let code = i32::from_be_bytes(payload[..].try_into().expect("4 bytes"));
                    return Ok(AttachEnd::Exited(code));
                }
                _ => continue,
            };
            // A closed terminal or pipe on our side ends nothing in the container.
            let _ = sink.write_all(&payload).and_then(|()| sink.flush());
        }
    }
}
