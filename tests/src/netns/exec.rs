//! Running a short-lived command with a time limit and collecting its output.
//!
//! The child is made the leader of a new process group so that on time-out the whole group
//! (the command and anything it forked) is killed by that one id, before the leader is reaped.
//! Output pipes are drained by helper threads so a chatty command cannot block on a full pipe;
//! their results are awaited with a bound, so a stray grandchild holding a pipe open cannot hang
//! the test either.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::error::{Error, Result};

/// How often a running child is polled.
pub(crate) const POLL: Duration = Duration::from_millis(10);
/// How long to wait for the output pipes to close after the child has exited.
const DRAIN: Duration = Duration::from_secs(1);

/// The command line of `cmd`, for error messages.
pub(crate) fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` to completion, feeding it `stdin`, killing it after `timeout`.
///
/// Returns the exit status and output whatever the status; the caller decides what failure is.
pub(crate) fn output(cmd: &mut Command, stdin: Option<&[u8]>, timeout: Duration) -> Result<Output> {
    let line = describe(cmd);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::io(format!("starting `{line}`"), e))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let input = input.to_vec();
        // A write error (the child exited early) shows up in the child's status and stderr.
        thread::spawn(move || pipe.write_all(&input));
    }
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = match wait_bounded(&mut child, timeout) {
        Ok(Some(status)) => status,
        Ok(None) => {
            kill_group_and_reap(&mut child);
            let stderr = String::from_utf8_lossy(&collect(&stderr)).trim().to_owned();
            return Err(Error::CommandTimeout {
                cmd: line,
                timeout,
                stderr,
            });
        }
        Err(e) => {
            kill_group_and_reap(&mut child);
            return Err(Error::io(format!("waiting for `{line}`"), e));
        }
    };
    Ok(Output {
        status,
        stdout: collect(&stdout),
        stderr: collect(&stderr),
    })
}

/// Like [`output`], but a non-zero exit is an [`Error::Command`]; returns stdout as text.
pub(crate) fn run(cmd: &mut Command, stdin: Option<&[u8]>, timeout: Duration) -> Result<String> {
    let line = describe(cmd);
    let out = output(cmd, stdin, timeout)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Command {
            cmd: line,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// Polls `child` until it exits or `timeout` passes (`Ok(None)`).
pub(crate) fn wait_bounded(
    child: &mut Child,
    timeout: Duration,
) -> std::io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(POLL);
    }
}

/// SIGKILLs the process group led by `child` (not yet reaped, so its id is still ours) and
/// reaps the leader, waiting at most a few seconds.
fn kill_group_and_reap(child: &mut Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill has no memory-safety preconditions; the group id is our unreaped child's.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
    // Failure to reap within the bound leaves a zombie that the test process outlives anyway.
    let _ = wait_bounded(child, Duration::from_secs(5));
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut pipe) = pipe {
        thread::spawn(move || {
            let mut buf = Vec::new();
            // A read error ends the output early; what was read so far is still reported.
            let _ = pipe.read_to_end(&mut buf);
            let _ = tx.send(buf);
        });
    }
    rx
}

fn collect(rx: &mpsc::Receiver<Vec<u8>>) -> Vec<u8> {
    rx.recv_timeout(DRAIN).unwrap_or_default()
}
