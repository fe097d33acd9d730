//! Upstream servers for the proxy tests, all on 127.0.0.1, port 0.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// Every test step is bounded by this.
pub const BOUND: Duration = Duration::from_secs(20);

/// A UDP server that sends every datagram back to its sender.
pub async fn udp_echo() -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            let _ = sock.send_to(&buf[..n], from).await;
        }
    });
    addr
}

/// A TCP server that echoes every connection's bytes back.
pub async fn tcp_echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// What one connection to a [`tcp_recorder`] saw.
#[derive(Debug)]
pub struct Recorded {
    pub bytes: Vec<u8>,
    pub reads: usize,
    pub ended_by: std::io::Result<()>,
}

/// A TCP server that reads one connection to its end and reports what came.
pub async fn tcp_recorder() -> (SocketAddr, tokio::sync::oneshot::Receiver<Recorded>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut bytes = Vec::new();
        let mut reads = 0;
        let mut buf = [0u8; 4096];
        let ended_by = loop {
            match s.read(&mut buf).await {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    reads += 1;
                    bytes.extend_from_slice(&buf[..n]);
                }
                Err(e) => break Err(e),
            }
        };
        let _ = tx.send(Recorded {
            bytes,
            reads,
            ended_by,
        });
    });
    (addr, rx)
}

/// A TCP server that writes `data` to its first connection and then waits for
/// the client to go.
pub async fn tcp_sender(data: Vec<u8>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let _ = s.write_all(&data).await;
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink).await;
    });
    addr
}

/// Reads until EOF or error; returns the bytes and how it ended.
pub async fn read_to_end_or_err(s: &mut TcpStream) -> (Vec<u8>, std::io::Result<()>) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf).await {
            Ok(0) => return (out, Ok(())),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return (out, Err(e)),
        }
    }
}

/// Polls `cond` until it holds, failing after [`BOUND`].
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    tokio::time::timeout(BOUND, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

/// `n` bytes of a recognisable pattern.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}
