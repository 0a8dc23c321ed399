//! IP prefixes and a longest-prefix-match table, for routing decapsulated packets.
//!
//! The gateway picks where an inner packet goes by its destination (its TUN, a raw GRE back end,
//! another client) and checks that an inner source belongs to the client that sent it; the client
//! picks which packets enter the tunnel by the games' destination prefix lists. All three are a
//! [`PrefixTable`] lookup, once per packet.
//!
//! The table keeps one hash map per prefix length and family, keyed by the prefix's address bits
//! with the host bits zeroed, plus a bitmask of the lengths in use. A lookup masks the address to
//! each length in use, longest first, and probes that map: at most 33 (IPv4) or 129 (IPv6)
//! probes, in practice the handful of lengths a configuration uses, with no allocation.
//!
//! The maps hash with a small folded-multiply hasher instead of std's randomly seeded SipHash:
//! keys are configured prefixes and pool addresses, never chosen by a peer (a peer only chooses
//! the address looked up, and a lookup inserts nothing), so hash flooding is not a concern, and
//! the core stays free of OS randomness and deterministic from run to run.

use core::fmt;
use core::hash::{BuildHasherDefault, Hash, Hasher};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::str::FromStr;
use std::collections::HashMap;

/// Why a prefix could not be built or parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrefixError {
    /// The prefix length exceeds the address width (32 for IPv4, 128 for IPv6).
    #[error("prefix length {len} exceeds {max}")]
    TooLong {
        /// The length asked for.
        len: u8,
        /// The family's address width.
        max: u8,
    },
    /// The text before the `/` is not an IPv4 or IPv6 address.
    #[error("invalid address")]
    InvalidAddress,
    /// The text after the `/` is not a decimal number from 0 to 255.
    #[error("invalid prefix length")]
    InvalidLength,
}

/// An IPv4 or IPv6 prefix: an address whose bits after the first `prefix_len` are zero.
///
/// Host bits are always zero (the constructor clears them), so two prefixes covering the same
/// addresses compare equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IpPrefix {
    /// The network address, host bits zero.
    addr: IpAddr,
    /// Number of leading bits that matter, at most the address width.
    len: u8,
}

impl IpPrefix {
    /// The prefix of the first `len` bits of `addr`, host bits cleared.
    ///
    /// Fails with [`PrefixError::TooLong`] if `len` exceeds 32 (IPv4) or 128 (IPv6).
    pub fn new(addr: IpAddr, len: u8) -> Result<Self, PrefixError> {
        let max = width(addr);
        if len > max {
            return Err(PrefixError::TooLong { len, max });
        }
        Ok(Self {
            addr: mask_addr(addr, len),
            len,
        })
    }

    /// The network address (host bits zero).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// Number of leading bits that matter.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// Whether `addr` lies inside this prefix. An address of the other family never does
    /// (an IPv4-mapped IPv6 address is IPv6 here).
    pub fn contains(&self, addr: IpAddr) -> bool {
        width(addr) == width(self.addr) && mask_addr(addr, self.len) == self.addr
    }
}

impl From<IpAddr> for IpPrefix {
    /// The host prefix of `addr` (/32 or /128): how a client's virtual address is routed.
    fn from(addr: IpAddr) -> Self {
        Self {
            addr,
            len: width(addr),
        }
    }
}

impl FromStr for IpPrefix {
    type Err = PrefixError;

    /// Parses `10.0.0.0/8`, `fd77::/64`, or a bare address as its host prefix. Host bits that
    /// are set are cleared (`10.1.2.3/8` is `10.0.0.0/8`), as the constructor does.
    fn from_str(s: &str) -> Result<Self, PrefixError> {
        let (addr, len) = match s.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| PrefixError::InvalidAddress)?;
        match len {
            None => Ok(Self::from(addr)),
            Some(len) => {
                // u8's parser would also take a leading '+'.
                if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(PrefixError::InvalidLength);
                }
                let len = len.parse().map_err(|_| PrefixError::InvalidLength)?;
                Self::new(addr, len)
            }
        }
    }
}

impl fmt::Display for IpPrefix {
    /// `address/length`, the form [`FromStr`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Address width in bits of `addr`'s family.
fn width(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => u32::WIDTH,
        IpAddr::V6(_) => u128::WIDTH,
    }
}

/// `addr` with all bits after the first `len` cleared.
fn mask_addr(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a).masked(len))),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a).masked(len))),
    }
}

/// An address family's bits as an integer, so one table shape serves both families.
trait Bits: Copy + Eq + Hash {
    /// Address width in bits.
    const WIDTH: u8;
    /// `self` with all bits after the first `len` cleared (`len` beyond the width keeps all).
    fn masked(self, len: u8) -> Self;
    /// The prefix `self/len`; `self` is already masked.
    fn prefix(self, len: u8) -> IpPrefix;
}

impl Bits for u32 {
    const WIDTH: u8 = 32;
    fn masked(self, len: u8) -> Self {
        self & u32::MAX
            .checked_shl(u32::from(Self::WIDTH.saturating_sub(len)))
            .unwrap_or(0)
    }
    fn prefix(self, len: u8) -> IpPrefix {
        IpPrefix {
            addr: IpAddr::V4(Ipv4Addr::from(self)),
            len,
        }
    }
}

impl Bits for u128 {
    const WIDTH: u8 = 128;
    fn masked(self, len: u8) -> Self {
        self & u128::MAX
            .checked_shl(u32::from(Self::WIDTH.saturating_sub(len)))
            .unwrap_or(0)
    }
    fn prefix(self, len: u8) -> IpPrefix {
        IpPrefix {
            addr: IpAddr::V6(Ipv6Addr::from(self)),
            len,
        }
    }
}

/// Folded-multiply hasher for the address keys; see the module doc for why not SipHash.
#[derive(Default, Clone, Copy)]
struct KeyHasher(u64);

impl KeyHasher {
    /// Mixes one word in: multiply to 128 bits and fold the halves, so every input bit reaches
    /// both the low bits (bucket index) and the high bits (hashbrown's tag).
    fn mix(&mut self, word: u64) {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let p = u128::from(self.0 ^ word) * u128::from(K);
        // Truncations keep the low and the high half on purpose.
        self.0 = (p as u64) ^ ((p >> 64) as u64);
    }
}

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.mix(u64::from(n));
    }
    fn write_u128(&mut self, n: u128) {
        // Truncations split the value into its halves on purpose.
        self.mix(n as u64);
        self.mix((n >> 64) as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A set of prefix lengths 0..=128, iterated longest first.
#[derive(Clone, Copy, Default)]
struct LenSet([u64; 3]);

impl LenSet {
    fn insert(&mut self, len: u8) {
        self.0[usize::from(len / 64)] |= 1 << (len % 64);
    }
    fn remove(&mut self, len: u8) {
        self.0[usize::from(len / 64)] &= !(1 << (len % 64));
    }
    /// The lengths in the set, longest first.
    fn descending(self) -> impl Iterator<Item = u8> {
        (0..3u8).rev().flat_map(move |word| {
            let mut bits = self.0[usize::from(word)];
            core::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                // `bits` is nonzero, so the highest set bit is at most 63.
                let bit = 63 - bits.leading_zeros() as u8;
                bits &= !(1 << bit);
                Some(word * 64 + bit)
            })
        })
    }
}

/// The table of one address family.
#[derive(Clone)]
struct Family<K, V> {
    /// Entries by prefix length; index `len` holds the prefixes of that length.
    by_len: Vec<HashMap<K, V, BuildHasherDefault<KeyHasher>>>,
    /// Lengths whose map is non-empty.
    lens: LenSet,
}

impl<K: Bits, V> Family<K, V> {
    fn new() -> Self {
        Self {
            by_len: (0..=K::WIDTH).map(|_| HashMap::default()).collect(),
            lens: LenSet::default(),
        }
    }

    /// The map of prefixes of length `len`; `len` comes from a valid [`IpPrefix`] or from
    /// `lens`, so it is at most the width and the index exists.
    fn map(&mut self, len: u8) -> &mut HashMap<K, V, BuildHasherDefault<KeyHasher>> {
        &mut self.by_len[usize::from(len)]
    }

    fn insert(&mut self, key: K, len: u8, value: V) -> Option<V> {
        self.lens.insert(len);
        self.map(len).insert(key, value)
    }

    fn remove(&mut self, key: K, len: u8) -> Option<V> {
        let map = self.map(len);
        let old = map.remove(&key);
        if map.is_empty() {
            self.lens.remove(len);
        }
        old
    }

    fn get(&self, key: K, len: u8) -> Option<&V> {
        self.by_len[usize::from(len)].get(&key)
    }

    fn lookup(&self, addr: K) -> Option<(IpPrefix, &V)> {
        self.lens.descending().find_map(|len| {
            let key = addr.masked(len);
            self.by_len[usize::from(len)]
                .get(&key)
                .map(|v| (key.prefix(len), v))
        })
    }

    fn iter(&self) -> impl Iterator<Item = (IpPrefix, &V)> {
        self.lens.descending().flat_map(move |len| {
            self.by_len[usize::from(len)]
                .iter()
                .map(move |(k, v)| (k.prefix(len), v))
        })
    }
}

/// A longest-prefix-match table from IP prefixes to `V`, for IPv4 and IPv6 at once.
///
/// Lookups do not allocate; inserts allocate only when a map grows.
#[derive(Clone)]
pub struct PrefixTable<V> {
    /// IPv4 prefixes.
    v4: Family<u32, V>,
    /// IPv6 prefixes.
    v6: Family<u128, V>,
    /// Number of prefixes in both families.
    len: usize,
}

impl<V> Default for PrefixTable<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: fmt::Debug> fmt::Debug for PrefixTable<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<V> PrefixTable<V> {
    /// An empty table.
    pub fn new() -> Self {
        Self {
            v4: Family::new(),
            v6: Family::new(),
            len: 0,
        }
    }

    /// Maps `prefix` to `value`, returning the value it replaces.
    pub fn insert(&mut self, prefix: IpPrefix, value: V) -> Option<V> {
        let old = match prefix.addr {
            IpAddr::V4(a) => self.v4.insert(u32::from(a), prefix.len, value),
            IpAddr::V6(a) => self.v6.insert(u128::from(a), prefix.len, value),
        };
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes exactly `prefix` (not the prefixes inside it), returning its value.
    pub fn remove(&mut self, prefix: &IpPrefix) -> Option<V> {
        let old = match prefix.addr {
            IpAddr::V4(a) => self.v4.remove(u32::from(a), prefix.len),
            IpAddr::V6(a) => self.v6.remove(u128::from(a), prefix.len),
        };
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// The value of exactly `prefix`, if present.
    pub fn get(&self, prefix: &IpPrefix) -> Option<&V> {
        match prefix.addr {
            IpAddr::V4(a) => self.v4.get(u32::from(a), prefix.len),
            IpAddr::V6(a) => self.v6.get(u128::from(a), prefix.len),
        }
    }

    /// The longest prefix containing `addr`, with its value: where a packet to `addr` goes.
    pub fn lookup(&self, addr: IpAddr) -> Option<(IpPrefix, &V)> {
        match addr {
            IpAddr::V4(a) => self.v4.lookup(u32::from(a)),
            IpAddr::V6(a) => self.v6.lookup(u128::from(a)),
        }
    }

    /// Every prefix with its value: IPv4 first, longer prefixes before shorter ones, otherwise
    /// in an unspecified order that is the same from run to run.
    pub fn iter(&self) -> impl Iterator<Item = (IpPrefix, &V)> {
        self.v4.iter().chain(self.v6.iter())
    }

    /// Number of prefixes in the table.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table holds no prefix.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> IpPrefix {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parse_and_display() {
        assert_eq!(p("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(p("fd77::/64").to_string(), "fd77::/64");
        assert_eq!(p("10.77.0.2").to_string(), "10.77.0.2/32");
        assert_eq!(p("fd77::2").to_string(), "fd77::2/128");
        assert_eq!(p("10.1.2.3/8"), p("10.0.0.0/8"), "host bits cleared");
        assert_eq!(p("fd77::1:2:3:4/64").to_string(), "fd77::/64");
        assert_eq!(p("1.2.3.4/0").to_string(), "0.0.0.0/0");
        assert_eq!(p("::/0").prefix_len(), 0);
        assert_eq!(
            "10.0.0.0/33".parse::<IpPrefix>(),
            Err(PrefixError::TooLong { len: 33, max: 32 })
        );
        assert_eq!(
            "::/129".parse::<IpPrefix>(),
            Err(PrefixError::TooLong { len: 129, max: 128 })
        );
        for bad_len in [
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/x",
            "10.0.0.0/256",
            "10.0.0.0/8/8",
            "::/ 1",
        ] {
            assert_eq!(
                bad_len.parse::<IpPrefix>(),
                Err(PrefixError::InvalidLength),
                "{bad_len}"
            );
        }
        for bad_addr in ["", "/8", "10.0.0/8", "example.com/8", "10.0.0.0 /8"] {
            assert_eq!(
                bad_addr.parse::<IpPrefix>(),
                Err(PrefixError::InvalidAddress),
                "{bad_addr}"
            );
        }
    }

    #[test]
    fn new_and_contains() {
        let net = IpPrefix::new(ip("10.77.1.9"), 16).unwrap();
        assert_eq!(net.addr(), ip("10.77.0.0"));
        assert!(net.contains(ip("10.77.255.255")));
        assert!(!net.contains(ip("10.78.0.0")));
        assert!(!net.contains(ip("::ffff:10.77.0.1")), "other family");
        assert!(p("0.0.0.0/0").contains(ip("255.255.255.255")));
        assert!(!p("0.0.0.0/0").contains(ip("::")));
        assert!(p("fd77::/64").contains(ip("fd77::ffff:1")));
        assert!(p("fd77::2/128").contains(ip("fd77::2")));
        assert!(!p("fd77::2/128").contains(ip("fd77::3")));
        assert_eq!(
            IpPrefix::new(ip("::"), 200),
            Err(PrefixError::TooLong { len: 200, max: 128 })
        );
        assert_eq!(IpPrefix::from(ip("10.0.0.1")), p("10.0.0.1/32"));
    }

    #[test]
    fn longest_match_wins() {
        let mut t = PrefixTable::new();
        assert!(t.is_empty());
        assert_eq!(t.lookup(ip("10.0.0.1")), None);
        t.insert(p("0.0.0.0/0"), "default");
        t.insert(p("10.0.0.0/8"), "ten");
        t.insert(p("10.77.0.0/16"), "pool");
        t.insert(p("10.77.0.2/32"), "client");
        t.insert(p("::/0"), "default6");
        t.insert(p("fd77::/64"), "pool6");
        assert_eq!(t.len(), 6);
        assert_eq!(
            t.lookup(ip("10.77.0.2")),
            Some((p("10.77.0.2/32"), &"client"))
        );
        assert_eq!(
            t.lookup(ip("10.77.0.3")),
            Some((p("10.77.0.0/16"), &"pool"))
        );
        assert_eq!(t.lookup(ip("10.1.0.3")), Some((p("10.0.0.0/8"), &"ten")));
        assert_eq!(
            t.lookup(ip("192.0.2.1")),
            Some((p("0.0.0.0/0"), &"default"))
        );
        assert_eq!(t.lookup(ip("fd77::9")), Some((p("fd77::/64"), &"pool6")));
        assert_eq!(t.lookup(ip("2001:db8::1")), Some((p("::/0"), &"default6")));
        assert_eq!(
            t.lookup(ip("::ffff:10.77.0.2")),
            Some((p("::/0"), &"default6"))
        );

        assert_eq!(t.insert(p("10.77.0.0/16"), "pool2"), Some("pool"));
        assert_eq!(t.len(), 6);
        assert_eq!(t.get(&p("10.77.0.0/16")), Some(&"pool2"));
        assert_eq!(t.get(&p("10.77.0.0/17")), None);
        assert_eq!(t.remove(&p("10.77.0.2/32")), Some("client"));
        assert_eq!(t.remove(&p("10.77.0.2/32")), None);
        assert_eq!(
            t.lookup(ip("10.77.0.2")),
            Some((p("10.77.0.0/16"), &"pool2"))
        );
        assert_eq!(t.remove(&p("0.0.0.0/0")), Some("default"));
        assert_eq!(t.lookup(ip("192.0.2.1")), None);
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn iter_order_and_debug() {
        let mut t = PrefixTable::new();
        t.insert(p("fd77::/64"), 4);
        t.insert(p("10.0.0.0/8"), 2);
        t.insert(p("::/0"), 5);
        t.insert(p("10.77.0.2/32"), 1);
        t.insert(p("0.0.0.0/0"), 3);
        let got: Vec<_> = t.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let want = [
            ("10.77.0.2/32", 1),
            ("10.0.0.0/8", 2),
            ("0.0.0.0/0", 3),
            ("fd77::/64", 4),
            ("::/0", 5),
        ];
        assert_eq!(got, want.map(|(k, v)| (k.to_string(), v)));
        assert!(format!("{t:?}").starts_with("{IpPrefix { addr: 10.77.0.2, len: 32 }: 1"));
    }

    #[test]
    fn many_host_routes() {
        let mut t = PrefixTable::new();
        for i in 0..5000u32 {
            let addr = IpAddr::V4(Ipv4Addr::from(0x0a4d_0000 + i));
            assert_eq!(t.insert(IpPrefix::from(addr), i), None);
        }
        t.insert(p("10.77.0.0/16"), u32::MAX);
        for i in 0..5000u32 {
            let addr = IpAddr::V4(Ipv4Addr::from(0x0a4d_0000 + i));
            assert_eq!(t.lookup(addr), Some((IpPrefix::from(addr), &i)));
        }
        assert_eq!(t.lookup(ip("10.77.255.1")).map(|(_, v)| *v), Some(u32::MAX));
    }

    #[test]
    fn len_set_descends() {
        let mut s = LenSet::default();
        for len in [0, 1, 63, 64, 65, 127, 128, 32] {
            s.insert(len);
        }
        s.remove(1);
        assert_eq!(
            s.descending().collect::<Vec<_>>(),
            [128, 127, 65, 64, 63, 32, 0]
        );
    }

    /// Prefixes that overlap often: a few base addresses, any length.
    fn prefix() -> impl Strategy<Value = IpPrefix> {
        let v4 = (
            prop::sample::select(vec![0x0a4d_0000u32, 0x0a4d_0102, 0xc612_0000, 0]),
            any::<u16>(),
            0u8..=32,
        )
            .prop_map(|(base, low, len)| {
                IpPrefix::new(
                    IpAddr::V4(Ipv4Addr::from(base ^ u32::from(low & 0x0f0f))),
                    len,
                )
                .unwrap()
            });
        let v6 = (
            prop::sample::select(vec![0xfd77u128 << 112, (0x2001_0db8u128 << 96) | 1]),
            any::<u64>(),
            0u8..=128,
        )
            .prop_map(|(base, low, len)| {
                IpPrefix::new(
                    IpAddr::V6(Ipv6Addr::from(
                        base ^ u128::from(low & 0xff00_0000_0000_00ff),
                    )),
                    len,
                )
                .unwrap()
            });
        prop_oneof![v4, v6]
    }

    /// Addresses near the prefixes above.
    fn address() -> impl Strategy<Value = IpAddr> {
        prefix().prop_flat_map(|pfx| {
            any::<u128>().prop_map(move |noise| match pfx.addr() {
                IpAddr::V4(a) => {
                    IpAddr::V4(Ipv4Addr::from(u32::from(a) ^ (noise as u32 & 0x0303_0303)))
                }
                IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(
                    u128::from(a) ^ (noise & 0x0303_0000_0000_0303),
                )),
            })
        })
    }

    proptest! {
        #[test]
        fn matches_linear_scan(
            ops in proptest::collection::vec((prefix(), any::<bool>()), 0..60),
            probes in proptest::collection::vec(address(), 1..60),
        ) {
            let mut t = PrefixTable::new();
            let mut naive: Vec<(IpPrefix, usize)> = Vec::new();
            for (i, (pfx, insert)) in ops.into_iter().enumerate() {
                let pos = naive.iter().position(|(k, _)| *k == pfx);
                if insert {
                    let old = pos.map(|j| std::mem::replace(&mut naive[j].1, i));
                    if pos.is_none() {
                        naive.push((pfx, i));
                    }
                    prop_assert_eq!(t.insert(pfx, i), old);
                } else {
                    let old = pos.map(|j| naive.swap_remove(j).1);
                    prop_assert_eq!(t.remove(&pfx), old);
                }
                prop_assert_eq!(t.get(&pfx), naive.iter().find(|(k, _)| *k == pfx).map(|(_, v)| v));
            }
            prop_assert_eq!(t.len(), naive.len());
            let mut listed: Vec<_> = t.iter().map(|(k, v)| (k, *v)).collect();
            listed.sort();
            naive.sort();
            prop_assert_eq!(&listed, &naive);
            for addr in probes {
                let want = naive
                    .iter()
                    .filter(|(k, _)| k.contains(addr))
                    .max_by_key(|(k, _)| k.prefix_len())
                    .map(|(k, v)| (*k, v));
                prop_assert_eq!(t.lookup(addr), want);
            }
        }

        #[test]
        fn display_round_trips(pfx in prefix()) {
            prop_assert_eq!(pfx.to_string().parse::<IpPrefix>(), Ok(pfx));
            prop_assert!(pfx.contains(pfx.addr()));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,50}") {
            let _ = s.parse::<IpPrefix>();
        }
    }
}
