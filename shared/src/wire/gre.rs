//! GRE as Linux `ip_gre` puts it on the wire: RFC 2784 with RFC 2890's key and sequence number.
//!
//! grelay's inner frame is a real GRE header so that the gateway can hand IP frames to a raw GRE
//! back end without re-framing, and so that Wireshark decodes what it sees.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |C|R|K|S|s|Recur|  Flags  | Ver |         Protocol Type         |  always
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |      Checksum (if C)          |       Reserved1 (if C)        |  C = 0x8000
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                         Key (if K)                            |  K = 0x2000
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                   Sequence Number (if S)                      |  S = 0x1000
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 payload (protocol type says what)             |
//! ```
//!
//! Accepted: version 0 with any combination of C, K and S. Rejected with a typed error:
//! version 1 (PPTP's enhanced GRE, see [`super::pptp`]) and 2..7 as
//! [`WireError::UnsupportedVersion`]; bits 1..5 other than K and S — the routing bit R of RFC
//! 1701 (its routing fields would change the layout), s, and the top bit of Recur — as
//! [`WireError::BadFlags`], as RFC 2784 §2.5 says a receiver that does not implement RFC 1701
//! MUST. Bits 6..12 (the rest of Recur and Flags) are ignored on receipt as §2.5.1 asks, and
//! always sent as zero.
//!
//! The checksum, when present, covers the GRE header and the payload, computed with the
//! checksum field zero (Linux `gre_build_header`). [`Packet::new_checked`] does not verify it
//! (the hot path rarely sets C); [`Repr::parse`] does, and [`Repr::emit_header`] computes it.
//! Reserved1 is sent as zero and ignored on receipt.

use core::ops::Range;

use super::{WireError, checksum, ensure_len};

/// Protocol type of an IPv4 payload (its EtherType), as `ip_gre` sends for an `ipip`-like tunnel.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// Protocol type of an IPv6 payload (its EtherType).
pub const ETHERTYPE_IPV6: u16 = 0x86DD;
/// Protocol type PPTP uses for PPP frames (RFC 2637); it travels in version-1 GRE only.
pub const PROTO_PPTP: u16 = 0x880B;
/// Protocol type of grelay's control frames (keepalive, RTT probe, rendezvous) inside the tunnel.
///
/// IEEE 802 Local Experimental EtherType 1: reserved for private protocols, so it can never be
/// mistaken for a real payload by a back end or by Wireshark.
pub const PROTO_CONTROL: u16 = 0x88B5;

/// C: the checksum and Reserved1 fields are present.
pub const FLAG_CHECKSUM: u16 = 0x8000;
/// R: RFC 1701 routing present; never sent by RFC 2784 senders, so rejected.
pub const FLAG_ROUTING: u16 = 0x4000;
/// K: the key field is present (RFC 2890).
pub const FLAG_KEY: u16 = 0x2000;
/// S: the sequence number field is present (RFC 2890).
pub const FLAG_SEQUENCE: u16 = 0x1000;
/// s: RFC 1701 strict source route; reserved in RFC 2784, so rejected.
pub const FLAG_STRICT_ROUTE: u16 = 0x0800;
/// Recur: RFC 1701 recursion control; reserved in RFC 2784, so rejected.
pub const RECURSION_MASK: u16 = 0x0700;
/// The five Flags bits reserved by RFC 1701 (PPTP uses the top one as its A bit).
pub const RESERVED_FLAGS_MASK: u16 = 0x00F8;
/// The version field: 0 for GRE, 1 for PPTP's enhanced GRE.
pub const VERSION_MASK: u16 = 0x0007;

/// Bits of the first word that a version-0 frame must have clear.
const REJECTED_FLAGS: u16 = FLAG_ROUTING | FLAG_STRICT_ROUTE | RECURSION_TOP_BIT;
/// Bits 6..12 (the low bits of Recur and the Flags): ignored on receipt, sent as zero.
pub const IGNORED_FLAGS: u16 = 0x03F8;
/// Bit 5, the top bit of Recur: one of the bits 1..5 a receiver must reject (RFC 2784 §2.5).
const RECURSION_TOP_BIT: u16 = 0x0400;

/// Length of the flags and protocol words every GRE header starts with.
pub const BASE_HEADER_LEN: usize = 4;
/// Length of the longest header this codec emits or accepts (C, K and S all set).
pub const MAX_HEADER_LEN: usize = BASE_HEADER_LEN + 3 * OPTION_LEN;
/// Each optional field (checksum + Reserved1, key, sequence) is one 32-bit word.
const OPTION_LEN: usize = 4;

/// Byte ranges of the fixed fields; the optional ones move with the flags.
mod field {
    use super::Range;

    /// C|R|K|S|s|Recur|Flags|Ver.
    pub const FLAGS: Range<usize> = 0..2;
    /// Protocol type (an EtherType).
    pub const PROTOCOL: Range<usize> = 2..4;
    /// Checksum, the first optional field when C is set.
    pub const CHECKSUM: Range<usize> = 4..6;
}

/// Reads a big-endian `u16` from a slice of exactly two bytes (callers slice by field range).
pub(super) fn be16(bytes: &[u8]) -> u16 {
    u16::from_be_bytes([bytes[0], bytes[1]])
}

/// Reads a big-endian `u32` from a slice of exactly four bytes (callers slice by field range).
pub(super) fn be32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// Header length for a given set of optional fields.
const fn header_len_for(checksum: bool, key: bool, sequence: bool) -> usize {
    BASE_HEADER_LEN + OPTION_LEN * (checksum as usize + key as usize + sequence as usize)
}

/// Offset of the key field: after the checksum word if there is one.
const fn key_offset(checksum: bool) -> usize {
    header_len_for(checksum, false, false)
}

/// Offset of the sequence field: after the checksum and key words that are present.
const fn sequence_offset(checksum: bool, key: bool) -> usize {
    header_len_for(checksum, key, false)
}

/// A read/write view of a GRE frame: header followed by payload, to the end of the buffer.
///
/// GRE has no length field: the frame ends where the enclosing datagram ends, so the view's
/// buffer must be exactly the frame. Build it with [`Packet::new_checked`] for bytes from a
/// peer; after that no accessor can panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without any check, for emitters that will write the header.
    ///
    /// Accessors may panic on such a view if the buffer is shorter than the header.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps untrusted bytes, failing unless [`Packet::check`] passes.
    ///
    /// The way to read a frame from a peer: afterwards every accessor is in bounds.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, WireError> {
        let packet = Packet::new_unchecked(buffer);
        packet.check()?;
        Ok(packet)
    }

    /// Checks the version, the reserved bits and that the buffer holds the whole header.
    ///
    /// Version is checked first so that a PPTP frame is reported as
    /// `UnsupportedVersion(1)` rather than by the PPTP-only bits it sets. The checksum is not
    /// verified here; see [`Packet::verify_checksum`].
    pub fn check(&self) -> Result<(), WireError> {
        ensure_len(self.buffer.as_ref(), BASE_HEADER_LEN)?;
        let flags = self.flags();
        let version = self.version();
        if version != 0 {
            return Err(WireError::UnsupportedVersion(version));
        }
        if flags & REJECTED_FLAGS != 0 {
            return Err(WireError::BadFlags(flags));
        }
        ensure_len(self.buffer.as_ref(), self.header_len())
    }

    /// Gives the buffer back, for callers that only needed to validate or write the header.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The raw first word (flags and version), for logging why a frame was refused.
    pub fn flags(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::FLAGS])
    }

    /// The version field: 0 for GRE (the only one this view accepts), 1 for PPTP.
    pub fn version(&self) -> u8 {
        // Masked to three bits, so the cast keeps every bit.
        (self.flags() & VERSION_MASK) as u8
    }

    /// Whether C is set, i.e. the checksum and Reserved1 fields are present.
    pub fn has_checksum(&self) -> bool {
        self.flags() & FLAG_CHECKSUM != 0
    }

    /// Whether K is set, i.e. the key field is present.
    pub fn has_key(&self) -> bool {
        self.flags() & FLAG_KEY != 0
    }

    /// Whether S is set, i.e. the sequence number field is present.
    pub fn has_sequence(&self) -> bool {
        self.flags() & FLAG_SEQUENCE != 0
    }

    /// The protocol type (an EtherType) saying what the payload is.
    pub fn protocol(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::PROTOCOL])
    }

    /// Length of the header as the flags lay it out; the payload starts here.
    pub fn header_len(&self) -> usize {
        header_len_for(self.has_checksum(), self.has_key(), self.has_sequence())
    }

    /// The checksum field as sent, if C is set.
    pub fn checksum(&self) -> Option<u16> {
        self.has_checksum()
            .then(|| be16(&self.buffer.as_ref()[field::CHECKSUM]))
    }

    /// The key (RFC 2890), if K is set: Linux uses it to pick among tunnels to one peer.
    pub fn key(&self) -> Option<u32> {
        let at = key_offset(self.has_checksum());
        self.has_key()
            .then(|| be32(&self.buffer.as_ref()[at..at + OPTION_LEN]))
    }

    /// The sequence number (RFC 2890), if S is set.
    pub fn sequence(&self) -> Option<u32> {
        let at = sequence_offset(self.has_checksum(), self.has_key());
        self.has_sequence()
            .then(|| be32(&self.buffer.as_ref()[at..at + OPTION_LEN]))
    }

    /// Whether the frame is intact: true if C is clear, else whether the checksum over the
    /// whole frame (header and payload, checksum field included) verifies.
    pub fn verify_checksum(&self) -> bool {
        !self.has_checksum() || checksum::checksum(self.buffer.as_ref()) == 0
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The payload (everything after the header), borrowed from the underlying buffer so that
    /// it outlives the view.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes the first word: the given optional fields, version 0, all reserved bits clear.
    ///
    /// Set this first: it decides where the key and sequence setters write.
    pub fn set_flags(&mut self, checksum: bool, key: bool, sequence: bool) {
        let flags = (if checksum { FLAG_CHECKSUM } else { 0 })
            | (if key { FLAG_KEY } else { 0 })
            | (if sequence { FLAG_SEQUENCE } else { 0 });
        self.buffer.as_mut()[field::FLAGS].copy_from_slice(&flags.to_be_bytes());
    }

    /// Writes the protocol type.
    pub fn set_protocol(&mut self, protocol: u16) {
        self.buffer.as_mut()[field::PROTOCOL].copy_from_slice(&protocol.to_be_bytes());
    }

    /// Writes the checksum field (C must be set), e.g. after patching the payload in place.
    pub fn set_checksum(&mut self, value: u16) {
        debug_assert!(self.has_checksum(), "GRE checksum field written without C");
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }

    /// Writes the key field (K must be set).
    pub fn set_key(&mut self, key: u32) {
        debug_assert!(self.has_key(), "GRE key written without K");
        let at = key_offset(self.has_checksum());
        self.buffer.as_mut()[at..at + OPTION_LEN].copy_from_slice(&key.to_be_bytes());
    }

    /// Writes the sequence number field (S must be set).
    pub fn set_sequence(&mut self, sequence: u32) {
        debug_assert!(self.has_sequence(), "GRE sequence written without S");
        let at = sequence_offset(self.has_checksum(), self.has_key());
        self.buffer.as_mut()[at..at + OPTION_LEN].copy_from_slice(&sequence.to_be_bytes());
    }

    /// Computes the checksum over the whole buffer and stores it (C must be set).
    ///
    /// Call it last, once the header and payload are final.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let value = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(value);
    }

    /// The payload, writable, for callers that build the inner packet after the header.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }
}

/// A GRE header's meaning, independent of its bytes.
///
/// What the tunnel code reads from and hands to the codec; the payload stays in its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Protocol type of the payload (an EtherType such as [`ETHERTYPE_IPV4`]).
    pub protocol: u16,
    /// Whether the frame carries a checksum (C).
    pub checksum: bool,
    /// The key (K), if present.
    pub key: Option<u32>,
    /// The sequence number (S), if present.
    pub sequence: Option<u32>,
}

impl Repr {
    /// Reads a frame's header, checking everything including the checksum.
    ///
    /// Re-runs [`Packet::check`], so it is safe on a view made with `new_unchecked` too.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr, WireError> {
        packet.check()?;
        if !packet.verify_checksum() {
            return Err(WireError::BadChecksum);
        }
        Ok(Repr {
            protocol: packet.protocol(),
            checksum: packet.has_checksum(),
            key: packet.key(),
            sequence: packet.sequence(),
        })
    }

    /// Bytes the header takes (4 to 16), i.e. the headroom a caller reserves before a payload.
    pub const fn header_len(&self) -> usize {
        header_len_for(self.checksum, self.key.is_some(), self.sequence.is_some())
    }

    /// Bytes of a whole frame carrying `payload_len` bytes of payload.
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        self.header_len().saturating_add(payload_len)
    }

    /// Writes the header into `buf[..header_len]` in front of a payload already in
    /// `buf[header_len..header_len + payload_len]`, and returns the header length.
    ///
    /// In place on purpose: the datapath reads the inner packet into a buffer with headroom
    /// and never copies it. With C set the checksum is computed over exactly
    /// `buf[..header_len + payload_len]`; bytes after that are not part of the frame.
    /// Reserved1 is written as zero.
    pub fn emit_header(&self, buf: &mut [u8], payload_len: usize) -> Result<usize, WireError> {
        let header_len = self.header_len();
        let frame_len = self.buffer_len(payload_len);
        if buf.len() < frame_len {
            return Err(WireError::BufferTooSmall {
                needed: frame_len,
                have: buf.len(),
            });
        }
        let mut packet = Packet::new_unchecked(&mut buf[..frame_len]);
        packet.buffer[..header_len].fill(0);
        packet.set_flags(self.checksum, self.key.is_some(), self.sequence.is_some());
        packet.set_protocol(self.protocol);
        if let Some(key) = self.key {
            packet.set_key(key);
        }
        if let Some(sequence) = self.sequence {
            packet.set_sequence(sequence);
        }
        if self.checksum {
            packet.fill_checksum();
        }
        Ok(header_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `header` followed by `payload`, as one frame.
    fn frame(header: &[u8], payload: &[u8]) -> Vec<u8> {
        [header, payload].concat()
    }

    /// Emits `repr` in place in front of `payload` and returns the whole frame.
    fn emit(repr: &Repr, payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0xa5; repr.header_len()];
        buf.extend_from_slice(payload);
        let header_len = repr
            .emit_header(&mut buf, payload.len())
            .expect("room for header");
        assert_eq!(header_len, repr.header_len());
        buf
    }

    fn parse(bytes: &[u8]) -> Result<Repr, WireError> {
        Repr::parse(&Packet::new_checked(bytes)?)
    }

    const PLAIN: Repr = Repr {
        protocol: ETHERTYPE_IPV4,
        checksum: false,
        key: None,
        sequence: None,
    };
    const KEYED: Repr = Repr {
        key: Some(42),
        ..PLAIN
    };
    const FULL: Repr = Repr {
        checksum: true,
        key: Some(42),
        sequence: Some(1),
        ..PLAIN
    };
    const IPV6_CS: Repr = Repr {
        protocol: ETHERTYPE_IPV6,
        checksum: true,
        key: None,
        sequence: Some(1),
    };

    #[test]
    fn linux_vectors_parse() {
        for (header, payload, repr) in [
            (&PLAIN_HEADER[..], &INNER_IPV4[..], PLAIN),
            (&K_HEADER[..], &INNER_IPV4[..], KEYED),
            (&CKS_HEADER[..], &INNER_IPV4[..], FULL),
            (&IPV6_CS_HEADER[..], &INNER_IPV6[..], IPV6_CS),
        ] {
            let bytes = frame(header, payload);
            let packet = Packet::new_checked(&bytes[..]).expect("valid frame");
            assert_eq!(Repr::parse(&packet), Ok(repr));
            assert_eq!(packet.header_len(), header.len());
            assert_eq!(packet.payload(), payload);
        }
    }

    #[test]
    fn linux_vectors_emit_in_place() {
        assert_eq!(emit(&PLAIN, &INNER_IPV4), frame(&PLAIN_HEADER, &INNER_IPV4));
        assert_eq!(emit(&KEYED, &INNER_IPV4), frame(&K_HEADER, &INNER_IPV4));
        assert_eq!(emit(&FULL, &INNER_IPV4), frame(&CKS_HEADER, &INNER_IPV4));
        assert_eq!(
            emit(&IPV6_CS, &INNER_IPV6),
            frame(&IPV6_CS_HEADER, &INNER_IPV6)
        );
    }

    #[test]
    fn accessors_read_the_full_header() {
        let bytes = frame(&CKS_HEADER, &INNER_IPV4);
        let packet = Packet::new_checked(&bytes[..]).expect("valid frame");
        assert_eq!(packet.flags(), 0xb000);
        assert_eq!(packet.version(), 0);
        assert_eq!(packet.protocol(), ETHERTYPE_IPV4);
        assert_eq!(packet.checksum(), Some(0x47d4));
        assert_eq!(packet.key(), Some(42));
        assert_eq!(packet.sequence(), Some(1));
        assert!(packet.verify_checksum());
        assert_eq!(packet.into_inner(), &bytes[..]);
    }

    #[test]
    fn emit_checksums_only_the_frame_not_trailing_bytes() {
        let mut buf = frame(&[0; 16], &INNER_IPV4);
        buf.extend_from_slice(&[0xee; 7]);
        let header_len = FULL.emit_header(&mut buf, INNER_IPV4.len());
        assert_eq!(header_len, Ok(16));
        assert_eq!(buf[..16], CKS_HEADER);
    }

    #[test]
    fn emit_zeroes_reserved1() {
        let mut buf = frame(&[0xff; 16], &INNER_IPV4);
        assert_eq!(FULL.emit_header(&mut buf, INNER_IPV4.len()), Ok(16));
        assert_eq!(buf[6..8], [0, 0]);
    }

    #[test]
    fn emit_rejects_a_buffer_without_room() {
        let mut buf = [0u8; 20];
        assert_eq!(
            FULL.emit_header(&mut buf, 5),
            Err(WireError::BufferTooSmall {
                needed: 21,
                have: 20
            })
        );
        assert_eq!(
            PLAIN.emit_header(&mut buf, usize::MAX),
            Err(WireError::BufferTooSmall {
                needed: usize::MAX,
                have: 20
            })
        );
    }

    #[test]
    fn reserved1_is_ignored_on_receipt() {
        let mut bytes = frame(&CKS_HEADER, &INNER_IPV4);
        bytes[6..8].copy_from_slice(&[0x12, 0x34]);
        bytes[4..6].copy_from_slice(&[0, 0]);
        let csum = checksum::checksum(&bytes);
        bytes[4..6].copy_from_slice(&csum.to_be_bytes());
        assert_eq!(parse(&bytes), Ok(FULL));
    }

    #[test]
    fn checksum_minus_zero_is_accepted() {
        // 0x8000 + 0x7fff = 0xffff, so the checksum is zero, sent here as 0xffff.
        let bytes = [0x80, 0x00, 0x7f, 0xff, 0xff, 0xff, 0x00, 0x00];
        let repr = Repr {
            protocol: 0x7fff,
            checksum: true,
            key: None,
            sequence: None,
        };
        assert_eq!(parse(&bytes), Ok(repr));
        assert_eq!(
            emit(&repr, &[]),
            [0x80, 0x00, 0x7f, 0xff, 0x00, 0x00, 0x00, 0x00]
        );
    }

    #[test]
    fn rejects_bad_checksum_in_parse_only() {
        let mut bytes = frame(&CKS_HEADER, &INNER_IPV4);
        if let Some(last) = bytes.last_mut() {
            *last ^= 1;
        }
        let packet = Packet::new_checked(&bytes[..]).expect("checksum not checked here");
        assert!(!packet.verify_checksum());
        assert_eq!(Repr::parse(&packet), Err(WireError::BadChecksum));
    }

    #[test]
    fn rejects_truncated_headers() {
        let bytes = frame(&CKS_HEADER, &INNER_IPV4);
        for (cut, needed) in [(0, 4), (1, 4), (3, 4), (4, 16), (8, 16), (12, 16), (15, 16)] {
            assert_eq!(
                parse(&bytes[..cut]),
                Err(WireError::Truncated { needed, have: cut }),
                "cut at {cut}"
            );
        }
        assert_eq!(
            parse(&K_HEADER[..7]),
            Err(WireError::Truncated { needed: 8, have: 7 })
        );
    }

    #[test]
    fn rejects_pptp_as_version_1() {
        let pptp = [
            0x30, 0x81, 0x88, 0x0b, 0x00, 0x00, 0x0c, 0x3e, 0, 0, 0, 0, 0, 0, 0, 5,
        ];
        assert_eq!(parse(&pptp), Err(WireError::UnsupportedVersion(1)));
    }

    #[test]
    fn rejects_versions_1_to_7() {
        for version in 1..=7u8 {
            let mut bytes = frame(&K_HEADER, &INNER_IPV4);
            bytes[1] |= version;
            assert_eq!(parse(&bytes), Err(WireError::UnsupportedVersion(version)));
        }
    }

    #[test]
    fn ignores_bits_6_to_12() {
        for bit in [0x0200u16, 0x0100, 0x0080, 0x0008] {
            let mut bytes = frame(&K_HEADER, &INNER_IPV4);
            bytes[..2].copy_from_slice(&(0x2000 | bit).to_be_bytes());
            assert!(parse(&bytes).is_ok(), "bit {bit:#06x}");
        }
    }

    #[test]
    fn rejects_routing_and_reserved_bits() {
        for bit in [FLAG_ROUTING, FLAG_STRICT_ROUTE, RECURSION_TOP_BIT] {
            let mut bytes = frame(&K_HEADER, &INNER_IPV4);
            let flags = 0x2000 | bit;
            bytes[..2].copy_from_slice(&flags.to_be_bytes());
            assert_eq!(
                parse(&bytes),
                Err(WireError::BadFlags(flags)),
                "bit {bit:#06x}"
            );
        }
    }

    #[test]
    fn setters_write_what_accessors_read() {
        let mut buf = [0u8; 16];
        let mut packet = Packet::new_unchecked(&mut buf[..]);
        packet.set_flags(true, true, true);
        packet.set_protocol(PROTO_CONTROL);
        packet.set_key(7);
        packet.set_sequence(9);
        packet.fill_checksum();
        assert!(packet.payload_mut().is_empty());
        assert_eq!(packet.key(), Some(7));
        assert_eq!(packet.sequence(), Some(9));
        assert!(packet.verify_checksum());
        assert_eq!(
            parse(&buf),
            Ok(Repr {
                protocol: PROTO_CONTROL,
                checksum: true,
                key: Some(7),
                sequence: Some(9)
            })
        );
    }

    #[test]
    fn header_lengths() {
        assert_eq!(PLAIN.header_len(), BASE_HEADER_LEN);
        assert_eq!(KEYED.header_len(), 8);
        assert_eq!(FULL.header_len(), MAX_HEADER_LEN);
        assert_eq!(FULL.buffer_len(36), 52);
    }

    fn any_repr() -> impl Strategy<Value = Repr> {
        (
            any::<u16>(),
            any::<bool>(),
            any::<Option<u32>>(),
            any::<Option<u32>>(),
        )
            .prop_map(|(protocol, checksum, key, sequence)| Repr {
                protocol,
                checksum,
                key,
                sequence,
            })
    }

    proptest! {
        #[test]
        fn emit_then_parse_round_trips(
            repr in any_repr(),
            payload in proptest::collection::vec(any::<u8>(), 0..128),
        ) {
            let bytes = emit(&repr, &payload);
            let packet = Packet::new_checked(&bytes[..]).expect("emitted frame checks");
            prop_assert_eq!(Repr::parse(&packet), Ok(repr));
            prop_assert_eq!(packet.payload(), &payload[..]);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..48)) {
            if let Ok(packet) = Packet::new_checked(&bytes[..]) {
                let _ = (packet.checksum(), packet.key(), packet.sequence(), packet.payload());
                if let Ok(repr) = Repr::parse(&packet) {
                    prop_assert!(repr.header_len() <= bytes.len());
                }
            }
        }

        #[test]
        fn any_first_word_is_accepted_or_typed(word in any::<u16>(), tail in any::<[u8; 14]>()) {
            let bytes = frame(&word.to_be_bytes(), &tail);
            match Packet::new_checked(&bytes[..]) {
                Ok(_) => prop_assert_eq!(word & (REJECTED_FLAGS | VERSION_MASK), 0),
                Err(WireError::UnsupportedVersion(v)) => prop_assert_eq!(u16::from(v), word & 7),
                Err(WireError::BadFlags(f)) => prop_assert_eq!(f, word),
                Err(e) => prop_assert!(false, "unexpected {e:?}"),
            }
        }
    }

    /// Inner packet: IPv4 ICMP echo request 10.77.0.2 -> 10.77.0.1, id 0x1234, seq 1, "grelay!!".
    const INNER_IPV4: [u8; 36] = [
        0x45, 0x00, 0x00, 0x24, 0x00, 0x01, 0x40, 0x00, 0x40, 0x01, 0x26, 0x3c, 0x0a, 0x4d, 0x00,
        0x02, 0x0a, 0x4d, 0x00, 0x01, 0x08, 0x00, 0x96, 0x51, 0x12, 0x34, 0x00, 0x01, 0x67, 0x72,
        0x65, 0x6c, 0x61, 0x79, 0x21, 0x21,
    ];

    /// Inner packet: IPv6 fd77::2 -> fd77::1, no next header (59), hop limit 64.
    const INNER_IPV6: [u8; 40] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3b, 0x40, 0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0x02, 0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
    ];

    // GRE headers as Linux `gre_build_header` writes them in front of the inner packets above
    // (`ip tunnel ... key 42` is 0x0000002a; `oseq` numbers from 0, this is the second frame).
    // Checksums worked by hand per RFC 1071 and confirmed by tshark's GRE dissector ("Good").

    /// No flags, IPv4: flags 0x0000, protocol 0x0800.
    const PLAIN_HEADER: [u8; 4] = [0x00, 0x00, 0x08, 0x00];

    /// K, IPv4: flags 0x2000, key 42.
    const K_HEADER: [u8; 8] = [0x20, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x2a];

    /// C, K, S, IPv4: flags 0xb000, checksum 0x47d4, Reserved1 0, key 42, sequence 1.
    const CKS_HEADER: [u8; 16] = [
        0xb0, 0x00, 0x08, 0x00, 0x47, 0xd4, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, 0x00, 0x00, 0x00,
        0x01,
    ];

    /// C, S, IPv6: flags 0x9000, checksum 0x52ed, Reserved1 0, sequence 1.
    const IPV6_CS_HEADER: [u8; 12] = [
        0x90, 0x00, 0x86, 0xdd, 0x52, 0xed, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    ];
}
