//! Address pools: which addresses of a prefix go to the gateway and which to clients.
//!
//! ```text
//! 10.77.0.0/16   10.77.0.0 network (unused)   10.77.0.1 gateway   10.77.0.2 … 10.77.255.254
//!                clients                      10.77.255.255 broadcast (unused)
//! fd77::/64      fd77:: subnet-router anycast (unused)   fd77::1 gateway   fd77::2 … clients
//! ```
//!
//! Addresses are handled as offsets from the prefix's network address, so one piece of code
//! serves both families; client addresses are handed out lowest free first.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use grelay_proto::router::IpPrefix;

/// Offset of the gateway's own address in every pool.
const GATEWAY_OFFSET: u128 = 1;
/// Offset of the first client address.
const FIRST_CLIENT: u128 = 2;

/// One pool of tunnel addresses (IPv4 or IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    prefix: IpPrefix,
}

impl Pool {
    /// A pool over `prefix`; refuses one with no room for the gateway and one client
    /// (IPv4 longer than /30, IPv6 longer than /126), naming the limit.
    pub fn new(prefix: IpPrefix) -> Result<Pool, String> {
        let pool = Pool { prefix };
        if pool.capacity() == 0 {
            let max = if prefix.addr().is_ipv4() { 30 } else { 126 };
            return Err(format!(
                "{prefix} is too small: it needs room for the gateway and at least one client \
                 (use a prefix of /{max} or shorter)"
            ));
        }
        Ok(pool)
    }

    /// The prefix.
    pub fn prefix(&self) -> IpPrefix {
        self.prefix
    }

    /// The gateway's own address: the first host.
    pub fn gateway(&self) -> IpAddr {
        self.at(GATEWAY_OFFSET)
    }

    /// How many client addresses the pool holds.
    pub fn capacity(&self) -> u128 {
        // `last_client` is at least FIRST_CLIENT when present.
        self.last_client().map_or(0, |last| last - FIRST_CLIENT + 1)
    }

    /// Whether `addr` is one this pool would give a client.
    pub fn is_client_address(&self, addr: IpAddr) -> bool {
        self.offset(addr)
            .is_some_and(|o| o >= FIRST_CLIENT && self.last_client().is_some_and(|l| o <= l))
    }

    /// The lowest client address not in `used` (addresses of this pool, others ignored).
    pub fn lowest_free(&self, used: impl IntoIterator<Item = IpAddr>) -> Option<IpAddr> {
        let last = self.last_client()?;
        let used: BTreeSet<u128> = used
            .into_iter()
            .filter_map(|a| self.offset(a))
            .filter(|&o| o >= FIRST_CLIENT)
            .collect();
        let mut candidate = FIRST_CLIENT;
        for o in used {
            if o != candidate {
                break;
            }
            candidate = candidate.checked_add(1)?;
        }
        (candidate <= last).then(|| self.at(candidate))
    }

    /// Host bits of the prefix.
    fn host_bits(&self) -> u32 {
        let width = if self.prefix.addr().is_ipv4() {
            32
        } else {
            128
        };
        width - u32::from(self.prefix.prefix_len())
    }

    /// Offset of the last address a client may get, if any.
    fn last_client(&self) -> Option<u128> {
        let size_minus_one = 1u128
            .checked_shl(self.host_bits())
            .map_or(u128::MAX, |s| s - 1);
        // IPv4 keeps its broadcast address unused; IPv6 has none.
        let last = if self.prefix.addr().is_ipv4() {
            size_minus_one.checked_sub(1)?
        } else {
            size_minus_one
        };
        (last >= FIRST_CLIENT).then_some(last)
    }

    fn base(&self) -> u128 {
        match self.prefix.addr() {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        }
    }

    /// The offset of `addr` inside the pool, `None` outside it.
    fn offset(&self, addr: IpAddr) -> Option<u128> {
        if !self.prefix.contains(addr) {
            return None;
        }
        let value = match addr {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        };
        Some(value - self.base())
    }

    /// The address at `offset`; callers keep `offset` within the prefix.
    fn at(&self, offset: u128) -> IpAddr {
        let value = self.base() + offset;
        match self.prefix.addr() {
            // The pool is IPv4, so base + offset stays within 32 bits.
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(value as u32)),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(value)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(s: &str) -> Pool {
        Pool::new(s.parse().unwrap()).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn gateway_capacity_and_bounds() {
        let p = pool("10.77.0.0/16");
        assert_eq!(p.gateway(), ip("10.77.0.1"));
        assert_eq!(p.capacity(), 65533);
        assert!(p.is_client_address(ip("10.77.0.2")));
        assert!(p.is_client_address(ip("10.77.255.254")));
        for not in [
            "10.77.0.0",
            "10.77.0.1",
            "10.77.255.255",
            "10.78.0.2",
            "fd77::2",
        ] {
            assert!(!p.is_client_address(ip(not)), "{not}");
        }
        let p6 = pool("fd77::/64");
        assert_eq!(p6.gateway(), ip("fd77::1"));
        assert_eq!(p6.capacity(), (1u128 << 64) - 2);
        assert!(p6.is_client_address(ip("fd77::ffff:ffff:ffff:ffff")));
        assert_eq!(pool("10.0.0.0/30").capacity(), 1);
        assert_eq!(pool("fd00::/126").capacity(), 2);
        assert_eq!(pool("::/0").capacity(), u128::MAX - 1);
    }

    #[test]
    fn too_small_pools_are_refused_with_the_limit() {
        let e = Pool::new("10.0.0.0/31".parse().unwrap()).unwrap_err();
        assert!(e.contains("/30 or shorter"), "{e}");
        assert!(Pool::new("10.0.0.1/32".parse().unwrap()).is_err());
        let e = Pool::new("fd00::/127".parse().unwrap()).unwrap_err();
        assert!(e.contains("/126"), "{e}");
    }

    #[test]
    fn lowest_free_fills_holes_first_and_runs_out() {
        let p = pool("10.0.0.0/29"); // clients .2 … .6
        assert_eq!(p.lowest_free([]), Some(ip("10.0.0.2")));
        let used = [
            ip("10.0.0.2"),
            ip("10.0.0.4"),
            ip("192.0.2.1"),
            ip("10.0.0.1"),
        ];
        assert_eq!(p.lowest_free(used), Some(ip("10.0.0.3")));
        let full: Vec<IpAddr> = (2..=6).map(|h| ip(&format!("10.0.0.{h}"))).collect();
        assert_eq!(p.lowest_free(full), None);
        let p6 = pool("fd77::/64");
        assert_eq!(p6.lowest_free([ip("fd77::2")]), Some(ip("fd77::3")));
    }
}
