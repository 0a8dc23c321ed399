//! The gateway's data path: opening client datagrams, control messages, sealing for a peer.

use core::net::SocketAddr;
use std::time::Instant;

use super::{Gateway, GatewayEvent, PeerId, Received};
use crate::tunnel::frame::{self, Inner};
use crate::tunnel::{DropReason, SendError, Transmit};
use crate::wire::control::ControlMessage;
use crate::wire::ip;
use crate::wire::outer;

impl Gateway {
    pub(super) fn seal_for(
        &mut self,
        now: Instant,
        id: PeerId,
        buf: &mut [u8],
        frame_len: usize,
    ) -> Result<(usize, SocketAddr), SendError> {
        let peer = self
            .peers
            .get_mut(id.0 as usize)
            .and_then(Option::as_mut)
            .ok_or(SendError::UnknownPeer)?;
        let (Some(session_id), Some(endpoint)) = (peer.current, peer.endpoint) else {
            return Err(SendError::NoSession);
        };
        let session = self
            .sessions
            .get_mut(&session_id)
            .ok_or(SendError::NoSession)?;
        if session.keys.expired(now) {
            return Err(SendError::NoSession);
        }
        let total = session.keys.seal(buf, frame_len)?;
        peer.traffic.tx_packets += 1;
        peer.traffic.tx_bytes += total as u64;
        Ok((total, endpoint))
    }

    pub(super) fn handle_data(
        &mut self,
        now: Instant,
        from: SocketAddr,
        buf: &mut [u8],
    ) -> Result<Received, DropReason> {
        let datagram_len = buf.len();
        let receiver = outer::Data::new_checked(&buf[..])
            .map_err(|_| DropReason::Malformed)?
            .receiver();
        let session = self
            .sessions
            .get_mut(&receiver)
            .ok_or(DropReason::UnknownSession)?;
        let frame = session.keys.open(buf, now)?;
        let id = session.peer;
        // Authenticated from here on: the packet may move state.
        self.confirm_session(id, receiver);
        let Some(peer) = self.peer_mut(id) else {
            return Err(DropReason::UnknownSession);
        };
        peer.traffic.rx_packets += 1;
        peer.traffic.rx_bytes += datagram_len as u64;
        let roamed = match peer.endpoint.replace(from) {
            Some(old) if old != from => Some(old),
            _ => None,
        };
        if let Some(old) = roamed {
            self.events.push_back(GatewayEvent::Roamed {
                peer: id,
                from: old,
                to: from,
            });
        }
        match frame::parse_inner(buf, frame)? {
            Inner::Ip(range) => {
                let source =
                    ip::source(&buf[range.clone()]).map_err(|_| DropReason::BadInnerFrame)?;
                let allowed = self.peer_ref(id).is_some_and(|p| p.may_send_from(source));
                if !allowed {
                    return Err(DropReason::SourceNotAllowed);
                }
                Ok(Received::Packet { peer: id, range })
            }
            Inner::Control(message) => {
                self.handle_control(now, id, message);
                Ok(Received::Nothing)
            }
        }
    }

    pub(super) fn handle_control(&mut self, now: Instant, id: PeerId, message: ControlMessage) {
        let reply = match message {
            ControlMessage::RttProbe { seq, timestamp_us } => {
                ControlMessage::RttEcho { seq, timestamp_us }
            }
            ControlMessage::ConfigRequest => match self.peer_ref(id) {
                Some(peer) => ControlMessage::ConfigAssign(peer.config.assignment),
                None => return,
            },
            ControlMessage::Keepalive
            | ControlMessage::RttEcho { .. }
            | ControlMessage::ConfigAssign(_) => return,
        };
        let (mut buf, frame_len) = frame::control_buffer(&reply);
        if let Ok((total, destination)) = self.seal_for(now, id, &mut buf, frame_len) {
            buf.truncate(total);
            self.transmits.push_back(Transmit {
                destination,
                contents: buf,
            });
        }
    }

    /// The first authenticated packet on a responder session makes it the peer's current one.
    pub(super) fn confirm_session(&mut self, id: PeerId, session_id: u32) {
        let Some(peer) = self.peer_mut(id) else {
            return;
        };
        if peer.next != Some(session_id) {
            return;
        }
        peer.next = None;
        let dropped = peer.previous.take();
        peer.previous = peer.current.replace(session_id);
        if let Some(old) = dropped {
            self.sessions.remove(&old);
        }
    }
}
