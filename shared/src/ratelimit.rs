//! Per-source rate limit for handshake initiations (WireGuard's `ratelimiter` as the model).
//!
//! A handshake costs the gateway a Diffie–Hellman operation, so under a flood each source
//! address gets a token bucket: by default 20 initiations per second with a burst of 5. IPv6
//! sources are keyed by their /64, because one host can pick any address in its /64;
//! IPv4-mapped IPv6 addresses count as the IPv4 address they carry.
//!
//! Arithmetic is in integer nanoseconds: a bucket holds up to `burst × cost` nanoseconds of
//! credit, one packet spends `cost = 1 s / per_second`, and credit grows by the time elapsed.
//! No floating point, no clock of its own: the caller passes `now`.
//!
//! Memory is bounded by `max_entries`. When the table is full, packets from *new* sources are
//! refused until [`RateLimiter::gc`] frees room, while sources already tracked keep their
//! buckets. The alternative, evicting someone to make room, would let a flood of spoofed
//! sources reset the buckets of the real attacker; refusing new sources fails closed, and the
//! handshake layer's cookie reply still lets genuine clients through. `gc` drops exactly the
//! entries whose bucket has refilled to full, which a fresh entry would reproduce, so garbage
//! collection never changes a decision. Entries live in a `BTreeMap`: the keys are chosen by
//! the (possibly spoofing) sender, so a search tree keeps the worst case logarithmic without
//! needing a randomly seeded hash.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Instant;

/// Nanoseconds in one second.
const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// Which bucket a source address draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    /// A whole IPv4 address.
    V4(u32),
    /// The upper 64 bits of an IPv6 address.
    V6(u64),
}

impl From<IpAddr> for Key {
    fn from(addr: IpAddr) -> Self {
        match addr.to_canonical() {
            IpAddr::V4(v4) => Key::V4(u32::from(v4)),
            // The shift leaves only the upper 64 bits, so the cast drops nothing.
            IpAddr::V6(v6) => Key::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

/// One source's token bucket.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    /// The latest `now` this bucket was credited up to.
    last: Instant,
    /// Credit in nanoseconds, at most `max_tokens`.
    tokens: u64,
}

/// Token buckets per source address, bounded in number.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    /// Credit one packet spends, in nanoseconds.
    cost: u64,
    /// Credit a full bucket holds, in nanoseconds.
    max_tokens: u64,
    /// Most sources tracked at once.
    max_entries: usize,
    /// The buckets.
    entries: BTreeMap<Key, Bucket>,
}

impl RateLimiter {
    /// Allows each source `per_second` packets per second on average and `burst` at once,
    /// tracking at most `max_entries` sources.
    ///
    /// `per_second` and `burst` are raised to at least 1 (a limiter that refuses everyone
    /// is `max_entries = 0`). WireGuard's figures are `new(20, 5, …)`.
    pub fn new(per_second: u32, burst: u32, max_entries: usize) -> Self {
        let cost = (NANOS_PER_SECOND / u64::from(per_second.max(1))).max(1);
        Self {
            cost,
            max_tokens: cost.saturating_mul(u64::from(burst.max(1))),
            max_entries,
            entries: BTreeMap::new(),
        }
    }

    /// Whether a packet from `source` arriving at `now` may be processed; spends one packet's
    /// credit when it may.
    ///
    /// A new source starts with a full bucket. If the table is full, a new source is refused
    /// (see the module doc). A `now` earlier than the source's last packet adds no credit.
    pub fn allow(&mut self, now: Instant, source: IpAddr) -> bool {
        let key = Key::from(source);
        if let Some(bucket) = self.entries.get_mut(&key) {
            let elapsed = nanos_since(now, bucket.last);
            bucket.tokens = bucket.tokens.saturating_add(elapsed).min(self.max_tokens);
            bucket.last = bucket.last.max(now);
            if bucket.tokens >= self.cost {
                bucket.tokens -= self.cost;
                return true;
            }
            return false;
        }
        if self.entries.len() >= self.max_entries {
            return false;
        }
        self.entries.insert(
            key,
            Bucket {
                last: now,
                tokens: self.max_tokens - self.cost,
            },
        );
        true
    }

    /// Forgets the sources whose bucket has refilled to full by `now`.
    ///
    /// Call it about once a second (WireGuard does). Forgetting a full bucket is lossless: the
    /// source would start over with a full bucket anyway.
    pub fn gc(&mut self, now: Instant) {
        let max_tokens = self.max_tokens;
        self.entries
            .retain(|_, b| b.tokens.saturating_add(nanos_since(now, b.last)) < max_tokens);
    }

    /// Number of sources currently tracked, for metrics.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no source is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Nanoseconds from `earlier` to `now`, zero if `now` is not later, saturating at `u64::MAX`.
fn nanos_since(now: Instant, earlier: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(earlier).as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::time::Duration;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));

    fn wireguard() -> RateLimiter {
        RateLimiter::new(20, 5, 1024)
    }

    /// How many of `n` packets at the same instant pass.
    fn burst(rl: &mut RateLimiter, now: Instant, src: IpAddr, n: usize) -> usize {
        (0..n).filter(|_| rl.allow(now, src)).count()
    }

    #[test]
    fn burst_then_refill() {
        let t0 = Instant::now();
        let mut rl = wireguard();
        assert_eq!(burst(&mut rl, t0, A, 10), 5);
        // 49 ms is not quite one packet's worth (50 ms) of credit.
        assert!(!rl.allow(t0 + Duration::from_millis(49), A));
        assert!(rl.allow(t0 + Duration::from_millis(50), A));
        assert!(!rl.allow(t0 + Duration::from_millis(50), A));
        // After a long pause the bucket holds a burst again, never more.
        assert_eq!(burst(&mut rl, t0 + Duration::from_secs(60), A, 10), 5);
    }

    #[test]
    fn steady_rate_is_per_second() {
        let t0 = Instant::now();
        let mut rl = wireguard();
        // 100 packets/s for 10 s: the burst plus 20/s pass.
        let passed = (0..1000)
            .filter(|i| rl.allow(t0 + Duration::from_millis(i * 10), A))
            .count();
        assert_eq!(passed, 5 + 199);
    }

    #[test]
    fn sources_are_independent() {
        let t0 = Instant::now();
        let mut rl = wireguard();
        assert_eq!(burst(&mut rl, t0, A, 10), 5);
        assert_eq!(burst(&mut rl, t0, B, 10), 5);
        assert_eq!(rl.len(), 2);
    }

    #[test]
    fn ipv6_is_keyed_by_slash_64() {
        let t0 = Instant::now();
        let mut rl = wireguard();
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(burst(&mut rl, t0, a, 3), 3);
        assert_eq!(burst(&mut rl, t0, b, 10), 2, "same /64 shares the bucket");
        assert_eq!(burst(&mut rl, t0, other, 10), 5);
    }

    #[test]
    fn mapped_ipv4_shares_the_ipv4_bucket() {
        let t0 = Instant::now();
        let mut rl = wireguard();
        let mapped = IpAddr::V6(Ipv4Addr::new(198, 18, 0, 1).to_ipv6_mapped());
        assert_eq!(burst(&mut rl, t0, A, 4), 4);
        assert_eq!(burst(&mut rl, t0, mapped, 10), 1);
        assert_eq!(rl.len(), 1);
    }

    #[test]
    fn full_table_refuses_new_sources_until_gc() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(20, 5, 2);
        assert!(rl.allow(t0, A));
        assert!(rl.allow(t0, B));
        let c = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert!(!rl.allow(t0, c), "table full");
        assert_eq!(
            burst(&mut rl, t0, A, 10),
            4,
            "known sources keep their bucket"
        );
        // A spent its burst and is full again 250 ms later; B spent one packet: 50 ms.
        rl.gc(t0 + Duration::from_millis(200));
        assert_eq!(rl.len(), 1, "B is full again and forgotten, A is not");
        assert!(rl.allow(t0 + Duration::from_millis(200), c));
        rl.gc(t0 + Duration::from_secs(10));
        assert!(rl.is_empty());
    }

    #[test]
    fn zero_entries_refuses_everyone() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(20, 5, 0);
        assert!(!rl.allow(t0, A));
    }

    #[test]
    fn time_going_backwards_adds_no_credit() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(5);
        let mut rl = wireguard();
        assert_eq!(burst(&mut rl, later, A, 10), 5);
        assert!(!rl.allow(t0, A));
        assert!(!rl.allow(later + Duration::from_millis(49), A));
        assert!(rl.allow(later + Duration::from_millis(50), A));
    }

    #[test]
    fn degenerate_parameters_do_not_panic() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(0, 0, 4);
        assert!(rl.allow(t0, A));
        assert!(!rl.allow(t0, A));
        assert!(rl.allow(t0 + Duration::from_secs(1), A));
        let mut fast = RateLimiter::new(u32::MAX, u32::MAX, 4);
        assert_eq!(burst(&mut fast, t0, A, 100), 100);
        fast.gc(t0 + Duration::from_secs(1));
    }

    proptest! {
        /// Over any schedule, no source gets more than its burst plus the rate times the
        /// elapsed time, and `gc` at any point changes no decision.
        #[test]
        fn never_exceeds_budget_and_gc_is_invisible(
            steps in proptest::collection::vec((0u64..200, 0u8..3, any::<bool>()), 1..300),
        ) {
            let t0 = Instant::now();
            let mut with_gc = wireguard();
            let mut without = wireguard();
            let mut now = t0;
            let mut passed = [0u64; 3];
            for (advance_ms, src, gc) in steps {
                now += Duration::from_millis(advance_ms);
                let source = IpAddr::V4(Ipv4Addr::new(10, 0, 0, src));
                if gc {
                    with_gc.gc(now);
                }
                let a = with_gc.allow(now, source);
                prop_assert_eq!(a, without.allow(now, source));
                if a {
                    passed[usize::from(src)] += 1;
                }
            }
            let elapsed_ms = u64::try_from((now - t0).as_millis()).unwrap();
            for p in passed {
                prop_assert!(p <= 5 + elapsed_ms / 50);
            }
        }
    }
}
