//! The application traffic of the simulation: small IPv4/UDP packets carrying a unique id.

use std::net::Ipv4Addr;

use grelay_proto::wire::checksum;
use grelay_proto::wire::ip::Ipv4Packet;

/// The game server behind the gateway; it echoes every packet.
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);

const HEADER: usize = 28;

/// An IPv4/UDP packet from `src` to `dst` whose payload is `id`.
pub fn udp_packet(src: Ipv4Addr, dst: Ipv4Addr, id: u64) -> Vec<u8> {
    let total = HEADER + 8;
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let csum = checksum::checksum(&p[..20]);
    p[10..12].copy_from_slice(&csum.to_be_bytes());
    p[20..22].copy_from_slice(&7000u16.to_be_bytes());
    p[22..24].copy_from_slice(&7000u16.to_be_bytes());
    p[24..26].copy_from_slice(&16u16.to_be_bytes());
    p[HEADER..].copy_from_slice(&id.to_be_bytes());
    p
}

/// The id carried by a packet made by [`udp_packet`].
pub fn packet_id(packet: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = packet.get(HEADER..HEADER + 8)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// Source and destination of an IPv4 packet.
pub(super) fn addresses(packet: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr)> {
    let p = Ipv4Packet::new_checked(packet).ok()?;
    Some((p.src_addr(), p.dst_addr()))
}
