//! Raw GRE back ends, chosen by the inner destination (the one-to-many lookup `ip_gre` lacks).
//!
//! Linux binds a GRE device to one remote, so a server cannot fan tunnels out by where packets
//! go. The gateway does that lookup here: back ends serve inner prefixes with priorities; a
//! packet goes to the healthy back end with the best priority for the longest matching prefix.
//! Health comes from Cisco-style GRE keepalives (see `keepalive.rs`) sent every 500 ms; a back end
//! that returns none for 1.5 s is down and its prefixes fail over to the next one, and it fails
//! back when keepalives return.
//!
//! Sans-IO like the rest of the core: the shell owns the raw `IPPROTO_GRE` socket, feeds
//! received frames to [`Backends::handle_frame`], writes what [`Backends::frame`] prepares and
//! sends [`Backends::poll_transmit`]'s probes. Frames are written in place: a decrypted client
//! frame already sits behind 20 bytes of free headroom (the outer data header and the tunnel's
//! own GRE header), enough for any GRE header (4 to 16 bytes), so nothing is copied.

mod health;
mod keepalive;

pub use health::{DEAD_AFTER, PROBE_INTERVAL};
pub use keepalive::KEEPALIVE_PROTOCOL;

use core::net::IpAddr;
use core::ops::Range;
use std::collections::VecDeque;
use std::time::Instant;

use self::health::Health;
use crate::router::{IpPrefix, PrefixTable};
use crate::wire::gre;

/// One back end as the operator configured it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendConfig {
    /// Name for logs and metrics.
    pub name: String,
    /// The far end's outer address.
    pub remote: IpAddr,
    /// Our outer address towards it (the source of our GRE packets).
    pub local: IpAddr,
    /// GRE key both ends use, if any.
    pub key: Option<u32>,
    /// Whether to send sequence numbers.
    pub sequence: bool,
    /// Whether to send checksums.
    pub checksum: bool,
    /// Inner prefixes served, each with a priority (lower is preferred).
    pub prefixes: Vec<(IpPrefix, u8)>,
}

/// A handle to a back end: its index in the configuration order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendId(pub u16);

/// A back end changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendEvent {
    /// Keepalives stopped coming back: its prefixes fail over.
    Down(BackendId),
    /// Keepalives came back: its prefixes fail back.
    Up(BackendId),
}

/// A GRE frame (without the outer IP header, which the raw socket adds) to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GreTransmit {
    /// The back end it goes to.
    pub backend: BackendId,
    /// Its outer destination.
    pub destination: IpAddr,
    /// The GRE frame.
    pub frame: Vec<u8>,
}

/// What a frame received from a back end was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromBackend {
    /// An IP packet for a client, at this range of the frame.
    Packet {
        /// Which back end sent it.
        backend: BackendId,
        /// The inner packet.
        range: Range<usize>,
    },
    /// One of our keepalives came back.
    Keepalive(BackendId),
    /// The far end's own keepalive (an IP packet addressed to the far end, holding GRE): send
    /// the GRE frame at this range back to the back end's outer address, as a router would.
    ReflectKeepalive {
        /// Which back end sent it.
        backend: BackendId,
        /// The inner GRE frame to send back.
        range: Range<usize>,
    },
}

/// Why a frame from the GRE socket was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackendDrop {
    /// The source address is not a configured back end.
    #[error("GRE from an unknown source")]
    UnknownSource,
    /// The GRE key differs from the configured one.
    #[error("GRE key mismatch")]
    BadKey,
    /// Not a GRE frame this gateway accepts (malformed, bad checksum, other protocol).
    #[error("malformed GRE frame")]
    Malformed,
}

/// Why a frame could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Not enough headroom in front of the packet for this back end's GRE header.
    #[error("need {needed} bytes of headroom, have {have}")]
    NoHeadroom {
        /// Bytes the header needs.
        needed: usize,
        /// Bytes available.
        have: usize,
    },
    /// The packet is neither IPv4 nor IPv6.
    #[error("not an IP packet")]
    NotIp,
    /// No such back end.
    #[error("unknown back end")]
    Unknown,
}

/// Counters of one back end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackendCounters {
    /// Frames sent (data and probes).
    pub tx_frames: u64,
    /// Data frames received.
    pub rx_frames: u64,
    /// Keepalives returned (ours) or reflected (the far end's).
    pub keepalives: u64,
}

struct Backend {
    config: BackendConfig,
    health: Health,
    next_sequence: u32,
    counters: BackendCounters,
}

/// All back ends and the prefix table that chooses among them.
pub struct Backends {
    list: Vec<Backend>,
    routes: PrefixTable<Vec<(u8, BackendId)>>,
    transmits: VecDeque<GreTransmit>,
    events: VecDeque<BackendEvent>,
}

impl core::fmt::Debug for Backends {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list()
            .entries(self.list.iter().map(|b| (&b.config.name, b.health.is_up())))
            .finish()
    }
}

impl Backends {
    /// Builds the table; every back end starts up, with a probe due at `now`.
    pub fn new(configs: Vec<BackendConfig>, now: Instant) -> Self {
        let mut routes: PrefixTable<Vec<(u8, BackendId)>> = PrefixTable::new();
        for (i, config) in configs.iter().enumerate() {
            for &(prefix, priority) in &config.prefixes {
                let id = BackendId(i as u16);
                let mut entry = routes.get(&prefix).cloned().unwrap_or_default();
                entry.push((priority, id));
                entry.sort();
                routes.insert(prefix, entry);
            }
        }
        let list = configs
            .into_iter()
            .map(|config| Backend {
                config,
                health: Health::new(now),
                next_sequence: 0,
                counters: BackendCounters::default(),
            })
            .collect();
        Self {
            list,
            routes,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The back end for an inner destination: the longest matching prefix, then the best
    /// priority among the healthy ones (or the best one if none is healthy).
    pub fn select(&self, destination: IpAddr) -> Option<BackendId> {
        let (_, candidates) = self.routes.lookup(destination)?;
        candidates
            .iter()
            .find(|(_, id)| self.is_up(*id))
            .or(candidates.first())
            .map(|&(_, id)| id)
    }

    /// Whether keepalives come back from this back end.
    pub fn is_up(&self, id: BackendId) -> bool {
        self.get(id).is_some_and(|b| b.health.is_up())
    }

    /// A back end's configuration.
    pub fn config(&self, id: BackendId) -> Option<&BackendConfig> {
        self.get(id).map(|b| &b.config)
    }

    /// A back end's counters.
    pub fn counters(&self, id: BackendId) -> Option<BackendCounters> {
        self.get(id).map(|b| b.counters)
    }

    /// Every back end's id, for status displays.
    pub fn ids(&self) -> impl Iterator<Item = BackendId> {
        (0..self.list.len()).map(|i| BackendId(i as u16))
    }

    /// Writes `id`'s GRE header in front of the IP packet at `buf[packet]`; returns where the
    /// frame starts (it ends at `packet.end`).
    pub fn frame(
        &mut self,
        id: BackendId,
        buf: &mut [u8],
        packet: Range<usize>,
    ) -> Result<usize, FrameError> {
        let protocol = match buf.get(packet.start).map(|b| b >> 4) {
            Some(4) => gre::ETHERTYPE_IPV4,
            Some(6) => gre::ETHERTYPE_IPV6,
            _ => return Err(FrameError::NotIp),
        };
        let backend = self
            .list
            .get_mut(usize::from(id.0))
            .ok_or(FrameError::Unknown)?;
        let needed = header_len(&backend.config);
        let start = packet
            .start
            .checked_sub(needed)
            .ok_or(FrameError::NoHeadroom {
                needed,
                have: packet.start,
            })?;
        let repr = header(backend, protocol);
        repr.emit_header(&mut buf[start..packet.end], packet.len())
            .map_err(|_| FrameError::NotIp)?;
        backend.counters.tx_frames += 1;
        Ok(start)
    }

    /// Reads a GRE frame (the payload of a protocol-47 packet from `source`).
    pub fn handle_frame(
        &mut self,
        now: Instant,
        source: IpAddr,
        frame: &[u8],
    ) -> Result<FromBackend, BackendDrop> {
        let index = self
            .list
            .iter()
            .position(|b| b.config.remote == source)
            .ok_or(BackendDrop::UnknownSource)?;
        let id = BackendId(index as u16);
        let packet = gre::Packet::new_checked(frame).map_err(|_| BackendDrop::Malformed)?;
        let repr = gre::Repr::parse(&packet).map_err(|_| BackendDrop::Malformed)?;
        let backend = &mut self.list[index];
        if repr.key != backend.config.key {
            return Err(BackendDrop::BadKey);
        }
        let start = repr.header_len();
        match repr.protocol {
            KEEPALIVE_PROTOCOL => {
                backend.counters.keepalives += 1;
                if backend.health.keepalive_returned(now) {
                    self.events.push_back(BackendEvent::Up(id));
                }
                Ok(FromBackend::Keepalive(id))
            }
            gre::ETHERTYPE_IPV4 | gre::ETHERTYPE_IPV6 => {
                let version = frame.get(start).map(|b| b >> 4);
                let expected = if repr.protocol == gre::ETHERTYPE_IPV4 {
                    4
                } else {
                    6
                };
                if version != Some(expected) {
                    return Err(BackendDrop::Malformed);
                }
                let inner = &frame[start..];
                if let Some(gre_at) = keepalive::reflectable(inner, backend.config.remote) {
                    backend.counters.keepalives += 1;
                    return Ok(FromBackend::ReflectKeepalive {
                        backend: id,
                        range: start + gre_at..frame.len(),
                    });
                }
                backend.counters.rx_frames += 1;
                Ok(FromBackend::Packet {
                    backend: id,
                    range: start..frame.len(),
                })
            }
            _ => Err(BackendDrop::Malformed),
        }
    }

    /// When the next probe is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.list.iter().map(|b| b.health.next_probe()).min()
    }

    /// Sends the probes that are due and marks silent back ends down.
    pub fn handle_timeout(&mut self, now: Instant) {
        for (i, backend) in self.list.iter_mut().enumerate() {
            if backend.health.next_probe() > now {
                continue;
            }
            let id = BackendId(i as u16);
            if backend.health.probe_sent(now) {
                self.events.push_back(BackendEvent::Down(id));
            }
            let c = &backend.config;
            let payload = keepalive::probe_payload(c.remote, c.local, c.key);
            let protocol = if payload[0] >> 4 == 4 {
                gre::ETHERTYPE_IPV4
            } else {
                gre::ETHERTYPE_IPV6
            };
            let repr = header(backend, protocol);
            let mut frame = vec![0u8; repr.header_len() + payload.len()];
            frame[repr.header_len()..].copy_from_slice(&payload);
            // Invariant: the frame was sized for this header and payload.
            repr.emit_header(&mut frame, payload.len())
                .expect("sized for header and payload");
            backend.counters.tx_frames += 1;
            self.transmits.push_back(GreTransmit {
                backend: id,
                destination: backend.config.remote,
                frame,
            });
        }
    }

    /// Next probe to send.
    pub fn poll_transmit(&mut self) -> Option<GreTransmit> {
        self.transmits.pop_front()
    }

    /// Next state change.
    pub fn poll_event(&mut self) -> Option<BackendEvent> {
        self.events.pop_front()
    }

    fn get(&self, id: BackendId) -> Option<&Backend> {
        self.list.get(usize::from(id.0))
    }
}

/// The GRE header length `config` asks for.
fn header_len(config: &BackendConfig) -> usize {
    gre::Repr {
        protocol: 0,
        checksum: config.checksum,
        key: config.key,
        sequence: config.sequence.then_some(0),
    }
    .header_len()
}

/// The GRE header for one frame to `backend`, advancing its sequence number when it uses one.
fn header(backend: &mut Backend, protocol: u16) -> gre::Repr {
    let sequence = backend.config.sequence.then(|| {
        let s = backend.next_sequence;
        backend.next_sequence = s.wrapping_add(1);
        s
    });
    gre::Repr {
        protocol,
        checksum: backend.config.checksum,
        key: backend.config.key,
        sequence,
    }
}

#[cfg(test)]
mod tests;
