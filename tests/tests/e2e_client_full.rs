//! End-to-end tests of `grelay`'s full-tunnel mode: nothing leaves the laptop's physical
//! link except the encrypted UDP flow to the gateway — not traffic to the gateway's own
//! address (TunnelCrack "ServerIP"), not traffic a DHCP-pushed route tries to pull out
//! (TunnelVision), not IPv6 when the tunnel carries only IPv4, not a socket bound to the
//! physical interface, and nothing while the gateway is down. After `kill -9` the leftovers
//! keep failing closed until the next `up` or a `down` removes them.
//!
//! Topology and binaries: [`Scenario::home_setup`] (a laptop behind a home NAT, the gateway,
//! the game server behind it). Needs root and the harness's packages; every wait is bounded.

use std::net::IpAddr;
use std::time::Duration;

use grelay_tests::netns::Capture;
use grelay_tests::scenario::{CLIENT_TUN as TUN, ClientNode, Scenario, succeeds};

/// The client's kill-switch table.
const NFT_TABLE: &str = "grelay_client_grelay0";

/// One `ping -c 1` with a one-second wait; false for no answer and for local errors
/// (network unreachable, packet dropped by the firewall).
fn ping(laptop: &ClientNode, args: &[&str]) -> bool {
    let mut all = vec!["ping", "-n", "-c", "1", "-W", "1"];
    all.extend_from_slice(args);
    succeeds(laptop.ns(), &all)
}

/// The home scenario with the laptop in full-tunnel mode (no prefixes, `dns` as given), and
/// the gateway started with or without its IPv6 pool.
fn full_tunnel_home(label: &str, ipv6: bool, dns: &[&str]) -> Scenario {
    let mut s = Scenario::home_setup(label).unwrap();
    if !ipv6 {
        s.gateway.config_mut().ipv6_pool = Some(String::new());
    }
    s.gateway.start().unwrap();
    let config = s.client_mut("laptop").config_mut();
    config.prefixes.clear();
    config.full_tunnel = true;
    config.dns = dns.iter().map(|d| (*d).to_owned()).collect();
    s
}

#[test]
fn full_tunnel_leaks_nothing() {
    let mut s = full_tunnel_home("client-full", false, &["10.77.0.1"]);
    {
        let ns = s.client("laptop").ns();
        // A strict reverse-path filter: replies to grelay's socket must still get in.
        ns.sysctl("net.ipv4.conf.all.rp_filter", "1").unwrap();
        ns.sysctl("net.ipv4.conf.eth0.rp_filter", "1").unwrap();
    }
    s.client_mut("laptop").up().unwrap();
    let client = s.client("laptop");
    let ns = client.ns();
    let net = client.net_view();
    for expected in [
        "default dev grelay0",
        "unreachable default",
        "10.77.0.1 dev grelay0",
    ] {
        assert!(net.table.contains(expected), "no {expected:?}: {net:?}");
    }
    assert!(
        !net.table
            .contains("default dev grelay0 proto static metric 10 pref"),
        "IPv6 must not be tunnelled when the gateway assigned only IPv4: {net:?}"
    );
    assert!(net.nft.contains(NFT_TABLE), "{net:?}");

    let laptop_v4 = client.host().v4().to_string();
    let gateway_v4 = s.gateway.host().v4().to_string();
    let capture =
        Capture::start(ns, client.host().iface(), "", s.scratch.file("eth0.pcap")).unwrap();
    let game = s.game.host().v4().to_string();
    assert!(
        ping(client, &[&game]),
        "game through the tunnel: {}",
        client.log()
    );
    assert!(ping(client, &["198.18.1.1"]), "internet through the tunnel");
    // ServerIP: the gateway's own address is reached through the tunnel, not around it.
    ping(client, &[&gateway_v4]);
    // TunnelVision: DHCP-pushed routes in `main` cannot pull traffic out of the tunnel.
    ns.run(&["ip", "route", "add", "10.99.1.0/24", "via", "10.200.1.1"])
        .unwrap();
    ns.run(&["ip", "route", "add", "198.18.1.1/32", "via", "10.200.1.1"])
        .unwrap();
    assert!(ping(client, &[&game]), "game still through the tunnel");
    assert!(
        ping(client, &["198.18.1.1"]),
        "internet still through the tunnel"
    );
    // No IPv6 while the tunnel carries only IPv4; no way around by binding to eth0.
    assert!(
        !ping(client, &["-6", &s.gateway.host().v6().to_string()]),
        "IPv6 leaked"
    );
    assert!(
        !ping(client, &["-I", "eth0", "198.18.1.1"]),
        "bound socket leaked"
    );
    // The gateway goes away: tunnelled traffic is dropped, not sent in clear.
    s.gateway.stop().unwrap();
    let client = s.client("laptop");
    assert!(!ping(client, &[&game]));
    assert!(!ping(client, &["198.18.1.1"]));
    std::thread::sleep(Duration::from_secs(6)); // a handshake retry happens meanwhile
    assert!(!ping(client, &["-W", "2", "198.18.1.1"]));
    let rows = capture
        .stop()
        .unwrap()
        .read_fields(&[
            "ip.src",
            "ip.dst",
            "ip.proto",
            "udp.dstport",
            "ipv6.src",
            "icmpv6.type",
        ])
        .unwrap();
    let mut tunnel = 0;
    for r in &rows {
        if r[0] == laptop_v4 {
            assert!(
                r[1] == gateway_v4 && r[2] == "17" && r[3] == "4747",
                "leak on the physical link: {r:?}\nall: {rows:?}"
            );
            tunnel += 1;
        }
        if !r[4].is_empty() && r[4] != "::" && !r[4].starts_with("fe80") {
            let nd = ["133", "134", "135", "136", "143"].contains(&r[5].as_str());
            assert!(nd, "IPv6 leak: {r:?}");
        }
    }
    assert!(tunnel > 5, "tunnel flow not seen: {rows:?}");

    let out = client.grelay_ok(&["down"]).unwrap();
    assert!(out.contains("grelay0 is down"), "{out}");
    let process = client.process().unwrap();
    assert!(process.wait_exit(Duration::from_secs(10)).is_some());
    let net = client.net_view();
    assert!(net.is_clean(), "left behind after down: {net:?}");
    assert!(
        std::fs::read_to_string(client.run_dir().join("grelay0.state")).is_err(),
        "state file left behind"
    );
    // Back to normal: the internet is reachable in clear again.
    let router: IpAddr = "198.18.1.1".parse().unwrap();
    assert!(client.ns().ping(router, Duration::from_secs(3)).unwrap());
}

#[test]
fn leftovers_of_a_killed_client_fail_closed_and_are_cleaned() {
    let mut s = full_tunnel_home("client-kill9", true, &[]);
    s.client_mut("laptop").up().unwrap();
    let client = s.client("laptop");
    let game = s.game.host().v4().to_string();
    assert!(ping(client, &[&game]));
    client.signal(libc::SIGKILL).unwrap();
    let process = client.process().unwrap();
    assert!(process.wait_exit(Duration::from_secs(10)).is_some());
    let net = client.net_view();
    assert!(
        net.rules.contains("lookup 4747") && net.nft.contains(NFT_TABLE),
        "the kill switch must stay after a crash: {net:?}"
    );
    assert!(!net.links.contains(&format!(" {TUN}:")), "{net:?}");
    assert!(
        !ping(client, &["198.18.1.1"]),
        "fail closed while grelay is dead"
    );
    let out = client.grelay(&["status"]).unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("leftovers of a crashed run"), "{err}");

    // The next `up` removes the leftovers first.
    s.client_mut("laptop").up().unwrap();
    let again = s.client("laptop");
    assert!(
        again.log().contains("left installed"),
        "no cleanup logged: {}",
        again.log()
    );
    assert!(ping(again, &[&game]), "{}", again.log());
    again.signal(libc::SIGKILL).unwrap();
    let process = again.process().unwrap();
    assert!(process.wait_exit(Duration::from_secs(10)).is_some());

    // `down` with no process removes them too.
    let out = again.grelay_ok(&["down"]).unwrap();
    assert!(out.contains("removed what a crashed"), "{out}");
    let net = again.net_view();
    assert!(net.is_clean(), "left behind: {net:?}");
    assert!(
        ping(again, &["198.18.1.1"]),
        "connectivity restored after down"
    );
}
