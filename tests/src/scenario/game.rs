//! The game server: a host running the UDP reflector (`grt-udp reflect`, which answers each
//! datagram with the sender's address as the server saw it) and a TCP sink (`grt-tcp sink`,
//! which answers each connection with the byte count and SHA-256 of what it received), plus the
//! client-side calls that use them: [`udp_probe`] and [`tcp_transfer`].

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use super::bins::{Binaries, arg};
use crate::netns::{Error, Host, Namespace, Process, Result, wait_until};

/// The reflector's UDP port.
pub const GAME_UDP_PORT: u16 = 5000;
/// The sink's TCP port.
pub const GAME_TCP_PORT: u16 = 5001;
/// How long the services may take to open their sockets.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Time limit of one probe (10 tries 200 ms apart, and slack).
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);
/// Time limit of one transfer.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(60);

/// A game server on its host, both services listening on all addresses (IPv4 and IPv6).
#[derive(Debug)]
pub struct GameServer {
    reflector: Process,
    sink: Process,
    host: Host,
}

impl GameServer {
    /// Starts both services on `host`, logging into `dir`, and waits until they listen.
    pub fn start(host: Host, dir: &Path) -> Result<GameServer> {
        let bins = Binaries::get()?;
        let (udp, tcp) = (arg(bins.udp_tool()), arg(bins.tcp_tool()));
        let ns = host.ns();
        let reflector = ns.spawn(
            &[&udp, "reflect", &format!("[::]:{GAME_UDP_PORT}")],
            dir.join("game-udp.log"),
        )?;
        let sink = ns.spawn(
            &[&tcp, "sink", &format!("[::]:{GAME_TCP_PORT}")],
            dir.join("game-tcp.log"),
        )?;
        for (process, line) in [(&reflector, "reflecting on"), (&sink, "sinking on")] {
            if !wait_until(READY_TIMEOUT, || process.log().contains(line)) {
                return Err(Error::WaitTimeout {
                    what: format!("the game server's {line:?}: {}", process.log()),
                    timeout: READY_TIMEOUT,
                });
            }
        }
        Ok(GameServer {
            reflector,
            sink,
            host,
        })
    }

    /// The host.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The host's namespace.
    pub fn ns(&self) -> &Namespace {
        self.host.ns()
    }

    /// The reflector's UDP address on `ip` (e.g. `self.host().v6().into()`).
    pub fn udp_at(&self, ip: IpAddr) -> SocketAddr {
        SocketAddr::new(ip, GAME_UDP_PORT)
    }

    /// The reflector's IPv4 UDP address.
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_at(self.host.v4().into())
    }

    /// The sink's IPv4 TCP address.
    pub fn tcp_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host.v4().into(), GAME_TCP_PORT)
    }

    /// The server's IPv4 network as a prefix (`10.99.K.0/24`), for clients' routes.
    pub fn v4_prefix(&self) -> String {
        let [a, b, c, _] = self.host.v4().octets();
        format!("{a}.{b}.{c}.0/24")
    }

    /// The server's IPv6 network as a prefix (`fd00:99:K::/64`), for clients' routes.
    pub fn v6_prefix(&self) -> String {
        let s = self.host.v6().segments();
        format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
    }

    /// The reflector's log (what it saw).
    pub fn reflector_log(&self) -> String {
        self.reflector.log()
    }

    /// The sink's log: one line per transfer with its size and digest.
    pub fn sink_log(&self) -> String {
        self.sink.log()
    }
}

/// Sends a UDP probe from `ns` (from a fresh port) to `dest` and returns the source address
/// the reflector saw, or `None` if none of its 10 tries was answered.
pub fn udp_probe(ns: &Namespace, dest: SocketAddr) -> Result<Option<SocketAddr>> {
    let tool = arg(Binaries::get()?.udp_tool());
    let bind = if dest.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let out = ns.exec(&[&tool, "probe", bind, &dest.to_string()], PROBE_TIMEOUT)?;
    match out.status.code() {
        Some(0) => {
            let text = String::from_utf8_lossy(&out.stdout);
            text.trim()
                .parse()
                .map(Some)
                .map_err(|_| Error::Invalid(format!("grt-udp printed {text:?}")))
        }
        Some(1) => Ok(None),
        _ => Err(Error::Invalid(format!(
            "grt-udp probe failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))),
    }
}

/// The outcome of a [`tcp_transfer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// `"<bytes> <sha256>"` of what was sent.
    pub sent: String,
    /// `"<bytes> <sha256>"` of what the sink received (empty if it never answered).
    pub received: String,
}

impl Transfer {
    /// The sink received exactly what was sent.
    pub fn intact(&self) -> bool {
        !self.sent.is_empty() && self.sent == self.received
    }
}

/// Sends `bytes` of a pseudo-random stream made from `seed` over TCP from `ns` to the sink at
/// `dest` and returns both sides' byte counts and SHA-256 digests.
pub fn tcp_transfer(ns: &Namespace, dest: SocketAddr, bytes: u64, seed: u64) -> Result<Transfer> {
    let tool = arg(Binaries::get()?.tcp_tool());
    let args = [
        &*tool,
        "send",
        &dest.to_string(),
        &bytes.to_string(),
        &seed.to_string(),
    ];
    let out = ns.exec(&args, TRANSFER_TIMEOUT)?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    match out.status.code() {
        Some(0 | 1) => Ok(Transfer {
            sent: field("sent "),
            received: field("received "),
        }),
        _ => Err(Error::Invalid(format!(
            "grt-tcp send to {dest} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))),
    }
}
