//! `run -a/--attach stdin|stdout|stderr` (flattened into `RunArgs`): which of the foreground
//! container's streams are connected to the terminal; the others go to /dev/null.

use clap::Args;
use rbuild_runtime::{Io, Stdio};

#[derive(Debug, Args, Default)]
pub struct AttachRunArgs {
    /// Attach to STDIN, STDOUT or STDERR (default: STDOUT and STDERR; STDIN with -i)
    #[arg(short = 'a', long = "attach", value_name = "STREAM")]
    pub attach: Vec<String>,
}

impl AttachRunArgs {
    /// The foreground container's streams: without `-a`, stdout and stderr (and stdin with
    /// `-i`), as docker; with it, only the streams named (stdin only with `-i` too, since
    /// docker closes it otherwise).
    pub fn stdio(&self, interactive: bool) -> anyhow::Result<Stdio> {
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
        let io = |on: bool| if on { Io::Inherit } else { Io::Null };
        Ok(Stdio {
            stdin: io(streams[0] && interactive),
            stdout: io(streams[1]),
            stderr: io(streams[2]),
        })
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
