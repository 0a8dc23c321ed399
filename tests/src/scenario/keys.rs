//! Keys for scenario nodes, and writing them to files only their owner can read.
//!
//! Tests use [`test_key`]: fixed, distinct keys (the tests need distinct identities, not secret
//! ones, and fixed keys make logs comparable between runs). A demo can use [`random_key`].

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use grelay_proto::crypto::keys::{KEY_LEN, StaticSecret};

use crate::netns::{Error, Result};

/// The gateway's key in every scenario.
pub const GATEWAY_KEY: u8 = 1;

/// A fixed key, `n` repeated 32 times: distinct `n` give distinct keys.
pub fn test_key(n: u8) -> StaticSecret {
    StaticSecret::from_bytes([n; KEY_LEN])
}

/// A fresh key from the operating system's random source (`/dev/urandom`).
pub fn random_key() -> Result<StaticSecret> {
    let mut bytes = [0u8; KEY_LEN];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Error::io("reading /dev/urandom", e))?;
    Ok(StaticSecret::from_bytes(bytes))
}

/// Writes `contents` to `path` with mode 0600 (both programs refuse key files that group or
/// others can read), replacing any file there.
pub fn write_private(path: &Path, contents: &str) -> Result<()> {
    let what = || format!("writing {}", path.display());
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(what(), e)),
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(contents.as_bytes()))
        .map_err(|e| Error::io(what(), e))
}

/// Writes `key` in base64, the format of `grelay genkey`, to `path` with mode 0600.
pub fn write_key(path: &Path, key: &StaticSecret) -> Result<()> {
    write_private(path, &key.to_base64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_keys_are_distinct_and_random_keys_differ() {
        assert_ne!(test_key(1).public_key(), test_key(2).public_key());
        let (a, b) = (random_key().unwrap(), random_key().unwrap());
        assert_ne!(a.public_key(), b.public_key());
    }
}
