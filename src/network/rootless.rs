//! The default network of a rootless rbuild (not run as root): a user-mode network stack,
//! as podman and docker's rootless mode use, since an unprivileged user can create neither
//! a bridge nor veth pairs nor NAT rules on the host.
//!
//! - **Which helper:** pasta (Debian package `passt`) when installed, else slirp4netns;
//!   `RBUILD_ROOTLESS_NETWORK=pasta|slirp4netns` picks one. Neither installed: an error that
//!   names both packages (and `--network host` / `none`, which need neither).
//! - **pasta** (`--config-net`): the namespace gets a copy of the host's address, routes and
//!   MTU 65520 on an interface named like the host's; outbound traffic leaves through
//!   ordinary sockets of the user. `--ipv4-only`, as rbuild's bridge (and docker's default
//!   one): pasta's IPv6 setup would triple its start time (120 ms instead of 40 here). `--no-map-gw` (podman's default): the gateway address is
//!   not the host's loopback, so services bound to the host's 127.0.0.1 stay out of reach,
//!   as with slirp4netns's `--disable-host-loopback`. `-T none -U none`: no port of the host
//!   is forwarded into the namespace (pasta's default would forward every bound one).
//! - **slirp4netns** (`--configure --mtu=65520 --disable-host-loopback`, podman's and
//!   rootlesskit's options): `tap0` with 10.0.2.100/24, gateway 10.0.2.2.
//! - **DNS:** `/etc/resolv.conf` names the helper's DNS forwarder, which queries the host's
//!   servers (so a host on systemd-resolved's 127.0.0.53 works too): pasta's
//!   `--dns-forward 169.254.1.1` (podman 5's address), slirp4netns's 10.0.2.3. `--dns`
//!   replaces it.
//! - **Published ports** ([`PortForward`]): pasta's `-t`/`-u` options, or slirp4netns's API
//!   socket (`add_hostfwd`), in place before the container's process starts. The helper
//!   binds the host's sockets itself (no userland proxy, no rules); rbuild chooses the free
//!   host ports and finds a taken one first ([`super::publish::publish_rootless`]), and
//!   hands it only TCP ports: UDP goes through rbuild's forwarder ([`super::forwarder`]
//!   says why).
//!
//! The runtime starts the helper once the container's namespace exists and ends it with the
//! container, even when rbuild is killed ([`rbuild_runtime::network::user_mode`]).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rbuild_runtime::network::user_mode::{UserNetwork, UserNetworkKind};
use rbuild_runtime::ContainerSpec;

use super::ports::PortMapping;

/// pasta's DNS forwarder address in the container (`--dns-forward`).
pub const PASTA_DNS: &str = "169.254.1.1";
/// slirp4netns's built-in DNS forwarder.
pub const SLIRP4NETNS_DNS: &str = "10.0.2.3";
/// Environment variable that picks the helper (`pasta` or `slirp4netns`).
pub const HELPER_ENV: &str = "RBUILD_ROOTLESS_NETWORK";

/// Errors of choosing the rootless network helper.
#[derive(Debug, thiserror::Error)]
pub enum RootlessError {
    #[error(
        "rootless networking needs pasta (Debian package passt) or slirp4netns (package \
         slirp4netns) and neither is installed; install one, or use --network host or \
         --network none"
    )]
    NoHelper,
    #[error("{HELPER_ENV}={0}: {0} is not installed (Debian package {1})")]
    NotInstalled(String, &'static str),
    #[error("{HELPER_ENV}={0:?}: expected pasta or slirp4netns")]
    Unknown(String),
}

/// A published port of a rootless container: host address (all when `None`) and port to
/// the container's port. The same fields as the root path's port mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortForward {
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Protocol,
}

/// The protocols a helper forwards: those of `-p`.
pub use super::ports::Proto as Protocol;

impl From<&PortMapping> for PortForward {
    /// A mapping whose host port is chosen ([`super::publish::publish_rootless`]); docker's
    /// `0.0.0.0` (every address) is the helpers' default.
    fn from(p: &PortMapping) -> PortForward {
        PortForward {
            host_ip: Some(p.host_ip)
                .filter(|ip| !ip.is_unspecified())
                .map(IpAddr::V4),
            host_port: p.host_port,
            container_port: p.container_port,
            proto: p.proto,
        }
    }
}

/// Whether rbuild's default network is the user-mode one: rbuild does not run as root.
pub fn applies() -> bool {
    !nix::unistd::geteuid().is_root()
}

/// The helper's program name and Debian package.
fn names(kind: UserNetworkKind) -> (&'static str, &'static str) {
    match kind {
        UserNetworkKind::Pasta => ("pasta", "passt"),
        UserNetworkKind::Slirp4netns => ("slirp4netns", "slirp4netns"),
    }
}

/// An executable file named `name` in one of the `PATH` directories.
fn find_in_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The helper to use: the one [`HELPER_ENV`] names, else pasta, else slirp4netns.
pub fn choose() -> Result<(UserNetworkKind, PathBuf), RootlessError> {
    let kinds = match std::env::var(HELPER_ENV).ok().as_deref() {
        None | Some("") => vec![UserNetworkKind::Pasta, UserNetworkKind::Slirp4netns],
        Some("pasta") => vec![UserNetworkKind::Pasta],
        Some("slirp4netns") => vec![UserNetworkKind::Slirp4netns],
        Some(other) => return Err(RootlessError::Unknown(other.to_string())),
    };
    for kind in &kinds {
        if let Some(program) = find_in_path(names(*kind).0) {
            return Ok((*kind, program));
        }
    }
    match kinds[..] {
        [only] => Err(RootlessError::NotInstalled(
            names(only).0.to_string(),
            names(only).1,
        )),
        _ => Err(RootlessError::NoHelper),
    }
}

/// pasta's `-t`/`-u` value for one port: `[ADDR/]HOST:CONTAINER`.
fn pasta_port(port: &PortForward) -> String {
    let address = port.host_ip.map(|ip| format!("{ip}/")).unwrap_or_default();
    format!("{address}{}:{}", port.host_port, port.container_port)
}

/// slirp4netns's `add_hostfwd` request for one port.
fn slirp_hostfwd(port: &PortForward) -> String {
    serde_json::json!({
        "execute": "add_hostfwd",
        "arguments": {
            "proto": port.proto.as_str(),
            "host_addr": port.host_ip.map_or_else(|| "0.0.0.0".to_string(), |ip| ip.to_string()),
            "host_port": port.host_port,
            "guest_port": port.container_port,
        }
    })
    .to_string()
}

/// The user-mode network of `program` (a `kind` helper) with `ports` published, and the DNS
/// server the container uses.
pub fn user_network(
    kind: UserNetworkKind,
    program: &Path,
    ports: &[PortForward],
) -> (UserNetwork, &'static str) {
    let target = UserNetwork::TARGET.to_string();
    let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    match kind {
        UserNetworkKind::Pasta => {
            let mut args = strings(&[
                "--config-net",
                "--foreground",
                "--quiet",
                "--ipv4-only",
                "--no-map-gw",
                "--dns-forward",
                PASTA_DNS,
                "-T",
                "none",
                "-U",
                "none",
            ]);
            for (option, proto) in [("-t", Protocol::Tcp), ("-u", Protocol::Udp)] {
                let specs: Vec<String> = ports
                    .iter()
                    .filter(|p| p.proto == proto)
                    .map(pasta_port)
                    .collect();
                if specs.is_empty() {
                    args.extend(strings(&[option, "none"]));
                }
                for spec in specs {
                    args.extend([option.to_string(), spec]);
                }
            }
            args.push(target);
            let net = UserNetwork {
                kind,
                program: program.to_path_buf(),
                args,
                api_requests: Vec::new(),
            };
            (net, PASTA_DNS)
        }
        UserNetworkKind::Slirp4netns => {
            let mut args = strings(&["--configure", "--mtu=65520", "--disable-host-loopback"]);
            args.extend([target, "tap0".to_string()]);
            let net = UserNetwork {
                kind,
                program: program.to_path_buf(),
                args,
                api_requests: ports.iter().map(slirp_hostfwd).collect(),
            };
            (net, SLIRP4NETNS_DNS)
        }
    }
}

/// Connects `spec` (a private network namespace) to the rootless default network with
/// `ports` published: the chosen helper, and its DNS forwarder unless `--dns` gave servers
/// (so call it after [`super::Extras::apply`]).
pub fn attach(spec: &mut ContainerSpec, ports: &[PortForward]) -> Result<(), RootlessError> {
    let (kind, program) = choose()?;
    let (net, dns) = user_network(kind, &program, ports);
    spec.user_network = Some(net);
    if spec.dns.is_empty() {
        spec.dns = vec![dns.to_string()];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(host_ip: Option<&str>, host: u16, container: u16, proto: Protocol) -> PortForward {
        PortForward {
            host_ip: host_ip.map(|ip| ip.parse().unwrap()),
            host_port: host,
            container_port: container,
            proto,
        }
    }

    #[test]
    fn pasta_gets_one_option_per_port_and_none_for_an_unused_protocol() {
        let ports = [
            port(Some("127.0.0.1"), 8080, 80, Protocol::Tcp),
            port(None, 8443, 443, Protocol::Tcp),
        ];
        let (net, dns) = user_network(UserNetworkKind::Pasta, Path::new("/usr/bin/pasta"), &ports);
        assert_eq!(dns, PASTA_DNS);
        let args = net.args.join(" ");
        assert!(
            args.ends_with("-t 127.0.0.1/8080:80 -t 8443:443 -u none {pid}"),
            "{args}"
        );
        assert!(args.contains("-T none -U none"), "{args}");
        assert!(net.api_requests.is_empty());
    }

    #[test]
    fn slirp4netns_ports_go_through_its_api_socket() {
        let ports = [port(None, 5353, 53, Protocol::Udp)];
        let (net, dns) = user_network(
            UserNetworkKind::Slirp4netns,
            Path::new("/usr/bin/slirp4netns"),
            &ports,
        );
        assert_eq!(dns, SLIRP4NETNS_DNS);
        assert_eq!(
            net.args,
            [
                "--configure",
                "--mtu=65520",
                "--disable-host-loopback",
                "{pid}",
                "tap0"
            ]
        );
        let request: serde_json::Value = serde_json::from_str(&net.api_requests[0]).unwrap();
        assert_eq!(
            request,
            serde_json::json!({"execute": "add_hostfwd", "arguments": {"proto": "udp",
                "host_addr": "0.0.0.0", "host_port": 5353, "guest_port": 53}})
        );
    }
}
