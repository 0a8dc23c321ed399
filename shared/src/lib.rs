//! grelay's protocol core.
//!
//! Sans-IO: no sockets, no clock, no OS randomness. Time and randomness come in as arguments,
//! bytes come in and go out through the state machines' `handle_*` / `poll_*` methods.

pub mod backend;
pub mod crypto;
pub mod noise;
pub mod ratelimit;
pub mod replay;
pub mod router;
pub mod rtt;
pub mod tai64n;
pub mod tunnel;
pub mod wire;
