//! Long-running processes started inside a namespace, and how they are stopped.
//!
//! Each child is the leader of its own process group and is owned by a shared slot: the
//! [`Process`] guard and the [`Namespace`](super::Namespace) that started it both hold the slot,
//! and whichever is dropped first stops the child. The slot's lock is held whenever the child is
//! signalled or reaped, so a signal never reaches a process id that has already been reaped (and
//! possibly reused). Stopping is SIGTERM to the group, a bounded wait, then SIGKILL.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use super::error::{Error, Result};
use super::exec::{self, POLL};

/// How long a stopped process gets between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);
/// How long to wait for the kernel to finish a SIGKILLed process.
const KILL_WAIT: Duration = Duration::from_secs(2);

/// A child and, once reaped, how it ended.
#[derive(Debug)]
pub(crate) struct Tracked {
    child: Child,
    status: Option<ExitStatus>,
}

impl Tracked {
    /// Reaps the child if it has exited; true while it still runs (and its id is still ours).
    fn running(&mut self) -> bool {
        if self.status.is_none() {
            match self.child.try_wait() {
                Ok(Some(status)) => self.status = Some(status),
                Ok(None) => return true,
                // ECHILD and the like: nothing left that we could signal.
                Err(_) => return false,
            }
        }
        false
    }

    /// Sends `sig` to the child's process group, if the child is still ours.
    fn signal_group(&mut self, sig: libc::c_int) {
        if self.running() {
            if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
                // SAFETY: no memory-safety preconditions; the group leader is unreaped.
                unsafe { libc::kill(-pid, sig) };
            }
        }
    }
}

/// A child shared between its [`Process`] guard and its namespace.
pub(crate) type Slot = Arc<Mutex<Tracked>>;

fn lock(slot: &Slot) -> MutexGuard<'_, Tracked> {
    // A panic while holding the lock cannot leave Tracked inconsistent; keep going.
    slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Stops every child in `slots`: SIGTERM to all, a shared bounded grace period, SIGKILL to the
/// rest. Never panics and never waits longer than `TERM_GRACE + KILL_WAIT` in total.
pub(crate) fn terminate(slots: &[Slot]) {
    for slot in slots {
        lock(slot).signal_group(libc::SIGTERM);
    }
    let deadline = Instant::now() + TERM_GRACE;
    while slots.iter().any(|s| lock(s).running()) && Instant::now() < deadline {
        thread::sleep(POLL);
    }
    for slot in slots {
        lock(slot).signal_group(libc::SIGKILL);
    }
    let deadline = Instant::now() + KILL_WAIT;
    while slots.iter().any(|s| lock(s).running()) && Instant::now() < deadline {
        thread::sleep(POLL);
    }
}

/// A process started by [`Namespace::spawn`](super::Namespace::spawn).
///
/// Dropping it stops the process (SIGTERM to its process group, then SIGKILL after a short
/// bounded wait). Its standard output and error go to one log file.
#[derive(Debug)]
pub struct Process {
    slot: Slot,
    pid: u32,
    cmd: String,
    log_path: PathBuf,
}

impl Process {
    /// Starts `cmd` with stdin from `/dev/null` and stdout and stderr appended to `log_path`
    /// (created or truncated), as the leader of a new process group.
    pub(crate) fn start(mut cmd: Command, log_path: &Path) -> Result<Process> {
        let line = exec::describe(&cmd);
        let log = File::create(log_path)
            .map_err(|e| Error::io(format!("creating log {}", log_path.display()), e))?;
        let log2 = log
            .try_clone()
            .map_err(|e| Error::io("duplicating the log handle", e))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0)
            .spawn()
            .map_err(|e| Error::io(format!("starting `{line}`"), e))?;
        Ok(Process {
            pid: child.id(),
            slot: Arc::new(Mutex::new(Tracked {
                child,
                status: None,
            })),
            cmd: line,
            log_path: log_path.to_owned(),
        })
    }

    /// The shared slot, for the namespace's own list.
    pub(crate) fn slot(&self) -> Slot {
        Arc::clone(&self.slot)
    }

    /// The process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// True while the process has not exited.
    pub fn is_running(&self) -> bool {
        lock(&self.slot).running()
    }

    /// Sends signal `sig` (e.g. `libc::SIGUSR1`) to the process itself, not its group.
    ///
    /// Fails if the process has already exited.
    pub fn signal(&self, sig: libc::c_int) -> Result<()> {
        let mut tracked = lock(&self.slot);
        if !tracked.running() {
            return Err(Error::Invalid(format!(
                "cannot signal `{}`: it has exited ({:?})",
                self.cmd, tracked.status
            )));
        }
        let pid = libc::pid_t::try_from(self.pid)
            .map_err(|_| Error::Invalid(format!("pid {} out of range", self.pid)))?;
        // SAFETY: no memory-safety preconditions; the lock keeps the child unreaped meanwhile.
        if unsafe { libc::kill(pid, sig) } != 0 {
            return Err(Error::io(
                format!("signalling `{}`", self.cmd),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// Waits at most `timeout` for the process to exit; `None` if it is still running.
    pub fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let mut tracked = lock(&self.slot);
                if !tracked.running() {
                    return tracked.status;
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(POLL);
        }
    }

    /// Everything the process has written to stdout and stderr so far.
    pub fn log(&self) -> String {
        match std::fs::read(&self.log_path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => format!("<cannot read {}: {e}>", self.log_path.display()),
        }
    }

    /// The log file's path.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        terminate(std::slice::from_ref(&self.slot));
    }
}
