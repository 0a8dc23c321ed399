//! grelay in network namespaces: the real `grelay` and `grelay-gateway` binaries, configured
//! and driven on hosts of the [`netns`](crate::netns) harness, for end-to-end tests and demos.
//!
//! # In one call
//!
//! ```no_run
//! use grelay_tests::scenario::{Scenario, udp_probe};
//!
//! # fn main() -> grelay_tests::netns::Result<()> {
//! // laptop 10.200.1.2 ── home NAT ── internet ── gateway 198.18.1.2 ── game 10.99.1.2
//! let mut s = Scenario::home_setup("demo")?;
//! s.start_all()?; // the gateway serves, the laptop's `grelay up` is configured
//! let laptop = s.client("laptop");
//! assert!(laptop.ns().ping(s.game.host().v4().into(), std::time::Duration::from_secs(5))?);
//! let seen = udp_probe(laptop.ns(), s.game.udp_addr())?; // the game saw the gateway's NAT
//! println!("{seen:?}, status {:?}", laptop.status()?);
//! # Ok(()) }
//! ```
//!
//! # The pieces (one job per file)
//!
//! | module | what |
//! |---|---|
//! | [`bins`] | finding the binaries: `GRELAY_BIN_DIR`, else one bounded `cargo build --locked` |
//! | [`keys`] | fixed test keys, random keys, key files with mode 0600 |
//! | [`config`] | `gateway.toml` and `client.toml` builders with the scenarios' defaults |
//! | [`gateway`] | [`GatewayNode`]: start, stop, restart, SIGHUP reload, log, address book |
//! | [`client`] | [`ClientNode`]: `up`, `down`, `status --json` as a [`ClientStatus`], bounded waits |
//! | [`status`] | [`ClientStatus`], the parsed `grelay status --json` |
//! | [`game`] | [`GameServer`]: UDP reflector and TCP sink with SHA-256; [`udp_probe`], [`tcp_transfer`] |
//! | [`flow`] | [`PingSeries`]: a background ping with reply times, to watch a flow across an event |
//! | [`attack`] | garbage, floods, spoofed and replayed datagrams from an attacker's host |
//! | [`inside`] | [`in_namespace`]: a thread inside a namespace, for in-process sockets; [`succeeds`] |
//! | [`setup`] | [`Scenario`]: world, gateway, game server, NATs and clients together |
//!
//! # Conventions
//!
//! - Every namespace shares the root file system: each node keeps its files in its own
//!   directory under the scenario's [`Scratch`](crate::netns::Scratch) (kept when a test
//!   fails), and each client passes `--run-dir` so that clients do not share `/run/grelay`.
//! - Every wait is bounded; the bounds are the `*_START`/`*_STOP` constants or arguments.
//! - Processes are stopped by process id through the harness when their node (or namespace)
//!   is dropped.
//! - Errors are the harness's [`Error`](crate::netns::Error): a scenario is the same layer.
//!
//! Needs root and the harness's packages (see [`netns`](crate::netns)), plus `python3-scapy`
//! for [`attack::send_spoofed`].

pub mod attack;
pub mod bins;
pub mod client;
pub mod config;
pub mod flow;
pub mod game;
pub mod gateway;
pub mod inside;
pub mod keys;
pub mod setup;
pub mod status;

pub use bins::Binaries;
pub use client::{CLIENT_START, ClientNode, NetView};
pub use config::{CLIENT_TUN, ClientConfig, GATEWAY_TUN, GatewayConfig, POOL_V4, POOL_V6, PORT};
pub use flow::{PingReport, PingSeries, unix_now};
pub use game::{GAME_TCP_PORT, GAME_UDP_PORT, GameServer, Transfer, tcp_transfer, udp_probe};
pub use gateway::{GatewayNode, GatewayState};
pub use inside::{in_namespace, succeeds};
pub use keys::{GATEWAY_KEY, random_key, test_key, write_private};
pub use setup::{Placement, Scenario};
pub use status::ClientStatus;
