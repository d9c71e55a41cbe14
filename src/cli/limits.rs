//! `run`'s resource limit flags (docker's spellings), flattened into `RunArgs`.

use clap::Args;

use crate::container::limits::LimitFlags;

#[derive(Debug, Args, Default)]
pub struct LimitArgs {
    /// Memory limit (e.g. 512m, 1g)
    #[arg(short = 'm', long, value_name = "BYTES")]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long = "memory-swap", value_name = "BYTES", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Number of CPUs (e.g. 1.5)
    #[arg(long, value_name = "DECIMAL")]
    pub cpus: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares", value_name = "INT")]
    pub cpu_shares: Option<u64>,
    /// Tune container pids limit (-1 or 0 for unlimited; default 2048)
    #[arg(long = "pids-limit", value_name = "INT", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Ulimit options (NAME=SOFT[:HARD], e.g. nofile=1024:2048)
    #[arg(long, value_name = "ULIMIT")]
    pub ulimit: Vec<String>,
}

impl LimitArgs {
    pub fn flags(&self) -> LimitFlags {
        LimitFlags {
            memory: self.memory.clone(),
            memory_swap: self.memory_swap.clone(),
            cpus: self.cpus.clone(),
            cpu_shares: self.cpu_shares,
            pids_limit: self.pids_limit,
            ulimits: self.ulimit.clone(),
        }
    }
}
