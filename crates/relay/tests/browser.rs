//! The chat page in a real browser (issue #18): headless Chromium driven
//! through WebDriver (`chromedriver`), beside TCP relay clients. Without
//! chromedriver these skip with a message, unless PROTOLAB_REQUIRE_BROWSER is
//! set (CI installs Chromium and sets it), where that fails. With
//! PROTOLAB_SCREENSHOTS=DIR the page's picture is saved there (the README's).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use netkit::testing::Served;
use relay::server::Config;
use web::webdriver::{Driver, keep_screenshot};

mod common;
use common::*;

async fn start() -> (SocketAddr, SocketAddr, Served<()>) {
    start_with_web(Config::default()).await
}

async fn page_lines(c: &Client) -> Vec<String> {
    let v = c
        .execute(
            "return Array.from(document.querySelectorAll('#log li')).map(li => li.textContent);",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(v).unwrap()
}

/// Waits until the page's log holds a line containing `needle`.
async fn until_shown(c: &Client, needle: &str) -> Vec<String> {
    let start = Instant::now();
    loop {
        let lines = page_lines(c).await;
        if lines.iter().any(|l| l.contains(needle)) {
            return lines;
        }
        assert!(start.elapsed() < BOUND, "{needle:?} never shown: {lines:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn until_status(c: &Client, needle: &str) {
    let start = Instant::now();
    loop {
        let text = c
            .find(Locator::Id("status"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains(needle) {
            return;
        }
        assert!(
            start.elapsed() < BOUND,
            "status {text:?}, waiting for {needle:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn say(c: &Client, text: &str) {
    let line = c.find(Locator::Id("line")).await.unwrap();
    line.send_keys(text).await.unwrap();
    c.find(Locator::Css("#send button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_page_is_a_full_participant() {
    let Some(d) = Driver::start() else { return };
    let (addr, web, server) = start().await;
    let (t1, mut t1_seen) = native(addr, "tcp1");
    let (_t2, mut t2_seen) = native(addr, "tcp2");
    let c = d.browser(900, 640).await;
    c.goto(&format!("http://{web}/")).await.unwrap();
    c.find(Locator::Id("name"))
        .await
        .unwrap()
        .send_keys("navegador")
        .await
        .unwrap();
    c.find(Locator::Css("#join button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until_status(&c, "connected as navegador").await;

    // A line typed in the page: every TCP client gets it under one number,
    // and HTML in it is shown as text and runs nothing.
    let html = "<img src=x onerror=alert(1)>";
    say(&c, html).await;
    let d1 = delivered(&mut t1_seen, html).await;
    let d2 = delivered(&mut t2_seen, html).await;
    assert_eq!(d1.seq, d2.seq);
    assert_eq!(d1.name, "navegador");
    let lines = until_shown(&c, html).await;
    assert!(
        lines.contains(&format!("[{}]navegador:{html}", d1.seq)),
        "the same number on the page: {lines:?}"
    );
    let imgs = c
        .execute("return document.querySelectorAll('img').length;", vec![])
        .await
        .unwrap();
    assert_eq!(imgs, serde_json::json!(0), "no element made from the text");

    // A TCP client's line appears on the page.
    t1.send("hola desde tcp".into()).await.unwrap();
    let before = until_shown(&c, "hola desde tcp").await;
    keep_screenshot("relay-chat.png", &c.screenshot().await.unwrap());

    // A reload shows the history again, once, and resumes.
    c.refresh().await.unwrap();
    until_status(&c, "connected as navegador").await;
    t1.send("después de recargar".into()).await.unwrap();
    let after = until_shown(&c, "después de recargar").await;
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "history kept: {after:?}"
    );
    assert_eq!(
        after
            .iter()
            .filter(|l| l.contains("hola desde tcp"))
            .count(),
        1,
        "no duplicate: {after:?}"
    );
    let seqs: Vec<u64> = after
        .iter()
        .map(|l| l[1..l.find(']').unwrap()].parse().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "{seqs:?}");
    c.close().await.unwrap();
    server.stop().await;
}
