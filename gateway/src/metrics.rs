//! What operators and supervisors see over HTTP: Prometheus metrics at `/metrics` and a
//! health check at `/healthz`, on `[metrics] listen` (default `127.0.0.1:9477`, loopback only).
//!
//! The data path is not touched: the counters stay the plain integers the core
//! ([`GatewayStats`], per-peer [`TrafficCounters`]) and the shell ([`Counters`]) keep anyway.
//! A scrape asks the event loop for a [`Snapshot`] over a channel (one more branch in its
//! `select!`, answered between two bursts of packets), copies it into `prometheus-client`
//! metrics and encodes them. The same round trip is the health check: `/healthz` answers 200
//! only while the data plane is bound and the loop answers within a second.
//!
//! The HTTP side is a few lines over tokio's `TcpListener` rather than hyper or axum: two
//! fixed GET paths, `Connection: close`, a 4 KiB request limit, a 5 s deadline per connection
//! and at most [`MAX_CONNECTIONS`] at once. That keeps the gateway's dependency tree (and its
//! build on two cores) small; a scraper or `docker`'s health check needs nothing more.
//!
//! # Metrics
//!
//! All names start with `grelay_gateway_`; counters end in `_total` (OpenMetrics text).
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `up` | gauge | | 1 while the data plane is bound and the loop answers |
//! | `build_info` | info | `version`, `public_key` | |
//! | `start_time_seconds` | gauge | | process start, Unix time |
//! | `clients` | gauge | | configured clients |
//! | `clients_connected` | gauge | | clients with a confirmed session |
//! | `sessions` | gauge | `transport` (`udp`, `tls`, `quic`) | clients with a confirmed session, by the transport of their current endpoint |
//! | `handshakes_completed_total` | counter | | |
//! | `handshakes_rejected_total` | counter | `reason` | initiations dropped: `unknown_key`, `bad_mac`, `rate_limited`, `cookie_required`, `stale_initiation`, `authentication`, `malformed` |
//! | `cookie_replies_total` | counter | | cookie replies sent under load |
//! | `drops_total` | counter | `reason` | every datagram the core dropped, by [`DropReason::name`] (`bad_mac`, `replay`, `unknown_session`, `rate_limited`, …) |
//! | `tunnel_packets_total`, `tunnel_bytes_total` | counter | `direction` (`rx`, `tx`) | authenticated datagrams from and to clients (outer sizes) |
//! | `udp_datagrams_total`, `udp_bytes_total` | counter | `direction` | everything on the UDP socket, garbage included |
//! | `tun_packets_total`, `tun_bytes_total` | counter | `direction` | inner packets read from (`rx`) and written to (`tx`) the TUN |
//! | `relay_packets_total`, `relay_bytes_total` | counter | | inner packets relayed from one client to another |
//! | `inner_drops_total` | counter | `reason` (`unroutable`, `no_session`, `bad_packet`) | inner packets that went nowhere |
//! | `errors_total` | counter | `kind` (`udp_send`, `tun_write`, `gre_send`) | failed sends |
//! | `mss_clamped_total` | counter | | TCP SYNs whose MSS was lowered |
//! | `backend_up` | gauge | `backend` | 1 while a raw GRE back end answers keepalives |
//! | `backend_frames_total` | counter | `backend`, `direction` | GRE frames to and from each back end |
//! | `backend_drops_total` | counter | `reason` (`unknown_source`, `bad_key`, `malformed`, `unroutable`) | GRE frames dropped |

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream as StdTcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use grelay_proto::backend::BackendCounters;
use grelay_proto::tunnel::gateway::GatewayStats;
use grelay_proto::tunnel::{DropCounters, DropReason, TrafficCounters};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::backends::GreCounters;
use crate::dataplane::Dataplane;
use crate::report::Counters;

/// Concurrent HTTP connections served; more are closed at once.
pub const MAX_CONNECTIONS: usize = 16;
/// How long the loop may take to answer a snapshot request before `/healthz` fails.
pub const LOOP_DEADLINE: Duration = Duration::from_secs(1);
/// Deadline for one HTTP connection, request to response.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(5);
/// Largest request head read.
const MAX_REQUEST: usize = 4096;
/// The content type of [`prometheus_client::encoding::text::encode`]'s output.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Transports a client's session can run over, as labels.
pub const TRANSPORTS: [&str; 3] = ["udp", "tls", "quic"];

/// Drop reasons an initiation can get, listed from the start so that their series exist at 0.
const HANDSHAKE_REJECTIONS: [DropReason; 7] = [
    DropReason::UnknownKey,
    DropReason::BadMac,
    DropReason::RateLimited,
    DropReason::CookieRequired,
    DropReason::StaleInitiation,
    DropReason::Authentication,
    DropReason::Malformed,
];

/// Where the gateway is in its life, as `/healthz` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Setting up.
    Starting,
    /// The UDP socket or the TUN could not be set up; retrying. Carries the error.
    NotBound(String),
    /// Bound and looping.
    Serving,
    /// Shutting down.
    Stopping,
}

/// One back end as a scrape sees it.
#[derive(Debug, Clone)]
pub struct BackendStatus {
    /// Its configured name.
    pub name: String,
    /// Whether it answers keepalives.
    pub up: bool,
    /// Its frame counters.
    pub counters: BackendCounters,
}

/// Everything a scrape reports, copied out of the event loop in one go.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Configured clients.
    pub clients: usize,
    /// Clients with a confirmed session.
    pub connected: usize,
    /// Clients with a confirmed session, by transport (in [`TRANSPORTS`] order).
    pub sessions: [usize; 3],
    /// The core's counters.
    pub stats: GatewayStats,
    /// The shell's counters.
    pub counters: Counters,
    /// Initiations dropped, by reason.
    pub handshakes_rejected: DropCounters,
    /// Authenticated traffic of all peers, present and removed.
    pub tunnel: TrafficCounters,
    /// Raw GRE back ends.
    pub backends: Vec<BackendStatus>,
    /// The GRE side's counters, when back ends are configured.
    pub gre: Option<GreCounters>,
}

/// A request for a [`Snapshot`], answered by the event loop.
pub type SnapshotRequest = oneshot::Sender<Snapshot>;

/// Copies the counters out of the data plane (called by the event loop per scrape).
pub fn snapshot(plane: &Dataplane) -> Snapshot {
    let mut tunnel = plane.retired_traffic;
    let mut sessions = [0; 3];
    for peer in plane.gateway.peers() {
        add_traffic(&mut tunnel, &peer.traffic);
        if let (true, Some(endpoint)) = (peer.connected, peer.endpoint) {
            sessions[transport_index(plane, endpoint)] += 1;
        }
    }
    let backends = plane.backends.as_ref().map_or_else(Vec::new, |b| {
        b.table
            .ids()
            .filter_map(|id| {
                Some(BackendStatus {
                    name: b.table.config(id)?.name.clone(),
                    up: b.table.is_up(id),
                    counters: b.table.counters(id).unwrap_or_default(),
                })
            })
            .collect()
    });
    Snapshot {
        clients: plane.clients.len(),
        connected: plane.connected.len(),
        sessions,
        stats: plane.gateway.stats().clone(),
        counters: plane.counters,
        handshakes_rejected: plane.handshakes_rejected.clone(),
        tunnel,
        backends,
        gre: plane.backends.as_ref().map(|b| b.counters),
    }
}

/// Which of [`TRANSPORTS`] a peer at `endpoint` uses: UDP unless it is a fallback link's
/// address, whose transport the fallback names first in its description ("tls 198.18…").
fn transport_index(plane: &Dataplane, endpoint: SocketAddr) -> usize {
    if !crate::transport::is_link_address(endpoint) {
        return 0;
    }
    let described = plane.fallback.describe(endpoint);
    match described.split_whitespace().next() {
        Some(t) if t.eq_ignore_ascii_case("quic") => 2,
        _ => 1,
    }
}

/// `total += more`, field by field.
pub fn add_traffic(total: &mut TrafficCounters, more: &TrafficCounters) {
    total.rx_packets += more.rx_packets;
    total.rx_bytes += more.rx_bytes;
    total.tx_packets += more.tx_packets;
    total.tx_bytes += more.tx_bytes;
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabel {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabel {
    transport: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabel {
    backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendDirectionLabel {
    backend: String,
    direction: &'static str,
}

type Counters1<L> = Family<L, Counter>;

/// The registry and its metrics; values are set from a [`Snapshot`] at scrape time.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    up: Gauge,
    clients: Gauge,
    clients_connected: Gauge,
    sessions: Family<TransportLabel, Gauge>,
    handshakes: Counter,
    handshakes_rejected: Counters1<ReasonLabel>,
    cookie_replies: Counter,
    drops: Counters1<ReasonLabel>,
    tunnel_packets: Counters1<DirectionLabel>,
    tunnel_bytes: Counters1<DirectionLabel>,
    udp_datagrams: Counters1<DirectionLabel>,
    udp_bytes: Counters1<DirectionLabel>,
    tun_packets: Counters1<DirectionLabel>,
    tun_bytes: Counters1<DirectionLabel>,
    relay_packets: Counter,
    relay_bytes: Counter,
    inner_drops: Counters1<ReasonLabel>,
    errors: Counters1<KindLabel>,
    mss_clamped: Counter,
    backend_up: Family<BackendLabel, Gauge>,
    backend_frames: Counters1<BackendDirectionLabel>,
    backend_drops: Counters1<ReasonLabel>,
}

/// Sets a counter to a value counted elsewhere (monotonic for the life of the process).
fn set(counter: &Counter, value: u64) {
    counter.inner().store(value, Ordering::Relaxed);
}

fn set_in<L: Clone + std::hash::Hash + Eq + std::fmt::Debug + EncodeLabelSet + Send + Sync>(
    family: &Counters1<L>,
    label: L,
    value: u64,
) {
    set(&family.get_or_create(&label), value);
}

fn gauge(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Metrics {
    /// Registers every metric; `public_key` goes into `build_info`.
    pub fn new(public_key: &str) -> Self {
        let mut registry = Registry::with_prefix("grelay_gateway");
        let m = Metrics {
            up: Gauge::default(),
            clients: Gauge::default(),
            clients_connected: Gauge::default(),
            sessions: Family::default(),
            handshakes: Counter::default(),
            handshakes_rejected: Family::default(),
            cookie_replies: Counter::default(),
            drops: Family::default(),
            tunnel_packets: Family::default(),
            tunnel_bytes: Family::default(),
            udp_datagrams: Family::default(),
            udp_bytes: Family::default(),
            tun_packets: Family::default(),
            tun_bytes: Family::default(),
            relay_packets: Counter::default(),
            relay_bytes: Counter::default(),
            inner_drops: Family::default(),
            errors: Family::default(),
            mss_clamped: Counter::default(),
            backend_up: Family::default(),
            backend_frames: Family::default(),
            backend_drops: Family::default(),
            registry: Registry::default(),
        };
        let info = Info::new(vec![
            ("version", env!("CARGO_PKG_VERSION").to_owned()),
            ("public_key", public_key.to_owned()),
        ]);
        registry.register("build", "The gateway's version and public key", info);
        let started = Gauge::<i64>::default();
        started.set(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
        );
        registry.register("start_time_seconds", "Process start, Unix time", started);
        registry.register(
            "up",
            "1 while the data plane is bound and the event loop answers",
            m.up.clone(),
        );
        registry.register("clients", "Configured clients", m.clients.clone());
        registry.register(
            "clients_connected",
            "Clients with a confirmed session",
            m.clients_connected.clone(),
        );
        registry.register(
            "sessions",
            "Clients with a confirmed session, by transport",
            m.sessions.clone(),
        );
        registry.register(
            "handshakes_completed",
            "Handshakes completed",
            m.handshakes.clone(),
        );
        registry.register(
            "handshakes_rejected",
            "Handshake initiations dropped, by reason",
            m.handshakes_rejected.clone(),
        );
        registry.register(
            "cookie_replies",
            "Cookie replies sent under load",
            m.cookie_replies.clone(),
        );
        registry.register(
            "drops",
            "Datagrams dropped by the protocol core, by reason",
            m.drops.clone(),
        );
        registry.register(
            "tunnel_packets",
            "Authenticated datagrams from (rx) and to (tx) clients",
            m.tunnel_packets.clone(),
        );
        registry.register(
            "tunnel_bytes",
            "Bytes of authenticated datagrams from (rx) and to (tx) clients",
            m.tunnel_bytes.clone(),
        );
        registry.register(
            "udp_datagrams",
            "All datagrams received (rx) and sent (tx) on the UDP socket",
            m.udp_datagrams.clone(),
        );
        registry.register(
            "udp_bytes",
            "Bytes of all datagrams on the UDP socket",
            m.udp_bytes.clone(),
        );
        registry.register(
            "tun_packets",
            "Inner packets read from (rx) and written to (tx) the TUN",
            m.tun_packets.clone(),
        );
        registry.register(
            "tun_bytes",
            "Bytes of inner packets on the TUN",
            m.tun_bytes.clone(),
        );
        registry.register(
            "relay_packets",
            "Inner packets relayed from one client to another",
            m.relay_packets.clone(),
        );
        registry.register(
            "relay_bytes",
            "Bytes of inner packets relayed from one client to another",
            m.relay_bytes.clone(),
        );
        registry.register(
            "inner_drops",
            "Inner packets that went nowhere, by reason",
            m.inner_drops.clone(),
        );
        registry.register("errors", "Failed sends and writes", m.errors.clone());
        registry.register(
            "mss_clamped",
            "TCP SYNs whose MSS was lowered",
            m.mss_clamped.clone(),
        );
        registry.register(
            "backend_up",
            "1 while a raw GRE back end answers keepalives",
            m.backend_up.clone(),
        );
        registry.register(
            "backend_frames",
            "GRE frames to (tx) and from (rx) each back end",
            m.backend_frames.clone(),
        );
        registry.register(
            "backend_drops",
            "GRE frames dropped, by reason",
            m.backend_drops.clone(),
        );
        // Series that exist from the first scrape, at 0.
        for transport in TRANSPORTS {
            m.sessions
                .get_or_create(&TransportLabel { transport })
                .set(0);
        }
        for r in HANDSHAKE_REJECTIONS {
            set_in(&m.handshakes_rejected, ReasonLabel { reason: r.name() }, 0);
        }
        for r in DropReason::ALL {
            set_in(&m.drops, ReasonLabel { reason: r.name() }, 0);
        }
        Metrics { registry, ..m }
    }

    /// Copies `s` into the metrics (`None`: the loop is not serving; only `up` changes).
    pub fn update(&self, s: Option<&Snapshot>) {
        self.up.set(i64::from(s.is_some()));
        let Some(s) = s else {
            return;
        };
        self.clients.set(gauge(s.clients));
        self.clients_connected.set(gauge(s.connected));
        for (transport, n) in TRANSPORTS.into_iter().zip(s.sessions) {
            self.sessions
                .get_or_create(&TransportLabel { transport })
                .set(gauge(n));
        }
        set(&self.handshakes, s.stats.handshakes);
        set(&self.cookie_replies, s.stats.cookie_replies);
        for r in DropReason::ALL {
            let reason = r.name();
            set_in(&self.drops, ReasonLabel { reason }, s.stats.drops.get(r));
            let rejected = s.handshakes_rejected.get(r);
            if rejected > 0 || HANDSHAKE_REJECTIONS.contains(&r) {
                set_in(&self.handshakes_rejected, ReasonLabel { reason }, rejected);
            }
        }
        let c = &s.counters;
        let pairs: [(&Counters1<DirectionLabel>, u64, u64); 5] = [
            (
                &self.tunnel_packets,
                s.tunnel.rx_packets,
                s.tunnel.tx_packets,
            ),
            (&self.tunnel_bytes, s.tunnel.rx_bytes, s.tunnel.tx_bytes),
            (&self.udp_datagrams, c.udp_rx, c.udp_tx),
            (&self.udp_bytes, c.udp_rx_bytes, c.udp_tx_bytes),
            (&self.tun_packets, c.tun_rx, c.tun_tx),
        ];
        for (family, rx, tx) in pairs {
            set_in(family, DirectionLabel { direction: "rx" }, rx);
            set_in(family, DirectionLabel { direction: "tx" }, tx);
        }
        set_in(
            &self.tun_bytes,
            DirectionLabel { direction: "rx" },
            c.tun_rx_bytes,
        );
        set_in(
            &self.tun_bytes,
            DirectionLabel { direction: "tx" },
            c.tun_tx_bytes,
        );
        set(&self.relay_packets, c.client_to_client);
        set(&self.relay_bytes, c.client_to_client_bytes);
        for (reason, v) in [
            ("unroutable", c.unroutable),
            ("no_session", c.no_session),
            ("bad_packet", c.bad_packets),
        ] {
            set_in(&self.inner_drops, ReasonLabel { reason }, v);
        }
        let gre = s.gre.unwrap_or_default();
        for (kind, v) in [
            ("udp_send", c.udp_send_errors),
            ("tun_write", c.tun_write_errors),
            ("gre_send", gre.send_errors),
        ] {
            set_in(&self.errors, KindLabel { kind }, v);
        }
        set(&self.mss_clamped, c.mss_clamped);
        if let Some(g) = s.gre {
            for (reason, v) in [
                ("unknown_source", g.unknown_source),
                ("bad_key", g.bad_key),
                ("malformed", g.malformed),
                ("unroutable", g.unroutable),
            ] {
                set_in(&self.backend_drops, ReasonLabel { reason }, v);
            }
        }
        for b in &s.backends {
            let backend = b.name.clone();
            self.backend_up
                .get_or_create(&BackendLabel {
                    backend: backend.clone(),
                })
                .set(i64::from(b.up));
            for (direction, v) in [("tx", b.counters.tx_frames), ("rx", b.counters.rx_frames)] {
                let label = BackendDirectionLabel {
                    backend: backend.clone(),
                    direction,
                };
                set_in(&self.backend_frames, label, v);
            }
        }
    }

    /// The registry in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

struct Shared {
    metrics: Metrics,
    health: watch::Receiver<Health>,
    requests: mpsc::Sender<SnapshotRequest>,
    slots: Semaphore,
}

impl Shared {
    /// Asks the loop for a snapshot; `None` unless it is serving and answers in time.
    async fn snapshot(&self) -> Option<Snapshot> {
        if *self.health.borrow() != Health::Serving {
            return None;
        }
        let ask = async {
            let (tx, rx) = oneshot::channel();
            self.requests.send(tx).await.ok()?;
            rx.await.ok()
        };
        tokio::time::timeout(LOOP_DEADLINE, ask)
            .await
            .ok()
            .flatten()
    }
}

/// The running HTTP endpoint; dropping it stops accepting.
#[derive(Debug)]
pub struct Endpoint {
    health: watch::Sender<Health>,
    local: SocketAddr,
    task: JoinHandle<()>,
}

impl Endpoint {
    /// Binds `addr` and serves `/metrics` and `/healthz` from a task on the current runtime;
    /// snapshots are asked for on `requests`.
    pub async fn start(
        addr: SocketAddr,
        metrics: Metrics,
        requests: mpsc::Sender<SnapshotRequest>,
    ) -> Result<Endpoint> {
        let listener = TcpListener::bind(addr).await.with_context(|| {
            format!(
                "binding the metrics endpoint on tcp {addr} (change [metrics] listen or \
                 GRELAY_METRICS_LISTEN, or set it to \"\" to turn the endpoint off)"
            )
        })?;
        let local = listener.local_addr().unwrap_or(addr);
        let (health, health_rx) = watch::channel(Health::Starting);
        let shared = Arc::new(Shared {
            metrics,
            health: health_rx,
            requests,
            slots: Semaphore::new(MAX_CONNECTIONS),
        });
        let task = tokio::spawn(accept_loop(listener, shared));
        Ok(Endpoint {
            health,
            local,
            task,
        })
    }

    /// Tells `/healthz` where the gateway is.
    pub fn set(&self, health: Health) {
        self.health.send_replace(health);
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE and the like: back off instead of spinning.
                tracing::debug!("metrics endpoint: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let Ok(_slot) = shared.slots.try_acquire() else {
                return; // Too many at once: closed unanswered.
            };
            let _ = tokio::time::timeout(CONNECTION_DEADLINE, serve_one(stream, &shared)).await;
        });
    }
}

/// Reads one request head and answers it.
async fn serve_one(mut stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut buf = vec![0u8; MAX_REQUEST];
    let mut len = 0;
    while len < buf.len() {
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            break;
        }
        len += n;
        if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") || buf[..len].ends_with(b"\n\n") {
            break;
        }
    }
    let head = String::from_utf8_lossy(&buf[..len]);
    let mut words = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, content_type, body) = respond(method, path, shared).await;
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(header.as_bytes()).await?;
    if method != "HEAD" {
        stream.write_all(body.as_bytes()).await?;
    }
    stream.shutdown().await
}

async fn respond(
    method: &str,
    path: &str,
    shared: &Shared,
) -> (&'static str, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    if !matches!(path, "/metrics" | "/healthz" | "/") {
        return (
            "404 Not Found",
            TEXT,
            "not found: try /metrics or /healthz\n".into(),
        );
    }
    if !matches!(method, "GET" | "HEAD") {
        return ("405 Method Not Allowed", TEXT, "only GET and HEAD\n".into());
    }
    match path {
        "/metrics" => {
            let snapshot = shared.snapshot().await;
            shared.metrics.update(snapshot.as_ref());
            ("200 OK", OPENMETRICS, shared.metrics.encode())
        }
        "/healthz" => {
            let health = shared.health.borrow().clone();
            match health {
                Health::Serving => match shared.snapshot().await {
                    Some(s) => (
                        "200 OK",
                        TEXT,
                        format!(
                            "ok: serving, {} clients, {} connected\n",
                            s.clients, s.connected
                        ),
                    ),
                    None => (
                        "503 Service Unavailable",
                        TEXT,
                        format!(
                            "unhealthy: the event loop did not answer within {LOOP_DEADLINE:?}\n"
                        ),
                    ),
                },
                Health::NotBound(why) => (
                    "503 Service Unavailable",
                    TEXT,
                    format!("unhealthy: data plane not bound: {why}\n"),
                ),
                Health::Starting => ("503 Service Unavailable", TEXT, "starting\n".into()),
                Health::Stopping => ("503 Service Unavailable", TEXT, "stopping\n".into()),
            }
        }
        _ => (
            "200 OK",
            TEXT,
            "grelay-gateway: /metrics (Prometheus), /healthz\n".into(),
        ),
    }
}

/// `grelay-gateway healthcheck`: GETs `/healthz` from `addr` (an unspecified address means
/// this host's loopback) and returns its body on 200, an error otherwise. Blocking, no runtime.
pub fn check(addr: SocketAddr, timeout: Duration) -> Result<String> {
    use std::io::{Read, Write};
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let target = SocketAddr::new(ip, addr.port());
    let mut stream = StdTcpStream::connect_timeout(&target, timeout)
        .with_context(|| format!("connecting to the health endpoint {target}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n"
    )
    .context("sending the request")?;
    let mut answer = Vec::new();
    stream
        .take(64 * 1024)
        .read_to_end(&mut answer)
        .context("reading the answer")?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.lines().next().unwrap_or("");
    if status.split_whitespace().nth(1) == Some("200") {
        Ok(body.trim().to_owned())
    } else if body.trim().is_empty() {
        anyhow::bail!("{target}: {status}")
    } else {
        anyhow::bail!("{}", body.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        let mut s = Snapshot {
            clients: 3,
            connected: 2,
            sessions: [2, 0, 0],
            ..Snapshot::default()
        };
        s.stats.handshakes = 4;
        s.stats.drops.count(DropReason::Malformed);
        s.stats.drops.count(DropReason::UnknownKey);
        s.handshakes_rejected.count(DropReason::UnknownKey);
        s.counters.udp_rx = 10;
        s.counters.udp_rx_bytes = 1000;
        s.counters.client_to_client = 5;
        s.tunnel.rx_packets = 7;
        s.backends.push(BackendStatus {
            name: "game".into(),
            up: true,
            counters: BackendCounters {
                tx_frames: 3,
                rx_frames: 1,
                keepalives: 0,
            },
        });
        s.gre = Some(GreCounters::default());
        s
    }

    #[test]
    fn encodes_the_snapshot_with_every_reason_present() {
        let m = Metrics::new("KEY");
        m.update(Some(&sample()));
        let text = m.encode();
        for line in [
            "grelay_gateway_up 1",
            "grelay_gateway_clients 3",
            "grelay_gateway_clients_connected 2",
            "grelay_gateway_sessions{transport=\"udp\"} 2",
            "grelay_gateway_handshakes_completed_total 4",
            "grelay_gateway_handshakes_rejected_total{reason=\"unknown_key\"} 1",
            "grelay_gateway_handshakes_rejected_total{reason=\"bad_mac\"} 0",
            "grelay_gateway_drops_total{reason=\"malformed\"} 1",
            "grelay_gateway_drops_total{reason=\"replay\"} 0",
            "grelay_gateway_udp_datagrams_total{direction=\"rx\"} 10",
            "grelay_gateway_udp_bytes_total{direction=\"rx\"} 1000",
            "grelay_gateway_tunnel_packets_total{direction=\"rx\"} 7",
            "grelay_gateway_relay_packets_total 5",
            "grelay_gateway_backend_up{backend=\"game\"} 1",
            "grelay_gateway_backend_frames_total{backend=\"game\",direction=\"tx\"} 3",
            "grelay_gateway_build_info{version=",
            "# EOF",
        ] {
            assert!(text.contains(line), "no {line:?} in\n{text}");
        }
        // Not serving: up goes to 0, the rest keeps its last values.
        m.update(None);
        assert!(m.encode().contains("grelay_gateway_up 0"));
    }

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test(flavor = "current_thread")]
    async fn healthz_follows_the_loop_and_metrics_serve_snapshots() {
        let (tx, mut rx) = mpsc::channel::<SnapshotRequest>(4);
        let endpoint = Endpoint::start("127.0.0.1:0".parse().unwrap(), Metrics::new("K"), tx)
            .await
            .unwrap();
        let addr = endpoint.local_addr();
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 503"));
        endpoint.set(Health::NotBound("binding UDP 192.0.2.1:4747: nope".into()));
        let r = get(addr, "/healthz").await;
        assert!(
            r.contains("503") && r.contains("data plane not bound"),
            "{r}"
        );
        // Serving, but the loop does not answer: 503 after the deadline.
        endpoint.set(Health::Serving);
        let r = get(addr, "/healthz").await;
        assert!(r.contains("503") && r.contains("did not answer"), "{r}");
        // A loop that answers.
        let answer = tokio::spawn(async move {
            while let Some(req) = rx.recv().await {
                let _ = req.send(sample());
            }
        });
        let r = get(addr, "/healthz").await;
        assert!(
            r.starts_with("HTTP/1.1 200") && r.contains("3 clients"),
            "{r}"
        );
        let r = get(addr, "/metrics?x=1").await;
        assert!(r.contains("grelay_gateway_clients 3"), "{r}");
        assert!(r.contains("application/openmetrics-text"), "{r}");
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
        let r = tokio::task::spawn_blocking(move || check(addr, Duration::from_secs(2)))
            .await
            .unwrap();
        assert!(r.unwrap().starts_with("ok: serving"));
        drop(endpoint);
        answer.abort();
    }
}
