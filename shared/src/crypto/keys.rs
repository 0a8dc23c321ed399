//! X25519 static keys.
//!
//! Keys travel through config files and CLIs as standard base64 (44 characters), the same
//! convention WireGuard uses, so operators can reuse their habits and tooling.

use core::fmt;
use core::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::CryptoError;

/// Length of an X25519 key in bytes.
pub const KEY_LEN: usize = 32;

/// A peer's long-term public key: its identity towards gateways and other clients.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; KEY_LEN]);

/// A long-term private key. Never printed: `Debug` hides it.
#[derive(Clone)]
pub struct StaticSecret([u8; KEY_LEN]);

impl StaticSecret {
    /// Wraps raw key bytes (for example 32 bytes from the caller's CSPRNG); X25519 clamps them
    /// when the key is used, so any 32 bytes are a valid secret.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Raw bytes, for handing to the Noise library.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The public key that peers configure to recognise this secret.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(x25519_public(&self.0))
    }

    /// Base64 form for writing to a key file.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

impl fmt::Debug for StaticSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticSecret(<hidden>)")
    }
}

impl FromStr for StaticSecret {
    type Err = CryptoError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        decode_key(s).map(Self)
    }
}

impl PublicKey {
    /// Raw bytes, for handing to the Noise library and for MAC key derivation.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&STANDARD.encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = CryptoError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        decode_key(s).map(Self)
    }
}

fn decode_key(s: &str) -> Result<[u8; KEY_LEN], CryptoError> {
    let bytes = STANDARD
        .decode(s.trim())
        .map_err(|_| CryptoError::KeyEncoding)?;
    bytes.try_into().map_err(|_| CryptoError::KeyEncoding)
}

/// X25519 scalar multiplication with the base point, through snow's own DH implementation so
/// that the project carries a single curve implementation.
fn x25519_public(secret: &[u8; KEY_LEN]) -> [u8; KEY_LEN] {
    use snow::resolvers::{CryptoResolver, DefaultResolver};
    let mut dh = DefaultResolver
        .resolve_dh(&snow::params::DHChoice::Curve25519)
        // Invariant: the crate enables snow's `use-curve25519`, so the resolver has X25519.
        .expect("snow built with X25519");
    dh.set(secret);
    let mut out = [0u8; KEY_LEN];
    out.copy_from_slice(dh.pubkey());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7748_public_key_vector() {
        // RFC 7748 §6.1, Alice.
        let secret: [u8; 32] =
            hex::decode("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
                .unwrap()
                .try_into()
                .unwrap();
        let public = StaticSecret::from_bytes(secret).public_key();
        assert_eq!(
            hex::encode(public.0),
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
        );
    }

    #[test]
    fn base64_round_trip_and_errors() {
        let secret = StaticSecret::from_bytes([7; 32]);
        let parsed: StaticSecret = secret.to_base64().parse().unwrap();
        assert_eq!(parsed.as_bytes(), secret.as_bytes());
        let public = secret.public_key();
        assert_eq!(public.to_string().parse::<PublicKey>().unwrap(), public);
        assert_eq!(
            "not base64!".parse::<PublicKey>(),
            Err(CryptoError::KeyEncoding)
        );
        assert_eq!("AAAA".parse::<PublicKey>(), Err(CryptoError::KeyEncoding));
        assert!(!format!("{secret:?}").contains(&secret.to_base64()));
    }
}
