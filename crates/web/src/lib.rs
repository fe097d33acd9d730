//! The small web layer the servers share (issue #18): pages embedded in the
//! binary (nothing fetched at run time, no CDN), a WebSocket upgrade with the
//! same limits as the TCP protocols (a message size capped before anything is
//! allocated for it, a connection limit), the Origin checked, and a graceful
//! shutdown with the server.
//!
//! Each server keeps its own page and its own WebSocket session logic; what
//! is shared is here: [`Page`] routes with a strict content security policy
//! (scripts only from this origin, no inline script, so text that looks like
//! HTML can run nothing even if a page slipped), [`origin_allowed`],
//! [`Gate`] (limits and the upgrade), [`serve`].

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use netkit::log_action;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

#[cfg(feature = "webdriver")]
pub mod webdriver;

/// What can go wrong in the web layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A socket error.
    #[error("web server i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// A file served as it is, from the binary.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    /// The path (`/`, `/chat.js`).
    pub path: &'static str,
    /// Its content type.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static str,
}

impl Page {
    /// The page itself, at `/`.
    pub const fn html(body: &'static str) -> Self {
        Self {
            path: "/",
            content_type: "text/html; charset=utf-8",
            body,
        }
    }

    /// A script at `path`.
    pub const fn script(path: &'static str, body: &'static str) -> Self {
        Self {
            path,
            content_type: "text/javascript; charset=utf-8",
            body,
        }
    }

    /// A style sheet at `path`.
    pub const fn style(path: &'static str, body: &'static str) -> Self {
        Self {
            path,
            content_type: "text/css; charset=utf-8",
            body,
        }
    }
}

/// Scripts and styles from this origin only; no inline script, no plugin.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// Adds a GET route per page, each with the content security policy.
pub fn with_pages<S: Clone + Send + Sync + 'static>(
    mut router: Router<S>,
    pages: &[Page],
) -> Router<S> {
    for p in pages {
        let page = *p;
        router = router.route(
            page.path,
            get(move || async move {
                (
                    [
                        (
                            header::CONTENT_TYPE,
                            HeaderValue::from_static(page.content_type),
                        ),
                        (
                            header::CONTENT_SECURITY_POLICY,
                            HeaderValue::from_static(CSP),
                        ),
                        (
                            header::X_CONTENT_TYPE_OPTIONS,
                            HeaderValue::from_static("nosniff"),
                        ),
                        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                    ],
                    page.body,
                )
            }),
        );
    }
    router
}

/// Whether a WebSocket request may be upgraded: a browser always says where
/// the page that opens it came from, and only this server's own pages may
/// (`Origin` equal to `http://` + the `Host` asked for). A request without an
/// `Origin` is not from a browser page (a program holds no user's cookies to
/// abuse) and is let in.
pub fn origin_allowed(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    origin
        .to_str()
        .is_ok_and(|o| o.eq_ignore_ascii_case(&format!("http://{host}")))
}

/// The WebSocket limits of one server, and its shutdown.
#[derive(Debug, Clone)]
pub struct Gate {
    permits: Arc<Semaphore>,
    max_message: usize,
    /// Cancelled when the server stops: every session ends.
    pub shutdown: CancellationToken,
}

impl Gate {
    /// At most `max_connections` WebSockets at once, messages of at most
    /// `max_message` bytes.
    pub fn new(max_connections: usize, max_message: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_connections.max(1))),
            max_message,
            shutdown: CancellationToken::new(),
        }
    }

    /// Checks a WebSocket request (Origin, room) and sets its limits; the
    /// refusal to answer otherwise. The permit is held for the session.
    pub fn admit(
        &self,
        ws: WebSocketUpgrade,
        headers: &HeaderMap,
        peer: SocketAddr,
    ) -> Result<(WebSocketUpgrade, OwnedSemaphorePermit), Box<Response>> {
        if !origin_allowed(headers) {
            let origin = headers
                .get(header::ORIGIN)
                .and_then(|o| o.to_str().ok())
                .unwrap_or("?")
                .to_string();
            log_action!(
                warn,
                "ws_open",
                Fail,
                peer = peer,
                origin = origin,
                error = "foreign origin"
            );
            return Err(Box::new(
                (
                    StatusCode::FORBIDDEN,
                    "this WebSocket serves this server's own pages only",
                )
                    .into_response(),
            ));
        }
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            log_action!(
                warn,
                "ws_open",
                Fail,
                peer = peer,
                error = "connection limit"
            );
            return Err(Box::new(
                (StatusCode::SERVICE_UNAVAILABLE, "too many connections").into_response(),
            ));
        };
        let ws = ws
            .max_message_size(self.max_message)
            .max_frame_size(self.max_message);
        Ok((ws, permit))
    }
}

impl Gate {
    /// Answers a WebSocket request: refused as [`Gate::admit`] says, or
    /// upgraded and handed to `session`, the connection's permit held until
    /// it returns.
    pub fn upgrade<F, Fut>(
        &self,
        ws: WebSocketUpgrade,
        headers: &HeaderMap,
        peer: SocketAddr,
        session: F,
    ) -> Response
    where
        F: FnOnce(axum::extract::ws::WebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        match self.admit(ws, headers, peer) {
            Err(refused) => *refused,
            Ok((ws, permit)) => ws.on_upgrade(move |socket| async move {
                session(socket).await;
                drop(permit);
            }),
        }
    }
}

/// A server's WebSocket sessions: what [`app`] needs of its shared state.
pub trait Sessions: Send + Sync + Sized + 'static {
    /// The limits and shutdown of this server's WebSockets.
    fn gate(&self) -> &Gate;

    /// Runs one admitted WebSocket from `peer` to its end.
    fn session(
        self: Arc<Self>,
        socket: axum::extract::ws::WebSocket,
        peer: SocketAddr,
    ) -> impl Future<Output = ()> + Send;
}

/// The routes of a page: the files at their paths, and its WebSocket at `/ws`.
pub fn app<S: Sessions>(pages: &[Page], shared: Arc<S>) -> Router {
    let r = Router::new().route("/ws", get(ws_route::<S>));
    with_pages(r, pages).with_state(shared)
}

async fn ws_route<S: Sessions>(
    axum::extract::State(shared): axum::extract::State<Arc<S>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let gate = shared.gate().clone();
    gate.upgrade(ws, &headers, peer, move |socket| {
        shared.session(socket, peer)
    })
}

/// Serves `router` on `listener` until `shutdown` completes; then every
/// WebSocket session is told to end (`gate.shutdown`) and open requests
/// finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    gate: &Gate,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let addr = listener.local_addr()?;
    log_action!(info, "web_listen", Success, address = addr);
    let stop = gate.shutdown.clone();
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        stop.cancel();
    })
    .await?;
    log_action!(info, "web_close", Success, address = addr);
    Ok(())
}

/// A JSON string literal holding `s` (quotes, backslashes and control
/// characters escaped): what the pages' scripts read with `JSON.parse`.
pub fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                *k,
                HeaderValue::from_str(v).unwrap_or_else(|_| unreachable!()),
            );
        }
        h
    }

    #[test]
    fn only_this_servers_pages_may_open_a_websocket() {
        assert!(origin_allowed(&headers(&[
            ("host", "127.0.0.1:8081"),
            ("origin", "http://127.0.0.1:8081")
        ])));
        assert!(!origin_allowed(&headers(&[
            ("host", "127.0.0.1:8081"),
            ("origin", "http://evil.example")
        ])));
        assert!(!origin_allowed(&headers(&[
            ("host", "127.0.0.1:8081"),
            ("origin", "http://127.0.0.1:9999")
        ])));
        assert!(
            !origin_allowed(&headers(&[("origin", "http://127.0.0.1:8081")])),
            "no Host"
        );
        assert!(
            origin_allowed(&headers(&[("host", "127.0.0.1:8081")])),
            "not a browser"
        );
    }

    #[test]
    fn json_strings_escape_what_json_needs() {
        let mut s = String::new();
        json_string("a\"b\\c\nd\u{1}<img src=x>\u{2028}", &mut s);
        assert_eq!(s, r#""a\"b\\c\nd\u0001<img src=x>\u2028""#);
    }
}
