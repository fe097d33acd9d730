#![allow(clippy::unwrap_used)]
//! Real sockets against reference peers written in Python from each course
//! reading (`tests/peers/course_peer.py`, not copied from anywhere): for every
//! reading, their client to our server and our client to their server, with
//! 20% loss both ways through `impair udp` (with `mirror_ports`, so the
//! listen-ack reading's handshake ACK still reaches the listening port). Our
//! end runs `--dialect auto` and learns each. Skipped, with a note, without
//! `python3`.

mod peers;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use impair::{PerDir, UdpProxy, UdpProxyConfig, UdpRules};
use netkit::units::Probability;
use peers::{course_peer as script, have_python};
use rdt::{Config, Format, Options, RdtSocket};

const BOUND: Duration = Duration::from_secs(90);
const READINGS: [&str; 10] = [
    "seed",
    "ack-free",
    "own-isn",
    "segments",
    "encoded",
    "listen-ack",
    "filler",
    "four-way",
    "own-isn,segments,four-way",
    "ack-free,encoded,filler",
];

fn file(len: usize) -> Vec<u8> {
    // Every byte value, separators included.
    let mut v: Vec<u8> = b"a|||b|||".to_vec();
    v.extend((0..len).map(|i| (i * 13 + i / 256) as u8));
    v
}

/// Our socket; `seed` fixes its initial number (as `--seed` fixes the
/// peer's), so a run's numbers are the same every time.
fn ours(seed: u64) -> Options {
    Options {
        seed: Some(seed),
        ..Options::new(Config {
            timeout: Duration::from_millis(40),
            idle_limit: Duration::from_secs(30),
            ..Config::new(Format::Course)
        })
    }
}

/// Waits for `child`, killing it after [`BOUND`].
fn wait(child: &mut Child, what: &str) -> bool {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.success();
        }
        if start.elapsed() > BOUND {
            let _ = child.kill();
            panic!("{what} did not finish in time");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// A 20%-loss proxy in front of `upstream`, on its own runtime.
fn lossy_proxy(upstream: SocketAddr, seed: u64, loss: f64) -> (tokio::runtime::Runtime, UdpProxy) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut cfg = UdpProxyConfig::new("127.0.0.1:0".parse().unwrap(), upstream);
    cfg.seed = seed;
    cfg.mirror_ports = true;
    let rules = UdpRules {
        loss: Probability::new(loss).unwrap(),
        ..UdpRules::default()
    };
    cfg.rules = PerDir::both(rules);
    let proxy = rt.block_on(UdpProxy::start(cfg)).unwrap();
    (rt, proxy)
}

/// Their client sends `data` to our server.
fn their_client_to_our_server(reading: &str, data: &[u8], seed: u64, loss: f64) {
    let mut server = RdtSocket::with_options(ours(seed));
    server.bind("127.0.0.1:0").unwrap();
    let listen = server.local_addr().unwrap();
    let receiver = thread::spawn(move || {
        let (mut conn, _) = server.accept().unwrap();
        let mut got = Vec::new();
        loop {
            let chunk = conn.recv(1 << 16).unwrap();
            if chunk.is_empty() {
                break;
            }
            got.extend(chunk);
        }
        got
    });
    let (_rt, proxy) = lossy_proxy(listen, seed, loss);
    let target = proxy.local_addr();
    let mut child = Command::new("python3")
        .arg(script())
        .args([
            "client",
            "127.0.0.1",
            &target.port().to_string(),
            "--dialect",
            reading,
            "--seed",
            &seed.to_string(),
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let ok = wait(&mut child, &format!("{reading} client"));
    let start = Instant::now();
    while !receiver.is_finished() {
        assert!(
            start.elapsed() < BOUND,
            "{reading}: our server did not finish"
        );
        thread::sleep(Duration::from_millis(10));
    }
    let got = receiver.join().unwrap();
    assert!(ok, "{reading}: their client failed");
    assert_eq!(got, data, "{reading}: what our server received");
}

/// Our client sends `data` to their server.
fn our_client_to_their_server(reading: &str, data: &[u8], seed: u64, loss: f64, dir: &Path) {
    let out = dir.join(format!("{}.out", reading.replace(',', "_")));
    let mut child = Command::new("python3")
        .arg(script())
        .args(["server", "0", "--dialect", reading, "--seed"])
        .arg(seed.to_string())
        .arg("--out")
        .arg(&out)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let listen: SocketAddr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .parse()
        .unwrap();
    let (_rt, proxy) = lossy_proxy(listen, seed, loss);
    let target = proxy.local_addr();
    let opts = ours(seed);
    let data = data.to_vec();
    let name = reading.to_string();
    let sender = thread::spawn(move || {
        let mut c = RdtSocket::with_options(opts);
        c.connect(target)
            .unwrap_or_else(|e| panic!("{name}: connect: {e}"));
        c.send(&data)
            .unwrap_or_else(|e| panic!("{name}: send: {e}"));
        c.close().unwrap_or_else(|e| panic!("{name}: close: {e}"));
    });
    let start = Instant::now();
    while !sender.is_finished() {
        assert!(
            start.elapsed() < BOUND,
            "{reading}: our client did not finish"
        );
        thread::sleep(Duration::from_millis(10));
    }
    sender.join().unwrap();
    assert!(
        wait(&mut child, &format!("{reading} server")),
        "{reading}: their server failed"
    );
}

#[test]
fn their_clients_to_our_server_with_twenty_percent_loss() {
    if !have_python() {
        return;
    }
    let data = file(300);
    let runs: Vec<_> = READINGS
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let data = data.clone();
            thread::spawn(move || their_client_to_our_server(r, &data, 100 + i as u64, 0.2))
        })
        .collect();
    for r in runs {
        r.join().unwrap();
    }
}

fn our_clients_to_their_servers(loss: f64) {
    if !have_python() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = file(300);
    let runs: Vec<_> = READINGS
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let (data, dir) = (data.clone(), dir.path().to_path_buf());
            thread::spawn(move || {
                our_client_to_their_server(r, &data, 200 + i as u64, loss, &dir);
                let out = dir.join(format!("{}.out", r.replace(',', "_")));
                assert_eq!(
                    std::fs::read(&out).unwrap(),
                    data,
                    "{r}: what their server received"
                );
            })
        })
        .collect();
    for r in runs {
        r.join().unwrap();
    }
}

#[test]
fn our_client_to_their_servers_with_twenty_percent_loss() {
    our_clients_to_their_servers(0.2);
}

/// Without loss too: our timeout (40 ms) is shorter than theirs (100 ms), so
/// a server that waits for its handshake ACK never times out to resend its
/// SYN-ACK while our first data keeps coming; the data must find the start
/// that server wants by itself.
#[test]
fn our_client_to_their_servers_without_loss() {
    our_clients_to_their_servers(0.0);
}
