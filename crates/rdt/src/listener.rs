//! The listening side of the seed's `accept` (spec "Socket API"): SYNs arrive
//! on the listening socket; each new client gets a socket on a new port.
//! `accept` takes the next connection whose handshake is done. A duplicate SYN
//! (its SYN-ACK was lost) is answered first, with the same SYN-ACK, from the
//! connection's own port.
//!
//! Hostile input (a SYN flood from a thousand ports shut every real client
//! out): half-open handshakes cost a socket and no thread. The listener's one
//! thread runs all of them, watching every socket with one epoll set. They are
//! bounded per source address ([`MAX_HALF_OPEN_PER_SOURCE`]) and in all
//! ([`MAX_HALF_OPEN`]); a SYN past a bound takes the place of the oldest
//! half-open handshake (of its source, else of all), as the kernel's SYN queue
//! does. Datagrams for handshakes in progress are taken before new SYNs, and
//! SYNs a few at a time, so a real client completes its handshake within a
//! round trip, long before a flood can push it out; a flooder's half-open
//! entries only push out each other. Warnings about a flood are summed up
//! once a second, not one a SYN.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::conn::Connection;
use crate::endpoint::Endpoint;
use crate::error::Error;
use crate::isn;
use crate::link::{Incoming, Link, Options};
use crate::segment::Kind;
use crate::seq::Seq;
use crate::trace::TraceKind;
use crate::wait::Until;

/// Half-open handshakes at once, in all (each holds a socket and a poller:
/// three file descriptors).
pub const MAX_HALF_OPEN: usize = 256;
/// Half-open handshakes at once from one source address.
pub const MAX_HALF_OPEN_PER_SOURCE: usize = 64;
/// Datagrams taken from the listening socket between two looks at the
/// handshakes in progress: a flood of SYNs never keeps the listener from the
/// ACKs that complete real handshakes.
const SYN_BATCH: usize = 16;
/// Connections done and not yet taken by `accept`; past that, new ones are
/// dropped (their clients time out) rather than queued without bound.
pub const ACCEPT_BACKLOG: usize = 128;
/// How often the listening thread looks at its stop flag.
const TICK: Duration = Duration::from_millis(100);
/// The listening socket's token in the poll set.
const LISTENING: Token = Token(0);

/// A listening socket; its thread stops when this is dropped.
#[derive(Debug)]
pub(crate) struct Listener {
    local: SocketAddr,
    ready: mpsc::Receiver<Result<Endpoint, Error>>,
    stop: Arc<AtomicBool>,
}

impl Listener {
    /// Starts listening on `link`'s socket.
    pub fn start(link: Link, opts: Options) -> Result<Listener, Error> {
        let local = link.local_addr()?;
        let (tx, ready) = mpsc::sync_channel(ACCEPT_BACKLOG);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let poll = Poll::new().map_err(|e| Error::io("set up the listener's poller", e))?;
        poll.registry()
            .register(
                &mut SourceFd(&link.udp.as_raw_fd()),
                LISTENING,
                Interest::READABLE,
            )
            .map_err(|e| Error::io("watch the listening socket", e))?;
        thread::Builder::new()
            .name("rdt-listener".into())
            .spawn(move || {
                let mut l = Listening {
                    link,
                    opts,
                    poll,
                    ready: tx,
                    recent: HashMap::new(),
                    half_open: HashMap::new(),
                    next_token: 1,
                    next_timer: None,
                    syns_waiting: false,
                    warn: Throttle::default(),
                };
                l.run(&flag);
            })
            .map_err(|e| Error::io("start the listening thread", e))?;
        Ok(Listener { local, ready, stop })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The next connection whose handshake is complete.
    pub fn accept(&self) -> Result<Endpoint, Error> {
        self.ready.recv().map_err(|_| Error::Closed)?
    }

    /// `accept`, waiting at most `wait` (None: nothing completed in time).
    pub fn accept_within(&self, wait: std::time::Duration) -> Result<Option<Endpoint>, Error> {
        match self.ready.recv_timeout(wait) {
            Ok(done) => done.map(Some),
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(Error::Closed),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// A client recently accepted: what its duplicate SYN gets.
#[derive(Debug)]
struct Recent {
    syn_seq: Seq,
    synack: Vec<u8>,
    socket: UdpSocket,
    at: Instant,
}

/// A handshake in progress.
#[derive(Debug)]
struct HalfOpen {
    endpoint: Endpoint,
    from: SocketAddr,
    since: Instant,
}

/// Warnings summed up: at most one line a second.
#[derive(Debug, Default)]
struct Throttle {
    last: Option<Instant>,
    evicted: u64,
    refused: u64,
}

impl Throttle {
    fn evicted(&mut self) {
        self.evicted += 1;
        self.maybe_log();
    }
    fn refused(&mut self) {
        self.refused += 1;
        self.maybe_log();
    }
    fn maybe_log(&mut self) {
        if let Some((evicted, refused)) = self.due(Instant::now()) {
            tracing::warn!(
                target: "rdt",
                "SYN flood? {evicted} half-open handshakes pushed out by newer SYNs, {refused} finished connections dropped (accept queue full), since the last warning"
            );
        }
    }
    /// The counts to report now, if a second has passed since the last
    /// report (the first event is reported at once); they start again.
    fn due(&mut self, now: Instant) -> Option<(u64, u64)> {
        if self
            .last
            .is_some_and(|l| now.duration_since(l) < Duration::from_secs(1))
        {
            return None;
        }
        self.last = Some(now);
        Some((
            std::mem::take(&mut self.evicted),
            std::mem::take(&mut self.refused),
        ))
    }
}

/// The listening thread's state.
struct Listening {
    link: Link,
    opts: Options,
    poll: Poll,
    ready: mpsc::SyncSender<Result<Endpoint, Error>>,
    recent: HashMap<SocketAddr, Recent>,
    half_open: HashMap<Token, HalfOpen>,
    next_token: usize,
    /// The earliest timer of any half-open handshake (a bound, may be early).
    next_timer: Option<Instant>,
    /// The listening socket may hold datagrams not taken yet.
    syns_waiting: bool,
    warn: Throttle,
}

impl Listening {
    fn run(&mut self, stop: &AtomicBool) {
        let mut events = Events::with_capacity(256);
        while !stop.load(Ordering::Acquire) {
            let forget = self.opts.config.idle_limit;
            self.recent.retain(|_, r| r.at.elapsed() < forget);
            let now = Instant::now();
            let wait = if self.syns_waiting {
                Duration::ZERO
            } else {
                self.next_timer
                    .map_or(TICK, |t| t.saturating_duration_since(now).min(TICK))
            };
            if let Err(e) = self.poll.poll(&mut events, Some(wait))
                && e.kind() != std::io::ErrorKind::Interrupted
            {
                let _ = self.ready.send(Err(Error::io("wait for datagrams", e)));
                return;
            }
            // Handshakes in progress first, then a few new SYNs.
            for ev in &events {
                if ev.token() == LISTENING {
                    self.syns_waiting = true;
                } else {
                    self.turn(ev.token());
                }
            }
            if self.next_timer.is_some_and(|t| t <= Instant::now()) {
                self.timers();
            }
            if self.syns_waiting
                && let Err(e) = self.listening_socket()
            {
                let _ = self.ready.send(Err(e));
                return;
            }
        }
    }

    /// Up to [`SYN_BATCH`] datagrams from the listening socket; notes
    /// whether more may be waiting.
    fn listening_socket(&mut self) -> Result<(), Error> {
        for _ in 0..SYN_BATCH {
            match self.link.receive(Until::Now)? {
                Incoming::Segment(seg, from) => self.syn(&seg, from),
                Incoming::Nothing => {}
                Incoming::TimedOut => {
                    self.syns_waiting = false;
                    return Ok(());
                }
            }
        }
        self.syns_waiting = true;
        Ok(())
    }

    fn syn(&mut self, seg: &crate::Segment, from: SocketAddr) {
        if seg.kind() != Kind::Syn {
            // Readings that send the handshake ACK to the listening address:
            // it belongs to that client's handshake in progress.
            let token = self
                .half_open
                .iter()
                .find(|(_, h)| h.from == from)
                .map(|(t, _)| *t);
            match token {
                Some(token) => {
                    let result = match self.half_open.get_mut(&token) {
                        Some(h) => h.endpoint.take_forwarded(seg.clone()),
                        None => Ok(()),
                    };
                    self.settle(token, result);
                }
                None => {
                    tracing::debug!(target: "rdt", "listener ignored {seg} from {from}: not a SYN");
                }
            }
            return;
        }
        // A client we know, asking again: answered before anything else.
        if let Some(r) = self.recent.get(&from).filter(|r| r.syn_seq == seg.seq) {
            tracing::debug!(target: "rdt", "duplicate SYN from {from}: same SYN-ACK sent again");
            if let Err(e) = Link::send_raw(&r.socket, &r.synack, from) {
                tracing::debug!(target: "rdt", "{e}");
            }
            return;
        }
        let ip = from.ip();
        if self.count_from(ip) >= MAX_HALF_OPEN_PER_SOURCE {
            self.evict_oldest(Some(ip));
        }
        if self.half_open.len() >= MAX_HALF_OPEN {
            self.evict_oldest(None);
        }
        match new_connection(&mut self.link, &self.opts, seg, from) {
            Ok((endpoint, entry)) => {
                let token = Token(self.next_token);
                self.next_token += 1;
                if let Err(e) = self.poll.registry().register(
                    &mut SourceFd(&endpoint.udp().as_raw_fd()),
                    token,
                    Interest::READABLE,
                ) {
                    tracing::warn!(target: "rdt", "cannot watch the socket for {from}: {e}");
                    return;
                }
                self.recent.insert(from, entry);
                self.half_open.insert(
                    token,
                    HalfOpen {
                        endpoint,
                        from,
                        since: Instant::now(),
                    },
                );
                // The SYN-ACK goes out now; its timer starts.
                self.turn(token);
            }
            Err(e) => tracing::warn!(target: "rdt", "cannot take the connection from {from}: {e}"),
        }
    }

    fn count_from(&self, ip: IpAddr) -> usize {
        self.half_open
            .values()
            .filter(|h| h.from.ip() == ip)
            .count()
    }

    /// Drops the oldest half-open handshake (of `ip`, if given).
    fn evict_oldest(&mut self, ip: Option<IpAddr>) {
        let oldest = self
            .half_open
            .iter()
            .filter(|(_, h)| ip.is_none_or(|ip| h.from.ip() == ip))
            .min_by_key(|(_, h)| h.since)
            .map(|(t, _)| *t);
        if let Some(token) = oldest
            && let Some(h) = self.remove(token)
        {
            tracing::debug!(target: "rdt", "half-open handshake with {} dropped for a newer SYN", h.from);
            self.recent.remove(&h.from);
            self.warn.evicted();
        }
    }

    fn remove(&mut self, token: Token) -> Option<HalfOpen> {
        let h = self.half_open.remove(&token)?;
        let _ = self
            .poll
            .registry()
            .deregister(&mut SourceFd(&h.endpoint.udp().as_raw_fd()));
        Some(h)
    }

    /// Runs one handshake a turn; hands it to `accept` once established.
    fn turn(&mut self, token: Token) {
        let Some(h) = self.half_open.get_mut(&token) else {
            return;
        };
        let result = h.endpoint.turn();
        self.settle(token, result);
    }

    /// After a turn of handshake `token`: hands it to `accept` once
    /// established, drops it if it failed, notes its next timer.
    fn settle(&mut self, token: Token, result: Result<(), Error>) {
        let Some(h) = self.half_open.get_mut(&token) else {
            return;
        };
        let failed = result.err().or_else(|| h.endpoint.conn_mut().take_error());
        let conn = h.endpoint.conn();
        let established = conn.is_established();
        let closed = conn.is_closed();
        let timer = conn.poll_timeout();
        if let Some(e) = failed {
            if let Some(h) = self.remove(token) {
                tracing::warn!(target: "rdt", "handshake with {} failed: {e}", h.from);
            }
        } else if established {
            if let Some(h) = self.remove(token)
                && let Err(mpsc::TrySendError::Full(_)) = self.ready.try_send(Ok(h.endpoint))
            {
                self.warn.refused();
            }
        } else if closed {
            self.remove(token);
        } else if let Some(at) = timer {
            self.next_timer = Some(self.next_timer.map_or(at, |t| t.min(at)));
        }
    }

    /// Runs every handshake whose timer is due, and finds the next timer.
    fn timers(&mut self) {
        let now = Instant::now();
        let due: Vec<Token> = self
            .half_open
            .iter()
            .filter(|(_, h)| h.endpoint.conn().poll_timeout().is_some_and(|at| at <= now))
            .map(|(t, _)| *t)
            .collect();
        self.next_timer = None;
        for token in due {
            self.turn(token);
        }
        for h in self.half_open.values() {
            if let Some(at) = h.endpoint.conn().poll_timeout() {
                self.next_timer = Some(self.next_timer.map_or(at, |t| t.min(at)));
            }
        }
    }
}

/// A socket on a new port and a core in SYN-RECEIVED for the client at `from`.
fn new_connection(
    link: &mut Link,
    opts: &Options,
    syn: &crate::Segment,
    from: SocketAddr,
) -> Result<(Endpoint, Recent), Error> {
    let ip = link.local_addr()?.ip();
    let udp = UdpSocket::bind((ip, 0))
        .map_err(|e| Error::io("bind a socket for the new connection", e))?;
    let clone = udp.try_clone().map_err(|e| Error::io("clone socket", e))?;
    let server_isn = isn::initial(opts.config.format, link.rng());
    let conn = Connection::accept(opts.config.clone(), Instant::now(), syn, server_isn);
    let mut synack = Vec::new();
    if let Some(s) = conn.syn_ack() {
        opts.config.format.encode(s, &mut synack);
    }
    // Each connection draws its own loss decisions, reproducible from the seed.
    let link_rng = ChaCha8Rng::seed_from_u64(link.rng().random());
    let new_link = Link::new(udp, opts.clone(), link_rng)?;
    new_link.trace_hosts(from);
    let port = new_link.local_addr()?.port();
    new_link.trace(TraceKind::Note, || format!("new socket :{port}"));
    let recent = Recent {
        syn_seq: syn.seq,
        synack,
        socket: clone,
        at: Instant::now(),
    };
    Ok((Endpoint::new(new_link, from, conn), recent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flood_warnings_are_summed_up_once_a_second() {
        let mut t = Throttle::default();
        let start = Instant::now();
        t.evicted += 1;
        assert_eq!(t.due(start), Some((1, 0)), "the first is said at once");
        for _ in 0..5000 {
            t.evicted += 1;
            assert_eq!(t.due(start + Duration::from_millis(500)), None);
        }
        t.refused += 2;
        assert_eq!(t.due(start + Duration::from_secs(1)), Some((5000, 2)));
        assert_eq!(t.due(start + Duration::from_millis(1500)), None);
    }
}
