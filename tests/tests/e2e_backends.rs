//! Raw GRE back ends chosen by inner destination, end to end: the real gateway and client in
//! namespaces, and independent GRE speakers (`tests/gre_peer.py`, scapy) as the far ends.
//!
//! ```text
//!   laptop ── nat ── internet ──┬── gateway 198.18.1.2 (grelay-gateway)
//!                               ├── farm-a  (GRE key 42, seq + csum; serves 10.50.0.0/16, prio 10)
//!                               ├── farm-a2 (GRE key 44;             serves 10.50.0.0/16, prio 20)
//!                               └── farm-b  (GRE key 43;             serves 10.60.0.0/16)
//! ```
//!
//! Each far end answers for its prefix from its own TUN (10.50.0.1 or 10.60.0.1), so ping and
//! TCP get a real stack. Checks: selection by prefix and priority, Wireshark's verdict on every
//! frame the gateway emits, wrong keys and unknown sources ignored, failover to the twin within
//! 3 s and failback after recovery, and a flood of junk protocol-47 packets changing nothing.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use grelay_tests::netns::gre_peer::GreFrame;
use grelay_tests::netns::{Capture, GrePeer, GrePeerOptions, Host, NatKind, World, wait_until};
use grelay_tests::scenario::{Placement, Scenario};

const FARM_A: Ipv4Addr = Ipv4Addr::new(10, 50, 0, 1);
const FARM_B: Ipv4Addr = Ipv4Addr::new(10, 60, 0, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
/// The failover and failback promise to operators.
const SWITCH_LIMIT: Duration = Duration::from_secs(3);

struct Farm {
    host: Host,
    key: u32,
    tun_addr: &'static str,
    sequence: bool,
    checksum: bool,
}

impl Farm {
    fn options(&self, gateway: Ipv4Addr) -> GrePeerOptions {
        let mut o =
            GrePeerOptions::new(self.host.v4().into(), gateway.into(), "gre0", self.tun_addr)
                .key(self.key)
                .route("10.77.0.0/16")
                .duration(Duration::from_secs(240));
        if self.sequence {
            o = o.seq();
        }
        if self.checksum {
            o = o.csum();
        }
        o
    }

    fn start(&self, gateway: Ipv4Addr, log: &Path) -> GrePeer {
        GrePeer::start(self.host.ns(), self.options(gateway), log).expect("starting a GRE peer")
    }

    fn backend_toml(&self, name: &str, gateway: Ipv4Addr, prefix: &str, priority: u8) -> String {
        format!(
            "[[backends]]\nname = \"{name}\"\nremote = \"{}\"\nlocal = \"{}\"\nkey = {}\n\
             sequence = {}\nchecksum = {}\npriority = {priority}\nprefixes = [\"{prefix}\"]\n",
            self.host.v4(),
            gateway,
            self.key,
            self.sequence,
            self.checksum
        )
    }
}

/// Pings `dst` from the laptop once a 100 ms until it answers; the time it took, if at all.
fn time_to_answer(laptop: &Host, dst: Ipv4Addr, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let answered = wait_until(limit, || {
        laptop
            .ns()
            .ping(dst.into(), Duration::from_millis(300))
            .unwrap_or(false)
    });
    answered.then(|| start.elapsed())
}

#[test]
fn backends_by_prefix_with_failover_and_junk() {
    let mut s = Scenario::new("e2e-backends").expect("scenario");
    let home = s.add_nat(NatKind::EndpointIndependent).expect("nat");
    s.add_client("laptop", Placement::Nat(home))
        .expect("laptop");
    let farm = |world: &mut World, role: &str, key, tun_addr, sequence, checksum| {
        let host = world.add_public_host(role).expect("farm host");
        host.ns().enable_forwarding().expect("forwarding");
        Farm {
            host,
            key,
            tun_addr,
            sequence,
            checksum,
        }
    };
    let a = farm(&mut s.world, "farm-a", 42, "10.50.0.1/16", true, true);
    let a2 = farm(&mut s.world, "farm-a2", 44, "10.50.0.1/16", false, false);
    let b = farm(&mut s.world, "farm-b", 43, "10.60.0.1/16", false, false);
    let attacker = s.world.add_public_host("attacker").expect("attacker");

    // Gateway with three back ends, client routing both farm prefixes into the tunnel.
    let gateway = s.gateway.host().v4();
    let config = s.gateway.config_mut();
    config.egress = "none".into();
    config.extra = format!(
        "{}{}{}",
        a.backend_toml("farm-a", gateway, "10.50.0.0/16", 10),
        a2.backend_toml("farm-a2", gateway, "10.50.0.0/16", 20),
        b.backend_toml("farm-b", gateway, "10.60.0.0/16", 10),
    );
    let laptop_config = s.client_mut("laptop").config_mut();
    laptop_config.prefixes = vec!["10.50.0.0/16".into(), "10.60.0.0/16".into()];
    let dir = s.scratch.path().to_path_buf();

    let peer_a = a.start(gateway, &dir.join("farm-a.log"));
    let peer_a2 = a2.start(gateway, &dir.join("farm-a2.log"));
    let peer_b = b.start(gateway, &dir.join("farm-b.log"));
    let capture = Capture::start(
        s.gateway.ns(),
        s.gateway.host().iface(),
        "ip proto 47",
        dir.join("gre.pcap"),
    )
    .expect("capture");
    s.start_all().expect("gateway and laptop up");
    let laptop = s.client("laptop").host();
    let gw = &s.gateway;

    // 1. Selection by prefix, and by priority among twins.
    assert!(
        time_to_answer(laptop, FARM_A, Duration::from_secs(5)).is_some(),
        "farm-a: {}",
        gw.log()
    );
    assert!(
        time_to_answer(laptop, FARM_B, Duration::from_secs(5)).is_some(),
        "farm-b: {}",
        gw.log()
    );
    let tcp = transfer(laptop, FARM_A, &a.host, &dir);
    assert!(tcp, "TCP through farm-a");
    assert!(carried_data(&peer_a), "farm-a carried no data");
    assert!(carried_data(&peer_b), "farm-b carried no data");
    assert!(
        !carried_data(&peer_a2),
        "the lower-priority twin got traffic"
    );

    // 2. Wrong key and unknown source: ignored (the client never sees the echo request).
    let client_seen =
        Capture::start(laptop.ns(), "grelay0", "icmp", dir.join("laptop.pcap")).expect("capture");
    let forged = |from: &Host, key: u32| {
        GreFrame::ping(
            from.v4().into(),
            gateway.into(),
            FARM_A.into(),
            CLIENT.into(),
        )
        .key(key)
        .send(from.ns())
        .expect("sending a forged frame");
    };
    forged(&a.host, 99);
    forged(&attacker, 42);
    let requests = client_seen
        .stop()
        .expect("stop")
        .read_fields(&["icmp.type"])
        .expect("fields");
    assert!(
        requests
            .iter()
            .all(|r| r.first().map(String::as_str) != Some("8")),
        "a forged echo request reached the client: {requests:?}"
    );

    // 3. Failover: farm-a goes dark, farm-a2 takes its prefix within 3 s; then failback.
    let dark = Instant::now();
    drop(peer_a);
    let took = time_to_answer(laptop, FARM_A, SWITCH_LIMIT + Duration::from_secs(2))
        .map(|_| dark.elapsed())
        .expect("no failover");
    println!("failover to farm-a2 took {took:?}");
    assert!(took <= SWITCH_LIMIT, "failover took {took:?}");
    assert!(
        carried_data(&peer_a2),
        "farm-a2 carried nothing after the failover"
    );
    let peer_a = a.start(gateway, &dir.join("farm-a-again.log"));
    let back = Instant::now();
    let failed_back = wait_until(SWITCH_LIMIT + Duration::from_secs(2), || {
        let _ = laptop.ns().ping(FARM_A.into(), Duration::from_millis(300));
        carried_data(&peer_a)
    });
    let took = back.elapsed();
    println!("failback to farm-a took {took:?}");
    assert!(
        failed_back && took <= SWITCH_LIMIT,
        "failback took {took:?}: {}",
        gw.log()
    );

    // 4. A flood of junk protocol-47 packets changes nothing for the running session.
    flood_junk_gre(&attacker, gateway.into(), 2000);
    flood_junk_gre(&a.host, gateway.into(), 500);
    assert!(gw.is_running(), "gateway died under junk GRE: {}", gw.log());
    assert!(
        time_to_answer(laptop, FARM_B, Duration::from_secs(3)).is_some(),
        "after the flood"
    );
    assert!(
        time_to_answer(laptop, FARM_A, Duration::from_secs(3)).is_some(),
        "after the flood"
    );

    // 5. Wireshark decodes every frame the gateway emitted as well-formed GRE with the
    //    configured keys (and farm-a's sequence numbers and checksums).
    let rows = capture
        .stop()
        .expect("stop")
        .read_fields(&[
            "ip.src",
            "ip.dst",
            "gre.key",
            "gre.sequence_number",
            "gre.checksum.status",
            "_ws.malformed",
            "_ws.expert.severity",
        ])
        .expect("fields");
    // Fields of nested headers (a keepalive's inner GRE) come comma-joined: the outer first.
    let first = |f: &str| f.split(',').next().unwrap_or("").to_owned();
    let gateway_ip = gateway.to_string();
    let ours: Vec<_> = rows.iter().filter(|r| first(&r[0]) == gateway_ip).collect();
    assert!(
        ours.len() > 10,
        "only {} frames from the gateway",
        ours.len()
    );
    for r in &ours {
        assert!(r[5].is_empty(), "malformed frame: {r:?}");
        // Severity "error" (0x00800000): a dissector found something it cannot accept.
        assert!(
            !r[6].split(',').any(|s| s == "8388608"),
            "expert error: {r:?}"
        );
        let dst = first(&r[1]);
        let expected_key = if dst == a.host.v4().to_string() {
            assert!(
                !r[3].is_empty(),
                "farm-a frames carry sequence numbers: {r:?}"
            );
            assert_eq!(
                first(&r[4]),
                "1",
                "farm-a frames carry good checksums (1 = good): {r:?}"
            );
            a.key
        } else if dst == a2.host.v4().to_string() {
            a2.key
        } else {
            b.key
        };
        assert_eq!(first(&r[2]), format!("{expected_key:#010x}"), "{r:?}");
    }
}

/// Every far end also receives the gateway's keepalive probes: an inner IPv4 header and an
/// 8-byte GRE header with key, 28 bytes each. Anything beyond that is data.
const PROBE_BYTES: u64 = 28;

fn carried_data(peer: &GrePeer) -> bool {
    peer.stats().is_ok_and(|s| s.rx_bytes > s.rx * PROBE_BYTES)
}

/// Sends 256 KiB from the laptop to a TCP sink on `server` (at `dst`, its GRE-side address) and
/// checks the byte count the sink saw.
fn transfer(laptop: &Host, dst: Ipv4Addr, server: &Host, dir: &Path) -> bool {
    const BYTES: usize = 256 * 1024;
    let sink = server
        .ns()
        .spawn(
            &["/usr/bin/python3", "-c", &format!(
                "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
                 s.bind(('{dst}',7001))\ns.listen(1)\ns.settimeout(20)\nc,_=s.accept()\nc.settimeout(20)\n\
                 n=0\nwhile True:\n  d=c.recv(65536)\n  if not d: break\n  n+=len(d)\nprint('received',n,flush=True)\n"
            )],
            dir.join("sink.log"),
        )
        .expect("sink");
    std::thread::sleep(Duration::from_millis(300));
    let sent = laptop.ns().run_timeout(
        &["/usr/bin/python3", "-c", &format!(
            "import socket\nc=socket.create_connection(('{dst}',7001),timeout=10)\nc.sendall(b'g'*{BYTES})\nc.close()\n"
        )],
        Duration::from_secs(20),
    );
    sent.is_ok()
        && wait_until(Duration::from_secs(10), || {
            sink.log().contains(&format!("received {BYTES}"))
        })
}

/// Sends `count` protocol-47 packets of random bytes (some shaped like GRE with random keys)
/// from `from` to `to`.
fn flood_junk_gre(from: &Host, to: IpAddr, count: usize) {
    let script = format!(
        "import os,socket,random\nr=random.Random(7)\n\
         s=socket.socket(socket.AF_INET,socket.SOCK_RAW,47)\n\
         for i in range({count}):\n\
         \x20 n=r.randrange(0,200)\n\
         \x20 b=os.urandom(n) if i%2 else bytes([0x20,0,8,0])+r.randrange(1<<32).to_bytes(4,'big')+os.urandom(n)\n\
         \x20 s.sendto(b,('{to}',0))\n"
    );
    from.ns()
        .run_timeout(
            &["/usr/bin/python3", "-c", &script],
            Duration::from_secs(30),
        )
        .expect("junk flood");
}
