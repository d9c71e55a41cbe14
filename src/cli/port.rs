//! Published ports on the command line: `run`'s `-p/--publish` and `-P/--publish-all`, and
//! `rbuild port CONTAINER [PRIVATE_PORT[/PROTO]]` (see `crate::network::ports`).

use clap::Args;

use super::common::open_store;
use super::Globals;
use crate::container::RunOptions;
use crate::network::ports::{self, PortMapping, Proto};

/// `run`/`create`'s port flags (docker's).
#[derive(Debug, Args)]
pub struct PortArgs {
    /// Publish a container's port(s) to the host ([ip:][hostPort:]containerPort[/tcp|udp];
    /// ranges as 8000-8002:80-82; no hostPort: a free one)
    #[arg(short = 'p', long = "publish", value_name = "PORT")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to free host ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
}

impl PortArgs {
    /// Parses the flags into `options`, as docker does for each network: `host` discards
    /// them with a warning (the container uses the host's ports directly), `none` has no
    /// network to forward to, `container:NAME` is an error (the ports belong to the other
    /// container's network).
    pub fn apply(&self, options: &mut RunOptions, network: Option<&str>) -> anyhow::Result<()> {
        let mut mappings = Vec::new();
        for value in &self.publish {
            mappings.extend(ports::parse_publish(value)?);
        }
        if mappings.is_empty() && !self.publish_all {
            return Ok(());
        }
        match network {
            Some("host") => {
                eprintln!("WARNING: Published ports are discarded when using host network mode");
                return Ok(());
            }
            Some("none") => return Ok(()),
            Some(n) if n.starts_with("container:") => anyhow::bail!(
                "conflicting options: port publishing and the container type network mode"
            ),
            _ => {}
        }
        options.ports = mappings;
        options.publish_all = self.publish_all;
        Ok(())
    }
}

/// `rbuild port`'s arguments.
#[derive(Debug, Args)]
pub struct PortCmdArgs {
    /// The container (name or ID)
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// Only this port of the container (PORT or PORT/PROTO, tcp by default)
    #[arg(value_name = "PRIVATE_PORT[/PROTO]")]
    pub private: Option<String>,
}

/// `port`: docker's output, `80/tcp -> 0.0.0.0:8080` per published port, or only the host
/// side for one private port; nothing for a container that does not run.
pub fn run(globals: &Globals, args: PortCmdArgs) -> anyhow::Result<i32> {
    let store = open_store(globals)?;
    let record = store.resolve_container(&args.container)?;
    let published: &[PortMapping] = if store.container_running(&record) {
        &record.published_ports
    } else {
        &[]
    };
    let Some(private) = args.private else {
        for p in published {
            println!("{} -> {}", p.private(), p.public());
        }
        return Ok(0);
    };
    let (port, proto) = match private.split_once('/') {
        Some((port, proto)) => (port, Proto::parse(proto)?),
        None => (private.as_str(), Proto::Tcp),
    };
    let port: u16 = port
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid port: {private}"))?;
    let matching: Vec<_> = published
        .iter()
        .filter(|p| p.container_port == port && p.proto == proto)
        .collect();
    if matching.is_empty() {
        anyhow::bail!(
            "no public port '{port}/{proto}' published for {}",
            args.container
        );
    }
    for p in matching {
        println!("{}", p.public());
    }
    Ok(0)
}

/// `ps`'s PORTS cell: the published ports of a running (or paused) container.
pub(super) fn ps_column(record: &crate::store::ContainerRecord, state: &str) -> String {
    match state {
        "running" | "paused" => ports::ps_column(&record.published_ports),
        _ => String::new(),
    }
}

/// `ps`'s default table: docker's columns, PORTS only when a listed container publishes
/// ports (so that the table of a store without published ports stays as it was).
pub(super) fn ps_default_format<'a>(
    rows: impl IntoIterator<Item = (&'a crate::store::ContainerRecord, &'a str)>,
) -> &'static str {
    if rows
        .into_iter()
        .any(|(record, state)| !ps_column(record, state).is_empty())
    {
        "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
    } else {
        "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}"
    }
}

/// The hidden forwarder subcommand's arguments (see `crate::network::forwarder`).
#[derive(Debug, Args)]
pub struct ForwarderArgs {
    /// The process that started the forwarder (it dies with it)
    parent: u32,
    /// A process of the container whose namespaces it joins
    pid: u32,
    /// The published ports of its sockets (descriptors 3, 4, …), as JSON
    ports: String,
}

/// The rootless UDP port forwarder: serves until its parent kills it.
pub fn forwarder_main(args: ForwarderArgs) -> anyhow::Result<i32> {
    use crate::network::forwarder;
    use std::io::Write;
    let mappings: Vec<PortMapping> = serde_json::from_str(&args.ports)?;
    let _serving = forwarder::serve(args.parent, args.pid, mappings)?;
    println!("{}", forwarder::ready());
    std::io::stdout().flush()?;
    loop {
        std::thread::park();
    }
}
