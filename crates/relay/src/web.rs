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
use futures_util::{SinkExt, StreamExt};
use netkit::log_action;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use web::{Gate, Page, json_string};

use crate::pressure::Level;
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

async fn session(socket: WebSocket, shared: &Shared, peer: SocketAddr) {
    let (mut sink, mut stream) = socket.split();
    let silent = shared.config.heartbeat * 3;
    let hello = match tokio::time::timeout(silent, stream.next()).await {
        Ok(Some(Ok(WsMessage::Text(t)))) => parse_hello(t.as_str()),
        _ => None,
    };
    let Some((client_id, token, from, name)) = hello else {
        let _ = sink
            .send(WsMessage::Text(
                error_json("expected: hello ID TOKEN FROM NAME").into(),
            ))
            .await;
        log_action!(warn, "ws_open", Fail, peer = peer, error = "no hello");
        return;
    };
    let (tx, mut rx) = mpsc::channel::<Bytes>(shared.config.outbox);
    let kick = CancellationToken::new();
    let reason = Arc::new(Mutex::new(None::<String>));
    let joined = {
        let mut h = lock(&shared.hub);
        let level = Arc::new(Level::new(shared.config.outbox, Arc::clone(&h.pressure)));
        match h.seq.hello(client_id, token, from, &name, new_token()) {
            Ok(j) => {
                h.enter(
                    j.client_id,
                    Outbox::new(tx, &kick, &reason, &level),
                    &j.join,
                );
                Ok((j, level, Arc::clone(&h.pressure), h.seq.next_seq()))
            }
            Err(r) => Err(refusal_text(&r)),
        }
    };
    let (j, level, pressure, next_seq) = match joined {
        Ok(x) => x,
        Err(text) => {
            let _ = sink.send(WsMessage::Text(error_json(&text).into())).await;
            log_action!(info, "ws_open", Fail, peer = peer, error = text);
            return;
        }
    };
    let id = j.client_id;
    log_action!(
        info,
        "ws_open",
        Success,
        peer = peer,
        client = id,
        name = j.name
    );
    let mut welcome = format!(
        r#"{{"type":"welcome","client_id":{id},"token":"{:032x}","next_seq":{next_seq},"name":"#,
        j.token
    );
    json_string(&j.name, &mut welcome);
    welcome.push('}');
    let writer_kick = kick.clone();
    let stop = shared.gate.shutdown.clone();
    let writer = async move {
        let mut first = vec![welcome];
        first.extend(j.replay.iter().map(event_json));
        for m in first {
            if sink.send(WsMessage::Text(m.into())).await.is_err() {
                writer_kick.cancel();
                return;
            }
        }
        loop {
            let next = tokio::select! {
                () = writer_kick.cancelled() => break,
                () = stop.cancelled() => break,
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
        writer_kick.cancel();
        let _ = sink.close().await;
    };
    let reader_kick = kick.clone();
    let stop = shared.gate.shutdown.clone();
    let hub = Arc::clone(&shared.hub);
    let reader = async move {
        let why = loop {
            let next = tokio::select! {
                () = reader_kick.cancelled() => break "gone".to_string(),
                () = stop.cancelled() => break "server shutting down".to_string(),
                n = stream.next() => n,
            };
            let text = match next {
                None | Some(Ok(WsMessage::Close(_))) => break "connection closed".to_string(),
                Some(Err(e)) => break format!("bad message: {e}"),
                Some(Ok(WsMessage::Text(t))) => t,
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
                Some(Ok(WsMessage::Binary(_))) => break "bad message: binary".to_string(),
            };
            let (verb, rest) = text.as_str().split_once(' ').unwrap_or((text.as_str(), ""));
            match verb {
                "chat" => {
                    let Some((n, line)) = rest.split_once(' ') else {
                        break "bad message: chat SENDER_SEQ TEXT".to_string();
                    };
                    let Ok(n) = n.parse::<u64>() else {
                        break "bad message: chat SENDER_SEQ TEXT".to_string();
                    };
                    tokio::select! {
                        () = reader_kick.cancelled() => break "gone".to_string(),
                        _ = pressure.wait_calm() => {}
                    }
                    let mut h = lock(&hub);
                    if let Some(e) = h.seq.chat(id, n, line) {
                        h.publish(&e);
                    }
                }
                "ack" => match rest.parse::<u64>() {
                    Ok(seq) => lock(&hub).seq.ack(id, seq),
                    Err(_) => break "bad message: ack SEQ".to_string(),
                },
                _ => break format!("bad message: unknown command {verb:?}"),
            }
        };
        reader_kick.cancel();
        why
    };
    let ((), why) = tokio::join!(writer, reader);
    let mut h = lock(&shared.hub);
    if h.outboxes.remove(&id).is_some() {
        let stored = reason.lock().ok().and_then(|r| r.clone());
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

#[cfg(test)]
mod tests {
    use super::*;

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
