//! The TLS-over-TCP and QUIC fallbacks of the gateway.
//!
//! Listener tasks accept connections ([`listen`]), admit them under the caps
//! ([`admission`]), run the TLS or QUIC handshake with a time limit and then one driver task
//! per connection ([`grelay_io::fallback::link`]). Everything a connection carries reaches
//! the event loop as an [`Event`] on one bounded channel; the loop feeds each datagram to the
//! core's `Gateway::handle_datagram` like a UDP one and sends each of the core's datagrams for
//! a link into that link's drop-oldest queue. The core stays transport-agnostic.
//!
//! # Link addresses
//!
//! The core knows a peer by the address its last authenticated datagram came from, and the
//! shell must tell from that address alone whether to answer over UDP or over which
//! connection. A TCP peer's address is not enough for that: TCP and UDP port numbers are
//! separate spaces, so a client's TLS connection and another client's UDP flow behind the
//! same NAT can share `address:port`. Each admitted connection is therefore named by a
//! **link address**, `[64:ff9b:1:N::]:port` with `N` the connection's number (unique among
//! open connections) and `port` its real source port: an address from the local-use NAT64
//! prefix (RFC 8215), which no UDP datagram from the internet carries. Logs show the real
//! address ([`Fallback::describe`]); a datagram for the link address of a connection that has
//! closed is dropped, never sent over UDP. Each link address is its own /64, so the core's
//! per-source handshake limit applies per connection (and the connections per source are
//! capped here).

pub mod admission;
pub mod listen;
pub mod reject;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::Arc;

use grelay_io::fallback::{End, LinkState, Transport};
use tokio::sync::mpsc;

use self::reject::RejectLog;

/// Depth of the channel from the connections to the loop (datagrams of at most 2 KiB each).
pub const EVENT_QUEUE: usize = 1024;

/// The link address of connection `id` whose real source port is `port`.
pub fn link_address(id: u16, port: u16) -> SocketAddr {
    SocketAddr::V6(SocketAddrV6::new(
        Ipv6Addr::new(0x64, 0xff9b, 1, id, 0, 0, 0, 0),
        port,
        0,
        0,
    ))
}

/// Whether `addr` is a link address (of an open or a closed connection).
pub fn is_link_address(addr: SocketAddr) -> bool {
    match addr.ip() {
        IpAddr::V6(v6) => v6.segments()[..3] == [0x64, 0xff9b, 1],
        IpAddr::V4(_) => false,
    }
}

/// One open connection, as the loop sees it.
#[derive(Debug, Clone)]
pub struct Link {
    /// TLS or QUIC.
    pub transport: Transport,
    /// Where the connection comes from.
    pub remote: SocketAddr,
    /// Shared with the connection's driver.
    pub state: Arc<LinkState>,
}

/// What the connections tell the loop.
#[derive(Debug)]
pub enum Event {
    /// A connection finished its TLS/QUIC handshake and may carry datagrams.
    Opened {
        /// Its link address.
        addr: SocketAddr,
        /// Its handle.
        link: Link,
    },
    /// A datagram arrived on a connection.
    Datagram {
        /// The connection's link address (the `from` for the core).
        addr: SocketAddr,
        /// The outer datagram.
        data: Vec<u8>,
    },
    /// A connection ended.
    Closed {
        /// Its link address.
        addr: SocketAddr,
        /// Why.
        end: End,
    },
}

/// Counters of the fallbacks, for the status line.
#[derive(Debug, Clone, Copy, Default)]
pub struct FallbackCounters {
    /// Connections that finished the TLS or QUIC handshake.
    pub opened: u64,
    /// Datagrams received on links.
    pub rx: u64,
    /// Datagrams queued for links.
    pub tx: u64,
    /// Datagrams for a link that had closed (dropped).
    pub tx_closed: u64,
}

/// The fallback listeners and the open links; empty when none is configured.
#[derive(Debug, Default)]
pub struct Fallback {
    links: HashMap<SocketAddr, Link>,
    events: Option<mpsc::Receiver<Event>>,
    listeners: Vec<tokio::task::JoinHandle<()>>,
    /// Refusals, shared with the listeners.
    pub rejects: Arc<RejectLog>,
    /// Counters.
    pub counters: FallbackCounters,
}

impl Drop for Fallback {
    fn drop(&mut self) {
        for task in &self.listeners {
            task.abort();
        }
        for link in self.links.values() {
            link.state.shutdown();
        }
    }
}

impl Fallback {
    /// No fallback listeners.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Wraps running listeners that report on `events`.
    pub fn new(
        events: mpsc::Receiver<Event>,
        listeners: Vec<tokio::task::JoinHandle<()>>,
        rejects: Arc<RejectLog>,
    ) -> Self {
        Self {
            links: HashMap::new(),
            events: Some(events),
            listeners,
            rejects,
            counters: FallbackCounters::default(),
        }
    }

    /// Whether any fallback listens.
    pub fn is_enabled(&self) -> bool {
        self.events.is_some()
    }

    /// Open links.
    pub fn links(&self) -> usize {
        self.links.len()
    }

    /// The next event; never returns when no fallback is configured.
    pub async fn recv(&mut self) -> Event {
        match self.events.as_mut() {
            Some(rx) => match rx.recv().await {
                Some(e) => e,
                None => std::future::pending().await,
            },
            None => std::future::pending().await,
        }
    }

    /// An event that is already waiting.
    pub fn try_recv(&mut self) -> Option<Event> {
        self.events.as_mut()?.try_recv().ok()
    }

    /// If `to` is a link address, queues `datagram` on that link (or drops it when the link
    /// has closed) and returns true; false means `to` is a UDP address. Costs one comparison
    /// for UDP addresses.
    pub fn send(&mut self, to: SocketAddr, datagram: &[u8]) -> bool {
        if !is_link_address(to) {
            return false;
        }
        match self.links.get(&to) {
            Some(link) => {
                link.state.queue.push(datagram.to_vec());
                self.counters.tx += 1;
            }
            None => self.counters.tx_closed += 1,
        }
        true
    }

    /// Registers an opened connection.
    pub fn opened(&mut self, addr: SocketAddr, link: Link) {
        self.counters.opened += 1;
        tracing::debug!(
            "{} connection from {} open (link {addr})",
            link.transport,
            canonical(link.remote)
        );
        if let Some(old) = self.links.insert(addr, link) {
            old.state.shutdown();
        }
    }

    /// Forgets a closed connection; logs the end of an authenticated one.
    pub fn closed(&mut self, addr: SocketAddr, end: &End) {
        let Some(link) = self.links.remove(&addr) else {
            return;
        };
        if link.state.is_authenticated() {
            tracing::info!(
                "{} connection from {} closed: {end}",
                link.transport,
                canonical(link.remote)
            );
        }
    }

    /// Marks the link at `addr` authenticated (the core accepted a datagram from it).
    pub fn authenticate(&mut self, addr: SocketAddr) {
        self.counters.rx += 1;
        if let Some(link) = self.links.get(&addr) {
            link.state.authenticate();
        }
    }

    /// `addr` for a log line: `198.18.2.2:40000` for UDP, `tls 198.18.2.2:51234` for a link.
    pub fn describe(&self, addr: SocketAddr) -> String {
        match self.links.get(&addr) {
            Some(link) => format!("{} {}", link.transport, canonical(link.remote)),
            None if is_link_address(addr) => format!("a closed fallback connection ({addr})"),
            None => canonical(addr).to_string(),
        }
    }
}

/// `a.b.c.d:port` for an IPv4 peer seen through a dual-stack socket.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

impl crate::dataplane::Dataplane {
    /// Handles `first` and the link events already waiting behind it (at most
    /// [`BURST`](crate::dataplane::BURST) in all, so the other inputs get their turn).
    pub async fn on_link_events(&mut self, first: Event) {
        let mut next = Some(first);
        let mut handled = 0;
        while let Some(event) = next {
            match event {
                Event::Opened { addr, link } => self.fallback.opened(addr, link),
                Event::Datagram { addr, data } => {
                    if self.on_link_datagram(addr, &data).await {
                        self.fallback.authenticate(addr);
                    }
                }
                Event::Closed { addr, end } => self.fallback.closed(addr, &end),
            }
            handled += 1;
            next = if handled < crate::dataplane::BURST {
                self.fallback.try_recv()
            } else {
                None
            };
        }
    }
}

/// The pin of the gateway's TLS certificate, made now (in the state directory) if it does not
/// exist yet, so that it can be handed to clients before the first start; `None` when
/// neither fallback is configured.
pub fn tls_pin(config: &crate::Config) -> anyhow::Result<Option<grelay_io::fallback::Pin>> {
    let f = &config.fallback;
    if f.tls_listen.is_none() && f.quic_listen.is_none() {
        return Ok(None);
    }
    let dir = config
        .state_file
        .parent()
        .unwrap_or(std::path::Path::new("."));
    let identity = grelay_io::fallback::cert::load_or_create(
        f.cert_file.as_deref(),
        f.key_file.as_deref(),
        dir,
        &f.server_name,
    )
    .map_err(anyhow::Error::msg)?;
    Ok(Some(identity.pin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_addresses_are_recognised_and_distinct() {
        let a = link_address(0, 443);
        let b = link_address(1, 443);
        assert!(is_link_address(a) && is_link_address(b) && a != b);
        for udp in [
            "198.18.2.2:443",
            "[2001:db8::1]:443",
            "[::ffff:198.18.2.2]:443",
        ] {
            assert!(!is_link_address(udp.parse().unwrap()), "{udp}");
        }
        assert_eq!(a.to_string(), "[64:ff9b:1::]:443");
    }

    #[test]
    fn sends_only_link_addresses_and_drops_for_closed_links() {
        let mut f = Fallback::disabled();
        assert!(!f.send("198.18.2.2:4000".parse().unwrap(), b"x"));
        let addr = link_address(3, 1000);
        assert!(
            f.send(addr, b"x"),
            "closed link: dropped, not sent over UDP"
        );
        assert_eq!(f.counters.tx_closed, 1);
        let state = Arc::new(LinkState::new());
        let remote: SocketAddr = "198.18.2.2:1000".parse().unwrap();
        f.opened(
            addr,
            Link {
                transport: Transport::Tls,
                remote,
                state: state.clone(),
            },
        );
        assert!(f.send(addr, b"hello"));
        assert_eq!(state.queue.pop(), Some(b"hello".to_vec()));
        assert_eq!(f.describe(addr), "tls 198.18.2.2:1000");
        f.authenticate(addr);
        assert!(state.is_authenticated());
        f.closed(addr, &End::Idle);
        assert_eq!(f.links(), 0);
        assert!(f.describe(addr).contains("closed"));
    }
}
