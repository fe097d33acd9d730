//! Which connections are idle, and making room at the connection limit
//! (hostile input: ten thousand idle connections must not shut real clients
//! out for as long as they care to stay).
//!
//! Every connection's handler holds an [`Activity`]: it says [`Activity::busy`]
//! while it works on a request (a download in progress, a commit it waits for)
//! and [`Activity::idle`] when it waits for the peer's next request. A new
//! connection starts idle. When the server is full and another client arrives,
//! the [`Registry`] picks the connection that has been idle the longest (at
//! least `min_idle`) and cancels its token: its handler closes it as at
//! shutdown, and its slot goes to the newcomer. A busy connection is never
//! chosen, so eviction never cuts an answer short.
//!
//! Marking is one atomic store, cheap enough for every request; the registry's
//! lock is taken only when a connection opens or closes, and when the server
//! is full.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// The stored value of a busy connection.
const BUSY: u64 = u64::MAX;

/// One connection's idle mark, shared by its handler and the server.
#[derive(Debug, Clone)]
pub struct Activity {
    /// Nanoseconds after `epoch` since which the connection is idle, or [`BUSY`].
    since: Arc<AtomicU64>,
    epoch: Instant,
    evicted: Arc<AtomicBool>,
}

impl Activity {
    fn new(epoch: Instant) -> Self {
        let a = Self {
            since: Arc::new(AtomicU64::new(BUSY)),
            epoch,
            evicted: Arc::new(AtomicBool::new(false)),
        };
        a.idle();
        a
    }

    /// A mark not registered anywhere (for handlers run outside a server, in tests).
    pub fn detached() -> Self {
        Self::new(Instant::now())
    }

    /// The connection waits for its peer from now on: it may be closed to make
    /// room for another client once the server is full.
    pub fn idle(&self) {
        let nanos = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(BUSY - 1);
        self.since.store(nanos.min(BUSY - 1), Ordering::Relaxed);
    }

    /// The connection works on a request: it is not to be closed for room.
    pub fn busy(&self) {
        self.since.store(BUSY, Ordering::Relaxed);
    }

    /// How long the connection has been idle at `now`, if it is.
    pub fn idle_for(&self, now: Instant) -> Option<Duration> {
        let since = self.since.load(Ordering::Relaxed);
        (since != BUSY)
            .then(|| now.saturating_duration_since(self.epoch + Duration::from_nanos(since)))
    }

    /// True once the server closed this connection to make room.
    pub fn evicted(&self) -> bool {
        self.evicted.load(Ordering::Relaxed)
    }
}

struct Entry {
    activity: Activity,
    token: CancellationToken,
    peer: SocketAddr,
}

/// A connection chosen to make room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evicted {
    /// Its server-wide number.
    pub id: u64,
    /// Its peer.
    pub peer: SocketAddr,
    /// How long it had been idle.
    pub idle: Duration,
}

/// Every open connection's mark and token.
pub struct Registry {
    epoch: Instant,
    conns: Mutex<HashMap<u64, Entry>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("open", &self.len())
            .finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
            conns: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a new connection (idle from now) and returns its mark.
    pub fn open(&self, id: u64, peer: SocketAddr, token: CancellationToken) -> Activity {
        let activity = Activity::new(self.epoch);
        self.lock().insert(
            id,
            Entry {
                activity: activity.clone(),
                token,
                peer,
            },
        );
        activity
    }

    /// Forgets a closed connection.
    pub fn close(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Connections open.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Connections chosen to make room that have not closed yet.
    pub fn closing(&self) -> usize {
        self.lock()
            .values()
            .filter(|e| e.activity.evicted())
            .count()
    }

    /// True when no connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes the connection idle the longest, if one has been idle at least
    /// `min_idle` and is not already being closed. A linear scan: it runs only
    /// when the server is full and a client waits, and 10,000 entries take
    /// microseconds.
    pub fn evict_oldest_idle(&self, now: Instant, min_idle: Duration) -> Option<Evicted> {
        let conns = self.lock();
        let (id, entry, idle) = conns
            .iter()
            .filter(|(_, e)| !e.activity.evicted())
            .filter_map(|(id, e)| e.activity.idle_for(now).map(|d| (*id, e, d)))
            .filter(|(_, _, d)| *d >= min_idle)
            .max_by_key(|(id, _, d)| (*d, std::cmp::Reverse(*id)))?;
        entry.activity.evicted.store(true, Ordering::Relaxed);
        entry.token.cancel();
        Some(Evicted {
            id,
            peer: entry.peer,
            idle,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn the_longest_idle_goes_first_and_busy_ones_never() {
        let r = Registry::new();
        let tokens: Vec<_> = (0..3).map(|_| CancellationToken::new()).collect();
        let a = r.open(1, peer(1), tokens[0].clone());
        let b = r.open(2, peer(2), tokens[1].clone());
        let c = r.open(3, peer(3), tokens[2].clone());
        a.busy();
        std::thread::sleep(Duration::from_millis(5));
        c.idle(); // c is idle since now, b since it opened
        let now = Instant::now();
        let first = r.evict_oldest_idle(now, Duration::ZERO).unwrap();
        assert_eq!(first.id, 2);
        assert!(tokens[1].is_cancelled() && b.evicted());
        // b is being closed already: the next choice is c, never the busy a.
        assert_eq!(r.evict_oldest_idle(now, Duration::ZERO).unwrap().id, 3);
        assert_eq!(r.evict_oldest_idle(now, Duration::ZERO), None);
        assert!(!tokens[0].is_cancelled());
        a.idle();
        assert_eq!(
            r.evict_oldest_idle(Instant::now(), Duration::ZERO)
                .unwrap()
                .id,
            1
        );
    }

    #[test]
    fn nobody_is_evicted_before_the_minimum_idle_time() {
        let r = Registry::new();
        let t = CancellationToken::new();
        let _a = r.open(1, peer(1), t.clone());
        assert_eq!(
            r.evict_oldest_idle(Instant::now(), Duration::from_secs(60)),
            None
        );
        assert!(!t.is_cancelled());
        r.close(1);
        assert!(r.is_empty());
        assert_eq!(r.evict_oldest_idle(Instant::now(), Duration::ZERO), None);
    }
}
