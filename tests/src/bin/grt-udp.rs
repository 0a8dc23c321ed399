//! A tiny UDP reflector and prober for the namespace tests (a STUN-like address check).
//!
//! ```text
//! grt-udp reflect ADDR...      answer every datagram with the sender's address as text
//!                              ("198.18.2.2:40000"); exits by itself after 120 s
//! grt-udp probe BIND DEST...   from one socket bound to BIND, ask each DEST in turn and print
//!                              its answer on a line; up to 10 tries 200 ms apart per DEST;
//!                              exit status 1 when some DEST never answered, 2 on bad usage
//! ```

use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

/// How long a reflector lives at most.
const REFLECT_LIFETIME: Duration = Duration::from_secs(120);
/// Tries per destination when probing.
const PROBE_TRIES: u32 = 10;
/// Wait for an answer per try.
const PROBE_WAIT: Duration = Duration::from_millis(200);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addrs: Result<Vec<SocketAddr>, _> = args.iter().skip(1).map(|a| a.parse()).collect();
    let result = match (args.first().map(String::as_str), addrs) {
        (Some("reflect"), Ok(addrs)) if !addrs.is_empty() => reflect(&addrs),
        (Some("probe"), Ok(addrs)) if addrs.len() >= 2 => probe(addrs[0], &addrs[1..]),
        _ => {
            eprintln!("usage: grt-udp reflect ADDR... | grt-udp probe BIND DEST...");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("grt-udp: {e}");
            ExitCode::from(2)
        }
    }
}

fn reflect(addrs: &[SocketAddr]) -> std::io::Result<bool> {
    let deadline = Instant::now() + REFLECT_LIFETIME;
    let mut workers = Vec::new();
    for addr in addrs {
        let socket = UdpSocket::bind(addr)?;
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        eprintln!("reflecting on {}", socket.local_addr()?);
        workers.push(thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while Instant::now() < deadline {
                if let Ok((_, from)) = socket.recv_from(&mut buf) {
                    // Dual-stack sockets see IPv4 peers as ::ffff:a.b.c.d; answer a.b.c.d.
                    let seen = SocketAddr::new(from.ip().to_canonical(), from.port());
                    // A lost answer is retried by the prober.
                    let _ = socket.send_to(seen.to_string().as_bytes(), from);
                }
            }
        }));
    }
    for worker in workers {
        let _ = worker.join();
    }
    Ok(true)
}

fn probe(bind: SocketAddr, dests: &[SocketAddr]) -> std::io::Result<bool> {
    let socket = UdpSocket::bind(bind)?;
    socket.set_read_timeout(Some(PROBE_WAIT))?;
    let mut all = true;
    for dest in dests {
        match ask(&socket, *dest)? {
            Some(answer) => println!("{answer}"),
            None => {
                eprintln!("no answer from {dest}");
                all = false;
            }
        }
    }
    Ok(all)
}

fn ask(socket: &UdpSocket, dest: SocketAddr) -> std::io::Result<Option<String>> {
    let mut buf = [0u8; 1500];
    for _ in 0..PROBE_TRIES {
        socket.send_to(b"probe", dest)?;
        let deadline = Instant::now() + PROBE_WAIT;
        while Instant::now() < deadline {
            match socket.recv_from(&mut buf) {
                Ok((n, from)) if from == dest => {
                    return Ok(Some(String::from_utf8_lossy(&buf[..n]).into_owned()));
                }
                // Stray datagrams (late answers to another destination) are skipped.
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(None)
}
