//! A layer-3 TUN device as a tokio device: one IP packet per `recv` / `send`.
//!
//! Built on [`tun_rs`] (2.x, async/tokio feature) rather than the `tun` 0.8 crate: the data
//! path will need what only tun-rs has — `TUNSETOFFLOAD` with TSO/USO and the split/coalesce
//! code (`recv_multiple`, `GROTable`), and multi-queue devices (see `DATAPATH.md`, where an
//! offloaded TUN moved ~45× fewer packets and stopped the TUN queue's silent drops). This first
//! version opens one queue with no `virtio_net_hdr` and no offloads, so every read is one plain
//! IP packet and every write takes one; turning offloads on later changes this module's
//! internals and adds batch calls, not the meaning of [`Tun::recv`] / [`Tun::send`].
//!
//! The device is not persistent: it disappears when the [`Tun`] is dropped (or the process
//! dies). Addresses and routes are not set here; use [`crate::netlink`].
//!
//! A write while the link is not up yet can fail with `EIO`; that is not fatal (the packet is
//! lost, as on a link that is down), and [`is_link_down`] recognises it.

use std::io;

use crate::{Error, Result};

/// Longest interface name Linux accepts (`IFNAMSIZ` − 1).
pub const MAX_NAME_LEN: usize = 15;

/// An open TUN device, up, with one queue.
pub struct Tun {
    device: tun_rs::AsyncDevice,
    name: String,
    index: u32,
    mtu: u16,
}

impl std::fmt::Debug for Tun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tun")
            .field("name", &self.name)
            .field("index", &self.index)
            .field("mtu", &self.mtu)
            .finish()
    }
}

impl Tun {
    /// Creates (or attaches to an unused, non-persistent) TUN device `name` with `mtu`, sets
    /// the link up, and registers it with the current tokio runtime (call inside one).
    ///
    /// Fails with an [`Error::Invalid`] for an empty name, one longer than [`MAX_NAME_LEN`]
    /// or one with `/`, whitespace or NUL in it; with [`Error::Io`] when the kernel refuses
    /// (no `CAP_NET_ADMIN`, `/dev/net/tun` missing, the name busy with another process).
    pub fn open(name: &str, mtu: u16) -> Result<Tun> {
        check_name(name).map_err(Error::Invalid)?;
        let device = tun_rs::DeviceBuilder::new()
            .name(name)
            .mtu(mtu)
            .enable(true)
            .build_async()
            .map_err(|e| Error::io(format!("opening TUN device {name} (mtu {mtu})"), e))?;
        let index = interface_index(name)?;
        Ok(Tun {
            device,
            name: name.to_owned(),
            index,
            mtu,
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The interface index (for [`crate::netlink`] calls).
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The MTU the device was opened with.
    pub fn mtu(&self) -> u16 {
        self.mtu
    }

    /// Waits for one IP packet from the kernel and writes it at the start of `buf`; returns
    /// its length. A packet longer than `buf` is cut, so give `buf` at least the MTU.
    /// Cancel-safe: dropping the future loses no packet.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.device.recv(buf).await
    }

    /// Reads one IP packet if one is waiting, else fails with `WouldBlock` (pair with
    /// [`Tun::readable`] to drain several packets per wake-up).
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.device.try_recv(buf)
    }

    /// Waits until [`Tun::try_recv`] may have a packet (it can still say `WouldBlock`).
    pub async fn readable(&self) -> io::Result<()> {
        self.device.readable().await
    }

    /// Hands one IP packet to the kernel, waiting while the device's queue is full. May fail
    /// with `EIO` while the link is not up ([`is_link_down`]): drop the packet and go on.
    pub async fn send(&self, packet: &[u8]) -> io::Result<usize> {
        self.device.send(packet).await
    }
}

/// True for the error a TUN write gives while the link is down (`EIO`): not fatal.
pub fn is_link_down(error: &io::Error) -> bool {
    error.raw_os_error() == Some(libc::EIO)
}

/// Rejects names the kernel would refuse or misread.
///
/// The one rule for interface names in configs and on the command line: 1 to
/// [`MAX_NAME_LEN`] letters, digits, `-`, `_` or `.` (what `ip link` accepts, minus the
/// characters that break shells and logs), and not `.` or `..`.
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    let usable = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if usable {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a usable interface name: use 1 to {MAX_NAME_LEN} letters, digits, \
             '-', '_' or '.'"
        ))
    }
}

/// The index of interface `name` from `if_nametoindex(3)`.
pub(crate) fn interface_index(name: &str) -> Result<u32> {
    check_name(name).map_err(Error::Invalid)?;
    let cname = std::ffi::CString::new(name)
        .map_err(|_| Error::Invalid(format!("interface name {name:?} contains NUL")))?;
    // SAFETY: `cname` is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if index == 0 {
        return Err(Error::NoSuchInterface(name.to_owned()));
    }
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("grelay0").is_ok());
        assert!(check_name("abcdefghijklmno").is_ok());
        for bad in ["", "abcdefghijklmnop", "a/b", "a b", "a:1", ".."] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_has_an_index() {
        assert!(interface_index("lo").unwrap() > 0);
        assert!(matches!(
            interface_index("grelay-nope9"),
            Err(Error::NoSuchInterface(_))
        ));
    }

    #[test]
    fn eio_is_link_down() {
        assert!(is_link_down(&io::Error::from_raw_os_error(libc::EIO)));
        assert!(!is_link_down(&io::Error::from_raw_os_error(libc::EAGAIN)));
    }

    /// Needs root: opens a TUN in a private network namespace (made by `unshare` on a thread
    /// of its own), routes a UDP datagram into it and reads it back as an IP packet.
    #[test]
    fn packets_sent_to_the_tun_prefix_are_read() {
        crate::test_netns::in_private_netns(|| async {
            let tun = Tun::open("grtest0", 1400).unwrap();
            assert_eq!((tun.name(), tun.mtu()), ("grtest0", 1400));
            let nl = crate::netlink::Netlink::new().unwrap();
            assert_eq!(nl.link_index("grtest0").await.unwrap(), tun.index());
            nl.add_address(tun.index(), "10.9.0.1".parse().unwrap(), 24)
                .await
                .unwrap();
            let sock = std::net::UdpSocket::bind("10.9.0.1:0").unwrap();
            sock.send_to(b"ping", "10.9.0.2:9").unwrap();
            let mut buf = [0u8; 2000];
            let n = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                loop {
                    let n = tun.recv(&mut buf).await.unwrap();
                    // Skip IPv6 router solicitations and the like.
                    if buf[0] >> 4 == 4 {
                        return n;
                    }
                }
            })
            .await
            .expect("a packet within 5 s");
            assert_eq!(n, 20 + 8 + 4);
            assert_eq!(&buf[16..20], &[10, 9, 0, 2]);
            assert_eq!(&buf[28..n], b"ping");
            // Writing it back in is accepted (the kernel drops it: not for us).
            assert_eq!(tun.send(&buf[..n]).await.unwrap(), n);
        });
    }
}
