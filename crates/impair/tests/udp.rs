//! The UDP proxy over real loopback sockets.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{BOUND, udp_echo, wait_until};
use impair::{UdpProxy, UdpProxyConfig, UdpRules};
use netkit::units::Probability;
use tokio::net::UdpSocket;
use tokio::time::timeout;

fn localhost0() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn recv_u32(s: &UdpSocket) -> u32 {
    let mut buf = [0u8; 64];
    let n = timeout(BOUND, s.recv(&mut buf))
        .await
        .expect("echo in time")
        .unwrap();
    u32::from_be_bytes(buf[..n].try_into().unwrap())
}

#[tokio::test]
async fn relays_both_ways_without_rules() {
    let proxy = UdpProxy::start(UdpProxyConfig::new(localhost0(), udp_echo().await))
        .await
        .unwrap();
    let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    c.connect(proxy.local_addr()).await.unwrap();
    for i in 0..100u32 {
        c.send(&i.to_be_bytes()).await.unwrap();
        assert_eq!(recv_u32(&c).await, i);
    }
    let s = proxy.shutdown().await;
    assert_eq!(s.flows, 1);
    assert_eq!((s.dirs.up.seen, s.dirs.up.delivered), (100, 100));
    assert_eq!((s.dirs.down.seen, s.dirs.down.delivered), (100, 100));
    assert_eq!(s.dirs.up.bytes_delivered, 400);
}

#[tokio::test]
async fn drops_exactly_the_nth_datagram() {
    let mut cfg = UdpProxyConfig::new(localhost0(), udp_echo().await);
    cfg.rules.up = UdpRules {
        drop_nth: vec![5],
        ..UdpRules::default()
    };
    let proxy = UdpProxy::start(cfg).await.unwrap();
    let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    c.connect(proxy.local_addr()).await.unwrap();
    let mut echoed = Vec::new();
    for i in 1..=12u32 {
        c.send(&i.to_be_bytes()).await.unwrap();
        if i != 5 {
            // Echoes come back in order, so a wrongly relayed 5 would show up here.
            echoed.push(recv_u32(&c).await);
        }
    }
    assert_eq!(echoed, vec![1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12]);
    let s = proxy.shutdown().await;
    assert_eq!((s.dirs.up.dropped_nth, s.dirs.up.delivered), (1, 11));
}

#[tokio::test]
async fn clients_of_many_addresses_are_kept_apart() {
    let proxy = UdpProxy::start(UdpProxyConfig::new(localhost0(), udp_echo().await))
        .await
        .unwrap();
    let target = proxy.local_addr();
    let mut tasks = Vec::new();
    for id in 0..8u32 {
        // Four source addresses in 127/8, two ports each.
        let ip = format!("127.0.0.{}:0", 1 + id % 4);
        tasks.push(tokio::spawn(async move {
            let c = UdpSocket::bind(&ip).await.unwrap();
            c.connect(target).await.unwrap();
            for seq in 0..50u32 {
                c.send(&(id * 1000 + seq).to_be_bytes()).await.unwrap();
                let got = recv_u32(&c).await;
                assert_eq!(
                    got,
                    id * 1000 + seq,
                    "client {id} got another client's datagram"
                );
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let s = proxy.shutdown().await;
    assert_eq!(s.flows, 8);
    assert_eq!(s.dirs.down.delivered, 400);
}

/// Sends 300 numbered datagrams through a lossy proxy and returns which ones the
/// upstream received.
async fn lossy_run(seed: u64) -> BTreeSet<u32> {
    let upstream = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut cfg = UdpProxyConfig::new(localhost0(), upstream.local_addr().unwrap());
    cfg.seed = seed;
    cfg.rules.up = UdpRules {
        loss: Probability::new(0.3).unwrap(),
        ..UdpRules::default()
    };
    let proxy = UdpProxy::start(cfg).await.unwrap();
    let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    c.connect(proxy.local_addr()).await.unwrap();
    for i in 0..300u32 {
        c.send(&i.to_be_bytes()).await.unwrap();
        // One at a time, so no datagram is lost to a full socket buffer.
        wait_until("the proxy to see the datagram", || {
            proxy.summary().dirs.up.seen == u64::from(i) + 1
        })
        .await;
    }
    let delivered = proxy.summary().dirs.up.delivered;
    let mut got = BTreeSet::new();
    let mut buf = [0u8; 16];
    while (got.len() as u64) < delivered {
        let n = timeout(BOUND, upstream.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        got.insert(u32::from_be_bytes(buf[..n].try_into().unwrap()));
    }
    let s = proxy.shutdown().await;
    assert_eq!(s.dirs.up.dropped_loss + s.dirs.up.delivered, 300);
    got
}

#[tokio::test]
async fn same_seed_same_traffic_same_losses_over_real_sockets() {
    let a = lossy_run(11).await;
    let b = lossy_run(11).await;
    let c = lossy_run(12).await;
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(
        (150..=270).contains(&a.len()),
        "30% loss of 300, got {} through",
        a.len()
    );
}

#[tokio::test]
async fn follows_a_server_that_answers_from_a_new_port() {
    // A server in the style of the course's Stop & Wait accept: it answers the
    // first datagram from a fresh socket and expects the rest there.
    let listener = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let laddr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 64];
        let (_, client) = listener.recv_from(&mut buf).await.unwrap();
        let conn = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        conn.send_to(b"hello from new port", client).await.unwrap();
        let (n, from) = conn.recv_from(&mut buf).await.unwrap();
        conn.send_to(&buf[..n], from).await.unwrap();
    });
    let proxy = UdpProxy::start(UdpProxyConfig::new(localhost0(), laddr))
        .await
        .unwrap();
    let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    c.connect(proxy.local_addr()).await.unwrap();
    c.send(b"SYN").await.unwrap();
    let mut buf = [0u8; 64];
    let n = timeout(BOUND, c.recv(&mut buf)).await.unwrap().unwrap();
    assert_eq!(&buf[..n], b"hello from new port");
    c.send(b"data").await.unwrap();
    let n = timeout(BOUND, c.recv(&mut buf)).await.unwrap().unwrap();
    assert_eq!(&buf[..n], b"data");
    proxy.shutdown().await;
}

#[tokio::test]
async fn delayed_and_duplicated_datagrams_all_arrive_and_are_counted() {
    let mut cfg = UdpProxyConfig::new(localhost0(), udp_echo().await);
    cfg.rules.down = UdpRules {
        duplicate: Probability::new(1.0).unwrap(),
        delay: Duration::from_millis(2),
        ..UdpRules::default()
    };
    let proxy = UdpProxy::start(cfg).await.unwrap();
    let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    c.connect(proxy.local_addr()).await.unwrap();
    for i in 0..20u32 {
        c.send(&i.to_be_bytes()).await.unwrap();
        assert_eq!(recv_u32(&c).await, i);
        assert_eq!(recv_u32(&c).await, i, "the duplicate follows");
    }
    let s = proxy.shutdown().await;
    assert_eq!(
        (
            s.dirs.down.duplicated,
            s.dirs.down.delivered,
            s.dirs.down.delayed
        ),
        (20, 40, 20)
    );
}

#[tokio::test]
async fn flow_limit_refuses_new_clients_and_idle_flows_are_closed() {
    let mut cfg = UdpProxyConfig::new(localhost0(), udp_echo().await);
    cfg.max_flows = 2;
    cfg.flow_idle = Duration::from_millis(100);
    let proxy = UdpProxy::start(cfg).await.unwrap();
    let mut clients = Vec::new();
    for _ in 0..2 {
        let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        c.connect(proxy.local_addr()).await.unwrap();
        c.send(&1u32.to_be_bytes()).await.unwrap();
        assert_eq!(recv_u32(&c).await, 1);
        clients.push(c);
    }
    let third = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    third.connect(proxy.local_addr()).await.unwrap();
    third.send(&3u32.to_be_bytes()).await.unwrap();
    wait_until("the refusal", || proxy.summary().flows_refused == 1).await;
    // Once the first two go idle their flows close and the third gets through;
    // a returning client then gets a fresh flow.
    send_until_echoed(&third, 3).await;
    send_until_echoed(&clients[0], 7).await;
    let s = proxy.shutdown().await;
    assert!(s.flows >= 4, "{s}");
}

/// Sends `v` every 50 ms until it comes back (bounded by [`BOUND`]).
async fn send_until_echoed(c: &UdpSocket, v: u32) {
    let mut buf = [0u8; 8];
    timeout(BOUND, async {
        loop {
            c.send(&v.to_be_bytes()).await.unwrap();
            if let Ok(Ok(n)) = timeout(Duration::from_millis(50), c.recv(&mut buf)).await {
                assert_eq!(&buf[..n], &v.to_be_bytes());
                return;
            }
        }
    })
    .await
    .expect("served once a flow slot frees");
}

/// A server that answers from a new socket (the course's `accept`), seen
/// through `mirror_ports`: its new socket appears at a new proxy port, the
/// listening one stays reachable at the proxy's own, and both see the client
/// at the same flow address.
#[tokio::test]
async fn mirror_ports_keep_the_servers_new_socket_apart_from_its_listening_one() {
    let listening = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut cfg = UdpProxyConfig::new(localhost0(), listening.local_addr().unwrap());
    cfg.mirror_ports = true;
    let proxy = UdpProxy::start(cfg).await.unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut buf = [0u8; 64];

    client.send_to(b"syn", proxy.local_addr()).await.unwrap();
    let (n, flow) = timeout(BOUND, listening.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"syn");
    // The server answers from a new socket.
    let accepted = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    accepted.send_to(b"syn-ack", flow).await.unwrap();
    let (n, mirror) = timeout(BOUND, client.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"syn-ack");
    assert_ne!(
        mirror,
        proxy.local_addr(),
        "the new socket has a port of its own"
    );

    // To the mirror: the new socket; to the proxy's port: the listening one.
    client.send_to(b"data", mirror).await.unwrap();
    let (n, from) = timeout(BOUND, accepted.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((&buf[..n], from), (&b"data"[..], flow));
    client.send_to(b"ack", proxy.local_addr()).await.unwrap();
    let (n, from) = timeout(BOUND, listening.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((&buf[..n], from), (&b"ack"[..], flow));

    // The listening socket's own answers still come from the proxy's port.
    listening.send_to(b"again", flow).await.unwrap();
    let (n, from) = timeout(BOUND, client.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((&buf[..n], from), (&b"again"[..], proxy.local_addr()));
    let s = proxy.shutdown().await;
    assert_eq!((s.dirs.up.delivered, s.dirs.down.delivered), (3, 2));
}
