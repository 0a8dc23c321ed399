//! The packet loop: one task that owns the core's [`Client`], the TUN, the UDP socket and
//! the system changes, and multiplexes them with `select!`.
//!
//! ```text
//!  UDP datagram ─→ handle_datagram (in place, reused buffer) ─→ Packet(range) ─→ clamp MSS ─→ TUN
//!  TUN packet (read at HEADROOM) ─→ clamp MSS ─→ encapsulate ─→ UDP to the gateway
//!                                                  └─ NoSession: dropped, never sent in clear
//!  timer (poll_timeout) ─→ handle_timeout
//!  control request ─→ status report / down
//!  after each: drain poll_transmit → UDP, poll_event → log, configure addresses and routes
//! ```
//!
//! Both packet buffers are allocated once; nothing is allocated per data packet. Nothing is
//! logged per packet above `trace`; each event is one line.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use grelay_io::tun::{Tun, is_link_down};
use grelay_proto::tunnel::client::{Client, ClientEvent, Received};
use grelay_proto::tunnel::{HEADROOM, SendError, TAILROOM};
use grelay_proto::wire::control::AddressAssignment;
use grelay_proto::wire::tcp_mss::{clamp_mss, mss_for_mtu};
use tokio::net::UdpSocket;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::control::{Command, Reply, Request};
use crate::net::Network;
use crate::status::{ShellCounters, ShellInfo, StatusReport};

/// Largest IP packet read from the TUN (the MTU bounds what the kernel hands us; a larger
/// buffer costs nothing).
const MAX_PACKET: usize = 65_535;
/// Receive buffer: the largest UDP payload.
const RX_BUF: usize = 65_536;
/// Smallest MTU a gateway may ask for.
const MIN_ASSIGNED_MTU: u16 = 576;

/// Why the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// `grelay down` asked.
    Down,
    /// A signal asked.
    Signal(&'static str),
}

/// The loop's state besides the core.
#[derive(Debug)]
pub struct Tunnel {
    client: Client,
    udp: UdpSocket,
    tun: Tun,
    mtu: u16,
    counters: ShellCounters,
    shell: ShellInfo,
    started: Instant,
    unreachable: bool,
}

impl Tunnel {
    /// Wraps a freshly created client; `shell` describes the interface for `status`.
    pub fn new(client: Client, udp: UdpSocket, tun: Tun, shell: ShellInfo) -> Self {
        Self {
            client,
            udp,
            mtu: tun.mtu(),
            tun,
            counters: ShellCounters::default(),
            shell,
            started: Instant::now(),
            unreachable: false,
        }
    }

    /// Runs until `down`, SIGINT or SIGTERM; an error is a failure of the TUN or of
    /// installing routes.
    pub async fn run(
        &mut self,
        network: &mut Network,
        mut commands: mpsc::Receiver<Command>,
    ) -> Result<Exit> {
        let mut rx = vec![0u8; RX_BUF];
        let mut tx = vec![0u8; HEADROOM + MAX_PACKET + TAILROOM];
        let tx_end = tx.len() - TAILROOM;
        let mut sigint = signal(SignalKind::interrupt()).context("catching SIGINT")?;
        let mut sigterm = signal(SignalKind::terminate()).context("catching SIGTERM")?;
        self.flush(network).await?;
        loop {
            let deadline = self
                .client
                .poll_timeout()
                .map(tokio::time::Instant::from_std)
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                received = self.udp.recv_from(&mut rx) => match received {
                    Ok((len, from)) => self.on_datagram(&mut rx[..len], from).await,
                    Err(e) => tracing::debug!("UDP receive failed: {e}"),
                },
                read = self.tun.recv(&mut tx[HEADROOM..tx_end]) => {
                    let len = read.context("reading from the TUN device")?;
                    self.on_tun_packet(&mut tx, len).await;
                }
                () = tokio::time::sleep_until(deadline) => {
                    self.client.handle_timeout(Instant::now());
                }
                Some(command) = commands.recv() => {
                    let down = command.request == Request::Down;
                    let reply = match command.request {
                        Request::Status => Reply {
                            status: Some(self.report()),
                            ..Reply::ok()
                        },
                        Request::Down => Reply::ok(),
                    };
                    let _ = command.reply.send(reply);
                    if down {
                        return Ok(Exit::Down);
                    }
                }
                _ = sigint.recv() => return Ok(Exit::Signal("SIGINT")),
                _ = sigterm.recv() => return Ok(Exit::Signal("SIGTERM")),
            }
            self.flush(network).await?;
        }
    }

    /// The status report for `grelay status`.
    pub fn report(&self) -> StatusReport {
        let shell = ShellInfo {
            mtu: self.mtu,
            uptime: self.started.elapsed(),
            unreachable: self.unreachable,
            counters: self.counters,
            ..self.shell.clone()
        };
        StatusReport::new(&self.client.status(Instant::now()), &shell)
    }

    /// Lowers the MSS of a TCP SYN in `packet` to what fits the tunnel.
    fn clamp(&mut self, packet: &mut [u8]) {
        let ipv6 = packet.first().is_some_and(|b| b >> 4 == 6);
        if clamp_mss(packet, mss_for_mtu(self.mtu, ipv6)) {
            self.counters.mss_clamped += 1;
        }
    }

    async fn on_datagram(&mut self, datagram: &mut [u8], from: std::net::SocketAddr) {
        match self.client.handle_datagram(Instant::now(), from, datagram) {
            Ok(Received::Packet(range)) => {
                let Some(packet) = datagram.get_mut(range) else {
                    return;
                };
                self.clamp(packet);
                if let Err(e) = self.tun.send(packet).await {
                    self.counters.tun_write_errors += 1;
                    if !is_link_down(&e) {
                        tracing::debug!("TUN write failed: {e}");
                    }
                }
            }
            Ok(Received::Nothing) => {}
            Err(reason) => tracing::trace!("dropped a datagram from {from}: {}", reason.name()),
        }
    }

    async fn on_tun_packet(&mut self, buf: &mut [u8], len: usize) {
        if len == 0 {
            return;
        }
        if let Some(packet) = buf.get_mut(HEADROOM..HEADROOM + len) {
            self.clamp(packet);
        }
        match self.client.encapsulate(Instant::now(), buf, len) {
            Ok(total) => {
                let to = self.client.endpoint();
                if let Err(e) = self.udp.send_to(&buf[..total], to).await {
                    self.counters.udp_send_errors += 1;
                    tracing::trace!("UDP send to {to} failed: {e}");
                }
            }
            Err(SendError::NoSession) => {
                self.counters.no_session += 1;
                tracing::trace!("no session: dropped a {len}-byte packet");
            }
            Err(e) => {
                self.counters.bad_packets += 1;
                tracing::trace!("dropped a {len}-byte packet from the TUN: {e}");
            }
        }
    }

    /// Sends what the core queued and acts on its events.
    async fn flush(&mut self, network: &mut Network) -> Result<()> {
        loop {
            let mut idle = true;
            while let Some(t) = self.client.poll_transmit() {
                idle = false;
                if let Err(e) = self.udp.send_to(&t.contents, t.destination).await {
                    self.counters.udp_send_errors += 1;
                    tracing::debug!("UDP send to {} failed: {e}", t.destination);
                }
            }
            while let Some(event) = self.client.poll_event() {
                idle = false;
                self.event(event, network).await?;
            }
            if idle {
                return Ok(());
            }
        }
    }

    async fn event(&mut self, event: ClientEvent, network: &mut Network) -> Result<()> {
        let endpoint = self.client.endpoint();
        match event {
            ClientEvent::HandshakeCompleted { session_id, first } => {
                self.unreachable = false;
                if first {
                    tracing::info!(
                        "handshake with {endpoint} completed (session {session_id:08x})"
                    );
                } else {
                    tracing::debug!("rekeyed with {endpoint} (session {session_id:08x})");
                }
            }
            ClientEvent::Configured(assignment) => self.configure(assignment, network).await?,
            ClientEvent::CookieReceived => {
                tracing::info!("gateway {endpoint} is under load; retrying with its cookie");
            }
            ClientEvent::GatewayUnreachable => {
                self.unreachable = true;
                tracing::warn!(
                    "gateway {endpoint} does not answer; still trying (tunnelled traffic is \
                     dropped meanwhile, never sent in clear)"
                );
            }
            ClientEvent::SessionExpired => {
                tracing::warn!("session with {endpoint} expired; handshaking again");
            }
            other => tracing::debug!("event {other:?}"),
        }
        Ok(())
    }

    async fn configure(&mut self, a: AddressAssignment, network: &mut Network) -> Result<()> {
        if a.mtu >= MIN_ASSIGNED_MTU && a.mtu < self.mtu {
            network
                .system()
                .set_mtu(self.tun.index(), a.mtu)
                .await
                .context("applying the gateway's MTU")?;
            self.mtu = a.mtu;
        }
        let warnings = network
            .configure(&a)
            .await
            .context("installing the assigned addresses and routes")?;
        let addresses: Vec<String> = [
            a.ipv4.map(|(ip, len)| format!("{ip}/{len}")),
            a.ipv6.map(|(ip, len)| format!("{ip}/{len}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        tracing::info!(
            "configured {}: address {}, mtu {}",
            self.shell.interface,
            addresses.join(" "),
            self.mtu
        );
        for warning in warnings {
            tracing::warn!("{warning}");
        }
        Ok(())
    }
}
