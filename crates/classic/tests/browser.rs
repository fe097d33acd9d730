//! The positions map in a real browser (issue #18): headless Chromium through
//! chromedriver beside TCP position clients. Skips without chromedriver unless
//! PROTOLAB_REQUIRE_BROWSER is set (CI), where that fails.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use classic::Kind;
use classic::server::{Options, run_with_web};
use fantoccini::key::Key;
use fantoccini::{Client, Locator};
use netkit::testing::Served;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use web::webdriver::{Driver, keep_screenshot};

const BOUND: Duration = Duration::from_secs(30);

async fn start() -> (SocketAddr, SocketAddr, Served<()>) {
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let web = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addrs = (tcp.local_addr().unwrap(), web.local_addr().unwrap());
    let server = Served::spawn(addrs.0, |shutdown| async move {
        run_with_web(tcp, Some(web), Options::new(Kind::Positions), shutdown)
            .await
            .unwrap();
    });
    (addrs.0, addrs.1, server)
}

async fn send_position(s: &mut TcpStream, x: i16, y: i16) {
    let mut b = x.to_le_bytes().to_vec();
    b.extend(y.to_le_bytes());
    s.write_all(&b).await.unwrap();
}

/// Reads broadcasts until one says `needle`.
async fn until_broadcast(s: &mut TcpStream, needle: &str) {
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    timeout(BOUND, async {
        while !seen.contains(needle) {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed; saw {seen:?}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {needle:?} in {seen:?}"));
}

/// The page's list of clients, one text line each.
async fn listed(c: &Client) -> Vec<String> {
    let v = c
        .execute(
            "return Array.from(document.querySelectorAll('#players li')).map(li => li.textContent);",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(v).unwrap()
}

async fn until_listed(c: &Client, what: &str, ok: impl Fn(&[String]) -> bool) -> Vec<String> {
    let start = Instant::now();
    loop {
        let l = listed(c).await;
        if ok(&l) {
            return l;
        }
        assert!(start.elapsed() < BOUND, "{what}: {l:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Dots on the map.
async fn dots(c: &Client) -> serde_json::Value {
    c.execute(
        "return document.querySelectorAll('#map circle').length;",
        vec![],
    )
    .await
    .unwrap()
}

fn id_at(list: &[String], at: &str) -> String {
    let line = list.iter().find(|l| l.contains(at)).unwrap();
    line.split(' ').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_map_shows_tcp_clients_and_the_browser_plays_with_them() {
    let Some(d) = Driver::start() else { return };
    let (tcp, web, server) = start().await;
    let c = d.browser(1000, 700).await;
    c.goto(&format!("http://{web}/")).await.unwrap();
    let start_wait = Instant::now();
    while c
        .find(Locator::Id("status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        != "connected"
    {
        assert!(start_wait.elapsed() < BOUND, "page never connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Two TCP clients appear, and move.
    let mut a = TcpStream::connect(tcp).await.unwrap();
    let mut b = TcpStream::connect(tcp).await.unwrap();
    send_position(&mut a, 3, 4).await;
    send_position(&mut b, -6, 2).await;
    let l = until_listed(&c, "both clients", |l| {
        l.iter().any(|x| x.contains("(3, 4)")) && l.iter().any(|x| x.contains("(-6, 2)"))
    })
    .await;
    let (id_a, id_b) = (id_at(&l, "(3, 4)"), id_at(&l, "(-6, 2)"));
    send_position(&mut a, 4, 4).await;
    until_listed(&c, "a moved", |l| l.contains(&format!("{id_a} (4, 4)"))).await;
    assert_eq!(dots(&c).await, serde_json::json!(2), "a dot each");

    // The browser joins as a player; its key presses reach the TCP clients.
    c.find(Locator::Id("play"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let l = until_listed(&c, "the page's player", |l| {
        l.iter().any(|x| x.contains("you"))
    })
    .await;
    let me = l
        .iter()
        .find(|x| x.contains("you"))
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    let body = c.find(Locator::Css("body")).await.unwrap();
    body.send_keys(&format!("{}{}", Key::Right, Key::Right))
        .await
        .unwrap();
    body.send_keys("w").await.unwrap();
    until_broadcast(&mut a, &format!("{me} (2, 1)")).await;
    until_listed(&c, "own move", |l| {
        l.iter().any(|x| x.starts_with(&format!("{me} (2, 1)")))
    })
    .await;
    keep_screenshot("positions-map.png", &c.screenshot().await.unwrap());

    // A TCP client leaving disappears.
    drop(b);
    until_listed(&c, "b gone", |l| !l.iter().any(|x| x.starts_with(&id_b))).await;
    assert_eq!(
        dots(&c).await,
        serde_json::json!(2),
        "a's and the page's own"
    );
    c.close().await.unwrap();
    server.stop().await;
}
