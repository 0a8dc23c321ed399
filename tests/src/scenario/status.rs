//! `grelay status --json`, parsed: the fields `docs/client.md` lists (durations as numbers,
//! absent values as `null`). Unknown fields are ignored, so the client may add more; a renamed
//! or retyped field fails the parse with serde's message, which names it.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::Deserialize;

/// What `grelay status --json` prints.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct ClientStatus {
    /// TUN interface name.
    pub interface: String,
    /// Process id of `grelay up`.
    pub pid: u32,
    /// `connecting`, `configuring`, `connected` or `gateway unreachable`.
    pub state: String,
    /// The gateway's endpoint.
    pub gateway: String,
    /// `udp` (later also `tls`, `quic`).
    pub transport: String,
    /// Data AEAD of the current session.
    pub cipher: Option<String>,
    /// `full` or `split`.
    pub mode: String,
    /// Prefixes routed into the tunnel (split mode).
    pub routed_prefixes: usize,
    /// Virtual IPv4 address with prefix length (`10.77.0.2/16`).
    pub ipv4: Option<String>,
    /// Virtual IPv6 address with prefix length (`fd77::2/64`).
    pub ipv6: Option<String>,
    /// TUN MTU.
    pub mtu: u16,
    /// The client's session id (chosen by the client, new at every handshake).
    pub session_id: Option<u32>,
    /// Seconds since the last completed handshake.
    pub last_handshake_secs: Option<f64>,
    /// Handshakes completed since `up`.
    pub handshakes: u64,
    /// Datagrams sent.
    pub tx_packets: u64,
    /// Authenticated datagrams received.
    pub rx_packets: u64,
    /// Smoothed RTT to the gateway.
    pub rtt_ms: Option<f64>,
    /// RTT probes lost.
    pub probes_lost: u64,
    /// Datagrams the core dropped, by reason.
    pub drops: BTreeMap<String, u64>,
}

impl ClientStatus {
    /// Parses the output of `grelay status --json`.
    pub fn parse(json: &str) -> Result<ClientStatus, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// Session up and addresses assigned.
    pub fn is_connected(&self) -> bool {
        self.state == "connected"
    }

    /// The virtual IPv4 address without its prefix length.
    pub fn ipv4_addr(&self) -> Option<Ipv4Addr> {
        self.ipv4
            .as_deref()
            .and_then(|a| a.split('/').next()?.parse().ok())
    }

    /// The virtual IPv6 address without its prefix length.
    pub fn ipv6_addr(&self) -> Option<Ipv6Addr> {
        self.ipv6
            .as_deref()
            .and_then(|a| a.split('/').next()?.parse().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_json() {
        let json = r#"{"interface":"grelay0","pid":42,"state":"connected",
            "gateway":"198.18.1.2:4747","transport":"udp","cipher":"aes-256-gcm","mode":"split",
            "routed_prefixes":2,"ipv4":"10.77.0.2/16","ipv6":"fd77::2/64","mtu":1420,
            "session_id":439041101,"session_age_secs":1.5,"last_handshake_secs":1.5,
            "connected_for_secs":1.5,"uptime_secs":2.0,"handshakes":1,"tx_packets":3,
            "tx_bytes":300,"rx_packets":2,"rx_bytes":200,"rtt_ms":null,"rtt_min_ms":null,
            "rtt_last_ms":null,"jitter_ms":null,"probes_sent":0,"probes_received":0,
            "probes_lost":0,"loss_percent":0.0,"drops":{"replay":2},"local":{"no_session":0}}"#;
        let s = ClientStatus::parse(json).unwrap();
        assert!(s.is_connected());
        assert_eq!(s.ipv4_addr(), Some(Ipv4Addr::new(10, 77, 0, 2)));
        assert_eq!(s.ipv6_addr(), Some("fd77::2".parse().unwrap()));
        assert_eq!(s.session_id, Some(0x1a2b_3c4d));
        assert_eq!(s.drops.get("replay"), Some(&2));
    }
}
