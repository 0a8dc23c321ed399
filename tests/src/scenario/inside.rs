//! Running things inside a namespace: test code on a thread that has entered it with
//! `setns(2)`, so that sockets it makes live there (for the core's state machines driven
//! in-process, and for crafted datagrams); and commands whose success is all that matters.

use std::os::fd::AsRawFd;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::netns::Namespace;

/// True if `args` exit successfully in `ns` within 15 s (errors and time-outs are `false`).
pub fn succeeds(ns: &Namespace, args: &[&str]) -> bool {
    ns.exec(args, Duration::from_secs(15))
        .is_ok_and(|o| o.status.success())
}

/// Runs `f` on a new thread inside `ns`'s network namespace. The thread panics (and so
/// `join` fails) if the namespace cannot be entered.
pub fn in_namespace<T: Send + 'static>(
    ns: &Namespace,
    f: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<T> {
    let path = format!("/run/netns/{}", ns.name());
    std::thread::spawn(move || {
        let file =
            std::fs::File::open(&path).unwrap_or_else(|e| panic!("opening namespace {path}: {e}"));
        // SAFETY: a valid namespace fd; setns changes only this thread's network namespace.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
}
