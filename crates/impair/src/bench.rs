//! The proxy's own cost: TCP throughput through an impair proxy with no rules,
//! against a direct loopback copy measured in the same run.
//!
//! A sink server reads and discards, then answers one byte once it has seen EOF,
//! so the time measured is connect → last byte received by the server.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::{Error, TcpProxy, TcpProxyConfig};

const WRITE: usize = 256 * 1024;

/// Throughput figures of one benchmark run.
#[derive(Debug, Clone, Copy)]
pub struct ThroughputReport {
    /// Bytes sent per run.
    pub bytes: u64,
    /// Best direct loopback time.
    pub direct: Duration,
    /// Best time through the proxy.
    pub proxied: Duration,
}

impl ThroughputReport {
    fn mb_per_s(&self, d: Duration) -> f64 {
        self.bytes as f64 / d.as_secs_f64() / 1e6
    }
    /// Proxied throughput as a share of the direct one.
    pub fn ratio(&self) -> f64 {
        self.direct.as_secs_f64() / self.proxied.as_secs_f64()
    }
}

impl fmt::Display for ThroughputReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (d, p) = (self.mb_per_s(self.direct), self.mb_per_s(self.proxied));
        writeln!(
            f,
            "impair tcp throughput, {} MB per run, best of the runs",
            self.bytes / 1_000_000
        )?;
        writeln!(f, "  {:<34} {:>10}", "path", "MB/s")?;
        writeln!(f, "  {:<34} {d:>10.0}", "direct loopback copy (baseline)")?;
        writeln!(f, "  {:<34} {p:>10.0}", "through impair tcp, no rules")?;
        writeln!(
            f,
            "  {:<34} {:>10.2}",
            "ratio (proxied / direct)",
            self.ratio()
        )?;
        let line = netkit::bench::BenchLine::new("impair_tcp_throughput")
            .num("proxied_mb_s", p, 0)
            .num("baseline_mb_s", d, 0)
            .num("ratio", self.ratio(), 3);
        writeln!(f, "{line}")
    }
}

async fn sink() -> Result<SocketAddr, Error> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; WRITE];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        let _ = s.write_all(b"k").await;
                        return;
                    }
                }
            });
        }
    });
    Ok(addr)
}

async fn one_run(addr: SocketAddr, bytes: u64) -> Result<Duration, Error> {
    let buf = vec![0x5au8; WRITE];
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).await?;
    let mut left = bytes;
    while left > 0 {
        let n = left.min(WRITE as u64) as usize;
        s.write_all(&buf[..n]).await?;
        left -= n as u64;
    }
    s.shutdown().await?;
    let mut done = [0u8; 1];
    s.read_exact(&mut done).await?;
    Ok(start.elapsed())
}

/// Sends `bytes` straight to a sink and through a proxy to it, `runs` times
/// each, interleaved; reports the best of each.
pub async fn tcp_throughput(bytes: u64, runs: u32) -> Result<ThroughputReport, Error> {
    let target = sink().await?;
    let listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let proxy = TcpProxy::start(TcpProxyConfig::new(listen, target)).await?;
    let mut direct = Duration::MAX;
    let mut proxied = Duration::MAX;
    for _ in 0..runs {
        direct = direct.min(one_run(target, bytes).await?);
        proxied = proxied.min(one_run(proxy.local_addr(), bytes).await?);
    }
    proxy.shutdown().await;
    Ok(ThroughputReport {
        bytes,
        direct,
        proxied,
    })
}
