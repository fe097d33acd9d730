//! The TCP server runtime every protolab server runs on (DESIGN habits 11–13).
//!
//! `listener → [permit] → accept → spawn(handler) in a span`:
//! - a connection permit is taken *before* `accept`, so memory stays bounded by
//!   `max_connections`; at the limit the server takes one more client from the
//!   backlog and makes room for it by closing the connection idle the longest
//!   ([`crate::activity`]); if none is idle, the client waits for a free slot;
//! - accept errors (out of file descriptors, aborted handshakes) are logged and
//!   retried with exponential backoff instead of ending the server;
//! - every connection runs in a `conn` tracing span with its id and peer address;
//! - shutdown is one signal, one tracker, one deadline: when the `shutdown` future
//!   completes the server stops accepting, cancels the token every handler got,
//!   and waits for the handlers up to `shutdown_grace`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::activity::{Activity, Registry};
use crate::log_action;

/// Binds a TCP listener, with an error that names the address.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, crate::Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| crate::Error::Bind { addr, source })
}

/// How a server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Name used in logs (`hftp`, `impair-tcp`...).
    pub name: &'static str,
    /// Connections served at once; further clients wait in the accept backlog.
    pub max_connections: usize,
    /// How long handlers get to finish after shutdown is asked for.
    pub shutdown_grace: Duration,
    /// At the connection limit, a connection idle at least this long is closed
    /// to make room for a new client; `None`: new clients wait for a free slot.
    pub evict_idle_after: Option<Duration>,
}

impl ServerConfig {
    /// Defaults: 10,000 connections, 5 s grace, idle connections (1 s or more)
    /// make room at the limit.
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            max_connections: 10_000,
            shutdown_grace: Duration::from_secs(5),
            evict_idle_after: Some(Duration::from_secs(1)),
        }
    }
}

/// Live counters of a running server, shared with whoever wants to watch.
#[derive(Debug, Default)]
pub struct ServerStats {
    accepted: AtomicU64,
    active: AtomicUsize,
    accept_errors: AtomicU64,
    evicted: AtomicU64,
}

impl ServerStats {
    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
    /// Connections being served now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }
    /// Failed `accept` calls so far.
    pub fn accept_errors(&self) -> u64 {
        self.accept_errors.load(Ordering::Relaxed)
    }
    /// Idle connections closed to make room at the limit so far.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }
}

/// What [`serve`] reports when it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeReport {
    /// Connections accepted over the server's life.
    pub accepted: u64,
    /// Handlers still running when the grace period ran out (left to be dropped).
    pub abandoned: usize,
}

/// Per-connection context handed to the handler.
#[derive(Debug, Clone)]
pub struct Conn {
    /// Server-wide connection number, from 1.
    pub id: u64,
    /// The client's address.
    pub peer: SocketAddr,
    /// Cancelled when the server shuts down, or when it closes this idle
    /// connection to make room: finish the current exchange and stop.
    pub shutdown: CancellationToken,
    /// Tell the server when the connection is idle (waiting for the peer) or
    /// busy (working on a request): only idle ones are closed to make room.
    pub activity: Activity,
}

impl Conn {
    /// Why `shutdown` was cancelled, for the handler's log line.
    pub fn stop_reason(&self) -> &'static str {
        if self.activity.evicted() {
            "closed to make room: idle at the connection limit"
        } else {
            "server shutdown"
        }
    }
}

/// Serves connections from `listener` until `shutdown` completes.
///
/// See the module docs for the guarantees. Returns once every handler finished
/// or the grace period ran out.
pub async fn serve<H, Fut>(
    listener: TcpListener,
    config: ServerConfig,
    stats: Arc<ServerStats>,
    handler: H,
    shutdown: impl Future,
) -> ServeReport
where
    H: Fn(TcpStream, Conn) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let registry = Arc::new(Registry::new());
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let handler = Arc::new(handler);
    let mut backoff = Backoff::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            biased;
            _ = shutdown.as_mut() => break,
            slot = next_slot(&listener, &permits, &registry, &config, &stats) => slot,
        };
        let (permit, accepted) = match slot {
            Slot::Closed => break,
            Slot::Free(permit) => {
                let accepted = tokio::select! {
                    biased;
                    _ = shutdown.as_mut() => break,
                    accepted = listener.accept() => accepted,
                };
                (Some(permit), accepted)
            }
            Slot::Made(permit, pair) => (Some(permit), Ok(pair)),
            Slot::AcceptFailed(e) => (None, Err(e)),
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                let wait = backoff.next();
                log_action!(
                    warn,
                    "accept",
                    Fail,
                    server = config.name,
                    error = &e,
                    retry_in_ms = wait.as_millis()
                );
                drop(permit);
                tokio::select! {
                    biased;
                    _ = shutdown.as_mut() => break,
                    () = tokio::time::sleep(wait) => continue,
                }
            }
        };
        backoff.reset();
        let id = stats.accepted.fetch_add(1, Ordering::Relaxed) + 1;
        stats.active.fetch_add(1, Ordering::Relaxed);
        let token = cancel.child_token();
        let activity = registry.open(id, peer, token.clone());
        let conn = Conn {
            id,
            peer,
            shutdown: token,
            activity,
        };
        let span = tracing::info_span!("conn", server = config.name, id, %peer);
        let handler = Arc::clone(&handler);
        let stats = Arc::clone(&stats);
        let registry = Arc::clone(&registry);
        tracker.spawn(
            async move {
                tracing::debug!("connection accepted");
                handler(stream, conn).await;
                tracing::debug!("connection finished");
                registry.close(id);
                stats.active.fetch_sub(1, Ordering::Relaxed);
                drop(permit);
            }
            .instrument(span),
        );
    }
    drop(listener);
    cancel.cancel();
    tracker.close();
    let abandoned = match tokio::time::timeout(config.shutdown_grace, tracker.wait()).await {
        Ok(()) => 0,
        Err(_) => tracker.len(),
    };
    log_action!(
        info,
        "server_shutdown",
        Success,
        server = config.name,
        accepted = stats.accepted(),
        abandoned = abandoned
    );
    ServeReport {
        accepted: stats.accepted(),
        abandoned,
    }
}

/// What [`next_slot`] found.
enum Slot {
    /// The semaphore is closed (cannot happen while `serve` holds it).
    Closed,
    /// A free slot: accept the next client.
    Free(OwnedSemaphorePermit),
    /// The server was full, a client arrived, and room was made for it.
    Made(OwnedSemaphorePermit, (TcpStream, SocketAddr)),
    /// The server was full and `accept` failed.
    AcceptFailed(std::io::Error),
}

/// How often a full server with a client waiting looks again for a
/// connection that has become idle (or for one that ignored its eviction).
const ROOM_RETRY: Duration = Duration::from_millis(100);

/// A slot for the next client. When the server is full, it accepts the next
/// client anyway (one at most: the rest wait in the backlog) and closes the
/// connection idle the longest to make room for it.
async fn next_slot(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
    registry: &Registry,
    config: &ServerConfig,
    stats: &ServerStats,
) -> Slot {
    match Arc::clone(permits).try_acquire_owned() {
        Ok(p) => return Slot::Free(p),
        Err(TryAcquireError::Closed) => return Slot::Closed,
        Err(TryAcquireError::NoPermits) => {}
    }
    let Some(min_idle) = config.evict_idle_after else {
        return match Arc::clone(permits).acquire_owned().await {
            Ok(p) => Slot::Free(p),
            Err(_) => Slot::Closed,
        };
    };
    let pair = tokio::select! {
        permit = Arc::clone(permits).acquire_owned() => return match permit {
            Ok(p) => Slot::Free(p),
            Err(_) => Slot::Closed,
        },
        accepted = listener.accept() => match accepted {
            Ok(pair) => pair,
            Err(e) => return Slot::AcceptFailed(e),
        },
    };
    loop {
        // One eviction at a time: another only once the last one has closed
        // (a victim that is slow to finish must not cost a second connection).
        let victim = if registry.closing() == 0 {
            registry.evict_oldest_idle(std::time::Instant::now(), min_idle)
        } else {
            None
        };
        if let Some(ev) = victim {
            stats.evicted.fetch_add(1, Ordering::Relaxed);
            log_action!(
                info,
                "evict_idle",
                Success,
                server = config.name,
                id = ev.id,
                peer = ev.peer,
                idle_ms = ev.idle.as_millis(),
                for_peer = pair.1
            );
        }
        tokio::select! {
            permit = Arc::clone(permits).acquire_owned() => return match permit {
                Ok(p) => Slot::Made(p, pair),
                Err(_) => Slot::Closed,
            },
            () = tokio::time::sleep(ROOM_RETRY) => {}
        }
    }
}

/// Exponential backoff for accept errors: 1 ms doubling to 1 s.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(1);
    const MAX: Duration = Duration::from_secs(1);

    fn new() -> Self {
        Self { next: Self::FIRST }
    }
    fn next(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        now
    }
    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const BOUND: Duration = Duration::from_secs(10);

    async fn echo(mut s: TcpStream, conn: Conn) {
        let mut buf = [0u8; 64];
        loop {
            tokio::select! {
                () = conn.shutdown.cancelled() => return,
                n = s.read(&mut buf) => match n {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        conn.activity.busy();
                        if s.write_all(&buf[..n]).await.is_err() { return }
                        conn.activity.idle();
                    }
                },
            }
        }
    }

    /// A server under test on 127.0.0.1:0.
    /// A served handler and the server's counters.
    struct Running {
        addr: SocketAddr,
        stats: Arc<ServerStats>,
        served: crate::testing::Served<ServeReport>,
    }

    impl Running {
        async fn start<H, Fut>(cfg: ServerConfig, handler: H) -> Self
        where
            H: Fn(TcpStream, Conn) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = ()> + Send + 'static,
        {
            let stats = Arc::new(ServerStats::default());
            let counted = stats.clone();
            let served = crate::testing::Served::bind(|listener, shutdown| {
                serve(listener, cfg, counted, handler, shutdown)
            })
            .await;
            Self {
                addr: served.addr,
                stats,
                served,
            }
        }

        async fn stop(self) -> ServeReport {
            self.served.stop().await
        }
    }

    async fn roundtrip(c: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
        c.write_all(msg).await.unwrap();
        let mut got = vec![0u8; msg.len()];
        c.read_exact(&mut got).await.unwrap();
        got
    }

    /// Polls `cond` until it holds, failing the test after [`BOUND`].
    async fn wait_until(cond: impl Fn() -> bool) {
        tokio::time::timeout(BOUND, async {
            while !cond() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("condition not reached in time");
    }

    #[tokio::test]
    async fn bind_names_the_address_it_could_not_take() {
        let taken = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = taken.local_addr().unwrap();
        let err = bind(addr).await.unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("cannot listen on {addr}: ")),
            "{err}"
        );
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let mut b = Backoff::new();
        let waits: Vec<_> = (0..12).map(|_| b.next().as_millis()).collect();
        assert_eq!(waits[..4], [1, 2, 4, 8]);
        assert_eq!(*waits.last().unwrap(), 1000);
        b.reset();
        assert_eq!(b.next().as_millis(), 1);
    }

    #[tokio::test]
    async fn serves_and_shuts_down_gracefully() {
        let server = Running::start(ServerConfig::new("test"), echo).await;
        let (addr, stats) = (server.addr, server.stats.clone());
        let mut a = TcpStream::connect(addr).await.unwrap();
        let mut b = TcpStream::connect(addr).await.unwrap();
        assert_eq!(roundtrip(&mut a, b"one").await, b"one");
        assert_eq!(roundtrip(&mut b, b"two").await, b"two");
        let report = server.stop().await;
        assert_eq!(
            report,
            ServeReport {
                accepted: 2,
                abandoned: 0
            }
        );
        // The handlers ended on the token, so the clients see EOF.
        let mut buf = [0u8; 1];
        assert_eq!(a.read(&mut buf).await.unwrap(), 0);
        assert_eq!(stats.active(), 0);
        // And nobody listens any more.
        assert!(TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn handler_that_ignores_shutdown_is_abandoned_at_the_deadline() {
        let mut cfg = ServerConfig::new("test");
        cfg.shutdown_grace = Duration::from_millis(50);
        let server =
            Running::start(cfg, |_s: TcpStream, _c: Conn| std::future::pending::<()>()).await;
        let (addr, stats) = (server.addr, server.stats.clone());
        let _c = TcpStream::connect(addr).await.unwrap();
        wait_until(|| stats.accepted() == 1).await;
        let report = server.stop().await;
        assert_eq!(
            report,
            ServeReport {
                accepted: 1,
                abandoned: 1
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn connection_limit_holds_new_clients_until_a_slot_frees() {
        let mut cfg = ServerConfig::new("test");
        cfg.max_connections = 2;
        cfg.evict_idle_after = None;
        let events = Arc::new(Mutex::new(Vec::new()));
        let ev = events.clone();
        let server = Running::start(cfg, move |s, c: Conn| {
            let ev = ev.clone();
            async move {
                ev.lock().unwrap().push(format!("start {}", c.id));
                echo(s, c.clone()).await;
                ev.lock().unwrap().push(format!("end {}", c.id));
            }
        })
        .await;
        let (addr, stats) = (server.addr, server.stats.clone());
        let mut c1 = TcpStream::connect(addr).await.unwrap();
        roundtrip(&mut c1, b"1").await;
        let mut c2 = TcpStream::connect(addr).await.unwrap();
        roundtrip(&mut c2, b"2").await;
        let mut c3 = TcpStream::connect(addr).await.unwrap();
        c3.write_all(b"3").await.unwrap();
        // Paused time: this returns once every task has run as far as it can
        // (the server has seen c3 knock), so a broken limit would show now.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(stats.accepted(), 2);
        assert_eq!(stats.active(), 2);
        drop(c1);
        let mut got = [0u8; 1];
        tokio::time::timeout(BOUND, c3.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got, b"3");
        let ev = events.lock().unwrap().clone();
        let end1 = ev.iter().position(|e| e == "end 1").unwrap();
        let start3 = ev.iter().position(|e| e == "start 3").unwrap();
        assert!(end1 < start3, "{ev:?}");
        server.stop().await;
    }

    async fn assert_closed(c: &mut TcpStream) {
        let mut b = [0u8; 1];
        let n = tokio::time::timeout(BOUND, c.read(&mut b)).await.unwrap();
        assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    }

    #[tokio::test]
    async fn at_the_limit_the_oldest_idle_connection_makes_room() {
        let mut cfg = ServerConfig::new("test");
        cfg.max_connections = 3;
        cfg.evict_idle_after = Some(Duration::ZERO);
        let server = Running::start(cfg, echo).await;
        let (addr, stats) = (server.addr, server.stats.clone());
        let mut c1 = TcpStream::connect(addr).await.unwrap();
        roundtrip(&mut c1, b"1").await;
        let mut c2 = TcpStream::connect(addr).await.unwrap();
        roundtrip(&mut c2, b"2").await;
        let mut c3 = TcpStream::connect(addr).await.unwrap();
        roundtrip(&mut c3, b"3").await;
        // c1 speaks again: c2 is now the one idle the longest.
        roundtrip(&mut c1, b"1").await;
        let mut c4 = TcpStream::connect(addr).await.unwrap();
        let got = tokio::time::timeout(BOUND, roundtrip(&mut c4, b"new"))
            .await
            .unwrap();
        assert_eq!(got, b"new");
        assert_closed(&mut c2).await;
        assert_eq!(stats.evicted(), 1);
        // The others are still served.
        assert_eq!(roundtrip(&mut c1, b"a").await, b"a");
        assert_eq!(roundtrip(&mut c3, b"b").await, b"b");
        server.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_connection_is_never_closed_to_make_room() {
        let mut cfg = ServerConfig::new("test");
        cfg.max_connections = 1;
        cfg.evict_idle_after = Some(Duration::ZERO);
        let release = CancellationToken::new();
        let rel = release.clone();
        // The first connection is busy until released, then echoes.
        let server = Running::start(cfg, move |s, c: Conn| {
            let rel = rel.clone();
            async move {
                c.activity.busy();
                rel.cancelled().await;
                echo(s, c).await;
            }
        })
        .await;
        let (addr, stats) = (server.addr, server.stats.clone());
        let mut c1 = TcpStream::connect(addr).await.unwrap();
        wait_until(|| stats.accepted() == 1).await;
        let mut c2 = TcpStream::connect(addr).await.unwrap();
        c2.write_all(b"2").await.unwrap();
        // Several eviction rounds pass (paused time: each one runs, none is
        // skipped by a slow machine); the busy one stays.
        tokio::time::sleep(ROOM_RETRY * 3).await;
        assert_eq!(stats.evicted(), 0);
        release.cancel();
        assert_eq!(roundtrip(&mut c1, b"1").await, b"1");
        // Now c1 is idle: it makes room for c2, which was waiting.
        let mut got = [0u8; 1];
        tokio::time::timeout(BOUND, c2.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got, b"2");
        assert_closed(&mut c1).await;
        server.stop().await;
    }

    #[tokio::test]
    async fn a_thousand_idle_connections_do_not_delay_an_active_one() {
        // Both ends of every connection live in this process.
        let idle_count = crate::testing::idle_connections(1000);
        let server = Running::start(ServerConfig::new("test"), echo).await;
        let (addr, stats) = (server.addr, server.stats.clone());
        let mut idle = Vec::with_capacity(idle_count);
        for _ in 0..idle_count {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        // Half-sent garbage on some of them changes nothing either.
        for c in idle.iter_mut().step_by(10) {
            c.write_all(b"partial").await.unwrap();
        }
        let mut active = TcpStream::connect(addr).await.unwrap();
        let got = tokio::time::timeout(BOUND, roundtrip(&mut active, b"still served"))
            .await
            .unwrap();
        assert_eq!(got, b"still served");
        wait_until(|| stats.active() == idle_count + 1).await;
        let report = server.stop().await;
        assert_eq!(report.accepted as usize, idle_count + 1);
        assert_eq!(report.abandoned, 0);
    }
}
