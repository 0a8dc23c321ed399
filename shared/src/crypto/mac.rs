//! mac1, mac2 and the cookie reply (WireGuard's DoS defence, §5.4.4–5.4.7 of its paper).
//!
//! * **mac1** is a keyed BLAKE2s-128 over a handshake message, keyed by a hash of the
//!   responder's public key. Anyone who knows that key can make it, so it proves nothing about
//!   identity, but it lets the responder drop junk and scans for the price of one hash, before
//!   any Diffie–Hellman.
//! * **mac2** is the same MAC keyed by a *cookie*: a MAC of the sender's IP address and port
//!   under a secret the responder rotates every two minutes. A sender can only have a valid
//!   cookie if it received the responder's cookie reply at that address, so under load the
//!   responder serves only initiators whose source address is proven.
//! * The **cookie reply** (64 bytes, smaller than the 148-byte initiation that triggers it, so
//!   it cannot amplify) carries the cookie encrypted with XChaCha20-Poly1305 under a key derived
//!   from the responder's public key, with the initiation's mac1 as associated data so that only
//!   the real initiator can use it.

use blake2::digest::consts::U16;
use blake2::digest::{FixedOutput, KeyInit, Update};
use blake2::{Blake2s256, Blake2sMac, Digest};
use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{AeadInPlace, generic_array::GenericArray};
use core::net::SocketAddr;
use core::time::Duration;
use std::time::Instant;
use subtle::ConstantTimeEq;

use super::CryptoError;
use super::keys::PublicKey;

/// Length of mac1, mac2 and a cookie.
pub const MAC_LEN: usize = 16;
/// Length of the random nonce in a cookie reply.
pub const COOKIE_NONCE_LEN: usize = 24;
/// Length of the encrypted cookie (cookie plus tag) in a cookie reply.
pub const ENCRYPTED_COOKIE_LEN: usize = MAC_LEN + 16;
/// How long the responder's cookie secret, and so a cookie, stays valid.
pub const COOKIE_SECRET_LIFETIME: Duration = Duration::from_secs(120);

const LABEL_MAC1: &[u8] = b"mac1----";
const LABEL_COOKIE: &[u8] = b"cookie--";

/// A keyed BLAKE2s with a 128-bit output.
pub fn mac(key: &[u8], data: &[u8]) -> [u8; MAC_LEN] {
    // Invariant: keyed BLAKE2s accepts keys of 1..=32 bytes; callers pass 16 or 32.
    let mut m = <Blake2sMac<U16> as KeyInit>::new_from_slice(key).expect("BLAKE2s key ≤ 32 bytes");
    Update::update(&mut m, data);
    m.finalize_fixed().into()
}

fn hash(label: &[u8], key: &PublicKey) -> [u8; 32] {
    let mut h = Blake2s256::new();
    Digest::update(&mut h, label);
    Digest::update(&mut h, key.as_bytes());
    h.finalize().into()
}

/// The MAC keys that belong to one responder public key. Both sides compute them once per
/// peer, not per message.
#[derive(Clone)]
pub struct MacKeys {
    mac1: [u8; 32],
    cookie: [u8; 32],
}

impl MacKeys {
    /// Derives the keys for messages sent *to* the holder of `responder`.
    pub fn new(responder: &PublicKey) -> Self {
        Self {
            mac1: hash(LABEL_MAC1, responder),
            cookie: hash(LABEL_COOKIE, responder),
        }
    }

    /// mac1 over everything in a handshake message before the mac1 field.
    pub fn mac1(&self, before_mac1: &[u8]) -> [u8; MAC_LEN] {
        mac(&self.mac1, before_mac1)
    }

    /// Constant-time check of a received mac1.
    pub fn verify_mac1(&self, before_mac1: &[u8], mac1: &[u8]) -> bool {
        bool::from(self.mac1(before_mac1)[..].ct_eq(mac1))
    }

    /// Seals `cookie` into a cookie reply body: returns `(nonce, encrypted cookie)`.
    pub fn seal_cookie(
        &self,
        nonce: [u8; COOKIE_NONCE_LEN],
        cookie: &[u8; MAC_LEN],
        mac1: &[u8],
    ) -> [u8; ENCRYPTED_COOKIE_LEN] {
        let cipher = XChaCha20Poly1305::new(GenericArray::from_slice(&self.cookie));
        let mut buf = [0u8; ENCRYPTED_COOKIE_LEN];
        buf[..MAC_LEN].copy_from_slice(cookie);
        let tag = cipher
            .encrypt_in_place_detached(GenericArray::from_slice(&nonce), mac1, &mut buf[..MAC_LEN])
            // Invariant: XChaCha20-Poly1305 fails only for messages over ~256 GiB.
            .expect("16-byte cookie is within limits");
        buf[MAC_LEN..].copy_from_slice(&tag);
        buf
    }

    /// Opens the encrypted cookie of a cookie reply sent in answer to a message whose mac1 was
    /// `mac1`.
    pub fn open_cookie(
        &self,
        nonce: &[u8],
        encrypted: &[u8],
        mac1: &[u8],
    ) -> Result<[u8; MAC_LEN], CryptoError> {
        if nonce.len() != COOKIE_NONCE_LEN || encrypted.len() != ENCRYPTED_COOKIE_LEN {
            return Err(CryptoError::Authentication);
        }
        let cipher = XChaCha20Poly1305::new(GenericArray::from_slice(&self.cookie));
        let mut cookie = [0u8; MAC_LEN];
        cookie.copy_from_slice(&encrypted[..MAC_LEN]);
        cipher
            .decrypt_in_place_detached(
                GenericArray::from_slice(nonce),
                mac1,
                &mut cookie,
                GenericArray::from_slice(&encrypted[MAC_LEN..]),
            )
            .map_err(|_| CryptoError::Authentication)?;
        Ok(cookie)
    }
}

/// The responder's side of mac2: makes cookies bound to source addresses and checks them.
///
/// The secret is rotated every [`COOKIE_SECRET_LIFETIME`]; fresh secrets come from the caller's
/// randomness so the core never reads the OS RNG.
pub struct CookieChecker {
    secret: [u8; 32],
    secret_born: Instant,
}

impl CookieChecker {
    /// Starts with `secret` born at `now`.
    pub fn new(secret: [u8; 32], now: Instant) -> Self {
        Self {
            secret,
            secret_born: now,
        }
    }

    /// Whether the secret is due for rotation; the owner then calls [`Self::rotate`].
    pub fn needs_rotation(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.secret_born) >= COOKIE_SECRET_LIFETIME
    }

    /// Replaces the secret: cookies handed out before stop working.
    pub fn rotate(&mut self, secret: [u8; 32], now: Instant) {
        self.secret = secret;
        self.secret_born = now;
    }

    /// The cookie a sender at `source` must use as mac2 key.
    pub fn cookie_for(&self, source: SocketAddr) -> [u8; MAC_LEN] {
        let mut addr = [0u8; 18];
        let len = encode_addr(source, &mut addr);
        mac(&self.secret, &addr[..len])
    }

    /// Constant-time check of mac2 over everything before the mac2 field.
    pub fn verify_mac2(&self, source: SocketAddr, before_mac2: &[u8], mac2: &[u8]) -> bool {
        let expected = mac(&self.cookie_for(source), before_mac2);
        bool::from(expected[..].ct_eq(mac2))
    }
}

/// The initiator's side of mac2: remembers the last cookie it got and for how long it holds.
#[derive(Default)]
pub struct CookieJar {
    cookie: Option<([u8; MAC_LEN], Instant)>,
}

impl CookieJar {
    /// Stores a cookie received at `now`.
    pub fn store(&mut self, cookie: [u8; MAC_LEN], now: Instant) {
        self.cookie = Some((cookie, now));
    }

    /// mac2 for a message: keyed by a fresh cookie, or all zeroes without one (as WireGuard).
    pub fn mac2(&self, now: Instant, before_mac2: &[u8]) -> [u8; MAC_LEN] {
        match self.cookie {
            Some((cookie, received))
                if now.saturating_duration_since(received) < COOKIE_SECRET_LIFETIME =>
            {
                mac(&cookie, before_mac2)
            }
            _ => [0u8; MAC_LEN],
        }
    }
}

/// Writes an address as IP bytes then big-endian port; returns the length used.
fn encode_addr(addr: SocketAddr, out: &mut [u8; 18]) -> usize {
    let ip_len = match addr {
        SocketAddr::V4(a) => {
            out[..4].copy_from_slice(&a.ip().octets());
            4
        }
        SocketAddr::V6(a) => {
            out[..16].copy_from_slice(&a.ip().octets());
            16
        }
    };
    out[ip_len..ip_len + 2].copy_from_slice(&addr.port().to_be_bytes());
    ip_len + 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> PublicKey {
        PublicKey([b; 32])
    }

    #[test]
    fn mac1_depends_on_key_and_message() {
        let a = MacKeys::new(&key(1));
        let b = MacKeys::new(&key(2));
        let m = a.mac1(b"message");
        assert!(a.verify_mac1(b"message", &m));
        assert!(!a.verify_mac1(b"messagf", &m));
        assert!(!b.verify_mac1(b"message", &m));
        assert!(!a.verify_mac1(b"message", &m[..15]));
    }

    #[test]
    fn cookie_reply_round_trip_only_for_matching_mac1() {
        let keys = MacKeys::new(&key(3));
        let cookie = [5u8; MAC_LEN];
        let sealed = keys.seal_cookie([8; 24], &cookie, b"mac1-of-initiatn");
        assert_eq!(
            keys.open_cookie(&[8; 24], &sealed, b"mac1-of-initiatn"),
            Ok(cookie)
        );
        assert!(
            keys.open_cookie(&[8; 24], &sealed, b"other-mac1......")
                .is_err()
        );
        assert!(
            keys.open_cookie(&[9; 24], &sealed, b"mac1-of-initiatn")
                .is_err()
        );
        assert!(
            keys.open_cookie(&[8; 23], &sealed, b"mac1-of-initiatn")
                .is_err()
        );
    }

    #[test]
    fn mac2_binds_source_address_and_expires_with_secret() {
        let t0 = Instant::now();
        let mut checker = CookieChecker::new([1; 32], t0);
        let src: SocketAddr = "198.18.1.2:5000".parse().unwrap();
        let other: SocketAddr = "198.18.1.2:5001".parse().unwrap();
        let mut jar = CookieJar::default();
        assert_eq!(jar.mac2(t0, b"msg"), [0; MAC_LEN]);
        jar.store(checker.cookie_for(src), t0);
        let mac2 = jar.mac2(t0, b"msg");
        assert!(checker.verify_mac2(src, b"msg", &mac2));
        assert!(!checker.verify_mac2(other, b"msg", &mac2));
        assert!(!checker.needs_rotation(t0 + Duration::from_secs(119)));
        assert!(checker.needs_rotation(t0 + COOKIE_SECRET_LIFETIME));
        checker.rotate([2; 32], t0 + COOKIE_SECRET_LIFETIME);
        assert!(!checker.verify_mac2(src, b"msg", &mac2));
        assert_eq!(jar.mac2(t0 + COOKIE_SECRET_LIFETIME, b"msg"), [0; MAC_LEN]);
    }
}
