//! Interoperability with Python 2 peers written like the seed's originals
//! (`tests/python2/*.py`: real `struct` packing, real `str(float)`): their
//! clients against our servers, our math client against their server. Skipped,
//! with a note, where no Python 2.7 is installed (set `PROTOLAB_PYTHON2`).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use classic::Kind;
use classic::client::{ClientOptions, math};
use classic::math::Request;
use classic::server::{Options, run};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

fn python2() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PROTOLAB_PYTHON2") {
        return Some(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME").map(PathBuf::from)?;
    let versions = std::fs::read_dir(home.join(".pyenv/versions")).ok()?;
    let mut found: Vec<PathBuf> = versions
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("2.7"))
        .map(|e| e.path().join("bin/python"))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop()
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python2")
        .join(name)
}

/// Runs a Python 2 client script against one of our servers; returns its stdout.
async fn run_client(kind: Kind, name: &str) -> Option<String> {
    let Some(py) = python2() else {
        eprintln!("no Python 2.7 found: skipping {name}");
        return None;
    };
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let stop = CancellationToken::new();
    tokio::spawn(run(l, Options::new(kind), stop.clone().cancelled_owned()));
    let path = script(name);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(py)
            .arg(path)
            .arg(port.to_string())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    stop.cancel();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

#[tokio::test]
async fn python2_math_client_against_our_server() {
    let Some(out) = run_client(Kind::Math, "math_client.py").await else {
        return;
    };
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        vec![
            "El resultado de la operacion es -12",
            "El resultado de la operacion es 139",
            "El resultado de la operacion es -56",
            "El resultado de la operacion es 0.333333333333",
            "El resultado de la operacion es -0.0",
            "El resultado de la operacion es False",
            "El resultado de la operacion es None",
        ]
    );
}

#[tokio::test]
async fn python2_echo_client_against_our_server() {
    let Some(out) = run_client(Kind::Echo, "echo_client.py").await else {
        return;
    };
    assert_eq!(out, "Test Packet\nTest Packet\nTest Packet\n");
}

#[tokio::test]
async fn python2_positions_client_against_our_server() {
    let Some(out) = run_client(Kind::Positions, "positions_client.py").await else {
        return;
    };
    let seen = classic::positions::parse_broadcast(out.trim_end()).unwrap();
    assert_eq!((seen.at.x, seen.at.y), (3, -4));
}

#[tokio::test]
async fn our_math_client_against_a_python2_server() {
    let Some(py) = python2() else {
        eprintln!("no Python 2.7 found: skipping");
        return;
    };
    let mut child = Command::new(py)
        .arg(script("math_server.py"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().parse().unwrap();
    let opts = ClientOptions {
        server: format!("127.0.0.1:{port}"),
        interval: Duration::from_millis(1),
        count: Some(60),
        reconnect: false,
        seed: 5,
    };
    let mut lines = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), math(&opts, |l| lines.push(l)))
        .await
        .unwrap()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    // Every reply the Python 2 server computed equals what our server computes.
    for pair in lines.chunks(2) {
        let words: Vec<&str> = pair[0].split(' ').collect();
        let (op, a, b) = (
            words[3],
            words[5].parse().unwrap(),
            words[7].parse().unwrap(),
        );
        assert_eq!(pair[1], Request::new(op, a, b).reply(), "{}", pair[0]);
    }
    assert_eq!(lines.len(), 120);
}
