//! Feeds arbitrary bytes to the outer datagram codec, the stream framing and the control
//! message codec.
//!
//! Checks that nothing panics, that a classified message opens as its view and every accessor
//! stays in bounds, and that a parsed control message re-emits to the same bytes.
#![no_main]

use grelay_proto::wire::control::ControlMessage;
use grelay_proto::wire::outer::{self, CookieReply, Data, Initiation, MessageKind, Response};
use grelay_proto::wire::stream;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(kind) = outer::classify(data) {
        match kind {
            MessageKind::Initiation => {
                let v = Initiation::new_checked(data).expect("classified as initiation");
                let _ = (v.suite_code(), v.sender(), v.noise(), v.mac1(), v.mac2());
                assert_eq!(v.before_mac2().len(), outer::INITIATION_LEN - 16);
            }
            MessageKind::Response => {
                let v = Response::new_checked(data).expect("classified as response");
                let _ = (v.sender(), v.receiver(), v.noise(), v.mac1(), v.mac2());
            }
            MessageKind::CookieReply => {
                let v = CookieReply::new_checked(data).expect("classified as cookie reply");
                let _ = (v.receiver(), v.nonce(), v.sealed_cookie());
            }
            MessageKind::Data => {
                let v = Data::new_checked(data).expect("classified as data");
                let _ = (v.receiver(), v.counter());
            }
        }
    }
    if let Ok(Some(range)) = stream::next_datagram(data, stream::DEFAULT_MAX_DATAGRAM) {
        assert!(range.end <= data.len() && !range.is_empty());
    }
    if let Ok(message) = ControlMessage::parse(data) {
        let mut out = vec![0u8; message.buffer_len()];
        assert_eq!(message.emit(&mut out), Ok(out.len()));
        assert_eq!(out, data, "control message did not re-emit byte-identical");
    }
});
