//! Criterion benchmark of the data path: seal+encode at the client and decode+open at the
//! gateway, for a full-size (1420-byte) and a tiny (64-byte) inner packet, with both AEADs.
//! Run by hand: `cargo bench -p grelay-proto --bench datapath`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_main};
use grelay_proto::crypto::aead::CipherSuite;
use grelay_proto::crypto::keys::StaticSecret;
use grelay_proto::tunnel::client::{Client, ClientConfig};
use grelay_proto::tunnel::gateway::{Gateway, GatewayConfig, PeerConfig};
use grelay_proto::tunnel::{HEADROOM, TAILROOM};
use grelay_proto::wire::control::AddressAssignment;

fn connected(suite: CipherSuite) -> (Client, Gateway, Instant) {
    let now = Instant::now();
    let gw = StaticSecret::from_bytes([1; 32]);
    let me = StaticSecret::from_bytes([2; 32]);
    let mut gateway = Gateway::new(GatewayConfig::new(gw.clone()), now, [3; 32]);
    gateway.add_peer(PeerConfig {
        public_key: me.public_key(),
        psk: None,
        name: None,
        assignment: AddressAssignment {
            ipv4: Some(([10, 77, 0, 2].into(), 16)),
            ipv6: None,
            mtu: 1420,
        },
    });
    let endpoint = "198.18.0.1:4747".parse().unwrap();
    let mut config = ClientConfig::new(me, gw.public_key(), endpoint, Duration::from_secs(1 << 30));
    config.suite = suite;
    let mut client = Client::new(config, now, [4; 32]);
    let from = "198.18.1.2:40000".parse().unwrap();
    for _ in 0..4 {
        while let Some(t) = client.poll_transmit() {
            let _ = gateway.handle_datagram(now, from, &mut t.contents.clone());
        }
        while let Some(t) = gateway.poll_transmit() {
            let _ = client.handle_datagram(now, t.destination, &mut t.contents.clone());
        }
    }
    assert!(client.is_established());
    (client, gateway, now)
}

fn ipv4(len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[9] = 17;
    p[12..16].copy_from_slice(&[10, 77, 0, 2]);
    p[16..20].copy_from_slice(&[10, 99, 0, 2]);
    p
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("datapath");
    for suite in [CipherSuite::ChaCha20Poly1305, CipherSuite::Aes256Gcm] {
        for len in [64usize, 1420] {
            let (mut client, mut gateway, now) = connected(suite);
            let packet = ipv4(len);
            let mut buf = vec![0u8; HEADROOM + len + TAILROOM];
            group.throughput(Throughput::Bytes(len as u64));
            let id = format!("{}/{len}", suite.name());
            group.bench_function(BenchmarkId::new("seal_encode", &id), |b| {
                b.iter(|| {
                    buf[HEADROOM..HEADROOM + len].copy_from_slice(&packet);
                    black_box(client.encapsulate(now, &mut buf, len).unwrap())
                })
            });
            // Sealing happens in the untimed setup, so each timed run opens a fresh datagram
            // (a repeated one would be refused by the replay window: the wrong path).
            let from = "198.18.1.2:40000".parse().unwrap();
            group.bench_function(BenchmarkId::new("decode_open", &id), |b| {
                b.iter_batched_ref(
                    || {
                        buf[HEADROOM..HEADROOM + len].copy_from_slice(&packet);
                        let n = client.encapsulate(now, &mut buf, len).unwrap();
                        buf[..n].to_vec()
                    },
                    |d| black_box(gateway.handle_datagram(now, from, d).is_ok()),
                    criterion::BatchSize::SmallInput,
                )
            });
        }
    }
    group.finish();
}

#[allow(missing_docs)]
mod harness {
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(harness::benches);
