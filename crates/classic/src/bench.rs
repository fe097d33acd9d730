//! `protolab classic bench` (spec: classic.md; targets in TARGETS.md): math
//! requests per second with 1 and 100 clients, one request in flight per
//! connection as the original client does and pipelined, and position
//! deliveries with 200 clients sending at 20 Hz (latency p50/p99, clients
//! dropped). Each against a raw loopback echo server measured in the same run
//! with the same clients and bytes. Then the same 200 clients with 20
//! WebSocket subscribers of the live map ([`pages`]).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::Kind;
use crate::math::Request;
use netkit::bench::BenchLine;

use crate::positions::{Position, parse_broadcast};
use crate::server::{Options, run};

mod pages;
pub use pages::PagesRow;

/// One math row: requests per second for the math server and the echo baseline.
#[derive(Debug, Clone)]
pub struct MathRow {
    /// What was measured.
    pub label: String,
    /// Math server requests/s.
    pub math: f64,
    /// Echo baseline round trips/s.
    pub echo: f64,
}

/// The positions figures.
#[derive(Debug, Clone)]
pub struct PositionsRow {
    /// Clients.
    pub clients: usize,
    /// Deliveries per second.
    pub deliveries_per_s: f64,
    /// Latency from send to delivery, p50.
    pub p50: Duration,
    /// p99.
    pub p99: Duration,
    /// Clients the server cut off.
    pub dropped: usize,
    /// Echo baseline p99 at the same send rate.
    pub echo_p99: Duration,
}

/// The benchmark's result.
#[derive(Debug, Clone)]
pub struct Report {
    /// Math rows.
    pub math: Vec<MathRow>,
    /// The machine's ceiling for 100 clients with one request in flight
    /// (`netkit::ceiling`: epoll server and load, no runtime, no protocol).
    pub ceiling: f64,
    /// Positions row.
    pub positions: PositionsRow,
    /// The live map's WebSocket subscribers beside the TCP clients.
    pub pages: PagesRow,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "classic math: requests per second")?;
        writeln!(
            f,
            "  {:<36} {:>12} {:>14} {:>7}",
            "load", "math req/s", "echo baseline", "ratio"
        )?;
        for r in &self.math {
            writeln!(
                f,
                "  {:<36} {:>12.0} {:>14.0} {:>7.2}",
                r.label,
                r.math,
                r.echo,
                r.math / r.echo
            )?;
        }
        let one_in_flight = self
            .math
            .iter()
            .find(|r| r.label.starts_with("100 clients, one"));
        writeln!(
            f,
            "  machine ceiling, 100 clients one in flight (epoll server and load, no runtime, no protocol): {:.0} req/s; math/ceiling {:.2}",
            self.ceiling,
            one_in_flight.map_or(0.0, |r| r.math / self.ceiling)
        )?;
        let p = &self.positions;
        writeln!(f, "classic positions: {} clients at 20 Hz", p.clients)?;
        writeln!(
            f,
            "  deliveries/s {:.0}, latency p50 {:.3} ms, p99 {:.3} ms, clients dropped {}; echo baseline p99 {:.3} ms",
            p.deliveries_per_s,
            p.p50.as_secs_f64() * 1e3,
            p.p99.as_secs_f64() * 1e3,
            p.dropped,
            p.echo_p99.as_secs_f64() * 1e3
        )?;
        for r in &self.math {
            let line = BenchLine::new("classic_math")
                .field("load", &r.label)
                .num("req_s", r.math, 0)
                .num("baseline_req_s", r.echo, 0)
                .num("ratio", r.math / r.echo, 3);
            writeln!(f, "{line}")?;
        }
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let ceiling =
            BenchLine::new("classic_ceiling")
                .field("clients", 100)
                .num("req_s", self.ceiling, 0);
        let positions = BenchLine::new("classic_positions")
            .field("clients", p.clients)
            .num("deliveries_s", p.deliveries_per_s, 0)
            .num("p50_ms", ms(p.p50), 3)
            .num("p99_ms", ms(p.p99), 3)
            .field("dropped", p.dropped)
            .num("baseline_p99_ms", ms(p.echo_p99), 3);
        let w = &self.pages;
        writeln!(
            f,
            "classic positions map: {} WebSocket subscribers beside {} TCP clients at 20 Hz",
            w.subscribers, w.clients
        )?;
        writeln!(
            f,
            "  subscriber deliveries/s {:.0}, send to subscriber p50 {:.3} ms, p99 {:.3} ms, updates dropped {}; TCP clients p99 in the same run {:.3} ms, TCP only {:.3} ms",
            w.deliveries_per_s,
            ms(w.p50),
            ms(w.p99),
            w.dropped,
            ms(w.tcp_p99),
            ms(p.p99)
        )?;
        let pages = BenchLine::new("classic_positions_web")
            .field("subscribers", w.subscribers)
            .field("clients", w.clients)
            .num("deliveries_s", w.deliveries_per_s, 0)
            .num("p50_ms", ms(w.p50), 3)
            .num("p99_ms", ms(w.p99), 3)
            .field("dropped", w.dropped)
            .num("tcp_p99_ms", ms(w.tcp_p99), 3)
            .num("baseline_p99_ms", ms(p.p99), 3);
        writeln!(f, "{ceiling}\n{positions}\n{pages}")
    }
}

/// A raw echo server: the baseline.
async fn echo_server(stop: CancellationToken) -> Result<SocketAddr, Error> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = stop.cancelled() => return,
                a = l.accept() => a,
            };
            let Ok((mut s, _)) = accepted else { continue };
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(addr)
}

async fn start(kind: Kind, stop: &CancellationToken) -> Result<SocketAddr, Error> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    let stop = stop.clone();
    tokio::spawn(async move {
        let _ = run(l, Options::new(kind), stop.cancelled_owned()).await;
    });
    Ok(addr)
}

/// `clients` connections each keeping `window` requests in flight for `secs`;
/// every reply is `reply_len` bytes. Returns round trips per second.
async fn round_trips(
    addr: SocketAddr,
    clients: usize,
    window: usize,
    request: &[u8],
    reply_len: usize,
    secs: Duration,
) -> Result<f64, Error> {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + secs;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let mut s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        let done = Arc::clone(&done);
        let burst: Vec<u8> = request.repeat(window);
        let request = request.to_vec();
        tasks.push(tokio::spawn(async move {
            // Read what has arrived, count whole replies, send as many new
            // requests in one write: the client costs few syscalls, so the
            // figure is the server's, not the load generator's.
            let mut buf = vec![0u8; 64 * 1024];
            let mut partial = 0usize;
            if s.write_all(&burst).await.is_err() {
                return;
            }
            while Instant::now() < deadline {
                let n = match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                partial += n;
                let whole = partial / reply_len;
                partial %= reply_len;
                if whole > 0 {
                    done.fetch_add(whole as u64, Ordering::Relaxed);
                    if s.write_all(&request.repeat(whole)).await.is_err() {
                        return;
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / secs.as_secs_f64())
}

/// Runs the whole benchmark; `secs` per measurement.
pub async fn run_all(secs: Duration) -> Result<Report, Error> {
    let stop = CancellationToken::new();
    let math = start(Kind::Math, &stop).await?;
    let echo = echo_server(stop.clone()).await?;
    let req = Request::new("SUMA", 1, 2);
    let mut bytes = BytesMut::new();
    req.encode(&mut bytes);
    let reply_len = req.reply().len();
    let mut rows = Vec::new();
    for (label, clients, window) in [
        ("1 client, one in flight", 1, 1),
        ("100 clients, one in flight each", 100, 1),
        ("100 clients, 32 pipelined each", 100, 32),
    ] {
        let m = round_trips(math, clients, window, &bytes, reply_len, secs).await?;
        let e = round_trips(echo, clients, window, &bytes, bytes.len(), secs).await?;
        rows.push(MathRow {
            label: label.into(),
            math: m,
            echo: e,
        });
    }
    let request = bytes.to_vec();
    let ceiling = tokio::task::spawn_blocking(move || {
        netkit::ceiling::round_trips(100, &request, reply_len, secs, None).map(|r| r.per_sec)
    })
    .await
    .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))??;
    let positions = positions_run(
        &stop,
        200,
        Duration::from_millis(50),
        secs.max(Duration::from_secs(3)),
    )
    .await?;
    let pages = pages::run(
        &stop,
        200,
        20,
        Duration::from_millis(50),
        secs.max(Duration::from_secs(3)),
    )
    .await?;
    stop.cancel();
    Ok(Report {
        math: rows,
        ceiling,
        positions,
        pages,
    })
}

/// Latency samples of a fan-out run, and how many clients were cut off.
pub(crate) struct FanOut {
    deliveries: u64,
    latencies: Vec<Duration>,
    dropped: usize,
}

/// When each client sent each position: `sent[i][seq % 4096]`.
type SentTable = Arc<Vec<std::sync::Mutex<Vec<Option<Instant>>>>>;

/// An empty [`SentTable`] for `clients` clients.
fn sent_table(clients: usize) -> SentTable {
    Arc::new(
        (0..clients)
            .map(|_| std::sync::Mutex::new(vec![None; 4096]))
            .collect(),
    )
}

/// When client `i` sent its position with sequence `y`, if recorded.
fn sent_at(sent: &SentTable, i: usize, y: i64) -> Option<Instant> {
    sent.get(i)
        .and_then(|s| s.lock().ok())
        .and_then(|t| t[(y as usize) & 4095])
}

/// `clients` position clients sending every `period` until `end`; each
/// position carries (sender index, sequence) so receivers can time it.
async fn fan_out(
    addr: SocketAddr,
    clients: usize,
    period: Duration,
    end: Instant,
    echo_only: bool,
    sent: &SentTable,
) -> Result<FanOut, Error> {
    let mut tasks = Vec::new();
    for i in 0..clients {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        let (mut r, mut w) = s.into_split();
        let sent = Arc::clone(sent);
        let offset = period.mul_f64(i as f64 / clients as f64);
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
            let mut seq: u16 = 0;
            let mut buf = BytesMut::with_capacity(64 * 1024);
            let mut lat = Vec::new();
            let mut deliveries = 0u64;
            let mut dropped = false;
            loop {
                tokio::select! {
                    _ = tick.tick(), if Instant::now() < end => {
                        let p = Position { x: i as i16, y: (seq % 4096) as i16 };
                        if let Ok(mut table) = sent[i].lock() {
                            table[usize::from(seq % 4096)] = Some(Instant::now());
                        }
                        if w.write_all(&p.encode()).await.is_err() { dropped = true; break; }
                        seq = seq.wrapping_add(1);
                    }
                    n = r.read_buf(&mut buf) => {
                        match n {
                            Ok(0) | Err(_) => { dropped = true; break; }
                            Ok(_) => {}
                        }
                        let now = Instant::now();
                        if echo_only {
                            while buf.len() >= 4 {
                                let chunk = buf.split_to(4);
                                let y = i16::from_le_bytes([chunk[2], chunk[3]]);
                                if let Some(t) = sent[i].lock().ok().and_then(|t| t[y as usize & 4095]) {
                                    lat.push(now - t);
                                }
                                deliveries += 1;
                            }
                        } else {
                            while let Some(end) = buf.iter().position(|&b| b == b')') {
                                let msg = buf.split_to(end + 1);
                                if let Some(seen) = std::str::from_utf8(&msg).ok().and_then(parse_broadcast) {
                                    if let Some(t) = sent_at(&sent, seen.at.x as usize, i64::from(seen.at.y)) {
                                        lat.push(now - t);
                                    }
                                    deliveries += 1;
                                }
                            }
                        }
                    }
                    () = tokio::time::sleep_until((end + Duration::from_millis(200)).into()) => break,
                }
            }
            (deliveries, lat, dropped)
        }));
    }
    let mut out = FanOut {
        deliveries: 0,
        latencies: Vec::new(),
        dropped: 0,
    };
    for t in tasks {
        if let Ok((d, l, dropped)) = t.await {
            out.deliveries += d;
            out.latencies.extend(l);
            out.dropped += usize::from(dropped);
        }
    }
    out.latencies.sort_unstable();
    Ok(out)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

async fn positions_run(
    stop: &CancellationToken,
    clients: usize,
    period: Duration,
    secs: Duration,
) -> Result<PositionsRow, Error> {
    let server = start(Kind::Positions, stop).await?;
    let r = fan_out(
        server,
        clients,
        period,
        Instant::now() + secs,
        false,
        &sent_table(clients),
    )
    .await?;
    let echo = echo_server(stop.clone()).await?;
    let e = fan_out(
        echo,
        clients,
        period,
        Instant::now() + secs,
        true,
        &sent_table(clients),
    )
    .await?;
    Ok(PositionsRow {
        clients,
        deliveries_per_s: r.deliveries as f64 / secs.as_secs_f64(),
        p50: percentile(&r.latencies, 0.50),
        p99: percentile(&r.latencies, 0.99),
        dropped: r.dropped,
        echo_p99: percentile(&e.latencies, 0.99),
    })
}
