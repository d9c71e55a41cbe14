//! Resource limits of `run`: docker's `-m/--memory`, `--memory-swap`, `--cpus`,
//! `--cpu-shares`, `--pids-limit` (into the runtime's cgroup [`Resources`]) and `--ulimit`
//! (into rlimits), parsed and checked with docker's rules and messages before anything is
//! created. Applying them is the runtime's (`rbuild_runtime`'s cgroup setup), which fails
//! when a limit cannot be set rather than running without it.

use rbuild_runtime::{Resources, Rlimit, RlimitResource};

use super::ContainerError;

/// The limit flags as given on the command line (`None`: not given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitFlags {
    pub memory: Option<String>,
    pub memory_swap: Option<String>,
    pub cpus: Option<String>,
    pub cpu_shares: Option<u64>,
    pub pids_limit: Option<i64>,
    pub ulimits: Vec<String>,
}

/// Docker's smallest memory limit.
const MIN_MEMORY: u64 = 6 * 1024 * 1024;

fn bad(flag: &str, value: &str, reason: impl Into<String>) -> ContainerError {
    ContainerError::BadLimit {
        flag: flag.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// A size as docker's `RAMInBytes` reads it: a number (decimals allowed) with an optional
/// binary unit `b`, `k`, `m`, `g`, `t`, `p` (any case, optionally followed by `b` or `ib`).
pub fn parse_bytes(value: &str) -> Option<u64> {
    let lower = value.trim().to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(digits_end);
    let number: f64 = number.parse().ok()?;
    let unit = unit.trim_start();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return None,
    };
    Some((number * (1u64 << shift) as f64) as u64)
}

/// `--shm-size` of `run` and `build`: the size of `/dev/shm`, a positive size as
/// [`parse_bytes`] reads it (docker's `RAMInBytes`; 0 or garbage is refused).
pub fn parse_shm_size(value: &str) -> Result<u64, ContainerError> {
    parse_bytes(value)
        .filter(|b| *b > 0)
        .ok_or_else(|| ContainerError::BadOption {
            flag: "--shm-size",
            value: value.to_string(),
            reason: "invalid size".into(),
        })
}

/// Docker's `--ulimit` rule, for `run` and `build`'s RUN steps alike: `limit` replaces the
/// entry of `rlimits` for its resource (the runtime's default), or is added.
pub fn override_rlimit(rlimits: &mut Vec<Rlimit>, limit: Rlimit) {
    rlimits.retain(|r| r.resource != limit.resource);
    rlimits.push(limit);
}

/// The cgroup limits of `flags` over the defaults (podman's pids limit), and the rlimits:
/// `defaults` with each `--ulimit` replacing the entry for its resource.
pub fn resolve(
    flags: &LimitFlags,
    defaults: Vec<Rlimit>,
) -> Result<(Resources, Vec<Rlimit>), ContainerError> {
    let mut resources = Resources::default();
    if let Some(value) = &flags.memory {
        let bytes = parse_bytes(value).ok_or_else(|| bad("--memory", value, "invalid size"))?;
        if bytes < MIN_MEMORY {
            return Err(bad(
                "--memory",
                value,
                "Minimum memory limit allowed is 6MB",
            ));
        }
        resources.memory = Some(bytes);
    }
    if let Some(value) = &flags.memory_swap {
        let Some(memory) = resources.memory else {
            return Err(bad(
                "--memory-swap",
                value,
                "You should always set the Memory limit when using Memoryswap limit",
            ));
        };
        let total = if value.trim() == "-1" {
            -1
        } else {
            let bytes =
                parse_bytes(value).ok_or_else(|| bad("--memory-swap", value, "invalid size"))?;
            if bytes < memory {
                return Err(bad(
                    "--memory-swap",
                    value,
                    "Minimum memoryswap limit should be larger than memory limit",
                ));
            }
            i64::try_from(bytes).map_err(|_| bad("--memory-swap", value, "too large"))?
        };
        resources.memory_swap = Some(total);
    }
    if let Some(value) = &flags.cpus {
        let cpus: f64 = value
            .trim()
            .parse()
            .map_err(|_| bad("--cpus", value, "not a number"))?;
        let available = std::thread::available_parallelism().map_or(1, |n| n.get());
        if cpus != 0.0 && !(0.01..=available as f64).contains(&cpus) {
            return Err(bad(
                "--cpus",
                value,
                format!(
                    "range of CPUs is from 0.01 to {available}.00, as there are only {available} CPUs available"
                ),
            ));
        }
        resources.nano_cpus = (cpus > 0.0).then(|| (cpus * 1e9).round() as u64);
    }
    resources.cpu_shares = flags.cpu_shares.filter(|s| *s > 0);
    if let Some(limit) = flags.pids_limit {
        // docker: 0 and -1 mean unlimited.
        resources.pids_max = u64::try_from(limit).ok().filter(|l| *l > 0);
        if resources.pids_max.is_some() && rbuild_runtime::host_pids_hierarchy().is_none() {
            return Err(bad(
                "--pids-limit",
                &limit.to_string(),
                "this host has no cgroup hierarchy with the pids controller",
            ));
        }
    }
    let mut rlimits = defaults;
    for value in &flags.ulimits {
        override_rlimit(&mut rlimits, parse_ulimit(value)?);
    }
    Ok((resources, rlimits))
}

/// One `--ulimit NAME=SOFT[:HARD]` (`-1`: unlimited).
pub fn parse_ulimit(value: &str) -> Result<Rlimit, ContainerError> {
    let (name, limits) = value
        .split_once('=')
        .ok_or_else(|| bad("--ulimit", value, "invalid ulimit argument"))?;
    let resource = RlimitResource::from_name(name)
        .ok_or_else(|| bad("--ulimit", value, format!("invalid ulimit type: {name}")))?;
    let number = |s: &str| -> Result<u64, ContainerError> {
        match s.trim() {
            "-1" => Ok(u64::MAX), // RLIM_INFINITY
            n => n
                .parse()
                .map_err(|_| bad("--ulimit", value, format!("invalid ulimit value {n:?}"))),
        }
    };
    let (soft, hard) = match limits.split_once(':') {
        Some((s, h)) => (number(s)?, number(h)?),
        None => {
            let n = number(limits)?;
            (n, n)
        }
    };
    if soft > hard {
        return Err(bad(
            "--ulimit",
            value,
            format!("ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"),
        ));
    }
    Ok(Rlimit {
        resource,
        soft,
        hard,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("1024"), Some(1024));
        assert_eq!(parse_bytes("64m"), Some(64 << 20));
        assert_eq!(parse_bytes("64MB"), Some(64 << 20));
        assert_eq!(parse_bytes("1.5g"), Some(3 << 29));
        assert_eq!(parse_bytes("2 GiB"), Some(2 << 30));
        assert_eq!(parse_bytes("x"), None);
        assert_eq!(parse_bytes("12q"), None);
        assert_eq!(parse_shm_size("128m").unwrap(), 128 << 20);
        assert!(parse_shm_size("0")
            .unwrap_err()
            .to_string()
            .contains("--shm-size"));
        assert!(parse_shm_size("lots").is_err());
    }

    #[test]
    fn flags() {
        let flags = LimitFlags {
            memory: Some("64m".into()),
            memory_swap: Some("-1".into()),
            cpus: Some("0.5".into()),
            cpu_shares: Some(512),
            pids_limit: Some(-1),
            ulimits: vec!["nofile=100:200".into(), "core=0".into()],
        };
        let (r, rl) = resolve(&flags, rbuild_runtime::default_rlimits()).unwrap();
        assert_eq!(r.memory, Some(64 << 20));
        assert_eq!(r.memory_swap, Some(-1));
        assert_eq!(r.nano_cpus, Some(500_000_000));
        assert_eq!(r.cpu_shares, Some(512));
        assert_eq!(r.pids_max, None);
        assert_eq!(rl.len(), 2);
        assert_eq!(
            (rl[0].resource, rl[0].soft, rl[0].hard),
            (RlimitResource::Nofile, 100, 200)
        );
        let err = |f: LimitFlags| resolve(&f, Vec::new()).unwrap_err().to_string();
        assert!(err(LimitFlags {
            memory: Some("1m".into()),
            ..Default::default()
        })
        .contains("Minimum memory limit allowed is 6MB"));
        assert!(err(LimitFlags {
            memory_swap: Some("1g".into()),
            ..Default::default()
        })
        .contains("always set the Memory limit"));
        assert!(err(LimitFlags {
            cpus: Some("1000".into()),
            ..Default::default()
        })
        .contains("range of CPUs is from 0.01"));
        assert!(err(LimitFlags {
            ulimits: vec!["bogus=1".into()],
            ..Default::default()
        })
        .contains("invalid ulimit type: bogus"));
        assert!(err(LimitFlags {
            ulimits: vec!["nofile=10:5".into()],
            ..Default::default()
        })
        .contains("soft limit must be less than or equal to hard limit"));
    }
}
