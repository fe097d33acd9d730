//! The three clients against our servers: what they print, how they read
//! coalesced replies, and how they live through a server restart.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use classic::client::{ClientOptions, echo, math, positions};
use classic::math::{OPERATIONS, Request};
use classic::server::{Options, run};
use classic::{Error, Kind};
use netkit::testing::Served;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::net::TcpListener;
use tokio::time::timeout;
use tokio_util::sync::WaitForCancellationFutureOwned;

const BOUND: Duration = Duration::from_secs(30);

async fn serve(listener: TcpListener, kind: Kind, shutdown: WaitForCancellationFutureOwned) {
    run(listener, Options::new(kind), shutdown).await.unwrap();
}

async fn server(kind: Kind) -> (SocketAddr, Served<()>) {
    let server = Served::bind(move |l, shutdown| serve(l, kind, shutdown)).await;
    (server.addr, server)
}

/// A listening socket and a second handle to it: a server restarted on the
/// second finds the port where it was, never freed in between.
fn listening_twice() -> (SocketAddr, std::net::TcpListener, std::net::TcpListener) {
    let first = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    first.set_nonblocking(true).unwrap();
    let second = first.try_clone().unwrap();
    (first.local_addr().unwrap(), first, second)
}

fn serve_std(addr: SocketAddr, l: std::net::TcpListener, kind: Kind) -> Served<()> {
    Served::spawn(addr, move |shutdown| async move {
        serve(TcpListener::from_std(l).unwrap(), kind, shutdown).await;
    })
}

/// Waits until `lines` holds at least `n` lines.
async fn until_lines(lines: &Mutex<Vec<String>>, n: usize) {
    timeout(BOUND, async {
        while lines.lock().unwrap().len() < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
}

fn opts(addr: SocketAddr, count: u64) -> ClientOptions {
    ClientOptions {
        server: addr.to_string(),
        interval: Duration::from_millis(5),
        count: Some(count),
        reconnect: false,
        seed: 9,
    }
}

#[tokio::test]
async fn echo_client_prints_each_echo() {
    let (addr, server) = server(Kind::Echo).await;
    let mut lines = Vec::new();
    timeout(BOUND, echo(&opts(addr, 3), |l| lines.push(l)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lines, vec!["Test Packet"; 3]);
    server.stop().await;
}

#[tokio::test]
async fn math_client_prints_requests_and_the_right_replies() {
    let (addr, server) = server(Kind::Math).await;
    let mut lines = Vec::new();
    timeout(BOUND, math(&opts(addr, 40), |l| lines.push(l)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lines.len(), 80);
    // The same seed drives the same operations: recompute what must be printed.
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for pair in lines.chunks(2) {
        let op = OPERATIONS[rng.random_range(0..OPERATIONS.len())];
        let (a, b) = (
            rng.random_range(-100..=100i16),
            rng.random_range(-100..=100i16),
        );
        assert_eq!(pair[0], format!("Enviando peticion de {op} para {a} y {b}"));
        assert_eq!(pair[1], Request::new(op, a, b).reply());
    }
    server.stop().await;
}

#[tokio::test]
async fn positions_clients_see_each_other() {
    let (addr, server) = server(Kind::Positions).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for seed in 0..3 {
        let seen = seen.clone();
        let mut o = opts(addr, 5);
        o.seed = seed;
        o.interval = Duration::from_millis(30);
        tasks.push(tokio::spawn(async move {
            positions(&o, |l| seen.lock().unwrap().push(l))
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        timeout(BOUND, t).await.unwrap().unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    let ids: std::collections::HashSet<u32> = seen
        .iter()
        .map(|l| classic::positions::parse_broadcast(l).unwrap().id)
        .collect();
    assert_eq!(ids.len(), 3, "three clients, three ids: {seen:?}");
    // Every client's first position is (0, 0); moves are at most 1 per step.
    assert!(seen.iter().any(|l| l.ends_with("(0, 0)")));
    server.stop().await;
}

#[tokio::test]
async fn a_client_says_clearly_that_the_server_went_away() {
    let (addr, server) = server(Kind::Echo).await;
    let lines = Arc::new(Mutex::new(Vec::new()));
    let mut o = opts(addr, 1000);
    o.interval = Duration::from_millis(10);
    let sink = lines.clone();
    let client = tokio::spawn(async move { echo(&o, |l| sink.lock().unwrap().push(l)).await });
    until_lines(&lines, 3).await;
    server.stop().await;
    let err = timeout(BOUND, client).await.unwrap().unwrap().unwrap_err();
    assert!(matches!(err, Error::ServerClosed), "{err}");
}

#[tokio::test]
async fn a_reconnecting_client_survives_a_server_restart() {
    let (addr, first, second) = listening_twice();
    let server = serve_std(addr, first, Kind::Math);
    let lines = Arc::new(Mutex::new(Vec::new()));
    let mut o = opts(addr, 30);
    o.interval = Duration::from_millis(20);
    o.reconnect = true;
    let sink = lines.clone();
    let client = tokio::spawn(async move { math(&o, |l| sink.lock().unwrap().push(l)).await });
    until_lines(&lines, 6).await;
    server.stop().await;
    let server = serve_std(addr, second, Kind::Math);
    timeout(BOUND, client).await.unwrap().unwrap().unwrap();
    let lines = lines.lock().unwrap().clone();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("reconnecting") || l.contains("cannot reach the server")),
        "{lines:?}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("El resultado"))
            .count(),
        30,
        "every request answered in the end"
    );
    server.stop().await;
}
