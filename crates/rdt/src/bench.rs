//! `protolab rdt bench` (issue "Performance"): Stop & Wait throughput on
//! loopback against its limit measured in the same run — one segment per
//! round trip, the round trip timed with a plain UDP ping-pong of the same
//! datagram sizes — for MSS 16 and 1400, with 0%, 5% and 20% loss (built in).

use std::fmt::Write as _;
use std::net::UdpSocket;
use std::thread;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::conn::Stats;
use crate::error::Error;
use crate::link::Options;
use crate::segment::Segment;
use crate::seq::Seq;
use crate::socket::RdtSocket;
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
        format!(
            "BENCH rdt_stop_and_wait format={} mss={} loss={} bytes_s={:.0} limit_bytes_s={:.0} ratio={:.3} retransmissions={}",
            self.format,
            self.mss,
            self.loss,
            self.bytes_per_sec(),
            self.limit(),
            self.ratio(),
            self.stats.retransmissions
        )
    }
}

/// The timeout used by every run: far above the loopback round trip.
pub const TIMEOUT: Duration = Duration::from_millis(2);

/// Datagram sizes of one data segment and its ACK in `format`.
fn sizes(format: Format, mss: usize) -> (usize, usize) {
    let mut data = Vec::new();
    format.encode(&Segment::data(Seq(1_000_000), vec![0; mss].into()), &mut data);
    let mut ack = Vec::new();
    format.encode(&Segment::ack(Seq(1_000_000), Seq(1_000_000)), &mut ack);
    (data.len(), ack.len())
}

/// Mean round trip of `rounds` ping-pongs: `up` bytes out, `down` bytes back.
pub fn ping_pong(up: usize, down: usize, rounds: usize) -> Result<Duration, Error> {
    let io = |e| Error::io("ping-pong", e);
    let server = UdpSocket::bind("127.0.0.1:0").map_err(io)?;
    let client = UdpSocket::bind("127.0.0.1:0").map_err(io)?;
    client.connect(server.local_addr().map_err(io)?).map_err(io)?;
    server.set_read_timeout(Some(Duration::from_secs(5))).map_err(io)?;
    client.set_read_timeout(Some(Duration::from_secs(5))).map_err(io)?;
    let warmup = rounds / 10;
    let echo = thread::spawn(move || -> std::io::Result<()> {
        let mut buf = vec![0; 65_536];
        let reply = vec![0; down];
        for _ in 0..rounds + warmup {
            let (_, from) = server.recv_from(&mut buf)?;
            server.send_to(&reply, from)?;
        }
        Ok(())
    });
    let out = vec![0; up];
    let mut buf = vec![0; 65_536];
    let mut start = Instant::now();
    for i in 0..rounds + warmup {
        if i == warmup {
            start = Instant::now();
        }
        client.send(&out).map_err(io)?;
        client.recv(&mut buf).map_err(io)?;
    }
    let elapsed = start.elapsed();
    echo.join().map_err(|_| Error::Usage("a ping-pong thread that does not panic"))?.map_err(io)?;
    Ok(elapsed / rounds as u32)
}

/// Sends one message of `segments` × MSS bytes and times `send` (handshake and close excluded).
pub fn transfer(format: Format, mss: usize, loss: f64, segments: usize) -> Result<(Duration, Stats), Error> {
    let config = Config {
        mss,
        timeout: TIMEOUT,
        max_retries: 200,
        syn_retries: 200,
        ..Config::new(format)
    };
    let opts = |seed| Options {
        loss,
        seed: Some(seed),
        ..Options::new(config.clone())
    };
    let mut listener = RdtSocket::with_options(opts(1));
    listener.bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = thread::spawn(move || -> Result<usize, Error> {
        let (mut conn, _) = listener.accept()?;
        let mut total = 0;
        loop {
            let got = conn.recv(1 << 20)?;
            if got.is_empty() {
                break;
            }
            total += got.len();
        }
        conn.recv_close()?;
        Ok(total)
    });
    let message = vec![0x5a; segments * mss];
    let mut client = RdtSocket::with_options(opts(2));
    client.connect(addr)?;
    let start = Instant::now();
    client.send(&message)?;
    let elapsed = start.elapsed();
    let stats = client.stats().unwrap_or_default();
    client.close()?;
    let received = server.join().map_err(|_| Error::Usage("a server thread that does not panic"))??;
    if received != message.len() {
        return Err(Error::Truncated {
            missing: (message.len() - received) as u64,
        });
    }
    Ok((elapsed, stats))
}

/// Every configuration; prints the table (and BENCH lines) as it goes.
pub fn run(mut out: impl FnMut(&str)) -> Result<Vec<Row>, Error> {
    out("rdt Stop & Wait over loopback UDP; limit = one MSS per round trip of a plain UDP ping-pong");
    out(&format!("(same datagram sizes, measured just before each run); timeout {TIMEOUT:?}, loss built in, both ways"));
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
        let rtt = ping_pong(up, down, 20_000)?;
        let (elapsed, stats) = transfer(format, mss, loss, segments)?;
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
    for row in &rows {
        out(&row.bench_line());
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tiny_run_moves_every_byte() {
        // Not a timing test: only that the bench machinery transfers what it says.
        let (elapsed, stats) = transfer(Format::Binary, 100, 0.0, 50).unwrap();
        assert!(elapsed > Duration::ZERO);
        assert_eq!(stats.bytes_acked, 50 * 100 + 4, "data plus the length segment \"5000\"");
        assert!(ping_pong(30, 20, 100).unwrap() > Duration::ZERO);
    }
}
