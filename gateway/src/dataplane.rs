//! The per-packet work: datagrams from the UDP socket and IP packets from the TUN, fed to the
//! core's [`Gateway`] and sent where it says, plus draining its transmits and events.
//!
//! ```text
//!  UDP datagram ─ handle_datagram ─► Packet{peer, range} ─ clamp MSS ─┬─ route(dst) = client ─► encapsulate ─► UDP
//!                                                                     └─ otherwise ─────────────────────────► TUN
//!  TUN packet (at HEADROOM) ─ clamp MSS ─ route(dst) = client ─► encapsulate ─► UDP
//!                                        └─ no client: dropped, counted ("unroutable")
//! ```
//!
//! Both buffers are allocated once with room for the largest datagram plus [`HEADROOM`] and
//! [`TAILROOM`]; nothing is allocated per data packet. Client-to-client packets are sealed in
//! the receive buffer itself: a decrypted inner packet already lies at `HEADROOM` (the data
//! header and the minimal GRE header in front of it), with the old tag's room behind it.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::Instant;

use grelay_io::tun::Tun;
use grelay_proto::backend::FromBackend;
use grelay_proto::tunnel::gateway::{Gateway, GatewayEvent, PeerId, Received};
use grelay_proto::tunnel::{DropCounters, HEADROOM, SendError, TAILROOM, TrafficCounters};
use grelay_proto::wire::ip;
use grelay_proto::wire::outer::{self, MessageKind};
use grelay_proto::wire::tcp_mss::{clamp_mss, mss_for_mtu};
use tokio::net::UdpSocket;

use crate::backends::BackendPlane;
use crate::clients::Clients;
use crate::report::{Counters, DropLog};
use crate::transport::Fallback;

/// Largest UDP payload (and so largest inner packet) handled.
const MAX_DATAGRAM: usize = 65_535;
/// Packets handled per readiness wake-up before the loop looks at its other inputs.
pub const BURST: usize = 64;

/// The gateway's protocol state and its two I/O handles.
pub struct Dataplane {
    pub(crate) gateway: Gateway,
    pub(crate) clients: Clients,
    pub(crate) udp: UdpSocket,
    pub(crate) tun: Tun,
    pub(crate) counters: Counters,
    pub(crate) connected: HashSet<PeerId>,
    /// Raw GRE back ends, when configured.
    pub(crate) backends: Option<BackendPlane>,
    /// Handshake initiations dropped, by reason (a subset of the core's drops).
    pub(crate) handshakes_rejected: DropCounters,
    /// Traffic of peers removed by a reload, so that the totals never go back.
    pub(crate) retired_traffic: TrafficCounters,
    /// The TLS and QUIC fallback links (disabled unless `run` starts them).
    pub(crate) fallback: Fallback,
    drops: DropLog,
    mss_v4: u16,
    mss_v6: u16,
    udp_buf: Vec<u8>,
    tun_buf: Vec<u8>,
}

impl Dataplane {
    /// Wraps the parts; MSS clamping follows the TUN's MTU.
    pub fn new(
        gateway: Gateway,
        clients: Clients,
        udp: UdpSocket,
        tun: Tun,
        backends: Option<BackendPlane>,
    ) -> Self {
        let mtu = tun.mtu();
        Dataplane {
            gateway,
            clients,
            udp,
            tun,
            counters: Counters::default(),
            connected: HashSet::new(),
            backends,
            handshakes_rejected: DropCounters::default(),
            retired_traffic: TrafficCounters::default(),
            fallback: Fallback::disabled(),
            drops: DropLog::default(),
            mss_v4: mss_for_mtu(mtu, false),
            mss_v6: mss_for_mtu(mtu, true),
            udp_buf: vec![0; HEADROOM + MAX_DATAGRAM + TAILROOM],
            tun_buf: vec![0; HEADROOM + MAX_DATAGRAM + TAILROOM],
        }
    }

    /// Reads up to [`BURST`] datagrams that are waiting and handles each.
    pub async fn drain_udp(&mut self) {
        for _ in 0..BURST {
            match self.udp.try_recv_from(&mut self.udp_buf[..MAX_DATAGRAM]) {
                Ok((n, from)) => self.on_datagram(n, from).await,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    // ICMP errors for earlier sends surface here (ECONNREFUSED): not fatal.
                    tracing::trace!("udp receive: {e}");
                    break;
                }
            }
        }
    }

    /// Reads up to [`BURST`] packets that are waiting on the TUN and handles each. A read
    /// error other than "nothing waiting" is fatal (the device is gone or broken: better to
    /// stop and be restarted than to spin).
    pub async fn drain_tun(&mut self) -> anyhow::Result<()> {
        for _ in 0..BURST {
            let end = self.tun_buf.len() - TAILROOM;
            match self.tun.try_recv(&mut self.tun_buf[HEADROOM..end]) {
                Ok(n) => self.on_tun_packet(n).await,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("reading the TUN device {}", self.tun.name())));
                }
            }
        }
        Ok(())
    }

    async fn on_datagram(&mut self, n: usize, from: SocketAddr) {
        self.counters.udp_rx += 1;
        self.counters.udp_rx_bytes += n as u64;
        let now = Instant::now();
        match self
            .gateway
            .handle_datagram(now, from, &mut self.udp_buf[..n])
        {
            Ok(Received::Packet { peer, range }) => self.route_inner(now, peer, range).await,
            Ok(Received::Nothing) => {}
            Err(reason) => {
                // Only the drop path looks at the type again (a few byte compares).
                if outer::classify(&self.udp_buf[..n]) == Ok(MessageKind::Initiation) {
                    self.handshakes_rejected.count(reason);
                }
                self.drops.note(now, reason, from);
            }
        }
        self.flush().await;
    }

    /// Handles a datagram that arrived on a TLS/QUIC fallback link (`from` is the link's
    /// address, see [`crate::transport`]) like a UDP one; returns whether it authenticated.
    pub(crate) async fn on_link_datagram(&mut self, from: SocketAddr, data: &[u8]) -> bool {
        let n = data.len();
        if n == 0 || n > MAX_DATAGRAM {
            return false;
        }
        self.udp_buf[..n].copy_from_slice(data);
        let now = Instant::now();
        let ok = match self
            .gateway
            .handle_datagram(now, from, &mut self.udp_buf[..n])
        {
            Ok(Received::Packet { peer, range }) => {
                self.route_inner(now, peer, range).await;
                true
            }
            Ok(Received::Nothing) => true,
            Err(reason) => {
                self.drops.note(now, reason, from);
                false
            }
        };
        self.flush().await;
        ok
    }

    /// Routes a decrypted packet by its destination: to another client, or to the TUN.
    async fn route_inner(&mut self, now: Instant, from: PeerId, range: Range<usize>) {
        let packet = &mut self.udp_buf[range.clone()];
        let mss = match ip::version(packet) {
            Ok(ip::IpVersion::V6) => self.mss_v6,
            _ => self.mss_v4,
        };
        if clamp_mss(packet, mss) {
            self.counters.mss_clamped += 1;
        }
        let Ok(dst) = ip::destination(packet) else {
            self.counters.bad_packets += 1;
            return;
        };
        let Some(to) = self.gateway.route(dst) else {
            if self.send_to_backend(dst, range.clone()).await {
                return;
            }
            let len = range.len() as u64;
            match self.tun.send(&self.udp_buf[range]).await {
                Ok(_) => {
                    self.counters.tun_tx += 1;
                    self.counters.tun_tx_bytes += len;
                }
                Err(e) => {
                    self.counters.tun_write_errors += 1;
                    tracing::trace!("writing to the TUN: {e}");
                }
            }
            return;
        };
        tracing::trace!(
            "{} -> {}: {} bytes",
            self.clients.name(from),
            self.clients.name(to),
            range.len()
        );
        let len = range.len();
        if range.start != HEADROOM {
            self.udp_buf.copy_within(range, HEADROOM);
        }
        self.counters.client_to_client += 1;
        self.counters.client_to_client_bytes += len as u64;
        self.seal_and_send(now, to, len, true).await;
    }

    /// Sends a decrypted packet to the back end that serves its destination, framing it in
    /// place (the decrypted frame has 20 bytes of free room in front); false if none serves it.
    async fn send_to_backend(&mut self, dst: std::net::IpAddr, range: Range<usize>) -> bool {
        let Some(plane) = self.backends.as_mut() else {
            return false;
        };
        let Some(id) = plane.table.select(dst) else {
            return false;
        };
        let end = range.end;
        match plane.table.frame(id, &mut self.udp_buf, range) {
            Ok(start) => {
                let remote = plane.table.config(id).map(|c| c.remote);
                if let Some(remote) = remote {
                    plane.send(remote, &self.udp_buf[start..end]).await;
                    plane.counters.tx += 1;
                }
            }
            Err(e) => {
                self.counters.bad_packets += 1;
                tracing::trace!("cannot frame for back end {}: {e}", plane.name(id));
            }
        }
        true
    }

    /// Reads up to [`BURST`] frames from the back ends' raw GRE sockets: keepalives update
    /// health; packets for a client's address are sealed for that client. The TUN buffer is
    /// reused (this loop is single-threaded, and a TUN packet is finished before we get here).
    pub async fn drain_gre(&mut self) {
        for _ in 0..BURST {
            let Some(plane) = self.backends.as_mut() else {
                return;
            };
            let end = self.tun_buf.len() - TAILROOM;
            let Some((source, frame)) = plane.try_recv(&mut self.tun_buf[..end]) else {
                return;
            };
            let now = Instant::now();
            let range = match plane
                .table
                .handle_frame(now, source, &self.tun_buf[frame.clone()])
            {
                Ok(FromBackend::Packet { range, .. }) => {
                    plane.counters.rx += 1;
                    frame.start + range.start..frame.start + range.end
                }
                Ok(FromBackend::Keepalive(_)) => {
                    plane.flush().await;
                    continue;
                }
                Ok(FromBackend::ReflectKeepalive { backend, range }) => {
                    let at = frame.start + range.start..frame.start + range.end;
                    if let Some(remote) = plane.table.config(backend).map(|c| c.remote) {
                        plane.send(remote, &self.tun_buf[at]).await;
                    }
                    continue;
                }
                Err(reason) => {
                    plane.count_drop(reason);
                    continue;
                }
            };
            let Ok(dst) = ip::destination(&self.tun_buf[range.clone()]) else {
                plane.counters.malformed += 1;
                continue;
            };
            let Some(peer) = self.gateway.route(dst) else {
                plane.counters.unroutable += 1;
                continue;
            };
            let len = range.len();
            self.tun_buf.copy_within(range, HEADROOM);
            let mss = if dst.is_ipv6() {
                self.mss_v6
            } else {
                self.mss_v4
            };
            if clamp_mss(&mut self.tun_buf[HEADROOM..HEADROOM + len], mss) {
                self.counters.mss_clamped += 1;
            }
            self.seal_and_send(now, peer, len, false).await;
            self.flush().await;
        }
    }

    async fn on_tun_packet(&mut self, n: usize) {
        self.counters.tun_rx += 1;
        self.counters.tun_rx_bytes += n as u64;
        let packet = &mut self.tun_buf[HEADROOM..HEADROOM + n];
        let Ok(version) = ip::version(packet) else {
            self.counters.bad_packets += 1;
            return;
        };
        let mss = match version {
            ip::IpVersion::V6 => self.mss_v6,
            _ => self.mss_v4,
        };
        if clamp_mss(packet, mss) {
            self.counters.mss_clamped += 1;
        }
        let Ok(dst) = ip::destination(packet) else {
            self.counters.bad_packets += 1;
            return;
        };
        let Some(peer) = self.gateway.route(dst) else {
            self.counters.unroutable += 1;
            return;
        };
        self.seal_and_send(Instant::now(), peer, n, false).await;
        self.flush().await;
    }

    /// Seals the packet at `HEADROOM` of the UDP buffer (`from_udp`) or the TUN buffer for
    /// `peer` and sends it.
    async fn seal_and_send(&mut self, now: Instant, peer: PeerId, len: usize, from_udp: bool) {
        let buf = if from_udp {
            &mut self.udp_buf
        } else {
            &mut self.tun_buf
        };
        match self.gateway.encapsulate(now, peer, buf, len) {
            // A peer on a TLS/QUIC fallback: queued on its connection.
            Ok((total, to)) if self.fallback.send(to, &buf[..total]) => {}
            Ok((total, to)) => match self.udp.send_to(&buf[..total], to).await {
                Ok(_) => {
                    self.counters.udp_tx += 1;
                    self.counters.udp_tx_bytes += total as u64;
                }
                Err(e) => {
                    self.counters.udp_send_errors += 1;
                    tracing::trace!("udp send to {to}: {e}");
                }
            },
            Err(SendError::NoSession) => self.counters.no_session += 1,
            Err(e) => {
                self.counters.bad_packets += 1;
                tracing::trace!("cannot seal for {}: {e}", self.clients.name(peer));
            }
        }
    }

    /// Sends what the core queued and logs its events.
    pub async fn flush(&mut self) {
        while let Some(t) = self.gateway.poll_transmit() {
            if self.fallback.send(t.destination, &t.contents) {
                continue;
            }
            match self.udp.send_to(&t.contents, t.destination).await {
                Ok(_) => {
                    self.counters.udp_tx += 1;
                    self.counters.udp_tx_bytes += t.contents.len() as u64;
                }
                Err(e) => {
                    self.counters.udp_send_errors += 1;
                    tracing::debug!("udp send to {}: {e}", t.destination);
                }
            }
        }
        while let Some(event) = self.gateway.poll_event() {
            self.log_event(event);
        }
    }

    fn log_event(&mut self, event: GatewayEvent) {
        match event {
            GatewayEvent::HandshakeCompleted {
                peer,
                endpoint,
                session_id,
            } => {
                let endpoint = self.fallback.describe(endpoint);
                let name = self.clients.name(peer);
                if self.connected.insert(peer) {
                    tracing::info!(
                        "client {name} connected from {endpoint} (session {session_id:08x})"
                    );
                } else {
                    tracing::debug!(
                        "client {name} rekeyed from {endpoint} (session {session_id:08x})"
                    );
                }
            }
            GatewayEvent::Roamed { peer, from, to } => {
                tracing::info!(
                    "client {} moved from {} to {}",
                    self.clients.name(peer),
                    self.fallback.describe(from),
                    self.fallback.describe(to)
                );
            }
            GatewayEvent::SessionExpired { peer } => {
                self.connected.remove(&peer);
                tracing::info!(
                    "client {}: session expired without a rekey",
                    self.clients.name(peer)
                );
            }
            other => tracing::debug!("{other:?}"),
        }
    }
}
