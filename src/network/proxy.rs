//! The userland proxy of published ports (docker-proxy's job): the host's listening
//! sockets, and the copying of connections (TCP) and datagrams (UDP) to the container.
//!
//! The sockets are bound first ([`bind`]), before the container starts: a taken port is an
//! error then, and nothing starts; a bound socket also keeps the port from other programs
//! while the container runs. The proxy serves what DNAT does not take (UDP to 127.0.0.1,
//! TCP to it where the bridge's `route_localnet` cannot be set, flows that began before the
//! rules: see [`super::dnat`]); it runs on a thread of its own with a single-threaded
//! tokio runtime, and [`Proxy`]'s drop stops it and closes every socket before returning,
//! so the ports are free again as soon as the container is gone.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::ports::{PortMapping, Proto};
use super::NetworkError;

/// The copy buffer of each direction of a TCP connection: large enough that a bulk
/// transfer costs few system calls (tokio's default of 8 KiB halves the throughput).
const TCP_BUFFER: usize = 256 * 1024;

/// A UDP "connection" (one client address) is forgotten after this long without an answer
/// from the container (docker-proxy's is 90 s).
const UDP_IDLE: Duration = Duration::from_secs(60);

enum Socket {
    Tcp(std::net::TcpListener),
    Udp(std::net::UdpSocket),
}

/// Sockets bound for published ports, the host ports chosen.
pub(super) struct Bound {
    pub mappings: Vec<PortMapping>,
    sockets: Vec<Socket>,
}

fn in_use(ip: Ipv4Addr, port: u16, proto: Proto) -> NetworkError {
    let what = match proto {
        Proto::Tcp => String::new(),
        Proto::Udp => " (udp)".to_string(),
    };
    NetworkError::PortInUse(format!("{ip}:{port}{what}"))
}

fn bind_one(ip: Ipv4Addr, port: u16, proto: Proto) -> std::io::Result<(Socket, u16)> {
    let address = SocketAddrV4::new(ip, port);
    let socket = match proto {
        Proto::Tcp => Socket::Tcp(std::net::TcpListener::bind(address)?),
        Proto::Udp => Socket::Udp(std::net::UdpSocket::bind(address)?),
    };
    let local = match &socket {
        Socket::Tcp(s) => s.local_addr()?,
        Socket::Udp(s) => s.local_addr()?,
    };
    Ok((socket, local.port()))
}

/// Binds a socket for each of `requested` (host port 0: a free one; a range: the first
/// free one of it).
pub(super) fn bind(requested: &[PortMapping]) -> Result<Bound, NetworkError> {
    let mut bound = Bound {
        mappings: Vec::new(),
        sockets: Vec::new(),
    };
    for p in requested {
        let last = p.host_port_last.unwrap_or(p.host_port);
        let mut result = Err(in_use(p.host_ip, p.host_port, p.proto));
        for port in p.host_port..=last {
            match bind_one(p.host_ip, port, p.proto) {
                Ok(done) => {
                    result = Ok(done);
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                    result = Err(match p.host_port_last {
                        None => in_use(p.host_ip, port, p.proto),
                        Some(_) => NetworkError::PortInUse(format!(
                            "every port of {}:{}-{last}",
                            p.host_ip, p.host_port
                        )),
                    });
                }
                Err(e) => {
                    return Err(NetworkError::Io {
                        path: format!("{}:{port}/{}", p.host_ip, p.proto).into(),
                        error: e,
                    })
                }
            }
        }
        let (socket, port) = result?;
        bound.sockets.push(socket);
        bound.mappings.push(PortMapping {
            host_port: port,
            host_port_last: None,
            ..*p
        });
    }
    Ok(bound)
}

/// The running proxy; dropping it stops it and closes its sockets.
pub(super) struct Proxy {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Serves `bound`'s sockets, forwarding to `target`'s ports.
pub(super) fn start(bound: Bound, target: Ipv4Addr) -> Result<Proxy, NetworkError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| NetworkError::Io {
            path: "tokio runtime".into(),
            error: e,
        })?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("port-proxy".into())
        .spawn(move || {
            runtime.block_on(async move {
                for (socket, p) in bound.sockets.into_iter().zip(&bound.mappings) {
                    let to = SocketAddr::from((target, p.container_port));
                    match socket {
                        Socket::Tcp(s) => {
                            if let Ok(s) = s
                                .set_nonblocking(true)
                                .and_then(|()| TcpListener::from_std(s))
                            {
                                tokio::spawn(serve_tcp(s, to));
                            }
                        }
                        Socket::Udp(s) => {
                            if let Ok(s) = s
                                .set_nonblocking(true)
                                .and_then(|()| UdpSocket::from_std(s))
                            {
                                tokio::spawn(serve_udp(Arc::new(s), to));
                            }
                        }
                    }
                }
                let _ = stopped.await;
            });
            // The runtime goes here, with every task and socket.
        })
        .map_err(|e| NetworkError::Io {
            path: "proxy thread".into(),
            error: e,
        })?;
    Ok(Proxy {
        stop: Some(stop),
        thread: Some(thread),
    })
}

impl Drop for Proxy {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve_tcp(listener: TcpListener, target: SocketAddr) {
    loop {
        let mut client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(_) => {
                // Out of file descriptors, say: try again a little later.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            // Nothing listens in the container (yet): the client's connection is closed.
            let Ok(mut server) = TcpStream::connect(target).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional_with_sizes(
                &mut client,
                &mut server,
                TCP_BUFFER,
                TCP_BUFFER,
            )
            .await;
        });
    }
}

/// Each client address gets a socket of its own towards the container (so that answers
/// find their way back), forgotten after [`UDP_IDLE`] without an answer.
async fn serve_udp(socket: Arc<UdpSocket>, target: SocketAddr) {
    let flows: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>> = Arc::default();
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, client)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let known = flows.lock().expect("not poisoned").get(&client).cloned();
        let upstream = match known {
            Some(u) => u,
            None => {
                let Ok(upstream) = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await else {
                    continue;
                };
                if upstream.connect(target).await.is_err() {
                    continue;
                }
                let upstream = Arc::new(upstream);
                flows
                    .lock()
                    .expect("not poisoned")
                    .insert(client, upstream.clone());
                tokio::spawn(answer_udp(
                    socket.clone(),
                    upstream.clone(),
                    client,
                    flows.clone(),
                ));
                upstream
            }
        };
        let _ = upstream.send(&buf[..n]).await;
    }
}

async fn answer_udp(
    socket: Arc<UdpSocket>,
    upstream: Arc<UdpSocket>,
    client: SocketAddr,
    flows: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>>,
) {
    let mut buf = vec![0u8; 65536];
    while let Ok(Ok(n)) = tokio::time::timeout(UDP_IDLE, upstream.recv(&mut buf)).await {
        let _ = socket.send_to(&buf[..n], client).await;
    }
    flows.lock().expect("not poisoned").remove(&client);
}

impl Bound {
    /// Keeps the sockets of `proto` and their mappings; closes the others.
    pub(super) fn only(self, proto: Proto) -> Bound {
        let (mappings, sockets) = self
            .mappings
            .into_iter()
            .zip(self.sockets)
            .filter(|(m, _)| m.proto == proto)
            .unzip();
        Bound { mappings, sockets }
    }

    /// The sockets as descriptors in the order of `mappings`, to pass to another process
    /// (the rootless forwarder, [`super::forwarder`]).
    pub(super) fn into_fds(self) -> (Vec<PortMapping>, Vec<OwnedFd>) {
        let fds = self
            .sockets
            .into_iter()
            .map(|s| match s {
                Socket::Tcp(l) => OwnedFd::from(l),
                Socket::Udp(u) => OwnedFd::from(u),
            })
            .collect();
        (self.mappings, fds)
    }

    /// What [`Bound::into_fds`] gave, in the process that serves it.
    pub(super) fn from_fds(mappings: Vec<PortMapping>, fds: Vec<OwnedFd>) -> Bound {
        let sockets = mappings
            .iter()
            .zip(fds)
            .map(|(m, fd)| match m.proto {
                Proto::Tcp => Socket::Tcp(fd.into()),
                Proto::Udp => Socket::Udp(fd.into()),
            })
            .collect();
        Bound { mappings, sockets }
    }
}
