//! `run -d` and the descriptors of its caller (issue 12's benchmark hung on it): the detached
//! monitor lives as long as the container, so a descriptor it inherits from the caller stays
//! open that long, and whoever waits for that descriptor's end (a shell's `$(...)` whose
//! pipe a wrapper also holds on another descriptor) waits for the container.

mod common;

use std::io::Read;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};

use common::{rbuild_bin, TestEnv};

/// Regression: the monitor of `run -d` kept every descriptor its caller had left open
/// without close-on-exec (here the pipe on descriptor 3 as well as stdout, as `3>&1` leaves
/// it): the pipe had a writer as long as the container ran, so a reader waiting for its end
/// waited for the container.
#[test]
fn bug_run_detached_kept_the_callers_descriptors_open() {
    let env = TestEnv::with_base("bb");
    let (mut reader, writer) = std::io::pipe().unwrap();
    let root = env.root();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#""$0" --root "$1" run -d --network none bb sleep 300 3>&1"#)
        .arg(rbuild_bin())
        .arg(&root)
        .stdin(Stdio::null())
        .stdout(writer);
    let status = cmd.status().unwrap();
    drop(cmd); // the test's own copy of the writer
    assert!(status.success(), "run -d failed: {status:?}");
    // Every writer but the monitor and what it started is gone now (sh and rbuild exited):
    // with the pipe non-blocking, a writer still there shows as "would block" instead of
    // the end of the pipe.
    nix::fcntl::fcntl(
        reader.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .unwrap();
    let mut printed = Vec::new();
    let end = reader.read_to_end(&mut printed);
    let id = String::from_utf8_lossy(&printed).trim().to_string();
    let running = env.ok(&["ps", "-q", "--no-trunc"]);
    env.ok(&["rm", "-f", &id]);
    assert!(
        end.is_ok(),
        "the caller's pipe is still held open after run -d returned: {end:?}"
    );
    assert_eq!(id.len(), 64, "the ID, printed: {printed:?}");
    assert_eq!(running.trim(), id, "the container runs");
}
