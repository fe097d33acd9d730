//! `protolab rdt bench` (issue "Performance"): Stop & Wait throughput on
//! loopback against its limit measured in the same run — one segment per
//! round trip, the round trip timed with a plain UDP ping-pong of the same
//! datagram sizes — for MSS 16 and 1400, with 0%, 5% and 20% loss (built in);
//! then the windowed modes against kernel TCP ([`window`]).

pub mod window;

use std::fmt::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::conn::Stats;
use crate::error::Error;
use crate::link::Options;
use crate::segment::Segment;
use crate::seq::Seq;
use crate::socket::RdtSocket;
use crate::wait::{Until, Waiter};
use crate::wire::Format;

/// One measured configuration.
#[derive(Debug, Clone)]
pub struct Row {
    pub format: Format,
    pub mss: usize,
    pub loss: f64,
    pub bytes: usize,
    pub elapsed: Duration,
    pub stats: Stats,
    /// Mean round trip of a plain UDP ping-pong with the same sizes.
    pub rtt: Duration,
}

impl Row {
    pub fn bytes_per_sec(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64()
    }

    /// One MSS per measured round trip.
    pub fn limit(&self) -> f64 {
        self.mss as f64 / self.rtt.as_secs_f64()
    }

    pub fn ratio(&self) -> f64 {
        self.bytes_per_sec() / self.limit()
    }

    pub fn bench_line(&self) -> String {
        netkit::bench::BenchLine::new("rdt_stop_and_wait")
            .field("format", self.format)
            .field("mss", self.mss)
            .field("loss", self.loss)
            .num("bytes_s", self.bytes_per_sec(), 0)
            .num("limit_bytes_s", self.limit(), 0)
            .num("ratio", self.ratio(), 3)
            .field("retransmissions", self.stats.retransmissions)
            .to_string()
    }
}

/// Lossless cases: baseline and transfer alternate this many times, best of each.
pub const ROUNDS: usize = 3;

/// The timeout used by every run: far above the loopback round trip.
pub const TIMEOUT: Duration = Duration::from_millis(2);

/// Datagram sizes of one data segment and its ACK in `format`.
fn sizes(format: Format, mss: usize) -> (usize, usize) {
    let mut data = Vec::new();
    format.encode(
        &Segment::data(Seq(1_000_000), vec![0; mss].into()),
        &mut data,
    );
    let mut ack = Vec::new();
    format.encode(&Segment::ack(Seq(1_000_000), Seq(1_000_000)), &mut ack);
    (data.len(), ack.len())
}

/// Mean round trip of `rounds` ping-pongs: `up` bytes out, `down` bytes back.
/// Both ends wait the way the rdt sockets do (non-blocking + epoll), so the
/// baseline differs from a transfer only by the protocol's own work.
pub fn ping_pong(up: usize, down: usize, rounds: usize) -> Result<Duration, Error> {
    let io = |e| Error::io("ping-pong", e);
    let server = Waiting::bind()?;
    let mut client = Waiting::bind()?;
    let server_addr = server.udp.local_addr().map_err(io)?;
    let warmup = rounds / 10;
    let echo = thread::spawn(move || -> Result<(), Error> {
        let mut server = server;
        let reply = vec![0; down];
        for _ in 0..rounds + warmup {
            let from = server.recv()?;
            server.udp.send_to(&reply, from).map_err(io)?;
        }
        Ok(())
    });
    let out = vec![0; up];
    let mut start = Instant::now();
    for i in 0..rounds + warmup {
        if i == warmup {
            start = Instant::now();
        }
        client.udp.send_to(&out, server_addr).map_err(io)?;
        client.recv()?;
    }
    let elapsed = start.elapsed();
    echo.join()
        .map_err(|_| Error::Usage("a ping-pong thread that does not panic"))??;
    Ok(elapsed / rounds as u32)
}

/// A non-blocking UDP socket waiting in epoll, as `Link` does.
struct Waiting {
    udp: UdpSocket,
    waiter: Waiter,
    buf: Vec<u8>,
}

impl Waiting {
    fn bind() -> Result<Waiting, Error> {
        let io = |e| Error::io("ping-pong socket", e);
        let udp = UdpSocket::bind("127.0.0.1:0").map_err(io)?;
        let waiter = Waiter::new(&udp).map_err(io)?;
        Ok(Waiting {
            udp,
            waiter,
            buf: vec![0; 65_536],
        })
    }

    fn recv(&mut self) -> Result<SocketAddr, Error> {
        let deadline = Instant::now() + Duration::from_secs(5);
        match self
            .waiter
            .recv_from(&self.udp, &mut self.buf, Until::At(deadline))
        {
            Ok(Some((_, from))) => Ok(from),
            Ok(None) => Err(Error::PeerSilent(Duration::from_secs(5))),
            Err(e) => Err(Error::io("ping-pong receive", e)),
        }
    }
}

/// Sends one message of `segments` × MSS bytes and times `send` (handshake and close excluded).
pub fn transfer(
    format: Format,
    mss: usize,
    loss: f64,
    segments: usize,
) -> Result<(Duration, Stats), Error> {
    let config = Config {
        mss,
        timeout: TIMEOUT,
        max_retries: 200,
        syn_retries: 200,
        ..Config::new(format)
    };
    transfer_with(&config, loss, segments * mss, window::Path::Loopback)
}

/// Sends one message of `len` bytes with `config` over `path` and times
/// `send` (handshake and close excluded); fails if fewer bytes arrive.
pub fn transfer_with(
    config: &Config,
    loss: f64,
    len: usize,
    path: window::Path<'_>,
) -> Result<(Duration, Stats), Error> {
    // The loss is the client's: its socket drops what it sends and what it
    // receives, so each direction loses `loss` once (setting it on both ends
    // would apply it twice).
    let opts = |seed, loss| Options {
        loss,
        seed: Some(seed),
        ..Options::new(config.clone())
    };
    let (server_ip, _) = path.ips();
    let server = move |ready: window::Ready| -> Result<usize, Error> {
        let mut listener = RdtSocket::with_options(opts(1, 0.0));
        listener.bind(SocketAddr::new(server_ip, 0))?;
        let _ = ready.send(listener.local_addr()?);
        let (mut conn, _) = listener.accept()?;
        // Counted and dropped, as the TCP baseline's receiver does (and
        // `rdt recv` writing to a pipe): keeping it all would time the
        // memory it takes.
        let mut buf = vec![0; 1 << 20];
        let mut got = 0;
        loop {
            match conn.recv_into(&mut buf)? {
                0 => break,
                n => got += n,
            }
        }
        conn.recv_close()?;
        Ok(got)
    };
    let client = move |addr: SocketAddr| -> Result<(Duration, Stats), Error> {
        // An owned buffer, sent without a copy of ours before the kernel's
        // (`send_bytes`), as TCP's baseline writes its buffer.
        let message = bytes::Bytes::from(vec![0x5a; len]);
        let mut client = RdtSocket::with_options(opts(2, loss));
        client.connect(addr)?;
        let start = Instant::now();
        client.send_bytes(&message)?;
        let elapsed = start.elapsed();
        let stats = client.stats().unwrap_or_default();
        client.close()?;
        Ok((elapsed, stats))
    };
    let (timed, received) = path.run_pair(server, client)?;
    if received != len {
        return Err(Error::Truncated {
            missing: (len - received) as u64,
        });
    }
    Ok(timed)
}

/// Runs `baseline` and `run` by turns, `rounds` times (loopback figures on a
/// shared 2-core machine vary from run to run); the fastest run.
fn alternate(
    rounds: usize,
    mut baseline: impl FnMut() -> Result<(), Error>,
    mut run: impl FnMut() -> Result<(Duration, Stats), Error>,
) -> Result<(Duration, Stats), Error> {
    let mut best: Option<(Duration, Stats)> = None;
    for _ in 0..rounds {
        baseline()?;
        let got = run()?;
        if best.is_none_or(|(e, _)| got.0 < e) {
            best = Some(got);
        }
    }
    best.ok_or(Error::Usage("run at least once"))
}

/// Which tables `run` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tables {
    All,
    StopAndWait,
    Windowed,
}

/// Every row measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub stop_and_wait: Vec<Row>,
    pub windowed: Vec<window::WindowRow>,
}

/// Every configuration of `tables`; prints the tables (and BENCH lines) as it goes.
pub fn run(mut out: impl FnMut(&str), tables: Tables) -> Result<Report, Error> {
    let rows = if tables == Tables::Windowed {
        Vec::new()
    } else {
        stop_and_wait(&mut out)?
    };
    let windowed = if tables == Tables::StopAndWait {
        Vec::new()
    } else {
        window::run(&mut out, "rdtbench")?
    };
    for row in &rows {
        out(&row.bench_line());
    }
    for row in &windowed {
        out(&row.bench_line());
    }
    Ok(Report {
        stop_and_wait: rows,
        windowed,
    })
}

/// The Stop & Wait table.
fn stop_and_wait(out: &mut impl FnMut(&str)) -> Result<Vec<Row>, Error> {
    out(
        "rdt Stop & Wait over loopback UDP; limit = one MSS per round trip of a plain UDP ping-pong",
    );
    out(&format!(
        "with the same datagram sizes; lossless: best of {ROUNDS} alternating runs each; timeout {TIMEOUT:?}; loss built into the client, both directions"
    ));
    out("  format  mss   loss  segments  retrans   throughput      limit   ratio");
    let cases: [(Format, usize, f64, usize); 10] = [
        (Format::Course, 16, 0.0, 20_000),
        (Format::Course, 1400, 0.0, 20_000),
        (Format::Binary, 16, 0.0, 20_000),
        (Format::Binary, 1400, 0.0, 20_000),
        (Format::Course, 16, 0.05, 2_000),
        (Format::Course, 1400, 0.05, 2_000),
        (Format::Binary, 1400, 0.05, 2_000),
        (Format::Course, 16, 0.20, 400),
        (Format::Course, 1400, 0.20, 400),
        (Format::Binary, 1400, 0.20, 400),
    ];
    let mut rows = Vec::new();
    for (format, mss, loss, segments) in cases {
        let (up, down) = sizes(format, mss);
        // Loopback round trips on a shared 2-core machine vary from run to run:
        // baseline and transfer alternate, best of each (one run when lossy,
        // where the timeouts dominate).
        let rounds = if loss == 0.0 { ROUNDS } else { 1 };
        let mut rtt = Duration::MAX;
        let (elapsed, stats) = alternate(
            rounds,
            || {
                rtt = rtt.min(ping_pong(up, down, 20_000)?);
                Ok(())
            },
            || transfer(format, mss, loss, segments),
        )?;
        let row = Row {
            format,
            mss,
            loss,
            bytes: segments * mss,
            elapsed,
            stats,
            rtt,
        };
        let mut line = String::new();
        let _ = write!(
            line,
            "  {:<7} {:>4} {:>5.0}% {:>9} {:>8} {:>9.2} MB/s {:>6.2} MB/s {:>6.2}",
            format.name(),
            mss,
            loss * 100.0,
            segments,
            stats.retransmissions,
            row.bytes_per_sec() / 1e6,
            row.limit() / 1e6,
            row.ratio()
        );
        out(&line);
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tiny_run_moves_every_byte() {
        // Not a timing test: only that the bench machinery transfers what it says.
        // `transfer` itself fails if fewer bytes arrive than were sent.
        let (_, stats) = transfer(Format::Binary, 100, 0.0, 50).unwrap();
        assert_eq!(
            stats.bytes_acked,
            50 * 100 + 4,
            "data plus the length segment \"5000\""
        );
        // Every ping answered (a lost one would end in an error, not a time).
        ping_pong(30, 20, 100).unwrap();
    }
}
