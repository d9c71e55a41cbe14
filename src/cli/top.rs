//! `rbuild top CONTAINER [ps OPTIONS]` and `rbuild stats --no-stream [CONTAINER...]`.

use std::io::Write;
use std::time::Duration;

use clap::Args;

use super::common::{open_store, ListFormat};
use super::Globals;
use crate::container::stats;

#[derive(Debug, Args)]
pub struct TopArgs {
    /// Container (name or ID)
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// Options for the host's ps (default -ef)
    #[arg(
        value_name = "PS_OPTIONS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub ps_options: Vec<String>,
}

/// `top`, as docker: the host's `ps` with the given options (default `-ef`), only the rows
/// of the container's processes (its cgroup's), host pids.
pub fn top(globals: &Globals, args: TopArgs) -> anyhow::Result<i32> {
    let store = open_store(globals)?;
    let pids = match stats::processes(&store, &args.container) {
        Ok(pids) => pids,
        Err(e) => {
            super::report::error(globals, &e.into());
            return Ok(1);
        }
    };
    let options = if args.ps_options.is_empty() {
        vec!["-ef".to_string()]
    } else {
        args.ps_options
    };
    let output = std::process::Command::new("ps")
        .args(&options)
        .output()
        .map_err(|e| anyhow::anyhow!("failed to run ps: {e}"))?;
    if !output.status.success() {
        anyhow::bail!(
            "ps {}: {}",
            options.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let Some(column) = header.split_whitespace().position(|h| h == "PID") else {
        anyhow::bail!("Couldn't find PID field in ps output");
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{header}")?;
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(column)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            writeln!(out, "{line}")?;
        }
    }
    Ok(0)
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Disable streaming stats and only pull the first result (rbuild does not stream)
    #[arg(long)]
    pub no_stream: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Format output: "json", or a template like '{{.Name}} {{.CPUPerc}}'
    #[arg(long)]
    pub format: Option<String>,
    /// Containers (default: every running one)
    #[arg(value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Sizes as docker's stats shows them (binary units, 4 significant digits: `1.523MiB`).
fn bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    let digits = if value >= 1000.0 {
        0
    } else if value >= 100.0 {
        1
    } else if value >= 10.0 {
        2
    } else {
        3
    };
    let text = format!("{value:.digits$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text}{}", units[unit])
}

const STATS_HEADERS: [(&str, &str); 7] = [
    ("Container", "CONTAINER"),
    ("ID", "CONTAINER ID"),
    ("Name", "NAME"),
    ("CPUPerc", "CPU %"),
    ("MemUsage", "MEM USAGE / LIMIT"),
    ("MemPerc", "MEM %"),
    ("PIDs", "PIDS"),
];

/// `stats`: one sample line per running container (always as with `--no-stream`).
pub fn stats(globals: &Globals, args: StatsArgs) -> anyhow::Result<i32> {
    let format = ListFormat::parse(
        args.format.as_deref(),
        "{{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.PIDs}}",
    )?;
    let store = open_store(globals)?;
    let names: Vec<String> = if args.containers.is_empty() {
        store
            .list_containers()?
            .into_iter()
            .filter(|c| store.container_running(c))
            .map(|c| c.id)
            .collect()
    } else {
        args.containers.clone()
    };
    let lines = match stats::stats(&store, &names, Duration::from_millis(500)) {
        Ok(lines) => lines,
        Err(e) => {
            super::report::error(globals, &e.into());
            return Ok(1);
        }
    };
    let rows: Vec<_> = lines
        .iter()
        .zip(&names)
        .map(|(s, given)| {
            let id = if args.no_trunc {
                &s.id[..]
            } else {
                &s.id[..12]
            };
            let mem_percent = if s.memory_limit > 0 {
                s.memory as f64 * 100.0 / s.memory_limit as f64
            } else {
                0.0
            };
            [
                ("Container", given.clone()),
                ("ID", id.to_string()),
                ("Name", s.name.clone()),
                ("CPUPerc", format!("{:.2}%", s.cpu_percent)),
                (
                    "MemUsage",
                    format!("{} / {}", bytes(s.memory), bytes(s.memory_limit)),
                ),
                ("MemPerc", format!("{mem_percent:.2}%")),
                ("PIDs", s.pids.to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v)))
            .collect()
        })
        .collect();
    format.print(
        &mut std::io::stdout().lock(),
        &rows,
        "StatsEntry",
        &STATS_HEADERS,
    )?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::bytes(0), "0B");
        assert_eq!(super::bytes(1536), "1.5KiB");
        assert_eq!(super::bytes(64 << 20), "64MiB");
        assert_eq!(super::bytes(1_597_000), "1.523MiB");
    }
}
