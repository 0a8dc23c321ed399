//! The grelay client's I/O shell around the protocol core's [`grelay_proto::tunnel::client::Client`].
//!
//! `main.rs` holds the command line and logging; everything else is here so that tests can
//! use it in process. One job per module:
//!
//! | module | job |
//! |---|---|
//! | [`cli`] | the command line (`genkey`, `pubkey`, `up`, `down`, `status`, `check`) |
//! | [`config`] | the TOML configuration, checked, with file:line errors |
//! | [`gamelist`] | game prefix list files |
//! | [`cipher`] | `cipher = "auto"`: AES-GCM with hardware AES, else ChaCha20-Poly1305 |
//! | [`status`] | what `grelay status` shows, as text or JSON |
//! | [`control`] | the root-only Unix control socket (`status`, `down`) |
//! | [`state`] | the state file of what `up` installed, for cleanup after a crash |
//! | [`net`] | routes, policy rules, the nftables kill switch, resolv.conf |
//! | [`transport`] | TLS and QUIC fallback connections and the ladder that picks the transport |
//! | [`tunnel`] | the packet loop: TUN ⇄ `Client` ⇄ UDP |
//! | [`rundir`] | `/run/grelay`: lock, socket and state file paths |
//! | [`up`] | `grelay up` from start to teardown; `grelay down`; `grelay status` |

pub mod cipher;
pub mod cli;
pub mod config;
pub mod control;
pub mod gamelist;
pub mod net;
pub mod rundir;
pub mod state;
pub mod status;
pub mod transport;
pub mod tunnel;
pub mod up;
