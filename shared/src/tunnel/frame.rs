//! GRE framing of what a session carries, in the caller's buffer.
//!
//! ```text
//! buf: | data header (16) | GRE (4) | inner IP packet ... | tag (16) |
//!      0                  16        HEADROOM              HEADROOM+len
//! ```
//!
//! Inside the tunnel the GRE header is the minimal RFC 2784 one (no checksum, key or
//! sequence: the AEAD already covers integrity and the counter ordering), so a decrypted frame
//! can be written to a raw GRE socket towards a back end as it is.

use core::ops::Range;

use super::DropReason;
use crate::crypto::aead::TAG_LEN;
use crate::wire::control::ControlMessage;
use crate::wire::gre;
use crate::wire::outer::DATA_HEADER_LEN;

/// Bytes an outgoing IP packet must have in front of it in the caller's buffer.
pub const HEADROOM: usize = DATA_HEADER_LEN + gre::BASE_HEADER_LEN;
/// Bytes the caller's buffer must have free after the packet, for the AEAD tag.
pub const TAILROOM: usize = TAG_LEN;

/// What a decrypted frame holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Inner {
    /// An IP packet at this range of the datagram buffer.
    Ip(Range<usize>),
    /// A control message.
    Control(ControlMessage),
}

/// The GRE protocol type for an IP packet, from its version nibble.
pub(crate) fn ethertype_of(packet: &[u8]) -> Option<u16> {
    match packet.first().map(|b| b >> 4) {
        Some(4) => Some(gre::ETHERTYPE_IPV4),
        Some(6) => Some(gre::ETHERTYPE_IPV6),
        _ => None,
    }
}

/// Writes the minimal GRE header at `buf[DATA_HEADER_LEN..HEADROOM]` for a payload of
/// `payload_len` bytes at `buf[HEADROOM..]`; returns the GRE frame's length.
/// The caller guarantees `buf` holds `HEADROOM + payload_len` bytes.
pub(crate) fn write_gre_header(buf: &mut [u8], protocol: u16, payload_len: usize) -> usize {
    let repr = gre::Repr {
        protocol,
        checksum: false,
        key: None,
        sequence: None,
    };
    // Invariant: callers checked the buffer holds the header room and the payload.
    repr.emit_header(&mut buf[DATA_HEADER_LEN..], payload_len)
        .expect("buffer holds the GRE header and the payload");
    repr.buffer_len(payload_len)
}

/// Reads a decrypted GRE frame lying at `frame` within `buf`.
pub(crate) fn parse_inner(buf: &[u8], frame: Range<usize>) -> Result<Inner, DropReason> {
    let bytes = &buf[frame.clone()];
    let packet = gre::Packet::new_checked(bytes).map_err(|_| DropReason::BadInnerFrame)?;
    let repr = gre::Repr::parse(&packet).map_err(|_| DropReason::BadInnerFrame)?;
    let start = frame.start + repr.header_len();
    match repr.protocol {
        gre::ETHERTYPE_IPV4 | gre::ETHERTYPE_IPV6 => {
            if ethertype_of(&buf[start..frame.end]) != Some(repr.protocol) {
                return Err(DropReason::BadInnerFrame);
            }
            Ok(Inner::Ip(start..frame.end))
        }
        gre::PROTO_CONTROL => ControlMessage::parse(&buf[start..frame.end])
            .map(Inner::Control)
            .map_err(|_| DropReason::BadInnerFrame),
        _ => Err(DropReason::BadInnerFrame),
    }
}

/// Builds a whole buffer for a control message: header room, GRE, message, tag room.
pub(crate) fn control_buffer(message: &ControlMessage) -> (Vec<u8>, usize) {
    let len = message.buffer_len();
    let mut buf = vec![0u8; HEADROOM + len + TAILROOM];
    // Invariant: the buffer was sized from `buffer_len` just above.
    let written = message
        .emit(&mut buf[HEADROOM..])
        .expect("sized for the message");
    let frame_len = write_gre_header(&mut buf, gre::PROTO_CONTROL, written);
    (buf, frame_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_frame_round_trip() {
        let m = ControlMessage::RttProbe {
            seq: 3,
            timestamp_us: 9,
        };
        let (buf, frame_len) = control_buffer(&m);
        let frame = DATA_HEADER_LEN..DATA_HEADER_LEN + frame_len;
        assert_eq!(&buf[16..20], &[0, 0, 0x88, 0xb5]);
        assert_eq!(parse_inner(&buf, frame), Ok(Inner::Control(m)));
    }

    #[test]
    fn ip_frame_checks_version_against_protocol() {
        let mut buf = vec![0u8; HEADROOM + 20 + TAILROOM];
        buf[HEADROOM] = 0x45;
        let n = write_gre_header(&mut buf, gre::ETHERTYPE_IPV4, 20);
        let frame = DATA_HEADER_LEN..DATA_HEADER_LEN + n;
        assert_eq!(
            parse_inner(&buf, frame.clone()),
            Ok(Inner::Ip(HEADROOM..HEADROOM + 20))
        );
        write_gre_header(&mut buf, gre::ETHERTYPE_IPV6, 20);
        assert_eq!(
            parse_inner(&buf, frame.clone()),
            Err(DropReason::BadInnerFrame)
        );
        write_gre_header(&mut buf, 0x1234, 20);
        assert_eq!(parse_inner(&buf, frame), Err(DropReason::BadInnerFrame));
        assert_eq!(parse_inner(&buf, 16..18), Err(DropReason::BadInnerFrame));
    }
}
