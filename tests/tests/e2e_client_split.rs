//! End-to-end tests of `grelay` in split-tunnel mode with the real gateway: handshake,
//! ping and a UDP echo to a game server reachable only through the tunnel, `grelay status`,
//! TCP MSS clamping seen on the wire, and `grelay down` removing everything.
//!
//! Topology and binaries: [`Scenario::home_setup`] (a laptop behind a home NAT, the gateway,
//! the game server behind it). Needs root and the harness's packages (plus `iperf3` as a TCP
//! listener); every wait is bounded.

use std::net::IpAddr;
use std::time::Duration;

use grelay_tests::netns::{Capture, wait_until};
use grelay_tests::scenario::{CLIENT_TUN as TUN, Scenario, succeeds, udp_probe};

const TCP_PORT: &str = "5201";

#[test]
fn split_tunnel_carries_game_traffic_and_goes_down_cleanly() {
    let mut s = Scenario::home_setup("client-split").unwrap();
    s.gateway.start().unwrap();
    let game: IpAddr = s.game.host().v4().into();
    let laptop = s.client("laptop");
    assert!(
        !laptop.ns().ping(game, Duration::from_secs(1)).unwrap(),
        "the game server must be unreachable without the tunnel"
    );
    let out = laptop.grelay(&["down"]).unwrap();
    assert!(!out.status.success(), "down with nothing up must fail");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not up"));

    // The scenario's client routes the game's network: prefixes = ["10.99.1.0/24"].
    assert_eq!(laptop.config().prefixes, ["10.99.1.0/24"]);
    s.client_mut("laptop").up().unwrap();
    let laptop = s.client("laptop");
    let net = laptop.net_view();
    assert!(
        net.rules.contains("not from all fwmark 0x128b lookup 4747"),
        "{net:?}"
    );
    assert!(net.table.contains("10.99.1.0/24 dev grelay0"), "{net:?}");

    let capture = Capture::start(
        laptop.ns(),
        laptop.host().iface(),
        "",
        s.scratch.file("laptop-eth0.pcap"),
    )
    .unwrap();
    assert!(
        laptop.ns().ping(game, Duration::from_secs(5)).unwrap(),
        "ping through the tunnel; client log:\n{}",
        laptop.log()
    );
    let seen = udp_probe(laptop.ns(), s.game.udp_addr())
        .unwrap()
        .expect("UDP echo through the tunnel");
    assert_eq!(
        seen.ip(),
        IpAddr::from(s.game.host().router_v4()),
        "the game saw {seen}, not the gateway's NAT address"
    );
    let rows = capture
        .stop()
        .unwrap()
        .read_fields(&["ip.src", "ip.dst", "udp.dstport", "udp.srcport"])
        .unwrap();
    let game_s = game.to_string();
    assert!(
        rows.iter().all(|r| r[0] != game_s && r[1] != game_s),
        "game traffic in clear on the laptop's link: {rows:?}"
    );
    let gateway_s = s.gateway.host().v4().to_string();
    assert!(
        rows.iter().any(|r| r[1] == gateway_s && r[2] == "4747"),
        "no tunnel datagrams seen: {rows:?}"
    );

    // Status: the session, addresses, traffic, and an RTT once a probe came back.
    let has_rtt = wait_until(Duration::from_secs(8), || {
        !laptop
            .grelay_ok(&["status"])
            .unwrap()
            .contains("rtt:            -")
    });
    let text = laptop.grelay_ok(&["status", "--interface", TUN]).unwrap();
    assert!(has_rtt, "no RTT measured: {text}");
    for expected in [
        "interface: grelay0",
        "state:          connected",
        "gateway:        198.18.1.2:4747 (udp)",
        "mode:           split tunnel, 1 prefix\n",
        "address:        10.77.0.",
        "handshake:      ",
        "(1 completed)",
        "transfer:       ",
        "loss:           ",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    let json = laptop.grelay_ok(&["status", "--json"]).unwrap();
    for expected in [
        "\"state\": \"connected\"",
        "\"transport\": \"udp\"",
        "\"ipv6\": \"fd77::",
        "\"handshakes\": 1",
    ] {
        assert!(json.contains(expected), "missing {expected:?} in:\n{json}");
    }

    // `down` must print "grelay0 is down" and `up` must exit successfully.
    let out = s.client_mut("laptop").down().unwrap();
    assert!(out.contains("grelay0 is down"), "{out}");
    let laptop = s.client("laptop");
    let net = laptop.net_view();
    assert!(net.is_clean(), "left behind after down: {net:?}");
    let run = laptop.run_dir();
    assert!(!run.join("grelay0.sock").exists() && !run.join("grelay0.state").exists());
    assert!(!laptop.ns().ping(game, Duration::from_secs(1)).unwrap());
    assert!(
        laptop
            .log()
            .contains("handshake with 198.18.1.2:4747 completed")
    );
}

#[test]
fn tcp_mss_is_clamped_both_ways() {
    let mut s = Scenario::home_setup("client-mss").unwrap();
    s.gateway.config_mut().ipv6_pool = Some(String::new());
    s.gateway.start().unwrap();
    let _listener = s
        .game
        .ns()
        .spawn(
            &["iperf3", "-s", "-p", TCP_PORT],
            s.scratch.file("iperf3.log"),
        )
        .expect("iperf3 -s (package iperf3)");
    // Tunnel MTU 1300: MSS 1260, below the gateway's own clamp (1380 for its MTU of 1420),
    // so what the game server sees is the client's doing.
    s.client_mut("laptop").config_mut().mtu = Some(1300);
    s.client_mut("laptop").up().unwrap();
    let client = s.client("laptop");
    // Make the laptop's kernel announce MSS 1460 through the tunnel, as a host behind the
    // laptop (or a VM) would, so that the outgoing clamp has something to do.
    client
        .ns()
        .run(&[
            "ip",
            "route",
            "replace",
            "10.99.1.0/24",
            "dev",
            TUN,
            "table",
            "4747",
            "metric",
            "10",
            "proto",
            "static",
            "advmss",
            "1460",
        ])
        .unwrap();
    let filter = format!("tcp port {TCP_PORT} and tcp[tcpflags] & tcp-syn != 0");
    let at_game = Capture::start(
        s.game.ns(),
        s.game.host().iface(),
        &filter,
        s.scratch.file("game.pcap"),
    )
    .unwrap();
    let at_tun = Capture::start(client.ns(), TUN, &filter, s.scratch.file("tun.pcap")).unwrap();
    let wait_listener = wait_until(Duration::from_secs(10), || {
        succeeds(
            client.ns(),
            &[
                "timeout",
                "5",
                "bash",
                "-c",
                &format!("exec 3<>/dev/tcp/{}/{TCP_PORT}", s.game.host().v4()),
            ],
        )
    });
    assert!(
        wait_listener,
        "no TCP connection; client log:\n{}",
        client.log()
    );
    let fields = ["tcp.flags.ack", "tcp.options.mss_val"];
    let game_rows = at_game.stop().unwrap().read_fields(&fields).unwrap();
    let tun_rows = at_tun.stop().unwrap().read_fields(&fields).unwrap();
    let mss = |rows: &[Vec<String>], ack: &str| -> Vec<String> {
        rows.iter()
            .filter(|r| r[0] == ack)
            .map(|r| r[1].clone())
            .collect()
    };
    // Outgoing: the kernel wrote 1460 into the TUN; the client clamped it to 1260 before
    // encapsulating (the gateway alone would have left 1380).
    assert!(
        mss(&tun_rows, "0").iter().all(|m| m == "1460"),
        "{tun_rows:?}"
    );
    let syn_at_game = mss(&game_rows, "0");
    assert!(
        !syn_at_game.is_empty(),
        "no SYN reached the game: {game_rows:?}"
    );
    assert!(
        syn_at_game.iter().all(|m| m == "1260"),
        "SYN at the game: {game_rows:?}"
    );
    // Incoming: the game announced 1460; what the client wrote to the TUN says 1260.
    assert!(
        mss(&game_rows, "1").iter().all(|m| m == "1460"),
        "{game_rows:?}"
    );
    let syn_ack_at_tun = mss(&tun_rows, "1");
    assert!(
        !syn_ack_at_tun.is_empty(),
        "no SYN-ACK in the TUN: {tun_rows:?}"
    );
    assert!(
        syn_ack_at_tun.iter().all(|m| m == "1260"),
        "SYN-ACK in the TUN: {tun_rows:?}"
    );
    client.grelay_ok(&["down"]).unwrap();
}
