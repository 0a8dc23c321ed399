//! What the gateway knows about one authorized client.

use core::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::crypto::keys::PublicKey;
use crate::tai64n::Tai64N;
use crate::tunnel::TrafficCounters;
use crate::wire::control::AddressAssignment;

/// A handle to a peer inside one [`super::Gateway`]; stays valid until the peer is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub(crate) u32);

impl PeerId {
    /// The raw index, for logs and metrics.
    pub fn index(self) -> u32 {
        self.0
    }
}

/// An authorized client as the operator configured it.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// The client's static public key: its identity.
    pub public_key: PublicKey,
    /// Optional pre-shared key for this client.
    pub psk: Option<[u8; 32]>,
    /// A human name for logs and status.
    pub name: Option<String>,
    /// The tunnel addresses this client gets (and is allowed to send from).
    pub assignment: AddressAssignment,
}

/// Live state of one peer.
#[derive(Debug)]
pub(crate) struct Peer {
    pub config: PeerConfig,
    /// Where the peer was last heard from, on an authenticated packet.
    pub endpoint: Option<SocketAddr>,
    /// The newest initiation timestamp accepted from this key.
    pub last_timestamp: Option<Tai64N>,
    /// Confirmed session (the client has sent data with it).
    pub current: Option<u32>,
    /// The session before `current`, kept for packets in flight during a rekey.
    pub previous: Option<u32>,
    /// A session from the latest handshake, not yet confirmed by the client.
    pub next: Option<u32>,
    pub last_handshake: Option<Instant>,
    pub traffic: TrafficCounters,
    pub handshakes: u64,
}

impl Peer {
    pub fn new(config: PeerConfig) -> Self {
        Self {
            config,
            endpoint: None,
            last_timestamp: None,
            current: None,
            previous: None,
            next: None,
            last_handshake: None,
            traffic: TrafficCounters::default(),
            handshakes: 0,
        }
    }

    /// Session ids this peer holds, for cleanup.
    pub fn sessions(&self) -> impl Iterator<Item = u32> {
        [self.current, self.previous, self.next]
            .into_iter()
            .flatten()
    }

    /// Whether `source` is one of this peer's tunnel addresses (anti-spoofing).
    pub fn may_send_from(&self, source: IpAddr) -> bool {
        let a = &self.config.assignment;
        match source {
            IpAddr::V4(v4) => a.ipv4.is_some_and(|(addr, _)| addr == v4),
            IpAddr::V6(v6) => a.ipv6.is_some_and(|(addr, _)| addr == v6),
        }
    }
}

/// A snapshot of one peer for status and metrics.
#[derive(Debug, Clone)]
pub struct PeerStatus {
    /// Its handle.
    pub id: PeerId,
    /// Its key.
    pub public_key: PublicKey,
    /// Its configured name.
    pub name: Option<String>,
    /// Its last authenticated address.
    pub endpoint: Option<SocketAddr>,
    /// Its tunnel addresses.
    pub assignment: AddressAssignment,
    /// Whether it has a confirmed session.
    pub connected: bool,
    /// When its last handshake completed.
    pub last_handshake: Option<Instant>,
    /// Its traffic.
    pub traffic: TrafficCounters,
    /// Handshakes it completed.
    pub handshakes: u64,
}
