//! End-to-end test networks: real binaries in Linux network namespaces the test creates.
//!
//! # Topology built by [`World`]
//!
//! ```text
//!                       +---------------------------------+
//!                       |            internet             |   router, forwarding on,
//!                       |   198.18.N.1 / 2001:db8:N::1    |   knows only 198.18.N.0/24
//!                       +---+-------------+-----------+---+   and 2001:db8:N::/64
//!                        s1 |          s2 |        s3 |
//!            198.18.1.0/24  |  198.18.2.0/24      198.18.3.0/24
//!                       wan |         wan |       wan |
//!   +-----------------------+--+  +-------+------+  +-+---------------------+
//!   | gateway    198.18.1.2    |  | nat1         |  | nat2  198.18.3.2      |
//!   | (add_public_host)        |  | 198.18.2.2   |  | masquerade            |
//!   +-----------+--------------+  | masquerade   |  | fully-random          |
//!            b1 | 10.99.1.1       | (EI mapping) |  | (symmetric)           |
//!               |                 +-------+------+  +-----------+-----------+
//!   10.99.1.0/24| private link        lan | bridge 10.200.1.1   | lan 10.200.2.1
//!          eth0 | 10.99.1.2          eth0 | 10.200.1.2     eth0 | 10.200.2.2
//!   +-----------+--------------+  +-------+------+  +-----------+-----------+
//!   | game (add_private_link)  |  | laptop       |  | laptop2               |
//!   | default via 10.99.1.1    |  | (Nat::add_   |  | default via 10.200.2.1|
//!   +--------------------------+  |  host)       |  +-----------------------+
//!                                 +--------------+
//! ```
//!
//! Every box is a namespace named `grt-<pid>-<n>-<role>`; every line is a veth pair created
//! directly inside its two namespaces. Nothing is attached to the root namespace, no route or
//! rule is added there, and traffic goes only to addresses inside these namespaces. IPv6 runs
//! alongside (`2001:db8:N::/64` on internet segments, ULA `fd00:200:M::/64` behind NATs with
//! NAT66, `fd00:99:K::/64` on private links). The address plan is in [`world`]'s doc and the
//! NAT behaviours in [`nat`]'s.
//!
//! # Cleanup
//!
//! Dropping a [`Namespace`] (also during a panic's unwind) stops the processes spawned in it
//! by process id (SIGTERM, a bounded wait, SIGKILL), kills any stray process still inside it,
//! and deletes it. The first namespace a test process creates first runs [`sweep_stale`],
//! which deletes `grt-<pid>-*` namespaces whose process is gone (left by a crashed run).
//! Every wait is bounded in time ([`wait_until`], and each command has a time limit).
//!
//! # Packages (Debian)
//!
//! The tests run as root (CI does) and need:
//!
//! | package | for |
//! |---|---|
//! | `iproute2` | `ip netns`, veth, addresses, routes |
//! | `nftables` | NAT, UDP blocks, random loss |
//! | `conntrack` | flushing NAT mappings ([`Nat::flush_conntrack`]) |
//! | `tshark` | [`Capture`] and field reading (preseed `wireshark-common/install-setuid` false) |
//! | `iputils-ping` | [`Namespace::ping`] |
//! | `iperf3` | throughput tests through the tunnel (later scenarios) |
//! | `python3-scapy` | [`GrePeer`], the userspace GRE far end (the kernel here has no GRE devices) |
//!
//! ```text
//! echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections
//! DEBIAN_FRONTEND=noninteractive apt-get install -y iproute2 nftables conntrack tshark iputils-ping iperf3 python3-scapy
//! ```
//!
//! [`require_root`] checks root and every tool, naming the package of a missing one.

mod capture;
mod error;
mod exec;
pub mod gre_peer;
mod impair;
mod link;
mod namespace;
pub mod nat;
mod process;
mod scratch;
mod tools;
pub mod world;

use std::time::{Duration, Instant};

pub use capture::{Capture, Pcap};
pub use error::{Error, Result};
pub use gre_peer::{GrePeer, GrePeerOptions};
pub use link::{MAX_IFNAME, add_addr, connect, route, veth};
pub use namespace::{Namespace, PREFIX, RUN_TIMEOUT, sweep_stale};
pub use nat::{Nat, NatKind};
pub use process::Process;
pub use scratch::Scratch;
pub use tools::{REQUIRED_TOOLS, require_root};
pub use world::{Host, World};

/// Polls `cond` every 20 ms until it is true (returns `true`) or `timeout` has passed
/// (returns `false`).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
