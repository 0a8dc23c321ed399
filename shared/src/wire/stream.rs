//! Stream framing: outer datagrams over a byte stream (TLS over TCP), each behind a 2-byte
//! big-endian length.
//!
//! ```text
//! | length (2) | outer datagram (length bytes) | length (2) | outer datagram | ...
//! ```
//!
//! A zero length, or one above the receiver's limit, is a protocol error: the connection is
//! closed rather than resynchronised (there is nothing to resynchronise on), so a peer that
//! sends 65535 and garbage costs the gateway one small buffer, not 64 KiB.

use core::ops::Range;

use super::WireError;

/// Bytes of the length prefix.
pub const PREFIX_LEN: usize = 2;
/// The largest datagram a receiver accepts by default: a full inner packet of the largest MTU
/// grelay configures (1500) plus all overhead, with room to spare.
pub const DEFAULT_MAX_DATAGRAM: usize = 2048;

/// The prefix for a datagram of `len` bytes.
pub fn prefix(len: usize) -> Result<[u8; PREFIX_LEN], WireError> {
    match u16::try_from(len) {
        Ok(n) if n > 0 => Ok(n.to_be_bytes()),
        _ => Err(WireError::InvalidField("stream datagram length")),
    }
}

/// Finds the first complete datagram at the start of `buf` (bytes received so far).
///
/// `Ok(Some(range))`: the datagram is `buf[range]` and `range.end` bytes can be consumed;
/// `Ok(None)`: more bytes are needed; `Err`: the stream is broken, close it.
pub fn next_datagram(buf: &[u8], max: usize) -> Result<Option<Range<usize>>, WireError> {
    let Some(head) = buf.get(..PREFIX_LEN) else {
        return Ok(None);
    };
    let len = usize::from(u16::from_be_bytes([head[0], head[1]]));
    if len == 0 || len > max {
        return Err(WireError::BadLength {
            expected: max,
            got: len,
        });
    }
    let end = PREFIX_LEN + len;
    Ok((buf.len() >= end).then_some(PREFIX_LEN..end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn splits_a_stream() {
        let mut stream = Vec::new();
        for d in [&b"abc"[..], &[7u8; 300][..]] {
            stream.extend_from_slice(&prefix(d.len()).unwrap());
            stream.extend_from_slice(d);
        }
        let first = next_datagram(&stream, 2048).unwrap().unwrap();
        assert_eq!(&stream[first.clone()], b"abc");
        let rest = &stream[first.end..];
        let second = next_datagram(rest, 2048).unwrap().unwrap();
        assert_eq!(rest[second].len(), 300);
        assert_eq!(next_datagram(&stream[..4], 2048), Ok(None));
        assert_eq!(next_datagram(&stream[..1], 2048), Ok(None));
    }

    #[test]
    fn rejects_zero_and_oversized() {
        assert!(next_datagram(&[0, 0, 1], 2048).is_err());
        assert!(next_datagram(&[0xff, 0xff], 2048).is_err());
        assert!(prefix(0).is_err());
        assert!(prefix(70_000).is_err());
        assert_eq!(prefix(1420), Ok([0x05, 0x8c]));
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64), max in 0usize..4096) {
            if let Ok(Some(range)) = next_datagram(&bytes, max) {
                prop_assert!(range.end <= bytes.len());
                prop_assert!(range.len() <= max && !range.is_empty());
            }
        }
    }
}
