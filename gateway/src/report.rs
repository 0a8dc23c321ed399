//! What the gateway tells operators: counters, rate-limited drop logs and the periodic
//! one-line status. Nothing here logs per packet above `trace`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use grelay_proto::tunnel::DropReason;
use grelay_proto::tunnel::gateway::GatewayStats;

/// How often the status line is logged.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(60);
/// At most one drop line (at debug) per this interval; the rest are counted.
const DROP_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Counters the shell keeps beside the core's [`GatewayStats`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams received on the UDP socket.
    pub udp_rx: u64,
    /// Bytes of those datagrams (UDP payloads).
    pub udp_rx_bytes: u64,
    /// Datagrams sent on the UDP socket.
    pub udp_tx: u64,
    /// Bytes of those datagrams (UDP payloads).
    pub udp_tx_bytes: u64,
    /// UDP sends that failed.
    pub udp_send_errors: u64,
    /// Packets read from the TUN.
    pub tun_rx: u64,
    /// Bytes of those packets.
    pub tun_rx_bytes: u64,
    /// Packets written to the TUN.
    pub tun_tx: u64,
    /// Bytes of those packets.
    pub tun_tx_bytes: u64,
    /// TUN writes that failed (e.g. `EIO` while the link is down).
    pub tun_write_errors: u64,
    /// Packets forwarded from one client straight to another (the relay).
    pub client_to_client: u64,
    /// Bytes of those inner packets.
    pub client_to_client_bytes: u64,
    /// Packets for a tunnel address no client holds.
    pub unroutable: u64,
    /// Packets for a client with no session yet.
    pub no_session: u64,
    /// Packets that are not IP or could not be sealed for another reason.
    pub bad_packets: u64,
    /// TCP SYNs whose MSS was lowered.
    pub mss_clamped: u64,
}

/// Logs dropped datagrams at debug level, at most one line per second.
#[derive(Debug, Default)]
pub struct DropLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl DropLog {
    /// Notes one drop; logs it if the last line is old enough.
    pub fn note(&mut self, now: Instant, reason: DropReason, from: SocketAddr) {
        tracing::trace!("dropped datagram from {from}: {}", reason.name());
        if self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < DROP_LOG_INTERVAL)
        {
            self.suppressed += 1;
            return;
        }
        tracing::debug!(
            "dropped datagram from {from}: {} ({} other drops not shown since the last line)",
            reason.name(),
            self.suppressed
        );
        self.last = Some(now);
        self.suppressed = 0;
    }
}

/// The status line: clients, sessions, handshakes, traffic and drops.
pub fn status_line(
    clients: usize,
    connected: usize,
    sessions: usize,
    stats: &GatewayStats,
    c: &Counters,
) -> String {
    let drops: Vec<String> = DropReason::ALL
        .iter()
        .filter(|r| stats.drops.get(**r) > 0)
        .map(|r| format!("{}={}", r.name(), stats.drops.get(*r)))
        .collect();
    format!(
        "status: {clients} clients, {connected} connected, {sessions} sessions, {} handshakes, \
         {} cookie replies; udp in {} out {} (send errors {}); tun in {} out {} (write errors \
         {}); client-to-client {}; unroutable {}, no session {}, bad {}; mss clamped {}; \
         drops {} [{}]",
        stats.handshakes,
        stats.cookie_replies,
        c.udp_rx,
        c.udp_tx,
        c.udp_send_errors,
        c.tun_rx,
        c.tun_tx,
        c.tun_write_errors,
        c.client_to_client,
        c.unroutable,
        c.no_session,
        c.bad_packets,
        c.mss_clamped,
        stats.drops.total(),
        drops.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_lists_nonzero_drop_reasons() {
        let mut stats = GatewayStats::default();
        stats.drops.count(DropReason::BadMac);
        stats.drops.count(DropReason::BadMac);
        stats.handshakes = 3;
        let line = status_line(2, 1, 1, &stats, &Counters::default());
        assert!(line.starts_with("status: 2 clients, 1 connected, 1 sessions, 3 handshakes"));
        assert!(line.ends_with("drops 2 [bad_mac=2]"), "{line}");
    }

    #[test]
    fn drop_log_rate_limits() {
        let mut log = DropLog::default();
        let t = Instant::now();
        let from = "192.0.2.1:1".parse().unwrap();
        log.note(t, DropReason::Malformed, from);
        log.note(t, DropReason::Malformed, from);
        log.note(t + Duration::from_millis(500), DropReason::Malformed, from);
        assert_eq!(log.suppressed, 2);
        log.note(t + Duration::from_secs(1), DropReason::Malformed, from);
        assert_eq!(log.suppressed, 0);
    }
}
