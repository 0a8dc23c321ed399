//! The TLS and QUIC listeners and the task of each admitted connection.
//!
//! A connection is admitted under the caps ([`super::admission`]) as soon as it is accepted
//! (a refused TCP connection is closed at once, a refused QUIC one answered with a close).
//! It then has [`FallbackConfig::handshake_timeout`] in all to finish the TLS or QUIC
//! handshake — with the configured server name and ALPN `grelay/1` — *and* to deliver a
//! datagram the core authenticates (a valid Noise initiation); otherwise it is closed.
//! Refusals are logged through the rate-limited [`RejectLog`].

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use grelay_io::fallback::{
    ALPN, End, LinkState, Timeouts, Transport, cert, drive_quic, drive_stream, quic, tls,
};
use grelay_proto::wire::stream::DEFAULT_MAX_DATAGRAM;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::LazyConfigAcceptor;

use super::admission::{Admission, Ticket};
use super::reject::RejectLog;
use super::{EVENT_QUEUE, Event, Fallback, Link, link_address};
use crate::config::FallbackConfig;

/// An authenticated link with nothing received for this long is closed (clients send at
/// least a keepalive every 25 s).
pub const LINK_IDLE: Duration = Duration::from_secs(90);
/// A write that makes no progress for this long closes the connection.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Unsent bytes the kernel may hold for a TLS connection before the socket stops being
/// writable: beyond it, datagrams wait in the drop-oldest queue instead of a standing queue.
pub const NOTSENT_LOWAT: u32 = 16 * 1024;
/// Longest piece of a peer-chosen string (a server name) put into a log line.
const MAX_DETAIL: usize = 64;

struct Shared {
    tls: Arc<rustls::ServerConfig>,
    server_name: String,
    handshake_timeout: Duration,
    admission: Arc<Admission>,
    rejects: Arc<RejectLog>,
    tx: mpsc::Sender<Event>,
}

/// Loads or makes the certificate, binds the configured listeners and starts their tasks.
/// Returns a disabled [`Fallback`] when neither TLS nor QUIC is configured.
pub async fn start(config: &FallbackConfig, state_dir: &Path) -> Result<Fallback> {
    if config.tls_listen.is_none() && config.quic_listen.is_none() {
        return Ok(Fallback::disabled());
    }
    let identity = cert::load_or_create(
        config.cert_file.as_deref(),
        config.key_file.as_deref(),
        state_dir,
        &config.server_name,
    )
    .map_err(anyhow::Error::msg)
    .context("loading the TLS certificate")?;
    tracing::info!(
        "tls certificate {} ({}), pin {} — clients set [gateway] tls_pin to it",
        identity.cert_file.display(),
        if identity.created {
            "made now"
        } else {
            "existing"
        },
        identity.pin
    );
    let server = tls::server_config(identity.chain, identity.key).map_err(anyhow::Error::msg)?;
    let (tx, rx) = mpsc::channel(EVENT_QUEUE);
    let rejects = Arc::new(RejectLog::default());
    let context = Arc::new(Shared {
        tls: Arc::new(server.clone()),
        server_name: config.server_name.clone(),
        handshake_timeout: config.handshake_timeout,
        admission: Admission::new(config.max_connections, config.max_per_source),
        rejects: rejects.clone(),
        tx,
    });
    let mut tasks = Vec::new();
    let mut listening = Vec::new();
    if let Some(addr) = config.tls_listen {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on tcp {addr} for the TLS fallback"))?;
        tasks.push(tokio::spawn(accept_tls(listener, context.clone())));
        listening.push(format!("tls {addr}"));
    }
    if let Some(addr) = config.quic_listen {
        let quic =
            quic::server_config(server, config.max_connections).map_err(anyhow::Error::msg)?;
        let endpoint = quinn::Endpoint::server(quic, addr)
            .with_context(|| format!("listening on udp {addr} for the QUIC fallback"))?;
        tasks.push(tokio::spawn(accept_quic(endpoint, context.clone())));
        listening.push(format!("quic {addr}"));
    }
    tracing::info!(
        "listening on {} (server name {:?}, at most {} connections, {} per source, {:?} to \
         authenticate)",
        listening.join(" and "),
        config.server_name,
        config.max_connections,
        config.max_per_source,
        config.handshake_timeout
    );
    Ok(Fallback::new(rx, tasks, rejects))
}

async fn accept_tls(listener: TcpListener, cx: Arc<Shared>) {
    loop {
        let (tcp, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors or memory: wait instead of spinning.
                let any: SocketAddr = ([0, 0, 0, 0], 0).into();
                cx.rejects
                    .note("tls", "accept failed", &format!(": {e}"), any);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        match cx.admission.admit(remote) {
            Ok(ticket) => {
                tokio::spawn(tls_connection(tcp, remote, ticket, cx.clone()));
            }
            Err(refusal) => {
                // Reset rather than a graceful close: nothing lingers in TIME_WAIT here.
                let _ = socket2::SockRef::from(&tcp).set_linger(Some(Duration::ZERO));
                drop(tcp);
                cx.rejects.note("tls", refusal.reason(), "", remote);
            }
        }
    }
}

fn detail(name: Option<&str>) -> String {
    let name = name.unwrap_or("(none)");
    let cut: String = name.chars().take(MAX_DETAIL).collect();
    format!(" {cut:?}")
}

async fn tls_connection(tcp: TcpStream, remote: SocketAddr, ticket: Ticket, cx: Arc<Shared>) {
    let started = Instant::now();
    let _ = tcp.set_nodelay(true);
    let _ = socket2::SockRef::from(&tcp).set_tcp_notsent_lowat(NOTSENT_LOWAT);
    let handshake = async {
        let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp)
            .await
            .map_err(|e| ("tls handshake failed", format!(": {e}")))?;
        let hello = start.client_hello();
        if hello.server_name() != Some(cx.server_name.as_str()) {
            return Err(("wrong server name", detail(hello.server_name())));
        }
        if !hello.alpn().is_some_and(|mut it| it.any(|p| p == ALPN)) {
            return Err(("no grelay/1 ALPN", String::new()));
        }
        start
            .into_stream(cx.tls.clone())
            .await
            .map_err(|e| ("tls handshake failed", format!(": {e}")))
    };
    let stream = match tokio::time::timeout(cx.handshake_timeout, handshake).await {
        Ok(Ok(stream)) => stream,
        Ok(Err((reason, detail))) => return cx.rejects.note("tls", reason, &detail, remote),
        Err(_) => {
            return cx
                .rejects
                .note("tls", "no tls handshake in time", "", remote);
        }
    };
    let Some(link) = open_link(Transport::Tls, remote, &ticket, started, &cx).await else {
        return;
    };
    let addr = link.addr;
    let wrap = move |data| Event::Datagram { addr, data };
    let end = drive_stream(
        stream,
        &link.state,
        DEFAULT_MAX_DATAGRAM,
        link.timeouts,
        &cx.tx,
        wrap,
    )
    .await;
    close_link(Transport::Tls, remote, ticket, link, end, &cx).await;
}

async fn accept_quic(endpoint: quinn::Endpoint, cx: Arc<Shared>) {
    while let Some(incoming) = endpoint.accept().await {
        let remote = incoming.remote_address();
        match cx.admission.admit(remote) {
            Ok(ticket) => {
                tokio::spawn(quic_connection(incoming, remote, ticket, cx.clone()));
            }
            Err(refusal) => {
                incoming.refuse();
                cx.rejects.note("quic", refusal.reason(), "", remote);
            }
        }
    }
}

async fn quic_connection(
    incoming: quinn::Incoming,
    remote: SocketAddr,
    ticket: Ticket,
    cx: Arc<Shared>,
) {
    let started = Instant::now();
    let handshake = async {
        let connecting = incoming
            .accept()
            .map_err(|e| ("quic handshake failed", format!(": {e}")))?;
        let conn = connecting
            .await
            .map_err(|e| ("quic handshake failed", format!(": {e}")))?;
        let data = conn
            .handshake_data()
            .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok());
        let (name, alpn) = data.map_or((None, None), |d| (d.server_name, d.protocol));
        if name.as_deref() != Some(cx.server_name.as_str()) {
            conn.close(1u32.into(), b"server name");
            return Err(("wrong server name", detail(name.as_deref())));
        }
        if alpn.as_deref() != Some(ALPN) {
            conn.close(1u32.into(), b"alpn");
            return Err(("no grelay/1 ALPN", String::new()));
        }
        Ok(conn)
    };
    let conn = match tokio::time::timeout(cx.handshake_timeout, handshake).await {
        Ok(Ok(conn)) => conn,
        Ok(Err((reason, detail))) => return cx.rejects.note("quic", reason, &detail, remote),
        Err(_) => {
            return cx
                .rejects
                .note("quic", "no quic handshake in time", "", remote);
        }
    };
    let Some(link) = open_link(Transport::Quic, remote, &ticket, started, &cx).await else {
        return;
    };
    let addr = link.addr;
    let wrap = move |data| Event::Datagram { addr, data };
    let end = drive_quic(
        &conn,
        &link.state,
        DEFAULT_MAX_DATAGRAM,
        link.timeouts,
        &cx.tx,
        wrap,
    )
    .await;
    close_link(Transport::Quic, remote, ticket, link, end, &cx).await;
}

/// A link registered with the loop, ready to be driven.
struct Opened {
    addr: SocketAddr,
    state: Arc<LinkState>,
    timeouts: Timeouts,
}

/// Registers the link with the loop; `None` when the loop is gone.
async fn open_link(
    transport: Transport,
    remote: SocketAddr,
    ticket: &Ticket,
    started: Instant,
    cx: &Shared,
) -> Option<Opened> {
    let addr = link_address(ticket.id, remote.port());
    let state = Arc::new(LinkState::new());
    let link = Link {
        transport,
        remote,
        state: state.clone(),
    };
    cx.tx.send(Event::Opened { addr, link }).await.ok()?;
    let timeouts = Timeouts {
        handshake: Some(cx.handshake_timeout.saturating_sub(started.elapsed())),
        idle: LINK_IDLE,
        write: WRITE_TIMEOUT,
    };
    Some(Opened {
        addr,
        state,
        timeouts,
    })
}

/// Reports a link's end (a refusal if it never authenticated) and frees its place.
async fn close_link(
    transport: Transport,
    remote: SocketAddr,
    ticket: Ticket,
    link: Opened,
    end: End,
    cx: &Shared,
) {
    if !link.state.is_authenticated() {
        let (reason, detail) = match &end {
            End::HandshakeTimeout => ("no valid grelay handshake in time", String::new()),
            End::BadFrame { len } => ("bad frame", format!(" (length {len})")),
            End::PeerClosed => ("closed before a valid grelay handshake", String::new()),
            End::ReceiverGone | End::Shutdown => ("gateway shutting down", String::new()),
            other => (
                "failed before a valid grelay handshake",
                format!(": {other}"),
            ),
        };
        cx.rejects.note(transport.name(), reason, &detail, remote);
    }
    let _ = cx
        .tx
        .send(Event::Closed {
            addr: link.addr,
            end,
        })
        .await;
    drop(ticket);
}
