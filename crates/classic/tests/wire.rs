//! The classic servers over real loopback sockets.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use classic::math::Request;
use classic::positions::{Position, parse_broadcast};
use classic::server::{Options, run};
use classic::{Kind, TEST_PACKET};
use impair::{TcpProxy, TcpProxyConfig, TcpRules};
use netkit::testing::Served;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;

const BOUND: Duration = Duration::from_secs(60);

struct Running {
    addr: SocketAddr,
    served: Served<()>,
}

async fn start(opts: Options) -> Running {
    let served = Served::bind(|listener, shutdown| async move {
        run(listener, opts, shutdown).await.unwrap();
    })
    .await;
    Running {
        addr: served.addr,
        served,
    }
}

impl Running {
    async fn stop(self) {
        self.served.stop().await;
    }
}

async fn proxy(upstream: SocketAddr, up: TcpRules) -> TcpProxy {
    let mut cfg = TcpProxyConfig::new("127.0.0.1:0".parse().unwrap(), upstream);
    cfg.rules.up = up;
    TcpProxy::start(cfg).await.unwrap()
}

fn request_bytes(reqs: &[Request]) -> Vec<u8> {
    let mut b = BytesMut::new();
    for r in reqs {
        r.encode(&mut b);
    }
    b.to_vec()
}

async fn read_exactly(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    timeout(BOUND, s.read_exact(&mut v)).await.unwrap().unwrap();
    v
}

/// Sends one math request and checks the exact reply bytes.
async fn ask(s: &mut TcpStream, req: &Request) {
    s.write_all(&request_bytes(std::slice::from_ref(req)))
        .await
        .unwrap();
    let want = req.reply();
    assert_eq!(
        String::from_utf8(read_exactly(s, want.len()).await).unwrap(),
        want
    );
}

async fn read_until_eof(s: &mut TcpStream) -> usize {
    let mut total = 0;
    let mut buf = vec![0u8; 65536];
    loop {
        match timeout(BOUND, s.read(&mut buf)).await.unwrap() {
            Ok(0) | Err(_) => return total,
            Ok(n) => total += n,
        }
    }
}

#[tokio::test]
async fn echo_returns_exactly_the_bytes_even_one_per_segment() {
    let srv = start(Options::new(Kind::Echo)).await;
    let mut c = TcpStream::connect(srv.addr).await.unwrap();
    c.write_all(TEST_PACKET).await.unwrap();
    assert_eq!(read_exactly(&mut c, 11).await, TEST_PACKET);
    let p = proxy(srv.addr, TcpRules::chopped(1, Duration::from_millis(1))).await;
    let mut c = TcpStream::connect(p.local_addr()).await.unwrap();
    c.write_all(TEST_PACKET).await.unwrap();
    assert_eq!(read_exactly(&mut c, 11).await, TEST_PACKET);
    srv.stop().await;
}

#[tokio::test]
async fn math_golden_replies() {
    let srv = start(Options::new(Kind::Math)).await;
    let mut c = TcpStream::connect(srv.addr).await.unwrap();
    for (req, want) in [
        (
            Request::new("SUMA", 2, 3),
            "El resultado de la operacion es 5",
        ),
        (
            Request::new("RESTA", -100, 100),
            "El resultado de la operacion es -200",
        ),
        (
            Request::new("MULTIPLICACION", -7, 8),
            "El resultado de la operacion es -56",
        ),
        (
            Request::new("DIVISION", 1, 3),
            "El resultado de la operacion es 0.333333333333",
        ),
        (
            Request::new("DIVISION", 0, -5),
            "El resultado de la operacion es -0.0",
        ),
        (
            Request::new("DIVISION", 5, 0),
            "El resultado de la operacion es False",
        ),
        (
            Request::new("POTENCIA", 5, 2),
            "El resultado de la operacion es None",
        ),
    ] {
        assert_eq!(req.reply(), want, "the golden text");
        ask(&mut c, &req).await;
    }
    srv.stop().await;
}

fn some_requests() -> Vec<Request> {
    (0..20)
        .map(|i| {
            Request::new(
                classic::math::OPERATIONS[i % 4],
                i as i16 * 7 - 50,
                (i % 5) as i16 - 2,
            )
        })
        .collect()
}

#[tokio::test]
async fn math_requests_split_one_byte_per_segment() {
    let srv = start(Options::new(Kind::Math)).await;
    let p = proxy(srv.addr, TcpRules::chopped(1, Duration::from_micros(300))).await;
    let mut c = TcpStream::connect(p.local_addr()).await.unwrap();
    for req in some_requests() {
        ask(&mut c, &req).await;
    }
    srv.stop().await;
}

#[tokio::test]
async fn several_math_requests_in_one_segment_are_all_answered_in_order() {
    let srv = start(Options::new(Kind::Math)).await;
    let p = proxy(srv.addr, TcpRules::coalesced(Duration::from_millis(200))).await;
    let mut c = TcpStream::connect(p.local_addr()).await.unwrap();
    c.set_nodelay(true).unwrap();
    let reqs = some_requests();
    for r in &reqs {
        c.write_all(&request_bytes(std::slice::from_ref(r)))
            .await
            .unwrap();
    }
    let want: String = reqs.iter().map(Request::reply).collect();
    assert_eq!(
        String::from_utf8(read_exactly(&mut c, want.len()).await).unwrap(),
        want
    );
    assert_eq!(
        p.shutdown().await.dirs.up.writes,
        1,
        "the 20 requests arrived in one segment"
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_4_gib_command_length_closes_that_connection_only() {
    let srv = start(Options::new(Kind::Math)).await;
    let mut bad = TcpStream::connect(srv.addr).await.unwrap();
    bad.write_all(&[0xff, 0xff, 0xff, 0xff, 1, 0, 2, 0, b'S'])
        .await
        .unwrap();
    assert_eq!(read_until_eof(&mut bad).await, 0, "closed with no reply");
    let mut good = TcpStream::connect(srv.addr).await.unwrap();
    ask(&mut good, &Request::new("SUMA", 1, 1)).await;
    srv.stop().await;
}

#[tokio::test]
async fn a_client_reset_mid_request_affects_nobody_else() {
    let srv = start(Options::new(Kind::Math)).await;
    let mut other = TcpStream::connect(srv.addr).await.unwrap();
    let victim = TcpStream::connect(srv.addr).await.unwrap();
    let half = request_bytes(&[Request::new("MULTIPLICACION", 3, 3)]);
    let mut victim = victim;
    victim.write_all(&half[..10]).await.unwrap();
    #[allow(deprecated)] // a zero linger is the point: the drop sends RST
    victim.set_linger(Some(Duration::ZERO)).unwrap();
    drop(victim); // RST
    for req in some_requests() {
        ask(&mut other, &req).await;
    }
    srv.stop().await;
}

#[tokio::test]
async fn a_silent_client_is_dropped_after_the_timeout() {
    let mut opts = Options::new(Kind::Echo);
    opts.idle_timeout = Duration::from_millis(200);
    let srv = start(opts).await;
    let mut c = TcpStream::connect(srv.addr).await.unwrap();
    c.write_all(TEST_PACKET).await.unwrap();
    assert_eq!(read_exactly(&mut c, 11).await, TEST_PACKET);
    // Then silence: the server closes.
    assert_eq!(read_until_eof(&mut c).await, 0);
    srv.stop().await;
}

async fn read_broadcast(s: &mut TcpStream, buf: &mut Vec<u8>) -> String {
    loop {
        if let Some(i) = buf.iter().position(|&b| b == b')') {
            let msg: Vec<u8> = buf.drain(..=i).collect();
            return String::from_utf8(msg).unwrap();
        }
        let mut chunk = [0u8; 4096];
        let n = timeout(BOUND, s.read(&mut chunk)).await.unwrap().unwrap();
        assert!(n > 0, "unexpected EOF");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn positions_reach_every_client_the_sender_included() {
    let srv = start(Options::new(Kind::Positions)).await;
    let mut a = TcpStream::connect(srv.addr).await.unwrap();
    let (mut abuf, mut bbuf) = (Vec::new(), Vec::new());
    a.write_all(&Position { x: 0, y: 0 }.encode())
        .await
        .unwrap();
    let a_id = parse_broadcast(&read_broadcast(&mut a, &mut abuf).await)
        .unwrap()
        .id;
    let mut b = TcpStream::connect(srv.addr).await.unwrap();
    // Two positions in one write, then one split in two writes.
    let mut two = Position { x: 3, y: -4 }.encode().to_vec();
    two.extend_from_slice(
        &Position {
            x: -32768,
            y: 32767,
        }
        .encode(),
    );
    b.write_all(&two).await.unwrap();
    let third = Position { x: 1, y: 1 }.encode();
    b.write_all(&third[..1]).await.unwrap();
    b.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    b.write_all(&third[1..]).await.unwrap();
    let mut on_a = Vec::new();
    let mut on_b = Vec::new();
    for _ in 0..3 {
        on_a.push(parse_broadcast(&read_broadcast(&mut a, &mut abuf).await).unwrap());
        on_b.push(parse_broadcast(&read_broadcast(&mut b, &mut bbuf).await).unwrap());
    }
    assert_eq!(on_a, on_b, "everyone sees the same broadcasts");
    let b_id = on_b[0].id;
    assert_ne!(a_id, b_id);
    assert!((10_000..=99_999).contains(&b_id), "5-digit ids");
    let at: Vec<_> = on_b.iter().map(|s| (s.at.x, s.at.y)).collect();
    assert_eq!(at, vec![(3, -4), (-32768, 32767), (1, 1)]);
    srv.stop().await;
}

#[tokio::test]
async fn a_recipient_that_stops_reading_is_cut_off_while_others_keep_receiving() {
    let srv = start(Options::new(Kind::Positions)).await;
    // The watcher registers first (it sees its own position come back).
    let mut watcher = TcpStream::connect(srv.addr).await.unwrap();
    let mut wbuf = Vec::new();
    watcher
        .write_all(&Position { x: -2, y: -2 }.encode())
        .await
        .unwrap();
    assert_eq!(
        parse_broadcast(&read_broadcast(&mut watcher, &mut wbuf).await)
            .unwrap()
            .at,
        Position { x: -2, y: -2 }
    );
    // The stalled client: a tiny receive buffer, and it never reads.
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(1024).unwrap();
    let mut stalled = sock.connect(srv.addr).await.unwrap();
    stalled
        .write_all(&Position { x: -1, y: -1 }.encode())
        .await
        .unwrap();
    assert_eq!(
        parse_broadcast(&read_broadcast(&mut watcher, &mut wbuf).await)
            .unwrap()
            .at,
        Position { x: -1, y: -1 }
    );
    let mut sender = TcpStream::connect(srv.addr).await.unwrap();
    let (sr, mut sw) = sender.split();
    let mut sr = sr;
    let rounds = 300usize;
    let per_round = 1000usize;
    let mut sender_id = None;
    let mut sbuf = vec![0u8; 1 << 16];
    for round in 0..rounds {
        let mut batch = Vec::with_capacity(per_round * 4);
        for i in 0..per_round {
            batch.extend_from_slice(
                &Position {
                    x: (i % 30_000) as i16,
                    y: (round % 30_000) as i16,
                }
                .encode(),
            );
        }
        sw.write_all(&batch).await.unwrap();
        // The watcher keeps its rate: it gets every position, in order.
        for i in 0..per_round {
            let seen = parse_broadcast(&read_broadcast(&mut watcher, &mut wbuf).await).unwrap();
            let id = *sender_id.get_or_insert(seen.id);
            assert_eq!(seen.id, id);
            assert_eq!(
                (seen.at.x, seen.at.y),
                ((i % 30_000) as i16, (round % 30_000) as i16),
                "in order, none missing"
            );
        }
        // The sender reads its own copies so that it is never the slow one.
        while let Ok(Ok(n)) = timeout(Duration::from_millis(0), sr.read(&mut sbuf)).await {
            if n == 0 {
                break;
            }
        }
    }
    // The stalled client was removed: after what its buffers held, EOF.
    let got = read_until_eof(&mut stalled).await;
    assert!(
        got < rounds * per_round * 10,
        "it was cut off ({got} bytes) long before the end"
    );
    srv.stop().await;
}

#[tokio::test]
async fn ids_are_unique_over_10000_connections() {
    let srv = start(Options::new(Kind::Positions)).await;
    let mut ids = HashSet::new();
    for _ in 0..10_000 {
        let mut c = TcpStream::connect(srv.addr).await.unwrap();
        c.write_all(&Position::default().encode()).await.unwrap();
        let mut buf = Vec::new();
        let id = parse_broadcast(&read_broadcast(&mut c, &mut buf).await)
            .unwrap()
            .id;
        assert!(ids.insert(id), "id {id} handed out twice");
    }
    srv.stop().await;
}

/// Echo and math: a client that keeps sending and never reads its answers is
/// cut after the idle timeout (its writes then fail) instead of holding the
/// server's write, and its connection, forever; others are served meanwhile.
#[tokio::test]
async fn a_client_that_never_reads_is_cut_after_the_timeout() {
    for kind in [Kind::Echo, Kind::Math] {
        let mut opts = Options::new(kind);
        opts.idle_timeout = Duration::from_millis(300);
        let srv = start(opts).await;
        let c = TcpStream::connect(srv.addr).await.unwrap();
        let (_r, mut w) = c.into_split();
        let request = match kind {
            Kind::Math => request_bytes(&[Request::new("SUMA", 1, 2)]),
            _ => TEST_PACKET.to_vec(),
        };
        let flood = request.repeat(64 * 1024 / request.len());
        // Writes until the server hangs up: with nobody reading the answers
        // the server's own write stalls, and only the timeout ends it.
        let writer = tokio::spawn(async move { while w.write_all(&flood).await.is_ok() {} });
        let mut other = TcpStream::connect(srv.addr).await.unwrap();
        other.write_all(&request).await.unwrap();
        let mut answer = [0u8; 1];
        timeout(BOUND, other.read_exact(&mut answer))
            .await
            .unwrap()
            .unwrap();
        timeout(BOUND, writer).await.unwrap().unwrap();
        srv.stop().await;
    }
}

/// At the client limit, silent clients make room for new ones (the oldest
/// first) instead of keeping them waiting up to the idle timeout (33 s in the
/// probe, with 10,000 idle connections).
#[tokio::test]
async fn at_the_client_limit_the_oldest_idle_client_makes_room() {
    let mut opts = Options::new(Kind::Math);
    opts.max_clients = 10;
    opts.evict_idle_after = Some(Duration::ZERO);
    let srv = start(opts).await;
    let req = Request {
        command: b"SUMA".to_vec(),
        a: 2,
        b: 3,
    };
    let mut squatters = Vec::new();
    for _ in 0..10 {
        let mut c = TcpStream::connect(srv.addr).await.unwrap();
        ask(&mut c, &req).await;
        squatters.push(c);
    }
    for _ in 0..3 {
        let mut newcomer = TcpStream::connect(srv.addr).await.unwrap();
        ask(&mut newcomer, &req).await;
        squatters.push(newcomer);
    }
    for c in &mut squatters[..3] {
        assert_eq!(read_until_eof(c).await, 0, "closed to make room");
    }
    for c in &mut squatters[3..] {
        ask(c, &req).await;
    }
    srv.stop().await;
}
