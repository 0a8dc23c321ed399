use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;

fn settings(full_tunnel: bool) -> Settings {
    Settings {
        interface: "grelay0".into(),
        full_tunnel,
        fwmark: 4747,
        table: 4747,
        prefixes: ["203.0.113.0/24", "198.18.0.0/15", "2001:db8:42::/48"]
            .iter()
            .map(|p| p.parse().unwrap())
            .collect(),
        exclude: vec!["192.0.2.0/24".parse().unwrap()],
        dns: vec!["10.77.0.1".parse().unwrap(), "fd77::1".parse().unwrap()],
    }
}

fn tun() -> Device {
    Device {
        index: 9,
        name: "grelay0".into(),
    }
}

fn v4_only() -> AddressAssignment {
    AddressAssignment {
        ipv4: Some((Ipv4Addr::new(10, 77, 0, 2), 16)),
        ipv6: None,
        mtu: 0,
    }
}

fn described(items: &[Item]) -> Vec<String> {
    items.iter().map(Item::describe).collect()
}

#[test]
fn split_mode_base_is_rules_and_exclusions() {
    assert_eq!(
        described(&base(&settings(false))),
        [
            "rule 4747: not fwmark 0x128b lookup 4747",
            "rule (IPv6) 4747: not fwmark 0x128b lookup 4747",
            "route 192.0.2.0/24 throw table 4747 metric 10",
        ]
    );
}

#[test]
fn full_tunnel_base_fails_closed() {
    assert_eq!(
        described(&base(&settings(true))),
        [
            "rule 4747: not fwmark 0x128b lookup 4747",
            "rule (IPv6) 4747: not fwmark 0x128b lookup 4747",
            "route 0.0.0.0/0 unreachable table 4747 metric 2147483647",
            "route ::/0 unreachable table 4747 metric 2147483647",
            "route 192.0.2.0/24 throw table 4747 metric 10",
        ]
    );
}

#[test]
fn split_mode_routes_only_assigned_families() {
    let (items, warnings) = assigned(&settings(false), &tun(), &v4_only());
    assert_eq!(
        described(&items),
        [
            "address 10.77.0.2/16 on grelay0",
            "route 203.0.113.0/24 dev grelay0 table 4747 metric 10",
            "route 198.18.0.0/15 dev grelay0 table 4747 metric 10",
        ]
    );
    assert_eq!(
        warnings,
        ["1 IPv6 game prefixes are not tunnelled: the gateway assigned no IPv6 address"]
    );
}

#[test]
fn full_tunnel_with_ipv4_only_keeps_ipv6_unreachable() {
    let (items, warnings) = assigned(&settings(true), &tun(), &v4_only());
    assert_eq!(
        described(&items),
        [
            "address 10.77.0.2/16 on grelay0",
            "route 0.0.0.0/0 dev grelay0 table 4747 metric 10",
            "route 10.77.0.1/32 dev grelay0 table 4747 metric 10",
        ]
    );
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].starts_with("dns server fd77::1 is unreachable"));
}

#[test]
fn full_tunnel_dual_stack() {
    let a = AddressAssignment {
        ipv6: Some(("fd77::2".parse::<Ipv6Addr>().unwrap(), 64)),
        ..v4_only()
    };
    let (items, warnings) = assigned(&settings(true), &tun(), &a);
    assert_eq!(
        described(&items),
        [
            "address 10.77.0.2/16 on grelay0",
            "address fd77::2/64 on grelay0",
            "route 0.0.0.0/0 dev grelay0 table 4747 metric 10",
            "route ::/0 dev grelay0 table 4747 metric 10",
            "route 10.77.0.1/32 dev grelay0 table 4747 metric 10",
            "route fd77::1/128 dev grelay0 table 4747 metric 10",
        ]
    );
    assert!(warnings.is_empty());
}

#[test]
fn kill_switch_ruleset() {
    let mut s = settings(true);
    s.exclude.push("2001:db8:99::/48".parse().unwrap());
    let rules = nft_ruleset(&s);
    for expected in [
        "table inet grelay_client_grelay0\ndelete table inet grelay_client_grelay0\n",
        "type filter hook output priority filter; policy accept;",
        "oifname \"grelay0\" accept",
        "meta mark 0x128b accept",
        "ip daddr { 192.0.2.0/24 } accept",
        "ip6 daddr { 2001:db8:99::/48 } accept",
        "counter drop comment \"grelay kill switch\"",
        "meta mark 0x128b ct mark set meta mark",
        "ct mark 0x128b meta mark set ct mark",
    ] {
        assert!(rules.contains(expected), "missing {expected:?} in\n{rules}");
    }
    s.exclude.clear();
    assert!(!nft_ruleset(&s).contains("daddr"));
    assert_eq!(nft_table("gr-0.x"), "grelay_client_gr_0_x");
}
