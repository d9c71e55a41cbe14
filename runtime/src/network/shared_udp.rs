//! A UDP socket that several processes bind to the same address (`SO_REUSEPORT`).
//!
//! rbuild's name responder for a user network listens on the network's gateway, port 53, in
//! every process that holds a container on that network (see the runner's
//! `network::dns`): there is no daemon, so each holder answers, the kernel spreads queries
//! over the sockets of the group, and the last holder to leave takes the responder with it.

use std::net::{SocketAddrV4, UdpSocket};
use std::os::fd::OwnedFd;

use nix::sys::socket::{
    bind, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
};

/// Binds a UDP socket to `address` with `SO_REUSEPORT` set, so that other processes of the
/// same user can bind the same address.
pub fn bind_shared_udp(address: SocketAddrV4) -> std::io::Result<UdpSocket> {
    let fd: OwnedFd = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    setsockopt(&fd, sockopt::ReusePort, &true)?;
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(address),
    )?;
    Ok(UdpSocket::from(fd))
}

/// The name servers a container with a network of its own should ask: the host's
/// (systemd-resolved's upstream ones instead of its stub), loopback ones left out, docker's
/// fallback when none remains; the same list the container's `/etc/resolv.conf` gets.
pub fn upstream_name_servers() -> Vec<std::net::IpAddr> {
    let host = crate::rootfs::host_resolv_conf(false);
    crate::rootfs::resolv_conf(false, &host)
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next()?.parse().ok())?
        })
        .collect()
}
