//! The attach socket of a detached container: how `rbuild attach`, `start -a` and the
//! foreground `run -it` reach a process that the monitor ([`super::monitor`]) holds.
//!
//! The monitor listens on `<container dir>/attach.sock` (a unix socket, reached through the
//! `/proc/self/fd/N/` path of the opened dir: a store under a long path would overflow the
//! 108 bytes of a socket address). A client sends a [`AttachRequest`] first, then its input;
//! the monitor sends it the container's output as it is written, until the process ends,
//! then its exit code. Any number of clients at once: each gets every byte of the streams it
//! asked for; their input goes to the process's stdin in the order it arrives (when the
//! container keeps stdin open: `-i`). A client that goes away, or reads too slowly (its
//! queue of [`QUEUE`] chunks is full), is dropped; the container never waits for one.
//!
//! Frames, both ways: one byte kind, three zero bytes, a big-endian u32 length, the payload
//! (docker's stream header, with kinds of our own for the rest): [`Kind`].

use std::fs::File;
use std::io::{PipeWriter, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rbuild_runtime::{Container, Io, Stdio};
use serde::{Deserialize, Serialize};

use super::logs::{self, LogWriter};
use super::{io_err, ContainerError};

/// The socket's name in the container dir.
pub const SOCKET: &str = "attach.sock";

/// Chunks of output queued for one client before it counts as gone.
const QUEUE: usize = 256;

/// Largest frame payload accepted.
const MAX_FRAME: usize = 1 << 20;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Kind {
    /// Client → monitor: bytes for the process's stdin.
    Stdin = 0,
    /// Monitor → client: the process's stdout (all of a terminal's output).
    Stdout = 1,
    /// Monitor → client: the process's stderr.
    Stderr = 2,
    /// Monitor → client: the process ended with this code (i32, big-endian); the last frame.
    Exit = 3,
    /// Client → monitor: the client's terminal size (rows, columns: u16 each, big-endian).
    Resize = 4,
    /// Client → monitor: the client's input ended.
    CloseStdin = 5,
    /// Client → monitor: the [`AttachRequest`] (JSON); the first frame.
    Hello = 6,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Kind> {
        [
            Kind::Stdin,
            Kind::Stdout,
            Kind::Stderr,
            Kind::Exit,
            Kind::Resize,
            Kind::CloseStdin,
            Kind::Hello,
        ]
        .into_iter()
        .find(|k| *k as u8 == byte)
    }
}

pub(super) fn frame(kind: Kind, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(8 + payload.len());
    frame.extend_from_slice(&[kind as u8, 0, 0, 0]);
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// The next frame; `None` at the end of the stream (or a frame of an unknown kind).
pub(super) fn read_frame(r: &mut impl Read) -> std::io::Result<Option<(Kind, Vec<u8>)>> {
    let mut header = [0u8; 8];
    if let Err(e) = r.read_exact(&mut header) {
        return match e.kind() {
            std::io::ErrorKind::UnexpectedEof => Ok(None),
            _ => Err(e),
        };
    }
    let len = u32::from_be_bytes(header[4..].try_into().expect("4 bytes")) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::other("attach frame too large"));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Ok(Kind::from_byte(header[0]).map(|kind| (kind, payload)))
}

/// What a client asks for when it attaches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachRequest {
    /// Its input goes to the process (only when the container keeps stdin open).
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// The end of its input closes the process's stdin (docker's `StdinOnce`: `run -i`,
    /// `start -ai`); never for a terminal, where the end of input is a Ctrl-D as typed.
    pub close_stdin: bool,
    /// Its terminal's size (rows, columns), for the container's pty.
    pub size: Option<(u16, u16)>,
}

/// Opens the container dir `dir` for [`via_dir`].
pub(super) fn open_dir(dir: &Path) -> Result<File, ContainerError> {
    File::open(dir).map_err(io_err(dir))
}

/// The path of socket `name` through the opened container dir (short whatever the store's
/// path).
pub(super) fn via_dir(dir: &File, name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}/{name}", dir.as_raw_fd()))
}

/// The monitor's end: the listening socket and the clients attached (see the module docs).
pub(super) struct Server {
    hub: Arc<Hub>,
    /// The socket's path while it takes clients ([`Server::close`]).
    path: Option<PathBuf>,
}

struct Hub {
    tty: bool,
    /// Output waits for slow clients instead of dropping them ([`Server::bind_at`]).
    lossless: bool,
    /// Connections still writing to their client ([`Server::flush`]).
    writing: Arc<(Mutex<usize>, Condvar)>,
    state: Mutex<HubState>,
    arrived: Condvar,
}

#[derive(Default)]
struct HubState {
    clients: Vec<Client>,
    next_id: u64,
    /// Clients that ever arrived, and the terminal size the latest one sent.
    arrivals: u64,
    size: Option<(u16, u16)>,
    /// The current run's stdin (`-i`) and pty master (`-t`).
    stdin: Option<PipeWriter>,
    terminal: Option<OwnedFd>,
}

struct Client {
    id: u64,
    stdout: bool,
    stderr: bool,
    queue: SyncSender<Arc<Vec<u8>>>,
}

/// How long a server about to exit waits for its clients to take the output and the exit
/// status ([`Server::flush`]).
pub(super) const FLUSH_WAIT: Duration = Duration::from_secs(10);

/// A copy of the container's output stream: the thread and what it reads.
pub(super) type Copies = Vec<std::thread::JoinHandle<()>>;

impl Server {
    /// Listens on the socket in `dir` (replacing one a killed monitor left); `tty`: the
    /// container has a terminal.
    pub(super) fn bind(dir: &Path, tty: bool) -> Result<Server, ContainerError> {
        Server::bind_at(dir, SOCKET, tty, false)
    }

    /// As [`Server::bind`], on socket `name` in `dir`; `lossless`: a client that reads
    /// slowly slows the process's output down instead of being dropped (as a terminal the
    /// process wrote to directly would), while without a client output is discarded.
    pub(super) fn bind_at(
        dir: &Path,
        name: &str,
        tty: bool,
        lossless: bool,
    ) -> Result<Server, ContainerError> {
        let handle = open_dir(dir)?;
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(via_dir(&handle, name)).map_err(io_err(&path))?;
        let hub = Arc::new(Hub {
            tty,
            lossless,
            writing: Arc::default(),
            state: Mutex::new(HubState::default()),
            arrived: Condvar::new(),
        });
        let accepting = hub.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let hub = accepting.clone();
                std::thread::spawn(move || hub.serve(stream));
            }
        });
        Ok(Server {
            hub,
            path: Some(path),
        })
    }

    /// Takes no more clients (its socket file goes); those connected stay served. The
    /// monitor closes it while it still holds the container's lease: a monitor started
    /// after that one (`start`) binds the same path, which this one must not remove then.
    pub(super) fn close(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Waits (at most `timeout`) until every client let go by [`Server::ended`] got all
    /// that was queued for it: a server that exits right after would cut the exit status
    /// off.
    pub(super) fn flush(&self, timeout: Duration) {
        let (count, done) = &*self.hub.writing;
        let count = count.lock().unwrap_or_else(|e| e.into_inner());
        let _ = done.wait_timeout_while(count, timeout, |n| *n > 0);
    }

    /// Waits (at most `timeout`) for the first client; returns its terminal size.
    /// [`ContainerError::StartFailed`] when none came (the starter died).
    pub(super) fn wait_client(
        &self,
        timeout: Duration,
    ) -> Result<Option<(u16, u16)>, ContainerError> {
        let state = self.hub.lock();
        let (state, _) = self
            .hub
            .arrived
            .wait_timeout_while(state, timeout, |s| s.arrivals == 0)
            .unwrap_or_else(|e| e.into_inner());
        if state.arrivals == 0 {
            return Err(ContainerError::StartFailed(
                "no client attached to the container".into(),
            ));
        }
        Ok(state.size)
    }

    /// The stdio of one run of the process: its stdout and stderr copied into `log` (when
    /// there is one) and to the clients, its stdin (with `open_stdin`) fed by them.
    pub(super) fn stdio(
        &self,
        log: Option<&Arc<Mutex<LogWriter>>>,
        open_stdin: bool,
    ) -> Result<(Stdio, Copies), ContainerError> {
        let pipe = || std::io::pipe().map_err(io_err("pipe"));
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let tee = |kind: Kind| {
            let hub = self.hub.clone();
            move |bytes: &[u8]| hub.broadcast(kind, bytes)
        };
        let copies = vec![
            logs::copy_stream(out_r, "stdout", log.cloned(), tee(Kind::Stdout)),
            logs::copy_stream(err_r, "stderr", log.cloned(), tee(Kind::Stderr)),
        ];
        let stdin = if open_stdin {
            let (in_r, in_w) = pipe()?;
            self.hub.lock().stdin = Some(in_w);
            Io::Fd(in_r.into())
        } else {
            Io::Null
        };
        let stdio = Stdio {
            stdin,
            stdout: Io::Fd(out_w.into()),
            stderr: Io::Fd(err_w.into()),
        };
        Ok((stdio, copies))
    }

    /// The process of this run started: its pty takes the clients' sizes from now on.
    pub(super) fn started(&self, container: &Container) {
        let terminal = container.terminal();
        let mut state = self.hub.lock();
        if let (Some(master), Some((rows, cols))) = (&terminal, state.size) {
            rbuild_runtime::terminal::set_size(master.as_fd(), rows, cols);
        }
        state.terminal = terminal;
    }

    /// The run ended (with `code`, or `None` when the process never started): every client
    /// gets the code and is let go; the run's stdin is closed.
    pub(super) fn ended(&self, code: Option<i32>) {
        let mut state = self.hub.lock();
        let exit = code.map(|c| Arc::new(frame(Kind::Exit, &c.to_be_bytes())));
        let clients: Vec<Client> = state.clients.drain(..).collect();
        state.stdin = None;
        state.terminal = None;
        drop(state);
        for client in clients {
            if let Some(exit) = &exit {
                let _ = match self.hub.lossless {
                    true => client.queue.send(exit.clone()).is_ok(),
                    false => client.queue.try_send(exit.clone()).is_ok(),
                };
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.close();
    }
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One output chunk to every client that asked for its stream; a client whose queue
    /// is full is dropped (its connection closes) rather than slowing the container.
    fn broadcast(&self, kind: Kind, bytes: &[u8]) {
        let mut state = self.lock();
        if state.clients.is_empty() {
            return;
        }
        let chunk = Arc::new(frame(kind, bytes));
        let wanted = |c: &Client| match kind {
            Kind::Stdout => c.stdout,
            _ => c.stderr,
        };
        if self.lossless {
            // Sent outside the lock: a slow client must not hold up input and resizes.
            let queues: Vec<SyncSender<Arc<Vec<u8>>>> = state
                .clients
                .iter()
                .filter(|c| wanted(c))
                .map(|c| c.queue.clone())
                .collect();
            drop(state);
            for queue in queues {
                let _ = queue.send(chunk.clone()); // fails once the client is gone
            }
            return;
        }
        state
            .clients
            .retain(|c| !wanted(c) || c.queue.try_send(chunk.clone()).is_ok());
    }

    /// One client's connection, from its request to its end.
    fn serve(&self, stream: UnixStream) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let mut reader = stream;
        let request = match read_frame(&mut reader) {
            Ok(Some((Kind::Hello, json))) => serde_json::from_slice::<AttachRequest>(&json),
            _ => return,
        };
        let Ok(request) = request else { return };
        let _ = reader.set_read_timeout(None);
        let Ok(mut writer) = reader.try_clone() else {
            return;
        };
        let (queue, chunks) = sync_channel::<Arc<Vec<u8>>>(QUEUE);
        let writing = self.writing.clone();
        *writing.0.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        std::thread::spawn(move || {
            for chunk in chunks {
                if writer.write_all(&chunk).is_err() {
                    break;
                }
            }
            // Let go (or gone): the client sees the end, and our reader below too.
            let _ = writer.shutdown(std::net::Shutdown::Both);
            *writing.0.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
            writing.1.notify_all();
        });
        let id = {
            let mut state = self.lock();
            state.next_id += 1;
            state.arrivals += 1;
            let id = state.next_id;
            state.clients.push(Client {
                id,
                stdout: request.stdout,
                stderr: request.stderr,
                queue,
            });
            if let Some((rows, cols)) = request.size {
                self.resize(&mut state, rows, cols);
            }
            id
        };
        self.arrived.notify_all();
        let mut closed = false;
        while let Ok(Some((kind, payload))) = read_frame(&mut reader) {
            match kind {
                Kind::Stdin if request.stdin => self.input(&payload),
                Kind::Resize if payload.len() == 4 => {
                    let rows = u16::from_be_bytes([payload[0], payload[1]]);
                    let cols = u16::from_be_bytes([payload[2], payload[3]]);
                    self.resize(&mut self.lock(), rows, cols);
                }
                Kind::CloseStdin if request.stdin && request.close_stdin => {
                    closed = true;
                    self.close_stdin();
                }
                _ => {}
            }
        }
        let mut state = self.lock();
        let present = state.clients.iter().any(|c| c.id == id);
        state.clients.retain(|c| c.id != id);
        drop(state);
        // Gone during its run without closing first: as docker, its stdin ends with it.
        if present && !closed && request.stdin && request.close_stdin {
            self.close_stdin();
        }
    }

    fn resize(&self, state: &mut HubState, rows: u16, cols: u16) {
        state.size = Some((rows, cols));
        if let Some(master) = &state.terminal {
            rbuild_runtime::terminal::set_size(master.as_fd(), rows, cols);
        }
    }

    /// Client input to the process's stdin (written outside the lock: a process that does
    /// not read blocks this client alone).
    fn input(&self, bytes: &[u8]) {
        let stdin = self.lock().stdin.as_ref().and_then(|w| w.try_clone().ok());
        if let Some(mut stdin) = stdin {
            let _ = stdin.write_all(bytes);
        }
    }

    fn close_stdin(&self) {
        if !self.tty {
            self.lock().stdin = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_end_cleanly() {
        let mut wire = frame(Kind::Stdout, b"hello");
        wire.extend(frame(Kind::Exit, &7i32.to_be_bytes()));
        wire.extend([42, 0, 0, 0, 0, 0, 0, 0]); // an unknown kind ends the stream
        let mut r = &wire[..];
        assert_eq!(
            read_frame(&mut r).unwrap(),
            Some((Kind::Stdout, b"hello".to_vec()))
        );
        assert_eq!(
            read_frame(&mut r).unwrap(),
            Some((Kind::Exit, 7i32.to_be_bytes().to_vec()))
        );
        assert_eq!(read_frame(&mut r).unwrap(), None);
        assert_eq!(read_frame(&mut &b""[..]).unwrap(), None);
        let huge = [1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
        assert!(read_frame(&mut &huge[..]).is_err());
    }
}
