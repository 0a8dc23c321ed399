//! The transport ladder: which transport carries the session, decided from what the shell
//! observes. Pure logic with the time passed in, so every rule is unit-tested.
//!
//! ```text
//!  start ──► udp (first in `transports`)
//!              │ an initiation unanswered for 1 s (`first_answer`)
//!              ▼
//!            race: connect the fallbacks (quic, tls, in order, `stagger` apart)
//!              │ the first connection that completes wins; the others are closed
//!              ▼
//!            fallback ──(every `udp_probe_interval`: probe udp)──► an authenticated answer
//!              │                                                   over udp: back to udp,
//!              │ link lost, or its handshake unanswered for        same session; the old
//!              │ `fallback_answer`                                 link lingers a moment
//!              ▼
//!            back to the first transport (the ladder starts over)
//! ```
//!
//! Inputs: [`Ladder::initiation_sent`] (the core sent a handshake initiation over the active
//! transport), [`Ladder::handshake_completed`], [`Ladder::authenticated`] (an authenticated
//! datagram arrived over a transport), [`Ladder::link_up`] / [`Ladder::link_down`] (a fallback
//! connection completed or failed), and [`Ladder::tick`] at [`Ladder::poll_timeout`]. Outputs:
//! [`Action`]s for the shell.

use std::time::{Duration, Instant};

use grelay_io::fallback::Transport;

/// The ladder's timers.
#[derive(Debug, Clone)]
pub struct LadderConfig {
    /// Transports in order of preference (from the configuration).
    pub transports: Vec<Transport>,
    /// An initiation over UDP unanswered this long starts the race.
    pub first_answer: Duration,
    /// An initiation over a fallback unanswered this long gives it up.
    pub fallback_answer: Duration,
    /// Delay between starting one fallback and the next in a race (happy eyeballs).
    pub stagger: Duration,
    /// A race that found nothing is tried again after this long.
    pub race_retry: Duration,
    /// How often UDP is probed while a fallback carries the session.
    pub udp_probe_interval: Duration,
    /// How long the old link stays open (and read) after moving back to UDP.
    pub linger: Duration,
}

impl LadderConfig {
    /// The defaults: 1 s to answer over UDP, 4 s over a fallback, 150 ms stagger, 2 s
    /// between races, UDP probed every 5 s, the old link kept 5 s.
    pub fn new(transports: Vec<Transport>) -> Self {
        Self {
            transports,
            first_answer: Duration::from_secs(1),
            fallback_answer: Duration::from_secs(4),
            stagger: Duration::from_millis(150),
            race_retry: Duration::from_secs(2),
            udp_probe_interval: Duration::from_secs(5),
            linger: Duration::from_secs(5),
        }
    }
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start connecting this fallback.
    Connect(Transport),
    /// Close this fallback's connection (or abandon its attempt).
    Close(Transport),
    /// Send the session over this transport from now on; `handshake`: start a fresh
    /// handshake over it (else a keepalive, so that the gateway sees the new address).
    Activate {
        /// The transport.
        transport: Transport,
        /// Whether to handshake anew.
        handshake: bool,
    },
    /// Send an alternate-path probe over UDP.
    ProbeUdp,
}

/// The ladder's state.
#[derive(Debug)]
pub struct Ladder {
    config: LadderConfig,
    active: Option<Transport>,
    reason: String,
    since: Instant,
    /// An initiation over the active transport is unanswered since.
    waiting_since: Option<Instant>,
    /// Fallbacks still to start in the current race, with when.
    to_start: Vec<(Transport, Instant)>,
    /// Fallbacks connecting in the current race.
    connecting: Vec<Transport>,
    /// When the current race started.
    race_started: Option<Instant>,
    /// No race before this.
    next_race: Option<Instant>,
    /// Open links that are not active, closed at the given time.
    lingering: Vec<(Transport, Instant)>,
    next_probe: Option<Instant>,
    switches: u64,
}

impl Ladder {
    /// Starts on the first transport; a fallback first is connected at once.
    pub fn new(config: LadderConfig, now: Instant) -> (Self, Vec<Action>) {
        let first = config.transports.first().copied().unwrap_or(Transport::Udp);
        let mut ladder = Self {
            active: None,
            reason: String::new(),
            since: now,
            waiting_since: None,
            to_start: Vec::new(),
            connecting: Vec::new(),
            race_started: None,
            next_race: None,
            lingering: Vec::new(),
            next_probe: None,
            switches: 0,
            config,
        };
        let mut actions = Vec::new();
        if first == Transport::Udp {
            ladder.active = Some(Transport::Udp);
            ladder.reason = "first choice".to_owned();
        } else {
            ladder.reason = "connecting".to_owned();
            ladder.start_race(now, &mut actions);
        }
        (ladder, actions)
    }

    /// The transport carrying the session (`None` while a fallback-only client connects).
    pub fn active(&self) -> Option<Transport> {
        self.active
    }

    /// Why the active transport was chosen, for `grelay status`.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Since when the active transport carries the session.
    pub fn since(&self) -> Instant {
        self.since
    }

    /// Transport changes so far.
    pub fn switches(&self) -> u64 {
        self.switches
    }

    /// Whether a race is under way.
    pub fn racing(&self) -> bool {
        self.race_started.is_some()
    }

    /// The core sent a handshake initiation over the active transport.
    pub fn initiation_sent(&mut self, now: Instant) {
        self.waiting_since.get_or_insert(now);
    }

    /// A handshake completed.
    pub fn handshake_completed(&mut self, _now: Instant) {
        self.waiting_since = None;
    }

    /// An authenticated datagram arrived over `transport`.
    pub fn authenticated(&mut self, now: Instant, transport: Transport) -> Vec<Action> {
        let mut actions = Vec::new();
        if transport == Transport::Udp && self.active.is_some_and(|a| a != Transport::Udp) {
            let old = self.active;
            let on = now.saturating_duration_since(self.since);
            let reason = format!(
                "udp answered again after {} on {}",
                crate::status::human_duration(on.as_secs_f64()),
                old.map_or("none", Transport::name)
            );
            self.switch_to(now, Transport::Udp, false, reason, &mut actions);
            self.abandon_race(&mut actions);
        }
        actions
    }

    /// A fallback connection completed.
    pub fn link_up(&mut self, now: Instant, transport: Transport) -> Vec<Action> {
        let mut actions = Vec::new();
        let was_racing = self.connecting.contains(&transport);
        self.connecting.retain(|t| *t != transport);
        if !was_racing || self.race_started.is_none() {
            // A late finisher of a race already decided.
            actions.push(Action::Close(transport));
            return actions;
        }
        let started = self.race_started.unwrap_or(now);
        let losers: Vec<Transport> = self
            .connecting
            .drain(..)
            .chain(self.to_start.drain(..).map(|(t, _)| t))
            .collect();
        let why = match self.active {
            Some(Transport::Udp) => format!(
                "udp got no handshake answer within {}; {transport} connected first",
                crate::status::human_duration(self.config.first_answer.as_secs_f64())
            ),
            Some(other) if other != transport => {
                format!("{other} got no answer; {transport} connected first")
            }
            _ => format!("{transport} connected first"),
        };
        let reason = format!(
            "{why} ({} after the race started)",
            crate::status::human_duration(now.saturating_duration_since(started).as_secs_f64())
        );
        self.race_started = None;
        self.next_race = None;
        for loser in losers {
            actions.push(Action::Close(loser));
        }
        self.switch_to(now, transport, true, reason, &mut actions);
        actions
    }

    /// A fallback connection failed or ended.
    pub fn link_down(&mut self, now: Instant, transport: Transport) -> Vec<Action> {
        let mut actions = Vec::new();
        self.connecting.retain(|t| *t != transport);
        self.lingering.retain(|(t, _)| *t != transport);
        if self.active == Some(transport) {
            self.restart(
                now,
                format!("the {transport} connection was lost"),
                &mut actions,
            );
        } else if self.race_started.is_some()
            && self.connecting.is_empty()
            && self.to_start.is_empty()
        {
            self.race_started = None;
            self.next_race = Some(now + self.config.race_retry);
        }
        actions
    }

    /// Runs the timers due at `now`.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let mut i = 0;
        while i < self.to_start.len() {
            if self.to_start[i].1 <= now {
                let (t, _) = self.to_start.remove(i);
                self.connecting.push(t);
                actions.push(Action::Connect(t));
            } else {
                i += 1;
            }
        }
        if let (Some(active), Some(since)) = (self.active, self.waiting_since) {
            let limit = if active == Transport::Udp {
                self.config.first_answer
            } else {
                self.config.fallback_answer
            };
            if now >= since + limit {
                if active == Transport::Udp {
                    let allowed = self.next_race.is_none_or(|t| now >= t);
                    if self.race_started.is_none() && allowed && self.has_fallbacks() {
                        self.start_race(now, &mut actions);
                    }
                } else {
                    let why = format!(
                        "{active} got no handshake answer within {}",
                        crate::status::human_duration(limit.as_secs_f64())
                    );
                    self.restart(now, why, &mut actions);
                }
            }
        } else if self.active.is_none()
            && self.race_started.is_none()
            && self.next_race.is_none_or(|t| now >= t)
        {
            self.start_race(now, &mut actions);
        }
        if self.next_probe.is_some_and(|t| now >= t) {
            actions.push(Action::ProbeUdp);
            self.next_probe = Some(now + self.config.udp_probe_interval);
        }
        let (done, keep): (Vec<_>, Vec<_>) = self.lingering.iter().partition(|(_, t)| now >= *t);
        self.lingering = keep;
        actions.extend(done.into_iter().map(|(t, _)| Action::Close(t)));
        actions
    }

    /// When [`tick`](Self::tick) next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let waiting = match (self.active, self.waiting_since) {
            (Some(Transport::Udp), Some(t)) if self.race_started.is_none() => {
                let due = t + self.config.first_answer;
                Some(self.next_race.map_or(due, |r| r.max(due)))
            }
            (Some(Transport::Udp), _) => None,
            (Some(_), Some(t)) => Some(t + self.config.fallback_answer),
            (None, _) if self.race_started.is_none() => self.next_race,
            _ => None,
        };
        [
            waiting,
            self.to_start.iter().map(|(_, t)| *t).min(),
            self.next_probe,
            self.lingering.iter().map(|(_, t)| *t).min(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn fallbacks(&self) -> impl Iterator<Item = Transport> + '_ {
        self.config
            .transports
            .iter()
            .copied()
            .filter(|t| *t != Transport::Udp)
    }

    fn has_fallbacks(&self) -> bool {
        self.fallbacks().next().is_some()
    }

    fn start_race(&mut self, now: Instant, actions: &mut Vec<Action>) {
        let list: Vec<Transport> = self.fallbacks().collect();
        if list.is_empty() {
            return;
        }
        self.race_started = Some(now);
        for (i, t) in list.into_iter().enumerate() {
            self.lingering.retain(|(l, _)| *l != t);
            if i == 0 {
                self.connecting.push(t);
                actions.push(Action::Connect(t));
            } else {
                self.to_start
                    .push((t, now + self.config.stagger * i as u32));
            }
        }
    }

    fn abandon_race(&mut self, actions: &mut Vec<Action>) {
        for t in self.connecting.drain(..) {
            actions.push(Action::Close(t));
        }
        self.to_start.clear();
        self.race_started = None;
        self.next_race = None;
    }

    fn switch_to(
        &mut self,
        now: Instant,
        transport: Transport,
        handshake: bool,
        reason: String,
        actions: &mut Vec<Action>,
    ) {
        if let Some(old) = self
            .active
            .filter(|o| *o != Transport::Udp && *o != transport)
        {
            self.lingering.push((old, now + self.config.linger));
        }
        if self.active.is_some() && self.active != Some(transport) {
            self.switches += 1;
        }
        self.active = Some(transport);
        self.reason = reason;
        self.since = now;
        self.waiting_since = None;
        let udp_listed = self.config.transports.contains(&Transport::Udp);
        self.next_probe = (transport != Transport::Udp && udp_listed)
            .then_some(now + self.config.udp_probe_interval);
        actions.push(Action::Activate {
            transport,
            handshake,
        });
    }

    /// Gives up the active transport and starts over from the first one.
    fn restart(&mut self, now: Instant, why: String, actions: &mut Vec<Action>) {
        if let Some(old) = self.active.filter(|t| *t != Transport::Udp) {
            actions.push(Action::Close(old));
            self.lingering.retain(|(t, _)| *t != old);
        }
        self.abandon_race(actions);
        let first = self
            .config
            .transports
            .first()
            .copied()
            .unwrap_or(Transport::Udp);
        if first == Transport::Udp {
            let reason = format!("{why}; trying udp again");
            self.active = None;
            self.switch_to(now, Transport::Udp, true, reason, actions);
        } else {
            self.active = None;
            self.reason = format!("{why}; reconnecting");
            self.since = now;
            self.waiting_since = None;
            self.next_probe = None;
            self.start_race(now, actions);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Transport::{Quic, Tls, Udp};

    const MS: Duration = Duration::from_millis(1);

    fn ladder(transports: &[Transport]) -> (Ladder, Instant) {
        let now = Instant::now();
        let (l, actions) = Ladder::new(LadderConfig::new(transports.to_vec()), now);
        if transports[0] == Udp {
            assert!(actions.is_empty());
        }
        (l, now)
    }

    #[test]
    fn udp_that_answers_never_races() {
        let (mut l, t0) = ladder(&[Udp, Quic, Tls]);
        l.initiation_sent(t0);
        l.handshake_completed(t0 + 20 * MS);
        assert_eq!(l.poll_timeout(), None);
        assert!(l.tick(t0 + Duration::from_secs(10)).is_empty());
        assert_eq!(l.active(), Some(Udp));
    }

    #[test]
    fn silent_udp_races_fallbacks_after_one_second_and_the_first_wins() {
        let (mut l, t0) = ladder(&[Udp, Quic, Tls]);
        l.initiation_sent(t0);
        assert_eq!(l.poll_timeout(), Some(t0 + 1000 * MS));
        assert!(l.tick(t0 + 999 * MS).is_empty());
        let t1 = t0 + 1000 * MS;
        assert_eq!(l.tick(t1), vec![Action::Connect(Quic)]);
        assert_eq!(l.poll_timeout(), Some(t1 + 150 * MS));
        assert_eq!(l.tick(t1 + 150 * MS), vec![Action::Connect(Tls)]);
        // TLS completes first (QUIC is blocked like the rest of UDP).
        let actions = l.link_up(t1 + 170 * MS, Tls);
        assert_eq!(
            actions,
            vec![
                Action::Close(Quic),
                Action::Activate {
                    transport: Tls,
                    handshake: true
                }
            ]
        );
        assert_eq!(l.active(), Some(Tls));
        assert!(l.reason().contains("tls connected first"), "{}", l.reason());
        // A late QUIC success is closed.
        assert_eq!(l.link_up(t1 + 300 * MS, Quic), vec![Action::Close(Quic)]);
        l.initiation_sent(t1 + 170 * MS);
        l.handshake_completed(t1 + 175 * MS);
        assert_eq!(l.active(), Some(Tls));
    }

    #[test]
    fn on_a_fallback_udp_is_probed_and_an_answer_moves_back_without_handshake() {
        let (mut l, t0) = ladder(&[Udp, Quic, Tls]);
        l.initiation_sent(t0);
        let t1 = t0 + 1000 * MS;
        l.tick(t1);
        l.link_up(t1 + 10 * MS, Quic);
        l.handshake_completed(t1 + 20 * MS);
        assert_eq!(l.poll_timeout(), Some(t1 + 10 * MS + 5000 * MS));
        // UDP stays blocked: probes every 5 s.
        for k in 1..4u32 {
            let t = t1 + 10 * MS + 5000 * MS * k;
            assert_eq!(l.tick(t), vec![Action::ProbeUdp]);
        }
        // An authenticated answer over UDP: back, no handshake, QUIC lingers 5 s.
        let back = t1 + Duration::from_secs(17);
        assert_eq!(
            l.authenticated(back, Udp),
            vec![Action::Activate {
                transport: Udp,
                handshake: false
            }]
        );
        assert_eq!(l.active(), Some(Udp));
        assert!(
            l.reason().starts_with("udp answered again after"),
            "{}",
            l.reason()
        );
        assert_eq!(l.poll_timeout(), Some(back + 5000 * MS));
        assert_eq!(l.tick(back + 5000 * MS), vec![Action::Close(Quic)]);
        assert_eq!(l.poll_timeout(), None);
        assert_eq!(l.switches(), 2);
        // Authenticated datagrams over the active transport change nothing.
        assert!(l.authenticated(back, Udp).is_empty());
    }

    #[test]
    fn lost_fallback_starts_over_from_udp() {
        let (mut l, t0) = ladder(&[Udp, Tls]);
        l.initiation_sent(t0);
        let t1 = t0 + 1000 * MS;
        assert_eq!(l.tick(t1), vec![Action::Connect(Tls)]);
        l.link_up(t1, Tls);
        let actions = l.link_down(t1 + Duration::from_secs(30), Tls);
        assert_eq!(
            actions,
            vec![
                Action::Close(Tls),
                Action::Activate {
                    transport: Udp,
                    handshake: true
                }
            ]
        );
        assert!(l.reason().contains("lost"), "{}", l.reason());
    }

    #[test]
    fn unanswered_fallback_is_given_up() {
        let (mut l, t0) = ladder(&[Udp, Tls]);
        l.initiation_sent(t0);
        let t1 = t0 + 1000 * MS;
        l.tick(t1);
        l.link_up(t1, Tls);
        l.initiation_sent(t1);
        assert_eq!(l.poll_timeout(), Some(t1 + 4000 * MS));
        let actions = l.tick(t1 + 4000 * MS);
        assert!(actions.contains(&Action::Close(Tls)), "{actions:?}");
        assert_eq!(l.active(), Some(Udp));
    }

    #[test]
    fn failed_race_is_retried_after_a_pause() {
        let (mut l, t0) = ladder(&[Udp, Quic, Tls]);
        l.initiation_sent(t0);
        let t1 = t0 + 1000 * MS;
        l.tick(t1);
        l.tick(t1 + 150 * MS);
        assert!(l.link_down(t1 + 200 * MS, Quic).is_empty());
        assert!(l.racing());
        l.link_down(t1 + 300 * MS, Tls);
        assert!(!l.racing());
        assert_eq!(l.poll_timeout(), Some(t1 + 2300 * MS));
        assert!(l.tick(t1 + 2000 * MS).is_empty());
        assert_eq!(l.tick(t1 + 2300 * MS), vec![Action::Connect(Quic)]);
    }

    #[test]
    fn udp_only_never_races_and_fallback_only_connects_at_once() {
        let (mut l, t0) = ladder(&[Udp]);
        l.initiation_sent(t0);
        assert!(l.tick(t0 + Duration::from_secs(5)).is_empty());
        let now = Instant::now();
        let (mut l, actions) = Ladder::new(LadderConfig::new(vec![Tls, Quic]), now);
        assert_eq!(actions, vec![Action::Connect(Tls)]);
        assert_eq!(l.active(), None);
        assert_eq!(l.tick(now + 150 * MS), vec![Action::Connect(Quic)]);
        let up = l.link_up(now + 200 * MS, Quic);
        assert!(up.contains(&Action::Close(Tls)));
        assert_eq!(l.active(), Some(Quic));
        // No UDP listed: no probes.
        assert_eq!(l.poll_timeout(), None);
    }
}
