//! The hidden network helpers, each started detached by another rbuild command:
//! `network-reaper` removes rbuild's unused bridges once their linger passed (the last user of
//! a bridge starts it; see `crate::network::linger`), and `network-responder` answers names
//! on a user network for a running container that `network connect` added (see
//! `crate::network::dns`).

pub fn run() -> anyhow::Result<i32> {
    crate::network::linger::reap()?;
    Ok(0)
}

/// `network-responder BRIDGE GATEWAY ADDRESS RUNNER`.
#[derive(clap::Args, Debug)]
pub struct ResponderArgs {
    bridge: String,
    gateway: std::net::Ipv4Addr,
    address: std::net::Ipv4Addr,
    runner: u32,
}

pub fn responder(args: ResponderArgs) -> anyhow::Result<i32> {
    crate::network::dns::serve_while_held(
        args.bridge,
        args.gateway,
        args.address,
        args.runner,
        || println!("ready"),
    )?;
    Ok(0)
}
