//! The chat in a browser (issue #18): `relay serve --web ADDR` serves a page
//! and a WebSocket through which the browser is a relay client of the same
//! sequencer (docs: relay.md, "The chat page").
//!
//! The WebSocket speaks text both ways. The page sends `hello ID TOKEN FROM
//! NAME` first (0 0 0 for a new client; the id, hex token and last sequence
//! number it kept to resume after a reload), then `chat SENDER_SEQ TEXT` and
//! `ack SEQ`. The server answers one JSON object per message: `welcome`
//! (id, token, next sequence number, shown name), `event` (seq, kind, name,
//! text, and the sender's counter for chats) and `error`. The page keeps its
//! id, token, last sequence number and unconfirmed lines in `localStorage`: a
//! reload resumes with no gap and no duplicate, and a line resent with its
//! counter is sequenced once.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::ws::{Message as WsMessage, WebSocket};
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use netkit::log_action;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use web::{Gate, Page, json_string};

use crate::cut::Cut;
use crate::pressure::{Level, Pressure};
use crate::proto::Kind;
use crate::sequencer::Event;
use crate::server::{Config, Hub, Outbox, lock, new_token, refusal_text};

/// The page, its script and its style, from the binary.
const PAGES: &[Page] = &[
    Page::html(include_str!("../static/chat.html")),
    Page::script("/chat.js", include_str!("../static/chat.js")),
    Page::style("/chat.css", include_str!("../static/chat.css")),
];

/// Longest WebSocket message taken from a page (a chat line and its command).
pub const MAX_MESSAGE: usize = 64 * 1024;

struct Shared {
    hub: Arc<Mutex<Hub>>,
    config: Arc<Config>,
    gate: Gate,
}

impl web::Sessions for Shared {
    fn gate(&self) -> &Gate {
        &self.gate
    }

    async fn session(self: Arc<Self>, socket: WebSocket, peer: SocketAddr) {
        session(socket, &self, peer).await;
    }
}

/// The routes of the chat page and its WebSocket.
pub(crate) fn router(hub: Arc<Mutex<Hub>>, config: Arc<Config>, gate: Gate) -> Router {
    web::app(PAGES, Arc::new(Shared { hub, config, gate }))
}

/// An event as the page reads it.
fn event_json(e: &Event) -> String {
    let kind = match e.kind {
        Kind::Chat => "chat",
        Kind::Join => "join",
        Kind::Leave => "leave",
    };
    let mut s = format!(
        r#"{{"type":"event","seq":{},"kind":"{kind}","origin":{},"sender_seq":{},"name":"#,
        e.seq, e.origin, e.sender_seq
    );
    json_string(&e.name, &mut s);
    s.push_str(r#","text":"#);
    json_string(&e.text, &mut s);
    s.push('}');
    s
}

fn error_json(text: &str) -> String {
    let mut s = r#"{"type":"error","text":"#.to_string();
    json_string(text, &mut s);
    s.push('}');
    s
}

/// A page's `hello ID TOKEN FROM NAME`.
fn parse_hello(text: &str) -> Option<(u64, u128, u64, String)> {
    let mut parts = text.splitn(5, ' ');
    if parts.next()? != "hello" {
        return None;
    }
    let id = parts.next()?.parse().ok()?;
    let token = u128::from_str_radix(parts.next()?, 16).ok()?;
    let from = parts.next()?.parse().ok()?;
    let name = parts.next()?.trim().to_string();
    (!name.is_empty() && name.len() <= 64).then_some((id, token, from, name))
}

type Sink = SplitSink<WebSocket, WsMessage>;
type Stream = SplitStream<WebSocket>;

/// A page's `hello`: id, token, resume point, name.
type Hello = (u64, u128, u64, String);

/// What both halves of one page's session share.
#[derive(Clone)]
struct PageSession {
    id: u64,
    /// Ended when either half ends (or the hub cuts the client).
    cut: Cut,
    /// The server's shutdown.
    stop: CancellationToken,
}

/// One page: its hello, joining the hub, then a writer (welcome, replay,
/// events as JSON) and a reader (chat and ack commands) until either ends,
/// then the leave.
async fn session(socket: WebSocket, shared: &Shared, peer: SocketAddr) {
    let (mut sink, mut stream) = socket.split();
    let Some(hello) = read_hello(&mut stream, shared.config.heartbeat * 3).await else {
        let _ = sink
            .send(WsMessage::Text(
                error_json("expected: hello ID TOKEN FROM NAME").into(),
            ))
            .await;
        log_action!(warn, "ws_open", Fail, peer = peer, error = "no hello");
        return;
    };
    let (tx, rx) = mpsc::channel::<Bytes>(shared.config.outbox);
    let cut = Cut::default();
    let Joined {
        first,
        level,
        pressure,
        id,
    } = match join(shared, &hello, tx, &cut) {
        Ok(joined) => joined,
        Err(text) => {
            let _ = sink.send(WsMessage::Text(error_json(&text).into())).await;
            log_action!(info, "ws_open", Fail, peer = peer, error = text);
            return;
        }
    };
    log_action!(
        info,
        "ws_open",
        Success,
        peer = peer,
        client = id,
        name = hello.3
    );
    let s = PageSession {
        id,
        cut: cut.clone(),
        stop: shared.gate.shutdown.clone(),
    };
    let ((), why) = tokio::join!(
        write_events(sink, rx, first, &level, s.clone()),
        read_commands(stream, &shared.hub, &pressure, s.clone()),
    );
    let mut h = lock(&shared.hub);
    if h.outboxes.remove(&id).is_some() {
        let stored = cut.reason();
        let leave = stored.unwrap_or_else(|| why.clone());
        if let Some(e) = h.seq.disconnected(id, &leave) {
            h.publish(&e);
        }
    }
    log_action!(
        info,
        "ws_close",
        Success,
        peer = peer,
        client = id,
        reason = why
    );
}

/// The page's first message, within `silent`, if it is a `hello`.
async fn read_hello(stream: &mut Stream, silent: std::time::Duration) -> Option<Hello> {
    match tokio::time::timeout(silent, stream.next()).await {
        Ok(Some(Ok(WsMessage::Text(t)))) => parse_hello(t.as_str()),
        _ => None,
    }
}

/// What joining gave a page: the first messages (welcome, replay) as JSON,
/// its outbox's level, the hub's pressure and its id.
struct Joined {
    first: Vec<String>,
    level: Arc<Level>,
    pressure: Arc<Pressure>,
    id: u64,
}

/// The sequencer takes the page's client (new or resumed) and its outbox
/// joins the hub; or the refusal's text.
fn join(
    shared: &Shared,
    hello: &Hello,
    tx: mpsc::Sender<Bytes>,
    cut: &Cut,
) -> Result<Joined, String> {
    let mut h = lock(&shared.hub);
    let level = Arc::new(Level::new(shared.config.outbox, Arc::clone(&h.pressure)));
    let (client_id, token, from, name) = hello;
    let j = h
        .seq
        .hello(*client_id, *token, *from, name, new_token())
        .map_err(|r| refusal_text(&r))?;
    h.enter(j.client_id, Outbox::new(tx, cut, &level), &j.join);
    let mut welcome = format!(
        r#"{{"type":"welcome","client_id":{},"token":"{:032x}","next_seq":{},"name":"#,
        j.client_id,
        j.token,
        h.seq.next_seq()
    );
    json_string(&j.name, &mut welcome);
    welcome.push('}');
    let mut first = vec![welcome];
    first.extend(j.replay.iter().map(event_json));
    Ok(Joined {
        first,
        level,
        pressure: Arc::clone(&h.pressure),
        id: j.client_id,
    })
}

/// The writing half: the first messages, then every event the hub queues,
/// as JSON, until the session ends or the page stops taking them.
async fn write_events(
    mut sink: Sink,
    mut rx: mpsc::Receiver<Bytes>,
    first: Vec<String>,
    level: &Level,
    s: PageSession,
) {
    for m in first {
        if sink.send(WsMessage::Text(m.into())).await.is_err() {
            s.cut.end();
            return;
        }
    }
    loop {
        let next = tokio::select! {
            () = s.cut.ended() => break,
            () = s.stop.cancelled() => break,
            f = rx.recv() => f,
        };
        let Some(native) = next else { break };
        level.drained(rx.len());
        if let Some(json) = Event::from_frame(&native).map(|e| event_json(&e))
            && sink.send(WsMessage::Text(json.into())).await.is_err()
        {
            break;
        }
    }
    s.cut.end();
    let _ = sink.close().await;
}

/// The reading half: `chat SENDER_SEQ TEXT` (taken only while no client
/// lags) and `ack SEQ`; why it ended.
async fn read_commands(
    mut stream: Stream,
    hub: &Mutex<Hub>,
    pressure: &Pressure,
    s: PageSession,
) -> String {
    let why = loop {
        let next = tokio::select! {
            () = s.cut.ended() => break "gone".to_string(),
            () = s.stop.cancelled() => break "server shutting down".to_string(),
            n = stream.next() => n,
        };
        let text = match next {
            None | Some(Ok(WsMessage::Close(_))) => break "connection closed".to_string(),
            Some(Err(e)) => break format!("bad message: {e}"),
            Some(Ok(WsMessage::Text(t))) => t,
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
            Some(Ok(WsMessage::Binary(_))) => break "bad message: binary".to_string(),
        };
        match parse_command(text.as_str()) {
            Ok(Command::Chat(n, line)) => {
                tokio::select! {
                    () = s.cut.ended() => break "gone".to_string(),
                    _ = pressure.wait_calm() => {}
                }
                let mut h = lock(hub);
                if let Some(e) = h.seq.chat(s.id, n, line) {
                    h.publish(&e);
                }
            }
            Ok(Command::Ack(seq)) => lock(hub).seq.ack(s.id, seq),
            Err(why) => break why,
        }
    };
    s.cut.end();
    why
}

/// A page's command after its hello.
#[derive(Debug, PartialEq, Eq)]
enum Command<'a> {
    /// `chat SENDER_SEQ TEXT`.
    Chat(u64, &'a str),
    /// `ack SEQ`.
    Ack(u64),
}

/// Parses a command, or says what is wrong with it.
fn parse_command(text: &str) -> Result<Command<'_>, String> {
    let (verb, rest) = text.split_once(' ').unwrap_or((text, ""));
    match verb {
        "chat" => rest
            .split_once(' ')
            .and_then(|(n, line)| Some(Command::Chat(n.parse().ok()?, line)))
            .ok_or_else(|| "bad message: chat SENDER_SEQ TEXT".to_string()),
        "ack" => rest
            .parse()
            .map(Command::Ack)
            .map_err(|_| "bad message: ack SEQ".to_string()),
        _ => Err(format!("bad message: unknown command {verb:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_and_bad_ones_say_why() {
        assert_eq!(
            parse_command("chat 3 hola mundo"),
            Ok(Command::Chat(3, "hola mundo"))
        );
        assert_eq!(parse_command("ack 12"), Ok(Command::Ack(12)));
        assert!(
            parse_command("chat x hola")
                .unwrap_err()
                .contains("chat SENDER_SEQ TEXT")
        );
        assert!(parse_command("chat 3").is_err());
        assert!(parse_command("ack").unwrap_err().contains("ack SEQ"));
        assert!(
            parse_command("dance")
                .unwrap_err()
                .contains("unknown command")
        );
    }

    #[test]
    fn hellos_parse_and_bad_ones_do_not() {
        assert_eq!(
            parse_hello("hello 0 0 0 ana maría"),
            Some((0, 0, 0, "ana maría".to_string()))
        );
        assert_eq!(
            parse_hello("hello 3 00ff 17 bo"),
            Some((3, 255, 17, "bo".to_string()))
        );
        assert_eq!(parse_hello("hello 0 0 0 "), None);
        assert_eq!(parse_hello("hello x 0 0 a"), None);
        assert_eq!(parse_hello("chat 1 hola"), None);
    }

    #[test]
    fn events_are_json_with_text_escaped() {
        assert_eq!(
            event_json(&Event {
                seq: 7,
                kind: Kind::Chat,
                origin: 4,
                sender_seq: 2,
                name: "a\"b".into(),
                text: "<img src=x onerror=alert(1)>".into(),
            }),
            r#"{"type":"event","seq":7,"kind":"chat","origin":4,"sender_seq":2,"name":"a\"b","text":"<img src=x onerror=alert(1)>"}"#
        );
    }
}
