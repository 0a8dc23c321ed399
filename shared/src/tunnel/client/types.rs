//! The client's configuration, events, results and status snapshot.

use core::net::SocketAddr;
use core::time::Duration;

use crate::crypto::aead::CipherSuite;
use crate::crypto::keys::{PublicKey, StaticSecret};
use crate::rtt::PathSnapshot;
use crate::tunnel::timers::{KEEPALIVE_INTERVAL, PROBE_INTERVAL};
use crate::tunnel::{DropCounters, TrafficCounters};
use crate::wire::control::AddressAssignment;

/// What a client needs to know to reach its gateway.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The client's own static key.
    pub private_key: StaticSecret,
    /// The gateway's static public key, known in advance (Noise IK).
    pub gateway_key: PublicKey,
    /// Optional pre-shared key mixed into the handshake.
    pub psk: Option<[u8; 32]>,
    /// Where the gateway listens.
    pub gateway_endpoint: SocketAddr,
    /// The data AEAD to ask for.
    pub suite: CipherSuite,
    /// Idle keepalive interval.
    pub keepalive: Duration,
    /// RTT probe interval while traffic flows.
    pub probe_interval: Duration,
    /// Wall-clock time (since the Unix epoch) at the `now` given to [`Client::new`](super::Client::new); handshake
    /// timestamps are derived from it so that they only grow, even across restarts.
    pub unix_time_at_start: Duration,
}

impl ClientConfig {
    /// A config with the default timers.
    pub fn new(
        private_key: StaticSecret,
        gateway_key: PublicKey,
        gateway_endpoint: SocketAddr,
        unix_time_at_start: Duration,
    ) -> Self {
        Self {
            private_key,
            gateway_key,
            psk: None,
            gateway_endpoint,
            suite: CipherSuite::ChaCha20Poly1305,
            keepalive: KEEPALIVE_INTERVAL,
            probe_interval: PROBE_INTERVAL,
            unix_time_at_start,
        }
    }
}

/// Something the shell may want to log or show.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// A handshake completed; data can flow with the new keys.
    HandshakeCompleted {
        /// Our session id for this handshake.
        session_id: u32,
        /// True for the first handshake, false for a rekey.
        first: bool,
    },
    /// The gateway told us our tunnel addresses (first time or changed).
    Configured(AddressAssignment),
    /// The gateway demanded a cookie (it is under load); the next initiation carries mac2.
    CookieReceived,
    /// No handshake answer for [`REKEY_ATTEMPT_TIME`](crate::tunnel::timers::REKEY_ATTEMPT_TIME); retries continue.
    GatewayUnreachable,
    /// The session's keys expired without a successful rekey.
    SessionExpired,
}

/// What an incoming datagram turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// An inner IP packet at this range of the buffer, to write to the TUN.
    Packet(core::ops::Range<usize>),
    /// Handled inside the state machine (handshake, control); nothing for the TUN.
    Nothing,
}

/// A snapshot for `grelay status`.
#[derive(Debug, Clone)]
pub struct ClientStatus {
    /// Where the gateway is reached.
    pub endpoint: SocketAddr,
    /// Our current session id, if a session is up.
    pub session_id: Option<u32>,
    /// The AEAD of the current session.
    pub suite: Option<CipherSuite>,
    /// Age of the current keys.
    pub session_age: Option<Duration>,
    /// Time since the last completed handshake.
    pub since_last_handshake: Option<Duration>,
    /// Time since the first handshake of this client completed.
    pub connected_for: Option<Duration>,
    /// Tunnel addresses, once assigned.
    pub assignment: Option<AddressAssignment>,
    /// Traffic through this client.
    pub traffic: TrafficCounters,
    /// RTT, jitter and loss towards the gateway.
    pub path: PathSnapshot,
    /// Dropped datagrams by reason.
    pub drops: DropCounters,
    /// Handshakes completed.
    pub handshakes: u64,
}
