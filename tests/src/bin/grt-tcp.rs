//! A tiny TCP sink and sender for the namespace tests: bulk transfers with a content checksum.
//!
//! ```text
//! grt-tcp sink ADDR               accept connections (up to 64 at once); read each to EOF and
//!                                 answer "<bytes> <sha256 hex>\n" on it; exits by itself
//!                                 after 300 s
//! grt-tcp send DEST BYTES [SEED]  send BYTES of a pseudo-random stream made from SEED (default
//!                                 1), shut down the sending side, read the sink's answer and
//!                                 print "sent <bytes> <sha256>" and "received <bytes> <sha256>";
//!                                 exit status 0 when both match, 1 when not, 2 on errors
//! ```
//!
//! Every socket operation has a time limit, so neither side can hang a test. SHA-256 is
//! implemented here (FIPS 180-4, checked against its published vectors below) to keep the
//! tool std-only like `grt-udp`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// How long a sink lives at most.
const SINK_LIFETIME: Duration = Duration::from_secs(300);
/// Connections a sink serves at once.
const MAX_CONNECTIONS: usize = 64;
/// Time limit for connecting, and for each read or write.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest transfer a sink accepts (64 MiB).
const MAX_BYTES: u64 = 64 << 20;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["sink", addr] => addr.parse().map_err(|_| usage()).and_then(sink),
        ["send", dest, bytes, rest @ ..] if rest.len() <= 1 => {
            match (
                dest.parse(),
                bytes.parse(),
                rest.first().map_or(Ok(1), |s| s.parse()),
            ) {
                (Ok(dest), Ok(bytes), Ok(seed)) => send(dest, bytes, seed),
                _ => Err(usage()),
            }
        }
        _ => Err(usage()),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("grt-tcp: {e}");
            ExitCode::from(2)
        }
    }
}

fn usage() -> std::io::Error {
    std::io::Error::other("usage: grt-tcp sink ADDR | grt-tcp send DEST BYTES [SEED]")
}

fn sink(addr: SocketAddr) -> std::io::Result<bool> {
    let deadline = Instant::now() + SINK_LIFETIME;
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    eprintln!("sinking on {}", listener.local_addr()?);
    let active = Arc::new(AtomicUsize::new(0));
    while Instant::now() < deadline {
        match listener.accept() {
            Ok((stream, from)) if active.load(Ordering::SeqCst) < MAX_CONNECTIONS => {
                active.fetch_add(1, Ordering::SeqCst);
                let active = Arc::clone(&active);
                thread::spawn(move || {
                    match absorb(stream) {
                        Ok((n, digest)) => eprintln!("{from}: {n} bytes, sha256 {digest}"),
                        Err(e) => eprintln!("{from}: {e}"),
                    }
                    active.fetch_sub(1, Ordering::SeqCst);
                });
            }
            // Over the limit: the stream is dropped (closed) at once.
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Reads `stream` to EOF (bounded in size and time per read), answers with the count and digest.
fn absorb(mut stream: TcpStream) -> std::io::Result<(u64, String)> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut hash = Sha256::new();
    let mut total = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > MAX_BYTES {
            return Err(std::io::Error::other("transfer too large"));
        }
        hash.update(&buf[..n]);
    }
    let digest = hex(&hash.finish());
    stream.write_all(format!("{total} {digest}\n").as_bytes())?;
    Ok((total, digest))
}

fn send(dest: SocketAddr, bytes: u64, seed: u64) -> std::io::Result<bool> {
    let mut stream = TcpStream::connect_timeout(&dest, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut source = Stream::new(seed);
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        source.fill(&mut buf[..n]);
        hash.update(&buf[..n]);
        stream.write_all(&buf[..n])?;
        left -= n as u64;
    }
    stream.shutdown(Shutdown::Write)?;
    let sent = hex(&hash.finish());
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    println!("sent {bytes} {sent}");
    println!("received {}", answer.trim());
    Ok(answer.trim() == format!("{bytes} {sent}"))
}

/// The deterministic byte stream a sender sends: xorshift64* from `seed`.
struct Stream(u64);

impl Stream {
    fn new(seed: u64) -> Stream {
        Stream(seed.max(1))
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let v = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 (FIPS 180-4), streaming.
struct Sha256 {
    state: [u32; 8],
    block: [u8; 64],
    filled: usize,
    length: u64,
}

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

impl Sha256 {
    fn new() -> Sha256 {
        Sha256 {
            state: [
                0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
                0x5be0cd19,
            ],
            block: [0; 64],
            filled: 0,
            length: 0,
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        self.length = self.length.wrapping_add(data.len() as u64);
        while !data.is_empty() {
            let n = (64 - self.filled).min(data.len());
            self.block[self.filled..self.filled + n].copy_from_slice(&data[..n]);
            self.filled += n;
            data = &data[n..];
            if self.filled == 64 {
                self.compress();
                self.filled = 0;
            }
        }
    }

    fn finish(mut self) -> [u8; 32] {
        let bits = self.length.wrapping_mul(8);
        self.block[self.filled] = 0x80;
        self.block[self.filled + 1..].fill(0);
        if self.filled >= 56 {
            self.compress();
            self.block.fill(0);
        }
        self.block[56..].copy_from_slice(&bits.to_be_bytes());
        self.compress();
        let mut out = [0u8; 32];
        for (chunk, word) in out.chunks_mut(4).zip(self.state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    fn compress(&mut self) {
        let mut w = [0u32; 64];
        for (i, chunk) in self.block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = self.state;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = h
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            (h, g, f, e, d, c, b, a) = (g, f, e, d.wrapping_add(t1), c, b, a, t1.wrapping_add(t2));
        }
        for (s, v) in self.state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
            *s = s.wrapping_add(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(parts: &[&[u8]]) -> String {
        let mut h = Sha256::new();
        for part in parts {
            h.update(part);
        }
        hex(&h.finish())
    }

    #[test]
    fn sha256_matches_the_fips_180_vectors() {
        assert_eq!(
            digest(&[b""]),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            digest(&[b"abc"]),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // 56 bytes: the padding spills into a second block.
        let two_blocks = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        assert_eq!(
            digest(&[two_blocks]),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
        // Split across updates at odd places.
        assert_eq!(
            digest(&[&two_blocks[..3], &two_blocks[3..]]),
            digest(&[two_blocks])
        );
        let million = vec![b'a'; 1_000_000];
        assert_eq!(
            digest(&[&million[..1], &million[1..65], &million[65..]]),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
    }

    #[test]
    fn the_stream_is_deterministic_and_seeded() {
        let (mut a, mut b, mut c) = (Stream::new(7), Stream::new(7), Stream::new(8));
        let (mut x, mut y, mut z) = ([0u8; 37], [0u8; 37], [0u8; 37]);
        a.fill(&mut x);
        b.fill(&mut y);
        c.fill(&mut z);
        assert_eq!(x, y);
        assert_ne!(x, z);
    }
}
