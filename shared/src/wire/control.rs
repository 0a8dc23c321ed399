//! Control messages: the payload of GRE frames whose protocol type is
//! `gre::PROTO_CONTROL` (0x88B5, IEEE Local Experimental EtherType 1).
//!
//! They ride inside the encrypted session like any IP packet, so they are authenticated and
//! counted by the same replay window; Wireshark shows them as GRE with an experimental
//! EtherType. One type byte, then a body whose size is fixed by the type:
//!
//! ```text
//! 0x01 Keepalive        (no body)                      keeps NAT mappings alive
//! 0x02 RttProbe         seq (4) | timestamp µs (8)     echoed verbatim by the peer
//! 0x03 RttEcho          seq (4) | timestamp µs (8)
//! 0x04 ConfigRequest    (no body)                      client asks for its addresses
//! 0x05 ConfigAssign     flags (1) | ipv4 (4) | len4 (1) | ipv6 (16) | len6 (1) | mtu (2)
//!                       flags: 0x01 ipv4 present, 0x02 ipv6 present; absent ones all zero
//! 0x20–0x2f             reserved for rendezvous / hole punching
//! ```

use core::net::{Ipv4Addr, Ipv6Addr};

use super::WireError;

const KEEPALIVE: u8 = 0x01;
const RTT_PROBE: u8 = 0x02;
const RTT_ECHO: u8 = 0x03;
const CONFIG_REQUEST: u8 = 0x04;
const CONFIG_ASSIGN: u8 = 0x05;

const PROBE_LEN: usize = 1 + 4 + 8;
const ASSIGN_LEN: usize = 1 + 1 + 4 + 1 + 16 + 1 + 2;

/// The tunnel addresses the gateway assigns to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressAssignment {
    /// IPv4 address and prefix length of the virtual network.
    pub ipv4: Option<(Ipv4Addr, u8)>,
    /// IPv6 address and prefix length of the virtual network.
    pub ipv6: Option<(Ipv6Addr, u8)>,
    /// The inner MTU the gateway expects (0 = let the client decide).
    pub mtu: u16,
}

/// A control message, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlMessage {
    /// Keeps NAT mappings and the session alive; nothing to answer.
    Keepalive,
    /// Asks the peer to echo `seq` and `timestamp_us` back, to measure RTT, jitter and loss.
    RttProbe {
        /// Probe number, for loss accounting.
        seq: u32,
        /// The sender's clock in microseconds, opaque to the echoer.
        timestamp_us: u64,
    },
    /// The answer to an [`ControlMessage::RttProbe`], fields copied.
    RttEcho {
        /// Probe number being answered.
        seq: u32,
        /// The timestamp from the probe.
        timestamp_us: u64,
    },
    /// The client asks for its address assignment (sent until answered).
    ConfigRequest,
    /// The gateway's answer to [`ControlMessage::ConfigRequest`].
    ConfigAssign(AddressAssignment),
}

fn exact(buf: &[u8], len: usize) -> Result<(), WireError> {
    if buf.len() == len {
        Ok(())
    } else {
        Err(WireError::BadLength {
            expected: len,
            got: buf.len(),
        })
    }
}

fn probe_fields(buf: &[u8]) -> Result<(u32, u64), WireError> {
    exact(buf, PROBE_LEN)?;
    let mut seq = [0u8; 4];
    seq.copy_from_slice(&buf[1..5]);
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&buf[5..13]);
    Ok((u32::from_be_bytes(seq), u64::from_be_bytes(ts)))
}

fn parse_assign(buf: &[u8]) -> Result<AddressAssignment, WireError> {
    exact(buf, ASSIGN_LEN)?;
    let flags = buf[1];
    if flags & !0x03 != 0 {
        return Err(WireError::BadFlags(u16::from(flags)));
    }
    let mut v4 = [0u8; 4];
    v4.copy_from_slice(&buf[2..6]);
    let len4 = buf[6];
    let mut v6 = [0u8; 16];
    v6.copy_from_slice(&buf[7..23]);
    let len6 = buf[23];
    // Absent addresses must be all zero, so that every message has exactly one encoding.
    if flags & 0x01 == 0 && buf[2..7].iter().any(|&b| b != 0) {
        return Err(WireError::InvalidField("absent ipv4 not zero"));
    }
    if flags & 0x02 == 0 && buf[7..24].iter().any(|&b| b != 0) {
        return Err(WireError::InvalidField("absent ipv6 not zero"));
    }
    if len4 > 32 {
        return Err(WireError::InvalidField("ipv4 prefix length"));
    }
    if len6 > 128 {
        return Err(WireError::InvalidField("ipv6 prefix length"));
    }
    Ok(AddressAssignment {
        ipv4: (flags & 0x01 != 0).then_some((Ipv4Addr::from(v4), len4)),
        ipv6: (flags & 0x02 != 0).then_some((Ipv6Addr::from(v6), len6)),
        mtu: u16::from_be_bytes([buf[24], buf[25]]),
    })
}

impl ControlMessage {
    /// Parses a control payload; any byte string gives a value or a typed error.
    pub fn parse(buf: &[u8]) -> Result<Self, WireError> {
        let Some(&kind) = buf.first() else {
            return Err(WireError::Truncated { needed: 1, have: 0 });
        };
        match kind {
            KEEPALIVE => exact(buf, 1).map(|()| Self::Keepalive),
            CONFIG_REQUEST => exact(buf, 1).map(|()| Self::ConfigRequest),
            RTT_PROBE => {
                probe_fields(buf).map(|(seq, timestamp_us)| Self::RttProbe { seq, timestamp_us })
            }
            RTT_ECHO => {
                probe_fields(buf).map(|(seq, timestamp_us)| Self::RttEcho { seq, timestamp_us })
            }
            CONFIG_ASSIGN => parse_assign(buf).map(Self::ConfigAssign),
            other => Err(WireError::UnknownType(other)),
        }
    }

    /// Bytes [`Self::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        match self {
            Self::Keepalive | Self::ConfigRequest => 1,
            Self::RttProbe { .. } | Self::RttEcho { .. } => PROBE_LEN,
            Self::ConfigAssign(_) => ASSIGN_LEN,
        }
    }

    /// Writes the message at the start of `buf`; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let len = self.buffer_len();
        if buf.len() < len {
            return Err(WireError::BufferTooSmall {
                needed: len,
                have: buf.len(),
            });
        }
        match *self {
            Self::Keepalive => buf[0] = KEEPALIVE,
            Self::ConfigRequest => buf[0] = CONFIG_REQUEST,
            Self::RttProbe { seq, timestamp_us } | Self::RttEcho { seq, timestamp_us } => {
                buf[0] = if matches!(self, Self::RttProbe { .. }) {
                    RTT_PROBE
                } else {
                    RTT_ECHO
                };
                buf[1..5].copy_from_slice(&seq.to_be_bytes());
                buf[5..13].copy_from_slice(&timestamp_us.to_be_bytes());
            }
            Self::ConfigAssign(a) => {
                buf[..len].fill(0);
                buf[0] = CONFIG_ASSIGN;
                if let Some((addr, plen)) = a.ipv4 {
                    buf[1] |= 0x01;
                    buf[2..6].copy_from_slice(&addr.octets());
                    buf[6] = plen.min(32);
                }
                if let Some((addr, plen)) = a.ipv6 {
                    buf[1] |= 0x02;
                    buf[7..23].copy_from_slice(&addr.octets());
                    buf[23] = plen.min(128);
                }
                buf[24..26].copy_from_slice(&a.mtu.to_be_bytes());
            }
        }
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(m: ControlMessage) -> Vec<u8> {
        let mut buf = vec![0u8; m.buffer_len()];
        assert_eq!(m.emit(&mut buf), Ok(m.buffer_len()));
        assert_eq!(ControlMessage::parse(&buf), Ok(m));
        buf
    }

    #[test]
    fn vectors() {
        assert_eq!(round_trip(ControlMessage::Keepalive), [1]);
        assert_eq!(
            round_trip(ControlMessage::RttProbe {
                seq: 0x0102_0304,
                timestamp_us: 5
            }),
            [2, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 5]
        );
        let assign = AddressAssignment {
            ipv4: Some((Ipv4Addr::new(10, 77, 0, 2), 16)),
            ipv6: None,
            mtu: 1420,
        };
        let bytes = round_trip(ControlMessage::ConfigAssign(assign));
        assert_eq!(&bytes[..7], &[5, 1, 10, 77, 0, 2, 16]);
        assert_eq!(&bytes[24..], &1420u16.to_be_bytes());
    }

    #[test]
    fn rejections() {
        assert_eq!(
            ControlMessage::parse(&[]),
            Err(WireError::Truncated { needed: 1, have: 0 })
        );
        assert_eq!(
            ControlMessage::parse(&[1, 0]),
            Err(WireError::BadLength {
                expected: 1,
                got: 2
            })
        );
        assert_eq!(
            ControlMessage::parse(&[0x20]),
            Err(WireError::UnknownType(0x20))
        );
        let mut assign = [0u8; ASSIGN_LEN];
        assign[0] = CONFIG_ASSIGN;
        assign[1] = 0x04;
        assert_eq!(ControlMessage::parse(&assign), Err(WireError::BadFlags(4)));
        assign[1] = 1;
        assign[6] = 33;
        assert_eq!(
            ControlMessage::parse(&assign),
            Err(WireError::InvalidField("ipv4 prefix length"))
        );
        assign[1] = 0;
        assign[6] = 0;
        assign[17] = 0xcd;
        assert_eq!(
            ControlMessage::parse(&assign),
            Err(WireError::InvalidField("absent ipv6 not zero"))
        );
        assert!(ControlMessage::Keepalive.emit(&mut []).is_err());
    }

    fn any_message() -> impl Strategy<Value = ControlMessage> {
        let v4 = proptest::option::of(
            (any::<[u8; 4]>(), 0u8..=32).prop_map(|(a, l)| (Ipv4Addr::from(a), l)),
        );
        let v6 = proptest::option::of(
            (any::<[u8; 16]>(), 0u8..=128).prop_map(|(a, l)| (Ipv6Addr::from(a), l)),
        );
        prop_oneof![
            Just(ControlMessage::Keepalive),
            Just(ControlMessage::ConfigRequest),
            (any::<u32>(), any::<u64>())
                .prop_map(|(seq, timestamp_us)| ControlMessage::RttProbe { seq, timestamp_us }),
            (any::<u32>(), any::<u64>())
                .prop_map(|(seq, timestamp_us)| ControlMessage::RttEcho { seq, timestamp_us }),
            (v4, v6, any::<u16>()).prop_map(|(ipv4, ipv6, mtu)| ControlMessage::ConfigAssign(
                AddressAssignment { ipv4, ipv6, mtu }
            )),
        ]
    }

    proptest! {
        #[test]
        fn every_message_round_trips(m in any_message()) {
            round_trip(m);
        }

        #[test]
        fn any_bytes_parse_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(m) = ControlMessage::parse(&bytes) {
                let mut out = vec![0u8; m.buffer_len()];
                m.emit(&mut out).unwrap();
                prop_assert_eq!(out, bytes);
            }
        }
    }
}
