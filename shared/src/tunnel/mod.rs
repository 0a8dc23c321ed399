//! The session state machines: [`client::Client`] and [`gateway::Gateway`].
//!
//! Both follow quinn-proto's shape. The shell owns the sockets, the TUN device and the clock;
//! the state machine owns every protocol decision:
//!
//! ```text
//!            datagram from socket                     IP packet from TUN
//!                   │                                        │
//!   handle_datagram(now, from, &mut buf)        encapsulate(now, &mut buf, len)
//!                   │                                        │
//!     Ok(Packet(range)) → write buf[range] to TUN   Ok(len) → send buf[..len] to the peer
//!
//!   then, after every call that may have changed state:
//!     while let Some(t) = poll_transmit() { send t.contents to t.destination }
//!     while let Some(e) = poll_event()    { log / update status }
//!     arm a timer for poll_timeout(); when it fires call handle_timeout(now)
//! ```
//!
//! The data path works in place in the caller's buffer: an outgoing IP packet is placed at
//! [`HEADROOM`] and the buffer must have [`TAILROOM`] spare bytes after it; an incoming datagram
//! is decrypted where it lies and the inner packet's range is returned. Nothing is allocated
//! per data packet. Handshake and control messages, which are rare, are queued as
//! [`Transmit`]s with their own small allocation.

pub mod client;
mod frame;
pub mod gateway;
mod keypair;
#[cfg(test)]
mod test_pair;
pub mod timers;

pub use frame::{HEADROOM, TAILROOM};

use core::net::SocketAddr;

/// A datagram the state machine wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub destination: SocketAddr,
    /// The whole UDP payload (or the datagram to frame on a TLS/QUIC transport).
    pub contents: Vec<u8>,
}

/// Why an incoming datagram was dropped. Every drop changes no session state (no counter
/// movement, no endpoint update, no reply larger than the request); the shells count them by
/// reason for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// Not a well-formed outer message (type, reserved bytes, exact length).
    Malformed,
    /// mac1 (or, under load, mac2) did not verify.
    BadMac,
    /// No session has the receiver id the message names.
    UnknownSession,
    /// The counter was seen already or is too old for the replay window.
    Replay,
    /// The session's keys are older than the reject limit.
    Expired,
    /// The AEAD tag or the Noise handshake did not authenticate.
    Authentication,
    /// A valid handshake from a key that is not authorized here.
    UnknownKey,
    /// A handshake initiation not newer than the last one from the same key (a replay).
    StaleInitiation,
    /// Too many handshakes from this source while under load.
    RateLimited,
    /// The gateway was under load and the initiation carried no valid cookie; a cookie reply
    /// was sent instead of doing the handshake.
    CookieRequired,
    /// The decrypted frame is not a GRE frame this tunnel carries.
    BadInnerFrame,
    /// The inner packet's source address is not one the sending peer may use (anti-spoofing).
    SourceNotAllowed,
    /// A message that this side never expects (a response at the gateway, a stray cookie reply).
    Unexpected,
}

impl DropReason {
    /// Every reason, for metrics that list all labels from the start.
    pub const ALL: [DropReason; 13] = [
        Self::Malformed,
        Self::BadMac,
        Self::UnknownSession,
        Self::Replay,
        Self::Expired,
        Self::Authentication,
        Self::UnknownKey,
        Self::StaleInitiation,
        Self::RateLimited,
        Self::CookieRequired,
        Self::BadInnerFrame,
        Self::SourceNotAllowed,
        Self::Unexpected,
    ];

    /// A stable snake_case name, used as a metrics label and in logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::BadMac => "bad_mac",
            Self::UnknownSession => "unknown_session",
            Self::Replay => "replay",
            Self::Expired => "expired",
            Self::Authentication => "authentication",
            Self::UnknownKey => "unknown_key",
            Self::StaleInitiation => "stale_initiation",
            Self::RateLimited => "rate_limited",
            Self::CookieRequired => "cookie_required",
            Self::BadInnerFrame => "bad_inner_frame",
            Self::SourceNotAllowed => "source_not_allowed",
            Self::Unexpected => "unexpected",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// Drop counters by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropCounters([u64; DropReason::ALL.len()]);

impl DropCounters {
    /// Counts one drop.
    pub fn count(&mut self, reason: DropReason) {
        self.0[reason.index()] += 1;
    }

    /// Drops counted for `reason`.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason.index()]
    }

    /// All drops.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

/// Why an outgoing packet could not be sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// No session is established yet (a handshake is under way or will be started).
    #[error("no session with the peer yet")]
    NoSession,
    /// The buffer lacks headroom or tailroom, or the packet is empty.
    #[error("buffer of {have} bytes cannot hold a {len}-byte packet with headroom and tailroom")]
    BadBuffer {
        /// Bytes in the buffer.
        have: usize,
        /// Length of the inner packet.
        len: usize,
    },
    /// The packet is neither IPv4 nor IPv6.
    #[error("not an IP packet")]
    NotIp,
    /// The peer this packet is for does not exist (any more).
    #[error("unknown peer")]
    UnknownPeer,
}

/// Traffic counters of one session or peer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficCounters {
    /// Datagrams sent.
    pub tx_packets: u64,
    /// Bytes sent (outer datagram sizes).
    pub tx_bytes: u64,
    /// Authenticated datagrams received.
    pub rx_packets: u64,
    /// Bytes received (outer datagram sizes).
    pub rx_bytes: u64,
}

impl TrafficCounters {
    fn sent(&mut self, bytes: usize) {
        self.tx_packets += 1;
        self.tx_bytes += bytes as u64;
    }

    fn received(&mut self, bytes: usize) {
        self.rx_packets += 1;
        self.rx_bytes += bytes as u64;
    }
}
