//! Feeds arbitrary bytes to the GRE codec.
//!
//! Checks that nothing panics, that a checked view's accessors stay in bounds, that the checked
//! and unchecked parse paths agree, that GRE and PPTP never both accept a frame, and that a
//! parsed header re-emitted in place gives back the same bytes (the ignored flag bits 6..12 and
//! the checksum word aside: Reserved1 is ignored on receipt, a checksum may arrive as -0, and
//! ignored bits that were set change the checksum of the re-emitted frame).
#![no_main]

use grelay_proto::wire::WireError;
use grelay_proto::wire::gre::{IGNORED_FLAGS, Packet, Repr};
use grelay_proto::wire::pptp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parsed = Repr::parse(&Packet::new_unchecked(data));
    let Ok(packet) = Packet::new_checked(data) else {
        assert!(
            parsed.is_err(),
            "unchecked parse accepted what new_checked refused"
        );
        return;
    };
    assert_eq!(
        pptp::Packet::new_checked(data).err(),
        Some(WireError::UnsupportedVersion(0)),
        "PPTP accepted a GRE version-0 frame"
    );
    let _ = (packet.flags(), packet.protocol(), packet.checksum());
    let _ = (packet.key(), packet.sequence(), packet.verify_checksum());
    assert_eq!(packet.header_len() + packet.payload().len(), data.len());
    assert_eq!(Repr::parse(&packet), parsed);
    if let Ok(repr) = parsed {
        re_emit(&repr, data, packet.payload());
    }
});

/// Emits `repr` in place in front of `payload` and compares with the frame it came from.
fn re_emit(repr: &Repr, original: &[u8], payload: &[u8]) {
    let mut buf = vec![0u8; repr.header_len()];
    buf.extend_from_slice(payload);
    let header_len = repr
        .emit_header(&mut buf, payload.len())
        .expect("buffer sized from header_len");
    assert_eq!(buf.len(), original.len());
    assert_eq!(buf[header_len..], original[header_len..], "payload moved");
    let first = u16::from_be_bytes([original[0], original[1]]);
    let ignored_set = first & IGNORED_FLAGS != 0;
    assert_eq!(
        u16::from_be_bytes([buf[0], buf[1]]),
        first & !IGNORED_FLAGS,
        "flags word differs beyond the ignored bits"
    );
    let checksum_word = if repr.checksum { 4..8 } else { 0..0 };
    for i in (2..header_len).filter(|i| !checksum_word.contains(i)) {
        assert_eq!(buf[i], original[i], "header byte {i} differs");
    }
    if repr.checksum && original[6..8] == [0, 0] && !ignored_set {
        let same = buf[4..6] == original[4..6];
        let minus_zero = original[4..6] == [0xff, 0xff] && buf[4..6] == [0, 0];
        assert!(same || minus_zero, "checksum differs");
    }
    let again = Packet::new_checked(&buf[..]).expect("emitted frame checks");
    assert_eq!(Repr::parse(&again), Ok(*repr));
}
