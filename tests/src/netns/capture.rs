//! Packet captures with `tshark`, and reading fields back out of them.
//!
//! `tshark` prints "Capturing on …" *before* its capture process (`dumpcap`) has opened the
//! interface, so that message alone is not proof: [`Capture::start`] waits for the
//! "Capture started" message or the file header, both of which follow the opening of the
//! interface and the installation of the filter. Packets sent after `start` returns are caught.
//!
//! At the other end, libpcap's TPACKET_V3 ring hands packets to `dumpcap` a block at a time,
//! after a block timeout of about 200 ms (measured here); packets still in an unfinished block
//! when `dumpcap` is told to stop are lost. [`Capture::stop`] therefore lets the capture run a
//! fixed settle time before it signals `tshark`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::error::{Error, Result};
use super::exec;
use super::namespace::Namespace;
use super::process::Process;

/// How long `tshark` may take to start capturing.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long `tshark` may take to flush and exit after SIGINT.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the capture keeps running in [`Capture::stop`] before it is told to stop: well
/// above the ring's block timeout, so the last packets reach the file.
const SETTLE: Duration = Duration::from_secs(1);
/// How long reading a capture file may take.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A running capture; [`stop`](Capture::stop) it to read the packets. Dropping it without
/// stopping kills `tshark`.
#[derive(Debug)]
pub struct Capture {
    tshark: Process,
    path: PathBuf,
}

impl Capture {
    /// Starts `tshark` in `ns` on `iface` with capture (BPF) filter `bpf_filter` (empty: all
    /// packets), writing to `path` (its log goes to `path` + `.log`). Returns once packets are
    /// really being captured.
    pub fn start(
        ns: &Namespace,
        iface: &str,
        bpf_filter: &str,
        path: impl AsRef<Path>,
    ) -> Result<Capture> {
        let path = path.as_ref().to_owned();
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("removing old {}", path.display()), e)),
        }
        let file = path.to_string_lossy().into_owned();
        let mut args = vec!["tshark", "-n", "-q", "-i", iface, "-w", &file];
        if !bpf_filter.is_empty() {
            args.extend(["-f", bpf_filter]);
        }
        let mut log = path.clone().into_os_string();
        log.push(".log");
        let tshark = ns.spawn(&args, &log)?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let header_written = path.metadata().is_ok_and(|m| m.len() > 0);
            if header_written || tshark.log().contains("Capture started") {
                return Ok(Capture { tshark, path });
            }
            if !tshark.is_running() || Instant::now() >= deadline {
                return Err(Error::WaitTimeout {
                    what: format!("tshark to capture on {iface}; its log: {}", tshark.log()),
                    timeout: START_TIMEOUT,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the capture and returns the finished file: waits a fixed settle time (1 s) so
    /// that packets already sent are written, then sends SIGINT so `tshark` closes the file.
    pub fn stop(self) -> Result<Pcap> {
        std::thread::sleep(SETTLE);
        self.tshark.signal(libc::SIGINT)?;
        match self.tshark.wait_exit(STOP_TIMEOUT) {
            Some(status) if status.success() => Ok(Pcap { path: self.path }),
            Some(status) => Err(Error::Invalid(format!(
                "tshark exited with {status}; its log: {}",
                self.tshark.log()
            ))),
            None => Err(Error::WaitTimeout {
                what: "tshark to finish the capture".into(),
                timeout: STOP_TIMEOUT,
            }),
        }
    }
}

/// A finished capture file.
#[derive(Debug)]
pub struct Pcap {
    path: PathBuf,
}

impl Pcap {
    /// The capture file (pcapng).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One row per packet with the Wireshark `fields` asked for (e.g. `ip.src`,
    /// `udp.srcport`), from `tshark -r … -T fields -e …`. A field absent from a packet is an
    /// empty string; a field occurring several times is comma-separated.
    pub fn read_fields(&self, fields: &[&str]) -> Result<Vec<Vec<String>>> {
        let mut cmd = Command::new("tshark");
        cmd.arg("-n")
            .arg("-r")
            .arg(&self.path)
            .args(["-T", "fields", "-E", "separator=/t"]);
        for field in fields {
            cmd.args(["-e", field]);
        }
        let out = exec::run(&mut cmd, None, READ_TIMEOUT)?;
        Ok(out
            .lines()
            .map(|line| line.split('\t').map(str::to_owned).collect())
            .collect())
    }
}
