//! What is left of the client tests' old shared set-up: thin wrappers over
//! [`grelay_tests::scenario`] for test files that still build their configurations by hand
//! (`e2e_backends.rs`). New tests use the scenario module directly: [`Scenario`],
//! `GatewayNode`, `ClientNode`, the config builders and [`Binaries`].
//!
//! [`Scenario`]: grelay_tests::scenario::Scenario

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use grelay_proto::crypto::keys::StaticSecret;
use grelay_tests::scenario::{self, Binaries};

/// The gateway's UDP port.
pub use grelay_tests::scenario::PORT;

/// How long the gateway or the client may take to come up.
pub const START: Duration = scenario::CLIENT_START;

/// The path of binary `name` (`grelay` or `grelay-gateway`), found or built once per process
/// (see [`scenario::bins`]).
pub fn bin(name: &str) -> String {
    let bins = Binaries::get().expect("finding or building the binaries");
    let path = match name {
        "grelay" => bins.grelay(),
        "grelay-gateway" => bins.gateway(),
        other => panic!("no binary {other}"),
    };
    path.to_string_lossy().into_owned()
}

/// A fixed key per role (the tests need distinct keys, not secret ones).
pub fn secret(n: u8) -> StaticSecret {
    scenario::test_key(n)
}

/// Writes a file readable by its owner only (key files).
pub fn write_private(path: &Path, contents: &str) {
    scenario::write_private(path, contents).expect("writing a key file");
}
