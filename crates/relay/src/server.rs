//! The relay server (spec: relay.md): the sequencer behind a lock, one bounded
//! outbox per connected client written by that client's own task.
//!
//! Sequencing and fan-out happen under the same lock, so every outbox receives
//! events in sequence order. A client's first frame must be `Hello`; it gets
//! `Welcome` (with the id and resume token the server gave it), then its
//! replay (history or resume), then live events. Clients acknowledge
//! cumulatively; the server pings every `heartbeat` and drops a client silent
//! for three of them. Senders are slowed while any outbox is over half full
//! ([`crate::pressure`]); a client that stops reading is cut after `stall`; a
//! client whose outbox is full anyway is cut off with an `Error` saying so
//! (it may resume).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use netkit::server::{ServeReport, ServerConfig, ServerStats, serve};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::cut::Cut;
use crate::log::EventLog;
use crate::pressure::{Level, Pressure};
use crate::sequencer::{Event, Limits, Refusal, Sequencer};

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Events a new client gets before live traffic.
    pub history: usize,
    /// Events kept in all for history and resume, acknowledged or not.
    pub history_max_events: usize,
    /// Bytes of events kept in all, acknowledged or not.
    pub history_max_bytes: usize,
    /// A client whose socket takes nothing for this long is cut (its
    /// outbox holds the senders back meanwhile).
    pub stall: Duration,
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
    /// An original-chat client's frame not acknowledged this long is sent
    /// again.
    pub legacy_retransmit: Duration,
    /// Sends of one frame to an original-chat client before it is cut.
    pub legacy_attempts: u32,
    /// An original-chat client silent this long has finished its frame.
    pub legacy_quiet: Duration,
}

impl Default for Config {
    fn default() -> Self {
        let limits = Limits::new(100);
        Self {
            history: limits.history,
            history_max_events: limits.max_events,
            history_max_bytes: limits.max_bytes,
            stall: Duration::from_secs(15),
            outbox: 4096,
            heartbeat: Duration::from_secs(5),
            max_clients: 10_000,
            send_buffer: 256 * 1024,
            log_dir: None,
            legacy_retransmit: Duration::from_secs(1),
            legacy_attempts: 10,
            legacy_quiet: Duration::from_millis(20),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Outbox {
    /// Encoded `Deliver` frames: an event is encoded once and shared by every
    /// recipient (a reference count, not a copy, per recipient).
    pub(crate) queue: mpsc::Sender<Bytes>,
    /// Ends the connection, with a reason.
    pub(crate) cut: Cut,
    pub(crate) level: Arc<Level>,
}

impl Outbox {
    /// A client's outbox: its queue and how to end its connection.
    pub(crate) fn new(queue: mpsc::Sender<Bytes>, cut: &Cut, level: &Arc<Level>) -> Self {
        Self {
            queue,
            cut: cut.clone(),
            level: Arc::clone(level),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Hub {
    pub(crate) seq: Sequencer,
    pub(crate) outboxes: HashMap<u64, Outbox>,
    pub(crate) log: Option<EventLog>,
    pub(crate) pressure: Arc<Pressure>,
}

impl Hub {
    /// A client that joined: its outbox takes events from now on, and
    /// everyone (itself included) gets its join.
    pub(crate) fn enter(&mut self, client_id: u64, outbox: Outbox, join: &Event) {
        self.outboxes.insert(client_id, outbox);
        self.publish(join);
    }

    /// Makes a new event durable (if there is a log), then hands it to everyone.
    pub(crate) fn publish(&mut self, event: &Event) {
        if let Some(log) = self.log.as_mut()
            && let Err(e) = log.append(event)
        {
            tracing::error!(error = %e, seq = event.seq, "cannot write the event log");
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
            match out.queue.try_send(frame.clone()) {
                Ok(()) => out
                    .level
                    .queued(out.queue.max_capacity() - out.queue.capacity()),
                Err(mpsc::error::TrySendError::Full(_)) => slow.push(*id),
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        for id in slow {
            if let Some(out) = self.outboxes.remove(&id) {
                out.cut.end_because(|| "too slow: outbox full".to_string());
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
    run_with(listener, Extra::default(), config, shutdown).await
}

/// Listeners beside the native one.
#[derive(Debug, Default)]
pub struct Extra {
    /// For the seed's original chat clients ([`crate::legacy`]).
    pub legacy: Option<tokio::net::TcpListener>,
    /// For browsers: the chat page and its WebSocket ([`crate::web`]).
    pub web: Option<tokio::net::TcpListener>,
}

/// [`run`], plus the [`Extra`] listeners, every client in the same total
/// order.
pub async fn run_with(
    listener: tokio::net::TcpListener,
    extra: Extra,
    config: Config,
    shutdown: impl Future,
) -> Result<ServeReport, Error> {
    let limits = Limits {
        history: config.history,
        max_events: config.history_max_events.max(config.history),
        max_bytes: config.history_max_bytes,
    };
    let (seq, log) = match &config.log_dir {
        Some(dir) => {
            let (log, clients, events) = EventLog::open(dir)?;
            tracing::info!(events = events.len(), clients = clients.len(), dir = %dir.display(), "event log loaded");
            (Sequencer::restore(limits, clients, events), Some(log))
        }
        None => (Sequencer::new(limits), None),
    };
    let hub = Arc::new(Mutex::new(Hub {
        seq,
        outboxes: HashMap::new(),
        log,
        pressure: Arc::new(Pressure::default()),
    }));
    let mut rt = ServerConfig::new("relay");
    rt.max_connections = config.max_clients;
    let config = Arc::new(config);
    let stop = CancellationToken::new();
    let web_task = extra.web.map(|l| {
        let gate = web::Gate::new(config.max_clients, crate::web::MAX_MESSAGE);
        let router = crate::web::router(Arc::clone(&hub), Arc::clone(&config), gate.clone());
        let stop = stop.clone();
        tokio::spawn(async move { web::serve(l, router, &gate, stop.cancelled_owned()).await })
    });
    let legacy_task = extra.legacy.map(|l| {
        let (hub, config, stop) = (Arc::clone(&hub), Arc::clone(&config), stop.clone());
        let mut rt = ServerConfig::new("relay-legacy");
        rt.max_connections = config.max_clients;
        tokio::spawn(serve(
            l,
            rt,
            Arc::new(ServerStats::default()),
            move |s, c| crate::legacy::server::handle(s, c, Arc::clone(&hub), Arc::clone(&config)),
            stop.cancelled_owned(),
        ))
    });
    let report = serve(
        listener,
        rt,
        Arc::new(ServerStats::default()),
        move |s, c| crate::session::handle(s, c, Arc::clone(&hub), Arc::clone(&config)),
        async {
            shutdown.await;
            stop.cancel();
        },
    )
    .await;
    if let Some(t) = legacy_task {
        let _ = t.await;
    }
    if let Some(t) = web_task
        && let Ok(Err(e)) = t.await
    {
        tracing::warn!(error = %e, "the web listener failed");
    }
    Ok(report)
}

pub(crate) fn lock(hub: &Mutex<Hub>) -> std::sync::MutexGuard<'_, Hub> {
    hub.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A fresh resume secret: 128 random bits from the operating system's
/// generator (never 0, which means "none").
pub(crate) fn new_token() -> u128 {
    loop {
        let t: u128 = rand::random();
        if t != 0 {
            return t;
        }
    }
}

/// What a refused hello is told.
pub(crate) fn refusal_text(r: &Refusal) -> String {
    match r {
        Refusal::TooOld { oldest } => format!("cannot resume: history starts at {oldest}"),
        Refusal::Ahead { last } => format!("cannot resume: the last sequence number is {last}"),
        Refusal::AlreadyOnline => "this client is already connected".to_string(),
        Refusal::Unknown => "cannot resume: unknown client id or wrong token (only the server gives ids; start as a new client with id 0)".to_string(),
        Refusal::NoIds => "no client ids left on this server".to_string(),
    }
}
