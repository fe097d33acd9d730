//! The chat page's WebSocket (issue #18) with a WebSocket client in Rust,
//! beside TCP relay clients on the same sequencer. (The page itself in a real
//! browser is for the browser tests.)
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use netkit::testing::Served;
use relay::server::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

mod common;
use common::*;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn start() -> (SocketAddr, SocketAddr, Served<()>) {
    start_with(Config::default()).await
}

async fn start_with(config: Config) -> (SocketAddr, SocketAddr, Served<()>) {
    start_with_web(config).await
}

async fn ws(
    web: SocketAddr,
    origin: Option<&str>,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut req = format!("ws://{web}/ws").into_client_request().unwrap();
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse().unwrap());
    }
    tokio_tungstenite::connect_async(req).await.map(|(s, _)| s)
}

/// The next JSON message's text.
async fn next_text(s: &mut Ws) -> String {
    loop {
        match timeout(BOUND, s.next()).await.unwrap().unwrap().unwrap() {
            Message::Text(t) => return t.to_string(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// A number field of a JSON message (the server writes them as `"key":N`).
fn num(json: &str, key: &str) -> u64 {
    let at = json
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("{key} in {json}"));
    json[at + key.len() + 3..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

fn str_field(json: &str, key: &str) -> String {
    let at = json
        .find(&format!("\"{key}\":\""))
        .unwrap_or_else(|| panic!("{key} in {json}"));
    let rest = &json[at + key.len() + 4..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// Reads until an event whose JSON contains `needle`; returns it.
async fn until(s: &mut Ws, needle: &str) -> String {
    loop {
        let m = next_text(s).await;
        if m.contains(needle) {
            return m;
        }
    }
}

#[tokio::test]
async fn the_page_is_served_from_the_binary_with_a_strict_policy() {
    let (_, web, server) = start().await;
    let mut s = TcpStream::connect(web).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut page = String::new();
    s.read_to_string(&mut page).await.unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    let lower = page.to_ascii_lowercase();
    assert!(
        lower.contains("content-security-policy: default-src 'self'; script-src 'self'"),
        "{page}"
    );
    assert!(page.contains(r#"<script src="/chat.js" defer></script>"#));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "nothing fetched from elsewhere"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_line_reaches_tcp_clients_with_one_number_and_theirs_reach_it() {
    let (addr, web, server) = start().await;
    let (t1, mut t1_seen) = native(addr, "tcp1");
    let (_t2, mut t2_seen) = native(addr, "tcp2");
    let mut b = ws(web, None).await.unwrap();
    b.send(Message::Text("hello 0 0 0 navegador".into()))
        .await
        .unwrap();
    let welcome = until(&mut b, "\"welcome\"").await;
    assert_eq!(str_field(&welcome, "name"), "navegador");
    b.send(Message::Text("chat 1 <img src=x onerror=alert(1)>".into()))
        .await
        .unwrap();
    let mine = until(&mut b, "onerror").await;
    assert!(
        mine.contains(r#""text":"<img src=x onerror=alert(1)>""#),
        "as text: {mine}"
    );
    let seq = num(&mine, "seq");
    let d1 = delivered(&mut t1_seen, "<img src=x onerror=alert(1)>").await;
    let d2 = delivered(&mut t2_seen, "<img src=x onerror=alert(1)>").await;
    assert_eq!((d1.seq, d2.seq), (seq, seq), "one number for everyone");
    assert_eq!(d1.name, "navegador");
    t1.send("hola navegador".into()).await.unwrap();
    let theirs = until(&mut b, "hola navegador").await;
    assert_eq!(str_field(&theirs, "name"), "tcp1");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_resumes_with_no_gap_no_duplicate_and_a_resent_line_once() {
    let (addr, web, server) = start().await;
    let (t1, mut t1_seen) = native(addr, "tcp1");
    let mut b = ws(web, None).await.unwrap();
    b.send(Message::Text("hello 0 0 0 página".into()))
        .await
        .unwrap();
    let welcome = until(&mut b, "\"welcome\"").await;
    let (id, token) = (num(&welcome, "client_id"), str_field(&welcome, "token"));
    b.send(Message::Text("chat 1 antes".into())).await.unwrap();
    let before = until(&mut b, "antes").await;
    let last = num(&before, "seq");
    b.send(Message::Text(format!("ack {last}").into()))
        .await
        .unwrap();
    // The page goes away (a reload) with line 2 sent; meanwhile tcp1 speaks.
    b.send(Message::Text("chat 2 durante".into()))
        .await
        .unwrap();
    drop(b);
    delivered(&mut t1_seen, "durante").await;
    t1.send("mientras tanto".into()).await.unwrap();
    delivered(&mut t1_seen, "mientras tanto").await;
    // The reloaded page resumes from its last number and resends line 2.
    let mut b = ws(web, None).await.unwrap();
    b.send(Message::Text(
        format!("hello {id} {token} {last} página").into(),
    ))
    .await
    .unwrap();
    let welcome = until(&mut b, "\"welcome\"").await;
    assert_eq!(num(&welcome, "client_id"), id);
    b.send(Message::Text("chat 2 durante".into()))
        .await
        .unwrap();
    b.send(Message::Text("chat 3 después".into()))
        .await
        .unwrap();
    let mut seqs = Vec::new();
    let mut texts = Vec::new();
    loop {
        let m = next_text(&mut b).await;
        seqs.push(num(&m, "seq"));
        if m.contains("\"kind\":\"chat\"") {
            texts.push(str_field(&m, "text"));
        }
        if m.contains("después") {
            break;
        }
    }
    assert_eq!(seqs[0], last + 1, "no gap: {seqs:?}");
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "no gap, no duplicate: {seqs:?}"
    );
    assert_eq!(
        texts,
        ["durante", "mientras tanto", "después"],
        "line 2 once"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_websocket_from_a_foreign_origin_is_refused() {
    let (_, web, server) = start().await;
    let err = ws(web, Some("http://evil.example")).await.unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    assert!(
        ws(web, Some(&format!("http://{web}"))).await.is_ok(),
        "its own page may"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_100_mb_message_is_refused_from_its_header() {
    let (_, web, server) = start().await;
    let mut s = TcpStream::connect(web).await.unwrap();
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: {web}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = vec![0u8; 1024];
    let n = timeout(BOUND, s.read(&mut head)).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 101"));
    // A masked text frame announcing 100 MB; only 64 KiB of it follow.
    let mut frame = vec![0x81, 0xFF];
    frame.extend((100u64 << 20).to_be_bytes());
    frame.extend([1, 2, 3, 4]);
    frame.extend(vec![b'a'; 64 << 10]);
    let _ = s.write_all(&frame).await;
    // The server closes without waiting for the rest.
    let closed = timeout(BOUND, async {
        let mut buf = vec![0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "refused before the 100 MB came");
    server.stop().await;
}

#[tokio::test]
async fn the_connection_limit_holds_and_shutdown_ends_every_session() {
    let (_, web, server) = start_with(Config {
        max_clients: 2,
        ..Config::default()
    })
    .await;
    let mut a = ws(web, None).await.unwrap();
    let mut b = ws(web, None).await.unwrap();
    for (s, name) in [(&mut a, "a"), (&mut b, "b")] {
        s.send(Message::Text(format!("hello 0 0 0 {name}").into()))
            .await
            .unwrap();
        until(s, "\"welcome\"").await;
    }
    let err = ws(web, None).await.unwrap_err();
    assert!(err.to_string().contains("503"), "a third is refused: {err}");
    // The server stops: both sessions end.
    server.stop().await;
    for s in [&mut a, &mut b] {
        let ended = timeout(BOUND, async {
            loop {
                match s.next().await {
                    None | Some(Err(_) | Ok(Message::Close(_))) => break,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "the session ends with the server");
    }
}
