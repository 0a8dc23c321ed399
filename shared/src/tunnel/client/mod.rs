//! The client side: one session towards one gateway (or, later, towards another client).
//!
//! The client is always the initiator. It starts a handshake at creation, retries every
//! [`REKEY_TIMEOUT`] plus jitter, rekeys every [`REKEY_AFTER_TIME`], keeps NAT mappings open
//! with keepalives, measures RTT/jitter/loss with probes while traffic flows, and asks the
//! gateway for its tunnel addresses until it gets them.
//!
//! Calling order (see [`super`]): create with [`Client::new`], then drain
//! [`Client::poll_transmit`]; feed every datagram from the gateway to
//! [`Client::handle_datagram`], every packet from the TUN to [`Client::encapsulate`], call
//! [`Client::handle_timeout`] when [`Client::poll_timeout`] passes, and drain transmits and
//! events after each call.

use core::net::SocketAddr;
use std::collections::VecDeque;
use std::time::Instant;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::frame::{self, HEADROOM, Inner, TAILROOM};
use super::keypair::Keypair;
use super::timers::*;
use super::{DropCounters, DropReason, SendError, TrafficCounters, Transmit};
use crate::crypto::mac::{CookieJar, MacKeys};
use crate::rtt::{PathSnapshot, PathStats};
use crate::wire::control::{AddressAssignment, ControlMessage};
use crate::wire::outer::{self, MessageKind};

/// The client's protocol state. See the module doc for the calling order.
pub struct Client {
    config: ClientConfig,
    to_gateway: MacKeys,
    to_us: MacKeys,
    cookies: CookieJar,
    rng: ChaCha20Rng,
    start: Instant,
    pending: Option<Pending>,
    attempts_since: Option<Instant>,
    next_retry: Option<Instant>,
    unreachable_reported: bool,
    current: Option<Keypair>,
    previous: Option<Keypair>,
    first_connected: Option<Instant>,
    last_handshake: Option<Instant>,
    last_sent: Instant,
    last_data: Option<Instant>,
    next_probe: Option<Instant>,
    probe_seq: u32,
    unanswered_probes: u32,
    path: PathStats,
    alt_probe_seq: u32,
    alt_path: PathStats,
    assignment: Option<AddressAssignment>,
    next_config_request: Option<Instant>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<ClientEvent>,
    traffic: TrafficCounters,
    drops: DropCounters,
    handshakes: u64,
}

/// The top bit of an RTT probe's sequence number marks a probe of the alternate path
/// ([`Client::probe_alternate_path`]); the main path's probes keep it clear.
pub const ALTERNATE_PROBE_BIT: u32 = 1 << 31;

impl core::fmt::Debug for Client {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.config.gateway_endpoint)
            .field("session", &self.current.as_ref().map(|k| k.local_id))
            .finish()
    }
}

impl Client {
    /// Creates the client and queues its first handshake initiation. `seed` feeds every
    /// random choice (session ids, ephemeral keys, jitter).
    pub fn new(config: ClientConfig, now: Instant, seed: [u8; 32]) -> Self {
        let to_gateway = MacKeys::new(&config.gateway_key);
        let to_us = MacKeys::new(&config.private_key.public_key());
        let mut client = Self {
            config,
            to_gateway,
            to_us,
            cookies: CookieJar::default(),
            rng: ChaCha20Rng::from_seed(seed),
            start: now,
            pending: None,
            attempts_since: None,
            next_retry: None,
            unreachable_reported: false,
            current: None,
            previous: None,
            first_connected: None,
            last_handshake: None,
            last_sent: now,
            last_data: None,
            next_probe: None,
            probe_seq: 0,
            unanswered_probes: 0,
            path: PathStats::new(),
            alt_probe_seq: 0,
            alt_path: PathStats::new(),
            assignment: None,
            next_config_request: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            traffic: TrafficCounters::default(),
            drops: DropCounters::default(),
            handshakes: 0,
        };
        client.send_initiation(now);
        client
    }

    /// The gateway's address (as configured, or as last set by the shell).
    pub fn endpoint(&self) -> SocketAddr {
        self.config.gateway_endpoint
    }

    /// Points the client at another address for the gateway (another transport or a DNS
    /// change); the session keys stay valid.
    pub fn set_endpoint(&mut self, endpoint: SocketAddr) {
        self.config.gateway_endpoint = endpoint;
    }

    /// Whether data can be sent now.
    pub fn is_established(&self) -> bool {
        self.current.is_some()
    }

    /// The tunnel addresses, once the gateway has assigned them.
    pub fn assignment(&self) -> Option<AddressAssignment> {
        self.assignment
    }

    /// Next datagram to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event, if any.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// The earliest time at which [`Client::handle_timeout`] has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut deadlines = [None; 6];
        deadlines[0] = self.next_retry;
        if let Some(k) = &self.current {
            if self.pending.is_none() {
                deadlines[1] = Some(k.created + REKEY_AFTER_TIME);
            }
            deadlines[2] = Some(k.created + REJECT_AFTER_TIME);
            deadlines[3] = Some(self.last_sent + self.config.keepalive);
            deadlines[4] = self.next_probe;
            deadlines[5] = self.next_config_request;
        }
        deadlines.into_iter().flatten().min()
    }

    /// Runs every timer that is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire_keys(now);
        if self.pending.is_some() {
            if self.next_retry.is_some_and(|t| now >= t) {
                self.report_unreachable(now);
                self.send_initiation(now);
            }
        } else if self.current.as_ref().is_none_or(|k| k.wants_rekey(now)) {
            self.send_initiation(now);
        }
        if self.current.is_none() {
            return;
        }
        if self.next_config_request.is_some_and(|t| now >= t) {
            self.send_control(now, ControlMessage::ConfigRequest);
            self.next_config_request = Some(now + CONFIG_RETRY);
        }
        self.path.expire(now);
        self.alt_path.expire(now);
        if self.next_probe.is_some_and(|t| now >= t) {
            if self.active(now) {
                if self.unanswered_probes >= DEAD_SESSION_PROBES && self.pending.is_none() {
                    // Nothing authenticated came back for several probes: the gateway probably
                    // lost the session (restart). Keep the keys until a new handshake succeeds.
                    self.unanswered_probes = 0;
                    self.send_initiation(now);
                }
                self.send_probe(now);
                self.next_probe = Some(now + self.config.probe_interval);
            } else {
                self.next_probe = None;
            }
        }
        if now >= self.last_sent + self.config.keepalive {
            self.send_control(now, ControlMessage::Keepalive);
        }
    }

    /// Seals the IP packet at `buf[HEADROOM..HEADROOM + len]` for the gateway; returns the
    /// length of the datagram now at the start of `buf`.
    pub fn encapsulate(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        len: usize,
    ) -> Result<usize, SendError> {
        if len == 0 || buf.len() < HEADROOM + len + TAILROOM {
            return Err(SendError::BadBuffer {
                have: buf.len(),
                len,
            });
        }
        let protocol = frame::ethertype_of(&buf[HEADROOM..]).ok_or(SendError::NotIp)?;
        self.expire_keys(now);
        let Some(keys) = self.current.as_mut() else {
            if self.pending.is_none() {
                self.send_initiation(now);
            }
            return Err(SendError::NoSession);
        };
        let frame_len = frame::write_gre_header(buf, protocol, len);
        let total = keys.seal(buf, frame_len)?;
        let wants_rekey = keys.wants_rekey(now);
        self.traffic.sent(total);
        self.last_sent = now;
        self.mark_active(now);
        if wants_rekey && self.pending.is_none() {
            self.send_initiation(now);
        }
        Ok(total)
    }

    /// Processes one datagram from the network, decrypting data in place.
    ///
    /// The source address is taken for symmetry with the gateway but not used: the client
    /// trusts only what authenticates, whichever path (UDP, TLS, QUIC) it arrived on.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        _from: SocketAddr,
        buf: &mut [u8],
    ) -> Result<Received, DropReason> {
        let result = self.dispatch(now, buf);
        if let Err(reason) = result {
            self.drops.count(reason);
        }
        result
    }

    /// Whether a handshake initiation is waiting for its response.
    pub fn is_handshaking(&self) -> bool {
        self.pending.is_some()
    }

    /// Starts a fresh handshake at once, replacing any pending initiation, and queues the
    /// initiation as a [`Transmit`]. For a shell that just opened another transport (a TLS or
    /// QUIC fallback) and does not want to wait for the retry timer; a response to the
    /// replaced initiation is then ignored.
    pub fn initiate_now(&mut self, now: Instant) {
        self.send_initiation(now);
    }

    /// Queues a keepalive now, if a session is up; returns whether one was queued. A shell
    /// that moved to another transport sends one so that the gateway sees an authenticated
    /// packet from the new address at once (its endpoint moves only on those).
    pub fn keepalive_now(&mut self, now: Instant) -> bool {
        if self.current.is_none() {
            return false;
        }
        self.send_control(now, ControlMessage::Keepalive);
        true
    }

    /// Seals an RTT probe for a second path and returns the datagram, without queueing it:
    /// the shell sends it itself, e.g. over UDP while the session runs over a TLS fallback.
    /// `None` when no session is up.
    ///
    /// These probes have their own sequence space (the top bit set) and statistics
    /// ([`Client::alternate_path`]); they do not count towards the dead-session detection of
    /// the main path, and they do not delay its keepalive (they may leave through another NAT
    /// mapping than the one the keepalive keeps open). The gateway answers them like any
    /// probe: it moves the client's endpoint to the address the probe came from (it
    /// authenticated) and echoes there, so an echo that arrives proves the second path works
    /// both ways.
    pub fn probe_alternate_path(&mut self, now: Instant) -> Option<Vec<u8>> {
        let keys = self.current.as_mut()?;
        self.alt_probe_seq = self.alt_probe_seq.wrapping_add(1) | ALTERNATE_PROBE_BIT;
        let seq = self.alt_probe_seq;
        let timestamp_us = now.saturating_duration_since(self.start).as_micros() as u64;
        let message = ControlMessage::RttProbe { seq, timestamp_us };
        let (mut buf, frame_len) = frame::control_buffer(&message);
        let total = keys.seal(&mut buf, frame_len).ok()?;
        buf.truncate(total);
        self.alt_path.probe_sent(seq, now);
        self.traffic.sent(total);
        Some(buf)
    }

    /// RTT and loss of the probes sealed by [`Client::probe_alternate_path`].
    pub fn alternate_path(&self) -> PathSnapshot {
        self.alt_path.snapshot()
    }

    /// A snapshot for status displays.
    pub fn status(&self, now: Instant) -> ClientStatus {
        ClientStatus {
            endpoint: self.config.gateway_endpoint,
            session_id: self.current.as_ref().map(|k| k.local_id),
            suite: self.current.as_ref().map(|k| k.suite),
            session_age: self.current.as_ref().map(|k| k.age(now)),
            since_last_handshake: self
                .last_handshake
                .map(|t| now.saturating_duration_since(t)),
            connected_for: self
                .first_connected
                .map(|t| now.saturating_duration_since(t)),
            assignment: self.assignment,
            traffic: self.traffic,
            path: self.path.snapshot(),
            drops: self.drops.clone(),
            handshakes: self.handshakes,
        }
    }

    fn dispatch(&mut self, now: Instant, buf: &mut [u8]) -> Result<Received, DropReason> {
        match outer::classify(buf).map_err(|_| DropReason::Malformed)? {
            MessageKind::Data => self.handle_data(now, buf),
            MessageKind::Response => self.handle_response(now, buf).map(|()| Received::Nothing),
            MessageKind::CookieReply => self.handle_cookie(now, buf).map(|()| Received::Nothing),
            MessageKind::Initiation => Err(DropReason::Unexpected),
        }
    }

    fn handle_data(&mut self, now: Instant, buf: &mut [u8]) -> Result<Received, DropReason> {
        let datagram_len = buf.len();
        let receiver = outer::Data::new_checked(&buf[..])
            .map_err(|_| DropReason::Malformed)?
            .receiver();
        let keys = [self.current.as_mut(), self.previous.as_mut()]
            .into_iter()
            .flatten()
            .find(|k| k.local_id == receiver)
            .ok_or(DropReason::UnknownSession)?;
        let frame = keys.open(buf, now)?;
        self.traffic.received(datagram_len);
        self.unanswered_probes = 0;
        match frame::parse_inner(buf, frame)? {
            Inner::Ip(range) => {
                self.mark_active(now);
                Ok(Received::Packet(range))
            }
            Inner::Control(message) => {
                self.handle_control(now, message);
                Ok(Received::Nothing)
            }
        }
    }

    fn handle_control(&mut self, now: Instant, message: ControlMessage) {
        match message {
            ControlMessage::RttEcho { seq, .. } if seq & ALTERNATE_PROBE_BIT != 0 => {
                self.alt_path.echo_received(seq, now);
            }
            ControlMessage::RttEcho { seq, .. } => {
                self.path.echo_received(seq, now);
            }
            ControlMessage::RttProbe { seq, timestamp_us } => {
                self.send_control(now, ControlMessage::RttEcho { seq, timestamp_us });
            }
            ControlMessage::ConfigAssign(assignment) => {
                self.next_config_request = None;
                if self.assignment != Some(assignment) {
                    self.assignment = Some(assignment);
                    self.events.push_back(ClientEvent::Configured(assignment));
                }
            }
            ControlMessage::Keepalive | ControlMessage::ConfigRequest => {}
        }
    }

    fn expire_keys(&mut self, now: Instant) {
        if self.previous.as_ref().is_some_and(|k| k.expired(now)) {
            self.previous = None;
        }
        if self.current.as_ref().is_some_and(|k| k.expired(now)) {
            self.current = None;
            self.next_probe = None;
            self.events.push_back(ClientEvent::SessionExpired);
        }
    }

    fn send_probe(&mut self, now: Instant) {
        self.probe_seq = self.probe_seq.wrapping_add(1) & !ALTERNATE_PROBE_BIT;
        self.unanswered_probes = self.unanswered_probes.saturating_add(1);
        let timestamp_us = now.saturating_duration_since(self.start).as_micros() as u64;
        self.path.probe_sent(self.probe_seq, now);
        self.send_control(
            now,
            ControlMessage::RttProbe {
                seq: self.probe_seq,
                timestamp_us,
            },
        );
    }

    fn send_control(&mut self, now: Instant, message: ControlMessage) {
        let Some(keys) = self.current.as_mut() else {
            return;
        };
        let (mut buf, frame_len) = frame::control_buffer(&message);
        let Ok(total) = keys.seal(&mut buf, frame_len) else {
            return;
        };
        buf.truncate(total);
        self.last_sent = now;
        self.traffic.sent(total);
        self.transmits.push_back(Transmit {
            destination: self.config.gateway_endpoint,
            contents: buf,
        });
    }

    fn mark_active(&mut self, now: Instant) {
        self.last_data = Some(now);
        if self.next_probe.is_none() && self.current.is_some() {
            self.next_probe = Some(now);
        }
    }

    fn active(&self, now: Instant) -> bool {
        self.last_data
            .is_some_and(|t| now.saturating_duration_since(t) < ACTIVE_WINDOW)
    }
}

mod handshake;
mod types;

pub use types::{ClientConfig, ClientEvent, ClientStatus, Received};

use handshake::Pending;

#[cfg(test)]
mod tests;
