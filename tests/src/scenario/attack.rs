//! What an attacker on the internet sends to the gateway's port: crafted datagrams from its own
//! address ([`send_datagrams`], [`flood`]), datagrams with a forged source address
//! ([`send_spoofed`], with scapy), and real clients' datagrams read back from a capture for
//! replaying ([`captured_datagrams`]).
//!
//! Every sender is bounded in count and time, and counts the answers that reach it.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use super::inside::in_namespace;
use crate::netns::gre_peer::{PYTHON, SCAPY_PACKAGE};
use crate::netns::{Error, Namespace, Pcap, Result};

/// How long a sender listens for answers after its last datagram.
const LINGER: Duration = Duration::from_millis(500);
/// Time limit of a scapy run.
const SCAPY_TIMEOUT: Duration = Duration::from_secs(60);

/// What a sender did and got back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sent {
    /// Datagrams sent.
    pub sent: usize,
    /// Datagrams that came back to the sending socket.
    pub answers: usize,
}

/// Sends each of `payloads` from one socket in `ns` to `dest`, `gap` apart, then listens a
/// moment for answers.
pub fn send_datagrams(
    ns: &Namespace,
    dest: SocketAddr,
    payloads: Vec<Vec<u8>>,
    gap: Duration,
) -> Result<Sent> {
    run_sender(ns, dest, move |sock, sent| {
        for p in &payloads {
            if sock.send_to(p, dest).is_ok() {
                sent.sent += 1;
            }
            sent.answers += drain(sock, gap);
        }
    })
}

/// Sends up to `count` random datagrams (for at most `max_time`) from one socket in `ns` to
/// `dest`: random lengths and bytes, a quarter of them shaped like the protocol's messages
/// (an initiation's exact length and type byte, a data header with a random session id) so
/// that they pass the first length and type checks.
pub fn flood(
    ns: &Namespace,
    dest: SocketAddr,
    count: usize,
    max_time: Duration,
    seed: u64,
) -> Result<Sent> {
    run_sender(ns, dest, move |sock, sent| {
        let mut rng = seed.max(1);
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let deadline = Instant::now() + max_time;
        let mut buf = [0u8; 1400];
        for i in 0..count {
            if Instant::now() >= deadline {
                break;
            }
            let len = match i % 8 {
                0 => 148,
                1 => 16 + 16 + (next() % 200) as usize,
                _ => (next() % buf.len() as u64) as usize,
            };
            for b in &mut buf[..len] {
                *b = next() as u8;
            }
            if len >= 4 && i % 8 < 2 {
                buf[0] = if i % 8 == 0 { 1 } else { 4 };
                buf[1..4].fill(0);
            }
            if sock.send_to(&buf[..len], dest).is_ok() {
                sent.sent += 1;
            }
            if i % 256 == 0 {
                sent.answers += drain(sock, Duration::ZERO);
            }
        }
    })
}

/// Runs `send` on a thread inside `ns` with a fresh socket, then listens for [`LINGER`].
fn run_sender(
    ns: &Namespace,
    dest: SocketAddr,
    send: impl FnOnce(&UdpSocket, &mut Sent) + Send + 'static,
) -> Result<Sent> {
    let bind: SocketAddr = if dest.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    in_namespace(ns, move || -> std::io::Result<Sent> {
        let sock = UdpSocket::bind(bind)?;
        let mut sent = Sent::default();
        send(&sock, &mut sent);
        sent.answers += drain(&sock, LINGER);
        Ok(sent)
    })
    .join()
    .map_err(|_| Error::Invalid("the sender thread panicked".into()))?
    .map_err(|e| Error::io("sending crafted datagrams", e))
}

/// Counts datagrams arriving on `sock` within `wait` (at least one non-blocking look).
fn drain(sock: &UdpSocket, wait: Duration) -> usize {
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 2048];
    let mut n = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let got = if left.is_zero() {
            sock.set_nonblocking(true)
                .and_then(|()| sock.recv_from(&mut buf))
        } else {
            sock.set_nonblocking(false)
                .and_then(|()| sock.set_read_timeout(Some(left)))
                .and_then(|()| sock.recv_from(&mut buf))
        };
        match got {
            Ok(_) => n += 1,
            Err(_) if left.is_zero() => return n,
            Err(_) => {}
        }
    }
}

/// Sends each of `payloads` from `ns` as a UDP datagram with the forged source `src` to `dest`
/// (scapy, raw IP; the payloads go through the hex file `work`).
pub fn send_spoofed(
    ns: &Namespace,
    src: SocketAddr,
    dest: SocketAddr,
    payloads: &[Vec<u8>],
    work: &Path,
) -> Result<()> {
    let lines: Vec<String> = payloads.iter().map(|p| hex(p)).collect();
    std::fs::write(work, lines.join("\n"))
        .map_err(|e| Error::io(format!("writing {}", work.display()), e))?;
    let script = "import sys\n\
        from scapy.all import IP, IPv6, UDP, Raw, send\n\
        src, sport, dst, dport, path = sys.argv[1:6]\n\
        L3 = IPv6 if ':' in dst else IP\n\
        pkts = [L3(src=src, dst=dst) / UDP(sport=int(sport), dport=int(dport)) / Raw(load=bytes.fromhex(l))\n\
        \x20       for l in open(path).read().split()]\n\
        send(pkts, verbose=0, inter=0.002)\n\
        print(len(pkts))\n";
    let (sport, dport) = (src.port().to_string(), dest.port().to_string());
    let (sip, dip) = (src.ip().to_string(), dest.ip().to_string());
    let path = work.to_string_lossy();
    let args = [PYTHON, "-c", script, &sip, &sport, &dip, &dport, &path];
    let out = ns.exec(&args, SCAPY_TIMEOUT)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "scapy ({PYTHON}, package {SCAPY_PACKAGE}) failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

/// One UDP datagram read from a capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// Its source.
    pub src: SocketAddr,
    /// Its destination.
    pub dst: SocketAddr,
    /// Its UDP payload.
    pub payload: Vec<u8>,
}

/// Every IPv4 UDP datagram in `pcap`, in capture order.
pub fn captured_datagrams(pcap: &Pcap) -> Result<Vec<Datagram>> {
    let rows = pcap.read_fields(&[
        "ip.src",
        "udp.srcport",
        "ip.dst",
        "udp.dstport",
        "udp.payload",
    ])?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let addr = |ip: &String, port: &String| -> Option<SocketAddr> {
                Some(SocketAddr::new(ip.parse().ok()?, port.parse().ok()?))
            };
            Some(Datagram {
                src: addr(r.first()?, r.get(1)?)?,
                dst: addr(r.get(2)?, r.get(3)?)?,
                payload: unhex(r.get(4)?)?,
            })
        })
        .collect())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes tshark's hex bytes (with or without `:` separators).
fn unhex(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = text.bytes().filter(|&b| b != b':').collect();
    if digits.len() % 2 != 0 {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_with_and_without_colons() {
        assert_eq!(unhex("01ff00"), Some(vec![1, 255, 0]));
        assert_eq!(unhex("01:ff:00"), Some(vec![1, 255, 0]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex(&hex(&[4, 0, 0, 0, 9])), Some(vec![4, 0, 0, 0, 9]));
    }
}
