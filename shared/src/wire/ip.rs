//! Minimal IPv4 and IPv6 header views over decapsulated packets.
//!
//! The gateway routes a decapsulated packet by its inner destination and refuses it unless its
//! inner source belongs to the client that sent it (anti-spoofing); the client and gateway clamp
//! the MSS of TCP SYNs. That needs addresses, the protocol and the payload, and nothing more:
//! these views do not verify the IPv4 header checksum (the receiving stack does) and do not walk
//! IPv6 extension headers (a packet is routed by its fixed header alone).
//!
//! ```text
//! IPv4 (RFC 791)                              IPv6 (RFC 8200)
//!  0       4       8              16      32   0       4           12              32
//! +-------+-------+---------------+-------+   +-------+-------------+---------------+
//! |Ver=4  | IHL   | DSCP/ECN      | Total length  |Ver=6  | Traffic class | Flow label    |
//! +-------+-------+---------------+-------+   +-------+-------------+---------------+
//! | Identification| Flags | Fragment offset|   | Payload length | Next header | Hop limit |
//! +---------------+-------+----------------+   +---------------+-------------+-----------+
//! | TTL   | Protocol | Header checksum     |   | Source address (16 bytes)              |
//! +-------+----------+---------------------+   +----------------------------------------+
//! | Source address                         |   | Destination address (16 bytes)         |
//! | Destination address                    |   +----------------------------------------+
//! | Options (IHL > 5)                      |     40 bytes, then the payload
//! +----------------------------------------+
//! ```
//!
//! `new_checked` is the only constructor, so every accessor can index the header directly: the
//! lengths it checked are the invariant. Bytes past the IP total length (link padding) are
//! ignored. A jumbogram (IPv6 payload length 0 with a hop-by-hop jumbo option) reads as an empty
//! payload; the tunnel MTU never carries one.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::ops::Range;

use super::{WireError, ensure_len};

/// IP protocol number of TCP, in IPv4's protocol field and IPv6's next header.
pub const PROTO_TCP: u8 = 6;

/// Byte ranges of the IPv4 header fields.
mod v4 {
    use super::Range;

    /// Version (high nibble) and IHL (low nibble).
    pub const VER_IHL: usize = 0;
    /// Total length of the datagram, header included.
    pub const TOTAL_LEN: Range<usize> = 2..4;
    /// Flags (3 bits) and fragment offset (13 bits, in units of 8 bytes).
    pub const FLAGS_FRAG: Range<usize> = 6..8;
    /// Protocol of the payload.
    pub const PROTOCOL: usize = 9;
    /// Source address.
    pub const SRC: Range<usize> = 12..16;
    /// Destination address.
    pub const DST: Range<usize> = 16..20;
    /// Length of a header without options.
    pub const MIN_HEADER_LEN: usize = 20;
}

/// Byte ranges of the IPv6 fixed header fields.
mod v6 {
    use super::Range;

    /// Length of the payload after the fixed header, extension headers included.
    pub const PAYLOAD_LEN: Range<usize> = 4..6;
    /// Type of the header after the fixed one.
    pub const NEXT_HEADER: usize = 6;
    /// Source address.
    pub const SRC: Range<usize> = 8..24;
    /// Destination address.
    pub const DST: Range<usize> = 24..40;
    /// Length of the fixed header.
    pub const HEADER_LEN: usize = 40;
}

/// The IP version of a packet, read from its first nibble.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpVersion {
    /// IPv4: GRE protocol type 0x0800.
    V4,
    /// IPv6: GRE protocol type 0x86DD.
    V6,
}

/// Reads the version nibble, so a caller can pick the view (and the GRE protocol type) for a
/// packet read from the TUN device, which carries no other hint.
pub fn version(packet: &[u8]) -> Result<IpVersion, WireError> {
    ensure_len(packet, 1)?;
    match packet[0] >> 4 {
        4 => Ok(IpVersion::V4),
        6 => Ok(IpVersion::V6),
        other => Err(WireError::UnsupportedVersion(other)),
    }
}

/// The inner destination address, by which the gateway routes a decapsulated packet.
pub fn destination(packet: &[u8]) -> Result<IpAddr, WireError> {
    Ok(IpPacket::new_checked(packet)?.dst_addr())
}

/// The inner source address, which the gateway checks belongs to the sending client.
pub fn source(packet: &[u8]) -> Result<IpAddr, WireError> {
    Ok(IpPacket::new_checked(packet)?.src_addr())
}

/// A checked IPv4 or IPv6 packet, for code that handles both alike.
#[derive(Clone, Copy, Debug)]
pub enum IpPacket<T: AsRef<[u8]>> {
    /// An IPv4 packet.
    V4(Ipv4Packet<T>),
    /// An IPv6 packet.
    V6(Ipv6Packet<T>),
}

impl<T: AsRef<[u8]>> IpPacket<T> {
    /// Dispatches on the version nibble and checks the lengths of that version's header.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        match version(buffer.as_ref())? {
            IpVersion::V4 => Ipv4Packet::new_checked(buffer).map(Self::V4),
            IpVersion::V6 => Ipv6Packet::new_checked(buffer).map(Self::V6),
        }
    }

    /// Source address.
    pub fn src_addr(&self) -> IpAddr {
        match self {
            Self::V4(p) => p.src_addr().into(),
            Self::V6(p) => p.src_addr().into(),
        }
    }

    /// Destination address.
    pub fn dst_addr(&self) -> IpAddr {
        match self {
            Self::V4(p) => p.dst_addr().into(),
            Self::V6(p) => p.dst_addr().into(),
        }
    }
}

/// A view of an IPv4 packet whose header and total length were checked.
#[derive(Clone, Copy, Debug)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    /// The packet; `new_checked` guarantees `header_len() <= total_len() <= buffer.len()`.
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Checks that `buffer` holds an IPv4 header (version 4, IHL ≥ 5, all of it present) and
    /// the whole datagram its total length announces.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        ensure_len(b, v4::MIN_HEADER_LEN)?;
        let version = b[v4::VER_IHL] >> 4;
        if version != 4 {
            return Err(WireError::UnsupportedVersion(version));
        }
        let header_len = usize::from(b[v4::VER_IHL] & 0x0f) * 4;
        if header_len < v4::MIN_HEADER_LEN {
            return Err(WireError::InvalidField("ipv4 ihl"));
        }
        ensure_len(b, header_len)?;
        let total_len = usize::from(be16(b, v4::TOTAL_LEN.start));
        if total_len < header_len {
            return Err(WireError::BadLength {
                expected: header_len,
                got: total_len,
            });
        }
        ensure_len(b, total_len)?;
        Ok(Self { buffer })
    }

    /// Header length in bytes, options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[v4::VER_IHL] & 0x0f) * 4
    }

    /// Length of the datagram, header included, as its header says.
    pub fn total_len(&self) -> usize {
        usize::from(be16(self.buffer.as_ref(), v4::TOTAL_LEN.start))
    }

    /// Protocol of the payload (6 for TCP).
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[v4::PROTOCOL]
    }

    /// Offset of this fragment's payload in the original datagram, in bytes. Nonzero means the
    /// payload does not start with the transport header.
    pub fn fragment_offset(&self) -> usize {
        usize::from(be16(self.buffer.as_ref(), v4::FLAGS_FRAG.start) & 0x1fff) * 8
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[v4::SRC];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[v4::DST];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// The bytes after the header, up to the total length.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.total_len()]
    }
}

/// A view of an IPv6 packet whose fixed header and payload length were checked.
#[derive(Clone, Copy, Debug)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    /// The packet; `new_checked` guarantees `40 + payload length <= buffer.len()`.
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Checks that `buffer` holds the 40-byte fixed header with version 6 and the whole payload
    /// its payload length announces.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        ensure_len(b, v6::HEADER_LEN)?;
        let version = b[0] >> 4;
        if version != 6 {
            return Err(WireError::UnsupportedVersion(version));
        }
        let payload_len = usize::from(be16(b, v6::PAYLOAD_LEN.start));
        ensure_len(b, v6::HEADER_LEN + payload_len)?;
        Ok(Self { buffer })
    }

    /// Length of the fixed header; extension headers count as payload here.
    pub fn header_len(&self) -> usize {
        v6::HEADER_LEN
    }

    /// Length of the packet, fixed header included, as its header says.
    pub fn total_len(&self) -> usize {
        v6::HEADER_LEN + usize::from(be16(self.buffer.as_ref(), v6::PAYLOAD_LEN.start))
    }

    /// Type of the header after the fixed one (6 for TCP without extension headers).
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[v6::NEXT_HEADER]
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(addr16(&self.buffer.as_ref()[v6::SRC]))
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(addr16(&self.buffer.as_ref()[v6::DST]))
    }

    /// The bytes after the fixed header, up to the payload length.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[v6::HEADER_LEN..self.total_len()]
    }
}

/// The big-endian 16-bit field at `at`; callers pass offsets inside the checked header.
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Copies a 16-byte address field out of the header.
fn addr16(field: &[u8]) -> [u8; 16] {
    let mut addr = [0u8; 16];
    // Callers pass one of the 16-byte ranges above, so the lengths match.
    addr.copy_from_slice(field);
    addr
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An ICMP echo request 10.77.0.2 → 198.18.0.1, as `ping` writes it to a TUN device
    /// (header checksum 0x4e39 and ICMP checksum 0xf7fe computed in full).
    const ICMP_V4: &str = concat!(
        "4500001c1c4640004001",
        "4e39",
        "0a4d0002c6120001", // header
        "0800f7fe00010000", // ICMP echo
    );

    /// An ICMPv6 echo request fd77::2 → 2001:db8::1 (checksum 0x5487 over the pseudo-header
    /// computed in full).
    const ICMP_V6: &str = concat!(
        "6000000000083a40",
        "fd770000000000000000000000000002",
        "20010db8000000000000000000000001",
        "8000548700010001",
    );

    fn bytes(hex_str: &str) -> Vec<u8> {
        hex::decode(hex_str).unwrap()
    }

    #[test]
    fn ipv4_vector() {
        let buf = bytes(ICMP_V4);
        assert_eq!(
            crate::wire::checksum::checksum(&buf[..20]),
            0,
            "header checksum"
        );
        assert_eq!(
            crate::wire::checksum::checksum(&buf[20..]),
            0,
            "ICMP checksum"
        );
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 28);
        assert_eq!(p.protocol(), 1);
        assert_eq!(p.fragment_offset(), 0);
        assert_eq!(p.src_addr(), Ipv4Addr::new(10, 77, 0, 2));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(p.payload(), &buf[20..]);
        assert_eq!(version(&buf), Ok(IpVersion::V4));
        assert_eq!(
            destination(&buf),
            Ok(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)))
        );
        assert_eq!(source(&buf), Ok(IpAddr::V4(Ipv4Addr::new(10, 77, 0, 2))));
    }

    #[test]
    fn ipv6_vector() {
        let buf = bytes(ICMP_V6);
        let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.header_len(), 40);
        assert_eq!(p.total_len(), 48);
        assert_eq!(p.next_header(), 58);
        assert_eq!(p.src_addr(), "fd77::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst_addr(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.payload(), &buf[40..]);
        assert_eq!(version(&buf), Ok(IpVersion::V6));
        assert_eq!(destination(&buf), Ok("2001:db8::1".parse().unwrap()));
        assert_eq!(source(&buf), Ok("fd77::2".parse().unwrap()));
    }

    #[test]
    fn padding_past_total_length_is_ignored() {
        let mut buf = bytes(ICMP_V4);
        buf.extend_from_slice(&[0; 18]);
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload().len(), 8);
        let mut buf = bytes(ICMP_V6);
        buf.push(0xee);
        let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload().len(), 8);
    }

    #[test]
    fn ipv4_rejections() {
        let good = bytes(ICMP_V4);
        assert_eq!(
            Ipv4Packet::new_checked(&good[..19]).unwrap_err(),
            WireError::Truncated {
                needed: 20,
                have: 19
            }
        );
        assert_eq!(
            Ipv4Packet::new_checked(&good[..27]).unwrap_err(),
            WireError::Truncated {
                needed: 28,
                have: 27
            }
        );
        let mut ihl4 = good.clone();
        ihl4[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&ihl4[..]).unwrap_err(),
            WireError::InvalidField("ipv4 ihl")
        );
        let mut ihl15 = good.clone();
        ihl15[0] = 0x4f;
        assert_eq!(
            Ipv4Packet::new_checked(&ihl15[..]).unwrap_err(),
            WireError::Truncated {
                needed: 60,
                have: 28
            }
        );
        let mut short_total = good.clone();
        short_total[3] = 19;
        assert_eq!(
            Ipv4Packet::new_checked(&short_total[..]).unwrap_err(),
            WireError::BadLength {
                expected: 20,
                got: 19
            }
        );
        assert_eq!(
            Ipv4Packet::new_checked(&bytes(ICMP_V6)[..]).unwrap_err(),
            WireError::UnsupportedVersion(6)
        );
    }

    #[test]
    fn ipv6_rejections() {
        let good = bytes(ICMP_V6);
        assert_eq!(
            Ipv6Packet::new_checked(&good[..39]).unwrap_err(),
            WireError::Truncated {
                needed: 40,
                have: 39
            }
        );
        assert_eq!(
            Ipv6Packet::new_checked(&good[..47]).unwrap_err(),
            WireError::Truncated {
                needed: 48,
                have: 47
            }
        );
        let mut v4 = bytes(ICMP_V4);
        v4.resize(48, 0);
        assert_eq!(
            Ipv6Packet::new_checked(&v4[..]).unwrap_err(),
            WireError::UnsupportedVersion(4)
        );
    }

    #[test]
    fn version_rejections() {
        assert_eq!(
            version(&[]),
            Err(WireError::Truncated { needed: 1, have: 0 })
        );
        assert_eq!(version(&[0x50]), Err(WireError::UnsupportedVersion(5)));
        assert_eq!(
            destination(&[0x45]),
            Err(WireError::Truncated {
                needed: 20,
                have: 1
            })
        );
    }

    #[test]
    fn fragment_offset() {
        let mut buf = bytes(ICMP_V4);
        buf[6] = 0x20; // MF
        buf[7] = 0xb9; // offset 185 × 8
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.fragment_offset(), 1480);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = destination(&buf);
            let _ = source(&buf);
            if let Ok(p) = Ipv4Packet::new_checked(&buf[..]) {
                prop_assert!(p.header_len() <= p.total_len() && p.total_len() <= buf.len());
                let _ = (p.payload(), p.protocol(), p.fragment_offset());
            }
            if let Ok(p) = Ipv6Packet::new_checked(&buf[..]) {
                prop_assert!(p.total_len() <= buf.len());
                let _ = (p.payload(), p.next_header());
            }
        }

        #[test]
        fn addresses_round_trip(src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(), extra in 0usize..8) {
            let mut v4 = bytes(ICMP_V4);
            v4[12..16].copy_from_slice(&src[..4]);
            v4[16..20].copy_from_slice(&dst[..4]);
            v4.resize(v4.len() + extra, 0);
            prop_assert_eq!(source(&v4), Ok(IpAddr::from([src[0], src[1], src[2], src[3]])));
            prop_assert_eq!(destination(&v4), Ok(IpAddr::from([dst[0], dst[1], dst[2], dst[3]])));
            let mut v6 = bytes(ICMP_V6);
            v6[8..24].copy_from_slice(&src);
            v6[24..40].copy_from_slice(&dst);
            prop_assert_eq!(source(&v6), Ok(IpAddr::from(src)));
            prop_assert_eq!(destination(&v6), Ok(IpAddr::from(dst)));
        }
    }
}
