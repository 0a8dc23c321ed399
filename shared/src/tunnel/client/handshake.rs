//! The client's side of the handshake: initiations (with retries and cookies), responses.

use core::time::Duration;
use std::time::Instant;

use rand_core::RngCore;

use super::{Client, ClientEvent};
use crate::crypto::mac::MAC_LEN;
use crate::noise::{INITIATION_NOISE_LEN, Initiator, NO_PSK};
use crate::tai64n::Tai64N;
use crate::tunnel::keypair::Keypair;
use crate::tunnel::timers::{CONFIG_RETRY, REKEY_ATTEMPT_TIME, REKEY_JITTER, REKEY_TIMEOUT};
use crate::tunnel::{DropReason, Transmit};
use crate::wire::control::ControlMessage;
use crate::wire::outer::{CookieReply, INITIATION_LEN, Initiation, Response};

/// An initiation in flight, kept as the inputs that re-create its Noise state.
pub(super) struct Pending {
    pub seed: [u8; 32],
    pub timestamp: Tai64N,
    pub local_id: u32,
    pub mac1: [u8; MAC_LEN],
}

impl Client {
    pub(super) fn handle_response(&mut self, now: Instant, buf: &[u8]) -> Result<(), DropReason> {
        let msg = Response::new_checked(buf).map_err(|_| DropReason::Malformed)?;
        if !self.to_us.verify_mac1(msg.before_mac1(), msg.mac1()) {
            return Err(DropReason::BadMac);
        }
        if self
            .pending
            .as_ref()
            .is_none_or(|p| p.local_id != msg.receiver())
        {
            return Err(DropReason::UnknownSession);
        }
        let pending = self.pending.as_ref().ok_or(DropReason::UnknownSession)?;
        // snow consumes its handshake state even when a response fails to authenticate, so the
        // pending handshake is kept as the inputs that re-create it exactly (the ephemeral key
        // comes from `seed`); a forged response then changes nothing.
        let keys = self
            .initiator(pending.seed, &pending.timestamp)
            .map_err(|_| DropReason::Authentication)?
            .0
            .finish(msg.noise())
            .map_err(|_| DropReason::Authentication)?;
        let local_id = pending.local_id;
        self.pending = None;
        let keypair = Keypair::new(&keys, self.config.suite, local_id, msg.sender(), now);
        self.previous = self.current.replace(keypair);
        self.next_retry = None;
        self.attempts_since = None;
        self.unreachable_reported = false;
        self.handshakes += 1;
        self.last_handshake = Some(now);
        let first = self.first_connected.is_none();
        self.first_connected.get_or_insert(now);
        self.events.push_back(ClientEvent::HandshakeCompleted {
            session_id: local_id,
            first,
        });
        // Asks for the addresses again after every handshake (a restarted gateway may have
        // changed them); this also confirms the new keys to the gateway, which may not send
        // with them before.
        self.unanswered_probes = 0;
        self.send_control(now, ControlMessage::ConfigRequest);
        self.next_config_request = Some(now + CONFIG_RETRY);
        self.mark_active(now);
        Ok(())
    }

    pub(super) fn handle_cookie(&mut self, now: Instant, buf: &[u8]) -> Result<(), DropReason> {
        let msg = CookieReply::new_checked(buf).map_err(|_| DropReason::Malformed)?;
        let pending = self
            .pending
            .as_ref()
            .filter(|p| p.local_id == msg.receiver())
            .ok_or(DropReason::UnknownSession)?;
        let cookie = self
            .to_gateway
            .open_cookie(msg.nonce(), msg.sealed_cookie(), &pending.mac1)
            .map_err(|_| DropReason::Authentication)?;
        self.cookies.store(cookie, now);
        self.events.push_back(ClientEvent::CookieReceived);
        Ok(())
    }

    pub(super) fn report_unreachable(&mut self, now: Instant) {
        let since = *self.attempts_since.get_or_insert(now);
        if !self.unreachable_reported && now.saturating_duration_since(since) >= REKEY_ATTEMPT_TIME
        {
            self.unreachable_reported = true;
            self.events.push_back(ClientEvent::GatewayUnreachable);
        }
    }

    pub(super) fn initiator(
        &self,
        seed: [u8; 32],
        timestamp: &Tai64N,
    ) -> Result<(Initiator, [u8; INITIATION_NOISE_LEN]), ()> {
        let mut noise = [0u8; INITIATION_NOISE_LEN];
        let psk = self.config.psk.unwrap_or(NO_PSK);
        Initiator::start(
            &self.config.private_key,
            &self.config.gateway_key,
            &psk,
            self.config.suite,
            seed,
            timestamp.as_bytes(),
            &mut noise,
        )
        .map(|i| (i, noise))
        .map_err(|_| ())
    }

    pub(super) fn send_initiation(&mut self, now: Instant) {
        let local_id = self.rng.next_u32();
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        let unix = self.config.unix_time_at_start + now.saturating_duration_since(self.start);
        let timestamp = Tai64N::from_unix(unix.as_secs(), unix.subsec_nanos());
        let Ok((_, noise)) = self.initiator(seed, &timestamp) else {
            return;
        };
        let mut contents = vec![0u8; INITIATION_LEN];
        let mut msg = Initiation::new_unchecked(&mut contents[..]);
        msg.set_header(self.config.suite.code(), local_id);
        msg.noise_mut().copy_from_slice(&noise);
        let mac1 = self.to_gateway.mac1(msg.before_mac1());
        msg.set_mac1(&mac1);
        let mac2 = self.cookies.mac2(now, msg.before_mac2());
        msg.set_mac2(&mac2);
        self.pending = Some(Pending {
            seed,
            timestamp,
            local_id,
            mac1,
        });
        self.attempts_since.get_or_insert(now);
        let jitter =
            Duration::from_nanos(self.rng.next_u64() % (REKEY_JITTER.as_nanos() as u64).max(1));
        self.next_retry = Some(now + REKEY_TIMEOUT + jitter);
        self.last_sent = now;
        self.traffic.sent(contents.len());
        self.transmits.push_back(Transmit {
            destination: self.config.gateway_endpoint,
            contents,
        });
    }
}
