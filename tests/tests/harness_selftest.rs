//! Self-test of the namespace harness: the topology behaves as the docs say, and cleans up.
//!
//! Needs root and the packages listed in `grelay_tests::netns`; fails (does not skip) without.
//! The tests run in parallel threads, each in its own world.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use grelay_tests::netns::nat::WAN_IF;
use grelay_tests::netns::{
    Capture, Host, Namespace, NatKind, Process, Result, Scratch, World, wait_until,
};

/// The reflector/prober helper built from `src/bin/grt-udp.rs`.
const UDP_TOOL: &str = env!("CARGO_BIN_EXE_grt-udp");
/// Reflector ports on the gateway.
const PORTS: [u16; 3] = [5000, 5001, 5002];
/// Source port the laptops probe from.
const LAPTOP_PORT: u16 = 40000;

/// Starts a reflector on every port in [`PORTS`] (IPv4 and IPv6) on `host`.
fn reflector(host: &Host, scratch: &Scratch) -> Result<Process> {
    let addrs: Vec<String> = PORTS.iter().map(|p| format!("[::]:{p}")).collect();
    let mut args = vec![UDP_TOOL, "reflect"];
    args.extend(addrs.iter().map(String::as_str));
    let log = scratch.file(&format!("reflect-{}.log", host.ns().name()));
    host.ns().spawn(&args, log)
}

/// Probes `dests` from `bind` inside `host`; returns the addresses the reflector saw, or
/// `None` when some destination never answered.
fn probe(host: &Host, bind: &str, dests: &[SocketAddr]) -> Result<Option<Vec<SocketAddr>>> {
    let dests: Vec<String> = dests.iter().map(ToString::to_string).collect();
    let mut args = vec![UDP_TOOL, "probe", bind];
    args.extend(dests.iter().map(String::as_str));
    let out = host.ns().exec(&args, Duration::from_secs(30))?;
    match out.status.code() {
        Some(0) => Ok(Some(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| l.parse().expect("grt-udp prints socket addresses"))
                .collect(),
        )),
        Some(1) => Ok(None),
        _ => panic!(
            "grt-udp probe failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn gateway_dests(gateway: &Host, v6: bool) -> Vec<SocketAddr> {
    let ip: IpAddr = if v6 {
        gateway.v6().into()
    } else {
        gateway.v4().into()
    };
    PORTS.iter().map(|&p| SocketAddr::new(ip, p)).collect()
}

#[test]
fn endpoint_independent_nat_maps_one_port_and_hides_the_laptop() -> Result<()> {
    let scratch = Scratch::new("ei-nat")?;
    let mut world = World::new()?;
    let gateway = world.add_public_host("gateway")?;
    let mut nat = world.add_nat(NatKind::EndpointIndependent)?;
    let laptop = nat.add_host("laptop")?;
    let _reflector = reflector(&gateway, &scratch)?;

    assert!(
        laptop
            .ns()
            .ping(gateway.v4().into(), Duration::from_secs(3))?
    );
    assert!(
        laptop
            .ns()
            .ping(gateway.v6().into(), Duration::from_secs(3))?
    );
    // No route from the internet into the private LAN.
    assert!(
        !gateway
            .ns()
            .ping(laptop.v4().into(), Duration::from_secs(1))?
    );

    let capture = Capture::start(
        gateway.ns(),
        gateway.iface(),
        "udp",
        scratch.file("gw.pcap"),
    )?;
    let bind = format!("0.0.0.0:{LAPTOP_PORT}");
    let seen = probe(&laptop, &bind, &gateway_dests(&gateway, false))?
        .expect("the gateway answers through an EI NAT");
    // One mapping for all three destinations, and Linux masquerade preserves the port.
    let public = SocketAddr::new(nat.public_v4().into(), LAPTOP_PORT);
    assert_eq!(seen, vec![public; PORTS.len()]);

    let rows = capture
        .stop()?
        .read_fields(&["ip.src", "udp.srcport", "udp.dstport"])?;
    let inbound: Vec<_> = rows
        .iter()
        .filter(|r| r[2].parse().is_ok_and(|p| PORTS.contains(&p)))
        .collect();
    assert!(!inbound.is_empty(), "capture saw no probe: {rows:?}");
    for row in inbound {
        assert_eq!(
            row[0],
            nat.public_v4().to_string(),
            "laptop address leaked: {row:?}"
        );
        assert_ne!(row[0], laptop.v4().to_string());
    }

    // IPv6 goes through NAT66 the same way.
    let seen6 = probe(
        &laptop,
        &format!("[::]:{LAPTOP_PORT}"),
        &gateway_dests(&gateway, true),
    )?
    .expect("the gateway answers over IPv6");
    let public6 = SocketAddr::new(nat.public_v6().into(), LAPTOP_PORT);
    assert_eq!(seen6, vec![public6; PORTS.len()]);

    // A second laptop using the same source port towards the same destination must get
    // another public port: the NAT has to keep the two apart.
    let laptop2 = nat.add_host("laptop2")?;
    let dest = &gateway_dests(&gateway, false)[..1];
    let seen2 = probe(&laptop2, &bind, dest)?.expect("second laptop reaches the gateway");
    assert_eq!(seen2[0].ip(), IpAddr::from(nat.public_v4()));
    assert_ne!(seen2[0].port(), LAPTOP_PORT);

    // Rebinding: a new public address, and the flows reappear from it.
    let new_public = nat.set_public_v4(77)?;
    let seen = probe(&laptop, &bind, dest)?.expect("the gateway answers after rebinding");
    assert_eq!(seen[0], SocketAddr::new(new_public.into(), LAPTOP_PORT));
    Ok(())
}

#[test]
fn symmetric_nat_maps_each_destination_to_its_own_port() -> Result<()> {
    let scratch = Scratch::new("sym-nat")?;
    let mut world = World::new()?;
    let gateway = world.add_public_host("gateway")?;
    let mut nat = world.add_nat(NatKind::Symmetric)?;
    let laptop = nat.add_host("laptop")?;
    let _reflector = reflector(&gateway, &scratch)?;

    let seen = probe(
        &laptop,
        &format!("0.0.0.0:{LAPTOP_PORT}"),
        &gateway_dests(&gateway, false),
    )?
    .expect("the gateway answers through a symmetric NAT");
    assert!(
        seen.iter().all(|a| a.ip() == IpAddr::from(nat.public_v4())),
        "{seen:?}"
    );
    // Random ports: three equal ones would happen with probability about 2^-32.
    assert!(
        seen.iter().any(|a| a.port() != seen[0].port()),
        "one mapping: {seen:?}"
    );
    Ok(())
}

#[test]
fn back_end_is_reachable_only_from_its_gateway() -> Result<()> {
    let mut world = World::new()?;
    let gateway = world.add_public_host("gateway")?;
    let game = world.add_private_link(&gateway, "game")?;
    let mut nat = world.add_nat(NatKind::EndpointIndependent)?;
    let laptop = nat.add_host("laptop")?;

    assert!(
        gateway
            .ns()
            .ping(game.v4().into(), Duration::from_secs(3))?
    );
    assert!(
        gateway
            .ns()
            .ping(game.v6().into(), Duration::from_secs(3))?
    );
    assert!(
        game.ns()
            .ping(game.router_v4().into(), Duration::from_secs(3))?
    );
    assert!(
        laptop
            .ns()
            .ping(gateway.v4().into(), Duration::from_secs(3))?
    );
    // No leak: neither the laptop nor the internet router can reach the private link.
    assert!(!laptop.ns().ping(game.v4().into(), Duration::from_secs(1))?);
    assert!(!laptop.ns().ping(game.v6().into(), Duration::from_secs(1))?);
    let lookup = world.internet().exec(
        &["ip", "route", "get", &game.v4().to_string()],
        Duration::from_secs(5),
    )?;
    assert!(
        !lookup.status.success(),
        "the internet routes to the back end"
    );
    Ok(())
}

#[test]
fn drop_rules_block_udp_and_loss_drops_packets() -> Result<()> {
    let scratch = Scratch::new("impair")?;
    let mut world = World::new()?;
    let gateway = world.add_public_host("gateway")?;
    let mut nat = world.add_nat(NatKind::EndpointIndependent)?;
    let laptop = nat.add_host("laptop")?;
    let _reflector = reflector(&gateway, &scratch)?;
    let bind = format!("0.0.0.0:{LAPTOP_PORT}");
    let dests = gateway_dests(&gateway, false);

    assert!(probe(&laptop, &bind, &dests[..1])?.is_some());
    nat.router().block_udp(Some(PORTS[0]))?;
    assert_eq!(
        probe(&laptop, &bind, &dests[..1])?,
        None,
        "port block let UDP through"
    );
    // Other ports still pass, and ICMP is untouched.
    assert!(probe(&laptop, &bind, &dests[1..2])?.is_some());
    assert!(
        laptop
            .ns()
            .ping(gateway.v4().into(), Duration::from_secs(3))?
    );
    nat.router().block_udp(None)?;
    assert_eq!(
        probe(&laptop, &bind, &dests[1..2])?,
        None,
        "UDP block let UDP through"
    );
    nat.router().unblock_udp()?;
    assert!(probe(&laptop, &bind, &dests[..1])?.is_some());

    // 50 % loss each way on the NAT's uplink: about a quarter of the round trips survive.
    nat.router().set_loss(WAN_IF, 50)?;
    let out = laptop.ns().exec(
        &[
            "ping",
            "-n",
            "-q",
            "-c",
            "200",
            "-i",
            "0.002",
            "-W",
            "1",
            &gateway.v4().to_string(),
        ],
        Duration::from_secs(20),
    )?;
    let summary = String::from_utf8_lossy(&out.stdout).into_owned();
    let received: u32 = summary
        .split(", ")
        .find_map(|part| part.strip_suffix(" received"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no ping summary in {summary:?}"));
    assert!(
        (10..=100).contains(&received),
        "{received}/200 survived 50% loss each way"
    );
    nat.router().clear_loss(WAN_IF)?;
    assert!(
        laptop
            .ns()
            .ping(gateway.v4().into(), Duration::from_secs(3))?
    );
    Ok(())
}

#[test]
fn namespaces_and_processes_are_gone_after_drop() -> Result<()> {
    let scratch = Scratch::new("cleanup")?;
    let (names, pid) = {
        let mut world = World::new()?;
        let gateway = world.add_public_host("gateway")?;
        let nat = world.add_nat(NatKind::Symmetric)?;
        let sleeper = gateway
            .ns()
            .spawn(&["sleep", "60"], scratch.file("sleep.log"))?;
        assert!(sleeper.is_running());
        let pid = sleeper.pid();
        // Leak the guard: the namespace alone must still stop the process.
        std::mem::forget(sleeper);
        let names = [
            world.internet().name().to_owned(),
            gateway.ns().name().to_owned(),
            nat.router().name().to_owned(),
        ];
        assert!(names.iter().all(|n| listed(n)));
        (names, pid)
    };
    for name in &names {
        assert!(!listed(name), "{name} still exists");
    }
    // The leaked child was killed and then reaped by the kernel's init or is a zombie of
    // ours; either way it no longer runs.
    assert!(
        wait_until(Duration::from_secs(5), || !running(pid)),
        "pid {pid} survived"
    );

    // A panicking test still cleans up (Drop runs during unwind).
    let name = std::thread::spawn(|| {
        let ns = Namespace::new("panicky").expect("namespace");
        let name = ns.name().to_owned();
        std::panic::panic_any(name);
    })
    .join()
    .expect_err("the thread panicked")
    .downcast::<String>()
    .expect("panic payload is the name");
    assert!(!listed(&name), "{name} survived a panic");
    Ok(())
}

fn listed(name: &str) -> bool {
    let list = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&list.stdout)
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name))
}

/// True while `pid` exists and is not a zombie.
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        })
        .unwrap_or(false)
}
