//! The link's own cost (issue #14, performance): kernel TCP throughput through
//! a link with no rules, against kernel TCP over loopback and over a veth pair
//! between two namespaces (the kernel's own path), all in the same run; and
//! the latency the link adds per packet at p99 with 10% loss, from UDP
//! round trips through it against round trips over the veth pair.
//!
//! Needs root, like the link itself.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use super::netns::{self, VethPair};
use super::{Link, LinkConfig, Side};
use crate::Error;
use crate::units::Probability;

const WRITE: usize = 256 * 1024;
/// Round trips measured per path.
const PINGS: u32 = 3000;
/// One ping sent every so often, answered or not.
const PING_EVERY: Duration = Duration::from_micros(300);

/// Round-trip times of one path, in microseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundTrips {
    /// Round trips that came back.
    pub samples: usize,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
}

/// Figures of one run of the link benchmark.
#[derive(Debug, Clone, Copy)]
pub struct LinkBenchReport {
    /// Bytes per transfer.
    pub bytes: u64,
    /// Best kernel TCP rate over loopback, bytes per second.
    pub loopback: f64,
    /// Best kernel TCP rate over a veth pair between two namespaces.
    pub veth: f64,
    /// Best kernel TCP rate through a link with no rules.
    pub link: f64,
    /// Largest packet the link saw (at most the MTU: real packets).
    pub largest_packet: u64,
    /// UDP round trips over the veth pair.
    pub veth_rtt: RoundTrips,
    /// UDP round trips through a link with no rules.
    pub link_clean_rtt: RoundTrips,
    /// UDP round trips through a link losing 10% each way.
    pub link_rtt: RoundTrips,
}

impl LinkBenchReport {
    /// The link's throughput as a share of the veth pair's (target ≥ 0.3).
    pub fn ratio(&self) -> f64 {
        self.link / self.veth
    }

    /// Latency the link adds per packet (one way) at p99: half the difference
    /// of the round trips' p99 (target < 50 µs).
    pub fn added_p99_us(&self) -> f64 {
        ((self.link_rtt.p99_us - self.veth_rtt.p99_us) / 2.0).max(0.0)
    }
}

impl fmt::Display for LinkBenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mb = |r: f64| r / 1e6;
        writeln!(
            f,
            "impair link: kernel TCP, {} MB per run, best of the runs",
            self.bytes / 1_000_000
        )?;
        writeln!(f, "  {:<46} {:>10}", "path", "MB/s")?;
        writeln!(f, "  {:<46} {:>10.0}", "loopback", mb(self.loopback))?;
        writeln!(
            f,
            "  {:<46} {:>10.0}",
            "veth pair between two namespaces (baseline)",
            mb(self.veth)
        )?;
        writeln!(
            f,
            "  {:<46} {:>10.0}",
            format!(
                "impair link, no rules (packets <= {} B)",
                self.largest_packet
            ),
            mb(self.link)
        )?;
        writeln!(f, "  {:<46} {:>10.2}", "ratio (link / veth)", self.ratio())?;
        writeln!(f, "  UDP round trips (us)          p50      p99   samples")?;
        for (what, r) in [
            ("veth pair", self.veth_rtt),
            ("link, no rules", self.link_clean_rtt),
            ("link, 10% loss each way", self.link_rtt),
        ] {
            writeln!(
                f,
                "  {what:<26} {:>7.0} {:>8.0} {:>9}",
                r.p50_us, r.p99_us, r.samples
            )?;
        }
        writeln!(
            f,
            "  added per packet at p99: {:.1} us",
            self.added_p99_us()
        )?;
        let line = netkit::bench::BenchLine::new("impair_link")
            .num("link_mb_s", mb(self.link), 0)
            .num("veth_mb_s", mb(self.veth), 0)
            .num("loopback_mb_s", mb(self.loopback), 0)
            .num("ratio", self.ratio(), 3)
            .num("added_p99_us", self.added_p99_us(), 1);
        writeln!(f, "{line}")
    }
}

/// Runs the benchmark: `runs` transfers of `bytes` on each path.
pub fn run(bytes: u64, runs: u32) -> Result<LinkBenchReport, Error> {
    let name = format!("plbench{}", std::process::id() % 100_000);
    let any = |ip: IpAddr| SocketAddr::new(ip, 0);
    let best = |f: &dyn Fn() -> Result<Duration, Error>| -> Result<f64, Error> {
        let mut best = Duration::MAX;
        for _ in 0..runs.max(1) {
            best = best.min(f()?);
        }
        Ok(bytes as f64 / best.as_secs_f64())
    };
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let loopback = best(&|| {
        transfer(
            || Ok(TcpListener::bind(any(lo))?),
            |to| Ok(TcpStream::connect(to)?),
            bytes,
        )
    })?;

    let veth = VethPair::new(&name, super::config::DEFAULT_MTU)?;
    let veth_rate = best(&|| {
        transfer(
            || {
                flat(netns::run_in(&veth.ns[1], || {
                    TcpListener::bind(any(veth.addrs[1]))
                }))
            },
            |to| flat(netns::run_in(&veth.ns[0], || TcpStream::connect(to))),
            bytes,
        )
    })?;
    let veth_rtt = round_trips(
        || {
            flat(netns::run_in(&veth.ns[1], || {
                UdpSocket::bind(any(veth.addrs[1]))
            }))
        },
        || {
            flat(netns::run_in(&veth.ns[0], || {
                UdpSocket::bind(any(veth.addrs[0]))
            }))
        },
    )?;
    drop(veth);

    let link = Link::start(LinkConfig::new(&name).ipv4_only())?;
    let (a, b) = (
        link.addr(Side::A, true).unwrap_or(lo),
        link.addr(Side::B, true).unwrap_or(lo),
    );
    let link_rate = best(&|| {
        transfer(
            || flat(link.in_namespace(Side::B, || TcpListener::bind(any(b)))),
            |to| flat(link.in_namespace(Side::A, || TcpStream::connect(to))),
            bytes,
        )
    })?;
    let link_clean_rtt = round_trips(
        || flat(link.in_namespace(Side::B, || UdpSocket::bind(any(b)))),
        || flat(link.in_namespace(Side::A, || UdpSocket::bind(any(a)))),
    )?;
    let largest_packet = link.shutdown()?.largest;

    let mut lossy = LinkConfig::new(&name).ipv4_only();
    let ten = Probability::new(0.1).unwrap_or(Probability::ZERO);
    lossy.rules.up.loss = ten;
    lossy.rules.down.loss = ten;
    let link = Link::start(lossy)?;
    let link_rtt = round_trips(
        || flat(link.in_namespace(Side::B, || UdpSocket::bind(any(b)))),
        || flat(link.in_namespace(Side::A, || UdpSocket::bind(any(a)))),
    )?;
    link.shutdown()?;

    Ok(LinkBenchReport {
        bytes,
        loopback,
        veth: veth_rate,
        link: link_rate,
        largest_packet,
        veth_rtt,
        link_clean_rtt,
        link_rtt,
    })
}

/// One transfer of `bytes` over kernel TCP: the time from connect to the
/// receiver's end of stream (other benchmarks compare against it too).
pub fn transfer(
    listen: impl FnOnce() -> Result<TcpListener, Error>,
    connect: impl FnOnce(SocketAddr) -> Result<TcpStream, Error>,
    bytes: u64,
) -> Result<Duration, Error> {
    let listener = listen()?;
    let to = listener.local_addr()?;
    let receiver = std::thread::spawn(move || -> io::Result<u64> {
        let (mut s, _) = listener.accept()?;
        let mut buf = vec![0u8; WRITE];
        let mut got = 0u64;
        loop {
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Ok(got);
            }
            got += n as u64;
        }
    });
    let started = Instant::now();
    let mut c = connect(to)?;
    let chunk = vec![0x5au8; WRITE];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(WRITE as u64) as usize;
        c.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    drop(c);
    let got = receiver
        .join()
        .map_err(|_| Error::Link("the receiving thread panicked".into()))??;
    let took = started.elapsed();
    if got != bytes {
        return Err(Error::Link(format!("{got} of {bytes} bytes arrived")));
    }
    Ok(took)
}

/// UDP round trips of 64-byte datagrams between two sockets: `echo` sends
/// back what it gets; `ping` sends one every [`PING_EVERY`] whatever comes
/// back (so a lost datagram leaves no idle gap that would make the next
/// round trip start from sleeping threads), and a second thread matches the
/// answers to their send times.
fn round_trips(
    echo: impl FnOnce() -> Result<UdpSocket, Error>,
    ping: impl FnOnce() -> Result<UdpSocket, Error>,
) -> Result<RoundTrips, Error> {
    let echo = echo()?;
    let to = echo.local_addr()?;
    echo.set_read_timeout(Some(Duration::from_millis(200)))?;
    let echoer = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        // Ends when the pinger stops sending for a while.
        while let Ok((n, from)) = echo.recv_from(&mut buf) {
            let _ = echo.send_to(&buf[..n], from);
        }
    });
    let ping = ping()?;
    ping.connect(to)?;
    let answers = ping.try_clone()?;
    answers.set_read_timeout(Some(Duration::from_millis(100)))?;
    let start = Instant::now();
    let sent: std::sync::Arc<Vec<std::sync::atomic::AtomicU64>> = std::sync::Arc::new(
        (0..PINGS)
            .map(|_| std::sync::atomic::AtomicU64::new(0))
            .collect(),
    );
    let sent_at = std::sync::Arc::clone(&sent);
    let collector = std::thread::spawn(move || {
        let mut rtts = Vec::with_capacity(PINGS as usize);
        let mut buf = [0u8; 64];
        while let Ok(n) = answers.recv(&mut buf) {
            let now = start.elapsed().as_nanos() as u64;
            if n < 4 {
                continue;
            }
            let seq = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if let Some(t) = sent_at.get(seq) {
                let t = t.load(std::sync::atomic::Ordering::Acquire);
                rtts.push(Duration::from_nanos(now.saturating_sub(t)));
            }
            if seq + 1 == PINGS as usize {
                break;
            }
        }
        rtts
    });
    for seq in 0..PINGS {
        let mut msg = [0u8; 64];
        msg[..4].copy_from_slice(&seq.to_be_bytes());
        sent[seq as usize].store(
            start.elapsed().as_nanos() as u64,
            std::sync::atomic::Ordering::Release,
        );
        ping.send(&msg)?;
        let next = start + PING_EVERY * (seq + 1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let mut rtts = collector
        .join()
        .map_err(|_| Error::Link("the answering thread panicked".into()))?;
    drop(ping);
    let _ = echoer.join();
    rtts.sort();
    let at = |q: f64| -> f64 {
        rtts.get(((rtts.len() as f64 * q) as usize).min(rtts.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    Ok(RoundTrips {
        samples: rtts.len(),
        p50_us: at(0.50),
        p99_us: at(0.99),
    })
}

/// A socket made in a namespace: both failures as one.
/// A namespace run's result with the I/O result inside flattened.
pub fn flat<T>(r: Result<io::Result<T>, Error>) -> Result<T, Error> {
    r.and_then(|r| r.map_err(Error::Io))
}
