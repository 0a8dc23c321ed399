//! A deterministic network simulator for the protocol core.
//!
//! One gateway and many clients exchange datagrams over links with loss, duplication and
//! delay jitter (which reorders), all driven by a virtual clock and one seeded RNG, so every
//! run with the same seed is identical. Clients can sit behind shared public addresses (many
//! laptops behind one NAT) and can be rebound to a new public address mid-session (a NAT
//! dropping its mapping). The "game server" behind the gateway echoes every packet back, so
//! data flows both ways; every inner packet carries a unique id so that a duplicate delivery
//! would be seen.
//!
//! No sockets and no real time: this is the core under test, not the shells.

mod traffic;

pub use traffic::{SERVER_IP, packet_id, udp_packet};

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use grelay_proto::crypto::keys::StaticSecret;
use grelay_proto::tunnel::client::{Client, ClientConfig, Received as ClientReceived};
use grelay_proto::tunnel::gateway::{
    Gateway, GatewayConfig, PeerConfig, PeerId, Received as GatewayReceived,
};
use grelay_proto::tunnel::{HEADROOM, TAILROOM};
use grelay_proto::wire::control::AddressAssignment;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// How a link mistreats datagrams.
#[derive(Debug, Clone, Copy)]
pub struct LinkProfile {
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a datagram is delivered twice.
    pub duplicate: f64,
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Extra random delay, uniform in `0..jitter`; larger than the send interval, it reorders.
    pub jitter: Duration,
}

/// A datagram on the simulated wire.
#[derive(Debug, Clone)]
pub struct Datagram {
    /// Sender's (public) address.
    pub from: SocketAddr,
    /// Destination address.
    pub to: SocketAddr,
    /// UDP payload.
    pub bytes: Vec<u8>,
}

/// One simulated laptop.
pub struct SimClient {
    /// The protocol state under test.
    pub client: Client,
    /// The address the gateway sees (the NAT's mapping).
    pub public: SocketAddr,
    /// The gateway's handle for this client.
    pub peer: PeerId,
    /// Ids of echo replies received, to detect duplicates.
    pub received: HashSet<u64>,
    /// Replies that arrived twice (must stay zero).
    pub duplicates: u64,
    /// Packets sent so far.
    pub sent: u64,
}

/// The simulated world.
pub struct Sim {
    /// Virtual now.
    pub now: Instant,
    /// Virtual start of the run.
    pub start: Instant,
    rng: ChaCha8Rng,
    /// The link profile for every datagram.
    pub profile: LinkProfile,
    /// The gateway under test.
    pub gateway: Gateway,
    /// Where the gateway listens.
    pub gateway_addr: SocketAddr,
    /// All clients.
    pub clients: Vec<SimClient>,
    by_peer: HashMap<PeerId, usize>,
    in_flight: BinaryHeap<Reverse<(Instant, u64)>>,
    wire: HashMap<u64, Datagram>,
    next_seq: u64,
    /// Ids the game server saw, per client index.
    pub server_received: Vec<HashSet<u64>>,
    /// Packets the server saw twice (must stay zero).
    pub server_duplicates: u64,
    /// Client-to-gateway datagrams that the gateway accepted, for replay attacks.
    pub accepted_at_gateway: Vec<Datagram>,
    /// Interval between application packets per client.
    pub send_interval: Duration,
    next_send: Instant,
}

impl Sim {
    /// A world with `clients` laptops, spread over public addresses `per_nat` at a time
    /// (clients sharing an address differ by port).
    pub fn new(seed: u64, clients: usize, per_nat: usize, profile: LinkProfile) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let now = Instant::now();
        let gw_secret = StaticSecret::from_bytes(random32(&mut rng));
        let gateway_addr: SocketAddr = "198.18.0.1:4789".parse().expect("literal address");
        let mut gateway = Gateway::new(
            GatewayConfig::new(gw_secret.clone()),
            now,
            random32(&mut rng),
        );
        let mut list = Vec::with_capacity(clients);
        let mut by_peer = HashMap::new();
        for i in 0..clients {
            let secret = StaticSecret::from_bytes(random32(&mut rng));
            let host = (i / per_nat.max(1)) as u8 + 2;
            let assignment = AddressAssignment {
                ipv4: Some((
                    Ipv4Addr::new(10, 77, (i / 250) as u8, (i % 250) as u8 + 2),
                    16,
                )),
                ipv6: None,
                mtu: 1420,
            };
            let peer = gateway.add_peer(PeerConfig {
                public_key: secret.public_key(),
                psk: None,
                name: Some(format!("client-{i}")),
                assignment,
            });
            by_peer.insert(peer, i);
            let config = ClientConfig::new(
                secret,
                gw_secret.public_key(),
                gateway_addr,
                Duration::from_secs(1_700_000_000),
            );
            list.push(SimClient {
                client: Client::new(config, now, random32(&mut rng)),
                public: SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::new(198, 18, 100, host)),
                    40_000 + i as u16,
                ),
                peer,
                received: HashSet::new(),
                duplicates: 0,
                sent: 0,
            });
        }
        let mut sim = Self {
            now,
            start: now,
            rng,
            profile,
            gateway,
            gateway_addr,
            server_received: vec![HashSet::new(); clients],
            clients: list,
            by_peer,
            in_flight: BinaryHeap::new(),
            wire: HashMap::new(),
            next_seq: 0,
            server_duplicates: 0,
            accepted_at_gateway: Vec::new(),
            send_interval: Duration::from_millis(50),
            next_send: now,
        };
        for i in 0..clients {
            sim.flush_client(i);
        }
        sim
    }

    /// Puts a datagram on the wire, subject to the link profile.
    pub fn send(&mut self, datagram: Datagram) {
        if self.chance(self.profile.loss) {
            return;
        }
        let copies = if self.chance(self.profile.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let jitter_ns = self.profile.jitter.as_nanos() as u64;
            let extra = if jitter_ns == 0 {
                0
            } else {
                self.rng.next_u64() % jitter_ns
            };
            let at = self.now + self.profile.delay + Duration::from_nanos(extra);
            self.next_seq += 1;
            self.wire.insert(self.next_seq, datagram.clone());
            self.in_flight.push(Reverse((at, self.next_seq)));
        }
    }

    /// Runs the world until `until` (virtual), bounded by `max_steps` events.
    pub fn run_until(&mut self, until: Instant, max_steps: usize) {
        for _ in 0..max_steps {
            let next = self.next_event().filter(|t| *t <= until);
            let Some(t) = next else {
                self.now = until;
                return;
            };
            self.now = self.now.max(t);
            self.step();
        }
        panic!("simulation did not reach its end time within {max_steps} steps");
    }

    /// Changes a client's public address, as a NAT that lost its mapping would.
    pub fn rebind(&mut self, index: usize, public: SocketAddr) {
        self.clients[index].public = public;
    }

    /// Hands a datagram straight to the gateway (an attacker's injection) and returns whether
    /// the gateway accepted it.
    pub fn inject_at_gateway(&mut self, from: SocketAddr, bytes: &[u8]) -> bool {
        let mut buf = bytes.to_vec();
        let ok = self
            .gateway
            .handle_datagram(self.now, from, &mut buf)
            .is_ok();
        self.flush_gateway();
        ok
    }

    fn chance(&mut self, p: f64) -> bool {
        (self.rng.next_u64() as f64 / u64::MAX as f64) < p
    }

    fn next_event(&self) -> Option<Instant> {
        let wire = self.in_flight.peek().map(|Reverse((t, _))| *t);
        let timers = self.clients.iter().filter_map(|c| c.client.poll_timeout());
        [wire, self.gateway.poll_timeout(), Some(self.next_send)]
            .into_iter()
            .flatten()
            .chain(timers)
            .min()
    }

    fn step(&mut self) {
        while let Some(Reverse((t, seq))) = self.in_flight.peek().copied() {
            if t > self.now {
                break;
            }
            self.in_flight.pop();
            if let Some(d) = self.wire.remove(&seq) {
                self.deliver(d);
            }
        }
        if self.gateway.poll_timeout().is_some_and(|t| t <= self.now) {
            self.gateway.handle_timeout(self.now);
            self.flush_gateway();
        }
        for i in 0..self.clients.len() {
            if self.clients[i]
                .client
                .poll_timeout()
                .is_some_and(|t| t <= self.now)
            {
                self.clients[i].client.handle_timeout(self.now);
                self.flush_client(i);
            }
        }
        if self.next_send <= self.now {
            self.next_send = self.now + self.send_interval;
            for i in 0..self.clients.len() {
                self.send_app_packet(i);
            }
        }
    }

    fn deliver(&mut self, d: Datagram) {
        if d.to == self.gateway_addr {
            self.deliver_to_gateway(d);
        } else if let Some(i) = self.clients.iter().position(|c| c.public == d.to) {
            self.deliver_to_client(i, d);
        }
    }

    fn deliver_to_gateway(&mut self, d: Datagram) {
        let mut buf = d.bytes.clone();
        let result = self.gateway.handle_datagram(self.now, d.from, &mut buf);
        if result.is_ok() {
            self.accepted_at_gateway.push(d.clone());
        }
        if let Ok(GatewayReceived::Packet { peer, range }) = result {
            let inner = buf[range].to_vec();
            if let Some(&i) = self.by_peer.get(&peer) {
                self.server_echo(i, &inner);
            }
        }
        self.flush_gateway();
    }

    fn server_echo(&mut self, index: usize, inner: &[u8]) {
        let Some(id) = packet_id(inner) else { return };
        if !self.server_received[index].insert(id) {
            self.server_duplicates += 1;
        }
        let Some((src, dst)) = traffic::addresses(inner) else {
            return;
        };
        let reply = udp_packet(dst, src, id);
        let Some(peer) = self.gateway.route(IpAddr::V4(src)) else {
            return;
        };
        let mut buf = vec![0u8; HEADROOM + reply.len() + TAILROOM];
        buf[HEADROOM..HEADROOM + reply.len()].copy_from_slice(&reply);
        if let Ok((n, to)) = self
            .gateway
            .encapsulate(self.now, peer, &mut buf, reply.len())
        {
            buf.truncate(n);
            let from = self.gateway_addr;
            self.send(Datagram {
                from,
                to,
                bytes: buf,
            });
        }
    }

    fn deliver_to_client(&mut self, i: usize, d: Datagram) {
        let mut buf = d.bytes;
        let c = &mut self.clients[i];
        if let Ok(ClientReceived::Packet(range)) =
            c.client.handle_datagram(self.now, d.from, &mut buf)
        {
            if let Some(id) = packet_id(&buf[range]) {
                if !c.received.insert(id) {
                    c.duplicates += 1;
                }
            }
        }
        self.flush_client(i);
    }

    fn send_app_packet(&mut self, i: usize) {
        let c = &mut self.clients[i];
        let Some((src, _)) = c.client.assignment().and_then(|a| a.ipv4) else {
            return;
        };
        if !c.client.is_established() {
            return;
        }
        let id = ((i as u64) << 32) | c.sent;
        let packet = udp_packet(src, SERVER_IP, id);
        let mut buf = vec![0u8; HEADROOM + packet.len() + TAILROOM];
        buf[HEADROOM..HEADROOM + packet.len()].copy_from_slice(&packet);
        if let Ok(n) = c.client.encapsulate(self.now, &mut buf, packet.len()) {
            c.sent += 1;
            buf.truncate(n);
            let d = Datagram {
                from: c.public,
                to: self.gateway_addr,
                bytes: buf,
            };
            self.send(d);
        }
        self.flush_client(i);
    }

    fn flush_client(&mut self, i: usize) {
        while let Some(t) = self.clients[i].client.poll_transmit() {
            let from = self.clients[i].public;
            self.send(Datagram {
                from,
                to: t.destination,
                bytes: t.contents,
            });
        }
        while self.clients[i].client.poll_event().is_some() {}
    }

    fn flush_gateway(&mut self) {
        while let Some(t) = self.gateway.poll_transmit() {
            let from = self.gateway_addr;
            self.send(Datagram {
                from,
                to: t.destination,
                bytes: t.contents,
            });
        }
        while self.gateway.poll_event().is_some() {}
    }
}

fn random32(rng: &mut ChaCha8Rng) -> [u8; 32] {
    let mut b = [0u8; 32];
    rng.fill_bytes(&mut b);
    b
}
