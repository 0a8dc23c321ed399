//! Self-test of the userspace GRE back end (`tests/gre_peer.py`, driven by
//! `grelay_tests::netns::gre_peer`): two namespaces joined by a veth pair, a peer in each, and
//! independent checks — the kernel's ping and TCP through the tunnel, Wireshark's GRE
//! dissector on a capture, and frames crafted with scapy that must be dropped or reflected.
//!
//! Needs root and the Debian packages `python3-scapy`, `tshark`, `iproute2` and
//! `iputils-ping`; fails (does not skip) without them.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use grelay_tests::netns::gre_peer::{Checksum, GreFrame, GreStats, PYTHON};
use grelay_tests::netns::{
    Capture, GrePeer, GrePeerOptions, Namespace, Result, Scratch, add_addr, connect,
};

/// The GRE key used on every test tunnel.
const KEY: u32 = 42;
/// Outer (underlay) addresses of the two ends, on the veth pair.
const A_OUT: &str = "198.18.200.1";
const B_OUT: &str = "198.18.200.2";
/// A second address on A's side, for frames from an unexpected source.
const A_OTHER: &str = "198.18.200.3";
const A_OUT6: &str = "2001:db8:c8::1";
const B_OUT6: &str = "2001:db8:c8::2";
/// Inner (tunnel) addresses: two subnets, one behind each end.
const A_IN: &str = "10.201.1.1";
const B_IN: &str = "10.201.2.1";
const A_IN6: &str = "fd00:201:1::1";
const B_IN6: &str = "fd00:201:2::1";
/// The underlay interface in both namespaces.
const VETH: &str = "veth0";
/// The TCP echo port; its payload is random bytes, so Wireshark is told it is plain data.
const ECHO_PORT: &str = "7000";
const ECHO_AS_DATA: &str = "tcp.port==7000,data";
/// How long the tests wait for counters to settle.
const SETTLE: Duration = Duration::from_secs(5);
/// How long each peer may live (the tests take seconds).
const PEER_LIFETIME: Duration = Duration::from_secs(120);

/// [`KEY`] as Wireshark prints `gre.key`.
fn key_hex() -> String {
    format!("{KEY:#010x}")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("a literal address")
}

/// Two namespaces joined by a veth pair carrying [`A_OUT`]/[`B_OUT`] and
/// [`A_OUT6`]/[`B_OUT6`].
fn pair() -> Result<(Namespace, Namespace)> {
    let a = Namespace::new("gre-a")?;
    let b = Namespace::new("gre-b")?;
    connect(
        &a,
        VETH,
        &format!("{A_OUT}/24"),
        &b,
        VETH,
        &format!("{B_OUT}/24"),
    )?;
    add_addr(&a, VETH, &format!("{A_OUT6}/64"))?;
    add_addr(&b, VETH, &format!("{B_OUT6}/64"))?;
    Ok((a, b))
}

/// A's end of the tunnel: inner subnet 10.201.1.0/24 and fd00:201:1::/64, routes to B's.
fn a_options(local: &str, remote: &str) -> GrePeerOptions {
    GrePeerOptions::new(ip(local), ip(remote), "grea", &format!("{A_IN}/24"))
        .tun_addr6(&format!("{A_IN6}/64"))
        .route("10.201.2.0/24")
        .route("fd00:201:2::/64")
        .duration(PEER_LIFETIME)
}

/// B's end of the tunnel: inner subnet 10.201.2.0/24 and fd00:201:2::/64, routes to A's.
fn b_options(local: &str, remote: &str) -> GrePeerOptions {
    GrePeerOptions::new(ip(local), ip(remote), "greb", &format!("{B_IN}/24"))
        .tun_addr6(&format!("{B_IN6}/64"))
        .route("10.201.1.0/24")
        .route("fd00:201:1::/64")
        .duration(PEER_LIFETIME)
}

/// Runs `tshark -r` on `pcap` with extra arguments; returns its stdout.
fn tshark(pcap: &Path, args: &[&str]) -> String {
    let out = Command::new("tshark")
        .arg("-n")
        .arg("-r")
        .arg(pcap)
        .args(args)
        .output()
        .expect("tshark runs");
    assert!(
        out.status.success(),
        "tshark {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Wireshark's complaints about `pcap`: malformed frames, bad GRE checksums, and expert
/// warnings or errors — except TCP's sequence analysis (a retransmission or duplicate ACK is
/// TCP doing its job over a slow userspace tunnel, not a fault of the GRE).
fn complaints(pcap: &Path) -> Vec<String> {
    let mut found: Vec<String> = tshark(
        pcap,
        &[
            "-d",
            ECHO_AS_DATA,
            "-Y",
            "_ws.malformed || gre.checksum.status == 0",
        ],
    )
    .lines()
    .map(|line| line.trim().to_owned())
    .collect();
    let expert = tshark(pcap, &["-d", ECHO_AS_DATA, "-q", "-z", "expert,warn"]);
    for line in expert.lines() {
        // Table rows: frequency, group, protocol, summary.
        let words: Vec<&str> = line.split_whitespace().collect();
        let row = words.len() >= 4 && words[0].parse::<u64>().is_ok();
        if row && !(words[1] == "Sequence" && words[2] == "TCP") {
            found.push(line.trim().to_owned());
        }
    }
    found
}

/// A TCP echo server for one connection on `addr:port`, with a 30 s idle limit.
const ECHO_SERVER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1)
s.settimeout(30)
print("listening", flush=True)
c, peer = s.accept()
c.settimeout(30)
n = 0
while True:
    d = c.recv(65536)
    if not d:
        break
    c.sendall(d)
    n += len(d)
c.close()
print("echoed", n, "bytes to", peer[0], flush=True)
"#;

/// Sends `argv[3]` pseudo-random bytes to `argv[1]:argv[2]` while reading the echo; exits 0
/// when every byte came back intact.
const ECHO_CLIENT: &str = r#"
import hashlib, random, socket, sys, threading, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = random.Random(7).randbytes(n)
deadline = time.monotonic() + 10
while True:
    try:
        c = socket.create_connection((host, port), timeout=5)
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.1)
c.settimeout(30)
def send():
    c.sendall(data)
    c.shutdown(socket.SHUT_WR)
t = threading.Thread(target=send)
t.start()
got = bytearray()
while True:
    d = c.recv(65536)
    if not d:
        break
    got += d
t.join()
print(len(got), hashlib.sha256(got).hexdigest(), hashlib.sha256(data).hexdigest())
sys.exit(0 if bytes(got) == data else 1)
"#;

#[test]
fn ping_and_tcp_cross_the_tunnel_and_wireshark_reads_clean_gre() -> Result<()> {
    let scratch = Scratch::new("gre-tunnel")?;
    let (a, b) = pair()?;
    let capture = Capture::start(&a, VETH, "ip proto 47", scratch.file("a.pcap"))?;
    // Checksums only from A to B; key and sequence numbers both ways.
    let peer_a = GrePeer::start(
        &a,
        a_options(A_OUT, B_OUT).key(KEY).seq().csum(),
        &scratch.file("peer-a.log"),
    )?;
    let peer_b = GrePeer::start(
        &b,
        b_options(B_OUT, A_OUT).key(KEY).seq(),
        &scratch.file("peer-b.log"),
    )?;

    assert!(
        a.ping(ip(B_IN), Duration::from_secs(5))?,
        "{}",
        peer_a.log()
    );
    assert!(
        b.ping(ip(A_IN), Duration::from_secs(5))?,
        "{}",
        peer_b.log()
    );
    assert!(
        a.ping(ip(B_IN6), Duration::from_secs(5))?,
        "{}",
        peer_a.log()
    );

    // 1 MiB each way through the kernels' TCP stacks, over the tunnel.
    let server = b.spawn(
        &[PYTHON, "-c", ECHO_SERVER, B_IN, ECHO_PORT],
        scratch.file("echo-server.log"),
    )?;
    let out = a.exec(
        &[PYTHON, "-c", ECHO_CLIENT, B_IN, ECHO_PORT, "1048576"],
        Duration::from_secs(90),
    )?;
    assert!(
        out.status.success(),
        "TCP echo through the tunnel failed: {}{}\nserver: {}\npeer a: {}\npeer b: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.log(),
        peer_a.log(),
        peer_b.log()
    );
    assert!(
        server.wait_exit(Duration::from_secs(10)).is_some(),
        "echo server still running: {}",
        server.log()
    );
    assert!(
        server.log().contains(&format!("to {A_IN}")),
        "{}",
        server.log()
    );

    let pcap = capture.stop()?;
    let stats_a = peer_a.stats()?;
    let stats_b = peer_b.stats()?;
    eprintln!("peer a: {stats_a:?}\npeer b: {stats_b:?}");
    for (name, s) in [("a", &stats_a), ("b", &stats_b)] {
        assert_eq!(s.dropped(), 0, "peer {name} dropped: {s:?}");
        assert!(
            s.rx > 700 && s.tx > 700,
            "peer {name} carried little: {s:?}"
        );
        assert_eq!(
            s.seq_rx, s.rx,
            "peer {name}: frames without sequence: {s:?}"
        );
        assert_eq!(s.seq_reordered, 0, "peer {name}: {s:?}");
    }
    assert_eq!(
        stats_b.csum_rx, stats_b.rx,
        "A sends checksums: {stats_b:?}"
    );
    assert_eq!(stats_a.csum_rx, 0, "B sends none: {stats_a:?}");

    // Wireshark's view: every outer frame GRE with key 42 and a sequence number, counting
    // up from 0 in each direction; A's with a good checksum, B's with none.
    let rows = pcap.read_fields(&[
        "ip.src",
        "ip.dst",
        "gre.key",
        "gre.sequence_number",
        "gre.checksum.status",
        "gre.proto",
    ])?;
    let mut seqs = [Vec::new(), Vec::new()];
    for row in &rows {
        let outer_src = row[0].split(',').next().unwrap_or_default();
        let from_a = outer_src == A_OUT;
        assert!(from_a || outer_src == B_OUT, "stray frame {row:?}");
        assert_eq!(row[2], key_hex(), "key: {row:?}");
        let want_status = if from_a { "1" } else { "" };
        assert_eq!(row[4], want_status, "checksum status (1 = good): {row:?}");
        assert!(
            row[5] == "0x0800" || row[5] == "0x86dd",
            "protocol type: {row:?}"
        );
        seqs[usize::from(!from_a)].push(row[3].parse::<u64>().expect("a sequence number"));
    }
    for (name, seq, tx) in [("a", &seqs[0], stats_a.tx), ("b", &seqs[1], stats_b.tx)] {
        let want: Vec<u64> = (0..tx).collect();
        assert!(
            *seq == want,
            "sequence numbers from {name} ({} frames, {tx} sent) are not 0, 1, 2, …: {:?}…",
            seq.len(),
            &seq[..seq.len().min(20)]
        );
    }
    let bad = complaints(pcap.path());
    assert!(bad.is_empty(), "Wireshark complains: {bad:#?}");
    // The dissector decoded TCP inside GRE, and found a good checksum on every frame of A's.
    let tcp = tshark(
        pcap.path(),
        &["-d", ECHO_AS_DATA, "-Y", "gre && tcp.port == 7000 && data"],
    );
    assert!(tcp.lines().count() > 1000, "few TCP-in-GRE frames:\n{tcp}");

    let final_a = peer_a.stop()?;
    assert!(final_a.rx >= stats_a.rx, "{final_a:?}");
    Ok(())
}

#[test]
fn wrong_key_bad_checksum_and_wrong_source_are_dropped_and_counted() -> Result<()> {
    let scratch = Scratch::new("gre-drops")?;
    let (a, b) = pair()?;
    add_addr(&a, VETH, &format!("{A_OTHER}/24"))?;
    let capture = Capture::start(&a, VETH, "ip proto 47", scratch.file("a.pcap"))?;
    let peer_b = GrePeer::start(
        &b,
        b_options(B_OUT, A_OUT).key(KEY),
        &scratch.file("peer-b.log"),
    )?;
    let ping = |local: &str| GreFrame::ping(ip(local), ip(B_OUT), ip(A_IN), ip(B_IN));

    ping(A_OUT).key(KEY + 1).send(&a)?;
    ping(A_OUT).send(&a)?; // no key at all
    ping(A_OUT).key(KEY).csum(Checksum::Bad).send(&a)?;
    ping(A_OTHER).key(KEY).send(&a)?;
    let bad = peer_b.wait_stats(SETTLE, |s| s.dropped() >= 4)?;
    assert_eq!(
        bad,
        GreStats {
            drop_key: 2,
            drop_csum: 1,
            drop_source: 1,
            tx_link_local: bad.tx_link_local,
            ..GreStats::default()
        },
        "{}",
        peer_b.log()
    );

    // The same ping, right this time (with a good checksum and a sequence number): B's kernel
    // answers it through the tunnel.
    ping(A_OUT).key(KEY).seq(7).csum(Checksum::Good).send(&a)?;
    let good = peer_b.wait_stats(SETTLE, |s| s.tx >= 1)?;
    assert_eq!(
        good,
        GreStats {
            rx: 1,
            rx_bytes: good.rx_bytes,
            tx: 1,
            tx_bytes: good.tx_bytes,
            csum_rx: 1,
            seq_rx: 1,
            tx_link_local: good.tx_link_local,
            ..bad
        },
        "{}",
        peer_b.log()
    );

    // On the wire: the five frames from A, and one answer from B — an ICMP echo reply in GRE
    // with B's key and no sequence number or checksum.
    let pcap = capture.stop()?;
    let rows = pcap.read_fields(&["ip.src", "gre.key", "gre.sequence_number", "icmp.type"])?;
    // A negative control for the checks of the other tests: Wireshark flags the bad checksum.
    let bad = complaints(pcap.path());
    assert!(
        bad.len() == 2 && bad[0].starts_with("3 ") && bad[1].contains("Incorrect GRE Checksum"),
        "Wireshark should flag frame 3's checksum, and only that: {bad:#?}"
    );
    let from_b: Vec<_> = rows
        .iter()
        .filter(|r| r[0].starts_with(&format!("{B_OUT},")))
        .collect();
    assert_eq!(rows.len(), 6, "frames: {rows:?}");
    assert_eq!(from_b.len(), 1, "B answered a dropped frame: {rows:?}");
    assert_eq!(from_b[0][1], key_hex(), "{rows:?}");
    assert_eq!(from_b[0][2], "", "{rows:?}");
    assert_eq!(from_b[0][3], "0", "not an echo reply: {rows:?}");
    Ok(())
}

#[test]
fn cisco_keepalive_is_routed_back_as_plain_gre() -> Result<()> {
    let scratch = Scratch::new("gre-keepalive")?;
    let (a, b) = pair()?;
    // Reflecting a keepalive is routing: the far end must forward.
    b.enable_forwarding()?;
    // The inner packet arrives on B's TUN with one of B's own addresses as its source; the
    // script allows that on its TUN (accept_local, rp_filter), but a strict `all` setting
    // inherited from the machine would still win.
    b.sysctl("net.ipv4.conf.all.rp_filter", "0")?;
    let capture = Capture::start(&a, VETH, "ip proto 47", scratch.file("a.pcap"))?;
    let peer_a = GrePeer::start(
        &a,
        a_options(A_OUT, B_OUT).key(KEY),
        &scratch.file("peer-a.log"),
    )?;
    let peer_b = GrePeer::start(
        &b,
        b_options(B_OUT, A_OUT).key(KEY),
        &scratch.file("peer-b.log"),
    )?;

    let sent = GreFrame::keepalive(ip(A_OUT), ip(B_OUT))
        .key(KEY)
        .send(&a)?;
    eprintln!("{}", sent.trim());
    let stats_a = peer_a.wait_stats(SETTLE, |s| s.keepalives >= 1)?;
    let stats_b = peer_b.stats()?;
    assert_eq!(
        stats_a,
        GreStats {
            keepalives: 1,
            tx_link_local: stats_a.tx_link_local,
            ..GreStats::default()
        }
    );
    assert_eq!(
        (stats_b.rx, stats_b.tx, stats_b.dropped()),
        (1, 0, 0),
        "B must route the inner packet, not tunnel it: {stats_b:?}"
    );

    let pcap = capture.stop()?;
    let rows = pcap.read_fields(&["ip.src", "ip.dst", "gre.proto", "gre.key", "ip.ttl"])?;
    let probe = [
        format!("{A_OUT},{B_OUT}"),
        format!("{B_OUT},{A_OUT}"),
        "0x0800,0x0000".to_owned(),
        format!("{0},{0}", key_hex()),
    ];
    let reply = [
        B_OUT.to_owned(),
        A_OUT.to_owned(),
        "0x0000".to_owned(),
        key_hex(),
    ];
    assert_eq!(rows.len(), 2, "frames: {rows:?}");
    assert_eq!(rows[0][..4], probe, "the probe: {rows:?}");
    assert_eq!(rows[1][..4], reply, "the reflected keepalive: {rows:?}");
    let bad = complaints(pcap.path());
    assert!(bad.is_empty(), "Wireshark complains: {bad:#?}");
    Ok(())
}

#[test]
fn tunnel_over_ipv6_carries_both_families() -> Result<()> {
    let scratch = Scratch::new("gre-over-v6")?;
    let (a, b) = pair()?;
    let capture = Capture::start(&a, VETH, "ip6 proto 47", scratch.file("a.pcap"))?;
    let peer_a = GrePeer::start(
        &a,
        a_options(A_OUT6, B_OUT6).key(KEY).seq().csum(),
        &scratch.file("peer-a.log"),
    )?;
    let peer_b = GrePeer::start(
        &b,
        b_options(B_OUT6, A_OUT6).key(KEY).csum(),
        &scratch.file("peer-b.log"),
    )?;
    assert!(
        a.ping(ip(B_IN), Duration::from_secs(5))?,
        "{}",
        peer_a.log()
    );
    assert!(
        a.ping(ip(B_IN6), Duration::from_secs(5))?,
        "{}",
        peer_b.log()
    );

    for (name, peer) in [("a", &peer_a), ("b", &peer_b)] {
        let s = peer.stats()?;
        assert!(s.rx >= 2 && s.tx >= 2, "peer {name}: {s:?}");
        assert_eq!(s.dropped(), 0, "peer {name}: {s:?}");
        assert_eq!(s.csum_rx, s.rx, "peer {name}: {s:?}");
    }
    let pcap = capture.stop()?;
    let rows = pcap.read_fields(&["ipv6.src", "gre.key", "gre.checksum.status"])?;
    assert!(rows.len() >= 4, "frames: {rows:?}");
    for row in &rows {
        assert_eq!(row[1..], [key_hex(), "1".to_owned()], "{rows:?}");
    }
    let bad = complaints(pcap.path());
    assert!(bad.is_empty(), "Wireshark complains: {bad:#?}");
    Ok(())
}

#[test]
fn peer_stops_by_itself_after_its_duration() -> Result<()> {
    let scratch = Scratch::new("gre-duration")?;
    let (a, _b) = pair()?;
    let peer = GrePeer::start(
        &a,
        a_options(A_OUT, B_OUT).duration(Duration::from_secs(1)),
        &scratch.file("peer-a.log"),
    )?;
    let status = peer.process().wait_exit(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}: {}",
        peer.log()
    );
    let log = peer.log();
    assert!(log.contains("stats reason=exit "), "{log}");
    assert!(log.trim_end().ends_with("exit reason=duration"), "{log}");
    // The TUN went with the process.
    let links = a.run(&["ip", "-o", "link", "show"])?;
    assert!(!links.contains("grea"), "{links}");
    Ok(())
}
