//! The lottery server over real loopback sockets, byte by byte.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::time::Duration;

use impair::units::Trigger;
use impair::{TcpProxy, TcpProxyConfig, TcpRules};
use lottery::Bet;
use lottery::client::{AgencyConfig, run_agency};
use lottery::proto::Request;
use lottery::server::{Server, ServerConfig};
use lottery::store::{batch_recorded, read_all};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

mod common;
use common::*;

#[tokio::test]
async fn seed_compatibility_bytes() {
    let srv = start(5).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let mut msg = vec![0x02, 0x05, 0x00, 0x00, 0x00, 0x32];
    msg.extend_from_slice(SEED_BET.as_bytes());
    s.write_all(&msg).await.unwrap();
    let mut reply = [0u8; 5];
    timeout(BOUND, s.read_exact(&mut reply))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply, [0x01, 0, 0, 0, 0]);
    drop(s);
    let (db, _dir) = srv.stop().await;
    let all = read_all(&db).unwrap();
    assert_eq!(all, vec![(5, Bet::parse(SEED_BET).unwrap())]);
}

#[tokio::test]
async fn one_byte_per_segment_through_impair() {
    let srv = start(5).await;
    let mut cfg = TcpProxyConfig::new("127.0.0.1:0".parse().unwrap(), srv.addr);
    cfg.rules.up = TcpRules::chopped(1, Duration::from_micros(200));
    let proxy = TcpProxy::start(cfg).await.unwrap();
    let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let msg = batch(1, 0, false, vec![bet("11111111", 1), bet("22222222", 2)]);
    s.write_all(&msg).await.unwrap();
    assert_eq!(response(&mut s).await, (1, vec![]));
    let summary = proxy.shutdown().await;
    assert_eq!(
        summary.dirs.up.writes,
        msg.len() as u64,
        "every byte was its own write"
    );
    drop(s);
    let (db, _dir) = srv.stop().await;
    assert_eq!(
        stored_docs(&db),
        vec![(1, "11111111".into()), (1, "22222222".into())]
    );
}

#[tokio::test]
async fn ten_messages_in_one_segment_through_impair() {
    let srv = start(5).await;
    let mut cfg = TcpProxyConfig::new("127.0.0.1:0".parse().unwrap(), srv.addr);
    cfg.rules.up = TcpRules::coalesced(Duration::from_millis(300));
    let proxy = TcpProxy::start(cfg).await.unwrap();
    let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    s.set_nodelay(true).unwrap();
    for seq in 0..10u32 {
        s.write_all(&batch(2, seq, false, vec![bet(&format!("{seq:08}"), 5)]))
            .await
            .unwrap();
    }
    for _ in 0..10 {
        assert_eq!(response(&mut s).await, (1, vec![]));
    }
    assert_eq!(
        proxy.shutdown().await.dirs.up.writes,
        1,
        "the ten arrived in one write"
    );
    drop(s);
    let (db, _dir) = srv.stop().await;
    assert_eq!(stored_docs(&db).len(), 10);
}

#[tokio::test]
async fn announced_length_over_the_limit_gets_an_error_and_a_close() {
    let srv = start(5).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    // 4 GiB - 1 announced; only the header is sent.
    s.write_all(&[0x01, 0x01, 0xff, 0xff, 0xff, 0xff])
        .await
        .unwrap();
    let (code, text) = response(&mut s).await;
    assert_eq!(code, 4);
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("4294967295 bytes exceeds the limit of 8186"),
        "{text}"
    );
    expect_eof(&mut s).await;
    // Others are unaffected.
    let mut t = TcpStream::connect(srv.addr).await.unwrap();
    t.write_all(&batch(1, 0, false, vec![bet("1", 1)]))
        .await
        .unwrap();
    assert_eq!(response(&mut t).await, (1, vec![]));
    drop(t);
    srv.stop().await;
}

#[tokio::test]
async fn malformed_bet_rejects_the_whole_batch_and_the_connection_goes_on() {
    let srv = start(5).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let payload = "Ana,Pérez,1,1990-01-01,5\0Luis,Gómez,2,1990-13-01,6";
    let mut msg = vec![0x01, 0x03];
    msg.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    msg.extend_from_slice(payload.as_bytes());
    s.write_all(&msg).await.unwrap();
    let (code, text) = response(&mut s).await;
    assert_eq!(code, 4);
    assert_eq!(
        String::from_utf8(text).unwrap(),
        "bet 2 of the batch: nacimiento \"1990-13-01\" is not a date YYYY-MM-DD"
    );
    // Invalid UTF-8 too.
    let mut bad = vec![0x01, 0x03, 0, 0, 0, 5];
    bad.extend_from_slice(b"\xff,a,b");
    s.write_all(&bad).await.unwrap();
    let (code, text) = response(&mut s).await;
    assert_eq!(code, 4);
    assert!(String::from_utf8(text).unwrap().contains("UTF-8"));
    // The connection still works, and nothing of the bad batches was stored.
    s.write_all(&batch(3, 0, false, vec![bet("7", 7)]))
        .await
        .unwrap();
    assert_eq!(response(&mut s).await, (1, vec![]));
    drop(s);
    let (db, _dir) = srv.stop().await;
    assert_eq!(stored_docs(&db), vec![(3, "7".into())]);
}

#[tokio::test]
async fn unknown_code_and_eof_mid_message_close_only_that_connection() {
    let srv = start(5).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(&[0x09, 0x01, 0, 0, 0, 0]).await.unwrap();
    let (code, text) = response(&mut s).await;
    assert_eq!(code, 4);
    assert!(
        String::from_utf8(text)
            .unwrap()
            .contains("unknown message code 9")
    );
    expect_eof(&mut s).await;
    let mut t = TcpStream::connect(srv.addr).await.unwrap();
    let msg = batch(1, 0, false, vec![bet("1", 1)]);
    t.write_all(&msg[..msg.len() - 3]).await.unwrap();
    drop(t); // EOF in the middle of the payload
    let (db, _dir) = srv.stop().await;
    assert!(
        stored_docs(&db).is_empty(),
        "a truncated message stores nothing"
    );
}

#[tokio::test]
async fn a_retried_batch_after_a_dropped_connection_is_stored_once() {
    let srv = start(5).await;
    let msg = batch(4, 0, false, vec![bet("40000000", 1), bet("40000001", 2)]);
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(&msg).await.unwrap();
    // The ack is "lost": read it only to know the first copy is durable, then
    // drop the connection as if it had never arrived.
    assert_eq!(response(&mut s).await, (1, vec![]));
    drop(s);
    let mut again = TcpStream::connect(srv.addr).await.unwrap();
    again.write_all(&msg).await.unwrap();
    assert_eq!(
        response(&mut again).await,
        (1, vec![]),
        "the retry is acknowledged too"
    );
    drop(again);
    let (db, _dir) = srv.stop().await;
    assert_eq!(stored_docs(&db).len(), 2, "stored once");
    assert!(batch_recorded(&db, 4, 0).unwrap());
}

#[tokio::test]
async fn agencies_whose_connections_keep_breaking_store_every_bet_exactly_once() {
    let srv = start(2).await;
    // Every connection is reset after 53 bytes towards the agency: ten acks and
    // a bit, so pipelined batches are regularly stored without their ack
    // arriving, and the agency must resend them.
    let mut cfg = TcpProxyConfig::new("127.0.0.1:0".parse().unwrap(), srv.addr);
    cfg.rules.down = TcpRules {
        reset: Some(Trigger::Bytes(53)),
        ..TcpRules::default()
    };
    let proxy = TcpProxy::start(cfg).await.unwrap();
    let mut tasks = Vec::new();
    for agency in 1..=2u8 {
        let bets: Vec<Bet> = (0..500)
            .map(|i| bet(&format!("{agency}{i:07}"), 100 + (i % 50) as u16))
            .collect();
        let mut a = AgencyConfig::new(agency, &proxy.local_addr().to_string());
        a.max_amount = 5;
        a.window = 16;
        a.backoff = Duration::from_millis(1);
        a.max_backoff = Duration::from_millis(5);
        tasks.push(tokio::spawn(async move {
            (run_agency(&a, &bets).await.unwrap(), bets)
        }));
    }
    let mut reconnects = 0;
    for t in tasks {
        let (report, _) = timeout(BOUND, t).await.unwrap().unwrap();
        assert!(report.winners.is_empty());
        reconnects += report.reconnects;
    }
    assert!(
        reconnects > 10,
        "the proxy did break connections ({reconnects})"
    );
    let resets = proxy.shutdown().await.dirs.down.resets;
    assert!(resets > 10);
    let (db, _dir) = srv.stop().await;
    let docs = stored_docs(&db);
    assert_eq!(docs.len(), 1000, "no bet lost, none stored twice");
    let mut unique: Vec<_> = docs.iter().map(|(_, d)| d.clone()).collect();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 1000);
}

#[tokio::test]
async fn the_draw_waits_for_the_last_agency() {
    let srv = start(3).await;
    let agency = |id: u8, bets: Vec<Bet>| {
        let a = AgencyConfig::new(id, &srv.addr.to_string());
        tokio::spawn(async move { run_agency(&a, &bets).await.unwrap() })
    };
    let first = agency(1, vec![bet("10000001", 7574), bet("10000002", 1)]);
    let second = agency(2, vec![bet("20000001", 3)]);
    // Both agencies have sent everything and wait for winners: nothing can
    // make a draw now but a wrong one.
    timeout(BOUND, async {
        while srv.draw.waiting() < 2 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("both agencies ask for winners");
    assert!(
        srv.draw.winners().is_none(),
        "no draw before every agency is done"
    );
    assert!(
        !first.is_finished() && !second.is_finished(),
        "nobody learns winners early"
    );
    assert_eq!(srv.draw.done_count(), 2);
    let third = agency(3, vec![bet("30000001", 7574)]);
    let (r1, r2, r3) = (
        timeout(BOUND, first).await,
        timeout(BOUND, second).await,
        timeout(BOUND, third).await,
    );
    assert_eq!(r1.unwrap().unwrap().winners, vec!["10000001"]);
    assert!(r2.unwrap().unwrap().winners.is_empty());
    assert_eq!(r3.unwrap().unwrap().winners, vec!["30000001"]);
    srv.stop().await;
}

#[tokio::test]
async fn winners_are_per_agency_even_for_a_shared_documento() {
    let srv = start(3).await;
    let shared = "12345678";
    let plan = [
        (
            1u8,
            vec![bet(shared, 7574), bet(shared, 7574), bet("11111111", 7574)],
        ),
        (2, vec![bet(shared, 1)]),
        (3, vec![bet(shared, 7574), bet("33333333", 2)]),
    ];
    let tasks: Vec<_> = plan
        .into_iter()
        .map(|(id, bets)| {
            let a = AgencyConfig::new(id, &srv.addr.to_string());
            tokio::spawn(async move { run_agency(&a, &bets).await.unwrap() })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        winners.push(timeout(BOUND, t).await.unwrap().unwrap().winners);
    }
    assert_eq!(winners[0], vec![shared, shared, "11111111"]);
    assert!(winners[1].is_empty());
    assert_eq!(winners[2], vec![shared]);
    srv.stop().await;
}

#[tokio::test]
async fn the_server_keeps_serving_after_the_draw() {
    let srv = start(1).await;
    let a = AgencyConfig::new(1, &srv.addr.to_string());
    let r = timeout(BOUND, run_agency(&a, &[bet("1", 7574)]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.winners, vec!["1"]);
    // A late batch is still stored and acknowledged, and winners still answered.
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(&batch(9, 0, true, vec![bet("9", 9)]))
        .await
        .unwrap();
    assert_eq!(response(&mut s).await, (1, vec![]));
    s.write_all(&encode(&Request::AskWinners {
        agency: 9,
        wait_ms: None,
    }))
    .await
    .unwrap();
    assert_eq!(
        response(&mut s).await,
        (2, vec![]),
        "the late batch did not change the draw"
    );
    drop(s);
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(&encode(&Request::AskWinners {
        agency: 1,
        wait_ms: None,
    }))
    .await
    .unwrap();
    assert_eq!(response(&mut s).await, (2, b"1".to_vec()));
    drop(s);
    srv.stop().await;
}

#[tokio::test]
async fn a_client_started_before_the_server_retries_until_it_is_up() {
    // The port stays ours throughout: `held` is bound (SO_REUSEADDR) but never
    // listens, so nobody else can take it; `early` listens on it too until
    // the agency's first attempt has arrived, which it then drops: the
    // agency must try again, and finds the real server there.
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.set_reuseaddr(true).unwrap();
    held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = held.local_addr().unwrap();
    let early = tokio::net::TcpSocket::new_v4().unwrap();
    early.set_reuseaddr(true).unwrap();
    early.bind(addr).unwrap();
    let early = early.listen(8).unwrap();
    let mut a = AgencyConfig::new(1, &addr.to_string());
    a.backoff = Duration::from_millis(20);
    let client = tokio::spawn(async move { run_agency(&a, &[bet("5", 7574)]).await });
    let (first_try, _) = timeout(BOUND, early.accept()).await.unwrap().unwrap();
    drop((first_try, early));
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ServerConfig::new(addr, dir.path().join("b.db"));
    cfg.agencies = 1;
    let server = Server::bind(cfg).await.unwrap();
    drop(held);
    let served = netkit::testing::Served::spawn(addr, |shutdown| server.run(shutdown));
    let report = timeout(BOUND, client).await.unwrap().unwrap().unwrap();
    assert!(report.reconnects >= 1);
    assert_eq!(report.winners, vec!["5"]);
    served.stop().await.unwrap();
}
