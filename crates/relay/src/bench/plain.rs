//! The baseline server: a plain TCP fan-out of the same frames. No handshake,
//! no sequencing, no acks, no history, no heartbeats: every length-prefixed
//! frame a connection sends goes verbatim to every connection, through the same
//! kind of bounded outbox and writer task the relay server uses. Its one
//! message of its own is a `Welcome` once a connection is registered.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::proto::Message;

type Subscribers = Arc<Mutex<Vec<(u64, mpsc::Sender<Bytes>)>>>;

/// Serves until `stop` is cancelled.
pub async fn serve(listener: TcpListener, outbox: usize, stop: CancellationToken) {
    let subscribers: Subscribers = Arc::default();
    let mut next_id = 0u64;
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else { continue };
        next_id += 1;
        tokio::spawn(connection(
            stream,
            next_id,
            Arc::clone(&subscribers),
            outbox,
            stop.clone(),
        ));
    }
}

async fn connection(
    stream: TcpStream,
    id: u64,
    subscribers: Subscribers,
    outbox: usize,
    stop: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let (mut r, mut w) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Bytes>(outbox);
    // Registered, then told so: a client that has its Welcome misses nothing
    // sent after it (without it, a client accepted late missed chats).
    let mut welcome = BytesMut::new();
    Message::Welcome {
        client_id: id,
        token: 0,
        next_seq: 0,
        name: String::new(),
    }
    .encode(&mut welcome);
    let _ = tx.try_send(welcome.freeze());
    subscribers
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((id, tx));
    let writer = tokio::spawn(async move {
        let mut out = BytesMut::new();
        while let Some(frame) = rx.recv().await {
            out.clear();
            out.extend_from_slice(&frame);
            while let Ok(more) = rx.try_recv() {
                out.extend_from_slice(&more);
            }
            if w.write_all(&out).await.is_err() {
                break;
            }
        }
    });
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        let n = tokio::select! {
            () = stop.cancelled() => break,
            n = r.read_buf(&mut buf) => n,
        };
        if !matches!(n, Ok(n) if n > 0) {
            break;
        }
        while buf.len() >= 4 {
            let len = (&buf[..4]).get_u32() as usize;
            if buf.len() < 4 + len {
                break;
            }
            let frame = buf.split_to(4 + len).freeze();
            let mut subs = subscribers.lock().unwrap_or_else(PoisonError::into_inner);
            // A full outbox is cut off, as the relay server does.
            subs.retain(|(_, tx)| {
                !matches!(
                    tx.try_send(frame.clone()),
                    Err(mpsc::error::TrySendError::Full(_))
                )
            });
        }
    }
    subscribers
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .retain(|(sid, _)| *sid != id);
    writer.abort();
}
