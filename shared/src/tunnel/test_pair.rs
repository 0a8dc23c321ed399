//! An in-memory client–gateway pair with a virtual clock, for the state machines' unit tests.

use core::net::{Ipv4Addr, SocketAddr};
use core::time::Duration;
use std::time::Instant;

use super::client::{Client, ClientConfig};
use super::gateway::{Gateway, GatewayConfig, PeerConfig, PeerId, Received as GwReceived};
use super::{HEADROOM, TAILROOM, Transmit};
use crate::crypto::keys::StaticSecret;
use crate::wire::control::AddressAssignment;

pub const GATEWAY_ADDR: &str = "198.18.0.1:4789";
pub const CLIENT_ADDR: &str = "198.18.1.2:40000";

pub struct Pair {
    pub now: Instant,
    pub client: Client,
    pub gateway: Gateway,
    pub peer: PeerId,
    pub client_addr: SocketAddr,
    /// Datagrams the gateway sent to the client, in order.
    pub to_client: Vec<Transmit>,
}

pub fn assignment(n: u8) -> AddressAssignment {
    AddressAssignment {
        ipv4: Some((Ipv4Addr::new(10, 77, 0, n), 16)),
        ipv6: None,
        mtu: 1420,
    }
}

/// A minimal IPv4/UDP packet from `src` with `payload`.
pub fn ipv4_packet(src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let total = 28 + payload.len();
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let csum = crate::wire::checksum::checksum(&p[..20]);
    p[10..12].copy_from_slice(&csum.to_be_bytes());
    p[20..22].copy_from_slice(&1234u16.to_be_bytes());
    p[22..24].copy_from_slice(&5678u16.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p[28..].copy_from_slice(payload);
    p
}

/// The pair's gateway key.
pub fn gateway_secret() -> StaticSecret {
    StaticSecret::from_bytes([1; 32])
}

/// The pair's client key.
pub fn client_secret() -> StaticSecret {
    StaticSecret::from_bytes([2; 32])
}

/// A gateway with `config` that knows the pair's client (address 10.77.0.2).
pub fn gateway_with_laptop(
    config: GatewayConfig,
    now: Instant,
    seed: [u8; 32],
) -> (Gateway, PeerId) {
    let mut gateway = Gateway::new(config, now, seed);
    let peer = gateway.add_peer(PeerConfig {
        public_key: client_secret().public_key(),
        psk: None,
        name: Some("laptop".into()),
        assignment: assignment(2),
    });
    (gateway, peer)
}

impl Pair {
    pub fn new() -> Self {
        let now = Instant::now();
        let gw_secret = gateway_secret();
        let client_secret = client_secret();
        let (gateway, peer) =
            gateway_with_laptop(GatewayConfig::new(gw_secret.clone()), now, [3; 32]);
        let config = ClientConfig::new(
            client_secret,
            gw_secret.public_key(),
            GATEWAY_ADDR.parse().unwrap(),
            Duration::from_secs(1_700_000_000),
        );
        let client = Client::new(config, now, [4; 32]);
        Self {
            now,
            client,
            gateway,
            peer,
            client_addr: CLIENT_ADDR.parse().unwrap(),
            to_client: Vec::new(),
        }
    }

    /// Moves every queued datagram both ways until both sides are quiet.
    pub fn drive(&mut self) {
        for _ in 0..20 {
            let mut moved = false;
            while let Some(t) = self.client.poll_transmit() {
                moved = true;
                let mut buf = t.contents.clone();
                let _ = self
                    .gateway
                    .handle_datagram(self.now, self.client_addr, &mut buf);
            }
            while let Some(t) = self.gateway.poll_transmit() {
                moved = true;
                self.to_client.push(t.clone());
                let mut buf = t.contents.clone();
                let _ = self
                    .client
                    .handle_datagram(self.now, t.destination, &mut buf);
            }
            if !moved {
                return;
            }
        }
        panic!("pair did not settle in 20 rounds");
    }

    /// The gateway restarts (same key and peer, no sessions, no remembered timestamps).
    pub fn restart_gateway(&mut self, config: GatewayConfig, seed: [u8; 32]) {
        (self.gateway, self.peer) = gateway_with_laptop(config, self.now, seed);
    }

    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.client.handle_timeout(self.now);
        self.gateway.handle_timeout(self.now);
    }

    /// Seals `packet` at the client and returns the datagram.
    pub fn client_seal(&mut self, packet: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; HEADROOM + packet.len() + TAILROOM];
        buf[HEADROOM..HEADROOM + packet.len()].copy_from_slice(packet);
        let n = self
            .client
            .encapsulate(self.now, &mut buf, packet.len())
            .unwrap();
        buf.truncate(n);
        buf
    }

    /// Delivers a datagram to the gateway and returns the inner packet, if any.
    pub fn gateway_receive(&mut self, datagram: &[u8]) -> Option<Vec<u8>> {
        let mut buf = datagram.to_vec();
        match self
            .gateway
            .handle_datagram(self.now, self.client_addr, &mut buf)
        {
            Ok(GwReceived::Packet { range, .. }) => Some(buf[range].to_vec()),
            _ => None,
        }
    }
}
