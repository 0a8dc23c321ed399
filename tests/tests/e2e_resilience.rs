//! What a real session survives, with the real binaries:
//!
//! - **NAT rebinding** mid-flow: the NAT forgets its mappings, then moves to another public
//!   address; the flow carries on with the same session (no handshake), losing at most what
//!   was in flight plus what was sent while the NAT had no address.
//! - **Gateway restart**: SIGTERM and start again with the same address book; every client
//!   notices (three unanswered one-second RTT probes while traffic flows), handshakes again
//!   and keeps its addresses. The recovery time is measured and printed.
//! - **Abuse at the gateway's port** while clients work: garbage, truncated datagrams, a
//!   random flood, replays of real clients' datagrams (from the attacker's address and with a
//!   forged source) and a real `grelay up` with an unauthorized key. Nothing gets an answer,
//!   nobody's endpoint moves, the clients' flows and sessions go on unchanged.
//! - **IPv6 inside the tunnel**: ping and UDP to the game server's IPv6 address and the
//!   gateway's tunnel address, through the tunnel and the gateway's NAT66.
//!
//! Needs root, the harness's packages and `python3-scapy`; every wait is bounded.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use grelay_tests::netns::{Capture, NatKind};
use grelay_tests::scenario::attack::{captured_datagrams, flood, send_datagrams, send_spoofed};
use grelay_tests::scenario::{
    ClientNode, ClientStatus, PORT, PingReport, PingSeries, Placement, Scenario, udp_probe,
    unix_now,
};

/// A ping series through the tunnel from `c` to the game server.
fn ping_game(s: &Scenario, c: &ClientNode, count: u32, interval: Duration) -> PingSeries {
    let log = s.scratch.file(&format!("ping-{}.log", c.name()));
    PingSeries::start(c.ns(), s.game.host().v4().into(), count, interval, &log).unwrap()
}

/// The same session as `before`: same id, no handshake since, still connected.
fn assert_same_session(c: &ClientNode, before: &ClientStatus) -> ClientStatus {
    let now = c.status().unwrap();
    assert!(now.is_connected(), "{}: {now:?}", c.name());
    assert_eq!(
        (now.session_id, now.handshakes),
        (before.session_id, before.handshakes),
        "{}: the session changed:\n{}",
        c.name(),
        c.log()
    );
    now
}

#[test]
fn nat_rebinding_keeps_the_session_and_the_flow() {
    let mut s = Scenario::new("rebinding").unwrap();
    // A symmetric NAT: after the flush even the port changes, so the gateway must roam.
    let nat = s.add_nat(NatKind::Symmetric).unwrap();
    s.add_client("laptop", Placement::Nat(nat)).unwrap();
    s.start_all().unwrap();
    let laptop = s.client("laptop");
    let before = laptop.wait_connected(1, Duration::from_secs(5)).unwrap();
    let interval = Duration::from_millis(100);
    let series = ping_game(&s, laptop, 80, interval);

    std::thread::sleep(Duration::from_secs(2));
    let old_ip = s.nats[nat].public_v4();
    let flushed_at = unix_now();
    s.nats[nat].flush_conntrack().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let moving = Instant::now();
    let moved_at = unix_now();
    let new_ip = s.nats[nat].set_public_v4(77).unwrap();
    let window = moving.elapsed();
    let report = series.finish().unwrap();

    let laptop = s.client("laptop");
    assert_same_session(laptop, &before);
    // The gateway followed: to a new port on the same address after the flush, then to the
    // new address (maybe twice: `set_public_v4` flushes the mappings once more after adding
    // the address, and a datagram may slip through in between).
    let log = s.gateway.log();
    let moves: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("client laptop moved from"))
        .collect();
    assert!((2..=3).contains(&moves.len()), "{log}");
    assert!(moves[0].contains(&format!("to {old_ip}:")), "{moves:?}");
    assert!(
        moves[moves.len() - 1].contains(&format!("to {new_ip}:")),
        "{moves:?}"
    );
    // Loss: at most one echo in flight at the flush (a reply on its way to the forgotten
    // mapping), one in flight at the move, and those sent while the NAT had no address (the
    // window `set_public_v4` took, rounded up to whole intervals).
    let (window_ms, interval_ms) = (window.as_millis(), interval.as_millis());
    let bound = 2 + window_ms.div_ceil(interval_ms) as u32;
    eprintln!(
        "rebinding: {} of {} echoes lost ({:?}), bound {bound}; flow gap {:.0} ms; \
         NAT without address for {window:?}; first reply {:.0} ms after the flush, \
         {:.0} ms after the move",
        report.lost(),
        report.sent,
        report.lost_seqs(),
        report.longest_gap() * 1000.0,
        (report.first_reply_after(flushed_at).unwrap_or(f64::NAN) - flushed_at) * 1000.0,
        (report.first_reply_after(moved_at).unwrap_or(f64::NAN) - moved_at) * 1000.0,
    );
    assert_eq!(report.sent, 80);
    assert!(report.lost() <= bound, "{report:?}\n{}", laptop.log());
}

#[test]
fn gateway_restart_brings_every_client_back_with_its_address() {
    let mut s = Scenario::new("gw-restart").unwrap();
    let home = s.add_nat(NatKind::EndpointIndependent).unwrap();
    let carrier = s.add_nat(NatKind::Symmetric).unwrap();
    s.add_client("laptop", Placement::Nat(home)).unwrap();
    s.add_client("phone", Placement::Nat(carrier)).unwrap();
    s.add_client("server", Placement::Public).unwrap();
    s.start_all().unwrap();
    let before: Vec<ClientStatus> = s.clients.iter().map(|c| c.status().unwrap()).collect();
    // Traffic keeps flowing through the restart: that is what drives the detection.
    let interval = Duration::from_millis(200);
    let series: Vec<PingSeries> = s
        .clients
        .iter()
        .map(|c| ping_game(&s, c, 75, interval))
        .collect();

    std::thread::sleep(Duration::from_secs(2));
    let stopped_at = unix_now();
    s.gateway.restart().unwrap();
    let serving_at = unix_now();
    let reports: Vec<PingReport> = series.into_iter().map(|p| p.finish().unwrap()).collect();

    for ((c, old), report) in s.clients.iter().zip(&before).zip(&reports) {
        let now = c.wait_status("a new handshake", Duration::from_secs(5), |st| {
            st.is_connected() && st.handshakes > old.handshakes
        });
        let now = now.unwrap();
        assert_eq!(
            (&now.ipv4, &now.ipv6),
            (&old.ipv4, &old.ipv6),
            "{}",
            c.name()
        );
        assert_eq!(now.handshakes, old.handshakes + 1, "{}", c.name());
        let back = report
            .first_reply_after(serving_at)
            .unwrap_or_else(|| panic!("{}: no reply after the restart: {}", c.name(), c.log()));
        let (from_stop, from_start) = (back - stopped_at, back - serving_at);
        eprintln!(
            "restart: {} back {from_stop:.2} s after SIGTERM ({from_start:.2} s after the new \
             gateway served; it was down {:.2} s); {} of {} echoes lost",
            c.name(),
            serving_at - stopped_at,
            report.lost(),
            report.sent
        );
        assert!(
            from_stop < 10.0,
            "{}: back only after {from_stop:.2} s",
            c.name()
        );
        // The flow resumed for good: no further loss after the recovery.
        let last_lost = report.lost_seqs().last().copied().unwrap_or(0);
        let replies_after: Vec<_> = report.replies.range(last_lost..).collect();
        assert!(replies_after.len() > 10, "{}: {report:?}", c.name());
    }
    let book = s.gateway.state().unwrap();
    for (c, old) in s.clients.iter().zip(&before) {
        let entry = book.entry(&c.public_key()).unwrap();
        assert_eq!(entry.ipv4, old.ipv4_addr(), "{}", c.name());
    }
}

#[test]
fn abuse_at_the_gateway_port_changes_nothing() {
    let mut s = Scenario::new("abuse").unwrap();
    let home = s.add_nat(NatKind::EndpointIndependent).unwrap();
    s.add_client("laptop", Placement::Nat(home)).unwrap();
    s.add_client("server", Placement::Public).unwrap();
    let mallory = s.add_stranger("mallory", Placement::Public).unwrap();
    let attacker = s.world.add_public_host("attacker").unwrap();
    let gw = s.gateway.endpoint();
    let wan = s.gateway.host().iface().to_owned();

    // Record the clients' real datagrams from their first initiation on, for replaying.
    let filter = format!("udp dst port {PORT}");
    let recording =
        Capture::start(s.gateway.ns(), &wan, &filter, s.scratch.file("real.pcap")).unwrap();
    s.start_all().unwrap();
    for c in &s.clients[..2] {
        for _ in 0..3 {
            let game = s.game.host().v4().into();
            assert!(c.ns().ping(game, Duration::from_secs(5)).unwrap());
        }
    }
    let real = captured_datagrams(&recording.stop().unwrap()).unwrap();
    let initiations = real
        .iter()
        .filter(|d| d.payload.first() == Some(&1))
        .count();
    let data = real
        .iter()
        .filter(|d| d.payload.first() == Some(&4))
        .count();
    assert!(initiations >= 2 && data >= 4, "{real:?}");
    let payloads: Vec<Vec<u8>> = real.iter().map(|d| d.payload.clone()).collect();

    let before: Vec<ClientStatus> = s.clients[..2].iter().map(|c| c.status().unwrap()).collect();
    let interval = Duration::from_millis(100);
    let series: Vec<PingSeries> = s.clients[..2]
        .iter()
        .map(|c| ping_game(&s, c, 100, interval))
        .collect();
    let watch = Capture::start(s.gateway.ns(), &wan, "udp", s.scratch.file("abuse.pcap")).unwrap();

    // An unauthorized key, with the real client: its initiations are well formed.
    s.clients[mallory].start().unwrap();
    let ns = attacker.ns();
    let mut junk: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"x".to_vec(),
        b"GET / HTTP/1.0\r\n\r\n".to_vec(),
        vec![0xff; 1400],
        vec![2; 92],  // a response's size and type
        vec![3; 64],  // a cookie reply's
        vec![1; 148], // an initiation's, bad mac1
        vec![9; 100], // an unknown type
    ];
    // Truncations of real messages at every boundary the parser looks at.
    for d in real.iter().take(6) {
        for cut in [1, 3, 4, 8, 15, 16, 31, 32, d.payload.len() - 1] {
            junk.push(d.payload[..cut.min(d.payload.len())].to_vec());
        }
    }
    let garbage = send_datagrams(ns, gw, junk, Duration::from_millis(2)).unwrap();
    let flooded = flood(ns, gw, 20_000, Duration::from_secs(3), 42).unwrap();
    let replayed = send_datagrams(ns, gw, payloads.clone(), Duration::from_millis(2)).unwrap();
    // The same replays with a forged source: the laptop's public address, another port. An
    // accepted one would move the laptop's endpoint there (and any answer would go there).
    let forged = SocketAddr::new(s.nats[home].public_v4().into(), 40404);
    send_spoofed(ns, forged, gw, &payloads, &s.scratch.file("spoof.hex")).unwrap();
    std::thread::sleep(Duration::from_secs(1));

    let reports: Vec<PingReport> = series.into_iter().map(|p| p.finish().unwrap()).collect();
    let rows = watch
        .stop()
        .unwrap()
        .read_fields(&["ip.src", "udp.srcport", "ip.dst", "udp.dstport"])
        .unwrap();
    eprintln!(
        "abuse: {} junk, {} flood, {} replayed and {} forged datagrams ({initiations} \
         initiations); answers {} / {} / {}",
        garbage.sent,
        flooded.sent,
        replayed.sent,
        payloads.len(),
        garbage.answers,
        flooded.answers,
        replayed.answers
    );
    assert!(flooded.sent > 5_000, "{flooded:?}");
    assert_eq!(
        (garbage.answers, flooded.answers, replayed.answers),
        (0, 0, 0)
    );
    // Nothing from the gateway's port to the attacker, the stranger or the forged source.
    let gw_ip = gw.ip().to_string();
    let strangers = [
        attacker.v4().to_string(),
        s.clients[mallory].host().v4().to_string(),
    ];
    let to_strangers: Vec<_> = rows
        .iter()
        .filter(|r| r[0] == gw_ip && r[1] == PORT.to_string())
        .filter(|r| strangers.contains(&r[2]) || r[3] == forged.port().to_string())
        .collect();
    assert!(
        to_strangers.is_empty(),
        "the gateway answered: {to_strangers:?}"
    );
    // What was sent arrived: the stranger's initiations and every forged replay.
    let from_mallory = rows.iter().filter(|r| r[0] == strangers[1]).count();
    assert!(from_mallory >= 1, "the stranger sent nothing");
    let forged_in = rows
        .iter()
        .filter(|r| r[0] == forged.ip().to_string() && r[1] == forged.port().to_string())
        .count();
    assert_eq!(forged_in, payloads.len(), "forged replays lost on the way");
    // The gateway lives on, nobody moved, the clients' sessions and flows are unchanged.
    assert!(s.gateway.is_running(), "{}", s.gateway.log());
    let log = s.gateway.log();
    assert!(!log.contains(" moved from "), "{log}");
    assert!(log.contains("dropped datagram from"), "{log}");
    for ((c, old), report) in s.clients[..2].iter().zip(&before).zip(&reports) {
        assert_same_session(c, old);
        eprintln!(
            "abuse: {} lost {} of {} echoes, longest gap {:.0} ms",
            c.name(),
            report.lost(),
            report.sent,
            report.longest_gap() * 1000.0
        );
        assert!(report.lost() <= 2, "{}: {report:?}", c.name());
    }
}

#[test]
fn ipv6_travels_inside_the_tunnel() {
    let mut s = Scenario::home_setup("ipv6-inside").unwrap();
    let game_v6 = s.game.v6_prefix();
    s.client_mut("laptop").config_mut().prefixes.push(game_v6);
    s.start_all().unwrap();
    let laptop = s.client("laptop");
    let status = laptop.status().unwrap();
    let me = status.ipv6_addr().expect("an IPv6 tunnel address");
    assert!(me.to_string().starts_with("fd77::"), "{status:?}");
    let game = s.game.host();
    let route = laptop
        .ns()
        .run(&["ip", "-6", "route", "get", &game.v6().to_string()])
        .unwrap();
    assert!(
        route.contains("dev grelay0"),
        "not into the tunnel: {route}"
    );
    // The game server, through the tunnel and the gateway's NAT66; the gateway itself.
    assert!(
        laptop
            .ns()
            .ping(game.v6().into(), Duration::from_secs(5))
            .unwrap(),
        "{}",
        laptop.log()
    );
    let seen = udp_probe(laptop.ns(), s.game.udp_at(game.v6().into())).unwrap();
    assert_eq!(seen.map(|a| a.ip()), Some(IpAddr::from(game.router_v6())));
    assert!(
        laptop
            .ns()
            .ping("fd77::1".parse().unwrap(), Duration::from_secs(5))
            .unwrap()
    );
    let after = laptop.status().unwrap();
    assert!(after.rx_packets > status.rx_packets, "{after:?}");
}
