//! Liveness of one back end, from GRE keepalives.

use core::time::Duration;
use std::time::Instant;

/// Interval between keepalive probes.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// A back end is down when no keepalive came back for this long: failover within
/// `DEAD_AFTER + PROBE_INTERVAL` (2 s), inside the 3 s the operators are promised.
pub const DEAD_AFTER: Duration = Duration::from_millis(1500);

/// Up or down, and when the next probe is due.
#[derive(Debug, Clone)]
pub(crate) struct Health {
    up: bool,
    last_return: Option<Instant>,
    since: Instant,
    next_probe: Instant,
}

impl Health {
    /// Starts up (traffic flows at once), with a probe due now; a back end that never answers is
    /// marked down after [`DEAD_AFTER`].
    pub fn new(now: Instant) -> Self {
        Self {
            up: true,
            last_return: None,
            since: now,
            next_probe: now,
        }
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    pub fn next_probe(&self) -> Instant {
        self.next_probe
    }

    /// A probe went out; returns whether the state changed (to down).
    pub fn probe_sent(&mut self, now: Instant) -> bool {
        self.next_probe = now + PROBE_INTERVAL;
        let heard = self.last_return.unwrap_or(self.since);
        if self.up && now.saturating_duration_since(heard) >= DEAD_AFTER {
            self.up = false;
            self.since = now;
            return true;
        }
        false
    }

    /// A keepalive came back; returns whether the state changed (to up).
    pub fn keepalive_returned(&mut self, now: Instant) -> bool {
        self.last_return = Some(now);
        if !self.up {
            self.up = true;
            self.since = now;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goes_down_after_silence_and_up_on_return() {
        let t0 = Instant::now();
        let mut h = Health::new(t0);
        assert!(h.is_up());
        let mut t = t0;
        let mut went_down = None;
        for _ in 0..10 {
            if h.probe_sent(t) {
                went_down = Some(t);
                break;
            }
            t = h.next_probe();
        }
        let down_at = went_down.expect("marked down");
        assert!(down_at.duration_since(t0) <= DEAD_AFTER + PROBE_INTERVAL);
        assert!(!h.is_up());
        assert!(h.keepalive_returned(down_at + Duration::from_millis(10)));
        assert!(h.is_up());
        assert!(!h.keepalive_returned(down_at + Duration::from_millis(20)));
    }

    #[test]
    fn stays_up_while_answering() {
        let t0 = Instant::now();
        let mut h = Health::new(t0);
        let mut t = t0;
        for _ in 0..20 {
            assert!(!h.probe_sent(t));
            h.keepalive_returned(t + Duration::from_millis(1));
            t = h.next_probe();
        }
        assert!(h.is_up());
    }
}
