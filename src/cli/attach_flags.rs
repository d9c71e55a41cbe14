//! `run -a/--attach stdin|stdout|stderr` (flattened into `RunArgs`): which of the foreground
//! container's streams are connected to the terminal; the others go to /dev/null. And
//! `--detach-keys`, for the foreground `run -it` ([`super::attach`]).

use clap::Args;
use rbuild_runtime::{Io, Stdio};

#[derive(Debug, Args, Default)]
pub struct AttachRunArgs {
    /// Attach to STDIN, STDOUT or STDERR (default: STDOUT and STDERR; STDIN with -i)
    #[arg(short = 'a', long = "attach", value_name = "STREAM")]
    pub attach: Vec<String>,
    /// Override the key sequence for detaching a container (default ctrl-p,ctrl-q; with -it)
    #[arg(long, value_name = "KEYS")]
    pub detach_keys: Option<String>,
}

impl AttachRunArgs {
    /// The foreground container's streams: without `-a`, stdout and stderr (and stdin with
    /// `-i`), as docker; with it, only the streams named (stdin only with `-i` too, since
    /// docker closes it otherwise).
    pub fn stdio(&self, interactive: bool) -> anyhow::Result<Stdio> {
        let [stdin, stdout, stderr] = self.streams(interactive)?;
        let io = |on: bool| if on { Io::Inherit } else { Io::Null };
        Ok(Stdio {
            stdin: io(stdin),
            stdout: io(stdout),
            stderr: io(stderr),
        })
    }

    /// Which of stdin, stdout and stderr are attached (see [`AttachRunArgs::stdio`]).
    pub fn streams(&self, interactive: bool) -> anyhow::Result<[bool; 3]> {
        let mut streams = [false; 3];
        for name in &self.attach {
            let index = match name.to_ascii_lowercase().as_str() {
                "stdin" => 0,
                "stdout" => 1,
                "stderr" => 2,
                _ => anyhow::bail!(
                    "invalid argument {name:?} for \"-a, --attach\" flag: valid streams are \
                     STDIN, STDOUT and STDERR"
                ),
            };
            streams[index] = true;
        }
        if self.attach.is_empty() {
            streams = [true; 3];
        }
        streams[0] &= interactive;
        Ok(streams)
    }

    /// docker refuses `-a` with `-d`.
    pub fn check_detached(&self, detach: bool) -> anyhow::Result<()> {
        anyhow::ensure!(
            !detach || self.attach.is_empty(),
            "conflicting options: cannot specify both --attach and --detach"
        );
        Ok(())
    }
}
