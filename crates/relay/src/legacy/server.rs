//! One original chat client on the legacy listener (issue #17; docs:
//! relay.md, "The original chat").
//!
//! It joins the one total order at connect, named by its address as the
//! original server announced it; each of its lines (`name: text`) becomes a
//! chat event of that name. It receives every event as an original frame
//! numbered with the event's sequence number, one at a time: the next only
//! after the client acknowledged the last (so two frames never reach one of
//! its `recv`s together), the same frame again every `legacy_retransmit`, and
//! after `legacy_attempts` sends without an acknowledgement the client is cut.
//! Its queue is the ordinary bounded outbox, outside the senders' back
//! pressure: a client that stops acknowledging fills only its own queue and is
//! cut when it is full, never slowing anyone else.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use netkit::server::Conn;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::frame::{self, Frame, Reader};
use super::text;
use crate::cut::Cut;
use crate::pressure::{Level, Pressure};
use crate::proto::Event;
use crate::server::{Config, Hub, Outbox, lock, new_token};

/// Bytes read from the socket at a time.
const READ: usize = 4096;

/// The frame an event becomes for an original client.
fn legacy_frame(e: &Event) -> (u64, Bytes) {
    let mut out = BytesMut::new();
    frame::encode(
        e.seq,
        false,
        &text::payload(e.kind, &e.name, &e.text),
        &mut out,
    );
    (e.seq, out.freeze())
}

/// What both halves of one original client's connection share.
#[derive(Clone)]
struct Session {
    id: u64,
    peer: std::net::SocketAddr,
    /// Ended when either half ends (or the hub cuts the client), with why.
    cut: Cut,
    level: Arc<Level>,
    config: Arc<Config>,
}

/// Serves one original client until it leaves, fails or is cut.
pub(crate) async fn handle(
    stream: TcpStream,
    conn: Conn,
    hub: Arc<Mutex<Hub>>,
    config: Arc<Config>,
) {
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    let (tx, rx) = mpsc::channel::<Bytes>(config.outbox);
    let mut s = Session {
        id: 0,
        peer: conn.peer,
        cut: Cut::default(),
        // Its own level, apart from the hub's pressure: see the module docs.
        level: Arc::new(Level::new(config.outbox, Arc::new(Pressure::default()))),
        config,
    };
    let Some((id, replay)) = join(&hub, tx, &s) else {
        return;
    };
    s.id = id;
    tracing::info!(client = id, peer = %s.peer, "original chat client joined");
    let (acked_tx, acked_rx) = watch::channel(0u64);
    let (mut w, why) = tokio::join!(
        write(w, rx, replay, acked_rx, s.clone()),
        read(r, &conn, &hub, acked_tx, s.clone()),
    );
    leave(&hub, &s, why.clone());
    let text = s.cut.reason().or(why);
    tracing::info!(client = id, peer = %s.peer, reason = text.as_deref().unwrap_or("gone"), "original chat client left");
    let _ = w.shutdown().await;
}

/// Joins the total order as a new client named by its address; its outbox
/// joins the hub. Its id and the history it gets first.
fn join(hub: &Mutex<Hub>, tx: mpsc::Sender<Bytes>, s: &Session) -> Option<(u64, Vec<Event>)> {
    let mut h = lock(hub);
    let j = h
        .seq
        .hello(0, 0, 0, &text::address_name(s.peer), new_token())
        .ok()?;
    h.enter(j.client_id, Outbox::new(tx, &s.cut, &s.level), &j.join);
    Some((j.client_id, j.replay))
}

/// The writing half: the replay, then the outbox, one frame at a time, each
/// until the client acknowledges it.
async fn write(
    mut w: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Bytes>,
    replay: Vec<Event>,
    mut acked: watch::Receiver<u64>,
    s: Session,
) -> OwnedWriteHalf {
    let mut queued: VecDeque<(u64, Bytes)> = replay.iter().map(legacy_frame).collect();
    loop {
        // The next frame: the replay first, then the outbox.
        let (seq, bytes) = if let Some(f) = queued.pop_front() {
            f
        } else {
            let next = tokio::select! {
                () = s.cut.ended() => break,
                f = rx.recv() => f,
            };
            let Some(native) = next else { break };
            s.level.drained(rx.len());
            match Event::from_frame(&native) {
                Some(e) => legacy_frame(&e),
                None => continue,
            }
        };
        if !send_until_acked(&mut w, seq, &bytes, &mut acked, &s).await {
            s.cut.end();
            break;
        }
    }
    w
}

/// Sends one frame, again every `legacy_retransmit` until the client
/// acknowledges it; false if it never does (`legacy_attempts` sends), the
/// write fails or the session ends.
async fn send_until_acked(
    w: &mut OwnedWriteHalf,
    seq: u64,
    bytes: &[u8],
    acked: &mut watch::Receiver<u64>,
    s: &Session,
) -> bool {
    for sends in 1..=s.config.legacy_attempts {
        let written = tokio::select! {
            () = s.cut.ended() => return false,
            r = w.write_all(bytes) => r,
        };
        if written.is_err() {
            return false;
        }
        let deadline = Instant::now() + s.config.legacy_retransmit;
        loop {
            if *acked.borrow_and_update() >= seq {
                return true;
            }
            tokio::select! {
                () = s.cut.ended() => return false,
                () = tokio::time::sleep_until(deadline) => break,
                changed = acked.changed() => if changed.is_err() { return false },
            }
        }
        if sends == s.config.legacy_attempts {
            s.cut
                .give_reason(|| format!("stopped acknowledging (frame {seq} sent {sends} times)"));
        }
    }
    false
}

/// The reading half: acknowledgements and lines (`name: text`, each a chat
/// of that name), until the client closes, sends a bad frame, or the
/// session ends; why it ended (`None`: the session was kicked).
async fn read(
    mut r: OwnedReadHalf,
    conn: &Conn,
    hub: &Mutex<Hub>,
    acked: watch::Sender<u64>,
    s: Session,
) -> Option<String> {
    let mut reader = Reader::new();
    let mut buf = vec![0u8; READ];
    let mut lines = 0u64;
    let mut shown = text::address_name(s.peer);
    let why = loop {
        // Wait for bytes; with part of a line held, only for the quiet time.
        let wait = if reader.pending() >= frame::HEADER {
            s.config.legacy_quiet
        } else {
            std::time::Duration::from_secs(86_400)
        };
        let got = tokio::select! {
            () = s.cut.ended() => break None,
            () = conn.shutdown.cancelled() => break Some("server shutting down".to_string()),
            n = tokio::time::timeout(wait, r.read(&mut buf)) => n,
        };
        let quiet = match got {
            Ok(Ok(0)) => break Some("connection closed".to_string()),
            Ok(Ok(n)) => {
                reader.feed(&buf[..n]);
                false
            }
            Ok(Err(e)) => break Some(format!("read failed: {e}")),
            Err(_) => true,
        };
        loop {
            match reader.next(quiet) {
                Ok(None) => break,
                Ok(Some(Frame::Ack(n))) => {
                    acked.send_if_modified(|a| {
                        let newer = n > *a;
                        *a = (*a).max(n);
                        newer
                    });
                    lock(hub).seq.ack(s.id, n);
                }
                Ok(Some(Frame::Data { payload, .. })) => {
                    lines += 1;
                    let (name, said) = text::split_line(&payload, &shown);
                    let (name, said) = (name.to_string(), said.to_string());
                    let mut h = lock(hub);
                    if let Some(e) = h.seq.chat_named(s.id, lines, &name, &said) {
                        h.publish(&e);
                    }
                    shown = name;
                }
                Err(e) => {
                    s.cut.end();
                    return Some(format!("bad frame: {e}"));
                }
            }
        }
    };
    s.cut.end();
    why
}

/// Everyone sees the leave (unless the hub cut the client already); its
/// position no longer holds history back (the original cannot resume).
fn leave(hub: &Mutex<Hub>, s: &Session, why: Option<String>) {
    let mut h = lock(hub);
    if h.outboxes.remove(&s.id).is_some() {
        let stored = s.cut.reason();
        let leave = stored.or(why).unwrap_or_else(|| "gone".to_string());
        if let Some(e) = h.seq.disconnected(s.id, &leave) {
            h.publish(&e);
        }
    }
    h.seq.forget(s.id);
}
