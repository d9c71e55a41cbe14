//! A long-running container in the background for the tests of commands that act on running
//! containers (`exec`, `top`, `stats`, `inspect`): `rbuild run --name NAME ...` as a child
//! process, ready once `ps` lists it with its recorded host pid; removed (`rm -f`) on drop.

#![allow(dead_code)]

use std::process::{Child, Stdio};

use crate::common::TestEnv;

/// A container running in the background.
pub struct Running<'a> {
    pub env: &'a TestEnv,
    pub name: String,
    pub child: Option<Child>,
}

impl<'a> Running<'a> {
    /// Starts `rbuild run --name NAME RUN_ARGS...` and waits until `ps` shows it running.
    pub fn start(env: &'a TestEnv, name: &str, run_args: &[&str]) -> Running<'a> {
        let child = env
            .cmd()
            .args(["run", "--name", name])
            .args(run_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rbuild run");
        let running = Running {
            env,
            name: name.to_string(),
            child: Some(child),
        };
        env.wait_running(name);
        running
    }

    /// The container's full ID.
    pub fn id(&self) -> String {
        let ps = self
            .env
            .ok(&["ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}}"]);
        ps.lines()
            .find_map(|l| l.strip_suffix(&format!(" {}", self.name)))
            .expect("container listed")
            .to_string()
    }

    /// Waits for the `rbuild run` process to end; returns its output.
    pub fn wait(mut self) -> std::process::Output {
        self.child
            .take()
            .expect("not waited yet")
            .wait_with_output()
            .expect("wait for rbuild run")
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = self.env.run(&["rm", "-f", &self.name]);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
