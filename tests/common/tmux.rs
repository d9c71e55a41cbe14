//! A tmux server of the test's own (its socket in a temp dir), killed on drop: real
//! terminals for the tests of live displays and attached containers. Test files add their
//! own session helpers in an `impl Tmux` block of their own.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::assert_success;

pub struct Tmux {
    pub dir: tempfile::TempDir,
}

impl Tmux {
    pub fn new() -> Tmux {
        Tmux {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    /// A `tmux` command talking to this server.
    pub fn tmux(&self) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-S").arg(self.socket()).stdin(Stdio::null());
        c
    }

    /// The pane's rows; `-J` joins wrapped rows into one line.
    pub fn capture(&self, name: &str, join: bool) -> String {
        let mut c = self.tmux();
        c.args(["capture-pane", "-p", "-t", name]);
        if join {
            c.arg("-J");
        }
        let out = c.output().expect("tmux capture-pane");
        assert_success("tmux capture-pane", &out)
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux().arg("kill-server").output();
    }
}
