//! TCP MSS clamping, in place, on SYN and SYN-ACK segments crossing the tunnel.
//!
//! The tunnel's MTU is smaller than the path MTU the end hosts see on their own links, and
//! path MTU discovery through tunnels is unreliable (ICMP is filtered, or the ICMP would have to
//! come from inside the tunnel). So, like `iptables -j TCPMSS --clamp-mss-to-pmtu`, both ends
//! lower the Maximum Segment Size option of every SYN they forward to [`mss_for_mtu`] of the
//! tunnel MTU, and neither host ever sends a segment that does not fit.
//!
//! ```text
//!  TCP header (RFC 9293)              options, walked from byte 20 to data offset × 4
//!  16      Checksum   (bytes 16..18)  kind 0 EOL: stop      kind 1 NOP: one byte
//!  12      Data offset (high nibble)  kind 2 len 4 MSS: | 2 | 4 | MSS (u16, big-endian) |
//!  13      Flags, SYN = 0x02          other kinds: | kind | len ≥ 2 | len − 2 bytes |
//! ```
//!
//! Only TCP directly after the IP header is considered: IPv4 protocol 6 in an unfragmented
//! datagram or a first fragment, IPv6 next header 6 (extension headers are not walked, so a SYN
//! behind one passes unclamped; hosts do not send SYNs with extension headers in practice).
//! The option walk is bounds-checked and stops at EOL or at the first malformed length, leaving
//! the packet as it was. A SYN without an MSS option is left alone: the peer then assumes 536
//! (IPv4) or 1220 (IPv6), which fit any tunnel, and growing the header in place is not possible.
//!
//! The TCP checksum is patched incrementally (RFC 1624), so clamping costs a few additions
//! whatever the packet size. Nothing allocates.

use super::checksum::update16;
use super::ip::{self, IpVersion, Ipv4Packet, Ipv6Packet, PROTO_TCP};

/// Length of a TCP header without options.
const TCP_MIN_HEADER_LEN: usize = 20;
/// Byte holding the data offset in its high nibble.
const DATA_OFFSET: usize = 12;
/// Byte holding the flags.
const FLAGS: usize = 13;
/// SYN flag bit.
const FLAG_SYN: u8 = 0x02;
/// Offset of the checksum.
const CHECKSUM: usize = 16;
/// Option kind: end of option list.
const OPT_EOL: u8 = 0;
/// Option kind: no-operation (padding).
const OPT_NOP: u8 = 1;
/// Option kind: maximum segment size.
const OPT_MSS: u8 = 2;
/// Length of the MSS option, kind and length bytes included.
const OPT_MSS_LEN: usize = 4;
/// IPv4 header plus TCP header, both without options.
const IPV4_OVERHEAD: u16 = 40;
/// IPv6 fixed header plus TCP header without options.
const IPV6_OVERHEAD: u16 = 60;

/// The largest MSS a host may announce so that its full-size segments fit an `mtu`-byte packet:
/// the MTU minus the IP and TCP headers without options (40 bytes for IPv4, 60 for IPv6), as
/// RFC 9293 §3.7.1 defines the MSS. Pass the tunnel (TUN) MTU; saturates at 0.
pub fn mss_for_mtu(mtu: u16, ipv6: bool) -> u16 {
    mtu.saturating_sub(if ipv6 { IPV6_OVERHEAD } else { IPV4_OVERHEAD })
}

/// Lowers every MSS option of a TCP SYN (or SYN-ACK) in `packet`, an IPv4 or IPv6 packet, to
/// at most `max_mss`, and patches the TCP checksum. Returns whether the packet changed.
///
/// Anything else — not IP, not TCP, a non-first fragment, not a SYN, truncated, malformed
/// options, an MSS already small enough — is left untouched and returns `false`.
pub fn clamp_mss(packet: &mut [u8], max_mss: u16) -> bool {
    match tcp_segment(packet) {
        Some(segment) => clamp_segment(segment, max_mss),
        None => false,
    }
}

/// The TCP segment of `packet`, if it carries one right after its IP header.
fn tcp_segment(packet: &mut [u8]) -> Option<&mut [u8]> {
    let range = match ip::version(packet).ok()? {
        IpVersion::V4 => {
            let p = Ipv4Packet::new_checked(&*packet).ok()?;
            if p.protocol() != PROTO_TCP || p.fragment_offset() != 0 {
                return None;
            }
            p.header_len()..p.total_len()
        }
        IpVersion::V6 => {
            let p = Ipv6Packet::new_checked(&*packet).ok()?;
            if p.next_header() != PROTO_TCP {
                return None;
            }
            p.header_len()..p.total_len()
        }
    };
    packet.get_mut(range)
}

/// Clamps the MSS options of one TCP segment (the IP payload); see [`clamp_mss`].
fn clamp_segment(segment: &mut [u8], max_mss: u16) -> bool {
    if segment.len() < TCP_MIN_HEADER_LEN || segment[FLAGS] & FLAG_SYN == 0 {
        return false;
    }
    let header_len = usize::from(segment[DATA_OFFSET] >> 4) * 4;
    if header_len < TCP_MIN_HEADER_LEN || header_len > segment.len() {
        return false;
    }
    let mut changed = false;
    let mut at = TCP_MIN_HEADER_LEN;
    while at < header_len {
        match segment[at] {
            OPT_EOL => break,
            OPT_NOP => at += 1,
            kind => {
                let Some(&len) = segment[..header_len].get(at + 1) else {
                    break;
                };
                let len = usize::from(len);
                if len < 2 || at + len > header_len {
                    break;
                }
                if kind == OPT_MSS && len == OPT_MSS_LEN {
                    changed |= lower_mss(segment, at + 2, max_mss);
                }
                at += len;
            }
        }
    }
    changed
}

/// Lowers the MSS value at `at` (its two bytes lie inside the checked option) to `max_mss` if it
/// is larger, patching the checksum. Returns whether it changed.
fn lower_mss(segment: &mut [u8], at: usize, max_mss: u16) -> bool {
    let old = u16::from_be_bytes([segment[at], segment[at + 1]]);
    if old <= max_mss {
        return false;
    }
    segment[at..at + 2].copy_from_slice(&max_mss.to_be_bytes());
    // The checksum sums 16-bit words at even offsets of the segment (the IP header and the
    // pseudo-header have even lengths). A field at an odd offset straddles two words, high byte
    // in the low half of one and low byte in the high half of the next, which adds up to the
    // byte-swapped value.
    let (old, new) = if at % 2 == 0 {
        (old, max_mss)
    } else {
        (old.swap_bytes(), max_mss.swap_bytes())
    };
    let csum = u16::from_be_bytes([segment[CHECKSUM], segment[CHECKSUM + 1]]);
    segment[CHECKSUM..CHECKSUM + 2].copy_from_slice(&update16(csum, old, new).to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum::{checksum, fold, sum};
    use proptest::prelude::*;

    /// Linux SYN 10.77.0.2:45678 → 198.18.0.1:443: MSS 1460, SACK permitted, timestamps, NOP,
    /// window scale 7. IP checksum 0x1d2c, TCP checksum 0x8fc9.
    const SYN_V4: &str = concat!(
        "4500003c4d2e400040061d2c0a4d0002c6120001",
        "b26e01bb1a2b3c4d00000000a002faf08fc90000",
        "020405b40402080a0001e2400000000001030307",
    );
    /// Linux SYN-ACK [2001:db8::1]:443 → [fd77::2]:51000: MSS 1440, SACK permitted, timestamps,
    /// NOP, window scale 9. TCP checksum 0xd8ac.
    const SYN_ACK_V6: &str = concat!(
        "600000000028064020010db8000000000000000000000001fd770000000000000000000000000002",
        "01bbc738deadbeef1a2b3c4ea012fe88d8ac0000",
        "020405a00402080a9a3b0c110001e24001030309",
    );

    fn bytes(hex_str: &str) -> Vec<u8> {
        hex::decode(hex_str).unwrap()
    }

    /// Recomputes the TCP checksum in full, pseudo-header included: zero when it verifies.
    fn tcp_checksum(packet: &[u8]) -> u16 {
        match ip::IpPacket::new_checked(packet).unwrap() {
            ip::IpPacket::V4(p) => {
                let seg = p.payload();
                let mut pseudo = [0u8; 12];
                pseudo[..4].copy_from_slice(&p.src_addr().octets());
                pseudo[4..8].copy_from_slice(&p.dst_addr().octets());
                pseudo[9] = PROTO_TCP;
                pseudo[10..].copy_from_slice(&u16::try_from(seg.len()).unwrap().to_be_bytes());
                !fold(sum(seg, sum(&pseudo, 0)))
            }
            ip::IpPacket::V6(p) => {
                let seg = p.payload();
                let mut pseudo = [0u8; 40];
                pseudo[..16].copy_from_slice(&p.src_addr().octets());
                pseudo[16..32].copy_from_slice(&p.dst_addr().octets());
                pseudo[32..36].copy_from_slice(&u32::try_from(seg.len()).unwrap().to_be_bytes());
                pseudo[39] = PROTO_TCP;
                !fold(sum(seg, sum(&pseudo, 0)))
            }
        }
    }

    #[test]
    fn vectors_verify() {
        let v4 = bytes(SYN_V4);
        assert_eq!(checksum(&v4[..20]), 0);
        assert_eq!(tcp_checksum(&v4), 0);
        assert_eq!(tcp_checksum(&bytes(SYN_ACK_V6)), 0);
    }

    #[test]
    fn clamps_ipv4_syn() {
        let mut p = bytes(SYN_V4);
        assert!(clamp_mss(&mut p, mss_for_mtu(1420, false)));
        let mut expected = bytes(SYN_V4);
        expected[36..38].copy_from_slice(&[0x90, 0x19]); // checksum computed in full
        expected[42..44].copy_from_slice(&1380u16.to_be_bytes());
        assert_eq!(hex::encode(&p), hex::encode(&expected));
        assert_eq!(tcp_checksum(&p), 0);
        assert_eq!(checksum(&p[..20]), 0, "IP header untouched");
        assert!(!clamp_mss(&mut p, 1380), "already small enough");
    }

    #[test]
    fn clamps_ipv6_syn_ack() {
        let mut p = bytes(SYN_ACK_V6);
        assert!(clamp_mss(&mut p, mss_for_mtu(1420, true)));
        let mut expected = bytes(SYN_ACK_V6);
        expected[56..58].copy_from_slice(&[0xd8, 0xfc]);
        expected[62..64].copy_from_slice(&1360u16.to_be_bytes());
        assert_eq!(hex::encode(&p), hex::encode(&expected));
        assert_eq!(tcp_checksum(&p), 0);
    }

    #[test]
    fn leaves_larger_limit_alone() {
        let mut p = bytes(SYN_V4);
        assert!(!clamp_mss(&mut p, 1460));
        assert!(!clamp_mss(&mut p, u16::MAX));
        assert_eq!(p, bytes(SYN_V4));
    }

    #[test]
    fn odd_aligned_mss_option() {
        // Options: NOP, MSS 1460, NOP, NOP, NOP: the MSS value sits at segment offset 23.
        let mut p = bytes(SYN_V4);
        p[40..48].copy_from_slice(&[1, 2, 4, 0x05, 0xb4, 1, 1, 1]);
        p.truncate(48);
        p[3] = 48; // total length
        p[32] = 0x70; // data offset 7 words
        fix_ip_checksum(&mut p);
        set_tcp_checksum(&mut p);
        assert!(clamp_mss(&mut p, 1200));
        assert_eq!(&p[43..45], &1200u16.to_be_bytes());
        assert_eq!(tcp_checksum(&p), 0);
    }

    #[test]
    fn not_a_syn_or_not_tcp() {
        let mut ack = bytes(SYN_V4);
        ack[33] = 0x10;
        set_tcp_checksum(&mut ack);
        assert!(!clamp_mss(&mut ack, 536));
        let mut udp = bytes(SYN_V4);
        udp[9] = 17;
        assert!(!clamp_mss(&mut udp, 536));
        let mut v6_ext = bytes(SYN_ACK_V6);
        v6_ext[6] = 0; // hop-by-hop header first: not walked
        assert!(!clamp_mss(&mut v6_ext, 536));
        assert!(!clamp_mss(&mut [], 536));
        assert!(!clamp_mss(&mut [0x45], 536));
    }

    #[test]
    fn fragments() {
        let mut later = bytes(SYN_V4);
        later[6..8].copy_from_slice(&[0x00, 0x01]); // offset 8 bytes
        assert!(!clamp_mss(&mut later, 536));
        let mut first = bytes(SYN_V4);
        first[6..8].copy_from_slice(&[0x20, 0x00]); // MF, offset 0: the TCP header is here
        assert!(clamp_mss(&mut first, 536));
    }

    #[test]
    fn malformed_options_stop_the_walk() {
        for (opts, desc) in [
            ([0u8, 2, 4, 5, 0xb4, 1, 1, 1], "EOL before MSS"),
            ([8, 0, 2, 4, 5, 0xb4, 1, 1], "zero length"),
            ([8, 1, 2, 4, 5, 0xb4, 1, 1], "length 1"),
            ([1, 1, 1, 1, 1, 1, 8, 10], "length past the header"),
            ([1, 1, 1, 1, 1, 1, 1, 2], "kind without length byte"),
            ([2, 3, 5, 0xb4, 1, 1, 1, 1], "MSS with length 3"),
            ([1, 1, 1, 1, 1, 2, 4, 5], "MSS cut by data offset"),
        ] {
            let mut p = bytes(SYN_V4);
            p[40..48].copy_from_slice(&opts);
            p.truncate(48);
            p[3] = 48;
            p[32] = 0x70;
            let before = p.clone();
            assert!(!clamp_mss(&mut p, 536), "{desc}");
            assert_eq!(p, before, "{desc}");
        }
    }

    #[test]
    fn data_offset_checks() {
        let mut p = bytes(SYN_V4);
        p[32] = 0x40; // below 5 words
        assert!(!clamp_mss(&mut p, 536));
        let mut p = bytes(SYN_V4);
        p[32] = 0xb0; // 44 bytes, only 40 present
        assert!(!clamp_mss(&mut p, 536));
        let mut p = bytes(SYN_V4);
        p[32] = 0x50; // no options
        assert!(!clamp_mss(&mut p, 536));
    }

    #[test]
    fn mss_for_mtu_values() {
        assert_eq!(mss_for_mtu(1500, false), 1460);
        assert_eq!(mss_for_mtu(1500, true), 1440);
        assert_eq!(mss_for_mtu(1420, false), 1380);
        assert_eq!(mss_for_mtu(1420, true), 1360);
        assert_eq!(mss_for_mtu(50, true), 0);
    }

    fn fix_ip_checksum(p: &mut [u8]) {
        p[10..12].fill(0);
        let c = checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
    }

    /// Writes a correct TCP checksum, computed in full.
    fn set_tcp_checksum(p: &mut [u8]) {
        let off = if p[0] >> 4 == 4 { 20 } else { 40 };
        p[off + 16..off + 18].fill(0);
        let c = tcp_checksum(p);
        p[off + 16..off + 18].copy_from_slice(&c.to_be_bytes());
    }

    /// One TCP option, as a test builds it.
    fn option() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(vec![OPT_NOP]),
            any::<u16>().prop_map(|mss| {
                let [hi, lo] = mss.to_be_bytes();
                vec![OPT_MSS, 4, hi, lo]
            }),
            Just(vec![4, 2]),
            (0u8..15).prop_map(|ws| vec![3, 3, ws]),
            any::<[u8; 8]>().prop_map(|ts| [&[8u8, 10][..], &ts[..]].concat()),
        ]
    }

    /// A valid SYN with the given options, addresses and payload; IPv4 or IPv6.
    fn syn(ipv6: bool, opts: &[u8], addrs: &[u8; 32], payload: &[u8]) -> Vec<u8> {
        let mut tcp = bytes(SYN_V4)[20..40].to_vec();
        tcp.extend_from_slice(opts);
        tcp.resize(tcp.len().next_multiple_of(4), OPT_EOL);
        tcp[12] = u8::try_from(tcp.len() / 4).unwrap() << 4;
        tcp.extend_from_slice(payload);
        let mut p = if ipv6 {
            let mut h = bytes(SYN_ACK_V6)[..40].to_vec();
            h[4..6].copy_from_slice(&u16::try_from(tcp.len()).unwrap().to_be_bytes());
            h[8..40].copy_from_slice(addrs);
            h
        } else {
            let mut h = bytes(SYN_V4)[..20].to_vec();
            h[2..4].copy_from_slice(&u16::try_from(20 + tcp.len()).unwrap().to_be_bytes());
            h[12..20].copy_from_slice(&addrs[..8]);
            h
        };
        p.extend_from_slice(&tcp);
        if !ipv6 {
            fix_ip_checksum(&mut p);
        }
        set_tcp_checksum(&mut p);
        p
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(mut buf in proptest::collection::vec(any::<u8>(), 0..120), max in any::<u16>()) {
            clamp_mss(&mut buf, max);
        }

        #[test]
        fn mutated_syn_never_panics(pos in 0usize..80, val in any::<u8>(), max in any::<u16>()) {
            let mut p = bytes(SYN_ACK_V6);
            p[pos] = val;
            clamp_mss(&mut p, max);
        }

        #[test]
        fn garbage_options_keep_the_checksum_valid(
            ipv6 in any::<bool>(),
            opts in proptest::collection::vec(any::<u8>(), 0..=40),
            max in any::<u16>(),
        ) {
            let mut p = syn(ipv6, &opts, &[7; 32], b"data");
            clamp_mss(&mut p, max);
            prop_assert_eq!(tcp_checksum(&p), 0);
        }

        #[test]
        fn clamped_syn_still_verifies(
            ipv6 in any::<bool>(),
            opts in proptest::collection::vec(option(), 0..5),
            addrs in any::<[u8; 32]>(),
            payload in proptest::collection::vec(any::<u8>(), 0..33),
            max in any::<u16>(),
        ) {
            let opts = opts.concat();
            prop_assume!(opts.len() <= 40);
            let mut p = syn(ipv6, &opts, &addrs, &payload);
            prop_assert_eq!(tcp_checksum(&p), 0);
            let needs = opts.windows(2).enumerate().any(|(i, w)| {
                // An MSS option starts where the walk lands; the builder only makes whole options.
                w == [OPT_MSS, 4] && is_option_start(&opts, i)
                    && u16::from_be_bytes([opts[i + 2], opts[i + 3]]) > max
            });
            prop_assert_eq!(clamp_mss(&mut p, max), needs);
            prop_assert_eq!(tcp_checksum(&p), 0);
            let off = if ipv6 { 40 } else { 20 };
            prop_assert_eq!(&p[off + 20 + opts.len().next_multiple_of(4)..], &payload[..]);
        }
    }

    /// Whether an option begins at `i` when `opts` is walked from the start.
    fn is_option_start(opts: &[u8], i: usize) -> bool {
        let mut at = 0;
        while at < i {
            at += if opts[at] == OPT_NOP {
                1
            } else {
                usize::from(opts[at + 1])
            };
        }
        at == i
    }
}
