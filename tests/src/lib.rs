//! Test support for grelay: a deterministic simulator of the protocol core ([`sim`]) and a
//! network-namespace harness for end-to-end tests with the real binaries ([`netns`]), and
//! helpers for tests against the real Docker engine ([`docker`]).

pub mod docker;
pub mod netns;
pub mod scenario;
pub mod sim;
