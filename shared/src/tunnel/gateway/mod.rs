//! The gateway side: many clients on one socket, keyed by session id, not by address.
//!
//! Each client's datagrams name the session id the gateway chose at handshake time, so many
//! clients behind one NAT and clients whose address changes are all told apart. A peer's
//! endpoint moves only on a packet that authenticated (roaming). The inner source address of
//! every decrypted packet must be one the peer was assigned (anti-spoofing), and
//! [`Gateway::route`] answers which peer owns an inner destination, so the shell can send
//! client-to-client traffic straight back into the tunnel.
//!
//! Calling order: as in [`super`]; in addition the shell calls [`Gateway::add_peer`] /
//! [`Gateway::remove_peer`] when the authorized keys change.

mod data;
mod handshake;
mod peer;

pub use peer::{PeerConfig, PeerId, PeerStatus};

use core::net::{IpAddr, SocketAddr};
use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use self::peer::Peer;
use super::frame::{self, HEADROOM, TAILROOM};
use super::keypair::Keypair;
use super::timers::{HOUSEKEEPING_INTERVAL, SESSION_FORGET_TIME};
use super::{DropCounters, DropReason, SendError, Transmit};
use crate::crypto::keys::{PublicKey, StaticSecret};
use crate::crypto::mac::{CookieChecker, MacKeys};
use crate::ratelimit::RateLimiter;
use crate::router::{IpPrefix, PrefixTable};
use crate::wire::outer::{self, MessageKind};

/// Gateway-wide settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The gateway's static key; clients know its public half.
    pub private_key: StaticSecret,
    /// Initiations per second above which the gateway is "under load" and demands cookies.
    pub load_threshold: u32,
    /// Handshakes per second allowed from one source address while under load.
    pub per_source_rate: u32,
    /// Burst allowed above `per_source_rate`.
    pub per_source_burst: u32,
}

impl GatewayConfig {
    /// Defaults: under load above 1000 initiations/s; 20/s with a burst of 5 per source.
    pub fn new(private_key: StaticSecret) -> Self {
        Self {
            private_key,
            load_threshold: 1000,
            per_source_rate: 20,
            per_source_burst: 5,
        }
    }
}

/// What an incoming datagram turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// An inner IP packet from `peer` at this range of the buffer: route it by destination.
    Packet {
        /// The authenticated sender.
        peer: PeerId,
        /// Where the packet lies in the buffer.
        range: core::ops::Range<usize>,
    },
    /// Handled inside the state machine (handshake, control); nothing to route.
    Nothing,
}

/// Something the shell may want to log or count.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GatewayEvent {
    /// A client completed a handshake.
    HandshakeCompleted {
        /// Which client.
        peer: PeerId,
        /// From where.
        endpoint: SocketAddr,
        /// The session id we chose.
        session_id: u32,
    },
    /// A client's address changed, seen on an authenticated packet.
    Roamed {
        /// Which client.
        peer: PeerId,
        /// Its previous address.
        from: SocketAddr,
        /// Its new address.
        to: SocketAddr,
    },
    /// A client's keys expired without a rekey.
    SessionExpired {
        /// Which client.
        peer: PeerId,
    },
}

/// Gateway-wide counters.
#[derive(Debug, Clone, Default)]
pub struct GatewayStats {
    /// Handshakes completed.
    pub handshakes: u64,
    /// Cookie replies sent.
    pub cookie_replies: u64,
    /// Dropped datagrams by reason.
    pub drops: DropCounters,
}

struct Session {
    peer: PeerId,
    keys: Keypair,
}

/// The gateway's protocol state for all clients. See the module doc for the calling order.
pub struct Gateway {
    config: GatewayConfig,
    public_key: PublicKey,
    mac_keys: MacKeys,
    cookies: CookieChecker,
    limiter: RateLimiter,
    rng: ChaCha20Rng,
    peers: Vec<Option<Peer>>,
    by_key: HashMap<PublicKey, PeerId>,
    sessions: HashMap<u32, Session>,
    routes: PrefixTable<PeerId>,
    load_window: (Instant, u32),
    next_housekeeping: Instant,
    transmits: VecDeque<Transmit>,
    events: VecDeque<GatewayEvent>,
    stats: GatewayStats,
}

impl core::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Gateway")
            .field("public_key", &self.public_key)
            .field("peers", &self.by_key.len())
            .field("sessions", &self.sessions.len())
            .finish()
    }
}

impl Gateway {
    /// Creates a gateway with no peers. `seed` feeds every random choice.
    pub fn new(config: GatewayConfig, now: Instant, seed: [u8; 32]) -> Self {
        let mut rng = ChaCha20Rng::from_seed(seed);
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        let public_key = config.private_key.public_key();
        let limiter = RateLimiter::new(config.per_source_rate, config.per_source_burst, 1 << 16);
        Self {
            mac_keys: MacKeys::new(&public_key),
            public_key,
            cookies: CookieChecker::new(secret, now),
            limiter,
            rng,
            peers: Vec::new(),
            by_key: HashMap::new(),
            sessions: HashMap::new(),
            routes: PrefixTable::new(),
            load_window: (now, 0),
            next_housekeeping: now + HOUSEKEEPING_INTERVAL,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: GatewayStats::default(),
            config,
        }
    }

    /// The gateway's public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// Authorizes a client (or updates its config, keeping its session); returns its handle.
    pub fn add_peer(&mut self, config: PeerConfig) -> PeerId {
        if let Some(&id) = self.by_key.get(&config.public_key) {
            self.unroute(id);
            if let Some(peer) = self.peer_mut(id) {
                peer.config = config;
            }
            self.route_peer(id);
            return id;
        }
        let slot = self.peers.iter().position(Option::is_none);
        let id = PeerId(slot.unwrap_or(self.peers.len()) as u32);
        self.by_key.insert(config.public_key, id);
        let peer = Some(Peer::new(config));
        match slot {
            Some(i) => self.peers[i] = peer,
            None => self.peers.push(peer),
        }
        self.route_peer(id);
        id
    }

    /// Revokes a client: its sessions end at once and its packets are dropped from now on.
    pub fn remove_peer(&mut self, key: &PublicKey) -> Option<PeerId> {
        let id = self.by_key.remove(key)?;
        self.unroute(id);
        if let Some(peer) = self.peers.get_mut(id.0 as usize).and_then(Option::take) {
            for session in peer.sessions() {
                self.sessions.remove(&session);
            }
        }
        Some(id)
    }

    /// The handle of the client with this key.
    pub fn peer_by_key(&self, key: &PublicKey) -> Option<PeerId> {
        self.by_key.get(key).copied()
    }

    /// Which client owns this tunnel address: where client-to-client traffic goes.
    pub fn route(&self, destination: IpAddr) -> Option<PeerId> {
        self.routes.lookup(destination).map(|(_, id)| *id)
    }

    /// Status of every peer.
    pub fn peers(&self) -> impl Iterator<Item = PeerStatus> + '_ {
        self.peers.iter().enumerate().filter_map(|(i, p)| {
            p.as_ref().map(|p| PeerStatus {
                id: PeerId(i as u32),
                public_key: p.config.public_key,
                name: p.config.name.clone(),
                endpoint: p.endpoint,
                assignment: p.config.assignment,
                connected: p.current.is_some(),
                last_handshake: p.last_handshake,
                traffic: p.traffic,
                handshakes: p.handshakes,
            })
        })
    }

    /// Gateway-wide counters.
    pub fn stats(&self) -> &GatewayStats {
        &self.stats
    }

    /// Number of live sessions (confirmed or not).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Next datagram to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event, if any.
    pub fn poll_event(&mut self) -> Option<GatewayEvent> {
        self.events.pop_front()
    }

    /// When [`Gateway::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        Some(self.next_housekeeping)
    }

    /// Housekeeping: rotates the cookie secret, forgets old sessions, trims the rate limiter.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now < self.next_housekeeping {
            return;
        }
        self.next_housekeeping = now + HOUSEKEEPING_INTERVAL;
        if self.cookies.needs_rotation(now) {
            let mut secret = [0u8; 32];
            self.rng.fill_bytes(&mut secret);
            self.cookies.rotate(secret, now);
        }
        self.limiter.gc(now);
        self.expire_sessions(now);
    }

    /// Processes one datagram from `from`, decrypting data in place.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        buf: &mut [u8],
    ) -> Result<Received, DropReason> {
        let result = match outer::classify(buf) {
            Err(_) => Err(DropReason::Malformed),
            Ok(MessageKind::Data) => self.handle_data(now, from, buf),
            Ok(MessageKind::Initiation) => self
                .handle_initiation(now, from, buf)
                .map(|()| Received::Nothing),
            Ok(MessageKind::Response | MessageKind::CookieReply) => Err(DropReason::Unexpected),
        };
        if let Err(reason) = result {
            self.stats.drops.count(reason);
        }
        result
    }

    /// Seals the IP packet at `buf[HEADROOM..HEADROOM + len]` for `peer`; returns the datagram
    /// length and where to send it.
    pub fn encapsulate(
        &mut self,
        now: Instant,
        peer: PeerId,
        buf: &mut [u8],
        len: usize,
    ) -> Result<(usize, SocketAddr), SendError> {
        if len == 0 || buf.len() < HEADROOM + len + TAILROOM {
            return Err(SendError::BadBuffer {
                have: buf.len(),
                len,
            });
        }
        let protocol = frame::ethertype_of(&buf[HEADROOM..]).ok_or(SendError::NotIp)?;
        let frame_len = frame::write_gre_header(buf, protocol, len);
        self.seal_for(now, peer, buf, frame_len)
    }

    fn expire_sessions(&mut self, now: Instant) {
        let mut forgotten = Vec::new();
        self.sessions.retain(|&sid, s| {
            let keep = s.keys.age(now) < SESSION_FORGET_TIME;
            if !keep {
                forgotten.push((s.peer, sid));
            }
            keep
        });
        for (id, sid) in forgotten {
            let Some(peer) = self.peer_mut(id) else {
                continue;
            };
            for slot in [&mut peer.current, &mut peer.previous, &mut peer.next] {
                if *slot == Some(sid) {
                    *slot = None;
                }
            }
        }
        let expired: Vec<PeerId> = self
            .peers
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let p = p.as_ref()?;
                let sid = p.current?;
                self.sessions
                    .get(&sid)
                    .filter(|s| s.keys.expired(now))
                    .map(|_| PeerId(i as u32))
            })
            .collect();
        for id in expired {
            if let Some(peer) = self.peer_mut(id) {
                if let Some(sid) = peer.current.take() {
                    self.sessions.remove(&sid);
                }
                self.events
                    .push_back(GatewayEvent::SessionExpired { peer: id });
            }
        }
    }

    fn route_peer(&mut self, id: PeerId) {
        let Some(a) = self.peer_ref(id).map(|p| p.config.assignment) else {
            return;
        };
        for addr in [
            a.ipv4.map(|(v4, _)| IpAddr::V4(v4)),
            a.ipv6.map(|(v6, _)| IpAddr::V6(v6)),
        ]
        .into_iter()
        .flatten()
        {
            self.routes.insert(IpPrefix::from(addr), id);
        }
    }

    fn unroute(&mut self, id: PeerId) {
        let stale: Vec<IpPrefix> = self
            .routes
            .iter()
            .filter(|(_, v)| **v == id)
            .map(|(p, _)| p)
            .collect();
        for prefix in stale {
            self.routes.remove(&prefix);
        }
    }

    fn peer_ref(&self, id: PeerId) -> Option<&Peer> {
        self.peers.get(id.0 as usize).and_then(Option::as_ref)
    }

    fn peer_mut(&mut self, id: PeerId) -> Option<&mut Peer> {
        self.peers.get_mut(id.0 as usize).and_then(Option::as_mut)
    }

    fn fresh_session_id(&mut self) -> u32 {
        loop {
            let id = self.rng.next_u32();
            if !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }
}

#[cfg(test)]
mod tests;
