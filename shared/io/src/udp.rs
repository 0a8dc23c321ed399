//! The tunnel's UDP socket: nonblocking, large kernel buffers, as a tokio [`UdpSocket`].
//!
//! Bursts of datagrams (and, later, GSO/GRO batches of up to 64 KB) overflow the default
//! ~200 KB socket buffers and are dropped by the kernel before the process sees them
//! (`DATAPATH.md`: give sockets ≥ 8 MB). [`bind`] asks for [`BUFFER_SIZE`] each way with
//! `SO_RCVBUFFORCE` / `SO_SNDBUFFORCE` (allowed with `CAP_NET_ADMIN`, which the binaries have
//! for the TUN anyway), and falls back to `SO_RCVBUF` / `SO_SNDBUF`, which the kernel caps at
//! `net.core.rmem_max` / `wmem_max`.
//!
//! An IPv6 wildcard address (`[::]:port`) gives a dual-stack socket: IPv4 peers then appear as
//! IPv4-mapped addresses (`::ffff:a.b.c.d`), and sending to such an address reaches them.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use crate::{Error, Result};

/// Kernel buffer size asked for in each direction: 8 MiB.
pub const BUFFER_SIZE: usize = 8 << 20;

/// Binds a UDP socket to `addr` with [`BUFFER_SIZE`] buffers (or the largest allowed),
/// nonblocking, registered with the current tokio runtime (call inside one).
///
/// `SO_REUSEADDR` is not set: a second process on the same port fails here, loudly.
pub fn bind(addr: SocketAddr) -> Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| Error::io(format!("creating a UDP socket for {addr}"), e))?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        socket
            .set_only_v6(false)
            .map_err(|e| Error::io("making the UDP socket dual-stack", e))?;
    }
    set_buffer(&socket, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF);
    set_buffer(&socket, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF);
    socket
        .set_nonblocking(true)
        .map_err(|e| Error::io("making the UDP socket nonblocking", e))?;
    socket
        .bind(&addr.into())
        .map_err(|e| Error::io(format!("binding UDP {addr}"), e))?;
    UdpSocket::from_std(socket.into())
        .map_err(|e| Error::io("registering the UDP socket with tokio", e))
}

/// The receive and send buffer sizes the kernel granted (it reports double the value set,
/// for its bookkeeping overhead), for logs.
pub fn buffer_sizes(socket: &UdpSocket) -> (usize, usize) {
    let sock = socket2::SockRef::from(socket);
    (
        sock.recv_buffer_size().unwrap_or(0),
        sock.send_buffer_size().unwrap_or(0),
    )
}

/// Sets one buffer: the forcing option first, the capped one if that is not permitted.
/// Failures are not fatal (the socket works with smaller buffers) and are logged.
fn set_buffer(socket: &Socket, force: libc::c_int, plain: libc::c_int) {
    let size = BUFFER_SIZE as libc::c_int;
    if setsockopt_int(socket, force, size).is_ok() {
        return;
    }
    if let Err(e) = setsockopt_int(socket, plain, size) {
        tracing::warn!("could not enlarge a UDP socket buffer to {size} bytes: {e}");
    }
}

fn setsockopt_int(socket: &Socket, option: libc::c_int, value: libc::c_int) -> std::io::Result<()> {
    // SAFETY: the fd is open for the duration of the call; the value pointer and length
    // describe one c_int that lives on the stack across the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn binds_with_large_buffers_and_exchanges() {
        let a = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let b = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let (rcv, snd) = buffer_sizes(&a);
        // At least the default; BUFFER_SIZE × 2 when running with CAP_NET_ADMIN.
        assert!(rcv >= 200_000 && snd >= 200_000, "{rcv} {snd}");
        a.send_to(b"hi", b.local_addr().unwrap()).await.unwrap();
        let mut buf = [0u8; 8];
        let (n, from) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"hi"[..], a.local_addr().unwrap()));
    }

    #[tokio::test]
    async fn second_bind_on_the_same_port_fails() {
        let a = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let err = bind(a.local_addr().unwrap()).unwrap_err();
        assert_eq!(err.errno(), Some(libc::EADDRINUSE));
    }
}
