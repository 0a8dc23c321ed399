//! Feeds arbitrary bytes to the PPTP enhanced-GRE codec.
//!
//! Checks that nothing panics, that a checked view's accessors stay in bounds and its payload is
//! exactly the announced length, that the checked and unchecked parse paths agree, and that a
//! parsed header re-emitted in place gives back exactly the same frame bytes.
#![no_main]

use grelay_proto::wire::pptp::{Packet, Repr};
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
    let _ = (
        packet.flags(),
        packet.call_id(),
        packet.sequence(),
        packet.ack(),
    );
    assert_eq!(packet.payload().len(), usize::from(packet.payload_len()));
    assert!(packet.frame_len() <= data.len());
    assert_eq!(Repr::parse(&packet), parsed);
    let repr = parsed.expect("new_checked accepted, so parse does");
    let frame = &data[..packet.frame_len()];
    let mut buf = vec![0u8; repr.header_len()];
    buf.extend_from_slice(packet.payload());
    assert_eq!(repr.emit_header(&mut buf), Ok(packet.header_len()));
    assert_eq!(buf, frame, "re-emitted frame differs");
});
