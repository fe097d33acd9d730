//! One native TCP client's connection (spec: relay.md, "Protocol",
//! "Delivery", "Backpressure"), in its steps: the `Hello`, joining the hub,
//! then a writer (welcome, replay, live events, pings) and a reader (chats,
//! acks, leave) side by side until either ends, then the leave.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use netkit::StallGuard;
use netkit::server::Conn;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;

use crate::cut::Cut;
use crate::pressure::{Level, Pressure};
use crate::proto::{Codec, Event, Message};
use crate::sequencer::{KnownClient, Refusal};
use crate::server::{Config, Hub, Outbox, lock, new_token, refusal_text};

type Writer = StallGuard<OwnedWriteHalf>;
type Frames = FramedRead<OwnedReadHalf, Codec>;

/// What a client says in its `Hello`.
struct Hello {
    client_id: u64,
    token: u128,
    resume_from: u64,
    name: String,
}

/// What joining gave the client.
struct Joined {
    id: u64,
    welcome: Message,
    replay: Vec<Event>,
}

/// What both halves of one connection share.
#[derive(Clone)]
struct Session {
    id: u64,
    /// Ended when either half ends (or the hub cuts the client), with why.
    cut: Cut,
    level: Arc<Level>,
    config: Arc<Config>,
}

/// Serves one native client until it leaves, fails or is cut.
pub(crate) async fn handle(
    stream: TcpStream,
    conn: Conn,
    hub: Arc<Mutex<Hub>>,
    config: Arc<Config>,
) {
    let _ = stream.set_nodelay(true);
    let _ = socket2::SockRef::from(&stream).set_send_buffer_size(config.send_buffer);
    let (r, w) = stream.into_split();
    // A client that takes nothing for `stall` is cut: it holds the senders
    // back meanwhile.
    let mut w = StallGuard::new(w, config.stall);
    let mut frames = FramedRead::new(r, Codec);
    let Some(hello) = read_hello(&mut frames, &mut w, config.heartbeat * 3).await else {
        return;
    };
    let (tx, rx) = mpsc::channel::<Bytes>(config.outbox);
    let pressure = Arc::clone(&lock(&hub).pressure);
    let mut session = Session {
        id: hello.client_id,
        cut: Cut::default(),
        level: Arc::new(Level::new(config.outbox, Arc::clone(&pressure))),
        config,
    };
    let joined = match join(&hub, &hello, tx, &session) {
        Ok(joined) => joined,
        Err(refusal) => {
            let text = refusal_text(&refusal);
            tracing::info!(client = hello.client_id, reason = %text, "hello refused");
            let _ = send(&mut w, &Message::Error { text }).await;
            return;
        }
    };
    session.id = joined.id;
    let (mut w, why) = tokio::join!(
        write(w, rx, joined, session.clone()),
        read(frames, &conn, &hub, &pressure, session.clone()),
    );
    leave(&hub, &session, why.as_deref());
    let text = session
        .cut
        .reason()
        .or(why.filter(|w| w != "left" && w != "connection closed"));
    if let Some(text) = text {
        tracing::info!(client = session.id, reason = %text, "client disconnected");
        let _ = send(&mut w, &Message::Error { text }).await;
    }
    let _ = w.shutdown().await;
}

async fn send(w: &mut (impl tokio::io::AsyncWrite + Unpin), m: &Message) -> std::io::Result<()> {
    let mut b = BytesMut::new();
    m.encode(&mut b);
    w.write_all(&b).await
}

/// The handshake: the client's `Hello` within `silent`, or an `Error`
/// saying what came instead (and `None`).
async fn read_hello(frames: &mut Frames, w: &mut Writer, silent: Duration) -> Option<Hello> {
    let text = match tokio::time::timeout(silent, frames.next()).await {
        Ok(Some(Ok(Message::Hello {
            client_id,
            token,
            resume_from,
            name,
        }))) => {
            return Some(Hello {
                client_id,
                token,
                resume_from,
                name,
            });
        }
        Ok(Some(Ok(other))) => format!("expected Hello first, got {other:?}"),
        Ok(Some(Err(e))) => e.to_string(),
        Ok(None) | Err(_) => return None,
    };
    let _ = send(w, &Message::Error { text }).await;
    None
}

/// The sequencer takes the client (new or resumed): a new one is written to
/// the event log, its outbox joins the hub, everyone sees the join.
fn join(
    hub: &Mutex<Hub>,
    hello: &Hello,
    tx: mpsc::Sender<Bytes>,
    s: &Session,
) -> Result<Joined, Refusal> {
    let mut h = lock(hub);
    let j = h.seq.hello(
        hello.client_id,
        hello.token,
        hello.resume_from,
        &hello.name,
        new_token(),
    )?;
    if j.new
        && let Some(log) = h.log.as_mut()
    {
        let known = KnownClient {
            id: j.client_id,
            token: j.token,
            name: j.name.clone(),
        };
        if let Err(e) = log.append_client(&known) {
            tracing::error!(error = %e, client = j.client_id, "cannot write the event log");
        }
    }
    h.enter(j.client_id, Outbox::new(tx, &s.cut, &s.level), &j.join);
    tracing::info!(client = j.client_id, name = %j.name, replay = j.replay.len(), "client joined");
    Ok(Joined {
        id: j.client_id,
        welcome: Message::Welcome {
            client_id: j.client_id,
            token: j.token,
            next_seq: h.seq.next_seq(),
            name: j.name,
        },
        replay: j.replay,
    })
}

/// The writing half: the welcome and the replay in one write, then every
/// frame the hub queues (all that waits, in one write) and a ping each
/// heartbeat, until the session is kicked or the client stops reading.
async fn write(mut w: Writer, mut rx: mpsc::Receiver<Bytes>, joined: Joined, s: Session) -> Writer {
    let mut out = BytesMut::new();
    joined.welcome.encode(&mut out);
    for e in &joined.replay {
        e.deliver().encode(&mut out);
    }
    if w.write_all(&out).await.is_err() {
        s.cut.end();
        return w;
    }
    let mut ping = tokio::time::interval(s.config.heartbeat);
    ping.tick().await;
    let mut nonce = 0u64;
    loop {
        out.clear();
        tokio::select! {
            () = s.cut.ended() => break,
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
            () = s.cut.ended() => break,
            r = w.write_all(&out) => r,
        };
        if let Err(e) = written {
            if e.kind() == std::io::ErrorKind::TimedOut {
                let stall = s.config.stall;
                s.cut
                    .give_reason(|| format!("too slow: nothing read for {stall:?}"));
            }
            s.cut.end();
            break;
        }
        s.level.drained(rx.len());
    }
    w
}

/// The reading half: chats (taken only while no client lags), acks, pings
/// and pongs, the leave; why it ended (`None`: the session was kicked).
async fn read(
    mut frames: Frames,
    conn: &Conn,
    hub: &Mutex<Hub>,
    pressure: &Pressure,
    s: Session,
) -> Option<String> {
    let silent = s.config.heartbeat * 3;
    let why = loop {
        let next = tokio::select! {
            () = s.cut.ended() => break None,
            () = conn.shutdown.cancelled() => break Some("server shutting down".to_string()),
            n = tokio::time::timeout(silent, frames.next()) => n,
        };
        let m = match next {
            Err(_) => break Some("heartbeat timeout".to_string()),
            Ok(None) => break Some("connection closed".to_string()),
            Ok(Some(Err(e))) => break Some(format!("bad frame: {e}")),
            Ok(Some(Ok(m))) => m,
        };
        match m {
            Message::Chat { sender_seq, text } => {
                // Backpressure: no line is taken while a client lags.
                tokio::select! {
                    () = s.cut.ended() => break None,
                    () = conn.shutdown.cancelled() => break Some("server shutting down".to_string()),
                    _ = pressure.wait_calm() => {}
                }
                let mut h = lock(hub);
                if let Some(e) = h.seq.chat(s.id, sender_seq, &text) {
                    h.publish(&e);
                }
            }
            Message::Ack { seq } => lock(hub).seq.ack(s.id, seq),
            // Any frame proves the client alive; that is all a ping or pong
            // from it is for.
            Message::Pong { .. } | Message::Ping { .. } => {}
            Message::Leave => {
                // Everyone sees the leave; then the client's position stops
                // holding history back (it will not resume).
                let mut h = lock(hub);
                h.outboxes.remove(&s.id);
                if let Some(e) = h.seq.disconnected(s.id, "left") {
                    h.publish(&e);
                }
                h.seq.forget(s.id);
                break Some("left".to_string());
            }
            other => break Some(format!("unexpected message from a client: {other:?}")),
        }
    };
    s.cut.end();
    why
}

/// Records the leave, unless the hub already cut this client off. A client
/// cut for not reading leaves as "too slow", like one whose outbox filled.
fn leave(hub: &Mutex<Hub>, s: &Session, why: Option<&str>) {
    let mut h = lock(hub);
    if h.outboxes.remove(&s.id).is_none() {
        return;
    }
    let stalled = s.cut.reason().is_some_and(|t| t.starts_with("too slow"));
    let reason = if stalled {
        "too slow"
    } else {
        why.unwrap_or("gone")
    };
    if let Some(leave) = h.seq.disconnected(s.id, reason) {
        h.publish(&leave);
    }
}
