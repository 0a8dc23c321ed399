//! Anti-replay sliding window for data counters (RFC 6479).
//!
//! Every data datagram carries a 64-bit counter that never repeats for a key. UDP may reorder
//! and duplicate datagrams, and an attacker may replay captured ones, so the receiver keeps the
//! highest counter it has accepted (`last`) and a bitmap of which of the [`WINDOW`] counters
//! below it were already seen.
//!
//! The bitmap is RFC 6479's ring of `u64` blocks: counter `c` lives in block `(c / 64) % BLOCKS`,
//! bit `c % 64`. When `last` moves forward, only the blocks it skips over are zeroed, so an
//! update costs O(1) amortised and nothing is ever shifted. One block is kept spare so that the
//! block holding `last` never shares storage with the oldest counter still in the window:
//!
//! ```text
//!   ring (BLOCKS = 128 × 64 bits)          window = (BLOCKS − 1) · 64 = 8128 counters
//!   ┌──────┬──────┬─────┬──────┬──────┐
//!   │ b[0] │ b[1] │ ... │ b[k] │ ...  │    b[k] holds `last`; blocks after it, cyclically,
//!   └──────┴──────┴─────┴──────┴──────┘    hold the older counters still in the window
//! ```
//!
//! Calling order, as the session uses it: [`ReplayWindow::check`] before decrypting (cheap,
//! no mutation, so a forged packet changes nothing), then [`ReplayWindow::update`] only once the
//! AEAD tag has verified. Neither allocates; the whole window is 1 KiB inline.

/// Number of `u64` blocks in the ring.
const BLOCKS: usize = 128;
/// Bits per block.
const BLOCK_BITS: u64 = u64::BITS as u64;

/// How far below the highest accepted counter a counter may still be accepted.
///
/// A counter `c` with `last − c > WINDOW` is refused as too old. 8128 counters absorb the
/// reordering of several multi-path bursts at gigabit rates; WireGuard uses the same figure.
pub const WINDOW: u64 = (BLOCKS as u64 - 1) * BLOCK_BITS;

/// Counters at or above this value are never accepted.
///
/// The sender must rekey long before its counter gets here (WireGuard's `RejectAfterMessages`);
/// refusing the top of the range keeps a counter from ever wrapping and being reused for a key.
pub const REJECT_AFTER_MESSAGES: u64 = u64::MAX - (1 << 13);

/// Which data counters of one receiving key were already accepted.
///
/// One per transport key; a fresh window is created with each new key, so counters start over
/// at zero.
#[derive(Clone, Debug)]
pub struct ReplayWindow {
    /// Highest counter accepted so far (0 before the first one; counter 0 is still accepted
    /// then, because its bit is clear).
    last: u64,
    /// The ring of seen-bits; see the module doc.
    blocks: [u64; BLOCKS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayWindow {
    /// An empty window: every counter below [`REJECT_AFTER_MESSAGES`] would be accepted.
    pub const fn new() -> Self {
        Self {
            last: 0,
            blocks: [0; BLOCKS],
        }
    }

    /// Whether `counter` would be accepted, without recording it.
    ///
    /// Called before decrypting so that a packet that is a replay costs no AEAD work; the
    /// answer is final only together with [`update`](Self::update) after authentication,
    /// because another packet with the same counter may be accepted in between.
    pub fn check(&self, counter: u64) -> bool {
        if counter >= REJECT_AFTER_MESSAGES {
            return false;
        }
        if counter > self.last {
            return true;
        }
        if self.last - counter > WINDOW {
            return false;
        }
        let (block, bit) = Self::position(counter);
        self.blocks[block] & bit == 0
    }

    /// Records `counter` as seen; returns `false` and changes nothing if it is a duplicate, too
    /// old, or at or above [`REJECT_AFTER_MESSAGES`].
    ///
    /// Must be called only for packets whose authentication tag verified: a forged counter far
    /// ahead would otherwise slide the window and make every genuine packet look too old.
    pub fn update(&mut self, counter: u64) -> bool {
        if !self.check(counter) {
            return false;
        }
        if counter > self.last {
            let current = self.last / BLOCK_BITS;
            let target = counter / BLOCK_BITS;
            // Zero the blocks `last` moves onto; after BLOCKS of them the whole ring is clear.
            let skipped = (target - current).min(BLOCKS as u64);
            for i in 1..=skipped {
                // Reduced modulo BLOCKS, so the index fits in usize.
                let index = ((current + i) % BLOCKS as u64) as usize;
                self.blocks[index] = 0;
            }
            self.last = counter;
        }
        let (block, bit) = Self::position(counter);
        self.blocks[block] |= bit;
        true
    }

    /// Ring index and bit mask of `counter`.
    fn position(counter: u64) -> (usize, u64) {
        // Reduced modulo BLOCKS, so the index fits in usize.
        let block = ((counter / BLOCK_BITS) % BLOCKS as u64) as usize;
        (block, 1 << (counter % BLOCK_BITS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    #[test]
    fn in_order_counters_are_accepted_once() {
        let mut w = ReplayWindow::new();
        for c in 0..20_000 {
            assert!(w.check(c), "counter {c}");
            assert!(w.update(c), "counter {c}");
            assert!(!w.check(c), "duplicate {c}");
            assert!(!w.update(c), "duplicate {c}");
        }
    }

    #[test]
    fn first_counter_zero_is_accepted() {
        let mut w = ReplayWindow::new();
        assert!(w.update(0));
        assert!(!w.update(0));
        assert!(w.update(1));
    }

    #[test]
    fn check_does_not_mutate() {
        let mut w = ReplayWindow::new();
        assert!(w.check(5));
        assert!(w.check(5));
        assert!(w.update(5));
        assert!(!w.check(5));
    }

    #[test]
    fn out_of_order_within_window() {
        let mut w = ReplayWindow::new();
        assert!(w.update(1000));
        assert!(w.update(999));
        assert!(w.update(1));
        assert!(w.update(0));
        assert!(w.update(1001));
        assert!(w.update(500));
        for c in [0, 1, 500, 999, 1000, 1001] {
            assert!(!w.update(c), "duplicate {c}");
        }
        assert!(w.update(2));
    }

    #[test]
    fn window_edge() {
        let mut w = ReplayWindow::new();
        let top = 3 * WINDOW + 17;
        assert!(w.update(top));
        assert!(w.check(top - WINDOW), "exactly WINDOW behind is still in");
        assert!(!w.check(top - WINDOW - 1), "one more is too old");
        assert!(w.update(top - WINDOW));
        assert!(!w.update(top - WINDOW));
        assert!(!w.update(top - WINDOW - 1));
    }

    #[test]
    fn far_jump_clears_stale_bits() {
        let mut w = ReplayWindow::new();
        for c in 0..200 {
            assert!(w.update(c));
        }
        // Jump by exactly one ring: the same ring positions must now read as unseen.
        let ring = BLOCKS as u64 * BLOCK_BITS;
        assert!(w.update(ring + 199));
        for c in ring..ring + 199 {
            assert!(w.check(c), "counter {c} must not inherit the old bit");
        }
        assert!(!w.check(199), "old counters are too old now");
        // A huge jump clears everything too.
        assert!(w.update(1 << 40));
        assert!(w.check((1 << 40) - 1));
        assert!(w.check((1 << 40) - WINDOW));
        assert!(!w.check(ring + 199));
    }

    #[test]
    fn partial_jump_keeps_recent_bits() {
        let mut w = ReplayWindow::new();
        assert!(w.update(100));
        assert!(w.update(100 + 5 * BLOCK_BITS));
        assert!(!w.check(100), "still inside the window and already seen");
        assert!(w.check(101));
    }

    #[test]
    fn limit_is_never_accepted() {
        let mut w = ReplayWindow::new();
        assert!(!w.check(REJECT_AFTER_MESSAGES));
        assert!(!w.update(REJECT_AFTER_MESSAGES));
        assert!(!w.update(u64::MAX));
        assert!(w.update(REJECT_AFTER_MESSAGES - 1));
        assert!(!w.update(REJECT_AFTER_MESSAGES - 1));
        assert!(w.update(REJECT_AFTER_MESSAGES - 2));
        assert!(!w.update(REJECT_AFTER_MESSAGES));
    }

    #[test]
    fn refused_update_changes_nothing() {
        let mut w = ReplayWindow::new();
        assert!(w.update(10_000));
        let before = w.clone();
        assert!(!w.update(10));
        assert!(!w.update(10_000));
        assert!(!w.update(u64::MAX));
        assert_eq!(before.last, w.last);
        assert_eq!(before.blocks, w.blocks);
    }

    /// The obvious model: every accepted counter in a set, plus the maximum.
    #[derive(Default)]
    struct Model {
        seen: HashSet<u64>,
        max: u64,
    }

    impl Model {
        fn check(&self, c: u64) -> bool {
            c < REJECT_AFTER_MESSAGES
                && !self.seen.contains(&c)
                && (c > self.max || self.max - c <= WINDOW)
        }
        fn update(&mut self, c: u64) -> bool {
            if !self.check(c) {
                return false;
            }
            self.seen.insert(c);
            self.max = self.max.max(c);
            true
        }
    }

    /// Counters that mostly stay near each other, with the occasional jump and limit probe.
    fn counter() -> impl Strategy<Value = u64> {
        prop_oneof![
            8 => 0u64..3 * WINDOW,
            1 => 0u64..(1 << 20),
            1 => (REJECT_AFTER_MESSAGES - 2 * WINDOW)..=u64::MAX,
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn matches_naive_model(ops in proptest::collection::vec((counter(), any::<bool>()), 1..400)) {
            let mut w = ReplayWindow::new();
            let mut m = Model::default();
            for (c, do_update) in ops {
                prop_assert_eq!(w.check(c), m.check(c), "check({})", c);
                if do_update {
                    prop_assert_eq!(w.update(c), m.update(c), "update({})", c);
                }
            }
        }

        #[test]
        fn dense_reordering_matches_model(
            base in 0u64..(1 << 30),
            offsets in proptest::collection::vec(0u64..2 * WINDOW, 1..600),
        ) {
            let mut w = ReplayWindow::new();
            let mut m = Model::default();
            for off in offsets {
                let c = base + off;
                prop_assert_eq!(w.update(c), m.update(c), "update({})", c);
            }
        }
    }
}
