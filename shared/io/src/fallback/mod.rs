//! The TLS-over-TCP and QUIC fallbacks: what the client and the gateway share.
//!
//! Both fallbacks carry the same outer datagrams as UDP (the Noise handshake and the
//! sessions do not change), only framed differently: behind a 2-byte length in TLS 1.3, in
//! RFC 9221 DATAGRAM frames in QUIC (see `docs/protocol.md` §8).
//!
//! | module | what |
//! |---|---|
//! | [`tls`] | TLS 1.3 client and server configurations (rustls, ring), certificate pins |
//! | [`cert`] | the gateway's self-signed certificate, made on first start |
//! | [`quic`] | quinn client and server configurations |
//! | [`queue`] | the bounded drop-oldest queue of outgoing datagrams |
//! | [`link`] | drivers that run one TLS stream or QUIC connection |

pub mod cert;
pub mod link;
pub mod queue;
pub mod quic;
pub mod tls;

pub use link::{End, LinkState, Timeouts, drive_quic, drive_stream};
pub use queue::DatagramQueue;
pub use tls::{ALPN, DEFAULT_SERVER_NAME, Pin, Trust};

/// Which transport carries the outer datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// Plain UDP, the fast path.
    Udp,
    /// QUIC datagrams.
    Quic,
    /// TLS 1.3 over TCP.
    Tls,
}

impl Transport {
    /// Every transport, in the default order of preference.
    pub const ALL: [Transport; 3] = [Transport::Udp, Transport::Quic, Transport::Tls];

    /// The configuration and status spelling: `udp`, `quic`, `tls`.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Quic => "quic",
            Transport::Tls => "tls",
        }
    }

    /// Parses [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<Transport> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
