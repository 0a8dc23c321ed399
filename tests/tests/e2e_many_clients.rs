//! Twenty real `grelay up` clients on one real gateway, behind every kind of NAT the harness
//! has, all at once:
//!
//! ```text
//!   c00..c04 ── one home NAT (endpoint-independent, shared) ──┐
//!   c05..c09 ── one carrier NAT (symmetric, shared) ──────────┤
//!   c10..c13 ── directly on the internet ─────────────────────┼─ internet ─ gateway ─ game
//!   c14..c16 ── a home NAT each (endpoint-independent) ───────┤
//!   c17..c19 ── a carrier NAT each (symmetric) ───────────────┘
//! ```
//!
//! Why this mix: the two shared NATs are the hard cases for a gateway that keys clients by
//! session rather than by address (five laptops on one public address; on the symmetric one,
//! every flow on its own random port). Public hosts cover clients without NAT (servers, bots,
//! campus networks). A NAT per client of each kind is what most players have at home or on a
//! phone; three of each show that nothing depends on the NAT being shared, without paying for
//! twenty NAT namespaces.
//!
//! Checked: every client gets distinct addresses (IPv4 and IPv6); every client reaches the game
//! server (ping and the UDP reflector, which sees the gateway's NAT address); sampled pairs
//! of clients reach each other through the gateway (same NAT, across NAT kinds, public to
//! NATed); 2 MiB TCP transfers from four clients arrive with the SHA-256 they were sent with;
//! and after a gateway restart every client is back with the addresses it had, as the address
//! book says.
//!
//! Needs root and the harness's packages; every wait is bounded.

use std::collections::HashSet;
use std::net::IpAddr;
use std::thread;
use std::time::{Duration, Instant};

use grelay_tests::netns::NatKind;
use grelay_tests::scenario::{
    ClientNode, ClientStatus, POOL_V4, Placement, Scenario, tcp_transfer, udp_probe,
};

/// Bytes per TCP transfer.
const TRANSFER: u64 = 2 << 20;
/// How long a client may take to be back after the gateway restarted (its dead-session
/// detection needs three unanswered one-second probes, then one handshake).
const RECOVERY: Duration = Duration::from_secs(20);

/// Builds the twenty clients; returns the scenario, nothing started.
fn twenty_clients() -> Scenario {
    let mut s = Scenario::new("many-clients").unwrap();
    let home = s.add_nat(NatKind::EndpointIndependent).unwrap();
    let carrier = s.add_nat(NatKind::Symmetric).unwrap();
    for i in 0..20 {
        let placement = match i {
            0..=4 => Placement::Nat(home),
            5..=9 => Placement::Nat(carrier),
            10..=13 => Placement::Public,
            14..=16 => Placement::Nat(s.add_nat(NatKind::EndpointIndependent).unwrap()),
            _ => Placement::Nat(s.add_nat(NatKind::Symmetric).unwrap()),
        };
        s.add_client(&format!("c{i:02}"), placement).unwrap();
    }
    for c in &mut s.clients {
        // The game's network (the scenario's default) and the pool, for client to client.
        c.config_mut().prefixes.push(POOL_V4.to_owned());
    }
    s
}

/// Runs `f` for every client (with its index) at once; returns the results in client order.
fn each<T: Send>(clients: &[ClientNode], f: impl Fn(usize, &ClientNode) -> T + Sync) -> Vec<T> {
    thread::scope(|scope| {
        let f = &f;
        let handles: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(i, c)| scope.spawn(move || f(i, c)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a client thread panicked"))
            .collect()
    })
}

/// Pings `dest` from `c` once a second until it answers or `timeout` passes; returns how
/// long that took.
fn ping_until(c: &ClientNode, dest: IpAddr, timeout: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if c.ns().ping(dest, Duration::from_secs(1)).unwrap_or(false) {
            return Some(start.elapsed());
        }
    }
    None
}

#[test]
fn twenty_clients_behind_nats_share_one_gateway() {
    let started = Instant::now();
    let mut s = twenty_clients();
    let built = started.elapsed();
    s.start_all().unwrap();
    let up = started.elapsed();

    // Distinct addresses for everyone.
    let before: Vec<ClientStatus> = each(&s.clients, |_, c| c.status().unwrap());
    for (c, st) in s.clients.iter().zip(&before) {
        assert!(st.is_connected(), "{}: {st:?}", c.name());
    }
    let v4: HashSet<_> = before.iter().map(|st| st.ipv4_addr().unwrap()).collect();
    let v6: HashSet<_> = before.iter().map(|st| st.ipv6_addr().unwrap()).collect();
    assert_eq!((v4.len(), v6.len()), (20, 20), "addresses: {before:?}");

    // Everyone reaches the game server: ping and UDP, through the gateway's NAT.
    let game = s.game.host();
    let near = IpAddr::from(game.router_v4());
    let reached = each(&s.clients, |_, c| {
        let ping = c
            .ns()
            .ping(game.v4().into(), Duration::from_secs(5))
            .unwrap();
        let udp = udp_probe(c.ns(), s.game.udp_addr()).unwrap();
        (ping, udp.map(|a| a.ip()))
    });
    for (c, r) in s.clients.iter().zip(&reached) {
        assert_eq!(*r, (true, Some(near)), "{}: {}", c.name(), s.gateway.log());
    }

    // Client to client through the gateway: behind the same NAT (both kinds), across NAT
    // kinds, public to NATed and NATed to public.
    let pairs = [
        (0, 1),
        (5, 6),
        (2, 7),
        (10, 17),
        (14, 11),
        (8, 18),
        (19, 15),
    ];
    let pings = thread::scope(|scope| {
        let handles: Vec<_> = pairs
            .iter()
            .map(|&(a, b)| {
                let (from, to) = (&s.clients[a], before[b].ipv4_addr().unwrap());
                scope.spawn(move || from.ns().ping(to.into(), Duration::from_secs(5)).unwrap())
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    for (&(a, b), ok) in pairs.iter().zip(pings) {
        assert!(ok, "c{a:02} cannot ping c{b:02}: {}", s.gateway.log());
    }

    // Bulk TCP from both shared NATs, a public host and a lone symmetric NAT, at once.
    let senders = [0, 5, 10, 19];
    let transfers = thread::scope(|scope| {
        let handles: Vec<_> = senders
            .iter()
            .map(|&i| {
                let (c, dest) = (&s.clients[i], s.game.tcp_addr());
                scope.spawn(move || tcp_transfer(c.ns(), dest, TRANSFER, i as u64 + 1).unwrap())
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    for (&i, t) in senders.iter().zip(&transfers) {
        assert!(t.intact(), "c{i:02}: {t:?}; sink: {}", s.game.sink_log());
        assert!(t.sent.starts_with(&format!("{TRANSFER} ")), "{t:?}");
    }
    let checked = started.elapsed();

    // Restart the gateway: everyone comes back, with the same addresses.
    s.gateway.restart().unwrap();
    let restarted = Instant::now();
    let back = each(&s.clients, |i, c| {
        let took = ping_until(c, game.v4().into(), RECOVERY);
        let st = c.wait_status("a new handshake", Duration::from_secs(5), |st| {
            st.is_connected() && st.handshakes > before[i].handshakes
        });
        (took, st)
    });
    let mut times = Vec::new();
    for ((c, old), (took, st)) in s.clients.iter().zip(&before).zip(back) {
        let took = took.unwrap_or_else(|| panic!("{}: not back: {}", c.name(), c.log()));
        let st = st.unwrap();
        assert_eq!(
            (&st.ipv4, &st.ipv6),
            (&old.ipv4, &old.ipv6),
            "{}: new addresses after the restart",
            c.name()
        );
        assert_ne!(
            st.session_id,
            old.session_id,
            "{}: no new session",
            c.name()
        );
        times.push(took);
    }
    times.sort();
    let book = s.gateway.state().unwrap();
    for (c, old) in s.clients.iter().zip(&before) {
        let entry = book.entry(&c.public_key()).expect("in the address book");
        assert_eq!(entry.ipv4, old.ipv4_addr(), "{}", c.name());
    }
    eprintln!(
        "20 clients: world built in {built:?}, all up at {up:?}, checks done at {checked:?}; \
         after the gateway restart, traffic back in {:?} (median) .. {:?} (last); \
         all back and checked {:?} after the restart, {:?} in all",
        times[times.len() / 2],
        times[times.len() - 1],
        restarted.elapsed(),
        started.elapsed()
    );
}
