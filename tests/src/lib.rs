//! Test support for grelay: a deterministic simulator of the protocol core ([`sim`]) and a
//! network-namespace harness for end-to-end tests with the real binaries ([`netns`]).

pub mod netns;
pub mod sim;
