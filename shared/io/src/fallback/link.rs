//! Drivers that move outer datagrams over one fallback connection, used by both binaries.
//!
//! * [`drive_stream`]: a TLS stream (or any byte stream): each datagram behind a 2-byte
//!   length ([`grelay_proto::wire::stream`]). A zero or oversized length ends the connection
//!   (there is nothing to resynchronise on).
//! * [`drive_quic`]: a QUIC connection: each datagram in one RFC 9221 DATAGRAM frame; one that
//!   does not fit the path's current datagram size (QUIC starts at 1200 bytes and raises it by
//!   path MTU discovery) goes on a unidirectional stream with the same length framing, so a
//!   full-size packet is delayed rather than lost.
//!
//! Incoming datagrams are handed to the owner through a bounded channel (back-pressure on the
//! connection when the owner is busy); outgoing ones come from the link's
//! [`DatagramQueue`], which drops the oldest when the path is slow.
//! Deadlines: until [`LinkState::authenticate`] is called (the owner saw an authenticated
//! datagram from this connection) the connection lives at most `handshake`; after, it ends
//! when nothing arrived for `idle`; a write that makes no progress for `write` ends it too.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use grelay_proto::wire::stream::{PREFIX_LEN, next_datagram, prefix};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::queue::DatagramQueue;

/// Bytes framed into one write on a stream (several small datagrams share a TLS record).
const WRITE_BATCH: usize = 16 * 1024;

/// What the owner and the driver of one link share.
#[derive(Debug, Default)]
pub struct LinkState {
    /// Outgoing datagrams.
    pub queue: DatagramQueue,
    authenticated: AtomicBool,
}

impl LinkState {
    /// A link with the default queue bounds.
    pub fn new() -> Self {
        Self::default()
    }

    /// The owner saw an authenticated datagram on this link: from now on only the idle
    /// timeout applies.
    pub fn authenticate(&self) {
        self.authenticated.store(true, Ordering::Relaxed);
    }

    /// Whether [`authenticate`](Self::authenticate) was called.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated.load(Ordering::Relaxed)
    }

    /// Asks the driver to close the connection (the queue is closed; the driver returns
    /// [`End::Shutdown`]).
    pub fn shutdown(&self) {
        self.queue.close();
    }
}

/// A link's time limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Until authenticated, the connection lives at most this long (`None`: no limit).
    pub handshake: Option<Duration>,
    /// After, it ends when no datagram arrived for this long.
    pub idle: Duration,
    /// A write (or stream open) that takes longer ends the connection.
    pub write: Duration,
}

/// Why a driver returned.
#[derive(Debug)]
#[non_exhaustive]
pub enum End {
    /// The peer closed the connection.
    PeerClosed,
    /// The connection failed.
    Io(std::io::Error),
    /// The QUIC connection ended.
    Quic(quinn::ConnectionError),
    /// A frame with a zero or oversized length prefix (or an oversized QUIC datagram).
    BadFrame {
        /// The length it announced.
        len: usize,
    },
    /// Not authenticated within the handshake limit.
    HandshakeTimeout,
    /// Nothing received for the idle limit.
    Idle,
    /// A write made no progress within the write limit.
    WriteStalled,
    /// The owner asked ([`LinkState::shutdown`]).
    Shutdown,
    /// The owner's channel is gone.
    ReceiverGone,
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            End::PeerClosed => write!(f, "closed by the peer"),
            End::Io(e) => write!(f, "{e}"),
            End::Quic(e) => write!(f, "{e}"),
            End::BadFrame { len } => write!(f, "bad frame length {len}"),
            End::HandshakeTimeout => write!(f, "no valid handshake in time"),
            End::Idle => write!(f, "idle"),
            End::WriteStalled => write!(f, "peer stopped reading"),
            End::Shutdown => write!(f, "closed"),
            End::ReceiverGone => write!(f, "shutting down"),
        }
    }
}

/// Reassembles length-prefixed datagrams from a byte stream in a fixed buffer.
#[derive(Debug)]
pub struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    filled: usize,
    max: usize,
}

impl FrameReader {
    /// A reader for datagrams of at most `max` bytes (room for two whole frames).
    pub fn new(max: usize) -> Self {
        Self {
            buf: vec![0; 2 * (PREFIX_LEN + max)],
            start: 0,
            filled: 0,
            max,
        }
    }

    /// Where the next read goes (never empty after [`next_datagram`](Self::next_datagram) returned `Ok(None)`).
    pub fn spare(&mut self) -> &mut [u8] {
        &mut self.buf[self.filled..]
    }

    /// `n` bytes were read into [`spare`](Self::spare).
    pub fn advance(&mut self, n: usize) {
        self.filled = (self.filled + n).min(self.buf.len());
    }

    /// The next complete datagram, `Ok(None)` when more bytes are needed, or the bad length.
    pub fn next_datagram(&mut self) -> Result<Option<Vec<u8>>, usize> {
        let pending = &self.buf[self.start..self.filled];
        match next_datagram(pending, self.max) {
            Ok(Some(range)) => {
                let datagram = pending[range.clone()].to_vec();
                self.start += range.end;
                Ok(Some(datagram))
            }
            Ok(None) => {
                self.buf.copy_within(self.start..self.filled, 0);
                self.filled -= self.start;
                self.start = 0;
                Ok(None)
            }
            Err(_) => Err(usize::from(u16::from_be_bytes([pending[0], pending[1]]))),
        }
    }

    /// Bytes held that do not form a whole datagram yet.
    pub fn pending(&self) -> usize {
        self.filled - self.start
    }
}

/// Appends queued datagrams, framed, to `out` until it holds about [`WRITE_BATCH`] bytes.
fn frame_batch(queue: &DatagramQueue, out: &mut Vec<u8>) {
    while out.len() < WRITE_BATCH {
        let Some(d) = queue.pop() else { return };
        // Datagrams come from the core (at most a few KiB); anything unframeable is dropped.
        if let Ok(p) = prefix(d.len()) {
            out.extend_from_slice(&p);
            out.extend_from_slice(&d);
        }
    }
}

fn deadline(state: &LinkState, t: &Timeouts, started: Instant, last_rx: Instant) -> Instant {
    match t.handshake {
        Some(limit) if !state.is_authenticated() => started + limit,
        _ => last_rx + t.idle,
    }
}

fn timed_out(state: &LinkState) -> End {
    if state.is_authenticated() {
        End::Idle
    } else {
        End::HandshakeTimeout
    }
}

/// Hands every complete datagram in `reader` to the event loop, noting when the last one
/// came; the link's end when the stream is broken or the loop is gone.
async fn forward_frames<E>(
    reader: &mut FrameReader,
    tx: &mpsc::Sender<E>,
    wrap: &impl Fn(Vec<u8>) -> E,
    last_rx: &mut Instant,
) -> Result<(), End> {
    loop {
        match reader.next_datagram() {
            Ok(Some(d)) => {
                *last_rx = Instant::now();
                if tx.send(wrap(d)).await.is_err() {
                    return Err(End::ReceiverGone);
                }
            }
            Ok(None) => return Ok(()),
            Err(len) => return Err(End::BadFrame { len }),
        }
    }
}

/// Runs a framed byte stream until it ends; see the module doc.
pub async fn drive_stream<S, E>(
    stream: S,
    state: &LinkState,
    max: usize,
    timeouts: Timeouts,
    tx: &mpsc::Sender<E>,
    wrap: impl Fn(Vec<u8>) -> E,
) -> End
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut reader = FrameReader::new(max);
    let mut out = Vec::with_capacity(WRITE_BATCH + PREFIX_LEN + max);
    let started = Instant::now();
    let mut last_rx = started;
    loop {
        let until = deadline(state, &timeouts, started, last_rx);
        tokio::select! {
            read = rd.read(reader.spare()) => match read {
                Ok(0) => return End::PeerClosed,
                Ok(n) => {
                    reader.advance(n);
                    if let Err(end) = forward_frames(&mut reader, tx, &wrap, &mut last_rx).await {
                        return end;
                    }
                }
                Err(e) => return End::Io(e),
            },
            () = state.queue.wait() => {
                if state.queue.is_closed() {
                    let _ = tokio::time::timeout(timeouts.write, wr.shutdown()).await;
                    return End::Shutdown;
                }
                out.clear();
                frame_batch(&state.queue, &mut out);
                let write = async {
                    wr.write_all(&out).await?;
                    wr.flush().await
                };
                match tokio::time::timeout(timeouts.write, write).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return End::Io(e),
                    Err(_) => return End::WriteStalled,
                }
            }
            () = tokio::time::sleep_until(until) => {
                // The deadline may have moved (authenticated meanwhile): check again.
                if Instant::now() >= deadline(state, &timeouts, started, last_rx) {
                    return timed_out(state);
                }
            }
        }
    }
}

/// Runs a QUIC connection until it ends; see the module doc.
pub async fn drive_quic<E>(
    conn: &quinn::Connection,
    state: &LinkState,
    max: usize,
    timeouts: Timeouts,
    tx: &mpsc::Sender<E>,
    wrap: impl Fn(Vec<u8>) -> E,
) -> End {
    let mut uni_in: Option<quinn::RecvStream> = None;
    let mut reader = FrameReader::new(max);
    let mut uni_out: Option<quinn::SendStream> = None;
    let started = Instant::now();
    let mut last_rx = started;
    loop {
        let until = deadline(state, &timeouts, started, last_rx);
        tokio::select! {
            datagram = conn.read_datagram() => match datagram {
                Ok(d) if d.is_empty() || d.len() > max => return End::BadFrame { len: d.len() },
                Ok(d) => {
                    last_rx = Instant::now();
                    if tx.send(wrap(d.to_vec())).await.is_err() {
                        return End::ReceiverGone;
                    }
                }
                Err(e) => return End::Quic(e),
            },
            stream = conn.accept_uni(), if uni_in.is_none() => match stream {
                Ok(s) => uni_in = Some(s),
                Err(e) => return End::Quic(e),
            },
            read = async { uni_in.as_mut()?.read(reader.spare()).await.ok() }, if uni_in.is_some() => {
                match read {
                    Some(Some(n)) => {
                        reader.advance(n);
                        if let Err(end) = forward_frames(&mut reader, tx, &wrap, &mut last_rx).await {
                            return end;
                        }
                    }
                    // Finished or reset: the peer may open another one.
                    _ => uni_in = None,
                }
            }
            () = state.queue.wait() => {
                if state.queue.is_closed() {
                    conn.close(0u32.into(), b"closed");
                    return End::Shutdown;
                }
                while let Some(d) = state.queue.pop() {
                    let fits = conn.max_datagram_size().is_some_and(|m| d.len() <= m);
                    let d = if fits {
                        match conn.send_datagram(Bytes::from(d)) {
                            Ok(()) => continue,
                            Err(quinn::SendDatagramError::ConnectionLost(e)) => return End::Quic(e),
                            Err(_) => continue,
                        }
                    } else {
                        d
                    };
                    let Ok(p) = prefix(d.len()) else { continue };
                    let write = async {
                        if uni_out.is_none() {
                            uni_out = Some(conn.open_uni().await.map_err(std::io::Error::other)?);
                        }
                        let s = uni_out.as_mut().ok_or_else(|| std::io::Error::other("no stream"))?;
                        s.write_all(&p).await.map_err(std::io::Error::other)?;
                        s.write_all(&d).await.map_err(std::io::Error::other)
                    };
                    match tokio::time::timeout(timeouts.write, write).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => return End::Io(e),
                        Err(_) => return End::WriteStalled,
                    }
                }
            }
            () = tokio::time::sleep_until(until) => {
                if Instant::now() >= deadline(state, &timeouts, started, last_rx) {
                    conn.close(0u32.into(), b"timeout");
                    return timed_out(state);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn framed(datagrams: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for d in datagrams {
            out.extend_from_slice(&prefix(d.len()).unwrap());
            out.extend_from_slice(d);
        }
        out
    }

    #[test]
    fn reader_reassembles_byte_by_byte_and_in_bulk() {
        let stream = framed(&[b"hello", &[9u8; 2048], b"x"]);
        for chunk in [1, 3, 700, stream.len()] {
            let mut r = FrameReader::new(2048);
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                r.spare()[..piece.len()].copy_from_slice(piece);
                r.advance(piece.len());
                while let Some(d) = r.next_datagram().unwrap() {
                    got.push(d);
                }
            }
            assert_eq!(got.len(), 3, "chunk {chunk}");
            assert_eq!(got[0], b"hello");
            assert_eq!(got[1].len(), 2048);
            assert_eq!(r.pending(), 0);
        }
    }

    #[test]
    fn reader_refuses_zero_and_oversized_lengths() {
        let mut r = FrameReader::new(2048);
        r.spare()[..4].copy_from_slice(&[0xff, 0xff, 1, 2]);
        r.advance(4);
        assert_eq!(r.next_datagram(), Err(65535));
        let mut r = FrameReader::new(2048);
        r.spare()[..2].copy_from_slice(&[0, 0]);
        r.advance(2);
        assert_eq!(r.next_datagram(), Err(0));
    }

    fn timeouts() -> Timeouts {
        Timeouts {
            handshake: Some(Duration::from_millis(200)),
            idle: Duration::from_secs(60),
            write: Duration::from_secs(1),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn stream_moves_datagrams_both_ways_then_shuts_down() {
        let (a, mut b) = tokio::io::duplex(64 * 1024);
        let state = Arc::new(LinkState::new());
        let (tx, mut rx) = mpsc::channel(16);
        let s2 = state.clone();
        let driver =
            tokio::spawn(async move { drive_stream(a, &s2, 2048, timeouts(), &tx, |d| d).await });
        b.write_all(&framed(&[b"one", b"two"])).await.unwrap();
        assert_eq!(rx.recv().await.unwrap(), b"one");
        assert_eq!(rx.recv().await.unwrap(), b"two");
        state.authenticate();
        state.queue.push(b"out".to_vec());
        let mut got = [0u8; 5];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, &[0, 3, b'o', b'u', b't']);
        state.shutdown();
        assert!(matches!(driver.await.unwrap(), End::Shutdown));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn unauthenticated_stream_ends_at_the_handshake_limit() {
        let (a, mut b) = tokio::io::duplex(1024);
        let state = LinkState::new();
        let (tx, _rx) = mpsc::channel::<Vec<u8>>(16);
        // A slowloris: half a frame, then nothing.
        b.write_all(&[0, 100, 1, 2, 3]).await.unwrap();
        let started = Instant::now();
        let end = drive_stream(a, &state, 2048, timeouts(), &tx, |d| d).await;
        assert!(matches!(end, End::HandshakeTimeout), "{end}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn garbage_length_ends_the_stream() {
        let (a, mut b) = tokio::io::duplex(1024);
        let state = LinkState::new();
        let (tx, _rx) = mpsc::channel::<Vec<u8>>(16);
        b.write_all(&[0xff, 0xff, 0xde, 0xad]).await.unwrap();
        let end = drive_stream(a, &state, 2048, timeouts(), &tx, |d| d).await;
        assert!(matches!(end, End::BadFrame { len: 65535 }), "{end}");
    }
}
