//! Wire formats as typed views over byte buffers.
//!
//! Every format here follows the same shape (smoltcp's): a `Packet<T: AsRef<[u8]>>` view whose
//! `new_checked` validates lengths before any field is read, field offsets as constants, setters
//! behind `AsMut<[u8]>`, and where useful a `Repr` with `parse` / `emit` / `buffer_len`. Bytes from
//! a peer never cause a panic: every parser returns a [`WireError`] instead.

pub mod checksum;
pub mod control;
pub mod gre;
pub mod ip;
pub mod outer;
pub mod pptp;
pub mod stream;
pub mod tcp_mss;

/// Why bytes could not be read as (or written into) a wire format.
///
/// One error type for the whole wire layer; the variants say which check failed so that the
/// shells can count drops by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The buffer ends before the fixed header, or before the length a header field announces.
    #[error("truncated: need {needed} bytes, have {have}")]
    Truncated {
        /// Bytes the format needs at this point.
        needed: usize,
        /// Bytes the buffer holds.
        have: usize,
    },
    /// A message whose size is fixed by its type has another size, or a length field
    /// disagrees with the bytes present.
    #[error("bad length: expected {expected} bytes, got {got}")]
    BadLength {
        /// The size the format requires.
        expected: usize,
        /// The size that was found.
        got: usize,
    },
    /// A version field holds a value this codec does not speak.
    #[error("unsupported version {0}")]
    UnsupportedVersion(u8),
    /// Flag bits that must be zero are set, or flags contradict each other.
    #[error("reserved or contradictory flags {0:#06x}")]
    BadFlags(u16),
    /// A checksum carried in the header does not match the bytes.
    #[error("checksum mismatch")]
    BadChecksum,
    /// A message type this protocol does not define.
    #[error("unknown message type {0}")]
    UnknownType(u8),
    /// A protocol type field holds a value this format does not allow here.
    #[error("unexpected protocol type {0:#06x}")]
    BadProtocol(u16),
    /// A field holds a value outside its allowed range; the name says which.
    #[error("invalid field `{0}`")]
    InvalidField(&'static str),
    /// The output buffer handed to an emitter is too small.
    #[error("output buffer too small: need {needed} bytes, have {have}")]
    BufferTooSmall {
        /// Bytes the emitter needs.
        needed: usize,
        /// Bytes the buffer holds.
        have: usize,
    },
}

/// Fails with [`WireError::Truncated`] unless `buf` holds at least `needed` bytes.
pub(crate) fn ensure_len(buf: &[u8], needed: usize) -> Result<(), WireError> {
    if buf.len() < needed {
        Err(WireError::Truncated {
            needed,
            have: buf.len(),
        })
    } else {
        Ok(())
    }
}
