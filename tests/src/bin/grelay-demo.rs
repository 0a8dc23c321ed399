//! The one-command demo: a laptop behind a home NAT, the internet, a gateway and a game server,
//! each a network namespace on this machine; `grelay` brings the tunnel up and the demo shows
//! what a player wants to see. Everything it made is removed when it ends, also on Ctrl-C.
//!
//! ```text
//! sudo cargo run -p grelay-tests --bin grelay-demo
//! ```
//!
//! Traffic stays inside the namespaces the demo creates (198.18.0.0/15, 10.x inside them);
//! nothing is linked to this machine's own network.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use grelay_tests::netns::{Error, Namespace, Result, require_root};
use grelay_tests::scenario::{Scenario, tcp_transfer, udp_probe};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn main() -> ExitCode {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let result = demo();
    println!("\ncleaning up: namespaces, processes and files removed");
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo stopped: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Stops the demo between steps once Ctrl-C was pressed; what was built is dropped on return.
fn step(n: u32, title: &str) -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        return Err(Error::Invalid("interrupted".into()));
    }
    println!("\n[{n}/6] {title}");
    Ok(())
}

fn demo() -> Result<()> {
    require_root()?;
    println!("grelay demo: GRE over UDP with Noise, in network namespaces on this machine\n");
    println!("  laptop ── home NAT ── internet ── gateway ── game server");
    println!("  (grelay up)  (masquerade)        (grelay-gateway)  (UDP echo, TCP sink, iperf3)");

    step(1, "building the world (and the binaries, if needed)")?;
    let started = Instant::now();
    let mut s = Scenario::home_setup("grelay-demo")?;
    let gateway_ip = s.gateway.host().v4();
    let game_ip = s.game.host().v4();
    let laptop_ip = s.client("laptop").host().v4();
    println!(
        "  laptop {laptop_ip} behind a NAT, gateway {gateway_ip}, game server {game_ip} \
         (reachable only through the gateway) — ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let laptop_ns = s.client("laptop").ns().name().to_owned();
    let unreachable = !s
        .client("laptop")
        .ns()
        .ping(game_ip.into(), Duration::from_millis(500))?;
    println!(
        "  without the tunnel the game server is {}",
        if unreachable {
            "unreachable, as it should be"
        } else {
            "REACHABLE (unexpected)"
        }
    );

    step(2, "starting the gateway and `grelay up` on the laptop")?;
    let t = Instant::now();
    s.start_all()?;
    let laptop = s.client("laptop");
    let status = laptop.wait_connected(1, Duration::from_secs(10))?;
    println!(
        "  handshake done, tunnel configured in {:.0} ms (Noise IKpsk2, {})",
        t.elapsed().as_secs_f64() * 1000.0,
        status.cipher.as_deref().unwrap_or("?")
    );
    println!(
        "  gateway {} (public key {})",
        s.gateway.endpoint(),
        s.gateway.public_key()
    );
    println!(
        "  virtual addresses: {} {}",
        status.ipv4.as_deref().unwrap_or("-"),
        status.ipv6.as_deref().unwrap_or("")
    );

    step(3, "round-trip time (20 pings each)")?;
    let direct = ping_stats(laptop.ns(), &gateway_ip.to_string())?;
    let tunnel = ping_stats(laptop.ns(), &game_ip.to_string())?;
    println!("  laptop → gateway, plain (no tunnel):      {direct}");
    println!("  laptop → game server, through the tunnel: {tunnel}");
    let seen = udp_probe(laptop.ns(), s.game.udp_addr())?;
    println!(
        "  UDP echo from the game server: it saw the laptop as {} (the gateway's NAT)",
        seen.map_or("nothing".to_owned(), |a| a.to_string())
    );

    step(4, "throughput through the tunnel")?;
    let transfer = tcp_transfer(laptop.ns(), s.game.tcp_addr(), 8 << 20, 1)?;
    println!(
        "  8 MiB over TCP: sha256 {}",
        if transfer.intact() {
            "matches at the game server"
        } else {
            "DIFFERS"
        }
    );
    match iperf3(s.game.ns(), laptop.ns(), &game_ip.to_string()) {
        Ok(gbps) => println!("  iperf3, one TCP stream, 3 s: {gbps:.2} Gb/s (debug build)"),
        Err(e) => println!("  iperf3 not run: {e}"),
    }

    step(5, "grelay status")?;
    let text = laptop.grelay_ok(&["status"])?;
    for line in text.lines() {
        println!("  {line}");
    }

    step(6, "grelay down")?;
    let laptop = s.client_mut("laptop");
    laptop.down()?;
    println!("  tunnel, routes, rules and addresses removed from namespace {laptop_ns}");
    Ok(())
}

/// `min/avg/max` of 20 pings, as text.
fn ping_stats(ns: &Namespace, dst: &str) -> Result<String> {
    let out = ns.run_timeout(
        &["ping", "-n", "-q", "-c", "20", "-i", "0.05", "-W", "1", dst],
        Duration::from_secs(10),
    )?;
    let rtt = out
        .lines()
        .find_map(|l| l.split_once(" = ").filter(|(k, _)| k.starts_with("rtt")))
        .map(|(_, v)| v.trim().to_owned());
    let loss = out
        .lines()
        .find(|l| l.contains("packet loss"))
        .and_then(|l| l.split(", ").find(|p| p.contains("packet loss")))
        .unwrap_or("? loss");
    Ok(match rtt {
        Some(v) => format!("min/avg/max/mdev {v}, {loss}"),
        None => format!("no answer ({loss})"),
    })
}

/// Gb/s of a 3-second iperf3 run from `client` to a one-shot server in `server`.
fn iperf3(server: &Namespace, client: &Namespace, at: &str) -> Result<f64> {
    let log = std::env::temp_dir().join(format!("grelay-demo-iperf3-{}.log", std::process::id()));
    let _server = server.spawn(&["iperf3", "-s", "-1", "-B", at, "-p", "5201"], &log)?;
    std::thread::sleep(Duration::from_millis(300));
    let out = client.run_timeout(
        &["iperf3", "-c", at, "-p", "5201", "-t", "3", "-J"],
        Duration::from_secs(15),
    );
    let _ = std::fs::remove_file(&log);
    let json: serde_json::Value =
        serde_json::from_str(&out?).map_err(|e| Error::Invalid(format!("iperf3 output: {e}")))?;
    json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .map(|b| b / 1e9)
        .ok_or_else(|| Error::Invalid("iperf3 gave no throughput".into()))
}
