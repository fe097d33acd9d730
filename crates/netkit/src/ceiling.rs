//! The machine's ceiling for small request/response traffic over loopback TCP,
//! measured by the request/response benchmarks next to their own figures: a
//! single-threaded epoll (mio) server that answers each request with a fixed
//! reply, and a single-threaded epoll load generator keeping one request in
//! flight per connection. No async runtime, no protocol, no allocation per
//! request: what is left is the kernel's cost of two small TCP writes, two reads
//! and two wake-ups per round trip. No server can beat it on the same machine.
//! The same load generator ([`load`]) measures real servers, so a figure and
//! its ceiling differ only by the server. [`stream`] is the ceiling for bulk
//! transfers: one TCP stream, memory to memory, as `iperf3` measures it.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(usize::MAX);

/// What a load run measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundTrips {
    /// Round trips completed per second.
    pub per_sec: f64,
    /// Median time from a request's write to its whole reply.
    pub p50: Duration,
    /// 99th percentile of the same.
    pub p99: Duration,
    /// Connections that failed (closed or reset by the server).
    pub errors: usize,
}

/// The ceiling: [`load`] against a trivial epoll server that answers each
/// `request` with `reply_len` bytes, after a `stat` of `stat_each` if given
/// (what a server that must look at a file for every request cannot avoid).
pub fn round_trips(
    clients: usize,
    request: &[u8],
    reply_len: usize,
    secs: Duration,
    stat_each: Option<std::path::PathBuf>,
) -> io::Result<RoundTrips> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let request_len = request.len();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let server_stop = std::sync::Arc::clone(&stop);
    let server = std::thread::spawn(move || {
        serve(
            TcpListener::from_std(listener),
            request_len,
            reply_len,
            stat_each.as_deref(),
            &server_stop,
        )
    });
    let result = load(addr, clients, request, reply_len, secs);
    stop.store(true, std::sync::atomic::Ordering::Release);
    let served = server
        .join()
        .map_err(|_| io::Error::other("ceiling server panicked"))?;
    served?;
    result
}

fn serve(
    mut listener: TcpListener,
    request_len: usize,
    reply_len: usize,
    stat_each: Option<&std::path::Path>,
    stop: &std::sync::atomic::AtomicBool,
) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: Vec<(TcpStream, usize)> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let reply = vec![b'r'; reply_len * 64];
    while !stop.load(std::sync::atomic::Ordering::Acquire) {
        poll.poll(&mut events, Some(Duration::from_millis(50)))?;
        for ev in &events {
            if ev.token() == LISTENER {
                while let Ok((mut s, _)) = listener.accept() {
                    s.set_nodelay(true)?;
                    poll.registry()
                        .register(&mut s, Token(conns.len()), Interest::READABLE)?;
                    conns.push((s, 0));
                }
                continue;
            }
            let Some((s, partial)) = conns.get_mut(ev.token().0) else {
                continue;
            };
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        *partial += n;
                        let whole = (*partial / request_len).min(64);
                        *partial -= whole * request_len;
                        if let Some(path) = stat_each {
                            for _ in 0..whole {
                                std::hint::black_box(std::fs::metadata(path).map(|m| m.len()).ok());
                            }
                        }
                        s.write_all(&reply[..whole * reply_len])?;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(())
}

/// A single-threaded epoll load generator: `clients` connections to `addr`,
/// each with one `request` in flight, every reply `reply_len` bytes, for `secs`.
/// Cheap enough that the figure is the server's: one read and one write per
/// round trip, no runtime, no allocation per request.
pub fn load(
    addr: SocketAddr,
    clients: usize,
    request: &[u8],
    reply_len: usize,
    secs: Duration,
) -> io::Result<RoundTrips> {
    struct Conn {
        stream: TcpStream,
        partial: usize,
        sent: Instant,
        alive: bool,
    }
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut conns = Vec::with_capacity(clients);
    for i in 0..clients {
        let s = std::net::TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(s);
        poll.registry()
            .register(&mut stream, Token(i), Interest::READABLE)?;
        conns.push(Conn {
            stream,
            partial: 0,
            sent: Instant::now(),
            alive: true,
        });
    }
    let start = Instant::now();
    for c in &mut conns {
        c.sent = Instant::now();
        c.stream.write_all(request)?;
    }
    let mut latencies = Vec::with_capacity(1 << 20);
    let mut errors = 0;
    let mut buf = vec![0u8; 64 * 1024];
    while start.elapsed() < secs {
        poll.poll(&mut events, Some(Duration::from_millis(50)))?;
        for ev in &events {
            let Some(c) = conns.get_mut(ev.token().0).filter(|c| c.alive) else {
                continue;
            };
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => {
                        c.alive = false;
                        errors += 1;
                        break;
                    }
                    Ok(n) => {
                        c.partial += n;
                        let whole = c.partial / reply_len;
                        c.partial %= reply_len;
                        for _ in 0..whole {
                            latencies.push(c.sent.elapsed());
                            c.sent = Instant::now();
                            if c.stream.write_all(request).is_err() {
                                c.alive = false;
                                errors += 1;
                                break;
                            }
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        c.alive = false;
                        errors += 1;
                        break;
                    }
                }
            }
        }
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    let pct = |q: f64| {
        latencies
            .get(((latencies.len().saturating_sub(1)) as f64 * q) as usize)
            .copied()
            .unwrap_or_default()
    };
    Ok(RoundTrips {
        per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: pct(0.5),
        p99: pct(0.99),
        errors,
    })
}

/// The machine's ceiling for one bulk TCP stream over loopback, memory to
/// memory (what `iperf3` measures): a thread writes `bytes` from a 1 MiB
/// buffer into a blocking socket, this one reads them into another. No file,
/// no runtime, no protocol. Returns the bytes counted and bytes per second.
pub fn stream(bytes: u64) -> io::Result<(u64, f64)> {
    const BUF: usize = 1024 * 1024;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let writer = std::thread::spawn(move || -> io::Result<()> {
        let (mut s, _) = listener.accept()?;
        let buf = vec![b's'; BUF];
        let mut left = bytes;
        while left > 0 {
            let n = usize::try_from(left).map_or(BUF, |l| l.min(BUF));
            s.write_all(&buf[..n])?;
            left -= n as u64;
        }
        Ok(())
    });
    let mut s = std::net::TcpStream::connect(addr)?;
    // Bounded: a writer that stalls is an error, not a hang.
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let start = Instant::now();
    let mut buf = vec![0u8; BUF];
    let mut got = 0u64;
    loop {
        match s.read(&mut buf)? {
            0 => break,
            n => got += n as u64,
        }
    }
    let secs = start.elapsed().as_secs_f64();
    writer
        .join()
        .map_err(|_| io::Error::other("stream writer panicked"))??;
    Ok((got, got as f64 / secs.max(1e-9)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_run_completes_round_trips() {
        // Not a timing test: the machinery answers every request it is sent.
        let r = round_trips(
            4,
            b"ping\n",
            3,
            Duration::from_millis(100),
            Some(std::env::temp_dir()),
        )
        .unwrap();
        assert!(r.per_sec > 0.0 && r.p99 >= r.p50);
        assert_eq!(r.errors, 0);
    }

    #[test]
    fn the_stream_ceiling_counts_every_byte() {
        let (got, rate) = stream(3_000_001).unwrap();
        assert_eq!(got, 3_000_001);
        assert!(rate > 0.0);
    }
}
