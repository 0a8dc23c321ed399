//! One session's transport keys, send counter and replay window.

use core::ops::Range;
use core::time::Duration;
use std::time::Instant;

use super::timers::{REJECT_AFTER_TIME, REKEY_AFTER_MESSAGES, REKEY_AFTER_TIME};
use super::{DropReason, SendError};
use crate::crypto::aead::{CipherSuite, DataKey, TAG_LEN};
use crate::noise::SessionKeys;
use crate::replay::{REJECT_AFTER_MESSAGES, ReplayWindow};
use crate::wire::outer::{DATA_HEADER_LEN, Data, write_data_header};

/// Keys and counters of one handshake's outcome.
#[derive(Debug)]
pub(crate) struct Keypair {
    send: DataKey,
    recv: DataKey,
    next_counter: u64,
    replay: ReplayWindow,
    /// The id peers put in messages to us (we chose it).
    pub local_id: u32,
    /// The id we put in messages to the peer (it chose it).
    pub remote_id: u32,
    /// When the handshake completed.
    pub created: Instant,
    /// The suite both sides seal with.
    pub suite: CipherSuite,
}

impl Keypair {
    pub fn new(
        keys: &SessionKeys,
        suite: CipherSuite,
        local_id: u32,
        remote_id: u32,
        now: Instant,
    ) -> Self {
        Self {
            send: DataKey::new(suite, &keys.send),
            recv: DataKey::new(suite, &keys.recv),
            next_counter: 0,
            replay: ReplayWindow::new(),
            local_id,
            remote_id,
            created: now,
            suite,
        }
    }

    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.created)
    }

    /// Too old to use in either direction.
    pub fn expired(&self, now: Instant) -> bool {
        self.age(now) >= REJECT_AFTER_TIME
    }

    /// Old enough, or used enough, that the initiator should start a new handshake.
    pub fn wants_rekey(&self, now: Instant) -> bool {
        self.age(now) >= REKEY_AFTER_TIME || self.next_counter >= REKEY_AFTER_MESSAGES
    }

    /// Seals the GRE frame at `buf[DATA_HEADER_LEN..DATA_HEADER_LEN + frame_len]`, writing the
    /// header before it and the tag after it; returns the datagram length.
    pub fn seal(&mut self, buf: &mut [u8], frame_len: usize) -> Result<usize, SendError> {
        let total = DATA_HEADER_LEN + frame_len + TAG_LEN;
        if buf.len() < total {
            return Err(SendError::BadBuffer {
                have: buf.len(),
                len: frame_len,
            });
        }
        if self.next_counter >= REJECT_AFTER_MESSAGES {
            return Err(SendError::NoSession);
        }
        let counter = self.next_counter;
        self.next_counter += 1;
        let (header, rest) = buf.split_at_mut(DATA_HEADER_LEN);
        let header: &mut [u8; DATA_HEADER_LEN] = header
            .try_into()
            // Invariant: split_at_mut(DATA_HEADER_LEN) yields exactly that many bytes.
            .expect("header slice has the header's length");
        write_data_header(header, self.remote_id, counter);
        let tag = self.send.seal(counter, header, &mut rest[..frame_len]);
        rest[frame_len..frame_len + TAG_LEN].copy_from_slice(&tag);
        Ok(total)
    }

    /// Authenticates and decrypts a data message (already classified) in place; returns the
    /// range of the GRE frame. Changes nothing unless the message authenticates and is new.
    pub fn open(&mut self, buf: &mut [u8], now: Instant) -> Result<Range<usize>, DropReason> {
        let counter = Data::new_checked(&buf[..])
            .map_err(|_| DropReason::Malformed)?
            .counter();
        if self.expired(now) {
            return Err(DropReason::Expired);
        }
        if !self.replay.check(counter) {
            return Err(DropReason::Replay);
        }
        let (header, rest) = buf.split_at_mut(DATA_HEADER_LEN);
        let len = self
            .recv
            .open(counter, header, rest)
            .map_err(|_| DropReason::Authentication)?;
        if !self.replay.update(counter) {
            return Err(DropReason::Replay);
        }
        Ok(DATA_HEADER_LEN..DATA_HEADER_LEN + len)
    }
}
