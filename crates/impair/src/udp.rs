//! The UDP proxy: relays datagrams between clients and one upstream, through a
//! [`DatagramEngine`] per direction per client.
//!
//! Each client address is a *flow* with its own upstream socket (so replies find
//! their way back to the right client and clients are kept apart), its own engines
//! and its own task. Flows idle for `flow_idle` are closed; at most `max_flows`
//! exist at once (datagrams from further clients are dropped and counted).
//!
//! Replies are accepted from any port of the upstream host, and the flow then sends
//! to that port: a server that answers from a new socket per client (the course's
//! Stop & Wait `accept`) keeps working through the proxy.
//!
//! With `mirror_ports`, each upstream port that answers gets a port of its own
//! on the proxy instead (a *route*, with its own engines): the client sees the
//! server's new socket at a new address, as it would without the proxy, and
//! can still reach the listening port (some Stop & Wait readings send the
//! handshake ACK there). Both reach the server from the same flow address.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::datagram::{DatagramEngine, Decision, UdpRules};
use crate::direction::{Direction, PerDir};
use crate::stats::{UdpCounters, UdpSummary};
use crate::{Error, stream_rng};

/// Largest datagram relayed (the UDP maximum).
const MAX_DATAGRAM: usize = 65_535;
/// Datagrams queued from the listener to one flow before new ones are dropped.
const FLOW_CHANNEL: usize = 1024;

/// Configuration of a UDP proxy.
#[derive(Debug, Clone)]
pub struct UdpProxyConfig {
    /// Where clients send (port 0 picks one).
    pub listen: SocketAddr,
    /// The real server.
    pub upstream: SocketAddr,
    /// Rules per direction.
    pub rules: PerDir<UdpRules>,
    /// Seed of every random choice.
    pub seed: u64,
    /// Log one line per decision.
    pub log_decisions: bool,
    /// Client addresses served at once.
    pub max_flows: usize,
    /// A flow with no traffic for this long is closed.
    pub flow_idle: Duration,
    /// Give each upstream port that answers its own proxy port (module docs).
    pub mirror_ports: bool,
}

impl UdpProxyConfig {
    /// No rules, seed 0, 1024 flows, 60 s idle.
    pub fn new(listen: SocketAddr, upstream: SocketAddr) -> Self {
        Self {
            listen,
            upstream,
            rules: PerDir::default(),
            seed: 0,
            log_decisions: false,
            max_flows: 1024,
            flow_idle: Duration::from_secs(60),
            mirror_ports: false,
        }
    }
}

#[derive(Debug, Default)]
struct Shared {
    dirs: PerDir<Arc<UdpCounters>>,
    flows_seen: AtomicU64,
    flows_refused: AtomicU64,
}

/// A running UDP proxy.
#[derive(Debug)]
pub struct UdpProxy {
    local: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl UdpProxy {
    /// Binds the listening socket and starts relaying.
    pub async fn start(config: UdpProxyConfig) -> Result<Self, Error> {
        let sock = UdpSocket::bind(config.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: config.listen,
                source,
            })?;
        let local = sock.local_addr()?;
        let shared = Arc::new(Shared::default());
        let cancel = CancellationToken::new();
        let task = tokio::spawn(listen_loop(
            Arc::new(sock),
            config,
            Arc::clone(&shared),
            cancel.clone(),
        ));
        Ok(Self {
            local,
            shared,
            cancel,
            task,
        })
    }

    /// The address clients should send to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// What the proxy has done so far.
    pub fn summary(&self) -> UdpSummary {
        Self::summarize(&self.shared)
    }

    fn summarize(shared: &Shared) -> UdpSummary {
        UdpSummary {
            flows: shared.flows_seen.load(Ordering::Relaxed),
            flows_refused: shared.flows_refused.load(Ordering::Relaxed),
            dirs: PerDir {
                up: shared.dirs.up.snapshot(),
                down: shared.dirs.down.snapshot(),
            },
        }
    }

    /// Stops relaying (datagrams still delayed are dropped) and returns the summary.
    pub async fn shutdown(self) -> UdpSummary {
        self.cancel.cancel();
        let summary_source = Arc::clone(&self.shared);
        let _ = self.task.await;
        Self::summarize(&summary_source)
    }
}

type FlowMap = Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<(Instant, Bytes)>>>>;

async fn listen_loop(
    sock: Arc<UdpSocket>,
    config: UdpProxyConfig,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    let flows: FlowMap = Arc::default();
    let tracker = TaskTracker::new();
    let config = Arc::new(config);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, from) = tokio::select! {
            () = cancel.cancelled() => break,
            r = sock.recv_from(&mut buf) => match r {
                Ok(x) => x,
                // ICMP "port unreachable" from an earlier send shows up here on
                // some systems; it concerns one peer, not the proxy.
                Err(e) => {
                    tracing::debug!(error = %e, "udp recv error");
                    continue;
                }
            },
        };
        let item = (Instant::now(), Bytes::copy_from_slice(&buf[..n]));
        let existing = lock(&flows).get(&from).cloned();
        let tx = if let Some(tx) = existing.filter(|tx| !tx.is_closed()) {
            tx
        } else {
            if lock(&flows).len() >= config.max_flows {
                shared.flows_refused.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let index = shared.flows_seen.fetch_add(1, Ordering::Relaxed);
            match Flow::open(index, from, &config, &shared, Arc::clone(&sock)).await {
                Ok(flow) => {
                    let (tx, rx) = mpsc::channel(FLOW_CHANNEL);
                    lock(&flows).insert(from, tx.clone());
                    let flows = Arc::clone(&flows);
                    let cancel = cancel.clone();
                    tracker.spawn(async move {
                        flow.run(rx, cancel).await;
                        // Only our own entry: a new flow for the same client may
                        // already have replaced it.
                        let mut map = lock(&flows);
                        if map.get(&from).is_some_and(mpsc::Sender::is_closed) {
                            map.remove(&from);
                        }
                    });
                    tx
                }
                Err(e) => {
                    tracing::warn!(error = %e, client = %from, "cannot open upstream socket");
                    continue;
                }
            }
        };
        if tx.try_send(item).is_err() {
            crate::stats::bump(&shared.dirs.up.dropped_queue, 1);
        }
    }
    tracker.close();
    tracker.wait().await;
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned map only means a flow task panicked; the map itself is intact.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Upstream ports one flow may give proxy ports of their own (`mirror_ports`).
const MAX_ROUTES: usize = 16;

/// One upstream address of a flow and where the client reaches it.
struct Route {
    upstream: SocketAddr,
    /// The proxy's listening socket (the first route) or this route's own.
    down: Arc<UdpSocket>,
    engines: PerDir<DatagramEngine>,
    /// Reads the client's datagrams on a route's own socket.
    reader: Option<JoinHandle<()>>,
}

impl Drop for Route {
    fn drop(&mut self) {
        if let Some(r) = self.reader.take() {
            r.abort();
        }
    }
}

struct Flow {
    index: u64,
    client: SocketAddr,
    up_sock: UdpSocket,
    routes: Vec<Route>,
    config: Arc<UdpProxyConfig>,
    shared: Arc<Shared>,
    /// The client's datagrams to a mirrored route's socket, by route.
    mirrored_tx: mpsc::Sender<(usize, Instant, Bytes)>,
    mirrored_rx: mpsc::Receiver<(usize, Instant, Bytes)>,
}

impl Flow {
    async fn open(
        index: u64,
        client: SocketAddr,
        config: &Arc<UdpProxyConfig>,
        shared: &Arc<Shared>,
        listen: Arc<UdpSocket>,
    ) -> Result<Self, Error> {
        let any: IpAddr = if config.upstream.is_ipv4() {
            Ipv4Addr::UNSPECIFIED.into()
        } else {
            Ipv6Addr::UNSPECIFIED.into()
        };
        let up_sock = UdpSocket::bind(SocketAddr::new(any, 0)).await?;
        tracing::debug!(client = %client, flow = index, "new udp flow");
        let (mirrored_tx, mirrored_rx) = mpsc::channel(FLOW_CHANNEL);
        let mut flow = Self {
            index,
            client,
            up_sock,
            routes: Vec::new(),
            config: Arc::clone(config),
            shared: Arc::clone(shared),
            mirrored_tx,
            mirrored_rx,
        };
        let first = flow.route(config.upstream, listen, None);
        flow.routes.push(first);
        Ok(flow)
    }

    fn route(
        &self,
        upstream: SocketAddr,
        down: Arc<UdpSocket>,
        reader: Option<JoinHandle<()>>,
    ) -> Route {
        // The first route keeps the flow's historical seeds; later ones differ.
        let seed = self
            .config
            .seed
            .wrapping_add((self.routes.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let engine = |dir| {
            DatagramEngine::new(
                self.config.rules.get(dir).clone(),
                stream_rng(seed, self.index, dir),
                Arc::clone(self.shared.dirs.get(dir)),
            )
        };
        Route {
            upstream,
            down,
            engines: PerDir {
                up: engine(Direction::Up),
                down: engine(Direction::Down),
            },
            reader,
        }
    }

    /// The route a reply from `from` takes: with `mirror_ports`, a new port
    /// for a new upstream port; without, the one route, retargeted.
    async fn route_of_reply(&mut self, from: SocketAddr) -> Option<usize> {
        if !self.config.mirror_ports {
            self.routes[0].upstream = from;
            return Some(0);
        }
        if let Some(i) = self.routes.iter().position(|r| r.upstream == from) {
            return Some(i);
        }
        if self.routes.len() >= MAX_ROUTES {
            tracing::debug!(%from, "too many upstream ports for one flow: reply dropped");
            return None;
        }
        let ip = self.config.listen.ip();
        let down = match UdpSocket::bind(SocketAddr::new(ip, 0)).await {
            Ok(s) => Arc::new(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot open a mirror port");
                return None;
            }
        };
        let i = self.routes.len();
        let reader = {
            let sock = Arc::clone(&down);
            let tx = self.mirrored_tx.clone();
            let client = self.client;
            tokio::spawn(async move {
                let mut buf = vec![0u8; MAX_DATAGRAM];
                loop {
                    match sock.recv_from(&mut buf).await {
                        Ok((n, src)) if src == client => {
                            let item = (i, Instant::now(), Bytes::copy_from_slice(&buf[..n]));
                            if tx.send(item).await.is_err() {
                                return;
                            }
                        }
                        Ok(_) | Err(_) => {}
                    }
                }
            })
        };
        tracing::debug!(client = %self.client, upstream = %from, port = ?down.local_addr().ok(), "mirror port opened");
        let route = self.route(from, down, Some(reader));
        self.routes.push(route);
        Some(i)
    }

    fn timer(&self, last_activity: Instant) -> Instant {
        self.routes
            .iter()
            .flat_map(|r| [r.engines.up.poll_timeout(), r.engines.down.poll_timeout()])
            .flatten()
            .min()
            .map_or(last_activity + self.config.flow_idle, Instant::from_std)
    }

    fn pending(&self) -> usize {
        self.routes
            .iter()
            .map(|r| r.engines.up.pending() + r.engines.down.pending())
            .sum()
    }

    fn take(&mut self, route: usize, dir: Direction, at: Instant, data: Bytes) {
        let d = self.routes[route]
            .engines
            .get_mut(dir)
            .on_datagram(at.into_std(), data);
        self.log(dir, &d);
    }

    async fn run(mut self, mut rx: mpsc::Receiver<(Instant, Bytes)>, cancel: CancellationToken) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut last_activity = Instant::now();
        let upstream_ip = self.config.upstream.ip();
        loop {
            let timer = self.timer(last_activity);
            tokio::select! {
                () = cancel.cancelled() => return,
                item = rx.recv() => {
                    let Some((at, data)) = item else { return };
                    last_activity = at;
                    self.take(0, Direction::Up, at, data);
                }
                Some((route, at, data)) = self.mirrored_rx.recv() => {
                    last_activity = at;
                    self.take(route, Direction::Up, at, data);
                }
                r = self.up_sock.recv_from(&mut buf) => match r {
                    Ok((n, from)) if from.ip() == upstream_ip => {
                        last_activity = Instant::now();
                        let data = Bytes::copy_from_slice(&buf[..n]);
                        if let Some(route) = self.route_of_reply(from).await {
                            self.take(route, Direction::Down, last_activity, data);
                        }
                    }
                    Ok((_, from)) => tracing::debug!(%from, "datagram from a stranger ignored"),
                    Err(e) => tracing::debug!(error = %e, "upstream recv error"),
                },
                () = tokio::time::sleep_until(timer) => {
                    if self.pending() == 0
                        && Instant::now() >= last_activity + self.config.flow_idle
                    {
                        tracing::debug!(client = %self.client, "udp flow idle, closed");
                        return;
                    }
                }
            }
            self.flush().await;
        }
    }

    async fn flush(&mut self) {
        let now = Instant::now().into_std();
        for route in &mut self.routes {
            for dir in Direction::BOTH {
                let engine = route.engines.get_mut(dir);
                engine.on_timeout(now);
                while let Some(data) = engine.poll_emit(now) {
                    let r = match dir {
                        Direction::Up => self.up_sock.send_to(&data, route.upstream).await,
                        Direction::Down => route.down.send_to(&data, self.client).await,
                    };
                    if let Err(e) = r {
                        tracing::debug!(error = %e, %dir, "udp send failed");
                    }
                }
            }
        }
    }

    fn log(&self, dir: Direction, d: &Decision) {
        if self.config.log_decisions {
            tracing::info!(
                target: "impair::decision",
                "action: impair_udp | result: success | dir: {dir} | client: {} | {d}",
                self.client
            );
        }
    }
}
