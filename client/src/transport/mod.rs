//! The client's transports besides UDP: TLS over TCP and QUIC connections to the gateway
//! ([`Links`]), and the [`ladder`] that decides which transport carries the session.
//!
//! Each fallback connection runs in its own task: it connects (its socket carries grelay's
//! firewall mark, like the UDP socket, so it bypasses the tunnel's routes and the kill
//! switch), completes TLS 1.3 or QUIC with the gateway's certificate checked against the pin
//! or CA, and then moves outer datagrams with [`grelay_io::fallback::link`]'s drivers. The
//! packet loop hears about it through one channel of [`LinkEvent`]s and sends through the
//! link's drop-oldest queue. UDP stays in the loop itself, untouched.

pub mod ladder;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use grelay_io::fallback::{LinkState, Timeouts, Transport, drive_quic, drive_stream, quic, tls};
use grelay_proto::wire::stream::DEFAULT_MAX_DATAGRAM;
use rustls::pki_types::ServerName;
use tokio::sync::mpsc;

/// A connection attempt that takes longer is abandoned.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// An open link with nothing received for this long ends (the session's keepalives and the
/// ladder's timers normally act long before).
const LINK_IDLE: Duration = Duration::from_secs(120);
/// A write that makes no progress for this long ends the link.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Unsent bytes the kernel may hold for the TLS socket (the rest waits, drop-oldest, in the
/// link's queue rather than as a standing queue in the kernel).
const NOTSENT_LOWAT: u32 = 16 * 1024;
/// Depth of the channel from the links to the loop.
const EVENT_QUEUE: usize = 256;

/// Everything needed to open a fallback connection.
#[derive(Debug, Clone)]
pub struct Settings {
    /// TLS client configuration (pin/CA, TLS 1.3, ALPN).
    pub tls: Arc<rustls::ClientConfig>,
    /// QUIC client configuration around the same TLS settings.
    pub quic: quinn::ClientConfig,
    /// Server name to ask for.
    pub server_name: String,
    /// Where the TLS fallback listens.
    pub tls_endpoint: Option<SocketAddr>,
    /// Where the QUIC fallback listens.
    pub quic_endpoint: Option<SocketAddr>,
    /// Firewall mark of the sockets.
    pub mark: u32,
}

impl Settings {
    /// Builds the TLS and QUIC configurations for `trust`.
    pub fn new(
        trust: &grelay_io::fallback::Trust,
        server_name: String,
        tls_endpoint: Option<SocketAddr>,
        quic_endpoint: Option<SocketAddr>,
        mark: u32,
    ) -> Result<Self> {
        let tls = tls::client_config(trust).map_err(anyhow::Error::msg)?;
        let quic = quic::client_config(tls.clone()).map_err(anyhow::Error::msg)?;
        ServerName::try_from(server_name.clone())
            .map_err(|_| anyhow::anyhow!("server name {server_name:?} is not a DNS name"))?;
        Ok(Self {
            tls: Arc::new(tls),
            quic,
            server_name,
            tls_endpoint,
            quic_endpoint,
            mark,
        })
    }

    /// The endpoint of `transport`.
    pub fn endpoint(&self, transport: Transport) -> Option<SocketAddr> {
        match transport {
            Transport::Tls => self.tls_endpoint,
            Transport::Quic => self.quic_endpoint,
            Transport::Udp => None,
        }
    }
}

/// What a link tells the loop.
#[derive(Debug)]
pub enum LinkEvent {
    /// The connection completed its TLS/QUIC handshake.
    Up(Transport),
    /// A datagram arrived.
    Datagram(Transport, Vec<u8>),
    /// The connection failed or ended, with why.
    Down(Transport, String),
}

/// One connection (attempt) per fallback transport.
#[derive(Debug)]
struct Slot {
    generation: u64,
    task: tokio::task::JoinHandle<()>,
    state: Arc<LinkState>,
    up: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.state.shutdown();
        // Give the driver a moment to say goodbye (TLS close_notify, QUIC close), then stop.
        let task = self.task.abort_handle();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    task.abort();
                });
            }
            Err(_) => task.abort(),
        }
    }
}

/// The fallback connections of one client.
#[derive(Debug)]
pub struct Links {
    settings: Option<Arc<Settings>>,
    slots: HashMap<Transport, Slot>,
    tx: mpsc::Sender<(u64, LinkEvent)>,
    rx: mpsc::Receiver<(u64, LinkEvent)>,
    next_generation: u64,
}

impl Links {
    /// Links opened with `settings` (`None`: UDP only, nothing is ever opened).
    pub fn new(settings: Option<Settings>) -> Self {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        Self {
            settings: settings.map(Arc::new),
            slots: HashMap::new(),
            tx,
            rx,
            next_generation: 0,
        }
    }

    /// Starts connecting `transport` (replacing any connection it has).
    pub fn connect(&mut self, transport: Transport) {
        let Some(settings) = self.settings.clone() else {
            return;
        };
        let Some(endpoint) = settings.endpoint(transport) else {
            return;
        };
        self.next_generation += 1;
        let generation = self.next_generation;
        let state = Arc::new(LinkState::new());
        let tx = self.tx.clone();
        let task = tokio::spawn(run(
            transport,
            endpoint,
            settings,
            state.clone(),
            generation,
            tx,
        ));
        // Dropping the old slot closes the old connection.
        self.slots.insert(
            transport,
            Slot {
                generation,
                task,
                state,
                up: false,
            },
        );
    }

    /// Closes `transport`'s connection or attempt.
    pub fn close(&mut self, transport: Transport) {
        self.slots.remove(&transport);
    }

    /// Queues `datagram` on `transport`'s link; false if it is not up.
    pub fn send(&self, transport: Transport, datagram: &[u8]) -> bool {
        match self.slots.get(&transport) {
            Some(slot) if slot.up => {
                slot.state.queue.push(datagram.to_vec());
                true
            }
            _ => false,
        }
    }

    /// Marks `transport`'s link as carrying an authenticated session (for its timeouts).
    pub fn authenticated(&self, transport: Transport) {
        if let Some(slot) = self.slots.get(&transport) {
            slot.state.authenticate();
        }
    }

    /// The endpoint `transport` connects to.
    pub fn endpoint(&self, transport: Transport) -> Option<SocketAddr> {
        self.settings.as_ref()?.endpoint(transport)
    }

    /// Datagrams dropped by `transport`'s queue (its path was slower than the tunnel).
    pub fn dropped(&self, transport: Transport) -> u64 {
        self.slots
            .get(&transport)
            .map_or(0, |s| s.state.queue.dropped())
    }

    /// The next event of a current connection (events of replaced ones are skipped).
    pub async fn recv(&mut self) -> LinkEvent {
        loop {
            let Some((generation, event)) = self.rx.recv().await else {
                return std::future::pending().await;
            };
            let transport = match &event {
                LinkEvent::Up(t) | LinkEvent::Datagram(t, _) | LinkEvent::Down(t, _) => *t,
            };
            let Some(slot) = self.slots.get_mut(&transport) else {
                continue;
            };
            if slot.generation != generation {
                continue;
            }
            match event {
                LinkEvent::Up(_) => slot.up = true,
                LinkEvent::Down(..) => {
                    self.slots.remove(&transport);
                }
                LinkEvent::Datagram(..) => {}
            }
            return event;
        }
    }
}

/// A TCP connection with grelay's mark, `TCP_NODELAY` and a small unsent-bytes limit.
async fn tcp_connect(endpoint: SocketAddr, mark: u32) -> std::io::Result<tokio::net::TcpStream> {
    let socket = if endpoint.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket2::SockRef::from(&socket).set_mark(mark)?;
    socket.set_nodelay(true)?;
    let stream = socket.connect(endpoint).await?;
    let _ = socket2::SockRef::from(&stream).set_tcp_notsent_lowat(NOTSENT_LOWAT);
    Ok(stream)
}

/// A QUIC endpoint on a fresh UDP socket with grelay's mark.
fn quic_endpoint(endpoint: SocketAddr, mark: u32) -> Result<quinn::Endpoint> {
    let bind: SocketAddr = if endpoint.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = std::net::UdpSocket::bind(bind).context("binding the QUIC socket")?;
    socket2::SockRef::from(&socket)
        .set_mark(mark)
        .context("marking the QUIC socket")?;
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        None,
        socket,
        Arc::new(quinn::TokioRuntime),
    )
    .context("starting the QUIC endpoint")
}

async fn run(
    transport: Transport,
    endpoint: SocketAddr,
    settings: Arc<Settings>,
    state: Arc<LinkState>,
    generation: u64,
    tx: mpsc::Sender<(u64, LinkEvent)>,
) {
    let timeouts = Timeouts {
        handshake: None,
        idle: LINK_IDLE,
        write: WRITE_TIMEOUT,
    };
    let wrap = move |d| (generation, LinkEvent::Datagram(transport, d));
    let name = ServerName::try_from(settings.server_name.clone());
    let end = match transport {
        Transport::Tls => {
            let connect = async {
                let name = name.map_err(std::io::Error::other)?;
                let tcp = tcp_connect(endpoint, settings.mark).await?;
                tokio_rustls::TlsConnector::from(settings.tls.clone())
                    .connect(name, tcp)
                    .await
            };
            match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
                Ok(Ok(stream)) => {
                    let _ = tx.send((generation, LinkEvent::Up(transport))).await;
                    drive_stream(stream, &state, DEFAULT_MAX_DATAGRAM, timeouts, &tx, wrap)
                        .await
                        .to_string()
                }
                Ok(Err(e)) => format!("connecting: {e}"),
                Err(_) => format!("no connection within {CONNECT_TIMEOUT:?}"),
            }
        }
        Transport::Quic => {
            let connect = async {
                let quic = quic_endpoint(endpoint, settings.mark)?;
                let connecting = quic
                    .connect_with(settings.quic.clone(), endpoint, &settings.server_name)
                    .context("connecting")?;
                let conn = connecting.await.context("connecting")?;
                anyhow::Ok((quic, conn))
            };
            match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
                Ok(Ok((_quic, conn))) => {
                    let _ = tx.send((generation, LinkEvent::Up(transport))).await;
                    drive_quic(&conn, &state, DEFAULT_MAX_DATAGRAM, timeouts, &tx, wrap)
                        .await
                        .to_string()
                }
                Ok(Err(e)) => format!("{e:#}"),
                Err(_) => format!("no connection within {CONNECT_TIMEOUT:?}"),
            }
        }
        Transport::Udp => return,
    };
    let _ = tx.send((generation, LinkEvent::Down(transport, end))).await;
}
