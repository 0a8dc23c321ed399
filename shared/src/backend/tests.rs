use super::*;
use core::time::Duration;

fn config(name: &str, remote: &str, key: Option<u32>, prefix: &str, priority: u8) -> BackendConfig {
    BackendConfig {
        name: name.into(),
        remote: remote.parse().unwrap(),
        local: "198.18.1.2".parse().unwrap(),
        key,
        sequence: true,
        checksum: false,
        prefixes: vec![(prefix.parse().unwrap(), priority)],
    }
}

fn twins(now: Instant) -> Backends {
    Backends::new(
        vec![
            config("a", "198.18.5.2", Some(1), "10.50.0.0/16", 1),
            config("b", "198.18.6.2", Some(2), "10.50.0.0/16", 2),
            config("c", "198.18.7.2", None, "10.60.0.0/16", 1),
        ],
        now,
    )
}

/// Plays the far end: turns our probe into the frame it would route back to us.
fn echo_probe(t: &GreTransmit) -> Vec<u8> {
    let outer = gre::Packet::new_checked(&t.frame[..]).unwrap();
    let inner_ip = outer.payload();
    let ihl = if inner_ip[0] >> 4 == 4 { 20 } else { 40 };
    inner_ip[ihl..].to_vec()
}

#[test]
fn longest_prefix_then_priority() {
    let now = Instant::now();
    let b = twins(now);
    assert_eq!(b.select("10.50.1.1".parse().unwrap()), Some(BackendId(0)));
    assert_eq!(b.select("10.60.1.1".parse().unwrap()), Some(BackendId(2)));
    assert_eq!(b.select("10.70.1.1".parse().unwrap()), None);
}

#[test]
fn fails_over_within_three_seconds_and_back() {
    let t0 = Instant::now();
    let mut b = twins(t0);
    let dst: IpAddr = "10.50.1.1".parse().unwrap();
    let mut now = t0;
    let mut failed_over = None;
    // Back end 0 is dark; 1 and 2 answer every probe.
    while now.duration_since(t0) < Duration::from_secs(5) {
        b.handle_timeout(now);
        while let Some(t) = b.poll_transmit() {
            if t.backend != BackendId(0) {
                let back = echo_probe(&t);
                assert_eq!(
                    b.handle_frame(now, t.destination, &back),
                    Ok(FromBackend::Keepalive(t.backend))
                );
            }
        }
        if failed_over.is_none() && b.select(dst) == Some(BackendId(1)) {
            failed_over = Some(now.duration_since(t0));
        }
        now = b.poll_timeout().unwrap();
    }
    let took = failed_over.expect("failed over");
    assert!(took <= Duration::from_secs(3), "failover took {took:?}");
    assert_eq!(b.poll_event(), Some(BackendEvent::Down(BackendId(0))));
    // Back end 0 recovers: its next returned keepalive fails back at once.
    b.handle_timeout(now);
    let probe = core::iter::from_fn(|| b.poll_transmit())
        .find(|t| t.backend == BackendId(0))
        .unwrap();
    b.handle_frame(now, probe.destination, &echo_probe(&probe))
        .unwrap();
    assert_eq!(b.poll_event(), Some(BackendEvent::Up(BackendId(0))));
    assert_eq!(b.select(dst), Some(BackendId(0)));
}

#[test]
fn frames_in_place_with_key_and_sequence() {
    let mut b = twins(Instant::now());
    let mut buf = vec![0u8; 20 + 28];
    buf[20] = 0x45;
    let start = b.frame(BackendId(0), &mut buf, 20..48).unwrap();
    assert_eq!(start, 20 - 12);
    let frame = gre::Packet::new_checked(&buf[start..]).unwrap();
    let repr = gre::Repr::parse(&frame).unwrap();
    assert_eq!(
        (repr.key, repr.sequence, repr.protocol),
        (Some(1), Some(0), gre::ETHERTYPE_IPV4)
    );
    let start = b.frame(BackendId(0), &mut buf, 20..48).unwrap();
    let repr = gre::Repr::parse(&gre::Packet::new_checked(&buf[start..]).unwrap()).unwrap();
    assert_eq!(repr.sequence, Some(1));
    buf[4] = 0x45;
    assert_eq!(
        b.frame(BackendId(0), &mut buf, 4..48),
        Err(FrameError::NoHeadroom {
            needed: 12,
            have: 4
        })
    );
    // A refused frame does not use up a sequence number.
    buf[20] = 0x45;
    let start = b.frame(BackendId(0), &mut buf, 20..48).unwrap();
    let repr = gre::Repr::parse(&gre::Packet::new_checked(&buf[start..]).unwrap()).unwrap();
    assert_eq!(repr.sequence, Some(2));
}

#[test]
fn wrong_key_unknown_source_and_junk_are_dropped() {
    let now = Instant::now();
    let mut b = twins(now);
    let mut frame = vec![0u8; 8 + 20];
    gre::Repr {
        protocol: gre::ETHERTYPE_IPV4,
        checksum: false,
        key: Some(99),
        sequence: None,
    }
    .emit_header(&mut frame, 20)
    .unwrap();
    frame[8] = 0x45;
    let a: IpAddr = "198.18.5.2".parse().unwrap();
    assert_eq!(b.handle_frame(now, a, &frame), Err(BackendDrop::BadKey));
    assert_eq!(
        b.handle_frame(now, "198.18.9.9".parse().unwrap(), &frame),
        Err(BackendDrop::UnknownSource)
    );
    assert_eq!(
        b.handle_frame(now, a, &[0x40, 0, 8, 0]),
        Err(BackendDrop::Malformed)
    );
    // The right key delivers the inner packet.
    gre::Repr {
        protocol: gre::ETHERTYPE_IPV4,
        checksum: false,
        key: Some(1),
        sequence: None,
    }
    .emit_header(&mut frame, 20)
    .unwrap();
    assert_eq!(
        b.handle_frame(now, a, &frame),
        Ok(FromBackend::Packet {
            backend: BackendId(0),
            range: 8..28
        })
    );
}

#[test]
fn the_far_ends_keepalive_is_handed_back() {
    let now = Instant::now();
    let mut b = twins(now);
    let far: IpAddr = "198.18.5.2".parse().unwrap();
    let us: IpAddr = "198.18.1.2".parse().unwrap();
    let inner = keepalive::probe_payload(us, far, Some(1));
    let mut frame = vec![0u8; 8 + inner.len()];
    frame[8..].copy_from_slice(&inner);
    gre::Repr {
        protocol: gre::ETHERTYPE_IPV4,
        checksum: false,
        key: Some(1),
        sequence: None,
    }
    .emit_header(&mut frame, inner.len())
    .unwrap();
    assert_eq!(
        b.handle_frame(now, far, &frame),
        Ok(FromBackend::ReflectKeepalive {
            backend: BackendId(0),
            range: 28..frame.len()
        })
    );
}
