//! A bounded queue of outgoing datagrams that drops the **oldest** when full.
//!
//! A fallback link (TLS over TCP, or a QUIC connection) cannot send faster than its path;
//! what the tunnel hands it meanwhile waits here. For game traffic a late datagram is worth
//! less than a fresh one, and a standing queue is pure added latency, so the bound is small
//! (by count and by bytes) and a push over the bound evicts from the front. The writer of the
//! link waits with [`DatagramQueue::wait`] and drains with [`DatagramQueue::pop`].

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::Notify;

/// Default bound on queued datagrams.
pub const DEFAULT_MAX_DATAGRAMS: usize = 256;
/// Default bound on queued bytes: about 45 full-size datagrams, 5 ms at 100 Mbit/s.
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024;

#[derive(Debug, Default)]
struct Inner {
    items: VecDeque<Vec<u8>>,
    bytes: usize,
}

/// A single-consumer queue of datagrams, bounded by count and bytes, dropping the oldest.
#[derive(Debug)]
pub struct DatagramQueue {
    inner: Mutex<Inner>,
    notify: Notify,
    closed: AtomicBool,
    dropped: AtomicU64,
    max_datagrams: usize,
    max_bytes: usize,
}

impl Default for DatagramQueue {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_DATAGRAMS, DEFAULT_MAX_BYTES)
    }
}

impl DatagramQueue {
    /// A queue holding at most `max_datagrams` datagrams and `max_bytes` bytes (at least one
    /// datagram is always kept, however large).
    pub fn new(max_datagrams: usize, max_bytes: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            notify: Notify::new(),
            closed: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            max_datagrams: max_datagrams.max(1),
            max_bytes,
        }
    }

    /// Queues `datagram`, evicting the oldest ones while over a bound; returns how many were
    /// evicted. A closed queue takes nothing (the datagram counts as dropped).
    pub fn push(&self, datagram: Vec<u8>) -> usize {
        if self.is_closed() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return 1;
        }
        let mut evicted = 0;
        {
            let mut inner = self.lock();
            inner.bytes += datagram.len();
            inner.items.push_back(datagram);
            while inner.items.len() > 1
                && (inner.items.len() > self.max_datagrams || inner.bytes > self.max_bytes)
            {
                if let Some(old) = inner.items.pop_front() {
                    inner.bytes -= old.len();
                    evicted += 1;
                }
            }
        }
        if evicted > 0 {
            self.dropped.fetch_add(evicted as u64, Ordering::Relaxed);
        }
        self.notify.notify_one();
        evicted
    }

    /// The oldest queued datagram.
    pub fn pop(&self) -> Option<Vec<u8>> {
        let mut inner = self.lock();
        let item = inner.items.pop_front()?;
        inner.bytes -= item.len();
        Some(item)
    }

    /// Returns once a datagram is queued or the queue is closed (at once if so already).
    /// Cancel-safe.
    pub async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_closed() || !self.is_empty() {
                return;
            }
            notified.await;
        }
    }

    /// Closes the queue: the consumer's [`wait`](Self::wait) returns and sees
    /// [`is_closed`](Self::is_closed); later pushes are dropped.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Datagrams queued now.
    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes queued now.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Datagrams dropped so far (evicted, or pushed after close).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the deque inconsistent (every update
        // is a single push or pop), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn drops_the_oldest_by_count() {
        let q = DatagramQueue::new(3, 1 << 20);
        for i in 0..5u8 {
            q.push(vec![i]);
        }
        assert_eq!(q.len(), 3);
        assert_eq!(q.dropped(), 2);
        let got: Vec<u8> = std::iter::from_fn(|| q.pop()).map(|d| d[0]).collect();
        assert_eq!(got, [2, 3, 4]);
        assert_eq!(q.bytes(), 0);
    }

    #[test]
    fn drops_the_oldest_by_bytes_but_keeps_one() {
        let q = DatagramQueue::new(100, 1000);
        assert_eq!(q.push(vec![0; 600]), 0);
        assert_eq!(q.push(vec![1; 600]), 1);
        assert_eq!((q.len(), q.bytes()), (1, 600));
        // A single datagram above the byte bound is still kept.
        assert_eq!(q.push(vec![2; 5000]), 1);
        assert_eq!(q.pop().map(|d| d.len()), Some(5000));
        assert_eq!(q.dropped(), 2);
    }

    #[test]
    fn closed_takes_nothing() {
        let q = DatagramQueue::default();
        q.close();
        q.push(vec![1]);
        assert!(q.is_empty() && q.is_closed());
        assert_eq!(q.dropped(), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn wait_wakes_on_push_and_close() {
        let q = Arc::new(DatagramQueue::default());
        let q2 = q.clone();
        let waiter = tokio::spawn(async move {
            q2.wait().await;
            q2.pop()
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        q.push(vec![7]);
        assert_eq!(waiter.await.unwrap(), Some(vec![7]));
        // A push before the wait is not lost.
        q.push(vec![8]);
        tokio::time::timeout(Duration::from_secs(1), q.wait())
            .await
            .unwrap();
        assert_eq!(q.pop(), Some(vec![8]));
        let q3 = q.clone();
        let closer = tokio::spawn(async move { q3.wait().await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        q.close();
        tokio::time::timeout(Duration::from_secs(1), closer)
            .await
            .unwrap()
            .unwrap();
    }
}
