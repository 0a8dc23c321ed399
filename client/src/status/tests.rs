use std::net::{Ipv4Addr, Ipv6Addr};

use grelay_proto::crypto::aead::CipherSuite;
use grelay_proto::rtt::PathSnapshot;
use grelay_proto::tunnel::client::ClientStatus;
use grelay_proto::tunnel::{DropCounters, DropReason, TrafficCounters};
use grelay_proto::wire::control::AddressAssignment;

use super::*;

fn core() -> ClientStatus {
    let mut drops = DropCounters::default();
    drops.count(DropReason::Replay);
    drops.count(DropReason::Replay);
    drops.count(DropReason::BadMac);
    ClientStatus {
        endpoint: "198.18.1.2:4747".parse().unwrap(),
        session_id: Some(0x1a2b_3c4d),
        suite: Some(CipherSuite::Aes256Gcm),
        session_age: Some(Duration::from_secs(42)),
        since_last_handshake: Some(Duration::from_secs(42)),
        connected_for: Some(Duration::from_secs(3723)),
        assignment: Some(AddressAssignment {
            ipv4: Some((Ipv4Addr::new(10, 77, 0, 2), 16)),
            ipv6: Some(("fd77::2".parse::<Ipv6Addr>().unwrap(), 64)),
            mtu: 1420,
        }),
        traffic: TrafficCounters {
            tx_packets: 10,
            tx_bytes: 1536,
            rx_packets: 12,
            rx_bytes: 3 * 1024 * 1024,
        },
        path: PathSnapshot {
            last: Some(Duration::from_micros(12_500)),
            smoothed: Some(Duration::from_micros(12_300)),
            min: Some(Duration::from_millis(11)),
            jitter: Some(Duration::from_micros(800)),
            sent: 61,
            received: 57,
            lost: 3,
        },
        drops,
        handshakes: 31,
    }
}

fn shell() -> ShellInfo {
    ShellInfo {
        interface: "grelay0".into(),
        mode: "split",
        routed_prefixes: 3,
        mtu: 1420,
        uptime: Duration::from_secs(3725),
        unreachable: false,
        transport: None,
        counters: ShellCounters {
            no_session: 4,
            ..ShellCounters::default()
        },
    }
}

#[test]
fn report_from_core_status() {
    let r = StatusReport::new(&core(), &shell());
    assert_eq!(r.state, "connected");
    assert_eq!(r.gateway, "198.18.1.2:4747");
    assert_eq!(r.cipher.as_deref(), Some("aes-256-gcm"));
    assert_eq!(r.ipv4.as_deref(), Some("10.77.0.2/16"));
    assert_eq!(r.ipv6.as_deref(), Some("fd77::2/64"));
    assert_eq!(r.rtt_ms, Some(12.3));
    assert_eq!(r.loss_percent, 5.0);
    assert_eq!(r.drops.get("replay"), Some(&2));
    assert_eq!(r.drops.get("bad_mac"), Some(&1));
    assert_eq!(r.drops.len(), 2, "zero reasons are left out");
    // JSON round trip: what `grelay status --json` prints and the CLI reads back.
    let json = serde_json::to_string(&r).unwrap();
    let back: StatusReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, r);
    assert!(json.contains("\"session_age_secs\":42.0"), "{json}");
}

#[test]
fn states() {
    let mut c = core();
    c.assignment = None;
    assert_eq!(StatusReport::new(&c, &shell()).state, "configuring");
    c.session_id = None;
    assert_eq!(StatusReport::new(&c, &shell()).state, "connecting");
    let unreachable = ShellInfo {
        unreachable: true,
        ..shell()
    };
    assert_eq!(
        StatusReport::new(&c, &unreachable).state,
        "gateway unreachable"
    );
}

#[test]
fn text_rendering() {
    let mut r = StatusReport::new(&core(), &shell());
    r.pid = 777;
    let expected = "\
interface: grelay0 (pid 777, up 1h 02m 05s)
  state:          connected
  gateway:        198.18.1.2:4747 (udp)
  mode:           split tunnel, 3 prefixes
  address:        10.77.0.2/16, fd77::2/64
  mtu:            1420
  cipher:         aes-256-gcm
  handshake:      42s ago (31 completed)
  session:        1a2b3c4d, keys 42s old
  connected for:  1h 02m 03s
  transfer:       3.00 MiB received (12 packets), 1.50 KiB sent (10 packets)
  rtt:            12.3 ms (min 11.0 ms, last 12.5 ms), jitter 0.8 ms
  loss:           5.0% (3 of 60 probes lost)
  drops:          bad_mac 1, replay 2, no_session 4
";
    assert_eq!(render(&r), expected);
}

#[test]
fn rendering_before_the_first_handshake() {
    let c = ClientStatus {
        session_id: None,
        suite: None,
        session_age: None,
        since_last_handshake: None,
        connected_for: None,
        assignment: None,
        traffic: TrafficCounters::default(),
        path: PathSnapshot::default(),
        drops: DropCounters::default(),
        handshakes: 0,
        ..core()
    };
    let s = ShellInfo {
        mode: "full",
        transport: None,
        counters: ShellCounters::default(),
        ..shell()
    };
    let text = render(&StatusReport::new(&c, &s));
    assert!(text.contains("state:          connecting\n"), "{text}");
    assert!(text.contains("full tunnel (leak protection on)"), "{text}");
    assert!(text.contains("(not assigned yet)"), "{text}");
    assert!(
        text.contains("handshake:      never (0 completed)"),
        "{text}"
    );
    assert!(
        text.contains("rtt:            - (min -, last -), jitter -"),
        "{text}"
    );
    assert!(text.contains("drops:          none"), "{text}");
    assert!(!text.contains("session:"), "{text}");
}

#[test]
fn human_units() {
    assert_eq!(human_duration(0.25), "0.2s");
    assert_eq!(human_duration(59.0), "59s");
    assert_eq!(human_duration(61.0), "1m 01s");
    assert_eq!(human_duration(f64::NAN), "?");
    assert_eq!(human_bytes(0), "0 B");
    assert_eq!(human_bytes(1023), "1023 B");
    assert_eq!(human_bytes(1536), "1.50 KiB");
    assert_eq!(human_bytes(5 << 30), "5.00 GiB");
    assert_eq!(human_bytes(u64::MAX), "16777216.00 TiB");
}
