//! The Noise handshake: `Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s` through `snow`.
//!
//! IK because every client knows the gateway's static key in advance (one round trip, identity
//! hidden from observers); psk2 so that an operator can add a per-client pre-shared key as a
//! post-quantum hedge, as WireGuard does (an all-zero key when none is configured).
//!
//! snow is used only for the handshake. Its stateless transport takes no associated data, so
//! the data plane takes the raw split keys (`dangerously_get_raw_split`) and seals with ring,
//! binding the outer header as associated data (see [`crate::crypto::aead`]).
//!
//! snow gets its randomness (the ephemeral key) from [`SeededResolver`], which draws it from a
//! seed the caller passes in: the core never touches the OS RNG.

mod resolver;

pub use resolver::SeededResolver;

use snow::{Builder, HandshakeState};

use crate::crypto::CryptoError;
use crate::crypto::aead::CipherSuite;
use crate::crypto::keys::{KEY_LEN, PublicKey, StaticSecret};

/// The Noise protocol name; both ends must use exactly this.
pub const PATTERN: &str = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
/// Prologue label; the cipher suite code follows it so that a suite changed in flight makes
/// the handshake fail instead of silently downgrading.
pub const PROLOGUE_LABEL: &[u8] = b"grelay v1";
/// Size of the payload of the first message: a TAI64N timestamp.
pub const INITIATION_PAYLOAD_LEN: usize = 12;
/// Size of the Noise part of the first message: e (32) + encrypted s (48) + encrypted
/// timestamp (28).
pub const INITIATION_NOISE_LEN: usize = 32 + 48 + INITIATION_PAYLOAD_LEN + 16;
/// Size of the Noise part of the second message: e (32) + encrypted empty payload (16).
pub const RESPONSE_NOISE_LEN: usize = 32 + 16;
/// The pre-shared key used when the operator configured none.
pub const NO_PSK: [u8; KEY_LEN] = [0; KEY_LEN];

/// Transport keys from the handshake's split, oriented for the side that holds them.
pub struct SessionKeys {
    /// Key for the frames this side sends.
    pub send: [u8; KEY_LEN],
    /// Key for the frames this side receives.
    pub recv: [u8; KEY_LEN],
}

fn prologue(suite: CipherSuite) -> [u8; PROLOGUE_LABEL.len() + 1] {
    let mut p = [0u8; PROLOGUE_LABEL.len() + 1];
    p[..PROLOGUE_LABEL.len()].copy_from_slice(PROLOGUE_LABEL);
    p[PROLOGUE_LABEL.len()] = suite.code();
    p
}

fn noise_err(_: snow::Error) -> CryptoError {
    CryptoError::Noise("message rejected")
}

fn builder(seed: [u8; 32]) -> Builder<'static> {
    // Invariant: PATTERN is a constant that snow parses (checked by the tests).
    let params = PATTERN.parse().expect("valid Noise pattern");
    Builder::with_resolver(params, Box::new(SeededResolver::new(seed)))
}

/// The initiator's half-finished handshake, waiting for the response.
pub struct Initiator {
    state: HandshakeState,
}

impl core::fmt::Debug for Initiator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Initiator")
    }
}

impl Initiator {
    /// Writes the first message (with `timestamp` as its payload) into `out`, which must hold
    /// [`INITIATION_NOISE_LEN`] bytes.
    pub fn start(
        local: &StaticSecret,
        remote: &PublicKey,
        psk: &[u8; KEY_LEN],
        suite: CipherSuite,
        seed: [u8; 32],
        timestamp: &[u8; INITIATION_PAYLOAD_LEN],
        out: &mut [u8; INITIATION_NOISE_LEN],
    ) -> Result<Self, CryptoError> {
        let prologue = prologue(suite);
        let mut state = builder(seed)
            .local_private_key(local.as_bytes())
            .and_then(|b| b.remote_public_key(remote.as_bytes()))
            .and_then(|b| b.prologue(&prologue))
            .and_then(|b| b.psk(2, psk))
            .and_then(|b| b.build_initiator())
            .map_err(noise_err)?;
        let n = state.write_message(timestamp, out).map_err(noise_err)?;
        debug_assert_eq!(n, INITIATION_NOISE_LEN);
        Ok(Self { state })
    }

    /// Reads the responder's message and derives the transport keys.
    pub fn finish(mut self, response: &[u8]) -> Result<SessionKeys, CryptoError> {
        if response.len() != RESPONSE_NOISE_LEN {
            return Err(CryptoError::Noise("bad response length"));
        }
        let mut payload = [0u8; RESPONSE_NOISE_LEN];
        let n = self
            .state
            .read_message(response, &mut payload)
            .map_err(noise_err)?;
        if n != 0 || !self.state.is_handshake_finished() {
            return Err(CryptoError::Noise("unexpected response payload"));
        }
        let (i_to_r, r_to_i) = self.state.dangerously_get_raw_split();
        Ok(SessionKeys {
            send: i_to_r,
            recv: r_to_i,
        })
    }
}

/// The responder's handshake after reading the first message: the initiator's identity and
/// timestamp are known and authenticated, the response is not yet written.
pub struct Responder {
    state: HandshakeState,
    initiator: PublicKey,
    timestamp: [u8; INITIATION_PAYLOAD_LEN],
}

impl core::fmt::Debug for Responder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Responder({})", self.initiator)
    }
}

impl Responder {
    /// Reads a first message; fails unless it decrypts under `local`'s key.
    pub fn read(
        local: &StaticSecret,
        suite: CipherSuite,
        seed: [u8; 32],
        message: &[u8],
    ) -> Result<Self, CryptoError> {
        if message.len() != INITIATION_NOISE_LEN {
            return Err(CryptoError::Noise("bad initiation length"));
        }
        let prologue = prologue(suite);
        let mut state = builder(seed)
            .local_private_key(local.as_bytes())
            .and_then(|b| b.prologue(&prologue))
            .and_then(|b| b.psk(2, &NO_PSK))
            .and_then(|b| b.build_responder())
            .map_err(noise_err)?;
        let mut payload = [0u8; INITIATION_NOISE_LEN];
        let n = state
            .read_message(message, &mut payload)
            .map_err(noise_err)?;
        if n != INITIATION_PAYLOAD_LEN {
            return Err(CryptoError::Noise("bad initiation payload"));
        }
        let remote = state
            .get_remote_static()
            .and_then(|k| <[u8; KEY_LEN]>::try_from(k).ok())
            .ok_or(CryptoError::Noise("no initiator static key"))?;
        let mut timestamp = [0u8; INITIATION_PAYLOAD_LEN];
        timestamp.copy_from_slice(&payload[..INITIATION_PAYLOAD_LEN]);
        Ok(Self {
            state,
            initiator: PublicKey(remote),
            timestamp,
        })
    }

    /// The initiator's static key: look it up among authorized peers before answering.
    pub fn initiator(&self) -> &PublicKey {
        &self.initiator
    }

    /// The initiator's TAI64N timestamp, to refuse replayed initiations.
    pub fn timestamp(&self) -> &[u8; INITIATION_PAYLOAD_LEN] {
        &self.timestamp
    }

    /// Writes the response into `out` and derives the transport keys. `psk` is the key
    /// configured for this initiator (or [`NO_PSK`]); a mismatch makes the initiator's
    /// `finish` fail.
    pub fn respond(
        mut self,
        psk: &[u8; KEY_LEN],
        out: &mut [u8; RESPONSE_NOISE_LEN],
    ) -> Result<SessionKeys, CryptoError> {
        self.state.set_psk(2, psk).map_err(noise_err)?;
        let n = self.state.write_message(&[], out).map_err(noise_err)?;
        debug_assert_eq!(n, RESPONSE_NOISE_LEN);
        let (i_to_r, r_to_i) = self.state.dangerously_get_raw_split();
        Ok(SessionKeys {
            send: r_to_i,
            recv: i_to_r,
        })
    }
}

#[cfg(test)]
mod tests;
