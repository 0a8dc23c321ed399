//! A steady flow to watch across an event (NAT rebinding, gateway restart, an attack): a
//! `ping` series in the background, with every reply's arrival time, read back as a
//! [`PingReport`].
//!
//! `ping -D` prefixes each reply with its Unix arrival time, so the report can say when the
//! flow stopped and came back relative to a moment the test noted with [`unix_now`]. No `-w`:
//! with a deadline, iputils `ping` keeps sending past `-c` until it has that many replies,
//! which would hide losses; the series is bounded by its count instead, and by
//! [`PingSeries::finish`]'s wait.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::netns::{Error, Namespace, Process, Result};

/// A `ping` series running in a namespace.
#[derive(Debug)]
pub struct PingSeries {
    process: Process,
    count: u32,
    interval: Duration,
}

impl PingSeries {
    /// Starts `count` echo requests `interval` apart (at least 10 ms) from `ns` to `dest`,
    /// logging to `log`.
    pub fn start(
        ns: &Namespace,
        dest: IpAddr,
        count: u32,
        interval: Duration,
        log: &Path,
    ) -> Result<PingSeries> {
        let interval = interval.max(Duration::from_millis(10));
        let args = [
            "ping",
            "-n",
            "-D",
            "-c",
            &count.to_string(),
            "-i",
            &format!("{:.3}", interval.as_secs_f64()),
            "-W",
            "1",
            &dest.to_string(),
        ];
        Ok(PingSeries {
            process: ns.spawn(&args, log)?,
            count,
            interval,
        })
    }

    /// Waits for the series to end (its duration and a few seconds) and parses its log.
    pub fn finish(self) -> Result<PingReport> {
        let limit = self.interval * self.count + Duration::from_secs(5);
        if self.process.wait_exit(limit).is_none() {
            return Err(Error::WaitTimeout {
                what: format!("the ping series to end: {}", self.process.log()),
                timeout: limit,
            });
        }
        Ok(PingReport::parse(&self.process.log(), self.count))
    }

    /// What the series has printed so far.
    pub fn log(&self) -> String {
        self.process.log()
    }
}

/// The replies of a ping series.
#[derive(Clone, Debug, PartialEq)]
pub struct PingReport {
    /// Requests sent.
    pub sent: u32,
    /// Sequence number → Unix arrival time (s) of its reply (duplicates ignored).
    pub replies: BTreeMap<u32, f64>,
}

impl PingReport {
    /// Reads `ping -n -D` output; `count` is used when the summary line is missing.
    pub fn parse(text: &str, count: u32) -> PingReport {
        let mut replies = BTreeMap::new();
        let mut sent = count;
        for line in text.lines() {
            if let Some((n, _)) = line.split_once(" packets transmitted") {
                sent = n.trim().parse().unwrap_or(count);
            }
            let Some(rest) = line.strip_prefix('[') else {
                continue;
            };
            let Some((time, rest)) = rest.split_once(']') else {
                continue;
            };
            let seq = rest
                .split_whitespace()
                .find_map(|w| w.strip_prefix("icmp_seq="))
                .and_then(|s| s.parse().ok());
            if let (Ok(time), Some(seq)) = (time.parse::<f64>(), seq) {
                replies.entry(seq).or_insert(time);
            }
        }
        PingReport { sent, replies }
    }

    /// Replies received.
    pub fn received(&self) -> u32 {
        self.replies.len() as u32
    }

    /// Requests without a reply.
    pub fn lost(&self) -> u32 {
        self.sent.saturating_sub(self.received())
    }

    /// Sequence numbers without a reply.
    pub fn lost_seqs(&self) -> Vec<u32> {
        (1..=self.sent)
            .filter(|s| !self.replies.contains_key(s))
            .collect()
    }

    /// The arrival time of the first reply after Unix time `t` (from [`unix_now`]).
    pub fn first_reply_after(&self, t: f64) -> Option<f64> {
        self.replies
            .values()
            .copied()
            .filter(|&at| at > t)
            .min_by(f64::total_cmp)
    }

    /// The longest time between consecutive replies, in seconds.
    pub fn longest_gap(&self) -> f64 {
        let mut times: Vec<f64> = self.replies.values().copied().collect();
        times.sort_by(f64::total_cmp);
        times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max)
    }
}

/// The current Unix time in seconds, comparable with [`PingReport`] times.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_replies_losses_and_gaps() {
        let text = "PING 10.99.1.2 (10.99.1.2) 56(84) bytes of data.
[1700000000.100000] 64 bytes from 10.99.1.2: icmp_seq=1 ttl=63 time=0.51 ms
[1700000000.300000] 64 bytes from 10.99.1.2: icmp_seq=3 ttl=63 time=0.52 ms
[1700000000.300100] 64 bytes from 10.99.1.2: icmp_seq=3 ttl=63 time=0.53 ms (DUP!)
[1700000001.400000] 64 bytes from 10.99.1.2: icmp_seq=4 ttl=63 time=0.50 ms

--- 10.99.1.2 ping statistics ---
5 packets transmitted, 3 received, +1 duplicates, 40% packet loss, time 400ms
";
        let r = PingReport::parse(text, 99);
        assert_eq!((r.sent, r.received(), r.lost()), (5, 3, 2));
        assert_eq!(r.lost_seqs(), vec![2, 5]);
        assert_eq!(r.first_reply_after(1_700_000_000.2), Some(1_700_000_000.3));
        assert!((r.longest_gap() - 1.1).abs() < 1e-6, "{}", r.longest_gap());
    }
}
