//! The test harness every crate's wire tests share (feature `test-util`):
//! a server on 127.0.0.1 port 0, stopped by a cancellation token and waited
//! for within [`BOUND`] — a server that does not stop fails the test instead
//! of hanging it.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// How long a test waits for a server to stop.
pub const BOUND: Duration = Duration::from_secs(60);

/// This process's soft limit on open files (Linux), if it can be read: tests
/// that open many connections size themselves by it.
pub fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// How many idle connections a test that holds both ends of each may open
/// (at most `want`, leaving room under the open-file limit).
pub fn idle_connections(want: usize) -> usize {
    open_file_limit().map_or(want, |l| want.min(l.saturating_sub(100) / 2))
}

/// A server task on a loopback port; cancelled when dropped.
#[derive(Debug)]
pub struct Served<T> {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: Option<JoinHandle<T>>,
}

impl<T: Send + 'static> Served<T> {
    /// Binds 127.0.0.1:0 and runs `serve(listener, shutdown)` on a task.
    pub async fn bind<F, Fut>(serve: F) -> Served<T>
    where
        F: FnOnce(TcpListener, WaitForCancellationFutureOwned) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("a bound listener's address");
        Served::spawn(addr, |shutdown| serve(listener, shutdown))
    }

    /// Runs `serve(shutdown)`, a server already listening at `addr`, on a task.
    pub fn spawn<F, Fut>(addr: SocketAddr, serve: F) -> Served<T>
    where
        F: FnOnce(WaitForCancellationFutureOwned) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve(stop.clone().cancelled_owned()));
        Served {
            addr,
            stop,
            task: Some(task),
        }
    }

    /// The token that stops it (to stop it from elsewhere).
    pub fn token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Stops it and returns what the server returned; panics if it does not
    /// end within [`BOUND`] or panicked.
    pub async fn stop(mut self) -> T {
        self.stop.cancel();
        let task = self.task.take().expect("stopped once");
        tokio::time::timeout(BOUND, task)
            .await
            .expect("the server stops within the bound")
            .expect("the server task does not panic")
    }
}

impl<T> Drop for Served<T> {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_served_task_sees_the_stop_and_returns_its_value() {
        let served = Served::bind(|listener, shutdown| async move {
            let addr = listener.local_addr().unwrap();
            shutdown.await;
            addr
        })
        .await;
        let addr = served.addr;
        assert_eq!(served.stop().await, addr);
    }

    #[test]
    fn idle_connections_stay_under_the_limit() {
        let n = idle_connections(1_000_000);
        if let Some(limit) = open_file_limit() {
            assert!(2 * n + 100 <= limit.max(100));
        }
    }
}
