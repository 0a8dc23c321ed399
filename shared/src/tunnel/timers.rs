//! Protocol timers and limits (WireGuard's, which have years of field use behind them).

use core::time::Duration;

/// Start a new handshake once the current keys are this old.
pub const REKEY_AFTER_TIME: Duration = Duration::from_secs(120);
/// Never use keys older than this, for sending or receiving.
pub const REJECT_AFTER_TIME: Duration = Duration::from_secs(180);
/// Forget a session's keys entirely after this (the gateway frees the slot).
pub const SESSION_FORGET_TIME: Duration = Duration::from_secs(540);
/// Resend an unanswered initiation after this (plus up to [`REKEY_JITTER`]).
pub const REKEY_TIMEOUT: Duration = Duration::from_secs(5);
/// Random extra delay on handshake retries so that many clients do not retry in lockstep.
pub const REKEY_JITTER: Duration = Duration::from_millis(333);
/// After this long without an answer the gateway is reported unreachable (retries go on).
pub const REKEY_ATTEMPT_TIME: Duration = Duration::from_secs(90);
/// Start a new handshake once this many packets were sent with one key.
pub const REKEY_AFTER_MESSAGES: u64 = 1 << 60;
/// Keepalive interval while idle: keeps NAT mappings open (most expire after 30 s or more).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(25);
/// RTT probe interval while traffic flows.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// Traffic within this window counts as "a game is active" and keeps RTT probes running.
pub const ACTIVE_WINDOW: Duration = Duration::from_secs(30);
/// Interval between address requests until the gateway answers.
pub const CONFIG_RETRY: Duration = Duration::from_secs(1);
/// How often the gateway does its housekeeping (cookie secret, expiry, rate limiter).
pub const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(1);
/// RTT probes in a row with nothing authenticated coming back, after which the session is
/// presumed dead (the gateway restarted and forgot it) and a new handshake starts: about 4 s
/// with 1 s probes, so a restarted gateway has its clients back within 5 s. With 10 % loss
/// each way a false alarm (a harmless early rekey: the session carries on with new keys) takes
/// three lost round trips in a row, about once in 150 probes of an otherwise idle session;
/// any other authenticated packet (game traffic) also counts as an answer.
pub const DEAD_SESSION_PROBES: u32 = 3;
