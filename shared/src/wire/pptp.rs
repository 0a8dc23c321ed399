//! PPTP's enhanced GRE (RFC 2637 §4.1): GRE version 1 carrying PPP, keyed by call id.
//!
//! grelay does not speak PPTP, but wherever it reads GRE from outside (the raw GRE back end,
//! IP protocol 47) version-1 frames arrive next to plain GRE; [`super::gre`] refuses them as
//! `UnsupportedVersion(1)` and this codec reads them, so they are recognised and counted as PPTP
//! rather than as garbage, and a PPTP pass-through has a codec to build on.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |0|0|1|S|0|0 0 0|A|0 0 0 0|0 0 1|    Protocol Type (0x880B)     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   Key (HW): Payload Length    |     Key (LW): Call ID         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 Sequence Number (if S, 0x1000)                |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |             Acknowledgment Number (if A, 0x0080)              |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          payload (a PPP frame, Payload Length bytes)          |
//! ```
//!
//! Rejected with a typed error: a version other than 1 ([`WireError::UnsupportedVersion`]);
//! C, R, s, Recur or the four Flags bits set, or K clear ([`WireError::BadFlags`]); a protocol
//! type other than 0x880B ([`WireError::BadProtocol`]); a payload length larger than the bytes
//! after the header ([`WireError::Truncated`]); a nonzero payload length with S clear
//! ([`WireError::InvalidField`]: RFC 2637 sets S exactly when a payload is present, so a frame
//! without S is an acknowledgement only). Bytes after the payload (Ethernet padding of a short
//! acknowledgement) are allowed and are not part of [`Packet::payload`].

use core::ops::Range;

use super::gre::{
    FLAG_CHECKSUM, FLAG_KEY, FLAG_ROUTING, FLAG_SEQUENCE, FLAG_STRICT_ROUTE, PROTO_PPTP,
    RECURSION_MASK, VERSION_MASK, be16, be32,
};
use super::{WireError, ensure_len};

/// A: the acknowledgement number field is present (PPTP's use of the first RFC 1701 Flags bit).
pub const FLAG_ACK: u16 = 0x0080;
/// The GRE version PPTP uses ("enhanced GRE").
pub const VERSION: u8 = 1;
/// The four Flags bits after A, which RFC 2637 requires to be zero.
const RESERVED_FLAGS_MASK: u16 = 0x0078;
/// Bits of the first word that must be clear in a PPTP frame.
const REJECTED_FLAGS: u16 =
    FLAG_CHECKSUM | FLAG_ROUTING | FLAG_STRICT_ROUTE | RECURSION_MASK | RESERVED_FLAGS_MASK;

/// Length of the flags, protocol and key words every PPTP GRE header has.
pub const BASE_HEADER_LEN: usize = 8;
/// Length of the longest header (S and A both set).
pub const MAX_HEADER_LEN: usize = BASE_HEADER_LEN + 2 * OPTION_LEN;
/// Each optional field (sequence, acknowledgement) is one 32-bit word.
const OPTION_LEN: usize = 4;
/// Bytes needed to read the version and flags, checked before anything else.
const FLAGS_AND_PROTOCOL_LEN: usize = 4;

/// Byte ranges of the fixed fields; the optional ones move with S.
mod field {
    use super::Range;

    /// C|R|K|S|s|Recur|A|Flags|Ver.
    pub const FLAGS: Range<usize> = 0..2;
    /// Protocol type, always 0x880B.
    pub const PROTOCOL: Range<usize> = 2..4;
    /// High half of the key: payload length in bytes.
    pub const PAYLOAD_LEN: Range<usize> = 4..6;
    /// Low half of the key: the peer's call id.
    pub const CALL_ID: Range<usize> = 6..8;
    /// The sequence number, when S is set.
    pub const SEQUENCE: Range<usize> = 8..12;
}

/// Header length for a given set of optional fields.
const fn header_len_for(sequence: bool, ack: bool) -> usize {
    BASE_HEADER_LEN + OPTION_LEN * (sequence as usize + ack as usize)
}

/// A read/write view of a PPTP GRE frame.
///
/// Build it with [`Packet::new_checked`] for bytes from a peer; after that no accessor can
/// panic and [`Packet::payload`] is exactly the announced payload length.
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

    /// Checks version, flags, protocol type, header length and payload length, in that order.
    ///
    /// Version first so that a plain GRE frame is reported as `UnsupportedVersion(0)`.
    pub fn check(&self) -> Result<(), WireError> {
        let buf = self.buffer.as_ref();
        ensure_len(buf, FLAGS_AND_PROTOCOL_LEN)?;
        let version = self.version();
        if version != VERSION {
            return Err(WireError::UnsupportedVersion(version));
        }
        let flags = self.flags();
        if flags & REJECTED_FLAGS != 0 || flags & FLAG_KEY == 0 {
            return Err(WireError::BadFlags(flags));
        }
        if self.protocol() != PROTO_PPTP {
            return Err(WireError::BadProtocol(self.protocol()));
        }
        ensure_len(buf, self.header_len())?;
        if self.payload_len() != 0 && !self.has_sequence() {
            return Err(WireError::InvalidField("payload_len"));
        }
        ensure_len(buf, self.frame_len())
    }

    /// Gives the buffer back, for callers that only needed to validate or write the header.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The raw first word (flags and version), for logging why a frame was refused.
    pub fn flags(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::FLAGS])
    }

    /// The version field: 1 for PPTP (the only one this view accepts), 0 for plain GRE.
    pub fn version(&self) -> u8 {
        // Masked to three bits, so the cast keeps every bit.
        (self.flags() & VERSION_MASK) as u8
    }

    /// Whether S is set: the frame carries a sequence number and (possibly) a payload.
    pub fn has_sequence(&self) -> bool {
        self.flags() & FLAG_SEQUENCE != 0
    }

    /// Whether A is set: the frame acknowledges the peer's data up to an acknowledgement number.
    pub fn has_ack(&self) -> bool {
        self.flags() & FLAG_ACK != 0
    }

    /// The protocol type (0x880B in any frame that passed the check).
    pub fn protocol(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::PROTOCOL])
    }

    /// The payload length announced in the key's high half.
    pub fn payload_len(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::PAYLOAD_LEN])
    }

    /// The call id in the key's low half: which PPTP call (session) the frame belongs to.
    pub fn call_id(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CALL_ID])
    }

    /// The sequence number, if S is set.
    pub fn sequence(&self) -> Option<u32> {
        self.has_sequence()
            .then(|| be32(&self.buffer.as_ref()[field::SEQUENCE]))
    }

    /// The acknowledgement number, if A is set.
    pub fn ack(&self) -> Option<u32> {
        let at = self.ack_offset();
        self.has_ack()
            .then(|| be32(&self.buffer.as_ref()[at..at + OPTION_LEN]))
    }

    /// Length of the header as the flags lay it out; the payload starts here.
    pub fn header_len(&self) -> usize {
        header_len_for(self.has_sequence(), self.has_ack())
    }

    /// Header plus announced payload: the frame, without any trailing padding.
    pub fn frame_len(&self) -> usize {
        self.header_len() + usize::from(self.payload_len())
    }

    /// Offset of the acknowledgement field: after the sequence number if there is one.
    fn ack_offset(&self) -> usize {
        header_len_for(self.has_sequence(), false)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The PPP frame: exactly the announced payload length after the header, borrowed from the
    /// underlying buffer so that it outlives the view.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[self.header_len()..self.frame_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes the first word: K, the given optional fields, version 1, all else clear.
    ///
    /// Set this first: it decides where the acknowledgement setter writes.
    pub fn set_flags(&mut self, sequence: bool, ack: bool) {
        let flags = FLAG_KEY
            | (if sequence { FLAG_SEQUENCE } else { 0 })
            | (if ack { FLAG_ACK } else { 0 })
            | u16::from(VERSION);
        self.buffer.as_mut()[field::FLAGS].copy_from_slice(&flags.to_be_bytes());
    }

    /// Writes the protocol type (0x880B for a valid frame).
    pub fn set_protocol(&mut self, protocol: u16) {
        self.buffer.as_mut()[field::PROTOCOL].copy_from_slice(&protocol.to_be_bytes());
    }

    /// Writes the payload length (the key's high half).
    pub fn set_payload_len(&mut self, len: u16) {
        self.buffer.as_mut()[field::PAYLOAD_LEN].copy_from_slice(&len.to_be_bytes());
    }

    /// Writes the call id (the key's low half).
    pub fn set_call_id(&mut self, call_id: u16) {
        self.buffer.as_mut()[field::CALL_ID].copy_from_slice(&call_id.to_be_bytes());
    }

    /// Writes the sequence number (S must be set).
    pub fn set_sequence(&mut self, sequence: u32) {
        debug_assert!(self.has_sequence(), "PPTP sequence written without S");
        self.buffer.as_mut()[field::SEQUENCE].copy_from_slice(&sequence.to_be_bytes());
    }

    /// Writes the acknowledgement number (A must be set).
    pub fn set_ack(&mut self, ack: u32) {
        debug_assert!(self.has_ack(), "PPTP ack written without A");
        let at = self.ack_offset();
        self.buffer.as_mut()[at..at + OPTION_LEN].copy_from_slice(&ack.to_be_bytes());
    }

    /// The payload, writable: from the header to the end of the buffer.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }
}

/// A PPTP GRE header's meaning, independent of its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// The receiving peer's call id.
    pub call_id: u16,
    /// Bytes of PPP payload after the header; nonzero only when `sequence` is present.
    pub payload_len: u16,
    /// The sequence number (S), present on every frame that carries a payload.
    pub sequence: Option<u32>,
    /// The acknowledgement number (A), if the frame acknowledges received data.
    pub ack: Option<u32>,
}

impl Repr {
    /// Reads a frame's header after re-running [`Packet::check`], so it is safe on a view
    /// made with `new_unchecked` too.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr, WireError> {
        packet.check()?;
        Ok(Repr {
            call_id: packet.call_id(),
            payload_len: packet.payload_len(),
            sequence: packet.sequence(),
            ack: packet.ack(),
        })
    }

    /// Bytes the header takes (8 to 16), i.e. the headroom a caller reserves before a payload.
    pub const fn header_len(&self) -> usize {
        header_len_for(self.sequence.is_some(), self.ack.is_some())
    }

    /// Bytes of the whole frame: header plus payload.
    pub const fn buffer_len(&self) -> usize {
        self.header_len() + self.payload_len as usize
    }

    /// Writes the header into `buf[..header_len]` in front of the `payload_len` bytes of payload
    /// already in the buffer, and returns the header length.
    ///
    /// Refuses what [`Repr::parse`] would refuse (a payload without a sequence number) so that
    /// every emitted frame parses back.
    pub fn emit_header(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        if self.payload_len != 0 && self.sequence.is_none() {
            return Err(WireError::InvalidField("payload_len"));
        }
        if buf.len() < self.buffer_len() {
            return Err(WireError::BufferTooSmall {
                needed: self.buffer_len(),
                have: buf.len(),
            });
        }
        let mut packet = Packet::new_unchecked(buf);
        packet.set_flags(self.sequence.is_some(), self.ack.is_some());
        packet.set_protocol(PROTO_PPTP);
        packet.set_payload_len(self.payload_len);
        packet.set_call_id(self.call_id);
        if let Some(sequence) = self.sequence {
            packet.set_sequence(sequence);
        }
        if let Some(ack) = self.ack {
            packet.set_ack(ack);
        }
        Ok(self.header_len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(bytes: &[u8]) -> Result<Repr, WireError> {
        Repr::parse(&Packet::new_checked(bytes)?)
    }

    /// Emits `repr` in place in front of `payload` and returns the whole frame.
    fn emit(repr: &Repr, payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0xa5; repr.header_len()];
        buf.extend_from_slice(payload);
        assert_eq!(repr.emit_header(&mut buf), Ok(repr.header_len()));
        buf
    }

    /// `bytes` with the first word replaced by `flags`.
    fn with_flags(bytes: &[u8], flags: u16) -> Vec<u8> {
        [&flags.to_be_bytes()[..], &bytes[2..]].concat()
    }

    const DATA: Repr = Repr {
        call_id: 0x0c3e,
        payload_len: 12,
        sequence: Some(0),
        ack: None,
    };
    const ACK: Repr = Repr {
        call_id: 0x0c3e,
        payload_len: 0,
        sequence: None,
        ack: Some(5),
    };
    const DATA_ACK: Repr = Repr {
        call_id: 0x0c3e,
        payload_len: 12,
        sequence: Some(6),
        ack: Some(5),
    };

    #[test]
    fn vectors_parse() {
        for (bytes, repr, header_len) in [
            (&DATA_SEQ[..], DATA, 12),
            (&ACK_ONLY[..], ACK, 12),
            (&DATA_SEQ_ACK[..], DATA_ACK, 16),
        ] {
            let packet = Packet::new_checked(bytes).expect("valid frame");
            assert_eq!(Repr::parse(&packet), Ok(repr));
            assert_eq!(packet.header_len(), header_len);
            assert_eq!(packet.payload(), &bytes[header_len..]);
        }
    }

    #[test]
    fn vectors_emit_in_place() {
        assert_eq!(emit(&DATA, &LCP_ECHO_REQUEST), DATA_SEQ);
        assert_eq!(emit(&ACK, &[]), ACK_ONLY);
        assert_eq!(emit(&DATA_ACK, &LCP_ECHO_REQUEST), DATA_SEQ_ACK);
    }

    #[test]
    fn accessors_read_the_full_header() {
        let packet = Packet::new_checked(&DATA_SEQ_ACK[..]).expect("valid frame");
        assert_eq!(packet.flags(), 0x3081);
        assert_eq!(packet.version(), 1);
        assert_eq!(packet.protocol(), PROTO_PPTP);
        assert_eq!(packet.payload_len(), 12);
        assert_eq!(packet.call_id(), 0x0c3e);
        assert_eq!(packet.sequence(), Some(6));
        assert_eq!(packet.ack(), Some(5));
        assert_eq!(packet.frame_len(), DATA_SEQ_ACK.len());
        assert_eq!(packet.into_inner(), &DATA_SEQ_ACK[..]);
    }

    #[test]
    fn padding_after_the_payload_is_not_payload() {
        let padded = [&DATA_SEQ[..], &[0; 6]].concat();
        let packet = Packet::new_checked(&padded[..]).expect("padding allowed");
        assert_eq!(packet.payload(), LCP_ECHO_REQUEST);
        let padded_ack = [&ACK_ONLY[..], &[0; 14]].concat();
        assert_eq!(parse(&padded_ack), Ok(ACK));
    }

    #[test]
    fn rejects_payload_length_beyond_the_bytes() {
        let mut bytes = DATA_SEQ;
        bytes[4..6].copy_from_slice(&13u16.to_be_bytes());
        assert_eq!(
            parse(&bytes),
            Err(WireError::Truncated {
                needed: 25,
                have: 24
            })
        );
        bytes[4..6].copy_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(
            parse(&bytes),
            Err(WireError::Truncated {
                needed: 12 + 65535,
                have: 24
            })
        );
    }

    #[test]
    fn rejects_payload_without_sequence() {
        let bytes = [0x20, 0x01, 0x88, 0x0b, 0x00, 0x04, 0x0c, 0x3e, 1, 2, 3, 4];
        assert_eq!(parse(&bytes), Err(WireError::InvalidField("payload_len")));
        let repr = Repr {
            payload_len: 4,
            ..ACK
        };
        assert_eq!(
            repr.emit_header(&mut [0; 32]),
            Err(WireError::InvalidField("payload_len"))
        );
    }

    #[test]
    fn rejects_other_versions() {
        for version in [0u16, 2, 3, 4, 5, 6, 7] {
            let bytes = with_flags(&DATA_SEQ, 0x3000 | version);
            assert_eq!(
                parse(&bytes),
                Err(WireError::UnsupportedVersion(version as u8))
            );
        }
    }

    #[test]
    fn rejects_forbidden_flags_and_missing_key() {
        for bit in [
            FLAG_CHECKSUM,
            FLAG_ROUTING,
            FLAG_STRICT_ROUTE,
            0x0400,
            0x0100,
            0x0040,
            0x0008,
        ] {
            let flags = 0x3001 | bit;
            assert_eq!(
                parse(&with_flags(&DATA_SEQ, flags)),
                Err(WireError::BadFlags(flags)),
                "bit {bit:#06x}"
            );
        }
        assert_eq!(
            parse(&with_flags(&DATA_SEQ, 0x1001)),
            Err(WireError::BadFlags(0x1001))
        );
    }

    #[test]
    fn rejects_other_protocol_types() {
        let mut bytes = DATA_SEQ;
        bytes[2..4].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(parse(&bytes), Err(WireError::BadProtocol(0x0800)));
    }

    #[test]
    fn rejects_truncated_headers() {
        for (cut, needed) in [
            (0, 4),
            (3, 4),
            (4, 16),
            (7, 16),
            (8, 16),
            (12, 16),
            (15, 16),
        ] {
            assert_eq!(
                parse(&DATA_SEQ_ACK[..cut]),
                Err(WireError::Truncated { needed, have: cut }),
                "cut at {cut}"
            );
        }
        assert_eq!(
            parse(&DATA_SEQ_ACK[..27]),
            Err(WireError::Truncated {
                needed: 28,
                have: 27
            })
        );
    }

    #[test]
    fn emit_rejects_a_buffer_without_room() {
        assert_eq!(
            DATA_ACK.emit_header(&mut [0; 27]),
            Err(WireError::BufferTooSmall {
                needed: 28,
                have: 27
            })
        );
    }

    #[test]
    fn setters_write_what_accessors_read() {
        let mut buf = [0u8; 20];
        let mut packet = Packet::new_unchecked(&mut buf[..]);
        packet.set_flags(true, true);
        packet.set_protocol(PROTO_PPTP);
        packet.set_payload_len(4);
        packet.set_call_id(0x8001);
        packet.set_sequence(10);
        packet.set_ack(9);
        packet.payload_mut().copy_from_slice(&[1, 2, 3, 4]);
        let repr = Repr {
            call_id: 0x8001,
            payload_len: 4,
            sequence: Some(10),
            ack: Some(9),
        };
        assert_eq!(parse(&buf), Ok(repr));
    }

    fn any_repr() -> impl Strategy<Value = Repr> {
        (
            any::<u16>(),
            0u16..256,
            any::<Option<u32>>(),
            any::<Option<u32>>(),
        )
            .prop_map(|(call_id, len, sequence, ack)| Repr {
                call_id,
                payload_len: if sequence.is_some() { len } else { 0 },
                sequence,
                ack,
            })
    }

    proptest! {
        #[test]
        fn emit_then_parse_round_trips(repr in any_repr(), fill in any::<u8>()) {
            let payload = vec![fill; usize::from(repr.payload_len)];
            let bytes = emit(&repr, &payload);
            let packet = Packet::new_checked(&bytes[..]).expect("emitted frame checks");
            prop_assert_eq!(Repr::parse(&packet), Ok(repr));
            prop_assert_eq!(packet.payload(), &payload[..]);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..48)) {
            if let Ok(packet) = Packet::new_checked(&bytes[..]) {
                let _ = (packet.sequence(), packet.ack(), packet.call_id());
                prop_assert!(packet.payload().len() == usize::from(packet.payload_len()));
                prop_assert!(Repr::parse(&packet).is_ok());
            }
        }

        #[test]
        fn pptp_shaped_bytes_never_panic(
            flags in any::<u8>(),
            len in 0u16..40,
            tail in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            // Version 1, protocol 0x880B, random flag byte and length: reaches the later checks.
            let head = [flags, 0x01, 0x88, 0x0b];
            let bytes = [&head[..], &len.to_be_bytes(), &tail].concat();
            if let Ok(repr) = parse(&bytes) {
                prop_assert!(repr.buffer_len() <= bytes.len());
            }
        }
    }

    /// PPP LCP Echo-Request in HDLC-like framing: ff 03, protocol c021, id 1, magic 0x12345678.
    const LCP_ECHO_REQUEST: [u8; 12] = [
        0xff, 0x03, 0xc0, 0x21, 0x09, 0x01, 0x00, 0x08, 0x12, 0x34, 0x56, 0x78,
    ];

    // Frames as RFC 2637 §4.1 lays them out for call id 0x0c3e; confirmed with tshark's PPTP
    // dissector (it decodes the LCP Echo-Request inside).

    /// Data frame with sequence 0: flags 0x3001 (K, S, version 1), payload length 12.
    const DATA_SEQ: [u8; 24] = [
        0x30, 0x01, 0x88, 0x0b, 0x00, 0x0c, 0x0c, 0x3e, 0x00, 0x00, 0x00, 0x00, 0xff, 0x03, 0xc0,
        0x21, 0x09, 0x01, 0x00, 0x08, 0x12, 0x34, 0x56, 0x78,
    ];

    /// Acknowledgement only, ack 5: flags 0x2081 (K, A, version 1), payload length 0.
    const ACK_ONLY: [u8; 12] = [
        0x20, 0x81, 0x88, 0x0b, 0x00, 0x00, 0x0c, 0x3e, 0x00, 0x00, 0x00, 0x05,
    ];

    /// Data with piggybacked ack, sequence 6 ack 5: flags 0x3081 (K, S, A, version 1).
    const DATA_SEQ_ACK: [u8; 28] = [
        0x30, 0x81, 0x88, 0x0b, 0x00, 0x0c, 0x0c, 0x3e, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00,
        0x05, 0xff, 0x03, 0xc0, 0x21, 0x09, 0x01, 0x00, 0x08, 0x12, 0x34, 0x56, 0x78,
    ];
}
