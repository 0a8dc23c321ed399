//! Raw GRE back ends: the sockets (IP protocol 47) and the glue to the core's
//! [`Backends`] table, which picks a back end by the inner destination and tracks health.
//!
//! One raw socket per address family, bound to the `local` address the back ends of that family
//! share (so the far end sees the source it was configured with). Linux hands an IPv4 raw
//! socket the whole IP packet (header included) and an IPv6 one only the payload; both are
//! wrapped as tokio `UdpSocket`s, which only call `recvfrom`/`sendto` and so work for raw
//! sockets too (the port is ignored).

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use grelay_proto::backend::{BackendConfig, BackendDrop, BackendEvent, BackendId, Backends};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

const IPPROTO_GRE: i32 = 47;

/// Counters of the GRE side, for the status line and metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GreCounters {
    /// Data frames sent to back ends.
    pub tx: u64,
    /// Data frames received from back ends.
    pub rx: u64,
    /// Frames from addresses that are not back ends.
    pub unknown_source: u64,
    /// Frames whose GRE key did not match.
    pub bad_key: u64,
    /// Malformed frames (bad header, checksum, protocol).
    pub malformed: u64,
    /// Frames that reached no client (no address holds the inner destination).
    pub unroutable: u64,
    /// Sends that failed.
    pub send_errors: u64,
}

/// The back-end table and its sockets.
pub struct BackendPlane {
    /// The core's table: selection, framing, health.
    pub table: Backends,
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
    /// Counters.
    pub counters: GreCounters,
}

impl BackendPlane {
    /// Opens the sockets for `configs`; `None` when no back end is configured.
    pub fn open(configs: &[BackendConfig], now: Instant) -> Result<Option<Self>> {
        if configs.is_empty() {
            return Ok(None);
        }
        let local = |v4: bool| -> Result<Option<IpAddr>> {
            let mut locals = configs
                .iter()
                .map(|c| c.local)
                .filter(|l| l.is_ipv4() == v4);
            let Some(first) = locals.next() else {
                return Ok(None);
            };
            if let Some(other) = locals.find(|l| *l != first) {
                bail!(
                    "back ends use two local addresses, {first} and {other}: all back ends of \
                     one address family must share the same local address"
                );
            }
            Ok(Some(first))
        };
        let v4 = local(true)?.map(raw_socket).transpose()?;
        let v6 = local(false)?.map(raw_socket).transpose()?;
        Ok(Some(Self {
            table: Backends::new(configs.to_vec(), now),
            v4,
            v6,
            counters: GreCounters::default(),
        }))
    }

    /// Waits until one of the sockets has a frame.
    pub async fn readable(&self) -> std::io::Result<()> {
        match (&self.v4, &self.v6) {
            (Some(a), Some(b)) => tokio::select! {
                r = a.readable() => r,
                r = b.readable() => r,
            },
            (Some(s), None) | (None, Some(s)) => s.readable().await,
            (None, None) => std::future::pending().await,
        }
    }

    /// Reads one waiting frame into `buf`: its source and where the GRE frame lies.
    pub fn try_recv(&self, buf: &mut [u8]) -> Option<(IpAddr, Range<usize>)> {
        if let Some(s) = &self.v4 {
            if let Ok((n, from)) = s.try_recv_from(buf) {
                let ihl = usize::from(buf.first().map_or(0, |b| b & 0x0f)) * 4;
                return (ihl >= 20 && ihl <= n).then_some((from.ip(), ihl..n));
            }
        }
        if let Some(s) = &self.v6 {
            if let Ok((n, from)) = s.try_recv_from(buf) {
                return Some((from.ip(), 0..n));
            }
        }
        None
    }

    /// Sends a GRE frame to a back end's outer address.
    pub async fn send(&mut self, to: IpAddr, frame: &[u8]) {
        let socket = if to.is_ipv4() { &self.v4 } else { &self.v6 };
        let Some(socket) = socket else {
            self.counters.send_errors += 1;
            return;
        };
        if let Err(e) = socket.send_to(frame, SocketAddr::new(to, 0)).await {
            self.counters.send_errors += 1;
            tracing::trace!("gre send to {to}: {e}");
        }
    }

    /// Counts a dropped frame.
    pub fn count_drop(&mut self, reason: BackendDrop) {
        match reason {
            BackendDrop::UnknownSource => self.counters.unknown_source += 1,
            BackendDrop::BadKey => self.counters.bad_key += 1,
            _ => self.counters.malformed += 1,
        }
    }

    /// Sends due probes and logs health changes.
    pub async fn flush(&mut self) {
        while let Some(t) = self.table.poll_transmit() {
            self.send(t.destination, &t.frame).await;
        }
        while let Some(event) = self.table.poll_event() {
            let (id, state) = match event {
                BackendEvent::Down(id) => (id, "down: keepalives stopped, failing over"),
                BackendEvent::Up(id) => (id, "up: keepalives returned"),
            };
            tracing::info!("back end {} {state}", self.name(id));
        }
    }

    /// A back end's name for logs.
    pub fn name(&self, id: BackendId) -> &str {
        self.table.config(id).map_or("?", |c| c.name.as_str())
    }
}

fn raw_socket(local: IpAddr) -> Result<UdpSocket> {
    let domain = if local.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let socket = Socket::new(domain, Type::RAW, Some(Protocol::from(IPPROTO_GRE)))
        .context("opening a raw GRE socket (needs CAP_NET_RAW)")?;
    socket.set_nonblocking(true)?;
    socket
        .bind(&SocketAddr::new(local, 0).into())
        .with_context(|| {
            format!("binding the raw GRE socket to {local} (is it an address of this host?)")
        })?;
    let std_socket: std::net::UdpSocket = socket.into();
    UdpSocket::from_std(std_socket).context("registering the raw GRE socket with tokio")
}
