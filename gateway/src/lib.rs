//! grelay-gateway: many clients on one UDP port, routing decapsulated packets by their inner
//! destination — to another client straight back through the tunnel, or to the TUN, where the
//! kernel forwards (and, with `egress.mode = "nat"`, masquerades) them.
//!
//! The protocol is the core's ([`grelay_proto::tunnel::gateway::Gateway`]); this crate is the
//! shell around it, one job per module:
//!
//! | module | job |
//! |---|---|
//! | [`config`] | the TOML file, validated, with file:line errors |
//! | [`pool`] | which addresses of a prefix are the gateway's and the clients' |
//! | [`state`] | the persistent address book (a stable address per client key) |
//! | [`clients`] | configured clients ↔ core peers; the SIGHUP diff |
//! | [`nat`] | IP forwarding and the gateway's own nftables table |
//! | [`dataplane`] | per-packet work between UDP, the core and the TUN |
//! | [`backends`] | raw GRE sockets towards back ends chosen by inner destination |
//! | [`report`] | counters, rate-limited drop logs, the status line |
//! | [`metrics`] | Prometheus `/metrics` and `/healthz` over HTTP, from snapshots of the loop |
//! | [`transport`] | the TLS-over-TCP and QUIC fallback listeners and their links |
//! | [`mod@run`] | set-up, the event loop, tear-down |
//!
//! `main.rs` holds only the command line and logging, so tests can start a gateway in-process
//! with [`run::run`] and drive it with [`run::Command`]s.

pub mod backends;
pub mod clients;
pub mod config;
pub mod dataplane;
pub mod metrics;
pub mod nat;
pub mod pool;
pub mod report;
pub mod run;
pub mod state;
pub mod transport;

pub use config::Config;
pub use run::{Command, run, signal_commands};
