//! End-to-end smoke tests of the real `grelay-gateway` binary in network namespaces.
//!
//! ```text
//!   laptop ─┐                                   ┌─ gateway 198.18.1.2 ─ b1 ─ game 10.99.1.2
//!   laptop2 ┴─ nat1 (EI masquerade) ─ internet ─┘   grelay-gw 10.77.0.1/16, fd77::1/64
//! ```
//!
//! Two kinds of client:
//! - the real client binary, `grelay up`, on each laptop ([`grelay_up_laptops_behind_nat_reach_the_game_server_and_each_other`]):
//!   ping and a UDP reflector through the tunnel, the whole product end to end;
//! - the core's own client state machine (`grelay_proto::tunnel::client::Client`) in-process,
//!   on a thread that has entered the laptop's namespace with `setns(2)`, over a real UDP
//!   socket made there: inner IP packets are built by hand and read back from the tunnel, so
//!   the tests can look at exact bytes (MSS clamping, checksums) and at what strangers get.
//!
//! Everything on the gateway side is real: binary, TUN, netlink addresses, nftables NAT,
//! kernel forwarding.
//!
//! Binaries, configurations and nodes come from [`grelay_tests::scenario`]. Needs root and
//! the harness's packages (see `grelay_tests::netns`); every wait is bounded.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use grelay_proto::crypto::keys::{PublicKey, StaticSecret};
use grelay_proto::tunnel::client::{Client, ClientConfig, Received};
use grelay_proto::tunnel::{HEADROOM, TAILROOM};
use grelay_proto::wire::checksum;
use grelay_proto::wire::control::AddressAssignment;
use grelay_tests::netns::{Capture, NatKind, Scratch, World};
use grelay_tests::scenario::{
    GATEWAY_KEY, GameServer, GatewayConfig, GatewayNode, POOL_V4, Placement, Scenario,
    in_namespace, succeeds, test_key, udp_probe,
};

const TUN: &str = "grelay-gw";
const NFT_TABLE: &str = "grelay_gw_grelay_gw";

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The gateway's configuration with `clients` (name, key).
fn gateway_config(clients: &[(&str, PublicKey)]) -> GatewayConfig {
    let mut config = GatewayConfig::new(test_key(GATEWAY_KEY));
    for (name, key) in clients {
        config.add_client(name, *key);
    }
    config
}

/// The core's client over a real UDP socket, without a TUN.
struct Tunnel {
    client: Client,
    sock: UdpSocket,
    buf: Vec<u8>,
}

impl Tunnel {
    /// Must run inside the laptop's namespace.
    fn new(key: StaticSecret, gateway_key: PublicKey, gateway: SocketAddr) -> Tunnel {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970");
        let config = ClientConfig::new(key, gateway_key, gateway, unix);
        let seed: [u8; 32] = std::array::from_fn(|i| (unix.subsec_nanos() as u8) ^ i as u8);
        let mut t = Tunnel {
            client: Client::new(config, Instant::now(), seed),
            sock: UdpSocket::bind("0.0.0.0:0").expect("binding a UDP socket"),
            buf: vec![0; 65536],
        };
        t.flush();
        t
    }

    fn flush(&mut self) {
        while let Some(t) = self.client.poll_transmit() {
            let _ = self.sock.send_to(&t.contents, t.destination);
        }
    }

    /// Runs due timers and waits up to `max` for one datagram; returns an inner packet.
    fn step(&mut self, max: Duration) -> Option<Vec<u8>> {
        let now = Instant::now();
        if self.client.poll_timeout().is_some_and(|t| t <= now) {
            self.client.handle_timeout(now);
        }
        self.flush();
        let wait = self
            .client
            .poll_timeout()
            .map_or(max, |t| t.saturating_duration_since(now))
            .clamp(Duration::from_millis(1), max);
        self.sock.set_read_timeout(Some(wait)).ok()?;
        let (n, from) = self.sock.recv_from(&mut self.buf).ok()?;
        let got = match self
            .client
            .handle_datagram(Instant::now(), from, &mut self.buf[..n])
        {
            Ok(Received::Packet(range)) => Some(self.buf[range].to_vec()),
            _ => None,
        };
        self.flush();
        got
    }

    /// Handshakes and waits for the address assignment.
    fn connect(&mut self, timeout: Duration) -> Option<AddressAssignment> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(a) = self.client.assignment() {
                return Some(a);
            }
            self.step(Duration::from_millis(50));
        }
        None
    }

    fn send(&mut self, packet: &[u8]) {
        let mut b = vec![0u8; HEADROOM + packet.len() + TAILROOM];
        b[HEADROOM..HEADROOM + packet.len()].copy_from_slice(packet);
        let n = self
            .client
            .encapsulate(Instant::now(), &mut b, packet.len())
            .expect("a session to send on");
        let _ = self.sock.send_to(&b[..n], self.client.endpoint());
        self.flush();
    }

    /// Waits up to `timeout` for an inner packet `want` accepts.
    fn expect(&mut self, timeout: Duration, want: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(p) = self.step(Duration::from_millis(50)) {
                if want(&p) {
                    return Some(p);
                }
            }
        }
        None
    }
}

/// An IPv4 packet with a correct header checksum.
fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
    let total = 20 + payload.len();
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = proto;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let c = checksum::checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20..].copy_from_slice(payload);
    p
}

/// IPv4/UDP without a UDP checksum (allowed for IPv4).
fn udp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), payload: &[u8]) -> Vec<u8> {
    let mut u = vec![0u8; 8 + payload.len()];
    u[0..2].copy_from_slice(&src.1.to_be_bytes());
    u[2..4].copy_from_slice(&dst.1.to_be_bytes());
    let len = u.len() as u16;
    u[4..6].copy_from_slice(&len.to_be_bytes());
    u[8..].copy_from_slice(payload);
    ipv4(src.0, dst.0, 17, &u)
}

fn icmp_echo(src: Ipv4Addr, dst: Ipv4Addr, id: u16, seq: u16) -> Vec<u8> {
    let mut m = vec![8u8, 0, 0, 0, 0, 0, 0, 0];
    m[4..6].copy_from_slice(&id.to_be_bytes());
    m[6..8].copy_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(b"grelay-ping");
    let c = checksum::checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    ipv4(src, dst, 1, &m)
}

/// An ICMPv6 echo request with a correct checksum.
fn icmp6_echo(src: Ipv6Addr, dst: Ipv6Addr, id: u16, seq: u16) -> Vec<u8> {
    let mut m = vec![128u8, 0, 0, 0, 0, 0, 0, 0];
    m[4..6].copy_from_slice(&id.to_be_bytes());
    m[6..8].copy_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(b"grelay-ping6");
    let mut pseudo = Vec::with_capacity(40);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&(m.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    let c = !checksum::fold(checksum::sum(&m, checksum::sum(&pseudo, 0)));
    m[2..4].copy_from_slice(&c.to_be_bytes());
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(m.len() as u16).to_be_bytes());
    p.extend_from_slice(&[58, 64]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&m);
    p
}

fn tcp_pseudo_sum(src: Ipv4Addr, dst: Ipv4Addr, len: usize) -> u32 {
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&(len as u16).to_be_bytes());
    checksum::sum(&pseudo, 0)
}

/// A TCP SYN announcing `mss`, with a correct checksum.
fn tcp_syn(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), mss: u16) -> Vec<u8> {
    let mut t = vec![0u8; 24];
    t[0..2].copy_from_slice(&src.1.to_be_bytes());
    t[2..4].copy_from_slice(&dst.1.to_be_bytes());
    t[4..8].copy_from_slice(&1234u32.to_be_bytes());
    t[12] = 6 << 4;
    t[13] = 0x02;
    t[14..16].copy_from_slice(&64240u16.to_be_bytes());
    t[20..22].copy_from_slice(&[2, 4]);
    t[22..24].copy_from_slice(&mss.to_be_bytes());
    let c = !checksum::fold(checksum::sum(&t, tcp_pseudo_sum(src.0, dst.0, t.len())));
    t[16..18].copy_from_slice(&c.to_be_bytes());
    ipv4(src.0, dst.0, 6, &t)
}

fn v4_of(a: &AddressAssignment) -> Ipv4Addr {
    a.ipv4.expect("an IPv4 tunnel address").0
}

#[test]
fn gateway_starts_ignores_strangers_reloads_and_exits_cleanly() -> TestResult {
    let scratch = Scratch::new("gw-life")?;
    let mut world = World::new()?;
    let host = world.add_public_host("gateway")?;
    let mut nat = world.add_nat(NatKind::EndpointIndependent)?;
    let laptop = nat.add_host("laptop")?;
    let config = gateway_config(&[("alice", test_key(10).public_key())]);
    let mut gw = GatewayNode::new(host, scratch.path(), config)?;
    gw.start()?;

    assert!(succeeds(gw.ns(), &["ip", "link", "show", TUN]), "no TUN");
    let addrs = gw.ns().run(&["ip", "-br", "addr", "show", TUN])?;
    assert!(
        addrs.contains("10.77.0.1/16") && addrs.contains("fd77::1/64"),
        "{addrs}"
    );
    let routes = gw.ns().run(&["ip", "route", "show", "10.77.0.0/16"])?;
    assert!(routes.contains(&format!("dev {TUN}")), "{routes}");
    let table = gw.ns().run(&["nft", "list", "table", "inet", NFT_TABLE])?;
    assert!(table.contains("masquerade"), "{table}");

    // Strangers get no answer: garbage, an initiation for another gateway key (bad mac1) and
    // a well-formed initiation from a key that is not configured.
    let capture = Capture::start(
        gw.ns(),
        gw.host().iface(),
        "udp port 4747",
        scratch.file("gw.pcap"),
    )?;
    let dest = gw.endpoint();
    assert_eq!(
        udp_probe(laptop.ns(), dest)?,
        None,
        "the gateway answered garbage"
    );
    let gateway_key = test_key(1).public_key();
    let answers = in_namespace(laptop.ns(), move || {
        let mut answers = 0;
        for (key, gw_key) in [
            (test_key(66), test_key(99).public_key()),
            (test_key(77), gateway_key),
        ] {
            let t = Tunnel::new(key, gw_key, dest);
            let deadline = Instant::now() + Duration::from_secs(2);
            t.sock
                .set_read_timeout(Some(Duration::from_millis(100)))
                .expect("timeout");
            let mut buf = [0u8; 2048];
            while Instant::now() < deadline {
                if t.sock.recv_from(&mut buf).is_ok() {
                    answers += 1;
                }
            }
        }
        answers
    })
    .join()
    .expect("stranger thread");
    assert_eq!(answers, 0, "a stranger got an answer");
    let rows = capture
        .stop()?
        .read_fields(&["udp.srcport", "udp.dstport"])?;
    assert!(
        rows.iter().any(|r| r[1] == "4747"),
        "nothing reached the gateway: {rows:?}"
    );
    assert!(
        !rows.iter().any(|r| r[0] == "4747"),
        "the gateway answered: {rows:?}"
    );
    assert!(gw.log().contains("unknown_key") || gw.log().contains("dropped"));

    // SIGHUP: a new client is authorized and logged.
    gw.config_mut()
        .add_client("carol", test_key(12).public_key());
    gw.reload()?;
    gw.wait_log("client carol added", Duration::from_secs(5))?;

    // SIGTERM: gone within 2 s, TUN and table with it, the address book saved.
    let asked = Instant::now();
    let status = gw.stop()?;
    let took = asked.elapsed();
    assert!(status.success(), "exit: {status:?}: {}", gw.log());
    assert!(took < Duration::from_secs(2), "took {took:?} to stop");
    assert!(
        !succeeds(gw.ns(), &["ip", "link", "show", TUN]),
        "TUN left behind"
    );
    assert!(
        !succeeds(gw.ns(), &["nft", "list", "table", "inet", NFT_TABLE]),
        "nft table left behind"
    );
    let state = gw.state()?;
    assert!(
        state.entry(&test_key(12).public_key()).is_some(),
        "{state:?}"
    );
    Ok(())
}

#[test]
fn laptops_behind_nat_reach_the_game_server_each_other_and_keep_addresses() -> TestResult {
    let scratch = Scratch::new("gw-data")?;
    let mut world = World::new()?;
    let host = world.add_public_host("gateway")?;
    let game = GameServer::start(world.add_private_link(&host, "game")?, scratch.path())?;
    let mut nat = world.add_nat(NatKind::EndpointIndependent)?;
    let laptop = nat.add_host("laptop")?;
    let laptop2 = nat.add_host("laptop2")?;
    let (alice_key, bob_key) = (test_key(10), test_key(11));
    let config = gateway_config(&[
        ("alice", alice_key.public_key()),
        ("bob", bob_key.public_key()),
    ]);
    let mut gw = GatewayNode::new(host, scratch.path(), config)?;
    gw.start()?;
    let dest = gw.endpoint();
    let gateway_key = gw.public_key();
    let game_udp = game.udp_addr();
    let (game_v4, game_v6) = (game.host().v4(), game.host().v6());
    let gw_near = game.host().router_v4();

    let (ready_tx, ready_rx) = mpsc::channel::<Ipv4Addr>();
    let got_syn = std::sync::Arc::new(AtomicBool::new(false));
    let got_syn2 = std::sync::Arc::clone(&got_syn);
    let alice = in_namespace(laptop.ns(), move || {
        let mut t = Tunnel::new(alice_key, gateway_key, dest);
        let a = t
            .connect(Duration::from_secs(10))
            .expect("alice configured");
        let me = v4_of(&a);
        assert_eq!(a.ipv4, Some((Ipv4Addr::new(10, 77, 0, 2), 16)));
        assert_eq!(a.mtu, 1420);
        // UDP to the game server: NATed by the gateway out of its back-end link.
        let mut answer = None;
        for _ in 0..10 {
            t.send(&udp((me, 7000), (game_v4, game_udp.port()), b"hello"));
            answer = t.expect(Duration::from_millis(500), |p| p.len() > 28 && p[9] == 17);
            if answer.is_some() {
                break;
            }
        }
        let answer = answer.expect("an answer from the game server");
        assert_eq!(&answer[12..16], &game_v4.octets());
        assert_eq!(&answer[16..20], &me.octets());
        let seen = String::from_utf8_lossy(&answer[28..]).into_owned();
        assert!(
            seen.starts_with(&format!("{gw_near}:")),
            "the game saw {seen}"
        );
        // Ping through the tunnel.
        t.send(&icmp_echo(me, game_v4, 77, 1));
        let reply = t.expect(Duration::from_secs(3), |p| {
            p.len() > 20 && p[9] == 1 && p[20] == 0
        });
        assert!(reply.is_some(), "no echo reply from the game server");
        // And over IPv6 (NAT66 on the gateway).
        let (me6, len6) = a.ipv6.expect("an IPv6 tunnel address");
        assert_eq!((me6, len6), ("fd77::2".parse().expect("address"), 64));
        t.send(&icmp6_echo(me6, game_v6, 78, 1));
        let reply6 = t.expect(Duration::from_secs(3), |p| {
            p.len() > 40 && p[0] >> 4 == 6 && p[6] == 58 && p[40] == 129
        });
        assert!(
            reply6.is_some(),
            "no ICMPv6 echo reply from the game server"
        );
        // Client to client: bob's SYN arrives with its MSS clamped to the tunnel's.
        ready_tx.send(me).expect("bob listens");
        let syn = t
            .expect(Duration::from_secs(10), |p| p.len() >= 44 && p[9] == 6)
            .expect("bob's SYN through the gateway");
        got_syn2.store(true, Ordering::SeqCst);
        syn
    });
    let bob = in_namespace(laptop2.ns(), move || {
        let mut t = Tunnel::new(bob_key, gateway_key, dest);
        let b = t.connect(Duration::from_secs(10)).expect("bob configured");
        let me = v4_of(&b);
        assert_eq!(me, Ipv4Addr::new(10, 77, 0, 3));
        let alice_ip = ready_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("alice ready");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !got_syn.load(Ordering::SeqCst) && Instant::now() < deadline {
            t.send(&tcp_syn((me, 5555), (alice_ip, 80), 1460));
            t.step(Duration::from_millis(300));
        }
        me
    });
    let syn = alice.join().map_err(|_| "alice failed")?;
    let bob_ip = bob.join().map_err(|_| "bob failed")?;
    assert_eq!(&syn[12..16], &bob_ip.octets());
    assert_eq!(&syn[40..44], &[2, 4, 0x05, 0x64], "MSS 1380 = 1420 - 40");
    let src = Ipv4Addr::from(<[u8; 4]>::try_from(&syn[12..16])?);
    let dst = Ipv4Addr::from(<[u8; 4]>::try_from(&syn[16..20])?);
    let tcp = &syn[20..];
    assert_eq!(
        checksum::fold(checksum::sum(tcp, tcp_pseudo_sum(src, dst, tcp.len()))),
        0xffff,
        "the clamped SYN's checksum is wrong"
    );
    assert!(gw.log().contains("client alice connected from"));

    // Restart with the clients in another order and one more in front: same addresses.
    assert!(gw.stop()?.success());
    *gw.config_mut() = gateway_config(&[
        ("carol", test_key(12).public_key()),
        ("bob", test_key(11).public_key()),
        ("alice", test_key(10).public_key()),
    ]);
    gw.start()?;
    let again = in_namespace(laptop2.ns(), move || {
        let mut t = Tunnel::new(test_key(11), gateway_key, dest);
        t.connect(Duration::from_secs(10)).map(|a| v4_of(&a))
    })
    .join()
    .map_err(|_| "bob failed after the restart")?;
    assert_eq!(again, Some(Ipv4Addr::new(10, 77, 0, 3)), "{}", gw.log());
    assert!(
        gw.log().contains("client carol added: 10.77.0.4/16"),
        "{}",
        gw.log()
    );
    Ok(())
}

#[test]
fn grelay_up_laptops_behind_nat_reach_the_game_server_and_each_other() -> TestResult {
    let mut s = Scenario::new("gw-e2e")?;
    let home = s.add_nat(NatKind::EndpointIndependent)?;
    let cgnat = s.add_nat(NatKind::Symmetric)?;
    // Keys 10 and 11, in this order: alice gets 10.77.0.2, bob 10.77.0.3.
    s.add_client("alice", Placement::Nat(home))?;
    s.add_client("bob", Placement::Nat(cgnat))?;
    for c in &mut s.clients {
        // The game's network (the scenario's default) and the pool, for client to client.
        c.config_mut().prefixes.push(POOL_V4.to_owned());
    }
    s.start_all()?;
    for (name, address) in [("alice", "10.77.0.2/16"), ("bob", "10.77.0.3/16")] {
        let status = s.client(name).status()?;
        assert_eq!(status.ipv4.as_deref(), Some(address), "{name}: {status:?}");
        let addrs = s
            .client(name)
            .ns()
            .run(&["ip", "-br", "addr", "show", "grelay0"])?;
        assert!(addrs.contains(address), "{name}: {addrs}");
    }

    // Ping and UDP to the game server, through the tunnel and the gateway's NAT.
    let game = s.game.host();
    for name in ["alice", "bob"] {
        let ns = s.client(name).ns();
        assert!(
            ns.ping(game.v4().into(), Duration::from_secs(5))?,
            "{name} cannot ping the game server: {}",
            s.gateway.log()
        );
        let seen = udp_probe(ns, s.game.udp_addr())?;
        let seen = seen.ok_or_else(|| format!("{name}: no answer from the game server"))?;
        assert_eq!(
            seen.ip(),
            IpAddr::V4(game.router_v4()),
            "{name}: the game server saw {seen}, not the gateway's address"
        );
    }
    // Client to client, through the gateway.
    assert!(
        s.client("alice")
            .ns()
            .ping("10.77.0.3".parse()?, Duration::from_secs(5))?,
        "alice cannot ping bob"
    );
    let log = s.gateway.log();
    let home_ip = s.nats[home].public_v4().to_string();
    let cgnat_ip = s.nats[cgnat].public_v4().to_string();
    assert!(
        log.contains(&format!("client alice connected from {home_ip}:")),
        "{log}"
    );
    assert!(
        log.contains(&format!("client bob connected from {cgnat_ip}:")),
        "{log}"
    );
    Ok(())
}
