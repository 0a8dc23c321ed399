//! What `grelay status` shows: a [`StatusReport`] built from the core's
//! [`ClientStatus`] and the shell's own counters, sent as JSON over the control socket, and
//! rendered as text for people ([`render`]) or printed as JSON (`--json`).
//!
//! Durations are plain numbers in the JSON (`*_secs`, `*_ms`) so that scripts need no
//! duration parser; absent values are `null`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use grelay_proto::tunnel::DropReason;
use grelay_proto::tunnel::client::ClientStatus;
use serde::{Deserialize, Serialize};

/// Counters the shell keeps itself (the core counts only what reaches it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShellCounters {
    /// TUN packets dropped because no session was up (never sent in clear).
    pub no_session: u64,
    /// TUN packets that were not IP or did not fit the buffer.
    pub bad_packets: u64,
    /// UDP sends that failed (no route, buffer full).
    pub udp_send_errors: u64,
    /// TUN writes that failed.
    pub tun_write_errors: u64,
    /// SYNs whose MSS was lowered, both directions.
    pub mss_clamped: u64,
    /// Datagrams dropped because no transport was up (a fallback still connecting).
    #[serde(default)]
    pub no_transport: u64,
}

/// Which transport carries the session, and why (from the transport ladder).
#[derive(Debug, Clone)]
pub struct TransportInfo {
    /// `udp`, `quic`, `tls`, or `none` while connecting.
    pub name: String,
    /// The fallback's endpoint (`None` for UDP: the gateway's endpoint).
    pub endpoint: Option<std::net::SocketAddr>,
    /// Why it was chosen.
    pub reason: String,
    /// Since when.
    pub since: Duration,
    /// Transport changes so far.
    pub switches: u64,
    /// The UDP probes sent while on a fallback.
    pub udp_probes: grelay_proto::rtt::PathSnapshot,
    /// Datagrams the active link's queue dropped.
    pub queue_drops: u64,
}

/// What the shell knows besides the core's status.
#[derive(Debug, Clone)]
pub struct ShellInfo {
    /// TUN interface name.
    pub interface: String,
    /// `full` or `split`.
    pub mode: &'static str,
    /// Prefixes routed into the tunnel (split mode).
    pub routed_prefixes: usize,
    /// TUN MTU in use.
    pub mtu: u16,
    /// Time since `up` started.
    pub uptime: Duration,
    /// The core reported the gateway unreachable and no handshake has succeeded since.
    pub unreachable: bool,
    /// The shell's counters.
    pub counters: ShellCounters,
    /// The transport ladder's view (`None`: plain UDP).
    pub transport: Option<TransportInfo>,
}

/// Everything `grelay status` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// TUN interface name.
    pub interface: String,
    /// Process id of the `grelay up` process.
    pub pid: u32,
    /// `connecting`, `connected`, `configuring` or `gateway unreachable`.
    pub state: String,
    /// The gateway's endpoint.
    pub gateway: String,
    /// Transport to the gateway: `udp`, `quic`, `tls` (or `none` while connecting).
    pub transport: String,
    /// Why this transport carries the session.
    #[serde(default)]
    pub transport_reason: Option<String>,
    /// How long it has.
    #[serde(default)]
    pub transport_for_secs: Option<f64>,
    /// Transport changes since `up`.
    #[serde(default)]
    pub transport_switches: u64,
    /// UDP probes sent while a fallback carried the session.
    #[serde(default)]
    pub udp_probes_sent: u64,
    /// Of those, answered over UDP.
    #[serde(default)]
    pub udp_probes_answered: u64,
    /// RTT of the last answered UDP probe.
    #[serde(default)]
    pub udp_probe_rtt_ms: Option<f64>,
    /// Datagrams the active fallback link dropped (oldest first) because its path was slower.
    #[serde(default)]
    pub link_queue_drops: u64,
    /// Data AEAD of the current session.
    pub cipher: Option<String>,
    /// `full` or `split`.
    pub mode: String,
    /// Prefixes routed into the tunnel (split mode).
    pub routed_prefixes: usize,
    /// Virtual IPv4 address with prefix length.
    pub ipv4: Option<String>,
    /// Virtual IPv6 address with prefix length.
    pub ipv6: Option<String>,
    /// TUN MTU.
    pub mtu: u16,
    /// Our session id.
    pub session_id: Option<u32>,
    /// Age of the current keys.
    pub session_age_secs: Option<f64>,
    /// Time since the last completed handshake.
    pub last_handshake_secs: Option<f64>,
    /// Time since the first handshake.
    pub connected_for_secs: Option<f64>,
    /// Time since `up` started.
    pub uptime_secs: f64,
    /// Handshakes completed.
    pub handshakes: u64,
    /// Datagrams sent.
    pub tx_packets: u64,
    /// Bytes sent (outer datagrams).
    pub tx_bytes: u64,
    /// Authenticated datagrams received.
    pub rx_packets: u64,
    /// Bytes received (outer datagrams).
    pub rx_bytes: u64,
    /// Smoothed RTT to the gateway.
    pub rtt_ms: Option<f64>,
    /// Lowest RTT seen.
    pub rtt_min_ms: Option<f64>,
    /// Latest RTT sample.
    pub rtt_last_ms: Option<f64>,
    /// RTT jitter.
    pub jitter_ms: Option<f64>,
    /// RTT probes sent.
    pub probes_sent: u64,
    /// Probes answered in time.
    pub probes_received: u64,
    /// Probes lost.
    pub probes_lost: u64,
    /// Lost share of the decided probes, in percent.
    pub loss_percent: f64,
    /// Datagrams dropped by the core, by reason (non-zero reasons only).
    pub drops: BTreeMap<String, u64>,
    /// The shell's own counters.
    pub local: ShellCounters,
}

fn secs(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64())
}

fn millis(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64() * 1000.0)
}

impl StatusReport {
    /// Builds the report from the core's snapshot and the shell's information.
    pub fn new(core: &ClientStatus, shell: &ShellInfo) -> Self {
        let state = match (core.session_id, core.assignment) {
            (Some(_), Some(_)) => "connected",
            (Some(_), None) => "configuring",
            (None, _) if shell.unreachable => "gateway unreachable",
            (None, _) => "connecting",
        };
        let drops = DropReason::ALL
            .iter()
            .map(|&r| (r.name().to_owned(), core.drops.get(r)))
            .filter(|&(_, n)| n > 0)
            .collect();
        let path = &core.path;
        let t = shell.transport.as_ref();
        Self {
            interface: shell.interface.clone(),
            pid: std::process::id(),
            state: state.to_owned(),
            gateway: t
                .and_then(|t| t.endpoint)
                .unwrap_or(core.endpoint)
                .to_string(),
            transport: t.map_or("udp".to_owned(), |t| t.name.clone()),
            transport_reason: t.map(|t| t.reason.clone()),
            transport_for_secs: t.map(|t| t.since.as_secs_f64()),
            transport_switches: t.map_or(0, |t| t.switches),
            udp_probes_sent: t.map_or(0, |t| t.udp_probes.sent),
            udp_probes_answered: t.map_or(0, |t| t.udp_probes.received),
            udp_probe_rtt_ms: t.and_then(|t| millis(t.udp_probes.last)),
            link_queue_drops: t.map_or(0, |t| t.queue_drops),
            cipher: core.suite.map(|s| s.name().to_owned()),
            mode: shell.mode.to_owned(),
            routed_prefixes: shell.routed_prefixes,
            ipv4: core
                .assignment
                .and_then(|a| a.ipv4)
                .map(|(ip, len)| format!("{ip}/{len}")),
            ipv6: core
                .assignment
                .and_then(|a| a.ipv6)
                .map(|(ip, len)| format!("{ip}/{len}")),
            mtu: shell.mtu,
            session_id: core.session_id,
            session_age_secs: secs(core.session_age),
            last_handshake_secs: secs(core.since_last_handshake),
            connected_for_secs: secs(core.connected_for),
            uptime_secs: shell.uptime.as_secs_f64(),
            handshakes: core.handshakes,
            tx_packets: core.traffic.tx_packets,
            tx_bytes: core.traffic.tx_bytes,
            rx_packets: core.traffic.rx_packets,
            rx_bytes: core.traffic.rx_bytes,
            rtt_ms: millis(path.smoothed),
            rtt_min_ms: millis(path.min),
            rtt_last_ms: millis(path.last),
            jitter_ms: millis(path.jitter),
            probes_sent: path.sent,
            probes_received: path.received,
            probes_lost: path.lost,
            loss_percent: path.loss_ratio() * 100.0,
            drops,
            local: shell.counters,
        }
    }
}

/// `1h 02m 03s`, `4m 05s`, `42s`, `0.3s`.
pub fn human_duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "?".to_owned();
    }
    if secs < 10.0 {
        return format!("{secs:.1}s");
    }
    let total = secs as u64;
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s:02}s"),
        _ => format!("{h}h {m:02}m {s:02}s"),
    }
}

/// `512 B`, `1.50 KiB`, `3.21 MiB`, `1.02 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2} {}", UNITS[unit])
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1} ms"))
}

/// The report as `wg show`-style text.
pub fn render(r: &StatusReport) -> String {
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        let _ = writeln!(out, "  {label:<16}{value}");
    };
    let addresses: Vec<&str> = [r.ipv4.as_deref(), r.ipv6.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    let mode = match r.mode.as_str() {
        "full" => "full tunnel (leak protection on)".to_owned(),
        _ => format!(
            "split tunnel, {} prefix{}",
            r.routed_prefixes,
            if r.routed_prefixes == 1 { "" } else { "es" }
        ),
    };
    line("state:", r.state.clone());
    line("gateway:", format!("{} ({})", r.gateway, r.transport));
    if let Some(reason) = &r.transport_reason {
        let since = r
            .transport_for_secs
            .map_or(String::new(), |s| format!(" for {}", human_duration(s)));
        line("transport:", format!("{}{since}: {reason}", r.transport));
    }
    if r.udp_probes_sent > 0 {
        let rtt = r
            .udp_probe_rtt_ms
            .map_or(String::new(), |v| format!(", last rtt {v:.1} ms"));
        line(
            "udp probes:",
            format!(
                "{} sent, {} answered{rtt}",
                r.udp_probes_sent, r.udp_probes_answered
            ),
        );
    }
    line("mode:", mode);
    line(
        "address:",
        if addresses.is_empty() {
            "(not assigned yet)".to_owned()
        } else {
            addresses.join(", ")
        },
    );
    line("mtu:", r.mtu.to_string());
    if let Some(cipher) = &r.cipher {
        line("cipher:", cipher.clone());
    }
    let handshake = match r.last_handshake_secs {
        Some(s) => format!("{} ago", human_duration(s)),
        None => "never".to_owned(),
    };
    line(
        "handshake:",
        format!("{handshake} ({} completed)", r.handshakes),
    );
    if let (Some(id), Some(age)) = (r.session_id, r.session_age_secs) {
        line(
            "session:",
            format!("{id:08x}, keys {} old", human_duration(age)),
        );
    }
    if let Some(c) = r.connected_for_secs {
        line("connected for:", human_duration(c));
    }
    line(
        "transfer:",
        format!(
            "{} received ({} packets), {} sent ({} packets)",
            human_bytes(r.rx_bytes),
            r.rx_packets,
            human_bytes(r.tx_bytes),
            r.tx_packets
        ),
    );
    line(
        "rtt:",
        format!(
            "{} (min {}, last {}), jitter {}",
            ms(r.rtt_ms),
            ms(r.rtt_min_ms),
            ms(r.rtt_last_ms),
            ms(r.jitter_ms)
        ),
    );
    line(
        "loss:",
        format!(
            "{:.1}% ({} of {} probes lost)",
            r.loss_percent,
            r.probes_lost,
            r.probes_received + r.probes_lost
        ),
    );
    let mut drops: Vec<String> = r.drops.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let l = &r.local;
    for (name, n) in [
        ("no_session", l.no_session),
        ("bad_packet", l.bad_packets),
        ("udp_send_error", l.udp_send_errors),
        ("tun_write_error", l.tun_write_errors),
        ("no_transport", l.no_transport),
        ("link_queue", r.link_queue_drops),
    ] {
        if n > 0 {
            drops.push(format!("{name} {n}"));
        }
    }
    line(
        "drops:",
        if drops.is_empty() {
            "none".to_owned()
        } else {
            drops.join(", ")
        },
    );
    format!(
        "interface: {} (pid {}, up {})\n{out}",
        r.interface,
        r.pid,
        human_duration(r.uptime_secs)
    )
}

#[cfg(test)]
mod tests;
