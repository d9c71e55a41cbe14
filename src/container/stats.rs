//! `top` and `stats`: a running container's processes and resource use, from its cgroups
//! ([`rbuild_runtime::usage_of`]), with `/proc` sums where the container has no group with
//! that controller (no memory group without `-m` on a cgroup v1 host, say).

use std::time::{Duration, Instant};

use super::exec::running_container;
use super::ContainerError;
use crate::store::Store;

/// The host pids of every process of running container `name`.
pub fn processes(store: &Store, name: &str) -> Result<Vec<i32>, ContainerError> {
    let (_, pid) = running_container(store, name)?;
    let mut pids = rbuild_runtime::usage_of(pid).processes;
    if pids.is_empty() {
        pids.push(pid); // no cgroup (rootless without delegation): PID 1 at least
    }
    Ok(pids)
}

/// One container's line of `stats`.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub id: String,
    pub name: String,
    /// Percent of one CPU over the sampling interval (200 = two CPUs busy).
    pub cpu_percent: f64,
    pub memory: u64,
    /// The container's memory limit, else the host's memory.
    pub memory_limit: u64,
    pub pids: usize,
}

/// One sample: (pids, memory, memory limit, cpu nanoseconds).
fn sample(pid: i32) -> (Vec<i32>, u64, Option<u64>, u64) {
    let usage = rbuild_runtime::usage_of(pid);
    let mut pids = usage.processes;
    if pids.is_empty() {
        pids.push(pid);
    }
    let memory = usage
        .memory
        .unwrap_or_else(|| pids.iter().map(|p| rss_bytes(*p)).sum());
    let cpu = usage
        .cpu_nanos
        .unwrap_or_else(|| pids.iter().map(|p| cpu_nanos(*p)).sum());
    (pids, memory, usage.memory_limit, cpu)
}

/// `VmRSS` of `/proc/<pid>/status`, bytes (0 when gone).
fn rss_bytes(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// utime + stime of `/proc/<pid>/stat`, nanoseconds (0 when gone).
fn cpu_nanos(pid: i32) -> u64 {
    let ticks_per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .unwrap_or(100) as u64;
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // Fields after the command (which may hold spaces) in parentheses; utime and stime are
    // fields 14 and 15, so the 12th and 13th after it.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<u64>().ok())
        .sum();
    ticks * 1_000_000_000 / ticks_per_second
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Samples the running containers `names` twice, `interval` apart (docker's `--no-stream`
/// also compares two samples), and returns their lines in order.
pub fn stats(
    store: &Store,
    names: &[String],
    interval: Duration,
) -> Result<Vec<Stats>, ContainerError> {
    let containers = names
        .iter()
        .map(|n| running_container(store, n))
        .collect::<Result<Vec<_>, _>>()?;
    let start = Instant::now();
    let first: Vec<u64> = containers.iter().map(|(_, pid)| sample(*pid).3).collect();
    std::thread::sleep(interval);
    let elapsed = start.elapsed().as_nanos().max(1) as f64;
    let host = host_memory();
    Ok(containers
        .into_iter()
        .zip(first)
        .map(|((record, pid), cpu_before)| {
            let (pids, memory, limit, cpu) = sample(pid);
            Stats {
                id: record.id,
                name: record.name,
                cpu_percent: cpu.saturating_sub(cpu_before) as f64 * 100.0 / elapsed,
                memory,
                memory_limit: limit.unwrap_or(host),
                pids: pids.len(),
            }
        })
        .collect())
}
