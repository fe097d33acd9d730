//! The load: N clients connected to one server (relay, the plain fan-out, or
//! Redis pub/sub), S of them sending. Every client counts the chats it
//! receives; relay clients also check that sequence numbers come gap-free and
//! in order, acknowledge every 1,024 events and answer pings, as real clients.
//!
//! Throughput mode: each sender keeps `window` chats in flight (it sends the
//! next one when its own comes back), so no server is pushed past the point
//! where its queues would overflow. Paced mode: each sender sends at a fixed
//! rate and every client records the delivery latency of every chat.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::scan::{Seen, parse_text, relay_frame, resp_array, text};
use crate::Error;
use crate::proto::{Event, Kind, Message};

/// Which server the clients speak to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Relay,
    Plain,
    Redis,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub clients: usize,
    pub senders: usize,
    pub chats_per_sender: u64,
    /// Throughput mode: chats in flight per sender.
    pub window: usize,
    /// Paced mode: the interval between one sender's chats (None: throughput mode).
    pub pace: Option<Duration>,
}

/// What happened.
#[derive(Debug)]
pub struct Outcome {
    pub deliveries: u64,
    pub elapsed: Duration,
    /// Delivery latencies in µs (paced mode).
    pub latencies_us: Vec<u32>,
    /// Relay only: deliveries whose sequence number did not follow the previous one.
    pub order_errors: u64,
}

impl Outcome {
    pub fn per_sec(&self) -> f64 {
        self.deliveries as f64 / self.elapsed.as_secs_f64()
    }

    /// The `q` quantile of the latencies, in ms.
    pub fn latency_ms(&self, q: f64) -> f64 {
        let mut v = self.latencies_us.clone();
        v.sort_unstable();
        v.get(((v.len() as f64 * q) as usize).min(v.len().saturating_sub(1)))
            .map_or(0.0, |&us| f64::from(us) / 1000.0)
    }
}

struct Shared {
    base: Instant,
    plan: Plan,
    target: Target,
    ready: AtomicUsize,
    done: AtomicUsize,
    /// Clients whose connection ended before the run did (cut off, refused).
    lost: AtomicUsize,
    changed: Notify,
    start: CancellationToken,
    stop: CancellationToken,
    order_errors: AtomicU64,
    latencies: Mutex<Vec<u32>>,
}

/// Whole-run bound: a server that stalls fails the bench instead of hanging it.
const BOUND: Duration = Duration::from_secs(120);

/// Connects every client, waits until all are ready, runs the plan.
pub async fn run(target: Target, addr: SocketAddr, plan: Plan) -> Result<Outcome, Error> {
    let shared = Arc::new(Shared {
        base: Instant::now(),
        plan: plan.clone(),
        target,
        ready: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        lost: AtomicUsize::new(0),
        changed: Notify::new(),
        start: CancellationToken::new(),
        stop: CancellationToken::new(),
        order_errors: AtomicU64::new(0),
        latencies: Mutex::new(Vec::new()),
    });
    let mut tasks = Vec::new();
    for index in 0..plan.clients {
        // Connected one by one, so relay clients know which joins they will see.
        let (stream, publisher) = connect(target, addr, index < plan.senders).await?;
        tasks.push(tokio::spawn(client(
            index,
            stream,
            publisher,
            Arc::clone(&shared),
        )));
    }
    let lost = |s: &Shared| s.lost.load(Ordering::Acquire) > 0;
    let result = tokio::time::timeout(BOUND, async {
        wait_for(&shared, |s| {
            lost(s) || s.ready.load(Ordering::Acquire) == plan.clients
        })
        .await;
        let started = Instant::now();
        shared.start.cancel();
        wait_for(&shared, |s| {
            lost(s) || s.done.load(Ordering::Acquire) == plan.clients
        })
        .await;
        started.elapsed()
    })
    .await;
    shared.stop.cancel();
    let mut first_error = None;
    for t in tasks {
        if let Ok(Err(e)) = t.await {
            first_error.get_or_insert(e);
        }
    }
    let elapsed = result.map_err(|_| Error::Bench(format!("a run did not finish in {BOUND:?}")))?;
    if lost(&shared) {
        return Err(Error::Bench(format!(
            "{} of {} clients were disconnected during the run (first error: {})",
            shared.lost.load(Ordering::Acquire),
            plan.clients,
            first_error.map_or_else(|| "connection closed".to_string(), |e| e.to_string())
        )));
    }
    let latencies_us = std::mem::take(
        &mut *shared
            .latencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    );
    Ok(Outcome {
        deliveries: plan.clients as u64 * plan.senders as u64 * plan.chats_per_sender,
        elapsed,
        latencies_us,
        order_errors: shared.order_errors.load(Ordering::Relaxed),
    })
}

async fn wait_for(shared: &Shared, done: impl Fn(&Shared) -> bool) {
    loop {
        let notified = shared.changed.notified();
        if done(shared) {
            return;
        }
        notified.await;
    }
}

async fn connect(
    target: Target,
    addr: SocketAddr,
    sender: bool,
) -> Result<(TcpStream, Option<TcpStream>), Error> {
    let stream = TcpStream::connect(addr).await?;
    let _ = stream.set_nodelay(true);
    // A Redis connection that subscribed cannot publish: senders get a second one.
    let publisher = if target == Target::Redis && sender {
        let p = TcpStream::connect(addr).await?;
        let _ = p.set_nodelay(true);
        Some(p)
    } else {
        None
    };
    Ok((stream, publisher))
}

/// What a client says first: the relay's Hello, Redis's SUBSCRIBE, nothing
/// to the plain fan-out.
fn greeting(target: Target, index: usize, out: &mut BytesMut) {
    match target {
        Target::Relay => Message::Hello {
            client_id: 0,
            token: 0,
            resume_from: 0,
            name: format!("b{index}"),
        }
        .encode(out),
        Target::Redis => out.extend_from_slice(b"*2\r\n$9\r\nSUBSCRIBE\r\n$5\r\nbench\r\n"),
        Target::Plain => {}
    }
}

impl Client {
    /// Client `index` of `plan`, before anything arrived.
    fn new(index: usize, plan: &Plan, target: Target) -> Client {
        Client {
            index,
            expected: plan.senders as u64 * plan.chats_per_sender,
            // Relay: joins are numbered 1..=N on a fresh server; a client is
            // ready once it has seen the last one (whatever order the Hellos
            // came in).
            ready_seq: if target == Target::Relay {
                plan.clients as u64
            } else {
                0
            },
            welcomed: false,
            ready: false,
            got: 0,
            own_back: 0,
            sent: 0,
            last_seq: None,
            last_acked: 0,
            since_ack: 0,
            latencies: Vec::new(),
        }
    }
}

/// One client: handshake, then read, count, check, answer and (if a sender) send.
async fn client(
    index: usize,
    stream: TcpStream,
    publisher: Option<TcpStream>,
    shared: Arc<Shared>,
) -> Result<(), Error> {
    let plan = &shared.plan;
    let sender = index < plan.senders;
    let (mut r, mut w) = stream.into_split();
    let mut publish = publisher.map(|p| {
        let (mut pr, pw) = p.into_split();
        // PUBLISH replies (`:N`) are read and dropped.
        tokio::spawn(async move {
            let mut sink = vec![0u8; 64 * 1024];
            while matches!(pr.read(&mut sink).await, Ok(n) if n > 0) {}
        });
        pw
    });
    let mut out = BytesMut::new();
    greeting(shared.target, index, &mut out);
    w.write_all(&out).await?;
    out.clear();
    let mut state = Client::new(index, plan, shared.target);
    state.check_ready(&shared);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut pace = plan.pace.map(|p| {
        // Senders spread evenly over one interval.
        let offset = p.mul_f64(index as f64 / plan.senders.max(1) as f64);
        tokio::time::interval_at(tokio::time::Instant::now() + offset, p)
    });
    let mut started = false;
    loop {
        tokio::select! {
            () = shared.stop.cancelled() => break,
            () = shared.start.cancelled(), if !started => {
                started = true;
                if sender && plan.pace.is_none() {
                    let first = (plan.window as u64).min(plan.chats_per_sender);
                    for _ in 0..first {
                        state.chat(&shared, &mut out);
                    }
                }
                if let Some(p) = pace.as_mut() {
                    p.reset();
                }
            }
            _ = async { pace.as_mut().expect("guarded").tick().await }, if started && sender && pace.is_some() && state.sent < plan.chats_per_sender => {
                state.chat(&shared, &mut out);
            }
            n = r.read_buf(&mut buf) => {
                if !matches!(n, Ok(n) if n > 0) {
                    shared.lost.fetch_add(1, Ordering::AcqRel);
                    shared.changed.notify_waiters();
                    break;
                }
                state.scan(&shared, &mut buf, &mut out);
                if sender && plan.pace.is_none() {
                    while state.own_back > 0 && state.sent < plan.chats_per_sender {
                        state.own_back -= 1;
                        state.chat(&shared, &mut out);
                    }
                }
            }
        }
        if !out.is_empty() {
            // Chats go to the publishing connection (Redis) or the one connection;
            // acks and pongs always to the one connection.
            match publish.as_mut() {
                Some(p) => p.write_all(&out).await?,
                None => w.write_all(&out).await?,
            }
            out.clear();
        }
        if !state.ready {
            state.check_ready(&shared);
        }
    }
    if !state.latencies.is_empty() {
        shared
            .latencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(&state.latencies);
    }
    Ok(())
}

struct Client {
    index: usize,
    expected: u64,
    ready_seq: u64,
    welcomed: bool,
    ready: bool,
    got: u64,
    /// Own chats seen back and not yet answered by a new send (throughput mode).
    own_back: u64,
    sent: u64,
    last_seq: Option<u64>,
    last_acked: u64,
    since_ack: u64,
    latencies: Vec<u32>,
}

impl Client {
    fn check_ready(&mut self, shared: &Shared) {
        if self.welcomed && self.last_seq.unwrap_or(0) >= self.ready_seq && !self.ready {
            self.ready = true;
            shared.ready.fetch_add(1, Ordering::AcqRel);
            shared.changed.notify_waiters();
        }
    }

    fn chat(&mut self, shared: &Shared, out: &mut BytesMut) {
        self.sent += 1;
        let ns = shared.base.elapsed().as_nanos() as u64;
        let t = text(self.index, ns);
        match shared.target {
            Target::Relay => Message::Chat {
                sender_seq: self.sent,
                text: t,
            }
            .encode(out),
            Target::Plain => Message::Deliver(Event {
                seq: 0,
                kind: Kind::Chat,
                origin: self.index as u64,
                sender_seq: self.sent,
                name: "b".into(),
                text: t,
            })
            .encode(out),
            Target::Redis => {
                out.extend_from_slice(
                    format!("*3\r\n$7\r\nPUBLISH\r\n$5\r\nbench\r\n${}\r\n", t.len()).as_bytes(),
                );
                out.extend_from_slice(t.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
    }

    /// Consumes every complete frame in `buf`.
    fn scan(&mut self, shared: &Shared, buf: &mut BytesMut, out: &mut BytesMut) {
        let mut at = 0;
        loop {
            let rest = &buf[at..];
            let (n, chat) = match shared.target {
                Target::Relay | Target::Plain => {
                    let Some((n, seen)) = relay_frame(rest) else {
                        break;
                    };
                    (n, self.relay_seen(shared, seen, out))
                }
                Target::Redis => {
                    let Some((n, items)) = resp_array(rest) else {
                        break;
                    };
                    let chat = match items[0] {
                        b"message" => Some(items[2]),
                        b"subscribe" => {
                            self.welcomed = true;
                            None
                        }
                        _ => None,
                    };
                    (n, chat)
                }
            };
            if let Some(text) = chat {
                self.chat_seen(shared, text);
            }
            at += n;
        }
        buf.advance(at);
        if shared.target == Target::Relay && self.since_ack >= 1024 {
            if let Some(seq) = self.last_seq.filter(|&s| s > self.last_acked) {
                Message::Ack { seq }.encode(out);
                self.last_acked = seq;
            }
            self.since_ack = 0;
        }
    }

    /// Handles one relay frame; returns the chat text if it is a chat.
    fn relay_seen<'a>(
        &mut self,
        shared: &Shared,
        seen: Seen<'a>,
        out: &mut BytesMut,
    ) -> Option<&'a [u8]> {
        let seq = match seen {
            Seen::Welcome { .. } => {
                self.welcomed = true;
                return None;
            }
            Seen::Ping { nonce } => {
                Message::Pong { nonce }.encode(out);
                return None;
            }
            Seen::Other => return None,
            Seen::Chat { seq, .. } | Seen::Event { seq, .. } => seq,
        };
        if shared.target == Target::Relay {
            if self.last_seq.is_some_and(|last| seq != last + 1) {
                shared.order_errors.fetch_add(1, Ordering::Relaxed);
            }
            self.last_seq = Some(seq);
            self.since_ack += 1;
        }
        match seen {
            Seen::Chat { text, .. } => Some(text),
            _ => None,
        }
    }

    fn chat_seen(&mut self, shared: &Shared, text: &[u8]) {
        self.got += 1;
        if let Some((origin, ns)) = parse_text(text) {
            if origin == self.index {
                self.own_back += 1;
            }
            if shared.plan.pace.is_some() {
                let now = shared.base.elapsed().as_nanos() as u64;
                self.latencies
                    .push((now.saturating_sub(ns) / 1000).min(u64::from(u32::MAX)) as u32);
            }
        }
        if self.got == self.expected {
            shared.done.fetch_add(1, Ordering::AcqRel);
            shared.changed.notify_waiters();
        }
    }
}
