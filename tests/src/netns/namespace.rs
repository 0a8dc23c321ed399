//! One network namespace: its unique name, commands run inside it, and its cleanup.
//!
//! Names are `grt-<pid>-<counter>-<role>`: the prefix marks them as ours, the test process id
//! and a process-wide counter keep parallel test binaries and threads apart, and the pid lets
//! [`sweep_stale`] recognise namespaces left behind by a run that crashed.

use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once};
use std::time::Duration;

use super::error::{Error, Result};
use super::exec;
use super::process::{self, Process, Slot};
use super::tools::require_root;

/// Prefix of every namespace the harness creates.
pub const PREFIX: &str = "grt-";
/// Time limit for [`Namespace::run`].
pub const RUN_TIMEOUT: Duration = Duration::from_secs(20);
/// Time limit for the harness's own `ip`/`nft` bookkeeping commands.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How many times `ip netns add` is tried (it can race on the first `/run/netns` mount).
const CREATE_TRIES: u32 = 3;

static COUNTER: AtomicU32 = AtomicU32::new(0);
static SWEEP: Once = Once::new();
/// Serialises `ip netns add` within this process.
static CREATE: Mutex<()> = Mutex::new(());

/// A network namespace owned by the test; dropping it stops what was spawned in it and
/// deletes it (also while unwinding from a panic).
#[derive(Debug)]
pub struct Namespace {
    name: String,
    children: Mutex<Vec<Slot>>,
}

impl Namespace {
    /// Creates a fresh namespace named `grt-<pid>-<n>-<role>` with `lo` up.
    ///
    /// Checks [`require_root`] first, and on the first call in this process runs
    /// [`sweep_stale`]. `role` is only for people reading `ip netns list`; characters other than
    /// ASCII letters and digits become `-`, and it is cut to 16 characters.
    pub fn new(role: &str) -> Result<Namespace> {
        require_root()?;
        SWEEP.call_once(|| {
            if let Err(e) = sweep_stale() {
                eprintln!("netns: sweeping stale namespaces failed: {e}");
            }
        });
        let role: String = role
            .chars()
            .take(16)
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{}-{n}-{role}", std::process::id());
        create(&name)?;
        let ns = Namespace {
            name,
            children: Mutex::new(Vec::new()),
        };
        ns.run(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(args);
        cmd
    }

    /// Runs `args` inside the namespace, killing it after `timeout`; returns the exit status
    /// and output whatever the status was.
    pub fn exec(&self, args: &[&str], timeout: Duration) -> Result<Output> {
        exec::output(&mut self.command(args), None, timeout)
    }

    /// Runs `args` inside the namespace with the [`RUN_TIMEOUT`] limit and returns its stdout.
    ///
    /// A non-zero exit is an [`Error::Command`] carrying the command, status and stderr.
    pub fn run(&self, args: &[&str]) -> Result<String> {
        self.run_timeout(args, RUN_TIMEOUT)
    }

    /// [`run`](Self::run) with an explicit time limit.
    pub fn run_timeout(&self, args: &[&str], timeout: Duration) -> Result<String> {
        exec::run(&mut self.command(args), None, timeout)
    }

    /// Starts `args` inside the namespace in the background, stdout and stderr to `log_path`.
    ///
    /// The returned guard stops the process when dropped; so does dropping the namespace.
    pub fn spawn(&self, args: &[&str], log_path: impl AsRef<Path>) -> Result<Process> {
        let process = Process::start(self.command(args), log_path.as_ref())?;
        self.children
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(process.slot());
        Ok(process)
    }

    /// Sets the sysctl `key` (e.g. `net.ipv4.ip_forward`) to `value` in this namespace.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        let value = format!("{value}\n");
        exec::run(
            &mut self.command(&["tee", &path]),
            Some(value.as_bytes()),
            ADMIN_TIMEOUT,
        )
        .map(drop)
    }

    /// Turns on IPv4 and IPv6 forwarding, making the namespace a router.
    pub fn enable_forwarding(&self) -> Result<()> {
        self.sysctl("net.ipv4.ip_forward", "1")?;
        self.sysctl("net.ipv6.conf.all.forwarding", "1")
    }

    /// Loads `rules` into this namespace's nftables with `nft -f -` (one atomic transaction).
    pub fn nft(&self, rules: &str) -> Result<()> {
        exec::run(
            &mut self.command(&["nft", "-f", "-"]),
            Some(rules.as_bytes()),
            ADMIN_TIMEOUT,
        )
        .map(drop)
    }

    /// Pings `addr` until one reply arrives or `deadline` (rounded up to whole seconds) passes.
    ///
    /// `Ok(true)`: a reply came; `Ok(false)`: none did (ping's exit code 1, which includes
    /// ICMP unreachable answers); an error for anything else, such as no local route.
    pub fn ping(&self, addr: IpAddr, deadline: Duration) -> Result<bool> {
        let secs = deadline.as_secs() + u64::from(deadline.subsec_nanos() > 0);
        let secs = secs.max(1).to_string();
        let addr = addr.to_string();
        let args = [
            "ping", "-n", "-q", "-c", "1", "-i", "0.2", "-w", &secs, &addr,
        ];
        let mut cmd = self.command(&args);
        let line = exec::describe(&cmd);
        let out = exec::output(&mut cmd, None, deadline + Duration::from_secs(5))?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(Error::Command {
                cmd: line,
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            }),
        }
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let children = std::mem::take(
            self.children
                .get_mut()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        process::terminate(&children);
        destroy(&self.name);
    }
}

fn create(name: &str) -> Result<()> {
    let _serial = CREATE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut last = None;
    for _ in 0..CREATE_TRIES {
        match exec::run(
            Command::new("ip").args(["netns", "add", name]),
            None,
            ADMIN_TIMEOUT,
        ) {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(last.unwrap_or_else(|| Error::Invalid(format!("could not create {name}"))))
}

/// SIGKILLs whatever still runs in namespace `name` (it is ours, so they are ours), then
/// deletes it. Reports failures on stderr; never panics.
fn destroy(name: &str) {
    let pids = exec::run(
        Command::new("ip").args(["netns", "pids", name]),
        None,
        ADMIN_TIMEOUT,
    );
    for pid in pids.iter().flat_map(|out| out.split_whitespace()) {
        if let Ok(pid) = pid.parse::<libc::pid_t>() {
            // SAFETY: no memory-safety preconditions; the process lives in our namespace.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    if let Err(e) = exec::run(
        Command::new("ip").args(["netns", "del", name]),
        None,
        ADMIN_TIMEOUT,
    ) {
        eprintln!("netns: could not delete {name}: {e}");
    }
}

/// Deletes `grt-<pid>-*` namespaces whose creating process no longer exists (left by a crashed
/// run), killing anything still inside them. Returns the names removed.
///
/// Namespaces of live processes, including this one, are left alone, so parallel test
/// binaries do not disturb each other.
pub fn sweep_stale() -> Result<Vec<String>> {
    let list = exec::run(
        Command::new("ip").args(["netns", "list"]),
        None,
        ADMIN_TIMEOUT,
    )?;
    let stale: Vec<String> = list
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| {
            owner_pid(name).is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        })
        .map(str::to_owned)
        .collect();
    for name in &stale {
        destroy(name);
    }
    Ok(stale)
}

/// The pid embedded in a harness namespace name, `None` for names that are not ours.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let (pid, _) = rest.split_once('-')?;
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::owner_pid;

    #[test]
    fn owner_pid_parses_only_our_names() {
        assert_eq!(owner_pid("grt-1234-0-laptop"), Some(1234));
        assert_eq!(owner_pid("grt-1234"), None);
        assert_eq!(owner_pid("grt-x-0-a"), None);
        assert_eq!(owner_pid("other-1234-0"), None);
    }
}
