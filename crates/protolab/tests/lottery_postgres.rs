//! `protolab lottery` on PostgreSQL as processes: several `serve` processes
//! sharing one database with one SIGKILLed mid-ingest, the store chosen by
//! flag or environment, and one-line errors for a bad or unreachable store.
//! Without PostgreSQL these skip with a message, unless PROTOLAB_REQUIRE_PG is
//! set (CI), where that fails.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use common::{protolab, spawn_listening, stderr_text, stdout_text, wait_bounded};

use std::process::Stdio;

use lottery::generate::{GenConfig, generate};
use lottery::pg_sandbox::Sandbox;
use lottery::simulate::expected_winners;
use lottery::store::{Backend, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_server_processes_one_sigkilled_mid_ingest_lose_nothing() {
    let Some(sandbox) = Sandbox::for_tests() else {
        return;
    };
    let target = sandbox.fresh_database("killone").await.unwrap();
    let url = sandbox.url(target.config().get_dbname().unwrap_or_default());
    let mut child = protolab()
        .args(["lottery", "simulate", "--servers", "3", "--kill-one"])
        .args(["--bets", "60000", "--store", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = tokio::task::spawn_blocking(move || {
        let out = stdout_text(&mut child);
        let status = wait_bounded(&mut child);
        (status, out, stderr_text(&mut child))
    })
    .await
    .unwrap();
    let (status, out, err) = out;
    assert!(status.success(), "{out}\n{err}");
    assert!(out.contains("SIGKILLed the server at"), "{out}");
    // Read back independently of the command's own check.
    let data = generate(&GenConfig {
        agencies: 5,
        bets: 60_000,
        winner_share: 0.0001,
        seed: 1,
    });
    let (store, _w, _) = Store::open(&Backend::Postgres(target), 5).await.unwrap();
    let stored = store.all_bets().await.unwrap();
    assert_eq!(stored.len(), 60_000, "none lost, none twice");
    for (agency, bets) in &data {
        let mine = stored.iter().filter(|(a, _)| a == agency).map(|(_, b)| b);
        assert!(
            mine.eq(bets.iter()),
            "agency {agency}: its bets, once, in order"
        );
    }
    let winners = store.winners().await.unwrap();
    for (agency, expected) in expected_winners(&data) {
        assert_eq!(
            winners.get(&agency).cloned().unwrap_or_default(),
            expected,
            "agency {agency}"
        );
    }
    assert!(store.state().await.unwrap().drawn);
    assert!(out.contains("totals and winners unchanged"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_comes_from_the_flag_or_lottery_store() {
    let Some(sandbox) = Sandbox::for_tests() else {
        return;
    };
    let target = sandbox.fresh_database("fromenv").await.unwrap();
    let url = sandbox.url(target.config().get_dbname().unwrap_or_default());
    let mut cmd = protolab();
    cmd.args(["lottery", "serve", "--address", "127.0.0.1", "--port", "0"])
        .env("LOTTERY_STORE", &url)
        .stderr(Stdio::null());
    let (mut child, _out, addr) = spawn_listening(&mut cmd);
    assert!(addr.port() > 0);
    // The schema is there: the server made it on start.
    let (store, _w, _) = Store::open(&Backend::Postgres(target), 5).await.unwrap();
    assert_eq!(store.count().await.unwrap(), 0);
    common::signal(&child, "-TERM");
    assert!(wait_bounded(&mut child).success());
}

#[test]
fn a_bad_or_unreachable_store_is_one_line_and_no_server() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for (url, expect) in [
        ("mysql://a@b/c".to_string(), "not a postgres:// URL"),
        (
            format!("postgres://lottery:secret@127.0.0.1:{port}/x"),
            "cannot reach PostgreSQL at postgres://lottery@127.0.0.1",
        ),
    ] {
        let mut child = protolab()
            .args(["lottery", "serve", "--port", "0", "--store", &url])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = wait_bounded(&mut child);
        let err = stderr_text(&mut child);
        assert!(!status.success());
        assert!(err.contains(expect), "{url}: {err}");
        assert!(!err.contains("secret"), "{err}");
        let error_lines = err.lines().filter(|l| l.contains("error")).count();
        assert_eq!(error_lines, 1, "{err}");
        assert!(stdout_text(&mut child).is_empty(), "never listening");
    }
}
