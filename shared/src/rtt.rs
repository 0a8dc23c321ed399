//! Round-trip time, jitter and loss of one path, measured with RTT probes.
//!
//! The client sends an RTT probe (a GRE control frame carrying a sequence number) about once a
//! second while a game is active; the gateway echoes it. [`PathStats`] pairs each echo with its
//! probe and keeps what the player is shown:
//!
//! - last and minimum RTT;
//! - smoothed RTT per RFC 6298: `srtt ← 7/8 · srtt + 1/8 · r`, the first sample taken as is;
//! - jitter per RFC 3550 §6.4.1: the mean deviation of the difference between consecutive RTT
//!   samples, `j ← j + (|rᵢ − rᵢ₋₁| − j) / 16`. RFC 3550 starts from `j = 0`, which shows a
//!   player a sixteenth of the real jitter for the first seconds; here the first difference is
//!   taken as is instead, the way RFC 6298 seeds its variance;
//! - loss: a probe with no echo after [`LOSS_TIMEOUT`] counts as lost.
//!
//! Outstanding probes sit in a fixed ring of [`SLOTS`] entries indexed by `seq % SLOTS`, so
//! memory is bounded and nothing allocates. A probe still outstanding when its slot is reused
//! counts as lost; with one probe per second and consecutive sequence numbers that cannot
//! happen before [`LOSS_TIMEOUT`] has decided it anyway. A probe's fate does not depend on when
//! [`PathStats::expire`] is called: an echo arriving after the timeout counts as a loss.

use std::time::{Duration, Instant};

/// A probe unanswered for longer than this is lost; its late echo is ignored.
///
/// Two seconds is far above any RTT a game tolerates and below the probe interval times
/// [`SLOTS`], so a slow echo is not mistaken for loss and a ring slot is never reused early.
pub const LOSS_TIMEOUT: Duration = Duration::from_secs(2);

/// Number of probes that can be outstanding at once.
pub const SLOTS: usize = 64;

/// A probe awaiting its echo.
#[derive(Clone, Copy, Debug)]
struct Outstanding {
    /// The probe's sequence number.
    seq: u32,
    /// When it was sent.
    sent_at: Instant,
}

/// What [`PathStats`] has measured so far, as shown to the player or exported as metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathSnapshot {
    /// RTT of the most recent echo.
    pub last: Option<Duration>,
    /// Smoothed RTT (RFC 6298).
    pub smoothed: Option<Duration>,
    /// Lowest RTT seen: the path's propagation delay, without queueing.
    pub min: Option<Duration>,
    /// Mean deviation of consecutive RTTs (RFC 3550); `None` until two echoes arrived.
    pub jitter: Option<Duration>,
    /// Probes sent.
    pub sent: u64,
    /// Probes whose echo arrived in time.
    pub received: u64,
    /// Probes declared lost.
    pub lost: u64,
}

impl PathSnapshot {
    /// Fraction of decided probes that were lost, from 0.0 to 1.0.
    ///
    /// Probes still outstanding are not counted either way; with no probe decided yet the
    /// ratio is 0.0.
    pub fn loss_ratio(&self) -> f64 {
        let decided = self.received.saturating_add(self.lost);
        if decided == 0 {
            0.0
        } else {
            // Precision loss above 2^53 probes is irrelevant for a ratio.
            self.lost as f64 / decided as f64
        }
    }
}

/// RTT, jitter and loss bookkeeping for one path.
///
/// Calling order: [`probe_sent`](Self::probe_sent) when a probe leaves,
/// [`echo_received`](Self::echo_received) when an authenticated echo comes back, and
/// [`expire`](Self::expire) from the path's timer (at least every [`LOSS_TIMEOUT`]) so that
/// losses show up even when no echo arrives at all.
#[derive(Clone, Debug)]
pub struct PathStats {
    /// Outstanding probes, indexed by `seq % SLOTS`.
    slots: [Option<Outstanding>; SLOTS],
    /// Measurements so far; durations kept as nanoseconds below.
    snapshot: PathSnapshot,
    /// Smoothed RTT in nanoseconds.
    srtt_ns: u64,
    /// Jitter in nanoseconds.
    jitter_ns: u64,
}

impl Default for PathStats {
    fn default() -> Self {
        Self::new()
    }
}

impl PathStats {
    /// No probe sent, nothing measured.
    pub fn new() -> Self {
        Self {
            slots: [None; SLOTS],
            snapshot: PathSnapshot::default(),
            srtt_ns: 0,
            jitter_ns: 0,
        }
    }

    /// Records that probe `seq` left at `now`. Whatever probe was still waiting in its slot
    /// (including an earlier probe with the same `seq`) counts as lost.
    pub fn probe_sent(&mut self, seq: u32, now: Instant) {
        let slot = &mut self.slots[Self::slot(seq)];
        if slot.is_some() {
            self.snapshot.lost += 1;
        }
        *slot = Some(Outstanding { seq, sent_at: now });
        self.snapshot.sent += 1;
    }

    /// Pairs an echo of `seq` arriving at `now` with its probe and returns the RTT.
    ///
    /// `None` when no probe `seq` is outstanding (never sent, already answered, or already
    /// declared lost) or when the echo is later than [`LOSS_TIMEOUT`], in which case the
    /// probe counts as lost.
    pub fn echo_received(&mut self, seq: u32, now: Instant) -> Option<Duration> {
        let slot = &mut self.slots[Self::slot(seq)];
        let probe = (*slot).filter(|p| p.seq == seq)?;
        *slot = None;
        let rtt = now.saturating_duration_since(probe.sent_at);
        if rtt > LOSS_TIMEOUT {
            self.snapshot.lost += 1;
            return None;
        }
        self.sample(rtt);
        Some(rtt)
    }

    /// Declares lost every probe unanswered for longer than [`LOSS_TIMEOUT`] at `now`.
    pub fn expire(&mut self, now: Instant) {
        for slot in &mut self.slots {
            if slot.is_some_and(|p| now.saturating_duration_since(p.sent_at) > LOSS_TIMEOUT) {
                *slot = None;
                self.snapshot.lost += 1;
            }
        }
    }

    /// The measurements so far.
    pub fn snapshot(&self) -> PathSnapshot {
        self.snapshot
    }

    /// Folds one RTT sample (at most [`LOSS_TIMEOUT`], so its nanoseconds fit a `u64` with
    /// room for the arithmetic below) into the statistics.
    fn sample(&mut self, rtt: Duration) {
        let r = u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX);
        let s = &mut self.snapshot;
        match s.last {
            None => self.srtt_ns = r,
            Some(prev) => {
                let prev = u64::try_from(prev.as_nanos()).unwrap_or(u64::MAX);
                let diff = r.abs_diff(prev);
                self.jitter_ns = if s.jitter.is_none() {
                    diff
                } else {
                    // j + (d − j)/16 written as (15j + d)/16 to stay unsigned.
                    (15 * self.jitter_ns + diff) / 16
                };
                s.jitter = Some(Duration::from_nanos(self.jitter_ns));
                self.srtt_ns = (7 * self.srtt_ns + r) / 8;
            }
        }
        s.last = Some(rtt);
        s.smoothed = Some(Duration::from_nanos(self.srtt_ns));
        s.min = Some(s.min.map_or(rtt, |m| m.min(rtt)));
        s.received += 1;
    }

    /// Ring index of `seq`.
    fn slot(seq: u32) -> usize {
        // The remainder is below SLOTS, so it fits in usize.
        (seq % SLOTS as u32) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn empty() {
        let s = PathStats::new().snapshot();
        assert_eq!(s, PathSnapshot::default());
        assert_eq!(s.loss_ratio(), 0.0);
    }

    #[test]
    fn rtt_smoothing_and_jitter() {
        let t0 = Instant::now();
        let mut p = PathStats::new();
        // RTTs 40, 48, 32 ms.
        let rtts = [40, 48, 32];
        for (i, rtt) in rtts.iter().enumerate() {
            let sent = t0 + ms(1000 * i as u64);
            p.probe_sent(i as u32, sent);
            assert_eq!(p.echo_received(i as u32, sent + ms(*rtt)), Some(ms(*rtt)));
        }
        let s = p.snapshot();
        assert_eq!(s.last, Some(ms(32)));
        assert_eq!(s.min, Some(ms(32)));
        // srtt: 40 → 41 → 39.875 ms.
        assert_eq!(s.smoothed, Some(Duration::from_micros(39_875)));
        // jitter: first |48 − 40| = 8, then (15·8 + 16)/16 = 8.5 ms.
        assert_eq!(s.jitter, Some(Duration::from_micros(8_500)));
        assert_eq!((s.sent, s.received, s.lost), (3, 3, 0));
    }

    #[test]
    fn one_sample_has_no_jitter() {
        let t0 = Instant::now();
        let mut p = PathStats::new();
        p.probe_sent(7, t0);
        assert_eq!(p.echo_received(7, t0 + ms(20)), Some(ms(20)));
        let s = p.snapshot();
        assert_eq!(s.smoothed, Some(ms(20)));
        assert_eq!(s.jitter, None);
    }

    #[test]
    fn unknown_and_duplicate_echoes_are_ignored() {
        let t0 = Instant::now();
        let mut p = PathStats::new();
        assert_eq!(p.echo_received(1, t0), None);
        p.probe_sent(1, t0);
        assert_eq!(
            p.echo_received(1 + SLOTS as u32, t0 + ms(5)),
            None,
            "same slot, other seq"
        );
        assert_eq!(p.echo_received(1, t0 + ms(5)), Some(ms(5)));
        assert_eq!(p.echo_received(1, t0 + ms(6)), None, "duplicate");
        assert_eq!(p.snapshot().received, 1);
    }

    #[test]
    fn timeout_counts_as_lost() {
        let t0 = Instant::now();
        let mut p = PathStats::new();
        p.probe_sent(1, t0);
        p.probe_sent(2, t0 + ms(1000));
        p.expire(t0 + LOSS_TIMEOUT);
        assert_eq!(p.snapshot().lost, 0, "exactly the timeout is still in time");
        p.expire(t0 + LOSS_TIMEOUT + ms(1));
        assert_eq!(p.snapshot().lost, 1);
        assert_eq!(p.echo_received(1, t0 + ms(2500)), None, "already lost");
        // An echo later than the timeout is a loss even before expire() ran.
        assert_eq!(p.echo_received(2, t0 + ms(3001)), None);
        let s = p.snapshot();
        assert_eq!((s.sent, s.received, s.lost), (2, 0, 2));
        assert_eq!(s.loss_ratio(), 1.0);
    }

    #[test]
    fn overwritten_slot_counts_as_lost() {
        let t0 = Instant::now();
        let mut p = PathStats::new();
        p.probe_sent(3, t0);
        p.probe_sent(3 + SLOTS as u32, t0 + ms(10));
        assert_eq!(p.snapshot().lost, 1);
        assert_eq!(p.echo_received(3, t0 + ms(20)), None);
        assert_eq!(p.echo_received(3 + SLOTS as u32, t0 + ms(20)), Some(ms(10)));
        assert_eq!(p.snapshot().loss_ratio(), 0.5);
    }

    #[test]
    fn sequence_wraps() {
        let t0 = Instant::now();
        let mut p = PathStats::new();
        p.probe_sent(u32::MAX, t0);
        p.probe_sent(0, t0 + ms(1));
        assert_eq!(p.echo_received(u32::MAX, t0 + ms(4)), Some(ms(4)));
        assert_eq!(p.echo_received(0, t0 + ms(4)), Some(ms(3)));
        assert_eq!(p.snapshot().lost, 0);
    }

    #[test]
    fn echo_before_send_time_is_zero_rtt() {
        let t0 = Instant::now() + ms(10);
        let mut p = PathStats::new();
        p.probe_sent(1, t0);
        assert_eq!(p.echo_received(1, t0 - ms(5)), Some(Duration::ZERO));
    }

    proptest! {
        /// Whatever happens, every sent probe is at most once received or lost, and the
        /// statistics stay within the samples' range.
        #[test]
        fn accounting_holds(events in proptest::collection::vec((0u8..3, 0u32..200, 0u64..3000), 0..400)) {
            let t0 = Instant::now();
            let mut now = t0;
            let mut p = PathStats::new();
            let mut max_rtt = Duration::ZERO;
            for (kind, seq, step_ms) in events {
                now += ms(step_ms / 10);
                match kind {
                    0 => p.probe_sent(seq, now),
                    1 => {
                        if let Some(rtt) = p.echo_received(seq, now) {
                            prop_assert!(rtt <= LOSS_TIMEOUT);
                            max_rtt = max_rtt.max(rtt);
                        }
                    }
                    _ => p.expire(now),
                }
                let s = p.snapshot();
                prop_assert!(s.received + s.lost <= s.sent);
                let outstanding = p.slots.iter().flatten().count() as u64;
                prop_assert_eq!(s.received + s.lost + outstanding, s.sent);
                if let (Some(min), Some(srtt)) = (s.min, s.smoothed) {
                    prop_assert!(min <= srtt && srtt <= max_rtt);
                }
                prop_assert!(s.jitter.is_none_or(|j| j <= max_rtt));
                prop_assert!((0.0..=1.0).contains(&s.loss_ratio()));
            }
        }
    }
}
