//! The TCP proxy over real loopback sockets.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use common::{BOUND, pattern, read_to_end_or_err, tcp_echo, tcp_recorder, tcp_sender};
use impair::units::Trigger;
use impair::{TcpProxy, TcpProxyConfig, TcpRules};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

fn cfg(upstream: SocketAddr) -> TcpProxyConfig {
    TcpProxyConfig::new("127.0.0.1:0".parse().unwrap(), upstream)
}

#[tokio::test]
async fn relays_a_megabyte_both_ways_intact() {
    let proxy = TcpProxy::start(cfg(tcp_echo().await)).await.unwrap();
    let mut c = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let data = pattern(1 << 20);
    let (mut r, mut w) = c.split();
    let send = async {
        w.write_all(&data).await.unwrap();
        w.shutdown().await.unwrap();
    };
    let mut back = Vec::new();
    let recv = r.read_to_end(&mut back);
    let ((), read) = timeout(BOUND, async { tokio::join!(send, recv) })
        .await
        .unwrap();
    read.unwrap();
    assert!(back == data, "echo differs");
    let s = proxy.shutdown().await;
    assert_eq!(s.connections, 1);
    assert_eq!(
        (s.dirs.up.bytes_in, s.dirs.up.bytes_out),
        (1 << 20, 1 << 20)
    );
    assert_eq!(s.dirs.down.bytes_out, 1 << 20);
}

#[tokio::test]
async fn chop_1_delivers_the_stream_intact_one_byte_per_write() {
    let (up, rec) = tcp_recorder().await;
    let mut c = cfg(up);
    c.rules.up = TcpRules {
        chop: Some(1),
        ..TcpRules::default()
    };
    let proxy = TcpProxy::start(c).await.unwrap();
    let mut client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let data = pattern(3000);
    client.write_all(&data).await.unwrap();
    client.shutdown().await.unwrap();
    let got = timeout(BOUND, rec).await.unwrap().unwrap();
    assert!(got.bytes == data);
    assert!(got.ended_by.is_ok());
    let s = proxy.shutdown().await;
    assert_eq!(s.dirs.up.writes, 3000, "one write per byte");
    assert_eq!(s.dirs.up.bytes_out, 3000);
}

#[tokio::test]
async fn chop_with_a_pause_reaches_the_receiver_in_small_reads() {
    let (up, rec) = tcp_recorder().await;
    let mut c = cfg(up);
    c.rules.up = TcpRules::chopped(3, Duration::from_millis(1));
    let proxy = TcpProxy::start(c).await.unwrap();
    let mut client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    client.write_all(&pattern(300)).await.unwrap();
    client.shutdown().await.unwrap();
    let got = timeout(BOUND, rec).await.unwrap().unwrap();
    assert_eq!(got.bytes, pattern(300));
    // Reads can merge on the receiver, never exceed what was written at once.
    assert!(got.reads > 1);
    assert_eq!(proxy.shutdown().await.dirs.up.writes, 100);
}

#[tokio::test]
async fn reset_after_n_bytes_resets_both_sides_after_exactly_n() {
    let (up, rec) = tcp_recorder().await;
    let mut c = cfg(up);
    c.rules.up = TcpRules {
        reset: Some(Trigger::Bytes(100)),
        ..TcpRules::default()
    };
    let proxy = TcpProxy::start(c).await.unwrap();
    let mut client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    client.write_all(&pattern(1000)).await.unwrap();
    let got = timeout(BOUND, rec).await.unwrap().unwrap();
    assert_eq!(got.bytes, pattern(100), "exactly the first 100 bytes");
    assert_eq!(got.ended_by.unwrap_err().kind(), ErrorKind::ConnectionReset);
    let (_, end) = timeout(BOUND, read_to_end_or_err(&mut client))
        .await
        .unwrap();
    assert_eq!(end.unwrap_err().kind(), ErrorKind::ConnectionReset);
    let s = proxy.shutdown().await;
    assert_eq!((s.dirs.up.resets, s.dirs.up.bytes_out), (1, 100));
}

#[tokio::test]
async fn close_after_n_bytes_gives_the_receiver_n_bytes_then_eof() {
    let up = tcp_sender(pattern(500)).await;
    let mut c = cfg(up);
    c.rules.down = TcpRules {
        close: Some(Trigger::Bytes(50)),
        ..TcpRules::default()
    };
    let proxy = TcpProxy::start(c).await.unwrap();
    let mut client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let (bytes, end) = timeout(BOUND, read_to_end_or_err(&mut client))
        .await
        .unwrap();
    assert_eq!(bytes, pattern(50));
    assert!(end.is_ok(), "a clean FIN, not a reset: {end:?}");
    assert_eq!(proxy.shutdown().await.dirs.down.closes, 1);
}

#[tokio::test]
async fn reset_after_a_time() {
    let (up, rec) = tcp_recorder().await;
    let mut c = cfg(up);
    c.rules.up = TcpRules {
        reset: Some(Trigger::After(Duration::from_millis(50))),
        ..TcpRules::default()
    };
    let proxy = TcpProxy::start(c).await.unwrap();
    let mut client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    client.write_all(b"before").await.unwrap();
    let got = timeout(BOUND, rec).await.unwrap().unwrap();
    assert_eq!(got.bytes, b"before");
    assert_eq!(got.ended_by.unwrap_err().kind(), ErrorKind::ConnectionReset);
    let (_, end) = timeout(BOUND, read_to_end_or_err(&mut client))
        .await
        .unwrap();
    assert_eq!(end.unwrap_err().kind(), ErrorKind::ConnectionReset);
    proxy.shutdown().await;
}

#[tokio::test]
async fn coalesce_merges_small_writes_into_one() {
    let (up, rec) = tcp_recorder().await;
    let mut c = cfg(up);
    c.rules.up = TcpRules::coalesced(Duration::from_millis(300));
    let proxy = TcpProxy::start(c).await.unwrap();
    let mut client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    client.set_nodelay(true).unwrap();
    for i in 0..10u8 {
        client.write_all(&[i; 7]).await.unwrap();
    }
    client.shutdown().await.unwrap();
    let got = timeout(BOUND, rec).await.unwrap().unwrap();
    assert_eq!(got.bytes.len(), 70);
    assert_eq!(got.reads, 1, "ten messages in one segment");
    assert_eq!(proxy.shutdown().await.dirs.up.writes, 1);
}

#[tokio::test]
async fn stall_then_resume_loses_nothing() {
    let (up, rec) = tcp_recorder().await;
    let mut c = cfg(up);
    c.rules.up = TcpRules {
        stall: Some(Trigger::Bytes(10)),
        stall_for: Some(Duration::from_millis(50)),
        latency: Duration::from_millis(2),
        jitter: Duration::from_millis(2),
        bandwidth: Some(1_000_000),
        ..TcpRules::default()
    };
    let proxy = TcpProxy::start(c).await.unwrap();
    let mut client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    for chunk in pattern(20_000).chunks(1000) {
        client.write_all(chunk).await.unwrap();
    }
    client.shutdown().await.unwrap();
    let got = timeout(BOUND, rec).await.unwrap().unwrap();
    assert_eq!(got.bytes, pattern(20_000));
    assert_eq!(proxy.shutdown().await.dirs.up.stalls, 1);
}

#[tokio::test]
async fn half_close_is_passed_on() {
    // The upstream answers only after the client's FIN reaches it.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).await.unwrap();
        s.write_all(format!("got {}", all.len()).as_bytes())
            .await
            .unwrap();
    });
    let proxy = TcpProxy::start(cfg(up)).await.unwrap();
    let mut client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    client.write_all(&pattern(12345)).await.unwrap();
    client.shutdown().await.unwrap();
    let (bytes, end) = timeout(BOUND, read_to_end_or_err(&mut client))
        .await
        .unwrap();
    assert_eq!(bytes, b"got 12345");
    assert!(end.is_ok());
    proxy.shutdown().await;
}

#[tokio::test]
async fn unreachable_upstream_is_counted_and_the_client_closed() {
    // Bind then drop: nothing listens on that port.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = TcpProxy::start(cfg(dead)).await.unwrap();
    let mut client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let (bytes, _) = timeout(BOUND, read_to_end_or_err(&mut client))
        .await
        .unwrap();
    assert!(bytes.is_empty());
    let s = proxy.shutdown().await;
    assert_eq!((s.connections, s.upstream_failures), (1, 1));
}

#[tokio::test]
async fn many_connections_at_once_stay_separate() {
    let proxy = TcpProxy::start(cfg(tcp_echo().await)).await.unwrap();
    let addr = proxy.local_addr();
    let tasks: Vec<_> = (0..50u8)
        .map(|id| {
            tokio::spawn(async move {
                let mut c = TcpStream::connect(addr).await.unwrap();
                let msg = vec![id; 1000];
                c.write_all(&msg).await.unwrap();
                let mut back = vec![0u8; 1000];
                timeout(BOUND, c.read_exact(&mut back))
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(back, msg);
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(proxy.shutdown().await.connections, 50);
}
