//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! One implementation for every header that carries this checksum: the GRE checksum (here),
//! the IPv4 header checksum, the TCP/UDP checksum over a pseudo-header, and the in-place patch
//! of a TCP checksum when MSS clamping rewrites one 16-bit word.
//!
//! The data is read as big-endian 16-bit words; an odd final byte is the high byte of a word
//! whose low byte is zero:
//!
//! ```text
//!  byte:   0    1    2    3   ...  n-1        (n odd)
//!        +----+----+----+----+   +----+----+
//!        |  word 0 |  word 1 |...| hi | 00 |   sum = word 0 + word 1 + ... (one's complement)
//!        +----+----+----+----+   +----+----+
//!  checksum = !fold(sum)   (the one's complement of the folded one's-complement sum)
//! ```
//!
//! A pseudo-header, a header and a payload can be summed in pieces by chaining [`sum`] through
//! its `initial` argument, as long as every piece but the last has an even length. A receiver
//! verifies by summing everything including the checksum field: [`checksum`] of the whole is
//! then zero.

/// Bytes summed before the accumulator is carried around: small enough that the 64-bit
/// accumulator never overflows, whatever the slice length (even, so that only the final block
/// can end on an odd byte).
const BLOCK: usize = 1 << 16;

/// Adds `data` as big-endian 16-bit words to the one's-complement accumulator `initial`.
///
/// Exists so that a checksum can be computed over discontiguous pieces (pseudo-header, header,
/// payload) without copying them together: chain the result as the `initial` of the next piece
/// (only the last piece may have an odd length), then [`fold`]. The result is already carried
/// down to at most `0xFFFF`, so callers may add a few more 16-bit words to it without overflow.
#[must_use]
pub fn sum(data: &[u8], initial: u32) -> u32 {
    let mut acc = u64::from(initial);
    for block in data.chunks(BLOCK) {
        acc = carry_around(acc + sum_block(block));
    }
    // `carry_around` leaves at most 0xFFFF.
    acc as u32
}

/// Sums one block as big-endian 32-bit words (equivalent modulo 0xFFFF to 16-bit words, since
/// 2^16 ≡ 1), with the trailing 1..3 bytes zero-padded on the right.
fn sum_block(block: &[u8]) -> u64 {
    let mut words = block.chunks_exact(4);
    let mut acc: u64 = words
        .by_ref()
        .map(|w| u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]])))
        .sum();
    let mut tail = [0u8; 4];
    let rest = words.remainder();
    tail[..rest.len()].copy_from_slice(rest);
    acc += u64::from(u32::from_be_bytes(tail));
    acc
}

/// Adds the bits above 16 back into the low 16 until none are left: the value stays congruent
/// modulo 0xFFFF (all a one's-complement sum cares about) and is zero only if it was.
fn carry_around(mut acc: u64) -> u64 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc
}

/// Folds a one's-complement accumulator into 16 bits by adding the carries back in.
///
/// Exists as its own step so that callers combining several [`sum`]s fold only once at the end.
#[must_use]
pub fn fold(sum: u32) -> u16 {
    // `carry_around` leaves at most 0xFFFF.
    carry_around(u64::from(sum)) as u16
}

/// The Internet checksum of `data`: the complement of its folded one's-complement sum.
///
/// What a sender writes into a zeroed checksum field; a receiver that runs it over the data
/// including a correct checksum field gets zero.
#[must_use]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data, 0))
}

/// Updates a checksum after one aligned 16-bit word of the covered data changed from `old` to
/// `new` (RFC 1624 equation 3: `HC' = ~(~HC + ~m + m')`).
///
/// A 16-bit field at an odd byte offset (a TCP MSS option behind a single NOP) contributes its
/// bytes swapped to the sum: pass `old.swap_bytes()` and `new.swap_bytes()` for it.
///
/// Exists so that rewriting one field (a TCP MSS option, a TTL) costs a few additions instead of
/// a pass over the whole packet. Equation 3 rather than RFC 1141's equation 2 because it gives
/// the same result as a full recomputation (never the `0xFFFF` negative zero) for every header
/// that is not all zeroes.
#[must_use]
pub fn update16(old_csum: u16, old: u16, new: u16) -> u16 {
    !fold(u32::from(!old_csum) + u32::from(!old) + u32::from(new))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc1071_example_sum_folds_to_ddf2() {
        assert_eq!(fold(sum(&RFC1071_EXAMPLE, 0)), 0xddf2);
        assert_eq!(checksum(&RFC1071_EXAMPLE), 0x220d);
    }

    #[test]
    fn ipv4_header_checksum_matches_the_wire() {
        let mut header = IPV4_HEADER;
        assert_eq!(checksum(&header), 0, "a correct header verifies to zero");
        header[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(checksum(&header), 0xb861);
    }

    #[test]
    fn odd_length_pads_the_last_byte_on_the_right() {
        assert_eq!(sum(&[0x12, 0x34, 0x56], 0), 0x1234 + 0x5600);
        // 0x1234 + 0x5678 + 0x9a00 = 0x1_02ac, carried around to 0x02ad.
        assert_eq!(sum(&[0x12, 0x34, 0x56, 0x78, 0x9a], 0), 0x02ad);
        assert_eq!(sum(&[0xab], 0), 0xab00);
    }

    #[test]
    fn empty_data_has_checksum_ffff() {
        assert_eq!(sum(&[], 0), 0);
        assert_eq!(checksum(&[]), 0xffff);
    }

    #[test]
    fn fold_carries_more_than_once() {
        assert_eq!(fold(0x0001_ffff), 0x0001);
        assert_eq!(fold(0xffff_ffff), 0xffff);
        assert_eq!(fold(0), 0);
    }

    #[test]
    fn sum_accepts_an_initial_near_overflow() {
        // u32::MAX is one's-complement -0; adding 1 must carry around to 1, not overflow.
        assert_eq!(fold(sum(&[0x00, 0x01], u32::MAX)), 0x0001);
    }

    #[test]
    fn long_input_matches_the_naive_sum() {
        // Deterministic bytes (a linear congruential generator) across several blocks.
        let mut x: u32 = 1;
        let data: Vec<u8> = (0..3 * BLOCK + 3)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (x >> 16) as u8
            })
            .collect();
        for len in [BLOCK - 1, BLOCK, BLOCK + 1, data.len()] {
            assert_eq!(
                fold(sum(&data[..len], 0)),
                naive_sum16(&data[..len]),
                "len {len}"
            );
        }
    }

    #[test]
    fn sum_stays_within_16_bits() {
        assert!(sum(&[0xff; 64], u32::MAX) <= 0xffff);
    }

    #[test]
    fn update16_rfc1624_section4_example() {
        assert_eq!(update16(0xdd2f, 0x5555, 0x3285), 0x0000);
    }

    #[test]
    fn update16_rfc1624_errata5864_example() {
        assert_eq!(update16(0x0000, 0x5555, 0x5556), 0xfffe);
    }

    #[test]
    fn update16_ttl_decrement_matches_recompute() {
        let mut header = IPV4_HEADER;
        // TTL 0x40 -> 0x3f in the TTL|protocol word at offset 8.
        let new_csum = update16(0xb861, 0x4011, 0x3f11);
        header[8] = 0x3f;
        header[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(new_csum, checksum(&header));
    }

    /// RFC 1071's reference loop: 16-bit words, 32-bit accumulator, carries folded at the end.
    fn naive_sum16(data: &[u8]) -> u16 {
        let mut acc: u64 = data
            .chunks(2)
            .map(|w| u64::from(w[0]) << 8 | u64::from(w.get(1).copied().unwrap_or(0)))
            .sum();
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    proptest! {
        #[test]
        fn sum_matches_the_naive_loop(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            initial in any::<u16>(),
        ) {
            let naive = fold(u32::from(naive_sum16(&data)) + u32::from(initial));
            prop_assert_eq!(fold(sum(&data, u32::from(initial))), naive);
        }

        #[test]
        fn chained_sums_equal_one_sum(
            a in proptest::collection::vec(any::<u8>(), 0..64),
            b in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let a_even = &a[..a.len() & !1];
            let whole: Vec<u8> = a_even.iter().chain(&b).copied().collect();
            prop_assert_eq!(fold(sum(&b, sum(a_even, 0))), fold(sum(&whole, 0)));
        }

        #[test]
        fn data_with_its_checksum_verifies(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut framed = data.clone();
            if framed.len() % 2 == 1 {
                framed.push(0);
            }
            let csum = checksum(&framed);
            framed.extend_from_slice(&csum.to_be_bytes());
            prop_assert_eq!(checksum(&framed), 0);
        }

        #[test]
        fn update16_matches_full_recompute(
            mut data in proptest::collection::vec(any::<u8>(), 2..64),
            index in any::<prop::sample::Index>(),
            new in any::<u16>(),
        ) {
            // Any offset, odd ones with the documented byte swap.
            let at = index.index(data.len() - 1);
            let old = u16::from_be_bytes([data[at], data[at + 1]]);
            let old_csum = checksum(&data);
            data[at..at + 2].copy_from_slice(&new.to_be_bytes());
            prop_assume!(data.iter().any(|&b| b != 0));
            let updated = if at % 2 == 0 {
                update16(old_csum, old, new)
            } else {
                update16(old_csum, old.swap_bytes(), new.swap_bytes())
            };
            prop_assert_eq!(updated, checksum(&data));
        }
    }

    /// RFC 1071 §3 "Numerical Examples": the words 0001 f203 f4f5 f6f7.
    const RFC1071_EXAMPLE: [u8; 8] = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];

    /// An IPv4 header as captured (192.168.0.1 -> 192.168.0.199, UDP, TTL 64), checksum 0xb861.
    const IPV4_HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];
}
