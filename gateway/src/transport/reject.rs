//! Rate-limited logging of refused and failed fallback connections.
//!
//! Reasons are static strings (the map of counters cannot grow with what a peer sends); a
//! detail such as the server name a client asked for goes into the line only.
//!
//! The first refusal of each reason is logged at once with its source; after that at most one
//! line per reason every [`INTERVAL`], with the count since the last line. A flood of bad
//! connections therefore costs a few log lines, not one per connection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most one line per reason in this interval.
pub const INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Entry {
    logged_at: Instant,
    suppressed: u64,
    total: u64,
}

/// Counts refusals by reason and decides which to log.
#[derive(Debug, Default)]
pub struct RejectLog {
    entries: Mutex<HashMap<(&'static str, &'static str), Entry>>,
}

impl RejectLog {
    /// Notes a refusal of a `transport` connection from `from`; logs it unless a line for the
    /// same reason was logged within [`INTERVAL`].
    pub fn note(
        &self,
        transport: &'static str,
        reason: &'static str,
        detail: &str,
        from: SocketAddr,
    ) {
        if let Some(line) = self.note_at(Instant::now(), transport, reason, detail, from) {
            tracing::info!("{line}");
        }
    }

    /// [`note`](Self::note) with an explicit clock; returns the line to log, if any.
    pub fn note_at(
        &self,
        now: Instant,
        transport: &'static str,
        reason: &'static str,
        detail: &str,
        from: SocketAddr,
    ) -> Option<String> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let key = (transport, reason);
        let from = SocketAddr::new(from.ip().to_canonical(), from.port());
        match entries.get_mut(&key) {
            None => {
                entries.insert(
                    key,
                    Entry {
                        logged_at: now,
                        suppressed: 0,
                        total: 1,
                    },
                );
                Some(format!(
                    "{transport} connection from {from} refused: {reason}{detail}"
                ))
            }
            Some(e) => {
                e.total += 1;
                if now.saturating_duration_since(e.logged_at) < INTERVAL {
                    e.suppressed += 1;
                    return None;
                }
                let more = std::mem::take(&mut e.suppressed);
                e.logged_at = now;
                Some(format!(
                    "{transport} connection from {from} refused: {reason}{detail} ({more} more \
                     like it not logged, {} in all)",
                    e.total
                ))
            }
        }
    }

    /// Refusals so far, by `"transport: reason"`.
    pub fn totals(&self) -> Vec<(String, u64)> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = entries
            .iter()
            .map(|((t, r), e)| (format!("{t}: {r}"), e.total))
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_is_logged_then_one_line_per_interval_with_counts() {
        let log = RejectLog::default();
        let t = Instant::now();
        let from: SocketAddr = "198.18.2.2:5000".parse().unwrap();
        assert!(log.note_at(t, "tls", "bad frame", "", from).is_some());
        for i in 1..100 {
            assert!(
                log.note_at(t + Duration::from_millis(i), "tls", "bad frame", "", from)
                    .is_none()
            );
        }
        // Another reason has its own budget.
        assert!(
            log.note_at(t, "tls", "wrong server name", " \"x\"", from)
                .is_some()
        );
        let line = log
            .note_at(t + INTERVAL, "tls", "bad frame", "", from)
            .unwrap();
        assert!(
            line.contains("99 more") && line.contains("101 in all"),
            "{line}"
        );
        assert_eq!(
            log.totals(),
            vec![
                ("tls: bad frame".into(), 101),
                ("tls: wrong server name".into(), 1)
            ]
        );
    }
}
