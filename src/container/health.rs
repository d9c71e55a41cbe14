//! Health checks (`HEALTHCHECK`, `--health-*`): run by the monitor while the container's
//! process runs, docker's rules: the first check one interval after the start, a check
//! that exits 0 makes the container `healthy`, `retries` failures in a row (not counting
//! those within the start period) make it `unhealthy`; a check that outlives its timeout
//! fails. The state and the last 5 results are kept in the container's record
//! ([`crate::store::Health`]); `ps` shows it.
//!
//! The check runs as `exec` runs a process ([`rbuild_runtime::exec`] with the container's
//! recorded spec): in the container's namespaces and cgroup, as its user, in its working
//! directory, with its environment, capabilities, `no_new_privs` and seccomp filter, as
//! docker runs it; no external program is needed ([`run_check`]).

use std::io::Read;
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rbuild_runtime::{ContainerSpec, Io, Stdio};

use crate::image::oci::Healthcheck;
use crate::store::{Health, HealthResult, HealthStatus, Store};

/// Docker's defaults (nanoseconds).
const DEFAULT_INTERVAL: i64 = 30_000_000_000;
const DEFAULT_TIMEOUT: i64 = 30_000_000_000;
const DEFAULT_RETRIES: i64 = 3;
/// Results kept in the record.
const KEPT: usize = 5;
/// Output kept per result.
const MAX_OUTPUT: usize = 4096;

/// The `--health-*` flags (durations in nanoseconds).
#[derive(Debug, Clone, Default)]
pub struct HealthFlags {
    pub cmd: Option<String>,
    pub interval: Option<i64>,
    pub timeout: Option<i64>,
    pub retries: Option<i64>,
    pub start_period: Option<i64>,
    /// `--no-healthcheck`.
    pub disabled: bool,
}

/// The check a container gets: the image's, with the flags over it; `None` without one
/// (or with `--no-healthcheck`, or the image's `HEALTHCHECK NONE` and no `--health-cmd`).
pub fn resolve(image: Option<&Healthcheck>, flags: &HealthFlags) -> Option<Healthcheck> {
    if flags.disabled {
        return None;
    }
    let mut check = image.cloned().unwrap_or_default();
    if let Some(cmd) = &flags.cmd {
        check.test = Some(vec!["CMD-SHELL".into(), cmd.clone()]);
    }
    let set = |v: &mut Option<i64>, flag: Option<i64>| {
        if flag.is_some() {
            *v = flag;
        }
    };
    set(&mut check.interval, flags.interval);
    set(&mut check.timeout, flags.timeout);
    set(&mut check.retries, flags.retries);
    set(&mut check.start_period, flags.start_period);
    let test = check.test.as_deref().unwrap_or_default();
    match test.first().map(String::as_str) {
        Some("CMD") | Some("CMD-SHELL") if test.len() > 1 => Some(check),
        _ => None,
    }
}

fn nanos(value: Option<i64>, default: i64) -> Duration {
    Duration::from_nanos(value.filter(|v| *v > 0).unwrap_or(default) as u64)
}

/// The checks of one run of the process: a thread, stopped when this is dropped.
#[derive(Debug)]
pub(super) struct Checker {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Checker {
    /// Starts checking container `id` (PID 1 `pid`, runtime spec `spec`) with `check`.
    pub(super) fn start(
        store: &Store,
        id: &str,
        check: Healthcheck,
        pid: i32,
        spec: ContainerSpec,
    ) -> Checker {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let (store, id, flag) = (store.clone(), id.to_string(), stop.clone());
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let _ = store.modify_container(&id, |r| {
                r.health = Some(Health {
                    status: HealthStatus::Starting,
                    failing_streak: 0,
                    log: Vec::new(),
                })
            });
            let interval = nanos(check.interval, DEFAULT_INTERVAL);
            let timeout = nanos(check.timeout, DEFAULT_TIMEOUT);
            let start_period = nanos(check.start_period, 0).min(Duration::from_secs(1 << 40));
            let retries = check.retries.filter(|r| *r > 0).unwrap_or(DEFAULT_RETRIES) as u32;
            loop {
                let (lock, wake) = &*flag;
                let stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
                let (stopped, _) = wake
                    .wait_timeout_while(stopped, interval, |s| !*s)
                    .unwrap_or_else(|e| e.into_inner());
                if *stopped {
                    return;
                }
                drop(stopped);
                let result = run_check(&check, pid, &spec, timeout);
                let in_start_period = started.elapsed() < start_period;
                let _ = store.modify_container(&id, |r| {
                    let health = r.health.get_or_insert_with(|| Health {
                        status: HealthStatus::Starting,
                        failing_streak: 0,
                        log: Vec::new(),
                    });
                    record(health, result.clone(), in_start_period, retries);
                });
            }
        });
        Checker {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        let (lock, wake) = &*self.stop;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Docker's state machine for one result.
fn record(health: &mut Health, result: HealthResult, in_start_period: bool, retries: u32) {
    if result.exit_code == 0 {
        health.status = HealthStatus::Healthy;
        health.failing_streak = 0;
    } else if !in_start_period {
        health.failing_streak += 1;
        if health.failing_streak >= retries {
            health.status = HealthStatus::Unhealthy;
        }
    }
    health.log.push(result);
    let extra = health.log.len().saturating_sub(KEPT);
    health.log.drain(..extra);
}

/// Runs the check once inside the container (see the module docs); a check that cannot be
/// run or times out (it is then killed) fails with exit code -1, as docker records it.
fn run_check(
    check: &Healthcheck,
    pid: i32,
    spec: &ContainerSpec,
    timeout: Duration,
) -> HealthResult {
    let start = chrono::Utc::now();
    let failed = |output: String| HealthResult {
        start,
        end: chrono::Utc::now(),
        exit_code: -1,
        output,
    };
    let test = check.test.clone().unwrap_or_default();
    let mut spec = spec.clone();
    spec.process.args = match test.first().map(String::as_str) {
        Some("CMD-SHELL") => vec!["/bin/sh".into(), "-c".into(), test[1..].join(" ")],
        _ => test[1..].to_vec(),
    };
    spec.process.terminal = false;
    let pipes = std::io::pipe().and_then(|out| Ok((out, std::io::pipe()?)));
    let ((out_r, out_w), (err_r, err_w)) = match pipes {
        Ok(pipes) => pipes,
        Err(e) => return failed(format!("cannot run the health check: {e}")),
    };
    let stdio = Stdio {
        stdin: Io::Null,
        stdout: Io::Fd(out_w.into()),
        stderr: Io::Fd(err_w.into()),
    };
    let collect = |mut r: std::io::PipeReader| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = (&mut r).take(MAX_OUTPUT as u64).read_to_end(&mut buf);
            // The rest is read and dropped, so the check never blocks on a full pipe.
            let _ = std::io::copy(&mut r, &mut std::io::sink());
            buf
        })
    };
    let (out, err) = (collect(out_r), collect(err_r));
    let container = match rbuild_runtime::exec(pid, &spec, false, stdio) {
        Ok(c) => c,
        Err(e) => return failed(format!("cannot run the health check: {e}")),
    };
    let process = container.pid();
    let (done, finished) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = done.send(container.wait());
    });
    let status = match finished.recv_timeout(timeout) {
        Ok(status) => Some(status),
        Err(_) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(process),
                nix::sys::signal::Signal::SIGKILL,
            );
            None
        }
    };
    let _ = waiter.join();
    let mut output = out.join().unwrap_or_default();
    output.extend(err.join().unwrap_or_default());
    output.truncate(MAX_OUTPUT);
    let output = String::from_utf8_lossy(&output).into_owned();
    match status {
        Some(Ok(s)) => HealthResult {
            start,
            end: chrono::Utc::now(),
            exit_code: s.code,
            output,
        },
        Some(Err(e)) => failed(format!("cannot run the health check: {e}")),
        None => failed(format!("Health check exceeded timeout ({timeout:?})")),
    }
}
