//! What `up` installs, decided from the configuration alone (no system calls here, so every
//! decision is unit-tested).
//!
//! # Policy routing (both modes)
//!
//! ```text
//! priority 0      lookup local                       (the kernel's own)
//! priority 4747   not fwmark MARK lookup TABLE       ← grelay, IPv4 and IPv6
//! priority 32766  lookup main
//! ```
//!
//! Every packet except those of grelay's own UDP socket (which carries `SO_MARK` = MARK)
//! consults the tunnel's table first. Split mode puts the game prefixes there; full-tunnel
//! mode puts default routes there. A miss falls through to `main`. Because the tunnel's table
//! is looked up *before* `main`, a more specific route that DHCP pushes into `main` (option
//! 121, TunnelVision) cannot pull tunnelled traffic out of the tunnel; because only the marked
//! socket skips the table, no route exception for the gateway's address exists that other
//! traffic could use (TunnelCrack "ServerIP").
//!
//! # Full tunnel, before the gateway answered (`base`)
//!
//! `unreachable default` (IPv4 and IPv6) at a very high metric in the tunnel's table, plus
//! the nftables kill switch ([`nft_ruleset`]). Until addresses are assigned nothing leaves in
//! clear: senders get `ENETUNREACH`. After a crash these stay (fail closed) until `grelay
//! down` or the next `grelay up` removes them.
//!
//! # After the assignment (`assigned`)
//!
//! Addresses on the TUN; in full-tunnel mode a default route via the TUN for each family the
//! gateway assigned (an unassigned family keeps only `unreachable`: IPv6 is blocked when the
//! tunnel carries only IPv4) and host routes for the DNS servers; in split mode one route per
//! game prefix of an assigned family.

use std::net::IpAddr;

use grelay_proto::router::IpPrefix;
use grelay_proto::wire::control::AddressAssignment;

use super::item::{Device, Item, Target};
use crate::config::Config;

/// Priority of grelay's policy rules.
pub const RULE_PRIORITY: u32 = 4747;
/// Metric of routes into the TUN (and of throw routes).
pub const TUNNEL_METRIC: u32 = 10;
/// Metric of the kill switch's `unreachable` fallbacks: below everything else.
pub const FALLBACK_METRIC: u32 = 0x7fff_ffff;

/// The routing-relevant part of the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// TUN name.
    pub interface: String,
    /// Full-tunnel mode.
    pub full_tunnel: bool,
    /// Mark of grelay's socket.
    pub fwmark: u32,
    /// The tunnel's table.
    pub table: u32,
    /// Game prefixes (split mode).
    pub prefixes: Vec<IpPrefix>,
    /// Prefixes kept out of the tunnel.
    pub exclude: Vec<IpPrefix>,
    /// DNS servers (full-tunnel mode).
    pub dns: Vec<IpAddr>,
}

impl Settings {
    /// Takes the settings from a checked configuration.
    pub fn from_config(config: &Config) -> Self {
        Self {
            interface: config.interface.name.clone(),
            full_tunnel: config.routes.full_tunnel,
            fwmark: config.interface.fwmark,
            table: config.interface.table,
            prefixes: config.routes.prefixes.iter().map(|p| p.prefix).collect(),
            exclude: config.routes.exclude.clone(),
            dns: config.interface.dns.clone(),
        }
    }

    fn route(&self, prefix: IpPrefix, metric: u32, target: Target) -> Item {
        Item::Route {
            prefix: prefix.to_string(),
            table: self.table,
            metric,
            target,
        }
    }
}

fn default_route(ipv6: bool) -> IpPrefix {
    let any: IpAddr = if ipv6 {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    };
    // Invariant: a length of 0 is valid for both families.
    IpPrefix::new(any, 0).unwrap_or_else(|_| IpPrefix::from(any))
}

/// Installed at start, before the handshake: policy rules, exclusions, and in full-tunnel
/// mode the `unreachable` fallbacks. (The kill switch is [`nft_ruleset`].)
pub fn base(s: &Settings) -> Vec<Item> {
    let mut items: Vec<Item> = [false, true]
        .into_iter()
        .map(|ipv6| Item::Rule {
            ipv6,
            priority: RULE_PRIORITY,
            fwmark: s.fwmark,
            table: s.table,
        })
        .collect();
    if s.full_tunnel {
        for ipv6 in [false, true] {
            items.push(s.route(default_route(ipv6), FALLBACK_METRIC, Target::Unreachable));
        }
    }
    for &prefix in &s.exclude {
        items.push(s.route(prefix, TUNNEL_METRIC, Target::Throw));
    }
    items
}

/// Installed once the gateway assigned addresses; also returns warnings about what the
/// assignment leaves out.
pub fn assigned(s: &Settings, tun: &Device, a: &AddressAssignment) -> (Vec<Item>, Vec<String>) {
    let mut items = Vec::new();
    let mut warnings = Vec::new();
    if let Some((address, prefix_len)) = a.ipv4 {
        items.push(Item::Address {
            device: tun.clone(),
            address: address.into(),
            prefix_len,
        });
    }
    if let Some((address, prefix_len)) = a.ipv6 {
        items.push(Item::Address {
            device: tun.clone(),
            address: address.into(),
            prefix_len,
        });
    }
    let carries = |ipv6: bool| {
        if ipv6 {
            a.ipv6.is_some()
        } else {
            a.ipv4.is_some()
        }
    };
    let into_tun = || Target::Device(tun.clone());
    if s.full_tunnel {
        for ipv6 in [false, true] {
            if carries(ipv6) {
                items.push(s.route(default_route(ipv6), TUNNEL_METRIC, into_tun()));
            }
        }
        for &server in &s.dns {
            if carries(server.is_ipv6()) {
                items.push(s.route(IpPrefix::from(server), TUNNEL_METRIC, into_tun()));
            } else {
                warnings.push(format!(
                    "dns server {server} is unreachable: the gateway assigned no address of its \
                     family"
                ));
            }
        }
    } else {
        let (mut skipped, mut family) = (0, "");
        for &prefix in &s.prefixes {
            let ipv6 = prefix.addr().is_ipv6();
            if carries(ipv6) {
                items.push(s.route(prefix, TUNNEL_METRIC, into_tun()));
            } else {
                skipped += 1;
                family = if ipv6 { "IPv6" } else { "IPv4" };
            }
        }
        if skipped > 0 {
            warnings.push(format!(
                "{skipped} {family} game prefixes are not tunnelled: the gateway assigned no \
                 {family} address"
            ));
        }
    }
    (items, warnings)
}

/// The nftables table of `interface`'s kill switch (`table inet grelay_client_<iface>`).
pub fn nft_table(interface: &str) -> String {
    let safe: String = interface
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("grelay_client_{safe}")
}

/// The full-tunnel kill switch, for `nft -f -` (atomic; replaces an older copy of the table).
///
/// Output through any interface other than `lo` and the TUN is dropped unless it is grelay's
/// own marked flow, an excluded prefix, DHCP, or IPv6 neighbour discovery (needed to reach the
/// next hop). The two `mark` chains copy the socket's mark to its conntrack entry and back
/// onto replies, so that a strict reverse-path filter (with `src_valid_mark`, which `up`
/// sets) finds the route the replies came by.
pub fn nft_ruleset(s: &Settings) -> String {
    let table = nft_table(&s.interface);
    let (tun, mark) = (&s.interface, s.fwmark);
    let set = |ipv6: bool| -> String {
        let members: Vec<String> = s
            .exclude
            .iter()
            .filter(|p| p.addr().is_ipv6() == ipv6)
            .map(ToString::to_string)
            .collect();
        members.join(", ")
    };
    let mut exclude = String::new();
    for (family, ipv6) in [("ip", false), ("ip6", true)] {
        let members = set(ipv6);
        if !members.is_empty() {
            exclude.push_str(&format!(
                "\t\t{family} daddr {{ {members} }} accept comment \"exclude\"\n"
            ));
        }
    }
    format!(
        "table inet {table}\n\
         delete table inet {table}\n\
         table inet {table} {{\n\
         \tchain output {{\n\
         \t\ttype filter hook output priority filter; policy accept;\n\
         \t\toifname \"lo\" accept\n\
         \t\toifname \"{tun}\" accept\n\
         \t\tmeta mark {mark:#x} accept comment \"grelay's own UDP flow\"\n\
         {exclude}\
         \t\tudp sport 68 udp dport 67 accept comment \"DHCPv4\"\n\
         \t\tudp sport 546 udp dport 547 accept comment \"DHCPv6\"\n\
         \t\ticmpv6 type {{ nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert }} accept\n\
         \t\tcounter drop comment \"grelay kill switch\"\n\
         \t}}\n\
         \tchain mark_out {{\n\
         \t\ttype route hook output priority mangle; policy accept;\n\
         \t\tmeta mark {mark:#x} ct mark set meta mark\n\
         \t}}\n\
         \tchain mark_in {{\n\
         \t\ttype filter hook prerouting priority mangle; policy accept;\n\
         \t\tct mark {mark:#x} meta mark set ct mark\n\
         \t}}\n\
         }}\n"
    )
}

#[cfg(test)]
mod tests;
