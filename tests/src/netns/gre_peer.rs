//! A userspace GRE back end: the far end of grelay's raw-GRE links in namespace tests.
//!
//! # Why
//!
//! grelay's gateway forwards decrypted client packets as plain GRE (IP protocol 47, RFC 2784
//! with the RFC 2890 key and sequence number) to back ends — game-server farms and routers —
//! and probes them with Cisco-style keepalives. The machines the tests run on have no kernel
//! GRE devices (no `ip_gre` module), and a back end written by us in Rust would share our
//! misreadings of the RFCs. So the far end is an independent speaker: `tests/gre_peer.py`,
//! which decodes and encodes GRE with scapy's `GRE` layer.
//!
//! # What it models
//!
//! A router with one GRE tunnel interface: [`GrePeer::start`] runs the script in a
//! [`Namespace`], where it creates a TUN device with the tunnel's inner addresses and routes and
//! a raw IPPROTO_GRE socket bound to its outer address ([`GrePeerOptions::local`]):
//!
//! * GRE from [`GrePeerOptions::remote`] with the configured key (present exactly when one is
//!   configured) and, if present, a good checksum has its inner IPv4/IPv6 packet written to the
//!   TUN, so the namespace's own kernel answers ping, UDP and TCP on the tunnel addresses (a
//!   real stack). Frames from another source, with another key, a bad checksum, version ≠ 0,
//!   routing bits, or an unknown protocol type are dropped and counted ([`GreStats`]).
//!   Sequence numbers are accepted and counted; older ones are counted as reordered, not
//!   dropped (like Linux without `iseq`).
//! * Packets the kernel routes into the TUN leave as GRE with the configured key, incrementing
//!   sequence numbers (from 0) and checksum, protocol type 0x0800 or 0x86DD — except
//!   link-scope IPv6 multicast (the kernel's MLD reports and router solicitations about the
//!   TUN itself), which is counted in [`GreStats::tx_link_local`] and not sent, so the tunnel
//!   carries only what the test sends.
//! * Cisco keepalives are answered the way a Cisco router answers them: the keepalive's inner
//!   packet (from this end's outer address to the prober, carrying an empty GRE frame of
//!   protocol 0) goes into the TUN and the kernel routes it straight back out as plain GRE. This
//!   needs forwarding on in the peer's namespace, which is **the caller's job**
//!   ([`Namespace::enable_forwarding`]); the script sets `accept_local=1` and `rp_filter=0` on
//!   its TUN itself and prints a warning when forwarding is off. Empty protocol-0 frames that
//!   reach a peer (keepalive replies) are counted in [`GreStats::keepalives`].
//!
//! [`GreFrame`] sends single crafted frames (wrong keys, bad checksums, keepalive probes) with
//! the same script.
//!
//! # Lifetime
//!
//! The script runs at most [`GrePeerOptions::duration`] (default 300 s) and then exits by
//! itself; dropping the [`GrePeer`] (or its namespace) stops it by process id with SIGTERM, on
//! which it prints its counters and closes the TUN (which removes the device and its routes).
//!
//! # Packages (Debian)
//!
//! `python3-scapy` (for `/usr/bin/python3`, Debian's interpreter; a pyenv or venv `python3`
//! on `PATH` does not see it) and `iproute2`. [`require_scapy`] checks them and names the
//! package when one is missing.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::error::{Error, Result};
use super::exec;
use super::namespace::Namespace;
use super::process::Process;

/// The userspace GRE endpoint script.
pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/gre_peer.py");
/// The interpreter the script runs with: Debian's, where `python3-scapy` installs scapy.
pub const PYTHON: &str = "/usr/bin/python3";
/// The Debian package that provides scapy for [`PYTHON`].
pub const SCAPY_PACKAGE: &str = "python3-scapy";

/// The script's exit code when scapy cannot be imported.
const EXIT_NO_SCAPY: i32 = 3;
/// How long the script may take to bring up its TUN and socket.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the script may take to print its counters after SIGUSR1.
const STATS_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the script may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Time limit for the short-lived script runs (`--check`, `--send`).
const RUN_TIMEOUT: Duration = Duration::from_secs(20);

/// Checks that [`PYTHON`] exists and can import scapy; the error names the Debian package.
///
/// [`GrePeer::start`] and [`GreFrame::send`] call this. Like
/// [`require_root`](super::require_root), tests must fail, not skip, when it fails.
pub fn require_scapy() -> Result<()> {
    static CHECKED: OnceLock<()> = OnceLock::new();
    if CHECKED.get().is_some() {
        return Ok(());
    }
    if !Path::new(PYTHON).is_file() {
        return Err(Error::Invalid(format!(
            "{PYTHON} not found: install the Debian packages `python3` and `{SCAPY_PACKAGE}`"
        )));
    }
    let mut cmd = Command::new(PYTHON);
    cmd.args([SCRIPT, "--check"]);
    let line = exec::describe(&cmd);
    let out = exec::output(&mut cmd, None, RUN_TIMEOUT)?;
    match out.status.code() {
        Some(0) => {
            let _ = CHECKED.set(());
            Ok(())
        }
        Some(EXIT_NO_SCAPY) => Err(Error::Invalid(format!(
            "scapy is not importable by {PYTHON}: install the Debian package `{SCAPY_PACKAGE}` \
             (DEBIAN_FRONTEND=noninteractive apt-get install -y {SCAPY_PACKAGE})"
        ))),
        _ => Err(Error::Command {
            cmd: line,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        }),
    }
}

/// How a [`GrePeer`] is set up; the builder methods set one option each.
#[derive(Clone, Debug)]
pub struct GrePeerOptions {
    /// Outer address of this end (the raw socket binds to it; frames leave from it).
    pub local: IpAddr,
    /// Outer address of the other end; frames from anywhere else are dropped.
    pub remote: IpAddr,
    /// GRE key, both directions; `None`: frames carry no key, and keyed frames are dropped.
    pub key: Option<u32>,
    /// Send sequence numbers (0, 1, 2, …).
    pub seq: bool,
    /// Send checksums (received checksums are always verified).
    pub csum: bool,
    /// Name of the TUN device (at most 15 bytes).
    pub tun: String,
    /// IPv4 address and prefix on the TUN, e.g. `10.201.2.1/24`.
    pub tun_addr: String,
    /// IPv6 address and prefix on the TUN; without one, IPv6 is off on the TUN.
    pub tun_addr6: Option<String>,
    /// Prefixes routed into the tunnel (IPv4 or IPv6), e.g. the other end's subnets.
    pub routes: Vec<String>,
    /// MTU of the TUN (default 1400, leaving room for outer headers on a 1500-byte link).
    pub mtu: u16,
    /// After this long the script exits by itself (default 300 s).
    pub duration: Duration,
    /// Print counters every this many packets (default: never; they are printed at exit and
    /// for [`GrePeer::stats`]).
    pub log_every: Option<u64>,
}

impl GrePeerOptions {
    /// A tunnel from `local` to `remote` on TUN device `tun` with address `tun_addr`; no key,
    /// no sequence numbers, no checksums, no extra routes.
    pub fn new(local: IpAddr, remote: IpAddr, tun: &str, tun_addr: &str) -> GrePeerOptions {
        GrePeerOptions {
            local,
            remote,
            key: None,
            seq: false,
            csum: false,
            tun: tun.to_owned(),
            tun_addr: tun_addr.to_owned(),
            tun_addr6: None,
            routes: Vec::new(),
            mtu: 1400,
            duration: Duration::from_secs(300),
            log_every: None,
        }
    }

    /// Uses GRE key `key` in both directions.
    pub fn key(mut self, key: u32) -> GrePeerOptions {
        self.key = Some(key);
        self
    }

    /// Sends sequence numbers.
    pub fn seq(mut self) -> GrePeerOptions {
        self.seq = true;
        self
    }

    /// Sends checksums.
    pub fn csum(mut self) -> GrePeerOptions {
        self.csum = true;
        self
    }

    /// Adds IPv6 address `cidr` to the TUN.
    pub fn tun_addr6(mut self, cidr: &str) -> GrePeerOptions {
        self.tun_addr6 = Some(cidr.to_owned());
        self
    }

    /// Routes prefix `cidr` into the tunnel.
    pub fn route(mut self, cidr: &str) -> GrePeerOptions {
        self.routes.push(cidr.to_owned());
        self
    }

    /// Sets the TUN's MTU.
    pub fn mtu(mut self, mtu: u16) -> GrePeerOptions {
        self.mtu = mtu;
        self
    }

    /// Sets how long the script runs at most.
    pub fn duration(mut self, duration: Duration) -> GrePeerOptions {
        self.duration = duration;
        self
    }

    /// Prints counters every `packets` packets.
    pub fn log_every(mut self, packets: u64) -> GrePeerOptions {
        self.log_every = Some(packets);
        self
    }

    /// The script's command line after the script's path.
    fn args(&self) -> Vec<String> {
        let mut args = vec![
            "--local".to_owned(),
            self.local.to_string(),
            "--remote".to_owned(),
            self.remote.to_string(),
            "--tun".to_owned(),
            self.tun.clone(),
            "--tun-addr".to_owned(),
            self.tun_addr.clone(),
            "--mtu".to_owned(),
            self.mtu.to_string(),
            "--duration".to_owned(),
            format!("{:.3}", self.duration.as_secs_f64()),
        ];
        if let Some(key) = self.key {
            args.extend(["--key".to_owned(), key.to_string()]);
        }
        if self.seq {
            args.push("--seq".to_owned());
        }
        if self.csum {
            args.push("--csum".to_owned());
        }
        if let Some(addr6) = &self.tun_addr6 {
            args.extend(["--tun-addr6".to_owned(), addr6.clone()]);
        }
        for route in &self.routes {
            args.extend(["--route".to_owned(), route.clone()]);
        }
        if let Some(n) = self.log_every {
            args.extend(["--log-every".to_owned(), n.to_string()]);
        }
        args
    }
}

/// A running userspace GRE endpoint (see the [module docs](self)). Dropping it stops the
/// script; so does dropping its namespace.
#[derive(Debug)]
pub struct GrePeer {
    process: Process,
    opts: GrePeerOptions,
}

impl GrePeer {
    /// Runs `tests/gre_peer.py` in `ns` with `opts`, its output to `log`, and waits (at most
    /// 20 s) until its TUN and socket are up.
    ///
    /// Fails with a message naming `python3-scapy` when scapy is missing, and with the script's
    /// log when it exits or does not get ready in time.
    pub fn start(ns: &Namespace, opts: GrePeerOptions, log: &Path) -> Result<GrePeer> {
        require_scapy()?;
        let tail = opts.args();
        let mut args = vec![PYTHON, SCRIPT];
        args.extend(tail.iter().map(String::as_str));
        let process = ns.spawn(&args, log)?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let text = process.log();
            if text.lines().any(|l| l.starts_with("ready ")) {
                return Ok(GrePeer { process, opts });
            }
            if !process.is_running() {
                return Err(Error::Invalid(format!(
                    "gre_peer ({}) exited before it was ready; its log:\n{text}",
                    opts.tun
                )));
            }
            if Instant::now() >= deadline {
                return Err(Error::WaitTimeout {
                    what: format!("gre_peer ({}) to be ready; its log:\n{text}", opts.tun),
                    timeout: READY_TIMEOUT,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The options it was started with.
    pub fn options(&self) -> &GrePeerOptions {
        &self.opts
    }

    /// The script's process.
    pub fn process(&self) -> &Process {
        &self.process
    }

    /// Everything the script has printed so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// The counters now: asks the script (SIGUSR1) and waits (at most 5 s) for its answer.
    pub fn stats(&self) -> Result<GreStats> {
        let before = self.signal_stats().count();
        self.process.signal(libc::SIGUSR1)?;
        let deadline = Instant::now() + STATS_TIMEOUT;
        loop {
            if let Some(stats) = self.signal_stats().nth(before) {
                return Ok(stats);
            }
            if Instant::now() >= deadline {
                return Err(Error::WaitTimeout {
                    what: format!("gre_peer ({}) to print its counters", self.opts.tun),
                    timeout: STATS_TIMEOUT,
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Polls [`stats`](Self::stats) until `cond` holds (returns those counters) or `timeout`
    /// has passed (an error that shows the last counters).
    pub fn wait_stats(
        &self,
        timeout: Duration,
        mut cond: impl FnMut(&GreStats) -> bool,
    ) -> Result<GreStats> {
        let deadline = Instant::now() + timeout;
        loop {
            let stats = self.stats()?;
            if cond(&stats) {
                return Ok(stats);
            }
            if Instant::now() >= deadline {
                return Err(Error::WaitTimeout {
                    what: format!("gre_peer ({}) counters; last: {stats:?}", self.opts.tun),
                    timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the script (SIGTERM) and returns its final counters.
    pub fn stop(self) -> Result<GreStats> {
        self.process.signal(libc::SIGTERM)?;
        if self.process.wait_exit(STOP_TIMEOUT).is_none() {
            return Err(Error::WaitTimeout {
                what: format!("gre_peer ({}) to exit", self.opts.tun),
                timeout: STOP_TIMEOUT,
            });
        }
        let log = self.log();
        log.lines()
            .filter_map(|l| l.strip_prefix("stats reason=exit "))
            .find_map(GreStats::parse)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "gre_peer ({}) printed no final counters; its log:\n{log}",
                    self.opts.tun
                ))
            })
    }

    /// The counters printed in answer to SIGUSR1 so far, oldest first.
    fn signal_stats(&self) -> impl Iterator<Item = GreStats> {
        self.log()
            .lines()
            .filter_map(|l| l.strip_prefix("stats reason=signal "))
            .filter_map(GreStats::parse)
            .collect::<Vec<_>>()
            .into_iter()
    }
}

/// A [`GrePeer`]'s counters (packets unless named `_bytes`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GreStats {
    /// Inner packets written to the TUN.
    pub rx: u64,
    /// Their bytes (inner packets, headers included).
    pub rx_bytes: u64,
    /// Packets from the TUN sent as GRE.
    pub tx: u64,
    /// Their bytes (inner packets).
    pub tx_bytes: u64,
    /// Empty protocol-0 frames received (keepalive replies).
    pub keepalives: u64,
    /// Accepted frames that carried a (good) checksum.
    pub csum_rx: u64,
    /// Accepted frames that carried a sequence number.
    pub seq_rx: u64,
    /// Of those, how many were not newer than the newest seen (reordered or duplicated).
    pub seq_reordered: u64,
    /// Dropped: outer source is not the configured remote.
    pub drop_source: u64,
    /// Dropped: key differs, or is present/absent when it should not be.
    pub drop_key: u64,
    /// Dropped: bad checksum.
    pub drop_csum: u64,
    /// Dropped: truncated, version ≠ 0, or routing/strict-route/recursion bits set.
    pub drop_malformed: u64,
    /// Dropped: protocol type other than IPv4/IPv6 (or a payload not matching it).
    pub drop_proto: u64,
    /// Link-scope IPv6 multicast from the TUN (MLD, router solicitations), not tunnelled.
    pub tx_link_local: u64,
    /// Writes to the TUN that failed, and packets from it that were not IP.
    pub tun_errors: u64,
    /// Sends on the raw socket that failed.
    pub send_errors: u64,
    /// Exceptions while handling a packet (the first few are printed in the log).
    pub errors: u64,
}

impl GreStats {
    /// Parses the `k=v` words of a `stats` line (unknown words are ignored); `None` if a
    /// counter is missing or not a number.
    pub fn parse(line: &str) -> Option<GreStats> {
        let mut stats = GreStats::default();
        let mut seen = 0_u32;
        for word in line.split_whitespace() {
            let Some((key, value)) = word.split_once('=') else {
                continue;
            };
            let slot = match key {
                "rx" => &mut stats.rx,
                "rx_bytes" => &mut stats.rx_bytes,
                "tx" => &mut stats.tx,
                "tx_bytes" => &mut stats.tx_bytes,
                "keepalives" => &mut stats.keepalives,
                "csum_rx" => &mut stats.csum_rx,
                "seq_rx" => &mut stats.seq_rx,
                "seq_reordered" => &mut stats.seq_reordered,
                "drop_source" => &mut stats.drop_source,
                "drop_key" => &mut stats.drop_key,
                "drop_csum" => &mut stats.drop_csum,
                "drop_malformed" => &mut stats.drop_malformed,
                "drop_proto" => &mut stats.drop_proto,
                "tx_link_local" => &mut stats.tx_link_local,
                "tun_errors" => &mut stats.tun_errors,
                "send_errors" => &mut stats.send_errors,
                "errors" => &mut stats.errors,
                _ => continue,
            };
            *slot = value.parse().ok()?;
            seen += 1;
        }
        (seen == 17).then_some(stats)
    }

    /// All drops and errors added up ([`tx_link_local`](Self::tx_link_local) is not one).
    pub fn dropped(&self) -> u64 {
        self.drop_source
            + self.drop_key
            + self.drop_csum
            + self.drop_malformed
            + self.drop_proto
            + self.tun_errors
            + self.send_errors
            + self.errors
    }
}

/// The checksum of a crafted [`GreFrame`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Checksum {
    /// No checksum field.
    #[default]
    Absent,
    /// A correct checksum.
    Good,
    /// A checksum that does not match.
    Bad,
}

/// What a crafted [`GreFrame`] carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload {
    /// An ICMP (or ICMPv6) echo request from `src` to `dst`.
    Ping {
        /// Inner source.
        src: IpAddr,
        /// Inner destination.
        dst: IpAddr,
    },
    /// A Cisco keepalive: an IP packet from the frame's `remote` back to its `local`, carrying
    /// an empty GRE frame of protocol 0 (with the frame's key).
    Keepalive,
}

/// One GRE frame crafted with scapy and sent once from a raw socket, for tests.
#[derive(Clone, Debug)]
pub struct GreFrame {
    /// Outer source (must be an address of the namespace it is sent from).
    pub local: IpAddr,
    /// Outer destination.
    pub remote: IpAddr,
    /// GRE key, if any.
    pub key: Option<u32>,
    /// Sequence number, if any.
    pub seq: Option<u32>,
    /// Checksum field.
    pub csum: Checksum,
    /// What it carries.
    pub payload: Payload,
}

impl GreFrame {
    /// An echo request from `src` to `dst` inside GRE from `local` to `remote`, with no key,
    /// sequence number or checksum.
    pub fn ping(local: IpAddr, remote: IpAddr, src: IpAddr, dst: IpAddr) -> GreFrame {
        GreFrame {
            local,
            remote,
            key: None,
            seq: None,
            csum: Checksum::Absent,
            payload: Payload::Ping { src, dst },
        }
    }

    /// A Cisco keepalive probe from `local` to `remote`, with no key.
    pub fn keepalive(local: IpAddr, remote: IpAddr) -> GreFrame {
        GreFrame {
            local,
            remote,
            key: None,
            seq: None,
            csum: Checksum::Absent,
            payload: Payload::Keepalive,
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: u32) -> GreFrame {
        self.key = Some(key);
        self
    }

    /// Sets the sequence number.
    pub fn seq(mut self, seq: u32) -> GreFrame {
        self.seq = Some(seq);
        self
    }

    /// Sets the checksum field.
    pub fn csum(mut self, csum: Checksum) -> GreFrame {
        self.csum = csum;
        self
    }

    /// Sends the frame from namespace `ns`; returns the script's report (with the frame in
    /// hex).
    pub fn send(&self, ns: &Namespace) -> Result<String> {
        require_scapy()?;
        let mut args = vec![
            PYTHON.to_owned(),
            SCRIPT.to_owned(),
            "--local".to_owned(),
            self.local.to_string(),
            "--remote".to_owned(),
            self.remote.to_string(),
        ];
        if let Some(key) = self.key {
            args.extend(["--key".to_owned(), key.to_string()]);
        }
        if let Some(seq) = self.seq {
            args.extend(["--send-seq".to_owned(), seq.to_string()]);
        }
        match self.csum {
            Checksum::Absent => {}
            Checksum::Good => args.push("--csum".to_owned()),
            Checksum::Bad => args.push("--bad-csum".to_owned()),
        }
        match self.payload {
            Payload::Ping { src, dst } => args.extend([
                "--send".to_owned(),
                "ping".to_owned(),
                "--inner-src".to_owned(),
                src.to_string(),
                "--inner-dst".to_owned(),
                dst.to_string(),
            ]),
            Payload::Keepalive => args.extend(["--send".to_owned(), "keepalive".to_owned()]),
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ns.run_timeout(&args, RUN_TIMEOUT)
    }
}

#[cfg(test)]
mod tests {
    use super::GreStats;

    #[test]
    fn stats_line_parses() {
        let line = "rx=4 rx_bytes=376 tx=4 tx_bytes=376 keepalives=1 csum_rx=0 seq_rx=4 \
                    seq_reordered=0 drop_source=0 drop_key=2 drop_csum=0 drop_malformed=0 \
                    drop_proto=0 tx_link_local=3 tun_errors=0 send_errors=0 errors=0";
        let stats = GreStats::parse(line).expect("parses");
        assert_eq!((stats.rx, stats.keepalives, stats.drop_key), (4, 1, 2));
        assert_eq!(stats.dropped(), 2);
        assert_eq!(GreStats::parse("rx=4"), None);
        assert_eq!(GreStats::parse(&line.replace("rx=4 ", "rx=x ")), None);
    }
}
