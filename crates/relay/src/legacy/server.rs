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
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::frame::{self, Frame, Reader};
use super::text;
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

/// Serves one original client until it leaves, fails or is cut.
pub(crate) async fn handle(
    stream: TcpStream,
    conn: Conn,
    hub: Arc<Mutex<Hub>>,
    config: Arc<Config>,
) {
    let _ = stream.set_nodelay(true);
    let peer = conn.peer;
    let (mut r, mut w) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Bytes>(config.outbox);
    let kick = CancellationToken::new();
    let reason = Arc::new(Mutex::new(None::<String>));
    // Its own level, apart from the hub's pressure: see the module docs.
    let level = Arc::new(Level::new(config.outbox, Arc::new(Pressure::default())));
    let (id, replay) = {
        let mut h = lock(&hub);
        let Ok(j) = h.seq.hello(0, 0, 0, &text::address_name(peer), new_token()) else {
            return;
        };
        h.enter(
            j.client_id,
            Outbox::new(tx, &kick, &reason, &level),
            &j.join,
        );
        (j.client_id, j.replay)
    };
    tracing::info!(client = id, peer = %peer, "original chat client joined");
    let (acked_tx, mut acked_rx) = watch::channel(0u64);

    let writer_kick = kick.clone();
    let writer_reason = Arc::clone(&reason);
    let writer_config = Arc::clone(&config);
    let writer = async move {
        let config = writer_config;
        let mut queued: VecDeque<(u64, Bytes)> = replay.iter().map(legacy_frame).collect();
        loop {
            // The next frame: the replay first, then the outbox.
            let (seq, bytes) = if let Some(f) = queued.pop_front() {
                f
            } else {
                let next = tokio::select! {
                    () = writer_kick.cancelled() => break,
                    f = rx.recv() => f,
                };
                let Some(native) = next else { break };
                level.drained(rx.len());
                match Event::from_frame(&native) {
                    Some(e) => legacy_frame(&e),
                    None => continue,
                }
            };
            let mut sends = 0u32;
            let done = loop {
                if sends >= config.legacy_attempts {
                    if let Ok(mut r) = writer_reason.lock() {
                        r.get_or_insert_with(|| {
                            format!("stopped acknowledging (frame {seq} sent {sends} times)")
                        });
                    }
                    break false;
                }
                let written = tokio::select! {
                    () = writer_kick.cancelled() => break false,
                    r = w.write_all(&bytes) => r,
                };
                if written.is_err() {
                    break false;
                }
                sends += 1;
                let deadline = Instant::now() + config.legacy_retransmit;
                let acked = loop {
                    if *acked_rx.borrow_and_update() >= seq {
                        break true;
                    }
                    tokio::select! {
                        () = writer_kick.cancelled() => return w,
                        () = tokio::time::sleep_until(deadline) => break false,
                        changed = acked_rx.changed() => if changed.is_err() { return w },
                    }
                };
                if acked {
                    break true;
                }
            };
            if !done {
                writer_kick.cancel();
                break;
            }
        }
        w
    };

    let reader_kick = kick.clone();
    let reader_hub = Arc::clone(&hub);
    let reader = async move {
        let mut reader = Reader::new();
        let mut buf = vec![0u8; READ];
        let mut lines = 0u64;
        let mut shown = text::address_name(peer);
        let why = loop {
            // Wait for bytes; with part of a line held, only for the quiet time.
            let wait = if reader.pending() >= frame::HEADER {
                config.legacy_quiet
            } else {
                std::time::Duration::from_secs(86_400)
            };
            let got = tokio::select! {
                () = reader_kick.cancelled() => break None,
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
            let mut failed = None;
            loop {
                match reader.next(quiet) {
                    Ok(None) => break,
                    Ok(Some(Frame::Ack(n))) => {
                        acked_tx.send_if_modified(|a| {
                            let newer = n > *a;
                            *a = (*a).max(n);
                            newer
                        });
                        lock(&reader_hub).seq.ack(id, n);
                    }
                    Ok(Some(Frame::Data { payload, .. })) => {
                        lines += 1;
                        let (name, said) = text::split_line(&payload, &shown);
                        let (name, said) = (name.to_string(), said.to_string());
                        let mut h = lock(&reader_hub);
                        if let Some(e) = h.seq.chat_named(id, lines, &name, &said) {
                            h.publish(&e);
                        }
                        shown = name;
                    }
                    Err(e) => {
                        failed = Some(format!("bad frame: {e}"));
                        break;
                    }
                }
            }
            if let Some(f) = failed {
                break Some(f);
            }
        };
        reader_kick.cancel();
        why
    };
    let (mut w, why) = tokio::join!(writer, reader);
    {
        let mut h = lock(&hub);
        if h.outboxes.remove(&id).is_some() {
            let stored = reason.lock().ok().and_then(|r| r.clone());
            let leave = stored.or(why.clone()).unwrap_or_else(|| "gone".to_string());
            if let Some(e) = h.seq.disconnected(id, &leave) {
                h.publish(&e);
            }
        }
        // It cannot resume (the original has no resume): its position must
        // not hold history back.
        h.seq.forget(id);
    }
    let text = reason.lock().ok().and_then(|r| r.clone()).or(why);
    tracing::info!(client = id, peer = %peer, reason = text.as_deref().unwrap_or("gone"), "original chat client left");
    let _ = w.shutdown().await;
}
