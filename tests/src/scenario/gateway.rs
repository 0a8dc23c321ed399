//! [`GatewayNode`]: `grelay-gateway run` on a host, with its configuration, logs and address
//! book in one directory.
//!
//! Each start logs to a file of its own (`gateway.log`, then `gateway-2.log`, …), so
//! [`GatewayNode::log`] shows the current run only. The configuration is written at every
//! [`start`](GatewayNode::start) and [`reload`](GatewayNode::reload) from
//! [`GatewayNode::config_mut`], and the address book (`state.json`) stays in the directory
//! across restarts, as on a real host.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use grelay_proto::crypto::keys::PublicKey;
use serde::Deserialize;

use super::bins::{Binaries, arg};
use super::config::GatewayConfig;
use crate::netns::{Error, Host, Namespace, Process, Result, wait_until};

/// How long the gateway may take to start serving.
pub const GATEWAY_START: Duration = Duration::from_secs(20);
/// How long the gateway may take to exit after SIGTERM (it promises well under 2 s).
pub const GATEWAY_STOP: Duration = Duration::from_secs(5);
/// The log line that says the gateway serves.
const READY: &str = "listening on udp";

/// The gateway on its host.
#[derive(Debug)]
pub struct GatewayNode {
    process: Option<Process>,
    host: Host,
    dir: PathBuf,
    config: GatewayConfig,
    runs: u32,
}

impl GatewayNode {
    /// A gateway on `host` keeping its files in `dir` (created if needed); not started.
    pub fn new(host: Host, dir: &Path, config: GatewayConfig) -> Result<GatewayNode> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        Ok(GatewayNode {
            process: None,
            host,
            dir: dir.to_owned(),
            config,
            runs: 0,
        })
    }

    /// The host it runs on.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The host's namespace.
    pub fn ns(&self) -> &Namespace {
        self.host.ns()
    }

    /// Its configuration; changes apply at the next start or reload.
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// Its configuration, to change before a start or reload.
    pub fn config_mut(&mut self) -> &mut GatewayConfig {
        &mut self.config
    }

    /// Where clients reach it: the host's IPv4 address and the listening port.
    pub fn endpoint(&self) -> SocketAddr {
        SocketAddr::new(self.host.v4().into(), self.config.listen.port())
    }

    /// Its public key, for clients' `[gateway] public_key`.
    pub fn public_key(&self) -> PublicKey {
        self.config.public_key()
    }

    /// The directory with its configuration, key, logs and address book.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The address book file.
    pub fn state_path(&self) -> PathBuf {
        self.dir.join(&self.config.state_file)
    }

    /// The address book, parsed.
    pub fn state(&self) -> Result<GatewayState> {
        let path = self.state_path();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Invalid(format!("{} is not an address book: {e}", path.display())))
    }

    /// Writes the configuration, starts the gateway and waits until it serves.
    pub fn start(&mut self) -> Result<()> {
        if self.is_running() {
            return Err(Error::Invalid("the gateway is already running".into()));
        }
        let config = arg(&self.config.write(&self.dir)?);
        self.runs += 1;
        let log = match self.runs {
            1 => self.dir.join("gateway.log"),
            n => self.dir.join(format!("gateway-{n}.log")),
        };
        let bin = arg(Binaries::get()?.gateway());
        let args = [&*bin, "run", "--config", &config, "--log-level", "debug"];
        let process = self.host.ns().spawn(&args, log)?;
        let up = wait_until(GATEWAY_START, || {
            process.log().contains(READY) || !process.is_running()
        });
        let ok = up && process.is_running();
        let log = process.log();
        self.process = Some(process);
        if ok {
            Ok(())
        } else {
            Err(Error::WaitTimeout {
                what: format!("the gateway to serve; its log:\n{log}"),
                timeout: GATEWAY_START,
            })
        }
    }

    /// SIGTERM, then waits for the exit; returns how it exited.
    pub fn stop(&mut self) -> Result<ExitStatus> {
        let process = self
            .process
            .take()
            .ok_or_else(|| Error::Invalid("the gateway was never started".into()))?;
        if process.is_running() {
            process.signal(libc::SIGTERM)?;
        }
        let status = process.wait_exit(GATEWAY_STOP);
        let log = process.log();
        self.process = Some(process);
        status.ok_or_else(|| Error::WaitTimeout {
            what: format!("the gateway to exit after SIGTERM; its log:\n{log}"),
            timeout: GATEWAY_STOP,
        })
    }

    /// [`stop`](Self::stop) (which must end in a clean exit) and [`start`](Self::start) again,
    /// with the same address book.
    pub fn restart(&mut self) -> Result<()> {
        let status = self.stop()?;
        if !status.success() {
            return Err(Error::Invalid(format!(
                "the gateway exited with {status}: {}",
                self.log()
            )));
        }
        self.start()
    }

    /// Writes the configuration again and sends SIGHUP (the gateway re-reads `[[clients]]`;
    /// wait for its log lines with [`wait_log`](Self::wait_log)).
    pub fn reload(&mut self) -> Result<()> {
        self.config.write(&self.dir)?;
        self.signal(libc::SIGHUP)
    }

    /// Sends `sig` to the running gateway.
    pub fn signal(&self, sig: libc::c_int) -> Result<()> {
        self.process()
            .ok_or_else(|| Error::Invalid("the gateway was never started".into()))?
            .signal(sig)
    }

    /// The current (or last) run's process.
    pub fn process(&self) -> Option<&Process> {
        self.process.as_ref()
    }

    /// True while the current run has not exited.
    pub fn is_running(&self) -> bool {
        self.process.as_ref().is_some_and(Process::is_running)
    }

    /// The current (or last) run's log; empty before the first start.
    pub fn log(&self) -> String {
        self.process.as_ref().map(Process::log).unwrap_or_default()
    }

    /// Waits until the current run's log contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> Result<()> {
        if wait_until(timeout, || self.log().contains(needle)) {
            Ok(())
        } else {
            Err(Error::WaitTimeout {
                what: format!("{needle:?} in the gateway's log:\n{}", self.log()),
                timeout,
            })
        }
    }
}

/// The gateway's address book (`state_file`), as `docs/gateway.md` describes it.
#[derive(Clone, Debug, Deserialize)]
pub struct GatewayState {
    /// Format version.
    pub version: u32,
    /// Base64 public key → entry.
    pub clients: BTreeMap<String, StateEntry>,
}

/// One key's reservation.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct StateEntry {
    /// The client's name when last configured.
    #[serde(default)]
    pub name: String,
    /// Its IPv4 address.
    #[serde(default)]
    pub ipv4: Option<Ipv4Addr>,
    /// Its IPv6 address.
    #[serde(default)]
    pub ipv6: Option<Ipv6Addr>,
    /// Unix time of its removal from the configuration; `None` while configured.
    #[serde(default)]
    pub removed_at: Option<u64>,
}

impl GatewayState {
    /// The entry of the client with `key`.
    pub fn entry(&self, key: &PublicKey) -> Option<&StateEntry> {
        self.clients.get(&key.to_string())
    }
}
