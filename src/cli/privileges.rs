//! `run`'s privilege and device flags (docker's spellings), flattened into `RunArgs`:
//! `--cap-add`, `--cap-drop`, `--privileged`, `--device`, `--device-cgroup-rule`, `--tmpfs`,
//! `--shm-size`.

use clap::Args;

use crate::container::{self, security, RunOptions};

#[derive(Debug, Args, Default)]
pub struct PrivilegeArgs {
    /// Add Linux capabilities (e.g. NET_ADMIN, CAP_SYS_TIME, or ALL)
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities (e.g. CHOWN, or ALL)
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Give extended privileges to this container: every capability, no seccomp filter,
    /// the host's devices, writable /sys
    #[arg(long)]
    pub privileged: bool,
    /// Add a host device to the container (HOST[:CONTAINER][:PERMISSIONS], e.g. /dev/fuse:rwm)
    #[arg(long, value_name = "DEVICE")]
    pub device: Vec<String>,
    /// Add a rule to the cgroup allowed devices list (TYPE MAJOR:MINOR ACCESS, e.g. 'c 42:* rmw')
    #[arg(long = "device-cgroup-rule", value_name = "RULE")]
    pub device_cgroup_rule: Vec<String>,
    /// Mount a tmpfs directory (PATH[:OPTIONS], e.g. /run:size=64m,exec)
    #[arg(long, value_name = "PATH[:OPTIONS]")]
    pub tmpfs: Vec<String>,
    /// Size of /dev/shm (e.g. 128m; default 64m)
    #[arg(long = "shm-size", value_name = "BYTES")]
    pub shm_size: Option<String>,
}

impl PrivilegeArgs {
    /// Puts the flags into `options`; a bad value is an error before anything is created.
    pub fn apply(self, options: &mut RunOptions) -> Result<(), container::ContainerError> {
        let privileges = &mut options.privileges;
        privileges.cap_add = self.cap_add;
        privileges.cap_drop = self.cap_drop;
        privileges.privileged = self.privileged;
        privileges.capabilities()?;
        for value in &self.device {
            privileges.devices.push(security::parse_device(value)?);
        }
        for value in &self.device_cgroup_rule {
            privileges
                .device_rules
                .push(security::parse_device_cgroup_rule(value)?);
        }
        if let Some(value) = &self.shm_size {
            privileges.shm_size = Some(container::limits::parse_shm_size(value)?);
        }
        for value in &self.tmpfs {
            options.add_mount(container::volumes::MountRequest::Mount(
                container::tmpfs::parse_tmpfs(value)?,
            ));
        }
        Ok(())
    }
}
