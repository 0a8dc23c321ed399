//! The gateway's answer to a handshake initiation, cheapest checks first:
//!
//! 1. exact length and type (done by `classify` before we get here);
//! 2. mac1 — one keyed hash, drops junk and scans;
//! 3. under load: mac2 must prove the source address, else a 64-byte cookie reply (smaller
//!    than the 148-byte initiation: no amplification), and a per-source rate limit;
//! 4. only now the Noise work (two Diffie–Hellman operations);
//! 5. the key must be authorized and the timestamp newer than the last one (no replays).
//!
//! Nothing unauthenticated gets an answer other than the cookie reply of step 3.

use core::net::SocketAddr;
use std::time::Instant;

use rand_core::RngCore;

use super::{Gateway, GatewayEvent, Session};
use crate::crypto::aead::CipherSuite;
use crate::crypto::mac::{COOKIE_NONCE_LEN, MacKeys};
use crate::noise::{NO_PSK, RESPONSE_NOISE_LEN, Responder};
use crate::tai64n::Tai64N;
use crate::tunnel::keypair::Keypair;
use crate::tunnel::{DropReason, Transmit};
use crate::wire::outer::{COOKIE_REPLY_LEN, CookieReply, Initiation, RESPONSE_LEN, Response};

impl Gateway {
    pub(super) fn handle_initiation(
        &mut self,
        now: Instant,
        from: SocketAddr,
        buf: &[u8],
    ) -> Result<(), DropReason> {
        let msg = Initiation::new_checked(buf).map_err(|_| DropReason::Malformed)?;
        if !self.mac_keys.verify_mac1(msg.before_mac1(), msg.mac1()) {
            return Err(DropReason::BadMac);
        }
        if self.count_initiation(now) {
            if !self
                .cookies
                .verify_mac2(from, msg.before_mac2(), msg.mac2())
            {
                self.send_cookie_reply(from, msg.sender(), msg.mac1());
                return Err(DropReason::CookieRequired);
            }
            if !self.limiter.allow(now, from.ip()) {
                return Err(DropReason::RateLimited);
            }
        }
        let suite = CipherSuite::from_code(msg.suite_code()).ok_or(DropReason::Malformed)?;
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        let responder = Responder::read(&self.config.private_key, suite, seed, msg.noise())
            .map_err(|_| DropReason::Authentication)?;
        let initiator_key = *responder.initiator();
        let id = self
            .peer_by_key(&initiator_key)
            .ok_or(DropReason::UnknownKey)?;
        let timestamp = Tai64N::from_bytes(*responder.timestamp());
        let peer = self.peer_ref(id).ok_or(DropReason::UnknownKey)?;
        if peer
            .last_timestamp
            .is_some_and(|last| !timestamp.is_after(&last))
        {
            return Err(DropReason::StaleInitiation);
        }
        let psk = peer.config.psk.unwrap_or(NO_PSK);
        let mut noise = [0u8; RESPONSE_NOISE_LEN];
        let keys = responder
            .respond(&psk, &mut noise)
            .map_err(|_| DropReason::Authentication)?;
        // The initiation authenticated: from here on it may change state.
        let local_id = self.fresh_session_id();
        let remote_id = msg.sender();
        let keypair = Keypair::new(&keys, suite, local_id, remote_id, now);
        self.sessions.insert(
            local_id,
            Session {
                peer: id,
                keys: keypair,
            },
        );
        let Some(peer) = self.peer_mut(id) else {
            return Err(DropReason::UnknownKey);
        };
        // The endpoint moves only with the first data message under the new keys: an
        // initiation can be replayed (after a gateway restart forgot the last timestamp), a
        // data message cannot.
        peer.last_timestamp = Some(timestamp);
        peer.last_handshake = Some(now);
        peer.handshakes += 1;
        let replaced = peer.next.replace(local_id);
        if let Some(old) = replaced {
            self.sessions.remove(&old);
        }
        self.stats.handshakes += 1;

        let mut contents = vec![0u8; RESPONSE_LEN];
        let mut resp = Response::new_unchecked(&mut contents[..]);
        resp.set_header(local_id, remote_id);
        resp.noise_mut().copy_from_slice(&noise);
        let mac1 = MacKeys::new(&initiator_key).mac1(resp.before_mac1());
        resp.set_mac1(&mac1);
        resp.set_mac2(&[0; 16]);
        self.transmits.push_back(Transmit {
            destination: from,
            contents,
        });
        self.events.push_back(GatewayEvent::HandshakeCompleted {
            peer: id,
            endpoint: from,
            session_id: local_id,
        });
        Ok(())
    }

    /// Counts an initiation in the current one-second window; true when under load.
    fn count_initiation(&mut self, now: Instant) -> bool {
        let (start, count) = &mut self.load_window;
        if now.saturating_duration_since(*start) >= core::time::Duration::from_secs(1) {
            *start = now;
            *count = 0;
        }
        *count = count.saturating_add(1);
        *count > self.config.load_threshold
    }

    fn send_cookie_reply(&mut self, to: SocketAddr, receiver: u32, mac1: &[u8]) {
        let cookie = self.cookies.cookie_for(to);
        let mut nonce = [0u8; COOKIE_NONCE_LEN];
        self.rng.fill_bytes(&mut nonce);
        let sealed = self.mac_keys.seal_cookie(nonce, &cookie, mac1);
        let mut contents = vec![0u8; COOKIE_REPLY_LEN];
        CookieReply::new_unchecked(&mut contents[..]).fill(receiver, &nonce, &sealed);
        self.stats.cookie_replies += 1;
        self.transmits.push_back(Transmit {
            destination: to,
            contents,
        });
    }
}
