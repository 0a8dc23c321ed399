//! 50 clients and one gateway on a lossy, duplicating, reordering network with a virtual
//! clock; NAT rebinding mid-session; replayed and bit-flipped datagrams injected.

use std::net::SocketAddr;
use std::time::Duration;

use grelay_proto::tunnel::DropReason;
use grelay_tests::sim::{LinkProfile, Sim};

const CLIENTS: usize = 50;

fn lossy() -> LinkProfile {
    LinkProfile {
        loss: 0.10,
        duplicate: 0.05,
        delay: Duration::from_millis(10),
        jitter: Duration::from_millis(80),
    }
}

#[test]
fn fifty_clients_lossy_network_rebinding_and_attacks() {
    let mut sim = Sim::new(7, CLIENTS, 5, lossy());
    let start = sim.start;
    // Handshakes retry every 5 s; with 10 % loss each way a few clients need several tries.
    sim.run_until(start + Duration::from_secs(40), 4_000_000);

    for (i, c) in sim.clients.iter().enumerate() {
        assert!(c.client.is_established(), "client {i} has no session");
        assert!(c.client.assignment().is_some(), "client {i} got no address");
    }
    let sessions_before: Vec<_> = sim
        .clients
        .iter()
        .map(|c| c.client.status(sim.now).session_id)
        .collect();
    let handshakes_before: Vec<_> = sim
        .clients
        .iter()
        .map(|c| c.client.status(sim.now).handshakes)
        .collect();

    // NAT rebinding for every fifth client: new public port (and for some a new address).
    let rebound: Vec<usize> = (0..CLIENTS).step_by(5).collect();
    for &i in &rebound {
        let new: SocketAddr = format!("198.18.200.{}:{}", i + 2, 50_000 + i)
            .parse()
            .unwrap();
        sim.rebind(i, new);
    }
    sim.run_until(start + Duration::from_secs(60), 4_000_000);

    // Rebinding clients kept their session and made no new handshake; the gateway follows them.
    let peers: Vec<_> = sim.gateway.peers().collect();
    for &i in &rebound {
        let c = &sim.clients[i];
        let status = c.client.status(sim.now);
        assert_eq!(
            status.session_id, sessions_before[i],
            "client {i} lost its session"
        );
        assert_eq!(
            status.handshakes, handshakes_before[i],
            "client {i} re-handshook"
        );
        let peer = peers.iter().find(|p| p.id == c.peer).unwrap();
        assert_eq!(
            peer.endpoint,
            Some(c.public),
            "gateway did not follow client {i}"
        );
    }

    // Data flowed both ways for everyone, and nothing was delivered twice.
    assert_eq!(sim.server_duplicates, 0);
    for (i, c) in sim.clients.iter().enumerate() {
        assert_eq!(c.duplicates, 0, "client {i} got a duplicate");
        let up = sim.server_received[i].len() as f64 / c.sent as f64;
        let round_trip = c.received.len() as f64 / c.sent as f64;
        // 10 % loss each way: ~90 % up, ~81 % round trip; generous margins for the handshake.
        assert!(
            up > 0.8,
            "client {i}: only {up:.2} of packets reached the server"
        );
        assert!(
            round_trip > 0.7,
            "client {i}: only {round_trip:.2} came back"
        );
    }

    // Replays and bit flips of accepted datagrams change nothing.
    let snapshot = |sim: &Sim| -> Vec<_> {
        sim.gateway
            .peers()
            .map(|p| (p.id, p.endpoint, p.traffic, p.connected))
            .collect()
    };
    let before = snapshot(&sim);
    let drops_before = sim.gateway.stats().drops.clone();
    let attacker: SocketAddr = "198.18.66.6:6666".parse().unwrap();
    let recorded: Vec<_> = sim
        .accepted_at_gateway
        .iter()
        .rev()
        .take(200)
        .cloned()
        .collect();
    let mut injected = 0;
    for (n, d) in recorded.iter().enumerate() {
        assert!(
            !sim.inject_at_gateway(attacker, &d.bytes),
            "replay {n} accepted"
        );
        let mut flipped = d.bytes.clone();
        let bit = (n * 7919) % (flipped.len() * 8);
        flipped[bit / 8] ^= 1 << (bit % 8);
        assert!(
            !sim.inject_at_gateway(attacker, &flipped),
            "bit flip {n} accepted"
        );
        injected += 2;
    }
    assert_eq!(snapshot(&sim), before, "an attack changed peer state");
    let drops_after = sim.gateway.stats().drops.clone();
    assert_eq!(drops_after.total() - drops_before.total(), injected);
    assert!(drops_after.get(DropReason::Replay) > drops_before.get(DropReason::Replay));

    // And the real clients carry on.
    let received_before: usize = sim.clients.iter().map(|c| c.received.len()).sum();
    sim.run_until(start + Duration::from_secs(65), 1_000_000);
    let received_after: usize = sim.clients.iter().map(|c| c.received.len()).sum();
    assert!(received_after > received_before + CLIENTS * 50);
}

#[test]
fn same_seed_same_world() {
    let run = || {
        let mut sim = Sim::new(11, 8, 4, lossy());
        let end = sim.start + Duration::from_secs(5);
        sim.run_until(end, 200_000);
        sim.clients
            .iter()
            .map(|c| {
                (
                    c.sent,
                    c.received.len(),
                    c.client.status(sim.now).session_id,
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}
