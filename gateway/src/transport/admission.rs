//! Who may open a fallback connection: a cap on connections in total and per source, and a
//! unique link number for each admitted one (it names the connection to the core, see
//! [`super::link_address`]).
//!
//! Sources are counted by IPv4 address, or by IPv6 /64 (one customer's network), as the
//! core's rate limiter does.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_connections` are open.
    Full,
    /// `max_per_source` are open from this source.
    SourceFull,
}

impl Refusal {
    /// For logs.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Full => "over max_connections",
            Refusal::SourceFull => "over max_per_source",
        }
    }
}

#[derive(Debug)]
struct State {
    per_source: HashMap<IpAddr, usize>,
    free: Vec<u16>,
}

/// The caps, shared by the TLS and QUIC listeners.
#[derive(Debug)]
pub struct Admission {
    state: Mutex<State>,
    max_per_source: usize,
}

/// An admitted connection; dropping it frees its place and its number.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    source: IpAddr,
    /// The connection's number, unique among open ones.
    pub id: u16,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = self.admission.lock();
        if let Some(n) = state.per_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                state.per_source.remove(&self.source);
            }
        }
        state.free.push(self.id);
    }
}

fn source_key(addr: IpAddr) -> IpAddr {
    match addr.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

impl Admission {
    /// At most `max_connections` (≤ 65536) open, `max_per_source` from one source.
    pub fn new(max_connections: usize, max_per_source: usize) -> Arc<Self> {
        let max = max_connections.min(1 << 16);
        // Lowest numbers first.
        let free = (0..max).rev().map(|i| i as u16).collect();
        Arc::new(Self {
            state: Mutex::new(State {
                per_source: HashMap::new(),
                free,
            }),
            max_per_source,
        })
    }

    /// Admits a connection from `remote`, or says why not.
    pub fn admit(self: &Arc<Self>, remote: SocketAddr) -> Result<Ticket, Refusal> {
        let source = source_key(remote.ip());
        let mut state = self.lock();
        if state.free.is_empty() {
            return Err(Refusal::Full);
        }
        let n = state.per_source.get(&source).copied().unwrap_or(0);
        if n >= self.max_per_source {
            return Err(Refusal::SourceFull);
        }
        let id = state.free.pop().ok_or(Refusal::Full)?;
        state.per_source.insert(source, n + 1);
        Ok(Ticket {
            admission: self.clone(),
            source,
            id,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().per_source.values().sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_source_and_in_total_and_frees_on_drop() {
        let a = Admission::new(3, 2);
        let x: SocketAddr = "198.18.2.2:1000".parse().unwrap();
        let y: SocketAddr = "198.18.3.2:1000".parse().unwrap();
        let t1 = a.admit(x).unwrap();
        let t2 = a.admit(x).unwrap();
        assert_eq!(a.admit(x).unwrap_err(), Refusal::SourceFull);
        let t3 = a.admit(y).unwrap();
        assert_eq!(a.admit(y).unwrap_err(), Refusal::Full);
        let ids = [t1.id, t2.id, t3.id];
        assert_eq!(ids, [0, 1, 2]);
        drop(t2);
        assert_eq!(a.open(), 2);
        let t4 = a.admit(x).unwrap();
        assert_eq!(t4.id, 1, "numbers are reused");
        drop((t1, t3, t4));
        assert_eq!(a.open(), 0);
    }

    #[test]
    fn ipv6_counts_by_slash_64() {
        let a = Admission::new(10, 1);
        let p: SocketAddr = "[2001:db8:1:2::5]:1".parse().unwrap();
        let q: SocketAddr = "[2001:db8:1:2::6]:1".parse().unwrap();
        let r: SocketAddr = "[2001:db8:1:3::6]:1".parse().unwrap();
        let _t = a.admit(p).unwrap();
        assert_eq!(a.admit(q).unwrap_err(), Refusal::SourceFull);
        assert!(a.admit(r).is_ok());
    }
}
