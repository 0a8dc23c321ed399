//! The outer datagram: what travels in a UDP payload (or behind a length prefix over TLS, or
//! in a QUIC DATAGRAM frame).
//!
//! Every message starts with a 4-byte header: a type byte, one type-specific byte and two
//! reserved zero bytes. Multi-byte integers are big-endian (network order). Handshake messages
//! have one exact size each, checked before anything else; data has a minimum size.
//!
//! ```text
//! Initiation (148 bytes)                    Response (92 bytes)
//!  0      1      2      4                    0      1      4
//! +------+------+------+                    +------+------+
//! | 1    |suite | 0  0 |                    | 2    | 0 0 0|
//! +------+------+------+                    +------+------+
//! | sender session id (4)  |                | sender session id (4)   |
//! | noise: e (32), enc s (48),              | receiver session id (4) |
//! |   enc timestamp (28)   (108)            | noise: e (32), enc () (16)  (48)
//! | mac1 (16)              |                | mac1 (16)               |
//! | mac2 (16)              |                | mac2 (16)               |
//!
//! Cookie reply (64 bytes)                   Data (16-byte header + sealed GRE frame + 16 tag)
//! | 3    | 0 0 0 |                          | 4    | 0 0 0 |
//! | receiver session id (4) |               | receiver session id (4) |
//! | nonce (24)              |               | counter (8)             |
//! | enc cookie (32)         |               | AEAD(GRE frame) + tag (16) ...
//! ```
//!
//! The suite byte of an initiation names the data AEAD the initiator wants; it is also mixed
//! into the Noise prologue, so changing it in flight breaks the handshake.

use super::{WireError, ensure_len};
use crate::crypto::aead::TAG_LEN;
use crate::crypto::mac::{COOKIE_NONCE_LEN, ENCRYPTED_COOKIE_LEN, MAC_LEN};
use crate::noise::{INITIATION_NOISE_LEN, RESPONSE_NOISE_LEN};

/// Type byte of a handshake initiation.
pub const TYPE_INITIATION: u8 = 1;
/// Type byte of a handshake response.
pub const TYPE_RESPONSE: u8 = 2;
/// Type byte of a cookie reply.
pub const TYPE_COOKIE_REPLY: u8 = 3;
/// Type byte of a data message.
pub const TYPE_DATA: u8 = 4;

/// Exact size of an initiation.
pub const INITIATION_LEN: usize = 8 + INITIATION_NOISE_LEN + 2 * MAC_LEN;
/// Exact size of a response.
pub const RESPONSE_LEN: usize = 12 + RESPONSE_NOISE_LEN + 2 * MAC_LEN;
/// Exact size of a cookie reply.
pub const COOKIE_REPLY_LEN: usize = 8 + COOKIE_NONCE_LEN + ENCRYPTED_COOKIE_LEN;
/// Size of the data header (type, receiver id, counter): the AEAD's associated data.
pub const DATA_HEADER_LEN: usize = 16;
/// Smallest data message: a header and a tag around an empty frame.
pub const DATA_MIN_LEN: usize = DATA_HEADER_LEN + TAG_LEN;
/// Bytes a data message adds around the GRE frame it carries.
pub const DATA_OVERHEAD: usize = DATA_HEADER_LEN + TAG_LEN;

/// Which message a datagram holds, after the type, reserved bytes and length were checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// A handshake initiation.
    Initiation,
    /// A handshake response.
    Response,
    /// A cookie reply.
    CookieReply,
    /// A data message.
    Data,
}

/// Classifies a datagram: the first and cheapest check, done before any cryptography.
pub fn classify(buf: &[u8]) -> Result<MessageKind, WireError> {
    ensure_len(buf, 4)?;
    let (kind, exact) = match buf[0] {
        TYPE_INITIATION => (MessageKind::Initiation, Some(INITIATION_LEN)),
        TYPE_RESPONSE => (MessageKind::Response, Some(RESPONSE_LEN)),
        TYPE_COOKIE_REPLY => (MessageKind::CookieReply, Some(COOKIE_REPLY_LEN)),
        TYPE_DATA => (MessageKind::Data, None),
        other => return Err(WireError::UnknownType(other)),
    };
    let reserved_from = if kind == MessageKind::Initiation {
        2
    } else {
        1
    };
    if buf[reserved_from..4].iter().any(|&b| b != 0) {
        return Err(WireError::InvalidField("reserved"));
    }
    match exact {
        Some(len) if buf.len() != len => Err(WireError::BadLength {
            expected: len,
            got: buf.len(),
        }),
        None => ensure_len(buf, DATA_MIN_LEN).map(|()| kind),
        _ => Ok(kind),
    }
}

fn be32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

fn checked<T: AsRef<[u8]>>(buf: &T, kind: MessageKind) -> Result<(), WireError> {
    let got = classify(buf.as_ref())?;
    if got == kind {
        Ok(())
    } else {
        Err(WireError::UnknownType(buf.as_ref()[0]))
    }
}

macro_rules! view {
    ($(#[$doc:meta])* $name:ident, $kind:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> $name<T> {
            /// Wraps a buffer without checks; for emitting into a buffer of the right size.
            pub fn new_unchecked(buffer: T) -> Self {
                Self { buffer }
            }

            /// Wraps untrusted bytes after checking type, reserved bytes and length, so that no
            /// accessor can panic afterwards.
            pub fn new_checked(buffer: T) -> Result<Self, WireError> {
                checked(&buffer, $kind)?;
                Ok(Self { buffer })
            }

            /// The underlying buffer.
            pub fn into_inner(self) -> T {
                self.buffer
            }
        }
    };
}

view!(
    /// A view of a handshake initiation.
    Initiation,
    MessageKind::Initiation
);
view!(
    /// A view of a handshake response.
    Response,
    MessageKind::Response
);
view!(
    /// A view of a cookie reply.
    CookieReply,
    MessageKind::CookieReply
);
view!(
    /// A view of a data message.
    Data,
    MessageKind::Data
);

mod field {
    use core::ops::Range;
    pub const INIT_SENDER: Range<usize> = 4..8;
    pub const INIT_NOISE: Range<usize> = 8..116;
    pub const INIT_MAC1: Range<usize> = 116..132;
    pub const INIT_MAC2: Range<usize> = 132..148;
    pub const RESP_SENDER: Range<usize> = 4..8;
    pub const RESP_RECEIVER: Range<usize> = 8..12;
    pub const RESP_NOISE: Range<usize> = 12..60;
    pub const RESP_MAC1: Range<usize> = 60..76;
    pub const RESP_MAC2: Range<usize> = 76..92;
    pub const COOKIE_RECEIVER: Range<usize> = 4..8;
    pub const COOKIE_NONCE: Range<usize> = 8..32;
    pub const COOKIE_SEALED: Range<usize> = 32..64;
    pub const DATA_RECEIVER: Range<usize> = 4..8;
    pub const DATA_COUNTER: Range<usize> = 8..16;
}

impl<T: AsRef<[u8]>> Initiation<T> {
    /// Wire code of the AEAD the initiator asks for.
    pub fn suite_code(&self) -> u8 {
        self.buffer.as_ref()[1]
    }
    /// The session id the initiator chose for messages sent to it.
    pub fn sender(&self) -> u32 {
        be32(self.buffer.as_ref(), field::INIT_SENDER.start)
    }
    /// The Noise message.
    pub fn noise(&self) -> &[u8] {
        &self.buffer.as_ref()[field::INIT_NOISE]
    }
    /// Everything mac1 covers.
    pub fn before_mac1(&self) -> &[u8] {
        &self.buffer.as_ref()[..field::INIT_MAC1.start]
    }
    /// The mac1 field.
    pub fn mac1(&self) -> &[u8] {
        &self.buffer.as_ref()[field::INIT_MAC1]
    }
    /// Everything mac2 covers.
    pub fn before_mac2(&self) -> &[u8] {
        &self.buffer.as_ref()[..field::INIT_MAC2.start]
    }
    /// The mac2 field.
    pub fn mac2(&self) -> &[u8] {
        &self.buffer.as_ref()[field::INIT_MAC2]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Initiation<T> {
    /// Writes type, suite, reserved bytes and sender id.
    pub fn set_header(&mut self, suite_code: u8, sender: u32) {
        let b = self.buffer.as_mut();
        b[..4].copy_from_slice(&[TYPE_INITIATION, suite_code, 0, 0]);
        b[field::INIT_SENDER].copy_from_slice(&sender.to_be_bytes());
    }
    /// The Noise message, to be written in place.
    pub fn noise_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::INIT_NOISE]
    }
    /// Sets mac1 (compute it over [`Self::before_mac1`] first).
    pub fn set_mac1(&mut self, mac: &[u8; MAC_LEN]) {
        self.buffer.as_mut()[field::INIT_MAC1].copy_from_slice(mac);
    }
    /// Sets mac2 (compute it over [`Self::before_mac2`] first).
    pub fn set_mac2(&mut self, mac: &[u8; MAC_LEN]) {
        self.buffer.as_mut()[field::INIT_MAC2].copy_from_slice(mac);
    }
}

impl<T: AsRef<[u8]>> Response<T> {
    /// The session id the responder chose for messages sent to it.
    pub fn sender(&self) -> u32 {
        be32(self.buffer.as_ref(), field::RESP_SENDER.start)
    }
    /// The initiator's session id, naming which initiation this answers.
    pub fn receiver(&self) -> u32 {
        be32(self.buffer.as_ref(), field::RESP_RECEIVER.start)
    }
    /// The Noise message.
    pub fn noise(&self) -> &[u8] {
        &self.buffer.as_ref()[field::RESP_NOISE]
    }
    /// Everything mac1 covers.
    pub fn before_mac1(&self) -> &[u8] {
        &self.buffer.as_ref()[..field::RESP_MAC1.start]
    }
    /// The mac1 field.
    pub fn mac1(&self) -> &[u8] {
        &self.buffer.as_ref()[field::RESP_MAC1]
    }
    /// Everything mac2 covers.
    pub fn before_mac2(&self) -> &[u8] {
        &self.buffer.as_ref()[..field::RESP_MAC2.start]
    }
    /// The mac2 field.
    pub fn mac2(&self) -> &[u8] {
        &self.buffer.as_ref()[field::RESP_MAC2]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Response<T> {
    /// Writes type, reserved bytes and both session ids.
    pub fn set_header(&mut self, sender: u32, receiver: u32) {
        let b = self.buffer.as_mut();
        b[..4].copy_from_slice(&[TYPE_RESPONSE, 0, 0, 0]);
        b[field::RESP_SENDER].copy_from_slice(&sender.to_be_bytes());
        b[field::RESP_RECEIVER].copy_from_slice(&receiver.to_be_bytes());
    }
    /// The Noise message, to be written in place.
    pub fn noise_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::RESP_NOISE]
    }
    /// Sets mac1.
    pub fn set_mac1(&mut self, mac: &[u8; MAC_LEN]) {
        self.buffer.as_mut()[field::RESP_MAC1].copy_from_slice(mac);
    }
    /// Sets mac2.
    pub fn set_mac2(&mut self, mac: &[u8; MAC_LEN]) {
        self.buffer.as_mut()[field::RESP_MAC2].copy_from_slice(mac);
    }
}

impl<T: AsRef<[u8]>> CookieReply<T> {
    /// The session id of the initiator this reply is for.
    pub fn receiver(&self) -> u32 {
        be32(self.buffer.as_ref(), field::COOKIE_RECEIVER.start)
    }
    /// The XChaCha20 nonce.
    pub fn nonce(&self) -> &[u8] {
        &self.buffer.as_ref()[field::COOKIE_NONCE]
    }
    /// The encrypted cookie and its tag.
    pub fn sealed_cookie(&self) -> &[u8] {
        &self.buffer.as_ref()[field::COOKIE_SEALED]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> CookieReply<T> {
    /// Writes every field.
    pub fn fill(
        &mut self,
        receiver: u32,
        nonce: &[u8; COOKIE_NONCE_LEN],
        sealed: &[u8; ENCRYPTED_COOKIE_LEN],
    ) {
        let b = self.buffer.as_mut();
        b[..4].copy_from_slice(&[TYPE_COOKIE_REPLY, 0, 0, 0]);
        b[field::COOKIE_RECEIVER].copy_from_slice(&receiver.to_be_bytes());
        b[field::COOKIE_NONCE].copy_from_slice(nonce);
        b[field::COOKIE_SEALED].copy_from_slice(sealed);
    }
}

impl<T: AsRef<[u8]>> Data<T> {
    /// The session id of the receiver, chosen by it: how the gateway finds the session.
    pub fn receiver(&self) -> u32 {
        be32(self.buffer.as_ref(), field::DATA_RECEIVER.start)
    }
    /// The sender's packet counter: the AEAD nonce and the replay window's index.
    pub fn counter(&self) -> u64 {
        let b = &self.buffer.as_ref()[field::DATA_COUNTER];
        let mut c = [0u8; 8];
        c.copy_from_slice(b);
        u64::from_be_bytes(c)
    }
}

/// Writes a data header into the first [`DATA_HEADER_LEN`] bytes of `buf`.
pub fn write_data_header(buf: &mut [u8; DATA_HEADER_LEN], receiver: u32, counter: u64) {
    buf[..4].copy_from_slice(&[TYPE_DATA, 0, 0, 0]);
    buf[field::DATA_RECEIVER].copy_from_slice(&receiver.to_be_bytes());
    buf[field::DATA_COUNTER].copy_from_slice(&counter.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes_match_wireguard_model() {
        assert_eq!(INITIATION_LEN, 148);
        assert_eq!(RESPONSE_LEN, 92);
        assert_eq!(COOKIE_REPLY_LEN, 64);
        assert_eq!(DATA_OVERHEAD, 32);
    }

    #[test]
    fn classify_checks_exact_lengths_and_reserved() {
        let mut init = [0u8; INITIATION_LEN];
        Initiation::new_unchecked(&mut init[..]).set_header(1, 0xdead_beef);
        assert_eq!(classify(&init), Ok(MessageKind::Initiation));
        assert_eq!(
            classify(&init[..147]),
            Err(WireError::BadLength {
                expected: 148,
                got: 147
            })
        );
        init[3] = 1;
        assert_eq!(classify(&init), Err(WireError::InvalidField("reserved")));
        let mut resp = [0u8; RESPONSE_LEN];
        Response::new_unchecked(&mut resp[..]).set_header(1, 2);
        resp[1] = 9;
        assert_eq!(classify(&resp), Err(WireError::InvalidField("reserved")));
        assert_eq!(classify(&[9, 0, 0, 0]), Err(WireError::UnknownType(9)));
        assert_eq!(
            classify(&[4, 0]),
            Err(WireError::Truncated { needed: 4, have: 2 })
        );
        assert_eq!(
            classify(&[4, 0, 0, 0, 1]),
            Err(WireError::Truncated {
                needed: DATA_MIN_LEN,
                have: 5
            })
        );
    }

    /// Byte vector: a data header for receiver 0x01020304, counter 5.
    #[test]
    fn data_header_vector() {
        let mut h = [0u8; DATA_HEADER_LEN];
        write_data_header(&mut h, 0x0102_0304, 5);
        assert_eq!(
            h,
            [4, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 5],
            "type, reserved, receiver, counter (big-endian)"
        );
        let mut msg = h.to_vec();
        msg.extend_from_slice(&[0u8; TAG_LEN]);
        let d = Data::new_checked(&msg[..]).unwrap();
        assert_eq!((d.receiver(), d.counter()), (0x0102_0304, 5));
    }

    #[test]
    fn views_round_trip() {
        let mut r = [0u8; RESPONSE_LEN];
        let mut v = Response::new_unchecked(&mut r[..]);
        v.set_header(7, 8);
        v.set_mac1(&[1; 16]);
        v.set_mac2(&[2; 16]);
        let v = Response::new_checked(&r[..]).unwrap();
        assert_eq!((v.sender(), v.receiver()), (7, 8));
        assert_eq!((v.mac1(), v.mac2()), (&[1u8; 16][..], &[2u8; 16][..]));
        assert!(Initiation::new_checked(&r[..]).is_err());
        let mut c = [0u8; COOKIE_REPLY_LEN];
        CookieReply::new_unchecked(&mut c[..]).fill(9, &[3; 24], &[4; 32]);
        let c = CookieReply::new_checked(&c[..]).unwrap();
        assert_eq!(c.receiver(), 9);
        assert_eq!(c.nonce(), &[3u8; 24][..]);
        assert_eq!(c.sealed_cookie(), &[4u8; 32][..]);
    }

    proptest! {
        #[test]
        fn any_bytes_classify_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(kind) = classify(&bytes) {
                match kind {
                    MessageKind::Initiation => { let v = Initiation::new_checked(&bytes[..]).unwrap(); let _ = (v.sender(), v.noise(), v.mac1(), v.mac2()); }
                    MessageKind::Response => { let v = Response::new_checked(&bytes[..]).unwrap(); let _ = (v.sender(), v.receiver(), v.noise()); }
                    MessageKind::CookieReply => { let v = CookieReply::new_checked(&bytes[..]).unwrap(); let _ = (v.receiver(), v.nonce()); }
                    MessageKind::Data => { let v = Data::new_checked(&bytes[..]).unwrap(); let _ = (v.receiver(), v.counter()); }
                }
            }
        }

        #[test]
        fn initiation_round_trip(suite in 0u8..2, sender: u32, mac1: [u8; 16], mac2: [u8; 16]) {
            let mut b = [0u8; INITIATION_LEN];
            let mut v = Initiation::new_unchecked(&mut b[..]);
            v.set_header(suite, sender);
            v.set_mac1(&mac1);
            v.set_mac2(&mac2);
            let v = Initiation::new_checked(&b[..]).unwrap();
            prop_assert_eq!((v.suite_code(), v.sender()), (suite, sender));
            prop_assert_eq!(v.mac1(), &mac1[..]);
            prop_assert_eq!(v.mac2(), &mac2[..]);
        }

        #[test]
        fn data_round_trip(receiver: u32, counter: u64, extra in 0usize..64) {
            let mut b = vec![0u8; DATA_MIN_LEN + extra];
            let mut h = [0u8; DATA_HEADER_LEN];
            write_data_header(&mut h, receiver, counter);
            b[..DATA_HEADER_LEN].copy_from_slice(&h);
            let v = Data::new_checked(&b[..]).unwrap();
            prop_assert_eq!((v.receiver(), v.counter()), (receiver, counter));
        }
    }
}
