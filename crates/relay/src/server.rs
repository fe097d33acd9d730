//! The relay server (spec: relay.md): the sequencer behind a lock, one bounded
//! outbox per connected client written by that client's own task.
//!
//! Sequencing and fan-out happen under the same lock, so every outbox receives
//! events in sequence order. A client's first frame must be `Hello`; it gets
//! `Welcome`, then its replay (history or resume), then live events. Clients
//! acknowledge cumulatively; the server pings every `heartbeat` and drops a
//! client silent for three of them; a client whose outbox is full is cut off
//! with an `Error` saying so (it may resume).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use netkit::server::{Conn, ServeReport, ServerConfig, ServerStats, serve};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::log::EventLog;
use crate::proto::{Codec, Message};
use crate::sequencer::{Event, Refusal, Sequencer};

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Events a new client gets before live traffic.
    pub history: usize,
    /// Events queued for one client before it counts as too slow.
    pub outbox: usize,
    /// Ping interval; three silent intervals and a client is dropped.
    pub heartbeat: Duration,
    /// Clients at once.
    pub max_clients: usize,
    /// Kernel send buffer per client (`SO_SNDBUF`): with the outbox, how far
    /// behind a client may fall before it is cut off.
    pub send_buffer: usize,
    /// Keep a durable log of events here (history and numbering survive a
    /// restart).
    pub log_dir: Option<std::path::PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            history: 100,
            outbox: 4096,
            heartbeat: Duration::from_secs(5),
            max_clients: 10_000,
            send_buffer: 256 * 1024,
            log_dir: None,
        }
    }
}

#[derive(Debug)]
struct Outbox {
    /// Encoded `Deliver` frames: an event is encoded once and shared by every
    /// recipient (a reference count, not a copy, per recipient).
    queue: mpsc::Sender<Bytes>,
    /// Cancelled with a reason to end the connection.
    kick: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
}

#[derive(Debug)]
struct Hub {
    seq: Sequencer,
    outboxes: HashMap<u64, Outbox>,
    log: Option<EventLog>,
}

impl Hub {
    /// Makes a new event durable (if there is a log), then hands it to everyone.
    fn publish(&mut self, event: &Event) {
        if let Some(log) = self.log.as_mut() {
            if let Err(e) = log.append(event) {
                tracing::error!(error = %e, seq = event.seq, "cannot write the event log");
            }
        }
        self.fan_out(event);
    }

    /// Queues `event` for every connected client; cuts off the ones that are
    /// full.
    fn fan_out(&mut self, event: &Event) {
        let mut frame = BytesMut::new();
        event.deliver().encode(&mut frame);
        let frame = frame.freeze();
        let mut slow = Vec::new();
        for (id, out) in &self.outboxes {
            // Full: too slow. Closed: its writer is gone; its own task will
            // record the leave, so only a full queue is cut off here.
            if let Err(mpsc::error::TrySendError::Full(_)) = out.queue.try_send(frame.clone()) {
                slow.push(*id);
            }
        }
        for id in slow {
            if let Some(out) = self.outboxes.remove(&id) {
                if let Ok(mut r) = out.reason.lock() {
                    r.get_or_insert_with(|| "too slow: outbox full".to_string());
                }
                out.kick.cancel();
            }
            if let Some(leave) = self.seq.disconnected(id, "too slow") {
                self.publish(&leave);
            }
        }
    }
}

/// Serves until `shutdown` completes. With a log directory, history and
/// numbering continue from what it holds.
pub async fn run(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future,
) -> Result<ServeReport, Error> {
    let (seq, log) = match &config.log_dir {
        Some(dir) => {
            let (log, events) = EventLog::open(dir)?;
            tracing::info!(events = events.len(), dir = %dir.display(), "event log loaded");
            (Sequencer::restore(config.history, events), Some(log))
        }
        None => (Sequencer::new(config.history), None),
    };
    let hub = Arc::new(Mutex::new(Hub {
        seq,
        outboxes: HashMap::new(),
        log,
    }));
    let mut rt = ServerConfig::new("relay");
    rt.max_connections = config.max_clients;
    let config = Arc::new(config);
    let report = serve(
        listener,
        rt,
        Arc::new(ServerStats::default()),
        move |s, c| handle(s, c, Arc::clone(&hub), Arc::clone(&config)),
        shutdown,
    )
    .await;
    Ok(report)
}

fn lock(hub: &Mutex<Hub>) -> std::sync::MutexGuard<'_, Hub> {
    hub.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn send(w: &mut tokio::net::tcp::OwnedWriteHalf, m: &Message) -> std::io::Result<()> {
    let mut b = BytesMut::new();
    m.encode(&mut b);
    w.write_all(&b).await
}

async fn handle(stream: TcpStream, conn: Conn, hub: Arc<Mutex<Hub>>, config: Arc<Config>) {
    let _ = stream.set_nodelay(true);
    let _ = socket2::SockRef::from(&stream).set_send_buffer_size(config.send_buffer);
    let (r, mut w) = stream.into_split();
    let mut frames = FramedRead::new(r, Codec);
    let silent = config.heartbeat * 3;
    // The handshake.
    let hello = match tokio::time::timeout(silent, frames.next()).await {
        Ok(Some(Ok(Message::Hello {
            client_id,
            resume_from,
            name,
        }))) => (client_id, resume_from, name),
        Ok(Some(Ok(other))) => {
            let _ = send(
                &mut w,
                &Message::Error {
                    text: format!("expected Hello first, got {other:?}"),
                },
            )
            .await;
            return;
        }
        Ok(Some(Err(e))) => {
            let _ = send(
                &mut w,
                &Message::Error {
                    text: e.to_string(),
                },
            )
            .await;
            return;
        }
        Ok(None) | Err(_) => return,
    };
    let (tx, mut rx) = mpsc::channel::<Bytes>(config.outbox);
    let kick = CancellationToken::new();
    let reason = Arc::new(Mutex::new(None::<String>));
    let joined = {
        let mut h = lock(&hub);
        match h.seq.hello(hello.0, hello.1, &hello.2) {
            Ok(j) => {
                h.outboxes.insert(
                    j.client_id,
                    Outbox {
                        queue: tx,
                        kick: kick.clone(),
                        reason: Arc::clone(&reason),
                    },
                );
                let join = j.join.clone();
                h.publish(&join);
                Ok((j.client_id, j.replay, h.seq.next_seq()))
            }
            Err(refusal) => Err(refusal),
        }
    };
    let (id, replay, next_seq) = match joined {
        Ok(x) => x,
        Err(r) => {
            let text = match r {
                Refusal::TooOld { oldest } => format!("cannot resume: history starts at {oldest}"),
                Refusal::Ahead { last } => {
                    format!("cannot resume: the last sequence number is {last}")
                }
                Refusal::AlreadyOnline => "this client is already connected".to_string(),
            };
            let _ = send(&mut w, &Message::Error { text }).await;
            return;
        }
    };
    tracing::info!(client = id, name = %hello.2, replay = replay.len(), "client joined");
    let writer_kick = kick.clone();
    let writer = async move {
        let mut out = BytesMut::new();
        Message::Welcome {
            client_id: id,
            next_seq,
        }
        .encode(&mut out);
        for e in &replay {
            e.deliver().encode(&mut out);
        }
        if w.write_all(&out).await.is_err() {
            writer_kick.cancel();
            return w;
        }
        let mut ping = tokio::time::interval(config.heartbeat);
        ping.tick().await;
        let mut nonce = 0u64;
        loop {
            out.clear();
            tokio::select! {
                () = writer_kick.cancelled() => break,
                frame = rx.recv() => {
                    let Some(frame) = frame else { break };
                    out.extend_from_slice(&frame);
                    while let Ok(more) = rx.try_recv() {
                        out.extend_from_slice(&more);
                    }
                }
                _ = ping.tick() => {
                    nonce += 1;
                    Message::Ping { nonce }.encode(&mut out);
                }
            }
            let written = tokio::select! {
                () = writer_kick.cancelled() => break,
                r = w.write_all(&out) => r,
            };
            if written.is_err() {
                writer_kick.cancel();
                break;
            }
        }
        w
    };
    let reader_kick = kick.clone();
    let reader_hub = Arc::clone(&hub);
    let reader = async move {
        let why = loop {
            let next = tokio::select! {
                () = reader_kick.cancelled() => break None,
                () = conn.shutdown.cancelled() => break Some("server shutting down".to_string()),
                n = tokio::time::timeout(silent, frames.next()) => n,
            };
            match next {
                Err(_) => break Some("heartbeat timeout".to_string()),
                Ok(None) => break Some("connection closed".to_string()),
                Ok(Some(Err(e))) => break Some(format!("bad frame: {e}")),
                Ok(Some(Ok(m))) => match m {
                    Message::Chat { sender_seq, text } => {
                        let mut h = lock(&reader_hub);
                        if let Some(e) = h.seq.chat(id, sender_seq, &text) {
                            h.publish(&e);
                        }
                    }
                    Message::Ack { seq } => lock(&reader_hub).seq.ack(id, seq),
                    // Any frame proves the client alive; that is all a ping or
                    // pong from it is for.
                    Message::Pong { .. } | Message::Ping { .. } => {}
                    Message::Leave => {
                        // Everyone sees the leave; then the client's position
                        // stops holding history back (it will not resume).
                        let mut h = lock(&reader_hub);
                        h.outboxes.remove(&id);
                        if let Some(e) = h.seq.disconnected(id, "left") {
                            h.publish(&e);
                        }
                        h.seq.forget(id);
                        break Some("left".to_string());
                    }
                    other => break Some(format!("unexpected message from a client: {other:?}")),
                },
            }
        };
        reader_kick.cancel();
        why
    };
    let (mut w, why) = tokio::join!(writer, reader);
    // Record the leave unless the hub already cut this client off.
    {
        let mut h = lock(&hub);
        let was_here = h.outboxes.remove(&id).is_some();
        if was_here {
            if let Some(leave) = h.seq.disconnected(id, why.as_deref().unwrap_or("gone")) {
                h.publish(&leave);
            }
        }
    }
    let text = reason
        .lock()
        .ok()
        .and_then(|r| r.clone())
        .or(why.filter(|w| w != "left" && w != "connection closed"));
    if let Some(text) = text {
        tracing::info!(client = id, reason = %text, "client disconnected");
        let _ = send(&mut w, &Message::Error { text }).await;
    }
    let _ = w.shutdown().await;
}
