//! QUIC settings for the fallback (quinn): datagrams on, at most one unidirectional stream
//! each way (for datagrams too large for the path's current QUIC datagram size), no
//! bidirectional streams, small bounded buffers.

use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{IdleTimeout, TransportConfig, VarInt};

/// Idle limit of a QUIC connection (the client sends QUIC keepalives well inside it).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// QUIC-level keepalive of the client: keeps NAT mappings open on a quiet tunnel.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Bytes of incoming datagrams quinn buffers before dropping.
const DATAGRAM_RECEIVE_BUFFER: usize = 256 * 1024;
/// Bytes of outgoing datagrams quinn buffers (it drops the oldest beyond).
const DATAGRAM_SEND_BUFFER: usize = 64 * 1024;

fn transport(keep_alive: bool) -> TransportConfig {
    let mut t = TransportConfig::default();
    t.max_concurrent_bidi_streams(VarInt::from_u32(0))
        .max_concurrent_uni_streams(VarInt::from_u32(1))
        .datagram_receive_buffer_size(Some(DATAGRAM_RECEIVE_BUFFER))
        .datagram_send_buffer_size(DATAGRAM_SEND_BUFFER)
        .stream_receive_window(VarInt::from_u32(256 * 1024))
        .receive_window(VarInt::from_u32(512 * 1024))
        .send_window(256 * 1024)
        .max_idle_timeout(IdleTimeout::try_from(IDLE_TIMEOUT).ok())
        .keep_alive_interval(keep_alive.then_some(KEEP_ALIVE));
    t
}

/// The gateway's QUIC configuration around its TLS configuration (which must offer TLS 1.3
/// and ALPN, as [`super::tls::server_config`] does); at most `max_incoming` handshakes at
/// once.
pub fn server_config(
    tls: rustls::ServerConfig,
    max_incoming: usize,
) -> Result<quinn::ServerConfig, String> {
    let crypto = QuicServerConfig::try_from(tls).map_err(|e| format!("QUIC with TLS: {e}"))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config
        .transport_config(Arc::new(transport(false)))
        .max_incoming(max_incoming.max(1))
        .incoming_buffer_size(64 * 1024)
        .incoming_buffer_size_total(4 * 1024 * 1024);
    Ok(config)
}

/// The client's QUIC configuration around its TLS configuration.
pub fn client_config(tls: rustls::ClientConfig) -> Result<quinn::ClientConfig, String> {
    let crypto = QuicClientConfig::try_from(tls).map_err(|e| format!("QUIC with TLS: {e}"))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(transport(true)));
    Ok(config)
}
