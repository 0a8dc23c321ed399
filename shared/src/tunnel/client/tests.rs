use super::*;
use crate::crypto::keys::StaticSecret;
use crate::tunnel::test_pair::*;
use core::net::Ipv4Addr;
use core::time::Duration;

#[test]
fn handshake_config_and_data_both_ways() {
    let mut pair = Pair::new();
    pair.drive();
    assert!(pair.client.is_established());
    let events: Vec<_> = core::iter::from_fn(|| pair.client.poll_event()).collect();
    assert!(matches!(
        events[0],
        ClientEvent::HandshakeCompleted { first: true, .. }
    ));
    assert_eq!(events[1], ClientEvent::Configured(assignment(2)));
    assert_eq!(pair.client.assignment(), Some(assignment(2)));

    let packet = ipv4_packet(
        Ipv4Addr::new(10, 77, 0, 2),
        Ipv4Addr::new(10, 99, 0, 2),
        b"ping",
    );
    let datagram = pair.client_seal(&packet);
    assert_eq!(datagram.len(), packet.len() + 4 + 32);
    assert_eq!(pair.gateway_receive(&datagram), Some(packet.clone()));
    // The same datagram again is a replay.
    assert_eq!(pair.gateway_receive(&datagram), None);

    let reply = ipv4_packet(
        Ipv4Addr::new(10, 99, 0, 2),
        Ipv4Addr::new(10, 77, 0, 2),
        b"pong",
    );
    let mut buf = vec![0u8; HEADROOM + reply.len() + TAILROOM];
    buf[HEADROOM..HEADROOM + reply.len()].copy_from_slice(&reply);
    let (n, to) = pair
        .gateway
        .encapsulate(pair.now, pair.peer, &mut buf, reply.len())
        .unwrap();
    assert_eq!(to, pair.client_addr);
    let got = pair
        .client
        .handle_datagram(pair.now, to, &mut buf[..n])
        .unwrap();
    let Received::Packet(range) = got else {
        panic!("expected a packet, got {got:?}")
    };
    assert_eq!(&buf[range], &reply[..]);
}

#[test]
fn forged_response_leaves_pending_handshake_intact() {
    let mut pair = Pair::new();
    let init = pair.client.poll_transmit().unwrap();
    let mut buf = init.contents.clone();
    pair.gateway
        .handle_datagram(pair.now, pair.client_addr, &mut buf)
        .unwrap();
    let response = pair.gateway.poll_transmit().unwrap();
    // Flip a bit in the Noise part but keep mac1 valid: only the AEAD can catch it.
    let mut forged = response.contents.clone();
    forged[20] ^= 1;
    let macs = MacKeys::new(&StaticSecret::from_bytes([2; 32]).public_key());
    let mac1 = macs.mac1(&forged[..60]);
    forged[60..76].copy_from_slice(&mac1);
    assert_eq!(
        pair.client
            .handle_datagram(pair.now, response.destination, &mut forged),
        Err(DropReason::Authentication)
    );
    assert!(!pair.client.is_established());
    let mut real = response.contents.clone();
    assert_eq!(
        pair.client
            .handle_datagram(pair.now, response.destination, &mut real),
        Ok(Received::Nothing)
    );
    assert!(pair.client.is_established());
}

#[test]
fn retries_until_answered_and_reports_unreachable() {
    let mut pair = Pair::new();
    let start = pair.now;
    let first = pair.client.poll_transmit().unwrap();
    assert_eq!(first.contents.len(), 148);
    let mut initiations = 1;
    while pair.now.duration_since(start) < Duration::from_secs(100) {
        let t = pair
            .client
            .poll_timeout()
            .expect("a retry is always scheduled");
        assert!(t > pair.now, "timer must move forward");
        pair.now = t;
        pair.client.handle_timeout(pair.now);
        while pair.client.poll_transmit().is_some() {
            initiations += 1;
        }
    }
    // One try every 5 s plus up to 1/3 s of jitter.
    assert!(
        (19..=21).contains(&initiations),
        "sent {initiations} initiations"
    );
    let events: Vec<_> = core::iter::from_fn(|| pair.client.poll_event()).collect();
    assert_eq!(events, vec![ClientEvent::GatewayUnreachable]);
}

#[test]
fn rekeys_before_expiry_without_losing_data() {
    let mut pair = Pair::new();
    pair.drive();
    let first = pair.client.status(pair.now).session_id.unwrap();
    for _ in 0..125 {
        pair.advance(Duration::from_secs(1));
        pair.drive();
    }
    let status = pair.client.status(pair.now);
    assert_ne!(status.session_id, Some(first));
    assert_eq!(status.handshakes, 2);
    let packet = ipv4_packet(
        Ipv4Addr::new(10, 77, 0, 2),
        Ipv4Addr::new(10, 99, 0, 2),
        b"x",
    );
    let datagram = pair.client_seal(&packet);
    assert_eq!(pair.gateway_receive(&datagram), Some(packet));
    // RTT probes ran while active, and every one was answered.
    assert!(status.path.received > 0);
    assert_eq!(status.path.lost, 0);
}

#[test]
fn keepalive_when_idle() {
    let mut pair = Pair::new();
    pair.drive();
    pair.advance(ACTIVE_WINDOW + Duration::from_secs(1));
    pair.drive();
    let before = pair.client.status(pair.now).traffic.tx_packets;
    pair.advance(KEEPALIVE_INTERVAL);
    pair.drive();
    assert!(pair.client.status(pair.now).traffic.tx_packets > before);
}

#[test]
fn data_before_session_starts_nothing_twice() {
    let mut pair = Pair::new();
    let packet = ipv4_packet(
        Ipv4Addr::new(10, 77, 0, 2),
        Ipv4Addr::new(10, 99, 0, 2),
        b"x",
    );
    let mut buf = vec![0u8; HEADROOM + packet.len() + TAILROOM];
    buf[HEADROOM..HEADROOM + packet.len()].copy_from_slice(&packet);
    assert_eq!(
        pair.client.encapsulate(pair.now, &mut buf, packet.len()),
        Err(SendError::NoSession)
    );
    // The initiation queued at creation is the only one.
    assert!(pair.client.poll_transmit().is_some());
    assert!(pair.client.poll_transmit().is_none());
    assert_eq!(
        pair.client.encapsulate(pair.now, &mut [0u8; 10], 5),
        Err(SendError::BadBuffer { have: 10, len: 5 })
    );
}

#[test]
fn garbage_is_counted_not_fatal() {
    let mut pair = Pair::new();
    pair.drive();
    for junk in [&[][..], &[4, 0, 0, 0][..], &[1; 148][..], &[9; 40][..]] {
        let mut b = junk.to_vec();
        assert!(
            pair.client
                .handle_datagram(pair.now, pair.client_addr, &mut b)
                .is_err()
        );
    }
    assert_eq!(pair.client.status(pair.now).drops.total(), 4);
    assert!(pair.client.is_established());
}

#[test]
fn recovers_within_seconds_when_the_gateway_forgets_the_session() {
    use crate::tunnel::gateway::GatewayConfig;
    let mut pair = Pair::new();
    pair.drive();
    let packet = ipv4_packet(
        Ipv4Addr::new(10, 77, 0, 2),
        Ipv4Addr::new(10, 99, 0, 2),
        b"x",
    );
    let first = pair.client.status(pair.now).session_id;
    // The gateway restarts: same key, same peer, no sessions.
    pair.restart_gateway(GatewayConfig::new(gateway_secret()), [8; 32]);
    let restart = pair.now;
    let mut recovered = None;
    for _ in 0..100 {
        pair.advance(Duration::from_millis(100));
        let datagram = pair.client_seal(&packet);
        let delivered = pair.gateway_receive(&datagram).is_some();
        pair.drive();
        if delivered {
            recovered = Some(pair.now - restart);
            break;
        }
    }
    let took = recovered.expect("client never recovered");
    assert!(took <= Duration::from_secs(5), "took {took:?}");
    assert_ne!(pair.client.status(pair.now).session_id, first);
    assert_eq!(pair.client.assignment(), Some(assignment(2)));
}

/// Sends `datagram` to the gateway as if from `from`, and returns what the gateway queued.
fn gateway_answers(pair: &mut Pair, from: SocketAddr, datagram: &[u8]) -> Vec<Transmit> {
    let mut buf = datagram.to_vec();
    let _ = pair.gateway.handle_datagram(pair.now, from, &mut buf);
    core::iter::from_fn(|| pair.gateway.poll_transmit()).collect()
}

#[test]
fn alternate_path_probe_is_answered_on_its_path_and_measured_apart() {
    let mut pair = Pair::new();
    assert_eq!(pair.client.probe_alternate_path(pair.now), None);
    pair.drive();
    pair.advance(Duration::from_millis(10));
    pair.drive();
    let main_before = pair.client.status(pair.now).path;
    // The session runs over a fallback whose address is `client_addr`; the probe goes out
    // over UDP from another address.
    let udp: SocketAddr = "198.18.1.2:50000".parse().unwrap();
    let probe = pair.client.probe_alternate_path(pair.now).unwrap();
    assert!(pair.client.poll_transmit().is_none(), "not queued");
    pair.now += Duration::from_millis(7);
    let echoes = gateway_answers(&mut pair, udp, &probe);
    assert_eq!(echoes.len(), 1);
    assert_eq!(
        echoes[0].destination, udp,
        "echoed where the probe came from"
    );
    let mut echo = echoes[0].contents.clone();
    assert_eq!(
        pair.client.handle_datagram(pair.now, udp, &mut echo),
        Ok(Received::Nothing)
    );
    let alt = pair.client.alternate_path();
    assert_eq!((alt.sent, alt.received), (1, 1));
    assert_eq!(alt.last, Some(Duration::from_millis(7)));
    assert_eq!(
        pair.client.status(pair.now).path,
        main_before,
        "main path untouched"
    );
    // A replayed probe changes nothing at the gateway.
    assert!(gateway_answers(&mut pair, udp, &probe).is_empty());
    // Main-path probes keep the top bit clear, so the two never mix.
    pair.client
        .handle_timeout(pair.now + Duration::from_secs(1));
    while let Some(t) = pair.client.poll_transmit() {
        let mut buf = t.contents.clone();
        let _ = pair
            .gateway
            .handle_datagram(pair.now, pair.client_addr, &mut buf);
    }
    assert_eq!(pair.client.alternate_path().sent, 1);
}

#[test]
fn initiate_now_replaces_a_lost_initiation() {
    let mut pair = Pair::new();
    assert!(pair.client.is_handshaking());
    let lost = pair.client.poll_transmit().unwrap();
    pair.advance(Duration::from_millis(1000));
    assert!(pair.client.poll_transmit().is_none(), "no retry before 5 s");
    pair.client.initiate_now(pair.now);
    let fresh = pair.client.poll_transmit().unwrap();
    assert_ne!(lost.contents, fresh.contents);
    let addr = pair.client_addr;
    let answers = gateway_answers(&mut pair, addr, &fresh.contents);
    let mut response = answers[0].contents.clone();
    assert_eq!(
        pair.client
            .handle_datagram(pair.now, answers[0].destination, &mut response),
        Ok(Received::Nothing)
    );
    assert!(pair.client.is_established() && !pair.client.is_handshaking());
    // A late answer to the replaced initiation is ignored.
    let late = gateway_answers(&mut pair, addr, &lost.contents);
    for t in late {
        let mut buf = t.contents.clone();
        assert!(
            pair.client
                .handle_datagram(pair.now, t.destination, &mut buf)
                .is_err()
        );
    }
    assert_eq!(pair.client.status(pair.now).handshakes, 1);
}

#[test]
fn keepalive_now_moves_the_gateway_endpoint() {
    let mut pair = Pair::new();
    assert!(!pair.client.keepalive_now(pair.now));
    pair.drive();
    let elsewhere: SocketAddr = "198.18.1.2:443".parse().unwrap();
    assert!(pair.client.keepalive_now(pair.now));
    let keepalive = pair.client.poll_transmit().unwrap();
    assert!(gateway_answers(&mut pair, elsewhere, &keepalive.contents).is_empty());
    let endpoint = pair.gateway.peers().next().unwrap().endpoint;
    assert_eq!(endpoint, Some(elsewhere));
}
