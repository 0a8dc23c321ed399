//! Feeds arbitrary bytes to the gateway's and the client's `handle_datagram`, and — so that
//! fuzzing gets past the mac1 check into the Noise parsing — the same bytes shaped into an
//! initiation (or response) whose mac1 is valid.
//!
//! Checks that nothing panics, that nothing unauthenticated is accepted, and that nothing but
//! a cookie reply (never larger than the request) is ever sent in answer.
#![no_main]

use std::sync::Mutex;
use std::time::{Duration, Instant};

use grelay_proto::crypto::keys::StaticSecret;
use grelay_proto::crypto::mac::MacKeys;
use grelay_proto::tunnel::client::{Client, ClientConfig};
use grelay_proto::tunnel::gateway::{Gateway, GatewayConfig, PeerConfig};
use grelay_proto::wire::control::AddressAssignment;
use grelay_proto::wire::outer::{INITIATION_LEN, RESPONSE_LEN};
use libfuzzer_sys::fuzz_target;

struct World {
    gateway: Gateway,
    client: Client,
    now: Instant,
    to_gateway: MacKeys,
    to_client: MacKeys,
}

static WORLD: Mutex<Option<World>> = Mutex::new(None);

fn world() -> World {
    let now = Instant::now();
    let gw = StaticSecret::from_bytes([1; 32]);
    let me = StaticSecret::from_bytes([2; 32]);
    let mut config = GatewayConfig::new(gw.clone());
    config.load_threshold = 2;
    let mut gateway = Gateway::new(config, now, [3; 32]);
    gateway.add_peer(PeerConfig {
        public_key: me.public_key(),
        psk: None,
        name: None,
        assignment: AddressAssignment { ipv4: Some(([10, 77, 0, 2].into(), 16)), ipv6: None, mtu: 1420 },
    });
    let endpoint = "198.18.0.1:4747".parse().expect("literal");
    let client = Client::new(
        ClientConfig::new(me.clone(), gw.public_key(), endpoint, Duration::from_secs(1 << 30)),
        now,
        [4; 32],
    );
    World {
        gateway,
        client,
        now,
        to_gateway: MacKeys::new(&gw.public_key()),
        to_client: MacKeys::new(&me.public_key()),
    }
}

fn with_mac1(data: &[u8], kind: u8, len: usize, keys: &MacKeys) -> Vec<u8> {
    let mut msg = vec![0u8; len];
    let n = data.len().min(len);
    msg[..n].copy_from_slice(&data[..n]);
    msg[0] = kind;
    msg[2] = 0;
    msg[3] = 0;
    if kind == 2 {
        msg[1] = 0;
    }
    let mac1_at = len - 32;
    let mac1 = keys.mac1(&msg[..mac1_at]);
    msg[mac1_at..mac1_at + 16].copy_from_slice(&mac1);
    msg
}

fuzz_target!(|data: &[u8]| {
    let mut guard = WORLD.lock().unwrap_or_else(|e| e.into_inner());
    let w = guard.get_or_insert_with(world);
    w.now += Duration::from_millis(1);
    let from = "198.18.9.9:999".parse().expect("literal");
    let inputs = [
        data.to_vec(),
        with_mac1(data, 1, INITIATION_LEN, &w.to_gateway),
        with_mac1(data, 2, RESPONSE_LEN, &w.to_client),
    ];
    for input in &inputs {
        let mut buf = input.clone();
        let accepted = w.gateway.handle_datagram(w.now, from, &mut buf).is_ok();
        assert!(!accepted, "gateway accepted forged bytes");
        while let Some(t) = w.gateway.poll_transmit() {
            assert!(t.contents.len() <= input.len(), "reply larger than the request");
            assert_eq!(t.contents[0], 3, "only cookie replies may answer the unauthenticated");
        }
        let mut buf = input.clone();
        let _ = w.client.handle_datagram(w.now, from, &mut buf);
        assert!(!w.client.is_established(), "client accepted a forged response");
    }
    while w.client.poll_transmit().is_some() {}
});
