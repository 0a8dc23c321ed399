//! The packet loop: one task that owns the core's [`Client`], the TUN, the UDP socket and
//! the system changes, and multiplexes them with `select!`.
//!
//! ```text
//!  UDP datagram ─→ handle_datagram (in place, reused buffer) ─→ Packet(range) ─→ clamp MSS ─→ TUN
//!  TUN packet (read at HEADROOM) ─→ clamp MSS ─→ encapsulate ─→ UDP to the gateway
//!                                                  └─ NoSession: dropped, never sent in clear
//!  timer (poll_timeout) ─→ handle_timeout
//!  control request ─→ status report / down
//!  fallback link event ─→ datagram: as from UDP; up/down: the transport ladder
//!  after each: drain poll_transmit → the active transport, poll_event → log, configure
//! ```
//!
//! Datagrams go over the transport the [ladder](crate::transport::ladder) chose: UDP (the
//! socket, right here), or a TLS or QUIC link ([`Links`]). Over UDP both packet buffers are
//! allocated once and nothing is allocated per data packet; a fallback link copies each
//! datagram into its bounded queue. Nothing is logged per packet above `trace`; each event
//! (including every change of transport) is one line.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use grelay_io::fallback::Transport;
use grelay_io::tun::{Tun, is_link_down};
use grelay_proto::tunnel::client::{Client, ClientEvent, Received};
use grelay_proto::tunnel::{HEADROOM, SendError, TAILROOM};
use grelay_proto::wire::control::AddressAssignment;
use grelay_proto::wire::outer::{self, MessageKind};
use grelay_proto::wire::tcp_mss::{clamp_mss, mss_for_mtu};
use tokio::net::UdpSocket;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::control::{Command, Reply, Request};
use crate::net::Network;
use crate::status::{ShellCounters, ShellInfo, StatusReport, TransportInfo};
use crate::transport::ladder::{Action, Ladder};
use crate::transport::{LinkEvent, Links};

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
    udp_endpoint: std::net::SocketAddr,
    links: Links,
    ladder: Ladder,
    /// Actions of the ladder not carried out yet.
    pending: Vec<Action>,
}

impl Tunnel {
    /// Wraps a freshly created client; `shell` describes the interface for `status`; the
    /// ladder (with the actions it asked for at its start) picks among UDP and `links`.
    pub fn new(
        client: Client,
        udp: UdpSocket,
        tun: Tun,
        shell: ShellInfo,
        links: Links,
        ladder: (Ladder, Vec<Action>),
    ) -> Self {
        Self {
            udp_endpoint: client.endpoint(),
            client,
            udp,
            mtu: tun.mtu(),
            tun,
            counters: ShellCounters::default(),
            shell,
            started: Instant::now(),
            unreachable: false,
            links,
            ladder: ladder.0,
            pending: ladder.1,
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
            let deadline = [self.client.poll_timeout(), self.ladder.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
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
                    let now = Instant::now();
                    self.client.handle_timeout(now);
                    let actions = self.ladder.tick(now);
                    self.pending.extend(actions);
                }
                event = self.links.recv() => self.on_link_event(event).await,
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
        let active = self.ladder.active();
        let transport = TransportInfo {
            name: active.map_or("none".to_owned(), |t| t.name().to_owned()),
            endpoint: match active {
                Some(Transport::Udp) | None => None,
                Some(t) => self.links.endpoint(t),
            },
            reason: self.ladder.reason().to_owned(),
            since: self.ladder.since().elapsed(),
            switches: self.ladder.switches(),
            udp_probes: self.client.alternate_path(),
            queue_drops: active.map_or(0, |t| self.links.dropped(t)),
        };
        let shell = ShellInfo {
            mtu: self.mtu,
            uptime: self.started.elapsed(),
            unreachable: self.unreachable,
            counters: self.counters,
            transport: Some(transport),
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
        self.on_outer(datagram, from, Transport::Udp).await;
    }

    /// A datagram from the gateway over `transport`.
    async fn on_outer(
        &mut self,
        datagram: &mut [u8],
        from: std::net::SocketAddr,
        transport: Transport,
    ) {
        let now = Instant::now();
        let result = self.client.handle_datagram(now, from, datagram);
        if result.is_ok() && self.ladder.active() != Some(transport) {
            // Authenticated over another transport than the active one: maybe time to move.
            let actions = self.ladder.authenticated(now, transport);
            self.pending.extend(actions);
            if transport != Transport::Udp {
                self.links.authenticated(transport);
            }
        }
        match result {
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
            Ok(total) => self.send_outer(&buf[..total]).await,
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

    /// Sends an outer datagram over the active transport.
    async fn send_outer(&mut self, datagram: &[u8]) {
        match self.ladder.active() {
            Some(Transport::Udp) => {
                let to = self.udp_endpoint;
                if let Err(e) = self.udp.send_to(datagram, to).await {
                    self.counters.udp_send_errors += 1;
                    tracing::trace!("UDP send to {to} failed: {e}");
                }
            }
            Some(link) if self.links.send(link, datagram) => {}
            _ => self.counters.no_transport += 1,
        }
    }

    /// An event of a fallback link.
    async fn on_link_event(&mut self, event: LinkEvent) {
        let now = Instant::now();
        match event {
            LinkEvent::Datagram(transport, mut data) => {
                let from = self.links.endpoint(transport).unwrap_or(self.udp_endpoint);
                self.on_outer(&mut data, from, transport).await;
                if self.ladder.active() == Some(transport) {
                    self.links.authenticated(transport);
                }
            }
            LinkEvent::Up(transport) => {
                let to = self.links.endpoint(transport);
                tracing::debug!("{transport} connection to {to:?} established");
                let actions = self.ladder.link_up(now, transport);
                self.pending.extend(actions);
            }
            LinkEvent::Down(transport, why) => {
                if self.ladder.active() == Some(transport) {
                    tracing::warn!("{transport} connection to the gateway ended: {why}");
                } else {
                    tracing::debug!("{transport} connection ended: {why}");
                }
                let actions = self.ladder.link_down(now, transport);
                self.pending.extend(actions);
            }
        }
    }

    /// Carries out the ladder's actions.
    async fn apply_actions(&mut self) {
        while !self.pending.is_empty() {
            let actions = std::mem::take(&mut self.pending);
            for action in actions {
                let now = Instant::now();
                match action {
                    Action::Connect(t) => {
                        tracing::debug!("connecting {t} to {:?}", self.links.endpoint(t));
                        self.links.connect(t);
                    }
                    Action::Close(t) => self.links.close(t),
                    Action::Activate {
                        transport,
                        handshake,
                    } => {
                        let endpoint = match transport {
                            Transport::Udp => Some(self.udp_endpoint),
                            t => self.links.endpoint(t),
                        };
                        let endpoint = endpoint.map_or("?".to_owned(), |e| e.to_string());
                        tracing::info!(
                            "transport: {transport} to {endpoint} ({})",
                            self.ladder.reason()
                        );
                        if handshake
                            && (self.client.is_handshaking() || !self.client.is_established())
                        {
                            self.client.initiate_now(now);
                        } else {
                            self.client.keepalive_now(now);
                        }
                    }
                    Action::ProbeUdp => {
                        if let Some(probe) = self.client.probe_alternate_path(now) {
                            let to = self.udp_endpoint;
                            if let Err(e) = self.udp.send_to(&probe, to).await {
                                tracing::trace!("UDP probe to {to} failed: {e}");
                            }
                            // Should the probe move the gateway to UDP while its answers
                            // cannot come back, this pulls it back to the active link.
                            self.client.keepalive_now(now);
                        }
                    }
                }
            }
        }
    }

    /// Sends what the core queued and acts on its events.
    async fn flush(&mut self, network: &mut Network) -> Result<()> {
        loop {
            let mut idle = true;
            if !self.pending.is_empty() {
                idle = false;
                self.apply_actions().await;
            }
            while let Some(t) = self.client.poll_transmit() {
                idle = false;
                if outer::classify(&t.contents) == Ok(MessageKind::Initiation) {
                    self.ladder.initiation_sent(Instant::now());
                }
                self.send_outer(&t.contents).await;
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
        let endpoint = match self.ladder.active() {
            Some(t) if t != Transport::Udp => match self.links.endpoint(t) {
                Some(e) => format!("{e} ({t})"),
                None => t.to_string(),
            },
            _ => self.udp_endpoint.to_string(),
        };
        match event {
            ClientEvent::HandshakeCompleted { session_id, first } => {
                self.unreachable = false;
                self.ladder.handshake_completed(Instant::now());
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
