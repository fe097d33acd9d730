//! A writer that gives up on a peer that stopped reading (hostile input: a
//! client that requests a large answer and never reads it must not hold its
//! connection, and a slot of the server, forever).
//!
//! [`StallGuard`] wraps any `AsyncWrite`. While a write, flush or shutdown is
//! pending a timer runs; any progress (bytes accepted, a flush or shutdown
//! done) stops it, and the next wait starts a fresh one. If a wait outlasts the
//! limit, the operation fails with `TimedOut`. So a slow reader that keeps
//! reading is never cut, whatever the size of the answer, and one that stops is
//! cut after the limit. A write that completes at once (the common case) costs
//! no timer operation.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::AsyncWrite;
use tokio::time::{Instant, Sleep};

/// An `AsyncWrite` whose waits for the peer are bounded by `limit` each.
#[derive(Debug)]
pub struct StallGuard<W> {
    inner: W,
    limit: Duration,
    timer: Pin<Box<Sleep>>,
    /// The timer runs for the current wait.
    armed: bool,
}

impl<W> StallGuard<W> {
    /// Wraps `inner`; a wait for the peer longer than `limit` is an error.
    pub fn new(inner: W, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            timer: Box::pin(tokio::time::sleep(limit)),
            armed: false,
        }
    }

    /// Called when the inner writer is pending: starts the timer for this
    /// wait if it is not running, and fails once it has run out.
    fn poll_stalled<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if !self.armed {
            self.timer.as_mut().reset(Instant::now() + self.limit);
            self.armed = true;
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.armed = false;
                // Said here once: callers often just drop the connection on a
                // write error, and this one is the peer's doing, worth a line.
                crate::log_action!(
                    info,
                    "write_stall",
                    Fail,
                    waited_s = format!("{:.1}", self.limit.as_secs_f64()),
                    error = "the peer stopped reading; the write failed"
                );
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the peer read nothing for {:.1} s",
                        self.limit.as_secs_f64()
                    ),
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn progress<T>(
        &mut self,
        done: Poll<io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        match done {
            Poll::Ready(r) => {
                self.armed = false;
                Poll::Ready(r)
            }
            Poll::Pending => self.poll_stalled(cx),
        }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for StallGuard<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let done = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.progress(done, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let done = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.progress(done, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let done = Pin::new(&mut this.inner).poll_flush(cx);
        this.progress(done, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let done = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.progress(done, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const LIMIT: Duration = Duration::from_secs(5);

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_reading_is_cut_after_the_limit() {
        let (ours, _theirs) = tokio::io::duplex(1024);
        let mut w = StallGuard::new(ours, LIMIT);
        let start = Instant::now();
        let err = w.write_all(&[7u8; 4096]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        // Paused clock: exactly one limit after the buffer filled.
        assert_eq!(start.elapsed(), LIMIT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_reading_is_never_cut() {
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 100];
            let mut total = 0;
            loop {
                // Each read comes well within the limit, the whole much later.
                tokio::time::sleep(LIMIT / 2).await;
                match theirs.read(&mut buf).await.unwrap() {
                    0 => return total,
                    n => total += n,
                }
            }
        });
        let mut w = StallGuard::new(ours, LIMIT);
        let start = Instant::now();
        w.write_all(&[7u8; 4096]).await.unwrap();
        w.shutdown().await.unwrap();
        drop(w);
        assert_eq!(reader.await.unwrap(), 4096);
        assert!(
            start.elapsed() > LIMIT * 10,
            "the answer outlasted the limit many times"
        );
    }
}
