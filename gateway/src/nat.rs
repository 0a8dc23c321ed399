//! Egress: IP forwarding and the gateway's own nftables table for NAT.
//!
//! The gateway shells out to `nft -f -` (the nftables package's own tool, one atomic
//! transaction per call) rather than speaking nf_tables netlink itself: the rules are few,
//! written once at start and removed at exit, and `nft` is what operators read and debug with
//! (`nft list table inet grelay_gw_…`). It only ever touches its own table,
//! `table inet grelay_gw_<interface>`, named after the TUN so two gateways on one host (two
//! TUNs) keep apart:
//!
//! ```text
//! table inet grelay_gw_grelay_gw {
//!   chain postrouting {
//!     type nat hook postrouting priority srcnat; policy accept;
//!     ip saddr 10.77.0.0/16 oifname "eth0" masquerade      # or: oifname != "grelay-gw"
//!     ip6 saddr fd77::/64 oifname "eth0" masquerade
//!   }
//! }
//! ```
//!
//! Installing first adds and deletes the table in the same transaction, which replaces a stale
//! copy left by a gateway that crashed; [`NatTable`] deletes the table when dropped.

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::pool::Pool;

/// Prefix of the gateway's table names.
pub const TABLE_PREFIX: &str = "grelay_gw_";

/// The table name for the gateway whose TUN is `interface`.
pub fn table_name(interface: &str) -> String {
    let suffix: String = interface
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{TABLE_PREFIX}{suffix}")
}

/// The `nft -f` script that (re)creates the table: masquerade traffic from the pools that
/// leaves through `out_interface`, or through any interface but `tun` when none is given.
pub fn ruleset(table: &str, pools: &[Pool], tun: &str, out_interface: Option<&str>) -> String {
    let out = match out_interface {
        Some(o) => format!("oifname \"{o}\""),
        None => format!("oifname != \"{tun}\""),
    };
    let mut rules = String::new();
    for pool in pools {
        let family = if pool.prefix().addr().is_ipv4() {
            "ip"
        } else {
            "ip6"
        };
        rules.push_str(&format!(
            "    {family} saddr {} {out} masquerade\n",
            pool.prefix()
        ));
    }
    format!(
        "add table inet {table}\ndelete table inet {table}\ntable inet {table} {{\n  \
         chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n\
         {rules}  }}\n}}\n"
    )
}

/// The gateway's NAT table while it is installed; dropping it removes the table.
#[derive(Debug)]
pub struct NatTable {
    name: String,
    installed: bool,
}

impl NatTable {
    /// Installs (or replaces) the table for the pools.
    pub fn install(pools: &[Pool], tun: &str, out_interface: Option<&str>) -> Result<NatTable> {
        let name = table_name(tun);
        nft(&ruleset(&name, pools, tun, out_interface))
            .with_context(|| format!("installing nftables table inet {name}"))?;
        Ok(NatTable {
            name,
            installed: true,
        })
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Deletes the table now.
    pub fn remove(&mut self) -> Result<()> {
        if !std::mem::take(&mut self.installed) {
            return Ok(());
        }
        nft(&format!("delete table inet {}\n", self.name))
            .with_context(|| format!("deleting nftables table inet {}", self.name))
    }
}

impl Drop for NatTable {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            tracing::warn!("{e:#}");
        }
    }
}

/// Runs `nft -f -` with `script` on standard input.
fn nft(script: &str) -> Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running nft (install the nftables package)")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .context("writing rules to nft")?;
    }
    let out = child.wait_with_output().context("waiting for nft")?;
    if !out.status.success() {
        bail!(
            "nft failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Turns on IPv4 forwarding, and IPv6 forwarding when `ipv6`, by writing `/proc/sys`
/// directly. Left on at exit: other software on the host may rely on it by then.
///
/// Note that `net.ipv6.conf.all.forwarding = 1` makes the host stop accepting router
/// advertisements on interfaces with `accept_ra = 1` (the default): a host that configures
/// its own IPv6 uplink by SLAAC needs `accept_ra = 2` there.
pub fn enable_forwarding(ipv6: bool) -> Result<()> {
    let mut keys = vec!["net/ipv4/ip_forward"];
    if ipv6 {
        keys.push("net/ipv6/conf/all/forwarding");
    }
    for key in keys {
        let path = format!("/proc/sys/{key}");
        let before = std::fs::read_to_string(&path).unwrap_or_default();
        if before.trim() != "1" {
            std::fs::write(&path, "1\n").with_context(|| format!("enabling forwarding: {path}"))?;
            tracing::info!("set {} = 1", key.replace('/', "."));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pools() -> Vec<Pool> {
        ["10.77.0.0/16", "fd77::/64"]
            .iter()
            .map(|p| Pool::new(p.parse().unwrap()).unwrap())
            .collect()
    }

    #[test]
    fn table_names_are_nft_identifiers() {
        assert_eq!(table_name("grelay-gw"), "grelay_gw_grelay_gw");
        assert_eq!(table_name("gw.0"), "grelay_gw_gw_0");
    }

    #[test]
    fn ruleset_replaces_the_table_and_masquerades_each_pool() {
        let s = ruleset("grelay_gw_x", &pools(), "x", Some("eth0"));
        assert!(s.starts_with("add table inet grelay_gw_x\ndelete table inet grelay_gw_x\n"));
        assert!(s.contains("ip saddr 10.77.0.0/16 oifname \"eth0\" masquerade\n"));
        assert!(s.contains("ip6 saddr fd77::/64 oifname \"eth0\" masquerade\n"));
        let s = ruleset("grelay_gw_x", &pools()[..1], "x", None);
        assert!(s.contains("ip saddr 10.77.0.0/16 oifname != \"x\" masquerade\n"));
        assert!(!s.contains("ip6"));
    }
}
