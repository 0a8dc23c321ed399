//! For tests that need the kernel: a private network namespace on a thread of its own.

use std::future::Future;

/// Runs `body` to completion on a current-thread tokio runtime inside a fresh network namespace
/// (`unshare(CLONE_NEWNET)` affects only the calling thread, so a thread of its own keeps the
/// machine's interfaces untouched). Needs root; without it the test says so and passes, as
/// CI runs as root.
pub(crate) fn in_private_netns<F, Fut>(body: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return;
    }
    std::thread::spawn(move || {
        // SAFETY: no memory-safety preconditions; affects only this thread.
        assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0);
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
            .block_on(body());
    })
    .join()
    .expect("the test thread");
}
