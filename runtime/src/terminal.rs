//! The runner's terminal and a container's pty, for clients that relay a container's
//! terminal from elsewhere (`rbuild attach`, and the detached monitor that holds the pty):
//! their sizes (the `TIOCGWINSZ`/`TIOCSWINSZ` ioctls), raw mode for the local terminal while
//! its keys go to the container, and forwarding the client's signals to the container.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::sys::termios::{self, SetArg, Termios};

/// Rows and columns of the terminal `fd` is, when it is one.
pub fn size(fd: BorrowedFd<'_>) -> Option<(u16, u16)> {
    window_size(fd.as_raw_fd()).map(|ws| (ws.ws_row, ws.ws_col))
}

pub(crate) fn window_size(fd: RawFd) -> Option<libc::winsize> {
    // SAFETY: ws is a plain C struct that TIOCGWINSZ fills in.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        (libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) == 0).then_some(ws)
    }
}

/// Sets the size of the terminal `fd` (a pty master: the kernel then sends SIGWINCH to the
/// foreground process group on the other side).
pub fn set_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a valid winsize; a descriptor that is no terminal fails.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

/// A local terminal in raw mode (every key goes through as typed, no echo, no signals from
/// Ctrl-C), restored to its previous mode on drop.
#[derive(Debug)]
pub struct RawMode {
    fd: OwnedFd,
    saved: Termios,
}

impl RawMode {
    /// Puts `fd` in raw mode; `None` when it is no terminal (or refuses).
    pub fn enter(fd: BorrowedFd<'_>) -> Option<RawMode> {
        let saved = termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode {
            fd: fd.try_clone_to_owned().ok()?,
            saved,
        })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.fd.as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

/// While it lives, the signals [`crate::FORWARDED_SIGNALS`] this process receives are sent
/// to `pid` instead (docker's `--sig-proxy` of `attach` and `start -a`).
#[derive(Debug)]
pub struct SignalProxy {
    _registration: crate::signals::Registration,
}

impl SignalProxy {
    pub fn start(pid: i32) -> SignalProxy {
        SignalProxy {
            _registration: crate::signals::register(pid),
        }
    }
}
