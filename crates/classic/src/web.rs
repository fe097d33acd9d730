//! The positions game in a browser (issue #18): `classic positions serve
//! --web ADDR` serves a map of every connected client, live, over a
//! WebSocket; a browser can also join as a player through the same client
//! registry as the TCP clients (so the original clients see it, and it sees
//! them).
//!
//! The server's feed ([`Feed`]) keeps who is connected and where each was last
//! seen, and broadcasts every change as one JSON text: `join`, `move` (id, x,
//! y), `leave`. A page gets a `snapshot` first (and again if it fell behind).
//! The page sends `play` to join as a player (answered `you` with its id) and
//! `move X Y` with its new position, which goes to every client as a TCP
//! client's position would.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::ws::{Message as WsMessage, WebSocket};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use netkit::log_action;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use web::{Gate, Page};

use crate::positions::Position;
use crate::server::{Field, Outbox, POSITION_QUEUE};

/// The page, its script and its style, from the binary.
const PAGES: &[Page] = &[
    Page::html(include_str!("../static/positions.html")),
    Page::script("/positions.js", include_str!("../static/positions.js")),
    Page::style("/positions.css", include_str!("../static/positions.css")),
];

/// Longest WebSocket message taken from a page (`move X Y` is a dozen bytes).
pub const MAX_MESSAGE: usize = 1024;

/// Changes queued per page before it counts as behind (it then gets a fresh
/// snapshot).
const FEED_QUEUE: usize = 4096;

/// Who is connected and where, for pages.
#[derive(Debug)]
pub struct Feed {
    tx: broadcast::Sender<Arc<str>>,
    last: Mutex<BTreeMap<u32, Option<Position>>>,
}

impl Default for Feed {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(FEED_QUEUE).0,
            last: Mutex::new(BTreeMap::new()),
        }
    }
}

fn player_json(id: u32, at: Option<Position>) -> String {
    match at {
        Some(p) => format!(r#"{{"id":{id},"x":{},"y":{}}}"#, p.x, p.y),
        None => format!(r#"{{"id":{id}}}"#),
    }
}

impl Feed {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, Option<Position>>> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn send(&self, json: String) {
        // No page open: nobody to tell.
        let _ = self.tx.send(Arc::from(json));
    }

    /// Client `id` connected.
    pub fn joined(&self, id: u32) {
        self.lock().insert(id, None);
        self.send(format!(r#"{{"type":"join","id":{id}}}"#));
    }

    /// Client `id` is at `p`.
    pub fn moved(&self, id: u32, p: Position) {
        self.lock().insert(id, Some(p));
        self.send(format!(
            r#"{{"type":"move","id":{id},"x":{},"y":{}}}"#,
            p.x, p.y
        ));
    }

    /// Client `id` is gone.
    pub fn left(&self, id: u32) {
        if self.lock().remove(&id).is_some() {
            self.send(format!(r#"{{"type":"leave","id":{id}}}"#));
        }
    }

    /// Everyone connected now and where each was last seen.
    pub fn snapshot(&self) -> String {
        let players: Vec<String> = self
            .lock()
            .iter()
            .map(|(id, at)| player_json(*id, *at))
            .collect();
        format!(r#"{{"type":"snapshot","players":[{}]}}"#, players.join(","))
    }

    /// A receiver of every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.tx.subscribe()
    }
}

struct Shared {
    field: Arc<Field>,
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

/// The routes of the map page and its WebSocket.
pub(crate) fn router(field: Arc<Field>, gate: Gate) -> Router {
    web::app(PAGES, Arc::new(Shared { field, gate }))
}

/// `move X Y` from a page.
fn parse_move(text: &str) -> Option<Position> {
    let mut parts = text.split(' ');
    if parts.next()? != "move" {
        return None;
    }
    let x = parts.next()?.parse().ok()?;
    let y = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some(Position { x, y })
}

async fn session(socket: WebSocket, shared: &Shared, peer: SocketAddr) {
    let feed = shared.field.feed();
    let Some(feed) = feed else { return };
    let (mut sink, mut stream) = socket.split();
    let mut changes = feed.subscribe();
    if sink
        .send(WsMessage::Text(feed.snapshot().into()))
        .await
        .is_err()
    {
        return;
    }
    log_action!(info, "ws_open", Success, peer = peer);
    // As a player: its registry id, its (discarded) broadcast queue, its kick.
    let mut me: Option<u32> = None;
    let mut queue: Option<mpsc::Receiver<Bytes>> = None;
    let mut kick: Option<CancellationToken> = None;
    let stop = shared.gate.shutdown.clone();
    let why = loop {
        tokio::select! {
            () = stop.cancelled() => break "server shutting down",
            () = async {
                match &kick {
                    Some(k) => k.cancelled().await,
                    None => std::future::pending().await,
                }
            } => break "removed",
            // The page sees everything through the feed; the TCP broadcasts
            // queued for its player are dropped as they come.
            _ = async {
                match &mut queue {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => {}
            change = changes.recv() => {
                let text = match change {
                    Ok(t) => t.to_string(),
                    Err(broadcast::error::RecvError::Lagged(_)) => feed.snapshot(),
                    Err(broadcast::error::RecvError::Closed) => break "server shutting down",
                };
                if sink.send(WsMessage::Text(text.into())).await.is_err() {
                    break "connection closed";
                }
            }
            msg = stream.next() => {
                let text = match msg {
                    None | Some(Ok(WsMessage::Close(_))) => break "connection closed",
                    Some(Err(_)) => break "bad message",
                    Some(Ok(WsMessage::Text(t))) => t,
                    Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
                    Some(Ok(WsMessage::Binary(_))) => break "bad message: binary",
                };
                if text.as_str() == "play" {
                    if me.is_none() {
                        let (tx, rx) = mpsc::channel::<Bytes>(POSITION_QUEUE);
                        let k = CancellationToken::new();
                        let Some(id) = shared.field.join(Outbox::new(tx, &k), peer) else {
                            break "every id is in use";
                        };
                        me = Some(id);
                        queue = Some(rx);
                        kick = Some(k);
                        let you = format!(r#"{{"type":"you","id":{id}}}"#);
                        if sink.send(WsMessage::Text(you.into())).await.is_err() {
                            break "connection closed";
                        }
                    }
                } else if let Some(p) = parse_move(text.as_str()) {
                    if let Some(id) = me {
                        shared.field.moved(id, p);
                    }
                } else {
                    break "bad message";
                }
            }
        }
    };
    if let Some(id) = me {
        shared.field.leave(id, why);
    }
    log_action!(info, "ws_close", Success, peer = peer, reason = why);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_parse_and_nothing_else_does() {
        assert_eq!(parse_move("move 3 -4"), Some(Position { x: 3, y: -4 }));
        assert_eq!(parse_move("move 3"), None);
        assert_eq!(parse_move("move 3 4 5"), None);
        assert_eq!(parse_move("move 40000 0"), None, "i16 only");
    }

    #[test]
    fn the_feed_tells_joins_moves_and_leaves() {
        let f = Feed::default();
        let mut rx = f.subscribe();
        f.joined(10_001);
        f.moved(10_001, Position { x: 1, y: -2 });
        f.joined(10_002);
        assert_eq!(
            f.snapshot(),
            r#"{"type":"snapshot","players":[{"id":10001,"x":1,"y":-2},{"id":10002}]}"#
        );
        f.left(10_001);
        f.left(10_001);
        let got: Vec<String> =
            std::iter::from_fn(|| rx.try_recv().ok().map(|s| s.to_string())).collect();
        assert_eq!(
            got,
            [
                r#"{"type":"join","id":10001}"#,
                r#"{"type":"move","id":10001,"x":1,"y":-2}"#,
                r#"{"type":"join","id":10002}"#,
                r#"{"type":"leave","id":10001}"#,
            ]
        );
    }
}
