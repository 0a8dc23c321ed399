//! [`ClientNode`]: `grelay up` on a host (a laptop), with its configuration, key, run directory
//! and logs in one directory, and `grelay status --json` parsed into a [`ClientStatus`].
//!
//! Every namespace shares the root file system, so `/run/grelay` would be shared by all clients
//! of a scenario: each node passes `--run-dir <dir>/run` (the option `GRELAY_RUN_DIR` also
//! sets) to every `grelay` command. Each `up` logs to a file of its own (`grelay-up.log`, then
//! `grelay-up-2.log`, …).

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use grelay_proto::crypto::keys::PublicKey;

use super::bins::{Binaries, arg};
use super::config::ClientConfig;
use super::status::ClientStatus;
use crate::netns::{Error, Host, Namespace, Process, Result, wait_until};

/// How long `grelay up` may take to be configured (handshake, addresses, routes).
pub const CLIENT_START: Duration = Duration::from_secs(20);
/// Time limit of one `grelay` command (`status`, `down`).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `grelay up` may take to exit after `grelay down`.
const DOWN_WAIT: Duration = Duration::from_secs(10);
/// How often [`ClientNode::wait_status`] asks.
const STATUS_POLL: Duration = Duration::from_millis(100);

/// The client on its host.
#[derive(Debug)]
pub struct ClientNode {
    process: Option<Process>,
    host: Host,
    name: String,
    dir: PathBuf,
    config: ClientConfig,
    ups: u32,
}

impl ClientNode {
    /// A client called `name` on `host` keeping its files in `dir` (created if needed); not up.
    pub fn new(name: &str, host: Host, dir: &Path, config: ClientConfig) -> Result<ClientNode> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        Ok(ClientNode {
            process: None,
            host,
            name: name.to_owned(),
            dir: dir.to_owned(),
            config,
            ups: 0,
        })
    }

    /// The client's name (also its name in the gateway's configuration).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host it runs on.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The host's namespace.
    pub fn ns(&self) -> &Namespace {
        self.host.ns()
    }

    /// Its configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Its configuration, to change before the next `up`.
    pub fn config_mut(&mut self) -> &mut ClientConfig {
        &mut self.config
    }

    /// Its public key.
    pub fn public_key(&self) -> PublicKey {
        self.config.public_key()
    }

    /// The directory with its configuration, key, logs and run directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its run directory (control socket, lock, state file).
    pub fn run_dir(&self) -> PathBuf {
        self.dir.join("run")
    }

    /// Writes the configuration and starts `grelay up` without waiting.
    pub fn start(&mut self) -> Result<()> {
        if self.is_running() {
            return Err(Error::Invalid(format!(
                "{}: grelay up already runs",
                self.name
            )));
        }
        let config = arg(&self.config.write(&self.dir)?);
        self.ups += 1;
        let log = match self.ups {
            1 => self.dir.join("grelay-up.log"),
            n => self.dir.join(format!("grelay-up-{n}.log")),
        };
        let bin = arg(Binaries::get()?.grelay());
        let run_dir = arg(&self.run_dir());
        let args = [
            &*bin,
            "--run-dir",
            &run_dir,
            "--log-level",
            "debug",
            "up",
            &config,
        ];
        self.process = Some(self.host.ns().spawn(&args, log)?);
        Ok(())
    }

    /// Waits until the running `grelay up` has installed its addresses and routes.
    pub fn wait_configured(&self, timeout: Duration) -> Result<()> {
        let process = self.running_process()?;
        let line = format!("configured {}", self.config.interface);
        let done = wait_until(timeout, || {
            process.log().contains(&line) || !process.is_running()
        });
        if done && process.is_running() {
            Ok(())
        } else {
            Err(Error::WaitTimeout {
                what: format!(
                    "{}: grelay up to be configured; its log:\n{}",
                    self.name,
                    process.log()
                ),
                timeout,
            })
        }
    }

    /// [`start`](Self::start) and [`wait_configured`](Self::wait_configured).
    pub fn up(&mut self) -> Result<()> {
        self.start()?;
        self.wait_configured(CLIENT_START)
    }

    /// `grelay down`, which must say the interface is down, then waits for `grelay up` to
    /// exit successfully; returns what `down` printed.
    pub fn down(&mut self) -> Result<String> {
        let out = self.grelay_ok(&["down"])?;
        if let Some(process) = &self.process {
            match process.wait_exit(DOWN_WAIT) {
                Some(status) if status.success() => {}
                status => {
                    return Err(Error::Invalid(format!(
                        "{}: grelay up did not exit cleanly ({status:?}): {}",
                        self.name,
                        process.log()
                    )));
                }
            }
        }
        Ok(out)
    }

    /// The current (or last) `grelay up` process.
    pub fn process(&self) -> Option<&Process> {
        self.process.as_ref()
    }

    fn running_process(&self) -> Result<&Process> {
        self.process
            .as_ref()
            .ok_or_else(|| Error::Invalid(format!("{}: grelay up was never started", self.name)))
    }

    /// True while `grelay up` runs.
    pub fn is_running(&self) -> bool {
        self.process.as_ref().is_some_and(Process::is_running)
    }

    /// Sends `sig` to `grelay up` (e.g. `libc::SIGKILL` to simulate a crash).
    pub fn signal(&self, sig: libc::c_int) -> Result<()> {
        self.running_process()?.signal(sig)
    }

    /// The current (or last) `grelay up`'s log; empty before the first start.
    pub fn log(&self) -> String {
        self.process.as_ref().map(Process::log).unwrap_or_default()
    }

    /// Runs `grelay --run-dir … args` on the host; any exit status.
    pub fn grelay(&self, args: &[&str]) -> Result<Output> {
        let bin = arg(Binaries::get()?.grelay());
        let run_dir = arg(&self.run_dir());
        let mut all = vec![&*bin, "--run-dir", &*run_dir];
        all.extend_from_slice(args);
        self.host.ns().exec(&all, COMMAND_TIMEOUT)
    }

    /// `grelay args`, which must succeed; returns its standard output.
    pub fn grelay_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.grelay(args)?;
        if !out.status.success() {
            return Err(Error::Invalid(format!(
                "{}: grelay {args:?} failed ({}): {}{}",
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `grelay status --json`, parsed.
    pub fn status(&self) -> Result<ClientStatus> {
        let json = self.grelay_ok(&["status", "--interface", &self.config.interface, "--json"])?;
        ClientStatus::parse(&json)
            .map_err(|e| Error::Invalid(format!("{}: status JSON: {e}\n{json}", self.name)))
    }

    /// Polls [`status`](Self::status) until `done` accepts it; `what` names the wait in the
    /// error, which carries the last status seen.
    pub fn wait_status(
        &self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&ClientStatus) -> bool,
    ) -> Result<ClientStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = self.status();
            if let Ok(status) = &last {
                if done(status) {
                    return last;
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::WaitTimeout {
                    what: format!("{}: {what}; last status: {last:?}", self.name),
                    timeout,
                });
            }
            std::thread::sleep(STATUS_POLL);
        }
    }

    /// Waits until the session is up with addresses assigned and at least `handshakes`
    /// handshakes done.
    pub fn wait_connected(&self, handshakes: u64, timeout: Duration) -> Result<ClientStatus> {
        self.wait_status(
            &format!("connected after {handshakes} handshakes"),
            timeout,
            |s| s.is_connected() && s.handshakes >= handshakes,
        )
    }

    /// What the host's routing and firewall look like, for assertions about what `up`
    /// installed and `down` removed.
    pub fn net_view(&self) -> NetView {
        let ns = self.host.ns();
        let run = |args: &[&str]| ns.run(args).unwrap_or_else(|e| format!("<{e}>"));
        let table = TABLE.to_string();
        NetView {
            rules: run(&["ip", "rule", "list"]) + &run(&["ip", "-6", "rule", "list"]),
            table: run(&["ip", "route", "show", "table", &table])
                + &run(&["ip", "-6", "route", "show", "table", &table]),
            nft: run(&["nft", "list", "tables"]),
            links: run(&["ip", "-o", "link", "show"]),
            interface: self.config.interface.clone(),
        }
    }
}

/// The client's routing table and socket mark (its defaults).
pub const TABLE: u32 = 4747;

/// A snapshot of a client host's networking state.
#[derive(Debug)]
pub struct NetView {
    /// `ip rule` and `ip -6 rule`.
    pub rules: String,
    /// The tunnel's routing table, both families.
    pub table: String,
    /// `nft list tables`.
    pub nft: String,
    /// `ip -o link`.
    pub links: String,
    interface: String,
}

impl NetView {
    /// The client's kill-switch table name.
    pub fn kill_switch_table(&self) -> String {
        format!("grelay_client_{}", self.interface)
    }

    /// Nothing of grelay's is left: no rule, no route in its table, no kill switch, no TUN.
    pub fn is_clean(&self) -> bool {
        !self.rules.contains(&format!("lookup {TABLE}"))
            && self.table.trim().is_empty()
            && !self.nft.contains(&self.kill_switch_table())
            && !self.links.contains(&format!(" {}:", self.interface))
    }
}
