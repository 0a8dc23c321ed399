//! Cisco-style GRE keepalives.
//!
//! The probe is a GRE frame whose payload is an IP packet addressed from the back end to us,
//! carrying an empty GRE frame of protocol type 0. The far end decapsulates the outer GRE and
//! routes the inner packet — which is plain GRE addressed to us — straight back. So a probe
//! comes back only if the far end is up, decapsulates with the right key, and can route to us:
//! the same path real traffic takes. Any GRE speaker does this without configuration.

use core::net::IpAddr;

use crate::wire::checksum;
use crate::wire::gre;

/// The GRE protocol type of the returning keepalive (what Cisco routers send).
pub const KEEPALIVE_PROTOCOL: u16 = 0x0000;
const IPPROTO_GRE: u8 = 47;

/// Builds the payload of a probe: an IP packet `remote → local` holding an empty GRE frame
/// (with `key` if the tunnel uses one, so the returning frame passes the key check).
pub(crate) fn probe_payload(remote: IpAddr, local: IpAddr, key: Option<u32>) -> Vec<u8> {
    let inner = gre::Repr {
        protocol: KEEPALIVE_PROTOCOL,
        checksum: false,
        key,
        sequence: None,
    };
    let gre_len = inner.header_len();
    let (header_len, mut packet) = match (remote, local) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let total = 20 + gre_len;
            let mut p = vec![0u8; total];
            p[0] = 0x45;
            p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            p[6] = 0x40; // DF
            p[8] = 255;
            p[9] = IPPROTO_GRE;
            p[12..16].copy_from_slice(&src.octets());
            p[16..20].copy_from_slice(&dst.octets());
            let csum = checksum::checksum(&p[..20]);
            p[10..12].copy_from_slice(&csum.to_be_bytes());
            (20, p)
        }
        (src, dst) => {
            let (src, dst) = (to_v6(src), to_v6(dst));
            let mut p = vec![0u8; 40 + gre_len];
            p[0] = 0x60;
            p[4..6].copy_from_slice(&(gre_len as u16).to_be_bytes());
            p[6] = IPPROTO_GRE;
            p[7] = 255;
            p[8..24].copy_from_slice(&src.octets());
            p[24..40].copy_from_slice(&dst.octets());
            (40, p)
        }
    };
    // Invariant: the buffer was sized for exactly this header and no payload.
    inner
        .emit_header(&mut packet[header_len..], 0)
        .expect("sized for the header");
    packet
}

/// Where the GRE frame starts inside `packet` if `packet` is the far end's own keepalive: an
/// IP packet addressed to the far end itself (`remote`) that carries GRE.
pub(crate) fn reflectable(packet: &[u8], remote: IpAddr) -> Option<usize> {
    use crate::wire::ip::{Ipv4Packet, Ipv6Packet};
    match packet.first()? >> 4 {
        4 => {
            let p = Ipv4Packet::new_checked(packet).ok()?;
            let ours = IpAddr::V4(p.dst_addr()) == remote && p.protocol() == IPPROTO_GRE;
            (ours && p.fragment_offset() == 0).then_some(p.header_len())
        }
        6 => {
            let p = Ipv6Packet::new_checked(packet).ok()?;
            let ours = IpAddr::V6(p.dst_addr()) == remote && p.next_header() == IPPROTO_GRE;
            ours.then_some(p.header_len())
        }
        _ => None,
    }
}

fn to_v6(addr: IpAddr) -> core::net::Ipv6Addr {
    match addr {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ip;

    #[test]
    fn ipv4_probe_is_a_valid_packet_back_to_us() {
        let remote: IpAddr = "198.18.5.2".parse().unwrap();
        let local: IpAddr = "198.18.1.2".parse().unwrap();
        let p = probe_payload(remote, local, Some(7));
        assert_eq!(ip::source(&p), Ok(remote));
        assert_eq!(ip::destination(&p), Ok(local));
        assert_eq!(checksum::checksum(&p[..20]), 0, "header checksum verifies");
        let frame = gre::Packet::new_checked(&p[20..]).unwrap();
        let repr = gre::Repr::parse(&frame).unwrap();
        assert_eq!((repr.protocol, repr.key), (KEEPALIVE_PROTOCOL, Some(7)));
    }

    #[test]
    fn the_far_ends_keepalive_is_recognised() {
        // A far end probing us sends what we send it, with the roles swapped.
        let us: IpAddr = "198.18.1.2".parse().unwrap();
        let far: IpAddr = "198.18.5.2".parse().unwrap();
        let theirs = probe_payload(us, far, None);
        assert_eq!(reflectable(&theirs, far), Some(20));
        assert_eq!(reflectable(&theirs, us), None);
        assert_eq!(reflectable(&[0x45, 0, 0], far), None);
    }

    #[test]
    fn ipv6_probe() {
        let remote: IpAddr = "2001:db8:5::2".parse().unwrap();
        let local: IpAddr = "2001:db8:1::2".parse().unwrap();
        let p = probe_payload(remote, local, None);
        assert_eq!(p.len(), 44);
        assert_eq!(ip::destination(&p), Ok(local));
    }
}
