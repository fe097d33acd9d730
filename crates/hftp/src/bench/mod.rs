//! `protolab hftp bench` (spec: hftp.md; targets in TARGETS.md): a large
//! download in both encodings against a raw TCP copy of the same file, small
//! requests at 1, 100 and 1,000 clients against the machine's ceiling, and the
//! server's peak memory. The server under test is a separate process (so its
//! memory is its own): [`run`] starts the command it is given, measures, and
//! stops it; [`Report`] prints the tables and the `BENCH` lines.

mod report;

use netkit::process::ServerProcess;
pub use report::Report;

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::client::Client;
use crate::error::Error;
use crate::proto::Encoding;

/// One download figure.
#[derive(Debug, Clone, Copy)]
pub struct Transfer {
    /// Bytes of file data.
    pub bytes: u64,
    /// Time from sending the request to the last byte.
    pub total: Duration,
    /// Time from sending the request to the first byte of data.
    pub first_byte: Duration,
}

impl Transfer {
    /// File bytes per second.
    pub fn rate(&self) -> f64 {
        self.bytes as f64 / self.total.as_secs_f64()
    }
}

/// A writer that counts and drops, noting when the first byte came.
struct Sink {
    start: Instant,
    first: Option<Duration>,
}

impl tokio::io::AsyncWrite for Sink {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.first.is_none() && !buf.is_empty() {
            self.first = Some(self.start.elapsed());
        }
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// Downloads `size` bytes of `name` as one slice, discarding them.
pub async fn download(
    server: &str,
    name: &str,
    size: u64,
    encoding: Encoding,
) -> Result<Transfer, Error> {
    let mut c = Client::connect(server).await?;
    let start = Instant::now();
    let mut sink = Sink { start, first: None };
    c.slice(name, 0, size, encoding, &mut sink, &AtomicU64::new(0))
        .await?;
    let total = start.elapsed();
    let _ = c.quit().await;
    Ok(Transfer {
        bytes: size,
        total,
        first_byte: sink.first.unwrap_or(total),
    })
}

/// The baseline: the same file's bytes sent raw over loopback TCP by a plain
/// server (read the file, write the socket) to a client that discards them.
pub async fn raw_copy(path: &Path) -> Result<Transfer, Error> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    let path = path.to_path_buf();
    let server = tokio::spawn(async move {
        let (mut s, _) = l.accept().await?;
        let mut f = tokio::fs::File::open(&path).await?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            s.write_all(&buf[..n]).await?;
        }
        s.shutdown().await?;
        Ok::<(), std::io::Error>(())
    });
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).await?;
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    let mut first = None;
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        first.get_or_insert_with(|| start.elapsed());
        bytes += n as u64;
    }
    let total = start.elapsed();
    server.await.map_err(|e| Error::Protocol(e.to_string()))??;
    Ok(Transfer {
        bytes,
        total,
        first_byte: first.unwrap_or(total),
    })
}

/// Small-request figures for one concurrency level.
#[derive(Debug, Clone)]
pub struct Requests {
    /// Clients at once.
    pub clients: usize,
    /// Requests answered per second.
    pub per_second: f64,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// Clients that hit an error.
    pub errors: usize,
}

/// Writes a file of `size` bytes of varied content (for the benchmark).
pub fn make_file(path: &Path, size: u64) -> Result<(), Error> {
    use std::io::Write as _;
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let block: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut left = size;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n])?;
        left -= n as u64;
    }
    f.flush()?;
    Ok(())
}

/// What [`run`] measures.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Size of the file downloaded.
    pub size: u64,
    /// Length of each small-request measurement.
    pub secs: Duration,
}

/// Writes the file, starts `server(dir)` (a command that serves `dir` and
/// prints `listening on ADDR` as its first line), measures, stops it.
pub async fn run(
    server: impl FnOnce(&Path) -> std::process::Command,
    opts: Options,
) -> Result<Report, Error> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench.bin");
    make_file(&path, opts.size)?;
    let process = ServerProcess::start(server(dir.path()))?;
    let measured = measure(&process, &path, opts).await;
    process.stop();
    measured
}

/// Every figure, against a running server.
async fn measure(server: &ServerProcess, path: &Path, opts: Options) -> Result<Report, Error> {
    let Options { size, secs } = opts;
    let addr = server.addr.to_string();
    let raw_copy = raw_copy(path).await?;
    let base64 = download(&addr, "bench.bin", size, Encoding::Base64).await?;
    let peak_rss = server.peak_rss();
    let raw = download(&addr, "bench.bin", size, Encoding::Raw).await?;
    let (_, stream) = blocking(move || netkit::ceiling::stream(size)).await?;
    // Small requests from netkit's epoll load generator (one thread, no
    // runtime), so the figure is the server's; then the machine's ceiling
    // for the same sizes: the same generator against a trivial epoll server.
    let request = b"get_metadata bench.bin\r\n".to_vec();
    let reply_len = format!("0 OK\r\n{size}\r\n").len();
    let mut small = Vec::new();
    for clients in [1, 100, 1000] {
        let (request, addr) = (request.clone(), server.addr);
        let r = blocking(move || netkit::ceiling::load(addr, clients, &request, reply_len, secs))
            .await?;
        small.push(Requests {
            clients,
            per_second: r.per_sec,
            p50: r.p50,
            p99: r.p99,
            errors: r.errors,
        });
    }
    let plain = request.clone();
    let ceiling =
        blocking(move || netkit::ceiling::round_trips(100, &plain, reply_len, secs, None))
            .await?
            .per_sec;
    // The same with one stat per request, which the spec makes every server
    // do (the file is looked up on every request).
    let stat_path = path.to_path_buf();
    let ceiling_stat = blocking(move || {
        netkit::ceiling::round_trips(100, &request, reply_len, secs, Some(stat_path))
    })
    .await?
    .per_sec;
    Ok(Report {
        size,
        raw_copy,
        base64,
        raw,
        peak_rss,
        stream,
        small,
        ceiling,
        ceiling_stat,
    })
}

/// Runs a blocking load generator off the runtime's threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?
        .map_err(Error::Io)
}
