use super::*;
use crate::crypto::aead::CipherSuite;
use crate::tunnel::client::{Client, ClientConfig};
use crate::tunnel::test_pair::*;
use core::net::Ipv4Addr;
use core::time::Duration;

fn data_packet(pair: &mut Pair, payload: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let packet = ipv4_packet(
        Ipv4Addr::new(10, 77, 0, 2),
        Ipv4Addr::new(10, 99, 0, 2),
        payload,
    );
    let datagram = pair.client_seal(&packet);
    (packet, datagram)
}

#[test]
fn roams_only_on_authenticated_packets() {
    let mut pair = Pair::new();
    pair.drive();
    let (packet, datagram) = data_packet(&mut pair, b"a");
    let new_addr: SocketAddr = "198.18.7.7:999".parse().unwrap();
    // A bit-flipped copy from another address changes nothing.
    let mut flipped = datagram.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert_eq!(
        pair.gateway
            .handle_datagram(pair.now, new_addr, &mut flipped),
        Err(DropReason::Authentication)
    );
    assert_eq!(
        pair.gateway.peers().next().unwrap().endpoint,
        Some(pair.client_addr)
    );
    // The genuine packet from the new address moves the endpoint.
    let mut buf = datagram.clone();
    let got = pair
        .gateway
        .handle_datagram(pair.now, new_addr, &mut buf)
        .unwrap();
    assert!(matches!(got, Received::Packet { .. }));
    assert_eq!(
        pair.gateway.peers().next().unwrap().endpoint,
        Some(new_addr)
    );
    let events: Vec<_> = core::iter::from_fn(|| pair.gateway.poll_event()).collect();
    assert!(events.contains(&GatewayEvent::Roamed {
        peer: pair.peer,
        from: pair.client_addr,
        to: new_addr
    }));
    // Replaying it from the old address does not move it back.
    let mut again = datagram;
    assert_eq!(
        pair.gateway
            .handle_datagram(pair.now, pair.client_addr, &mut again),
        Err(DropReason::Replay)
    );
    assert_eq!(
        pair.gateway.peers().next().unwrap().endpoint,
        Some(new_addr)
    );
    let _ = packet;
}

#[test]
fn spoofed_inner_source_is_dropped() {
    let mut pair = Pair::new();
    pair.drive();
    let packet = ipv4_packet(
        Ipv4Addr::new(10, 77, 0, 9),
        Ipv4Addr::new(10, 99, 0, 2),
        b"x",
    );
    let datagram = pair.client_seal(&packet);
    let mut buf = datagram;
    assert_eq!(
        pair.gateway
            .handle_datagram(pair.now, pair.client_addr, &mut buf),
        Err(DropReason::SourceNotAllowed)
    );
    assert_eq!(
        pair.gateway.stats().drops.get(DropReason::SourceNotAllowed),
        1
    );
}

#[test]
fn unknown_key_gets_no_answer() {
    let mut pair = Pair::new();
    let stranger = ClientConfig::new(
        StaticSecret::from_bytes([9; 32]),
        *pair.gateway.public_key(),
        GATEWAY_ADDR.parse().unwrap(),
        Duration::from_secs(1_700_000_000),
    );
    let mut client = Client::new(stranger, pair.now, [5; 32]);
    let mut init = client.poll_transmit().unwrap().contents;
    assert_eq!(
        pair.gateway
            .handle_datagram(pair.now, pair.client_addr, &mut init),
        Err(DropReason::UnknownKey)
    );
    assert!(pair.gateway.poll_transmit().is_none());
    // Junk with a wrong mac1 neither.
    let mut junk = [0u8; 148];
    junk[0] = 1;
    assert_eq!(
        pair.gateway
            .handle_datagram(pair.now, pair.client_addr, &mut junk),
        Err(DropReason::BadMac)
    );
    assert!(pair.gateway.poll_transmit().is_none());
}

#[test]
fn replayed_initiation_is_refused() {
    let mut pair = Pair::new();
    let init = pair.client.poll_transmit().unwrap().contents;
    let mut first = init.clone();
    pair.gateway
        .handle_datagram(pair.now, pair.client_addr, &mut first)
        .unwrap();
    let mut replay = init;
    assert_eq!(
        pair.gateway
            .handle_datagram(pair.now, pair.client_addr, &mut replay),
        Err(DropReason::StaleInitiation)
    );
    assert_eq!(pair.gateway.stats().handshakes, 1);
}

#[test]
fn under_load_demands_cookie_then_serves() {
    let mut pair = Pair::new();
    let mut config = GatewayConfig::new(StaticSecret::from_bytes([1; 32]));
    config.load_threshold = 0;
    pair.restart_gateway(config, [3; 32]);
    let mut init = pair.client.poll_transmit().unwrap().contents;
    let request_len = init.len();
    assert_eq!(
        pair.gateway
            .handle_datagram(pair.now, pair.client_addr, &mut init),
        Err(DropReason::CookieRequired)
    );
    let cookie = pair.gateway.poll_transmit().unwrap();
    assert!(cookie.contents.len() < request_len, "no amplification");
    let mut c = cookie.contents.clone();
    pair.client
        .handle_datagram(pair.now, cookie.destination, &mut c)
        .unwrap();
    // The retry carries mac2 and is served.
    pair.advance(Duration::from_secs(6));
    pair.drive();
    assert!(pair.client.is_established());
    assert_eq!(pair.gateway.stats().cookie_replies, 1);
    // The cookie is bound to the address: the same client from elsewhere must get a new one.
    let _ = CipherSuite::Aes256Gcm;
}

#[test]
fn removed_peer_loses_session_at_once() {
    let mut pair = Pair::new();
    pair.drive();
    let key = StaticSecret::from_bytes([2; 32]).public_key();
    assert_eq!(pair.gateway.remove_peer(&key), Some(pair.peer));
    assert_eq!(pair.gateway.session_count(), 0);
    let (_, datagram) = data_packet(&mut pair, b"late");
    let mut buf = datagram;
    assert_eq!(
        pair.gateway
            .handle_datagram(pair.now, pair.client_addr, &mut buf),
        Err(DropReason::UnknownSession)
    );
    assert_eq!(pair.gateway.route(Ipv4Addr::new(10, 77, 0, 2).into()), None);
}

#[test]
fn routes_client_addresses_to_peers() {
    let pair = Pair::new();
    assert_eq!(
        pair.gateway.route(Ipv4Addr::new(10, 77, 0, 2).into()),
        Some(pair.peer)
    );
    assert_eq!(pair.gateway.route(Ipv4Addr::new(10, 77, 0, 3).into()), None);
}

#[test]
fn aes_gcm_sessions_work() {
    let now = std::time::Instant::now();
    let gw_secret = StaticSecret::from_bytes([1; 32]);
    let mut gateway = Gateway::new(GatewayConfig::new(gw_secret.clone()), now, [3; 32]);
    let client_secret = StaticSecret::from_bytes([2; 32]);
    gateway.add_peer(PeerConfig {
        public_key: client_secret.public_key(),
        psk: Some([7; 32]),
        name: None,
        assignment: assignment(2),
    });
    let mut config = ClientConfig::new(
        client_secret,
        gw_secret.public_key(),
        GATEWAY_ADDR.parse().unwrap(),
        Duration::from_secs(1_700_000_000),
    );
    config.suite = CipherSuite::Aes256Gcm;
    config.psk = Some([7; 32]);
    let mut client = Client::new(config, now, [4; 32]);
    let from: SocketAddr = CLIENT_ADDR.parse().unwrap();
    let mut init = client.poll_transmit().unwrap().contents;
    gateway.handle_datagram(now, from, &mut init).unwrap();
    let mut resp = gateway.poll_transmit().unwrap().contents;
    client.handle_datagram(now, from, &mut resp).unwrap();
    assert_eq!(client.status(now).suite, Some(CipherSuite::Aes256Gcm));
}

#[test]
fn retry_after_lost_response_is_served() {
    let mut pair = Pair::new();
    let mut first = pair.client.poll_transmit().unwrap().contents;
    pair.gateway
        .handle_datagram(pair.now, pair.client_addr, &mut first)
        .unwrap();
    let _lost = pair.gateway.poll_transmit().unwrap();
    pair.advance(Duration::from_secs(6));
    let mut retry = pair
        .client
        .poll_transmit()
        .expect("client retried")
        .contents;
    assert_eq!(
        pair.gateway
            .handle_datagram(pair.now, pair.client_addr, &mut retry),
        Ok(Received::Nothing)
    );
    pair.drive();
    assert!(pair.client.is_established());
}

#[test]
fn a_replayed_initiation_after_a_restart_does_not_move_the_endpoint() {
    let mut pair = Pair::new();
    let init = pair.client.poll_transmit().unwrap().contents;
    let mut first = init.clone();
    pair.gateway
        .handle_datagram(pair.now, pair.client_addr, &mut first)
        .unwrap();
    let mut response = pair.gateway.poll_transmit().unwrap().contents;
    pair.client
        .handle_datagram(pair.now, pair.client_addr, &mut response)
        .unwrap();
    pair.drive();
    // The gateway restarts (forgetting timestamps); the client re-handshakes and works.
    pair.restart_gateway(GatewayConfig::new(gateway_secret()), [9; 32]);
    let mut replay = init;
    let attacker: SocketAddr = "198.18.66.6:6666".parse().unwrap();
    // The old initiation is accepted (nothing remembers it) but moves nothing.
    assert_eq!(
        pair.gateway
            .handle_datagram(pair.now, attacker, &mut replay),
        Ok(Received::Nothing)
    );
    let answer = pair.gateway.poll_transmit().unwrap();
    assert_eq!(answer.destination, attacker);
    assert!(answer.contents.len() < 148, "no amplification");
    assert_eq!(pair.gateway.peers().next().unwrap().endpoint, None);
    let _ = pair.gateway.poll_event();
}
