//! Faults injected with nftables: UDP blocks and random loss.
//!
//! The kernel here has no netem, so loss is `numgen random mod 100 < N drop` in netdev
//! ingress and egress chains bound to one interface: each direction through that interface
//! loses about `N`% of its packets (a ping's round trip survives with `(1 - N/100)²`).
//! UDP blocks live in their own `inet grt_block` table so they can be lifted in one step
//! without touching a NAT's rules.

use super::error::{Error, Result};
use super::link::MAX_IFNAME;
use super::namespace::Namespace;

const BLOCK_TABLE: &str = "inet grt_block";

impl Namespace {
    /// Drops UDP whose source or destination port is `port` (every UDP packet for `None`) that
    /// is forwarded by, sent from or delivered to this namespace. Blocks accumulate until
    /// [`unblock_udp`](Self::unblock_udp).
    pub fn block_udp(&self, port: Option<u16>) -> Result<()> {
        let mut rules = format!("add table {BLOCK_TABLE}\n");
        for hook in ["forward", "input", "output"] {
            rules += &format!(
                "add chain {BLOCK_TABLE} {hook} {{ type filter hook {hook} priority -10; policy accept; }}\n"
            );
            match port {
                Some(p) => {
                    rules += &format!("add rule {BLOCK_TABLE} {hook} udp dport {p} drop\n");
                    rules += &format!("add rule {BLOCK_TABLE} {hook} udp sport {p} drop\n");
                }
                None => rules += &format!("add rule {BLOCK_TABLE} {hook} meta l4proto udp drop\n"),
            }
        }
        self.nft(&rules)
    }

    /// Lifts every block added by [`block_udp`](Self::block_udp); a no-op when there is none.
    pub fn unblock_udp(&self) -> Result<()> {
        self.nft(&format!(
            "add table {BLOCK_TABLE}\ndelete table {BLOCK_TABLE}\n"
        ))
    }

    /// Makes interface `iface` drop `percent`% of its packets at random, in each direction,
    /// replacing any loss set on it before.
    pub fn set_loss(&self, iface: &str, percent: u8) -> Result<()> {
        if percent > 100 {
            return Err(Error::Invalid(format!("loss {percent}% is over 100%")));
        }
        let table = loss_table(iface)?;
        let mut rules = format!("add table {table}\ndelete table {table}\ntable {table} {{\n");
        for hook in ["ingress", "egress"] {
            rules += &format!(
                "  chain {hook} {{\n    type filter hook {hook} device \"{iface}\" priority 0;\n    numgen random mod 100 < {percent} drop\n  }}\n"
            );
        }
        rules += "}\n";
        self.nft(&rules)
    }

    /// Removes the loss set on `iface` by [`set_loss`](Self::set_loss); a no-op when there is none.
    pub fn clear_loss(&self, iface: &str) -> Result<()> {
        let table = loss_table(iface)?;
        self.nft(&format!("add table {table}\ndelete table {table}\n"))
    }
}

/// The netdev table holding the loss chains of `iface`.
fn loss_table(iface: &str) -> Result<String> {
    if iface.is_empty()
        || iface.len() > MAX_IFNAME
        || !iface
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(Error::Invalid(format!(
            "unsupported interface name {iface:?}"
        )));
    }
    Ok(format!("netdev grt_loss_{}", iface.replace('-', "_")))
}
