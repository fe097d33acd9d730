//! What the lottery's wire-level tests share: a server on loopback, raw
//! frames, answers read back.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use lottery::Bet;
use lottery::draw::Draw;
use lottery::proto::{Request, encode_request};
use lottery::server::{Server, ServerConfig};
use lottery::store::read_all;
use netkit::testing::Served;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::timeout;

pub const BOUND: Duration = Duration::from_secs(30);
pub const SEED_BET: &str = "Agustín Emanuel,Zambrano,21689196,2000-05-10,9325";

pub struct Running {
    pub addr: SocketAddr,
    pub db: PathBuf,
    pub draw: Arc<Draw>,
    pub served: Served<()>,
    pub dir: tempfile::TempDir,
}

pub async fn start(agencies: usize) -> Running {
    start_with(agencies, |_| {}).await
}

/// A server waiting for `agencies`, its configuration adjusted by `tune`.
pub async fn start_with(agencies: usize, tune: impl FnOnce(&mut ServerConfig)) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bets.db");
    let mut cfg = ServerConfig::new("127.0.0.1:0".parse().unwrap(), db.clone());
    cfg.agencies = agencies;
    tune(&mut cfg);
    let server = Server::bind(cfg).await.unwrap();
    let addr = server.local_addr().unwrap();
    let draw = server.draw();
    let served = Served::spawn(addr, |shutdown| async move {
        server.run(shutdown).await.unwrap();
    });
    Running {
        addr,
        db,
        draw,
        served,
        dir,
    }
}

impl Running {
    pub async fn stop(self) -> (PathBuf, tempfile::TempDir) {
        self.served.stop().await;
        (self.db, self.dir)
    }
}

/// Reads one response: (code, payload).
pub async fn response(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 5];
    timeout(BOUND, s.read_exact(&mut h)).await.unwrap().unwrap();
    let len = u32::from_be_bytes(h[1..5].try_into().unwrap()) as usize;
    let mut p = vec![0u8; len];
    timeout(BOUND, s.read_exact(&mut p)).await.unwrap().unwrap();
    (h[0], p)
}

pub async fn expect_eof(s: &mut TcpStream) {
    let mut b = [0u8; 1];
    let n = timeout(BOUND, s.read(&mut b)).await.unwrap().unwrap_or(0);
    assert_eq!(n, 0, "the server closes the connection");
}

pub fn encode(r: &Request) -> Vec<u8> {
    let mut b = BytesMut::new();
    encode_request(r, &mut b);
    b.to_vec()
}

pub fn bet(doc: &str, numero: u16) -> Bet {
    Bet::parse(&format!("Ramón,Ibáñez,{doc},1980-02-29,{numero}")).unwrap()
}

/// A `SEND_BATCH` whose first bet sits at place `first` of the agency's list.
pub fn batch(agency: u8, first: u32, last: bool, bets: Vec<Bet>) -> Vec<u8> {
    encode(&Request::Bets {
        agency,
        first: Some(first),
        last,
        bets,
    })
}

pub fn stored_docs(db: &Path) -> Vec<(u8, String)> {
    read_all(db)
        .unwrap()
        .into_iter()
        .map(|(a, b)| (a, b.documento))
        .collect()
}
