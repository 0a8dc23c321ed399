//! Cryptographic building blocks below the Noise handshake.
//!
//! * [`keys`]: X25519 static keys as the configs and the handshake see them.
//! * [`aead`]: the data-plane AEAD (ring's ChaCha20-Poly1305 or AES-256-GCM) keyed from the
//!   handshake's split, binding the outer data header as associated data.
//! * [`mac`]: WireGuard-style mac1/mac2 over handshake messages and the cookie reply that makes
//!   a flooded gateway demand proof of address before doing any Diffie–Hellman work.

pub mod aead;
pub mod keys;
pub mod mac;

/// Why a cryptographic operation failed. Deliberately vague towards peers: the shells count
/// these, they never tell the sender which check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// A tag or MAC did not verify: the bytes were forged, corrupted or keyed for someone else.
    #[error("authentication failed")]
    Authentication,
    /// A key string is not 32 bytes of standard base64.
    #[error("a key must be 44 characters of base64 encoding 32 bytes")]
    KeyEncoding,
    /// The Noise library refused the input (a malformed or mis-keyed handshake message).
    #[error("noise handshake failed: {0}")]
    Noise(&'static str),
}
