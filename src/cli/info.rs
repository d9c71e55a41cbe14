//! `rbuild info`: what this host gives rbuild (as `docker info`): the store, the storage
//! driver, cgroups, rootless or not, and the runtime's security features. Each fact is read
//! where the runtime reads it, so `info` says what a build or `run` will find.

use std::path::Path;

use clap::Args;

use super::Globals;

#[derive(Debug, Args)]
pub struct InfoArgs {}

pub fn run(globals: &Globals, _args: InfoArgs) -> anyhow::Result<i32> {
    let rootless = !nix::unistd::geteuid().is_root();
    let overlay = if rbuild_runtime::overlay_available() {
        "overlay (kernel overlayfs: yes)"
    } else {
        "overlay (kernel overlayfs: NO; builds and containers cannot run)"
    };
    let cgroup = match rbuild_runtime::host_pids_hierarchy() {
        Some((mount, v2)) => format!(
            "{} (pids controller at {})",
            if v2 { 2 } else { 1 },
            mount.display()
        ),
        None => "none with the pids controller (containers run without limits)".to_string(),
    };
    let mut security = vec![
        format!(
            "capabilities (docker's default set of {})",
            rbuild_runtime::DEFAULT_CAPABILITIES.len()
        ),
        "no-new-privileges".to_string(),
    ];
    if kernel_has_seccomp() {
        security.push("seccomp (docker's default profile)".to_string());
    }
    if rootless {
        security.push("userns (rootless: the caller is root in a user namespace)".to_string());
    }
    if Path::new("/proc/self/ns/cgroup").exists() {
        security.push("cgroupns".to_string());
    }
    println!("Store root:       {}", globals.root.display());
    println!("Storage driver:   {overlay}");
    println!("Cgroup version:   {cgroup}");
    println!("Rootless:         {rootless}");
    println!("Security options: {}", security.join(", "));
    println!("Kernel version:   {}", kernel_release());
    println!("rbuild version:   {}", super::version::VERSION);
    Ok(0)
}

/// Whether the kernel filters syscalls (`Seccomp:` in `/proc/self/status`, CONFIG_SECCOMP).
fn kernel_has_seccomp() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .is_ok_and(|s| s.lines().any(|l| l.starts_with("Seccomp:")))
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}
