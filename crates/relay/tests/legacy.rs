//! The seed's original chat clients on the legacy listener (issue #17), as a
//! reference client in Python (`tests/peers/original_client.py`, written from
//! the described behaviour: one `recv` is one frame) beside our own clients.
//! Without python3 these skip with a message.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use impair::{TcpProxy, TcpProxyConfig, TcpRules};
use netkit::testing::Served;
use relay::client::Delivered;
use relay::proto::Kind;
use relay::server::{Config, Extra, run_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

mod common;
use common::*;

const BOUND: Duration = Duration::from_secs(60);

/// Lines each participant types in the burst test.
const N: usize = 25;

fn python() -> bool {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: no python3 for the reference client");
    }
    ok
}

/// A server with both listeners: (native address, original-chat address).
async fn start(config: Config) -> (SocketAddr, SocketAddr, Served<()>) {
    let native = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let legacy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addrs = (native.local_addr().unwrap(), legacy.local_addr().unwrap());
    let server = Served::spawn(addrs.0, |shutdown| async move {
        run_with(
            native,
            Extra {
                legacy: Some(legacy),
                web: None,
            },
            config,
            shutdown,
        )
        .await
        .unwrap();
    });
    (addrs.0, addrs.1, server)
}

/// An original client: its stdin, and the lines it printed, as they come.
struct Original {
    child: Child,
    stdin: Option<ChildStdin>,
    printed: mpsc::UnboundedReceiver<String>,
}

fn original(addr: SocketAddr, name: &str, ack: bool) -> Original {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/peers/original_client.py"
    );
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .args(["--address", &addr.to_string(), "--name", name]);
    if !ack {
        cmd.arg("--no-ack");
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take();
    let out = BufReader::new(child.stdout.take().unwrap());
    let (tx, printed) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in out.lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Original {
        child,
        stdin,
        printed,
    }
}

impl Original {
    fn type_lines(&mut self, lines: &[String]) {
        let stdin = self.stdin.as_mut().unwrap();
        let mut all = String::new();
        for l in lines {
            all.push_str(l);
            all.push('\n');
        }
        stdin.write_all(all.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Waits until it printed a line `until` accepts; returns everything printed.
    async fn read_until(&mut self, seen: &mut Vec<String>, until: impl Fn(&[String]) -> bool) {
        timeout(BOUND, async {
            while !until(seen) {
                seen.push(self.printed.recv().await.unwrap());
            }
        })
        .await
        .unwrap_or_else(|_| panic!("original client printed only {seen:?}"));
    }
}

impl Drop for Original {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn collect_until(
    rx: &mut mpsc::UnboundedReceiver<Delivered>,
    seen: &mut Vec<Delivered>,
    until: impl Fn(&[Delivered]) -> bool,
) {
    timeout(BOUND, async {
        while !until(seen) {
            seen.push(rx.recv().await.unwrap());
        }
    })
    .await
    .unwrap_or_else(|_| panic!("native client saw only {seen:?}"));
}

/// Waits until `n` joins were seen.
async fn joins(rx: &mut mpsc::UnboundedReceiver<Delivered>, seen: &mut Vec<Delivered>, n: usize) {
    collect_until(rx, seen, |s| {
        s.iter().filter(|d| d.kind == Kind::Join).count() >= n
    })
    .await;
}

fn chats(seen: &[Delivered]) -> Vec<String> {
    seen.iter()
        .filter(|d| d.kind == Kind::Chat)
        .map(|d| format!("{}: {}", d.name, d.text))
        .collect()
}

fn burst(who: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{who} línea {i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn original_and_native_clients_typing_at_once_see_one_order() {
    if !python() {
        return;
    }
    let (addr, legacy, server) = start(Config::default()).await;
    let (n1, mut n1_seen) = native(addr, "nat1");
    let (n2, mut n2_seen) = native(addr, "nat2");
    let mut o1 = original(legacy, "ori1", true);
    let mut o2 = original(legacy, "ori2", true);
    // Everyone is in before anyone types: nat1 has seen four joins.
    let mut s1 = Vec::new();
    joins(&mut n1_seen, &mut s1, 4).await;
    let joins: Vec<&str> = s1
        .iter()
        .filter(|d| d.kind == Kind::Join)
        .map(|d| d.name.as_str())
        .collect();
    assert!(
        joins
            .iter()
            .filter(|n| n.starts_with("('127.0.0.1', "))
            .count()
            == 2,
        "original clients join under their address, as the original announced: {joins:?}"
    );
    o1.type_lines(&burst("o1", N));
    o2.type_lines(&burst("o2", N));
    for l in burst("n1", N) {
        n1.send(l).await.unwrap();
    }
    for l in burst("n2", N) {
        n2.send(l).await.unwrap();
    }
    let total = 4 * N;
    let mut s2 = Vec::new();
    collect_until(&mut n1_seen, &mut s1, |s| chats(s).len() >= total).await;
    collect_until(&mut n2_seen, &mut s2, |s| chats(s).len() >= total).await;
    let order = chats(&s1);
    assert_eq!(order, chats(&s2), "both native clients: one order");
    let mut sorted = order.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), total, "each line once");
    for who in ["o1", "o2"] {
        let name = format!("ori{}", &who[1..]);
        let mine: Vec<String> = order
            .iter()
            .filter(|l| l.starts_with(&format!("{name}: ")))
            .cloned()
            .collect();
        let want: Vec<String> = burst(who, N)
            .iter()
            .map(|l| format!("{name}: {l}"))
            .collect();
        assert_eq!(mine, want, "{name}'s lines whole, named, in its order");
    }
    // The original clients print the same chat order, once each, no gap.
    for o in [&mut o1, &mut o2] {
        let mut printed = Vec::new();
        o.read_until(&mut printed, |p| {
            p.iter().filter(|l| order.contains(l)).count() >= total
        })
        .await;
        let theirs: Vec<String> = printed
            .iter()
            .filter(|l| order.contains(l))
            .cloned()
            .collect();
        assert_eq!(theirs, order);
        assert!(
            printed
                .iter()
                .any(|l| l == "Server: nat1 has joined the net"),
            "our clients' joins in the original's notice format: {printed:?}"
        );
    }
    drop((n1, n2));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_original_client_that_never_acks_is_cut_and_the_others_go_on() {
    if !python() {
        return;
    }
    let config = Config {
        legacy_retransmit: Duration::from_millis(100),
        legacy_attempts: 3,
        ..Config::default()
    };
    let (addr, legacy, server) = start(config).await;
    let (n1, mut n1_seen) = native(addr, "nat1");
    let mut s1 = Vec::new();
    collect_until(&mut n1_seen, &mut s1, |s| !s.is_empty()).await;
    let mut good = original(legacy, "good", true);
    let _mute = original(legacy, "mute", false);
    joins(&mut n1_seen, &mut s1, 3).await;
    n1.send("hola".into()).await.unwrap();
    collect_until(&mut n1_seen, &mut s1, |s| {
        s.iter()
            .any(|d| d.kind == Kind::Leave && d.text.contains("stopped acknowledging"))
    })
    .await;
    n1.send("¿siguen ahí?".into()).await.unwrap();
    let mut printed = Vec::new();
    good.read_until(&mut printed, |p| {
        p.iter().any(|l| l == "nat1: ¿siguen ahí?")
    })
    .await;
    assert!(printed.iter().any(|l| l == "nat1: hola"), "{printed:?}");
    drop(n1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_original_client_one_byte_per_segment_still_sends_whole_lines() {
    if !python() {
        return;
    }
    let (addr, legacy, server) = start(Config::default()).await;
    let mut pcfg = TcpProxyConfig::new("127.0.0.1:0".parse().unwrap(), legacy);
    pcfg.rules.up = TcpRules::chopped(1, Duration::ZERO);
    let proxy = TcpProxy::start(pcfg).await.unwrap();
    let (n1, mut n1_seen) = native(addr, "nat1");
    let mut s1 = Vec::new();
    collect_until(&mut n1_seen, &mut s1, |s| !s.is_empty()).await;
    let mut o = original(proxy.local_addr(), "chop", true);
    joins(&mut n1_seen, &mut s1, 2).await;
    let lines = burst("ñ", 20);
    o.type_lines(&lines);
    collect_until(&mut n1_seen, &mut s1, |s| chats(s).len() >= 20).await;
    let want: Vec<String> = lines.iter().map(|l| format!("chop: {l}")).collect();
    assert_eq!(chats(&s1), want, "whole lines, in order, once");
    n1.send("recibido".into()).await.unwrap();
    let mut printed = Vec::new();
    o.read_until(&mut printed, |p| p.iter().any(|l| l == "nat1: recibido"))
        .await;
    drop(n1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_original_frames_close_only_their_connection() {
    if !python() {
        return;
    }
    let (addr, legacy, server) = start(Config::default()).await;
    let (n1, mut n1_seen) = native(addr, "nat1");
    let mut s1 = Vec::new();
    collect_until(&mut n1_seen, &mut s1, |s| !s.is_empty()).await;
    let mut good = original(legacy, "good", true);
    joins(&mut n1_seen, &mut s1, 2).await;
    let mut big = vec![0u8; 33];
    big.extend(std::iter::repeat_n(b'x', 10 << 20));
    let mut huge = vec![0x80u8];
    huge.extend([0u8; 31]);
    huge.push(0);
    huge.extend(b"x: y");
    let mut bad_utf8 = vec![0u8; 33];
    bad_utf8.extend([b'x', b':', b' ', 0xff, 0xfe]);
    for (what, bytes) in [("10 MB", big), ("2^255", huge), ("invalid UTF-8", bad_utf8)] {
        let mut s = TcpStream::connect(legacy).await.unwrap();
        // Its join frame comes first; then the hostile frame.
        let _ = s.write_all(&bytes).await;
        let mut sink = vec![0u8; 4096];
        let closed = timeout(BOUND, async {
            loop {
                match s.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "{what}: the connection is closed");
    }
    n1.send("sigo aquí".into()).await.unwrap();
    let mut printed = Vec::new();
    good.read_until(&mut printed, |p| p.iter().any(|l| l == "nat1: sigo aquí"))
        .await;
    collect_until(&mut n1_seen, &mut s1, |s| {
        s.iter()
            .filter(|d| d.kind == Kind::Leave && d.text.contains("bad frame"))
            .count()
            >= 3
    })
    .await;
    drop(n1);
    server.stop().await;
}

/// The reference original server: its process, its port, and its log lines.
fn original_server() -> (Child, SocketAddr, mpsc::UnboundedReceiver<String>) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/peers/original_server.py"
    );
    let mut child = Command::new("python3")
        .arg(script)
        .args(["--address", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let port: u16 = first.trim().trim_start_matches("port ").parse().unwrap();
    let (tx, log) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in out.lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, SocketAddr::from(([127, 0, 0, 1], port)), log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_legacy_client_sends_fifty_lines_that_arrive_as_fifty() {
    if !python() {
        return;
    }
    let (mut server, addr, mut log) = original_server();
    let mut other = original(addr, "ref", true);
    let (tx, rx) = mpsc::channel(64);
    let cfg = relay::legacy::client::LegacyClientConfig::new(addr.to_string(), "ours");
    let shown = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = std::sync::Arc::clone(&shown);
    let client = tokio::spawn(async move {
        relay::legacy::client::run(&cfg, rx, |n, p| {
            sink.lock().unwrap().push((n, p.to_string()));
        })
        .await
    });
    let lines = burst("nuestra", 50);
    for l in &lines {
        tx.send(l.clone()).await.unwrap();
    }
    drop(tx);
    timeout(BOUND, client).await.unwrap().unwrap().unwrap();
    let want: Vec<String> = lines.iter().map(|l| format!("ours: {l}")).collect();
    let mut entries = Vec::new();
    timeout(BOUND, async {
        while entries
            .iter()
            .filter(|e: &&String| e.starts_with("ours: "))
            .count()
            < 50
        {
            entries.push(log.recv().await.unwrap());
        }
    })
    .await
    .unwrap();
    let ours: Vec<String> = entries
        .into_iter()
        .filter(|e| e.starts_with("ours: "))
        .collect();
    assert_eq!(
        ours, want,
        "50 separate lines in the server's log, in order"
    );
    // What our client printed: numbers consecutive, each payload once.
    let shown = shown.lock().unwrap().clone();
    assert!(shown.windows(2).all(|w| w[1].0 == w[0].0 + 1), "{shown:?}");
    let echoed: Vec<&String> = shown
        .iter()
        .map(|(_, p)| p)
        .filter(|p| p.starts_with("ours: "))
        .collect();
    assert_eq!(echoed.len(), 50);
    // The reference client saw them too, once each.
    let mut printed = Vec::new();
    other
        .read_until(&mut printed, |p| {
            p.iter().filter(|l| l.starts_with("ours: ")).count() >= 50
        })
        .await;
    let theirs: Vec<String> = printed
        .into_iter()
        .filter(|l| l.starts_with("ours: "))
        .collect();
    assert_eq!(theirs, want);
    let _ = server.kill();
    let _ = server.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_legacy_client_reports_a_server_that_stopped_answering() {
    // A server that accepts and never sends: the first line's echo never comes.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _held = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        tokio::time::sleep(BOUND).await;
        drop(s);
    });
    let (tx, rx) = mpsc::channel(4);
    let mut cfg = relay::legacy::client::LegacyClientConfig::new(addr.to_string(), "ours");
    cfg.silence = Duration::from_millis(300);
    tx.send("¿hay alguien?".into()).await.unwrap();
    let err = timeout(BOUND, relay::legacy::client::run(&cfg, rx, |_, _| {}))
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("stopped answering"), "{err}");
    drop(tx);
}
