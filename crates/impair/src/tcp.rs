//! The TCP proxy: accepts clients on the netkit server runtime, connects each to
//! the upstream, and relays both directions through the shaping rules.
//!
//! Per direction, a reader and a writer run concurrently, joined by a small
//! bounded channel: the reader stamps each chunk with its delivery time (so
//! latency delays bytes without slowing the reading), the writer waits for it,
//! coalesces, paces, chops and counts. The channel bound is what keeps a slow or
//! stalled receiver from costing unbounded memory (backpressure reaches the
//! sender through TCP).
//!
//! Close and reset rules end *both* sides: close with FIN (`shutdown`), reset with
//! RST (`SO_LINGER` 0, then close). A read error on one side (the peer reset) is
//! passed on as a reset of the other.

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use netkit::server::{Conn, ServeReport, ServerConfig, ServerStats, serve};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::direction::{Direction, PerDir};
use crate::shaping::{Action, Latency, Pacer, Shaper, TcpRules, pieces};
use crate::stats::{TcpCounters, TcpSummary, bump};
use crate::units::Trigger;
use crate::{Error, stream_rng};

/// Bytes read from a socket at once.
const READ_CHUNK: usize = 256 * 1024;
/// Chunks in flight between a direction's reader and writer.
const CHANNEL_CHUNKS: usize = 8;

/// Configuration of a TCP proxy.
#[derive(Debug, Clone)]
pub struct TcpProxyConfig {
    /// Where clients connect (port 0 picks one).
    pub listen: SocketAddr,
    /// The real server.
    pub upstream: SocketAddr,
    /// Rules per direction.
    pub rules: PerDir<TcpRules>,
    /// Seed of every random choice (jitter).
    pub seed: u64,
    /// Log one line per decision (chunk forwarded, rule fired).
    pub log_decisions: bool,
    /// Connections relayed at once.
    pub max_connections: usize,
    /// How long to wait for the upstream to accept.
    pub connect_timeout: Duration,
}

impl TcpProxyConfig {
    /// No rules, seed 0, 10,000 connections, 5 s connect timeout.
    pub fn new(listen: SocketAddr, upstream: SocketAddr) -> Self {
        Self {
            listen,
            upstream,
            rules: PerDir::default(),
            seed: 0,
            log_decisions: false,
            max_connections: 10_000,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Default)]
struct Shared {
    dirs: PerDir<Arc<TcpCounters>>,
    upstream_failures: AtomicU64,
    server: Arc<ServerStats>,
}

/// A running TCP proxy.
#[derive(Debug)]
pub struct TcpProxy {
    local: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    task: JoinHandle<ServeReport>,
}

impl TcpProxy {
    /// Binds the listener and starts relaying.
    pub async fn start(config: TcpProxyConfig) -> Result<Self, Error> {
        let listener = netkit::server::bind(config.listen).await?;
        let local = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let cancel = CancellationToken::new();
        let mut server = ServerConfig::new("impair-tcp");
        server.max_connections = config.max_connections;
        server.shutdown_grace = Duration::from_millis(500);
        let config = Arc::new(config);
        let handler_shared = Arc::clone(&shared);
        let task = tokio::spawn(serve(
            listener,
            server,
            Arc::clone(&shared.server),
            move |stream, conn| {
                relay(
                    stream,
                    conn,
                    Arc::clone(&config),
                    Arc::clone(&handler_shared),
                )
            },
            cancel.clone().cancelled_owned(),
        ));
        Ok(Self {
            local,
            shared,
            cancel,
            task,
        })
    }

    /// The address clients should connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// What the proxy has done so far.
    pub fn summary(&self) -> TcpSummary {
        Self::summarize(&self.shared)
    }

    fn summarize(shared: &Shared) -> TcpSummary {
        TcpSummary {
            connections: shared.server.accepted(),
            upstream_failures: shared.upstream_failures.load(Ordering::Relaxed),
            dirs: PerDir {
                up: shared.dirs.up.snapshot(),
                down: shared.dirs.down.snapshot(),
            },
        }
    }

    /// Stops accepting, ends the relays and returns the summary.
    pub async fn shutdown(self) -> TcpSummary {
        self.cancel.cancel();
        let summary_source = Arc::clone(&self.shared);
        let _ = self.task.await;
        Self::summarize(&summary_source)
    }
}

/// How a connection ended early, decided by whichever side got there first.
#[derive(Debug, Default)]
struct Ending {
    action: Mutex<Option<Action>>,
    token: CancellationToken,
}

impl Ending {
    fn fire(&self, action: Action) {
        let mut slot = self
            .action
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(action);
        }
        self.token.cancel();
    }

    fn action(&self) -> Option<Action> {
        *self
            .action
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

async fn relay(client: TcpStream, conn: Conn, cfg: Arc<TcpProxyConfig>, shared: Arc<Shared>) {
    let upstream =
        match tokio::time::timeout(cfg.connect_timeout, TcpStream::connect(cfg.upstream)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return upstream_failed(&shared, &cfg, &e.to_string()),
            Err(_) => return upstream_failed(&shared, &cfg, "connect timed out"),
        };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let client = Arc::new(client);
    let upstream = Arc::new(upstream);
    let ending = Arc::new(Ending::default());
    let start = Instant::now();
    let pump = |dir: Direction, from: &Arc<TcpStream>, to: &Arc<TcpStream>| Pump {
        dir,
        from: Arc::clone(from),
        to: Arc::clone(to),
        rules: cfg.rules.get(dir).clone(),
        rng: stream_rng(cfg.seed, conn.id, dir),
        counters: Arc::clone(shared.dirs.get(dir)),
        ending: Arc::clone(&ending),
        start,
        conn: conn.id,
        log: cfg.log_decisions,
        activity: conn.activity.clone(),
    };
    let up = pump(Direction::Up, &client, &upstream).run();
    let down = pump(Direction::Down, &upstream, &client).run();
    let timer = time_trigger(&cfg.rules);
    tokio::select! {
        _ = async { tokio::join!(up, down) } => {}
        () = ending.token.cancelled() => {}
        () = conn.shutdown.cancelled() => {}
        action = async {
            match timer {
                Some((at, action)) => { tokio::time::sleep_until(start + at).await; action }
                None => std::future::pending().await,
            }
        } => ending.fire(action),
    }
    match ending.action() {
        Some(Action::Reset) => {
            // SO_LINGER 0: the close below (when the last Arc drops) sends RST.
            for s in [&upstream, &client] {
                let _ = socket2::SockRef::from(s.as_ref()).set_linger(Some(Duration::ZERO));
            }
        }
        Some(Action::Close) => {
            for s in [&upstream, &client] {
                let _ = socket2::SockRef::from(s.as_ref()).shutdown(Shutdown::Both);
            }
        }
        Some(Action::Stall(_)) | None => {}
    }
    if let Some(a) = ending.action() {
        tracing::debug!(
            conn = conn.id,
            action = a.as_str(),
            "connection ended by rule"
        );
    }
}

fn upstream_failed(shared: &Shared, cfg: &TcpProxyConfig, why: &str) {
    shared.upstream_failures.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(
        "action: impair_connect | result: fail | upstream: {} | error: {why}",
        cfg.upstream
    );
}

/// The earliest connection-wide time rule (close or reset after T) of either
/// direction.
fn time_trigger(rules: &PerDir<TcpRules>) -> Option<(Duration, Action)> {
    let mut best: Option<(Duration, Action)> = None;
    for dir in Direction::BOTH {
        let r = rules.get(dir);
        for (t, a) in [(r.reset, Action::Reset), (r.close, Action::Close)] {
            if let Some(Trigger::After(at)) = t
                && best.is_none_or(|(b, _)| at < b)
            {
                best = Some((at, a));
            }
        }
    }
    best
}

/// One chunk on its way from reader to writer.
struct Chunk {
    data: Bytes,
    due: Instant,
}

struct Pump {
    dir: Direction,
    from: Arc<TcpStream>,
    to: Arc<TcpStream>,
    rules: TcpRules,
    /// This direction's random stream (the jitter's).
    rng: rand_chacha::ChaCha8Rng,
    counters: Arc<TcpCounters>,
    ending: Arc<Ending>,
    start: Instant,
    conn: u64,
    log: bool,
    /// Traffic either way makes the connection not idle (at the connection
    /// limit the one quiet the longest makes room for a new client).
    activity: netkit::activity::Activity,
}

impl Pump {
    /// Relays this direction until EOF (then passes the FIN on) or until a rule or
    /// an error ends the connection.
    async fn run(self) {
        let (tx, rx) = mpsc::channel::<Chunk>(CHANNEL_CHUNKS);
        let reader = self.read_side(tx);
        let writer = self.write_side(rx);
        tokio::join!(reader, writer);
    }

    async fn read_side(&self, tx: mpsc::Sender<Chunk>) {
        let mut latency = Latency::new(&self.rules, self.rng.clone());
        let mut buf = BytesMut::new();
        loop {
            if buf.capacity() < READ_CHUNK / 4 {
                buf.reserve(READ_CHUNK);
            }
            match read_some(&self.from, &mut buf).await {
                Ok(0) => return, // EOF: dropping tx tells the writer.
                Ok(n) => {
                    self.activity.idle();
                    bump(&self.counters.bytes_in, n as u64);
                    let due = Instant::from_std(latency.due(std::time::Instant::now()));
                    // Hand the bytes over without copying; the spare capacity
                    // stays for the next read.
                    let chunk = Chunk {
                        data: buf.split().freeze(),
                        due,
                    };
                    if tx.send(chunk).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::debug!(dir = %self.dir, error = %e, "read failed; resetting the other side");
                    self.ending.fire(Action::Reset);
                    return;
                }
            }
        }
    }

    async fn write_side(&self, mut rx: mpsc::Receiver<Chunk>) {
        let mut shaper = Shaper::new(&self.rules);
        let mut pacer = self.rules.bandwidth.map(Pacer::new);
        let mut stalled_by_time = false;
        while let Some(first) = rx.recv().await {
            let mut data = first.data;
            // Coalesce: gather what arrives within the window into one write.
            if let Some(window) = self.rules.coalesce {
                let deadline = Instant::now() + window;
                let mut joined = data.to_vec();
                while let Ok(Some(more)) = tokio::time::timeout_at(deadline, rx.recv()).await {
                    joined.extend_from_slice(&more.data);
                    if joined.len() >= READ_CHUNK {
                        break;
                    }
                }
                data = Bytes::from(joined);
            }
            if first.due > Instant::now() {
                tokio::time::sleep_until(first.due).await;
            }
            if let Some(Trigger::After(at)) = self.rules.stall
                && !stalled_by_time
                && Instant::now() >= self.start + at
            {
                stalled_by_time = true;
                self.stall(self.rules.stall_for).await;
            }
            if self.log {
                tracing::info!(
                    target: "impair::decision",
                    "action: impair_tcp | result: success | conn: {} | dir: {} | bytes: {} | delay_us: {}",
                    self.conn, self.dir, data.len(),
                    first.due.saturating_duration_since(Instant::now()).as_micros()
                );
            }
            while !data.is_empty() {
                let (n, action) = shaper.plan(data.len());
                let now_part = data.split_to(n);
                if self.write_shaped(&now_part, &mut pacer).await.is_err() {
                    self.ending.fire(Action::Reset);
                    return;
                }
                shaper.advance(n, action.is_some());
                match action {
                    None => {}
                    Some(a) => {
                        self.fired(a, shaper.forwarded());
                        match a {
                            Action::Stall(d) => self.stall(d).await,
                            Action::Close | Action::Reset => {
                                self.ending.fire(a);
                                return;
                            }
                        }
                    }
                }
            }
        }
        // The sender finished: pass its FIN on.
        let _ = socket2::SockRef::from(self.to.as_ref()).shutdown(Shutdown::Write);
    }

    async fn write_shaped(&self, data: &[u8], pacer: &mut Option<Pacer>) -> io::Result<()> {
        let max = match (self.rules.chop, pacer.as_ref()) {
            (Some(c), Some(p)) => Some(c.min(p.piece())),
            (c, p) => c.or(p.map(Pacer::piece)),
        };
        let mut offset = 0;
        let mut first = true;
        for n in pieces(data.len(), max) {
            if !first && self.rules.chop.is_some() && !self.rules.chop_pause.is_zero() {
                tokio::time::sleep(self.rules.chop_pause).await;
            }
            first = false;
            if let Some(p) = pacer.as_mut() {
                let at = p.reserve(std::time::Instant::now(), n);
                tokio::time::sleep_until(Instant::from_std(at)).await;
            }
            write_all(&self.to, &data[offset..offset + n]).await?;
            offset += n;
            bump(&self.counters.writes, 1);
            bump(&self.counters.bytes_out, n as u64);
        }
        Ok(())
    }

    async fn stall(&self, how_long: Option<Duration>) {
        bump(&self.counters.stalls, 1);
        match how_long {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    }

    fn fired(&self, action: Action, after: u64) {
        match action {
            Action::Close => bump(&self.counters.closes, 1),
            Action::Reset => bump(&self.counters.resets, 1),
            Action::Stall(_) => {}
        }
        tracing::info!(
            target: "impair::decision",
            "action: impair_tcp_rule | result: success | conn: {} | dir: {} | rule: {} | after_bytes: {after}",
            self.conn, self.dir, action.as_str()
        );
    }
}

/// Reads what is available (at least one byte, or 0 at EOF) from a shared
/// stream into the spare capacity of `buf`.
async fn read_some(s: &TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    loop {
        s.readable().await?;
        match s.try_read_buf(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            r => return r,
        }
    }
}

/// Writes all of `data` to a shared stream.
async fn write_all(s: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        s.writable().await?;
        match s.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
