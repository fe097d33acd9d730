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
use crate::{Error, derive_seed};

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

struct Flow {
    client: SocketAddr,
    upstream: SocketAddr,
    up_sock: UdpSocket,
    listen: Arc<UdpSocket>,
    engines: PerDir<DatagramEngine>,
    idle: Duration,
    log: bool,
}

impl Flow {
    async fn open(
        index: u64,
        client: SocketAddr,
        config: &UdpProxyConfig,
        shared: &Shared,
        listen: Arc<UdpSocket>,
    ) -> Result<Self, Error> {
        let any: IpAddr = if config.upstream.is_ipv4() {
            Ipv4Addr::UNSPECIFIED.into()
        } else {
            Ipv6Addr::UNSPECIFIED.into()
        };
        let up_sock = UdpSocket::bind(SocketAddr::new(any, 0)).await?;
        let engine = |dir| {
            DatagramEngine::new(
                config.rules.get(dir).clone(),
                derive_seed(config.seed, index, dir),
                Arc::clone(shared.dirs.get(dir)),
            )
        };
        tracing::debug!(client = %client, flow = index, "new udp flow");
        Ok(Self {
            client,
            upstream: config.upstream,
            up_sock,
            listen,
            engines: PerDir {
                up: engine(Direction::Up),
                down: engine(Direction::Down),
            },
            idle: config.flow_idle,
            log: config.log_decisions,
        })
    }

    async fn run(mut self, mut rx: mpsc::Receiver<(Instant, Bytes)>, cancel: CancellationToken) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut last_activity = Instant::now();
        loop {
            let timer = [
                self.engines.up.poll_timeout(),
                self.engines.down.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min()
            .map_or(last_activity + self.idle, Instant::from_std);
            tokio::select! {
                () = cancel.cancelled() => return,
                item = rx.recv() => {
                    let Some((at, data)) = item else { return };
                    last_activity = at;
                    let d = self.engines.up.on_datagram(at.into_std(), data);
                    self.log(Direction::Up, &d);
                }
                r = self.up_sock.recv_from(&mut buf) => match r {
                    Ok((n, from)) if from.ip() == self.upstream.ip() => {
                        self.upstream = from;
                        last_activity = Instant::now();
                        let d = self.engines.down.on_datagram(last_activity.into_std(), Bytes::copy_from_slice(&buf[..n]));
                        self.log(Direction::Down, &d);
                    }
                    Ok((_, from)) => tracing::debug!(%from, "datagram from a stranger ignored"),
                    Err(e) => tracing::debug!(error = %e, "upstream recv error"),
                },
                () = tokio::time::sleep_until(timer) => {
                    if self.engines.up.pending() + self.engines.down.pending() == 0
                        && Instant::now() >= last_activity + self.idle
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
        for dir in Direction::BOTH {
            let engine = self.engines.get_mut(dir);
            engine.on_timeout(now);
            while let Some(data) = engine.poll_emit(now) {
                let r = match dir {
                    Direction::Up => self.up_sock.send_to(&data, self.upstream).await,
                    Direction::Down => self.listen.send_to(&data, self.client).await,
                };
                if let Err(e) = r {
                    tracing::debug!(error = %e, %dir, "udp send failed");
                }
            }
        }
    }

    fn log(&self, dir: Direction, d: &Decision) {
        if self.log {
            tracing::info!(
                target: "impair::decision",
                "action: impair_udp | result: success | dir: {dir} | client: {} | {d}",
                self.client
            );
        }
    }
}
