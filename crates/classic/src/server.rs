//! The three servers (spec: classic.md): one task per client on the netkit
//! runtime, a safe client list with unique ids, and a dead client (EOF, reset,
//! or silent beyond `idle_timeout`) removed without affecting the others.
//!
//! - echo: every read is echoed back as is and logged
//!   `Client <id>: <text> - Total clients: <n>`;
//! - math: whole requests out of any segmentation, answered in order; a command
//!   length over the cap closes that connection with a log line;
//! - positions: every position is broadcast to every client through a bounded
//!   queue per client, written by that client's own task, so a slow or dead
//!   client never holds up the others; a client whose queue is full, or whose
//!   socket fails, is removed (the recipient, never the sender).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use netkit::StallGuard;
use netkit::server::{Conn, ServeReport, ServerConfig, ServerStats, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::positions::{self, broadcast};
use crate::registry::Registry;
use crate::{Kind, math};

/// Messages queued for one positions client before it counts as too slow.
pub const POSITION_QUEUE: usize = 1024;

/// How a server runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Which of the three.
    pub kind: Kind,
    /// A client silent this long is dropped.
    pub idle_timeout: Duration,
    /// Clients served at once.
    pub max_clients: usize,
    /// Kernel send buffer per positions client (`SO_SNDBUF`): with the queue of
    /// [`POSITION_QUEUE`] broadcasts, how far behind a client may fall before it
    /// is cut off.
    pub send_buffer: usize,
    /// At `max_clients`, a client idle this long makes room for a new one
    /// (`None`: new clients wait for a free slot).
    pub evict_idle_after: Option<Duration>,
}

impl Options {
    /// 60 s idle timeout, 10,000 clients; at the limit, a client idle for a
    /// second or more makes room.
    pub fn new(kind: Kind) -> Self {
        Self {
            kind,
            idle_timeout: Duration::from_secs(60),
            max_clients: 10_000,
            send_buffer: 64 * 1024,
            evict_idle_after: Some(Duration::from_secs(1)),
        }
    }
}

/// Serves `listener` until `shutdown` completes.
pub async fn run(
    listener: tokio::net::TcpListener,
    opts: Options,
    shutdown: impl Future,
) -> Result<ServeReport, Error> {
    run_with_web(listener, None, opts, shutdown).await
}

/// [`run`], and for the positions server with `web`, the map page there
/// ([`crate::web`]).
pub async fn run_with_web(
    listener: tokio::net::TcpListener,
    web: Option<tokio::net::TcpListener>,
    opts: Options,
    shutdown: impl Future,
) -> Result<ServeReport, Error> {
    let addr = listener.local_addr()?;
    tracing::info!("{} server listening on {addr}", opts.kind.name());
    let mut cfg = ServerConfig::new(opts.kind.name());
    cfg.max_connections = opts.max_clients;
    cfg.shutdown_grace = Duration::from_secs(2);
    cfg.evict_idle_after = opts.evict_idle_after;
    let idle = opts.idle_timeout;
    let stats = Arc::new(ServerStats::default());
    let report = match opts.kind {
        Kind::Echo => {
            let reg = Arc::new(Registry::<()>::new());
            serve(
                listener,
                cfg,
                stats,
                move |s, c| echo(s, c, Arc::clone(&reg), idle),
                shutdown,
            )
            .await
        }
        Kind::Math => {
            let reg = Arc::new(Registry::<()>::new());
            serve(
                listener,
                cfg,
                stats,
                move |s, c| math_client(s, c, Arc::clone(&reg), idle),
                shutdown,
            )
            .await
        }
        Kind::Positions => {
            let field = Arc::new(Field {
                reg: Registry::new(),
                feed: web.is_some().then(crate::web::Feed::default),
            });
            let sndbuf = opts.send_buffer;
            let stop = CancellationToken::new();
            let web_task = web.map(|l| {
                let gate = web::Gate::new(opts.max_clients, crate::web::MAX_MESSAGE);
                let router = crate::web::router(Arc::clone(&field), gate.clone());
                let stop = stop.clone();
                tokio::spawn(
                    async move { web::serve(l, router, &gate, stop.cancelled_owned()).await },
                )
            });
            let report = serve(
                listener,
                cfg,
                stats,
                move |s, c| position_client(s, c, Arc::clone(&field), idle, sndbuf),
                async {
                    shutdown.await;
                    stop.cancel();
                },
            )
            .await;
            if let Some(t) = web_task
                && let Ok(Err(e)) = t.await
            {
                tracing::warn!(error = %e, "the web listener failed");
            }
            report
        }
    };
    tracing::info!(
        "{} server on {addr} stopped after {} connection(s)",
        opts.kind.name(),
        report.accepted
    );
    Ok(report)
}

/// Registers a client, or refuses it when every id is taken.
fn join<T: Clone>(reg: &Registry<T>, value: T, peer: SocketAddr) -> Option<u32> {
    let Some((id, n)) = reg.join(value) else {
        tracing::warn!("Client from {peer} refused: every id is in use");
        return None;
    };
    tracing::info!("Client {id} connected from {peer} - Total clients: {n}");
    Some(id)
}

fn leave<T: Clone>(reg: &Registry<T>, id: u32, why: &str) {
    if let Some(n) = reg.leave(id) {
        // The original's wording, kept for people who grep for it.
        tracing::info!("Client {id} not found - Socket closed - Total clients: {n} ({why})");
    }
}

async fn echo(stream: TcpStream, conn: Conn, reg: Arc<Registry<()>>, idle: Duration) {
    let Some(id) = join(&reg, (), conn.peer) else {
        return;
    };
    let (mut reader, w) = stream.into_split();
    // A client that sends and never reads is cut after the idle timeout
    // instead of holding its connection with a write that never ends.
    let mut w = StallGuard::new(w, idle);
    let mut buf = vec![0u8; 4096];
    let why = loop {
        let read = tokio::select! {
            () = conn.shutdown.cancelled() => break conn.stop_reason(),
            r = tokio::time::timeout(idle, reader.read(&mut buf)) => r,
        };
        match read {
            Err(_) => break "silent past the timeout",
            Ok(Ok(0)) => break "closed by the client",
            Ok(Err(_)) => break "connection reset",
            Ok(Ok(n)) => {
                tracing::info!(
                    "Client {id}: {} - Total clients: {}",
                    String::from_utf8_lossy(&buf[..n]),
                    reg.count()
                );
                conn.activity.busy();
                if w.write_all(&buf[..n]).await.is_err() {
                    break "send failed";
                }
                conn.activity.idle();
            }
        }
    };
    leave(&reg, id, why);
}

async fn math_client(stream: TcpStream, conn: Conn, reg: Arc<Registry<()>>, idle: Duration) {
    let Some(id) = join(&reg, (), conn.peer) else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    let mut reader = FramedRead::new(r, math::ServerCodec);
    // A client that sends and never reads is cut after the idle timeout.
    let mut writer = FramedWrite::new(StallGuard::new(w, idle), math::ServerCodec);
    let why = loop {
        let next = tokio::select! {
            () = conn.shutdown.cancelled() => break conn.stop_reason(),
            r = tokio::time::timeout(idle, reader.next()) => r,
        };
        match next {
            Err(_) => break "silent past the timeout",
            Ok(None) => break "closed by the client",
            Ok(Some(Err(Error::Net(e @ netkit::Error::TooLong { .. })))) => {
                tracing::warn!("Client {id}: {e}; closing the connection");
                break "command too long";
            }
            Ok(Some(Err(_))) => break "connection reset",
            Ok(Some(Ok(req))) => {
                conn.activity.busy();
                let reply = req.reply();
                tracing::debug!(
                    "Client {id}: {} {} {} -> {reply}",
                    String::from_utf8_lossy(&req.command),
                    req.a,
                    req.b
                );
                if writer.feed(reply).await.is_err() {
                    break "send failed";
                }
                // Answer everything already received in one write.
                if reader.read_buffer().len() < math::HEADER {
                    if writer.flush().await.is_err() {
                        break "send failed";
                    }
                    conn.activity.idle();
                }
            }
        }
    };
    let _ = writer.flush().await;
    leave(&reg, id, why);
}

/// Where broadcasts for one positions client go, and how to cut it off.
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    queue: mpsc::Sender<Bytes>,
    /// Cancelled to end the connection (too slow, or gone).
    kick: CancellationToken,
}

impl Outbox {
    /// A client's queue and how to end its connection.
    pub(crate) fn new(queue: mpsc::Sender<Bytes>, kick: &CancellationToken) -> Self {
        Self {
            queue,
            kick: kick.clone(),
        }
    }
}

/// The positions game: who is connected, and (with a web page) the feed the
/// pages watch.
#[derive(Debug)]
pub(crate) struct Field {
    reg: Registry<Outbox>,
    feed: Option<crate::web::Feed>,
}

impl Field {
    /// Registers a client (TCP or a page's player).
    pub(crate) fn join(&self, out: Outbox, peer: SocketAddr) -> Option<u32> {
        let id = join(&self.reg, out, peer)?;
        if let Some(f) = &self.feed {
            f.joined(id);
        }
        Some(id)
    }

    /// Client `id` is at `p`: every client is told.
    pub(crate) fn moved(&self, id: u32, p: positions::Position) {
        if let Some(f) = &self.feed {
            f.moved(id, p);
        }
        fan_out(self, &broadcast(id, p));
    }

    /// Client `id` is gone.
    pub(crate) fn leave(&self, id: u32, why: &str) {
        leave(&self.reg, id, why);
        if let Some(f) = &self.feed {
            f.left(id);
        }
    }

    /// The pages' feed, if there is a page.
    pub(crate) fn feed(&self) -> Option<&crate::web::Feed> {
        self.feed.as_ref()
    }
}

async fn position_client(
    stream: TcpStream,
    conn: Conn,
    field: Arc<Field>,
    idle: Duration,
    sndbuf: usize,
) {
    // Bound what the kernel holds for this client, so that one that stops
    // reading is noticed (its queue fills) after kilobytes, not megabytes.
    let _ = socket2::SockRef::from(&stream).set_send_buffer_size(sndbuf);
    let (tx, mut rx) = mpsc::channel::<Bytes>(POSITION_QUEUE);
    let done = CancellationToken::new();
    let Some(id) = field.join(Outbox::new(tx, &done), conn.peer) else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let (r, mut w) = stream.into_split();

    // This client's own writer: drains its queue, many broadcasts per write.
    let writer_done = done.clone();
    let writer = async move {
        let mut batch = BytesMut::new();
        loop {
            let first = tokio::select! {
                () = writer_done.cancelled() => break,
                m = rx.recv() => m,
            };
            let Some(first) = first else { break };
            batch.extend_from_slice(&first);
            // Let the readers queued behind us fan out first: the positions
            // they bring then leave in this same write.
            tokio::task::yield_now().await;
            while let Ok(more) = rx.try_recv() {
                batch.extend_from_slice(&more);
            }
            // A write stuck on a client that stopped reading ends when it is kicked.
            let written = tokio::select! {
                () = writer_done.cancelled() => break,
                r = w.write_all(&batch) => r,
            };
            if written.is_err() {
                break;
            }
            batch.clear();
        }
        writer_done.cancel();
    };

    let reader_field = Arc::clone(&field);
    let reader_done = done.clone();
    let reader = async move {
        let mut frames = FramedRead::new(r, positions::ServerCodec);
        let why = loop {
            let next = tokio::select! {
                () = conn.shutdown.cancelled() => break conn.stop_reason(),
                () = reader_done.cancelled() => break "removed",
                r = tokio::time::timeout(idle, frames.next()) => r,
            };
            match next {
                Err(_) => break "silent past the timeout",
                Ok(None) => break "closed by the client",
                Ok(Some(Err(_))) => break "connection reset",
                Ok(Some(Ok(p))) => {
                    // A client that reports its position is alive, not idle.
                    conn.activity.idle();
                    tracing::debug!("Client {id}: ({}, {})", p.x, p.y);
                    reader_field.moved(id, p);
                }
            }
        };
        reader_done.cancel();
        why
    };
    let ((), why) = tokio::join!(writer, reader);
    field.leave(id, why);
}

/// Queues `msg` for every client; a client whose queue is full or gone is
/// removed (it is the slow or dead one, not the sender).
fn fan_out(field: &Field, msg: &Bytes) {
    let reg = &field.reg;
    let mut removed: Vec<(u32, bool)> = Vec::new();
    reg.each(|cid, out| match out.queue.try_send(msg.clone()) {
        Ok(()) => {}
        Err(e) => {
            out.kick.cancel();
            let slow = matches!(e, mpsc::error::TrySendError::Full(_));
            removed.push((cid, slow));
        }
    });
    for (cid, slow) in removed {
        if slow {
            if let Some(n) = reg.leave(cid) {
                tracing::warn!(
                    "Client {cid} too slow ({POSITION_QUEUE} positions queued) - removed - Total clients: {n}"
                );
            }
            if let Some(f) = &field.feed {
                f.left(cid);
            }
        } else {
            field.leave(cid, "gone");
        }
    }
}
