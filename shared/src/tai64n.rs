//! TAI64N timestamps carried in handshake initiations.
//!
//! An initiator puts the current time in its (encrypted) initiation; the responder remembers the
//! newest timestamp it has accepted from each static key and refuses an initiation whose
//! timestamp is not strictly later. That turns a replayed initiation, which would otherwise make
//! the responder drop its current session for a new one, into a no-op. WireGuard does the same.
//!
//! Layout (12 bytes, big-endian, so byte order is time order):
//!
//! ```text
//!  0                   8           12
//!  +-------------------+-----------+
//!  | TAI64 label (u64) | nanos u32 |
//!  +-------------------+-----------+
//!  label = 2^62 + 10 + Unix seconds   (the 10 s is TAI − UTC in 1972, as in WireGuard)
//! ```
//!
//! The low 24 bits of the nanoseconds are cleared (≈16.8 ms resolution) so that a timestamp
//! does not reveal the sender's exact clock, which could help fingerprint or time it.
//! The clock itself is the caller's: this module never reads one.

/// TAI64 label of the Unix epoch: 2^62 plus the 10 s TAI − UTC offset.
const EPOCH_LABEL: u64 = (1 << 62) + 10;
/// Bits of the nanosecond field cleared so the exact time does not leak.
const WHITENER_MASK: u32 = (1 << 24) - 1;
/// Nanoseconds in one second.
const NANOS_PER_SECOND: u32 = 1_000_000_000;

/// A 12-byte TAI64N timestamp, ordered by its bytes (which is time order).
///
/// `Default` is all zeros, earlier than any timestamp [`from_unix`](Self::from_unix) makes, so
/// it serves as "nothing seen yet".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tai64N([u8; 12]);

impl Tai64N {
    /// Size of the encoded timestamp on the wire.
    pub const LEN: usize = 12;

    /// The timestamp of `secs` seconds and `nanos` nanoseconds after the Unix epoch, whitened.
    ///
    /// `nanos` of a second or more carry into `secs`; a time beyond the label's range saturates
    /// at the largest label instead of wrapping, so a later time never encodes as an earlier one.
    pub fn from_unix(secs: u64, nanos: u32) -> Self {
        let secs = secs.saturating_add(u64::from(nanos / NANOS_PER_SECOND));
        let nanos = (nanos % NANOS_PER_SECOND) & !WHITENER_MASK;
        let label = EPOCH_LABEL.saturating_add(secs);
        let mut bytes = [0u8; Self::LEN];
        bytes[..8].copy_from_slice(&label.to_be_bytes());
        bytes[8..].copy_from_slice(&nanos.to_be_bytes());
        Self(bytes)
    }

    /// The bytes to put in an initiation.
    pub fn as_bytes(&self) -> &[u8; 12] {
        &self.0
    }

    /// The timestamp a peer sent. Any 12 bytes are accepted: only the order matters, and a
    /// peer gains nothing by sending a value no clock would produce.
    pub fn from_bytes(bytes: [u8; 12]) -> Self {
        Self(bytes)
    }

    /// Whether `self` is strictly later than `other`: the test an initiation's timestamp must
    /// pass against the newest one accepted from the same static key.
    pub fn is_after(&self, other: &Self) -> bool {
        self > other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encodes_label_and_whitened_nanos() {
        // 2021-01-01T00:00:00.123456789Z
        let t = Tai64N::from_unix(1_609_459_200, 123_456_789);
        assert_eq!(
            hex::encode(t.as_bytes()),
            concat!("400000005fee660a", "07000000"),
            "label 2^62 + 10 + secs; 123456789 = 0x075BCD15 whitened to 0x07000000"
        );
        assert_eq!(Tai64N::from_bytes(*t.as_bytes()), t);
    }

    #[test]
    fn epoch() {
        let t = Tai64N::from_unix(0, 0);
        assert_eq!(hex::encode(t.as_bytes()), "400000000000000a00000000");
        assert!(t.is_after(&Tai64N::default()));
    }

    #[test]
    fn whitening_hides_sub_16ms_differences() {
        let a = Tai64N::from_unix(100, 0);
        let b = Tai64N::from_unix(100, WHITENER_MASK);
        let c = Tai64N::from_unix(100, WHITENER_MASK + 1);
        assert_eq!(a, b);
        assert!(!b.is_after(&a));
        assert!(c.is_after(&b));
    }

    #[test]
    fn nanos_carry_and_saturation() {
        assert_eq!(
            Tai64N::from_unix(5, 1_500_000_000),
            Tai64N::from_unix(6, 500_000_000)
        );
        let max = Tai64N::from_unix(u64::MAX, u32::MAX);
        assert_eq!(&max.as_bytes()[..8], &[0xff; 8]);
        assert!(!Tai64N::from_unix(u64::MAX - 1, 0).is_after(&max));
    }

    #[test]
    fn replayed_initiation_is_not_after() {
        let seen = Tai64N::from_unix(1_700_000_000, 0);
        assert!(!seen.is_after(&seen));
        assert!(Tai64N::from_unix(1_700_000_001, 0).is_after(&seen));
        assert!(!Tai64N::from_unix(1_699_999_999, 999_999_999).is_after(&seen));
    }

    proptest! {
        #[test]
        fn order_follows_time(a in (0u64..1 << 40, 0u32..NANOS_PER_SECOND), b in (0u64..1 << 40, 0u32..NANOS_PER_SECOND)) {
            let (ta, tb) = (Tai64N::from_unix(a.0, a.1), Tai64N::from_unix(b.0, b.1));
            let whiten = |(s, n): (u64, u32)| (s, n & !WHITENER_MASK);
            prop_assert_eq!(ta.cmp(&tb), whiten(a).cmp(&whiten(b)));
            prop_assert_eq!(ta.is_after(&tb), whiten(a) > whiten(b));
        }
    }
}
