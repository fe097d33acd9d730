//! What `hftp bench` found, printed as the tables and `BENCH` lines of the
//! report (the figures are the caller's to keep or compare).

use std::fmt;
use std::time::Duration;

use netkit::bench::BenchLine;

use super::{Requests, Transfer};

/// Every figure of one run.
#[derive(Debug, Clone)]
pub struct Report {
    /// Size of the downloaded file.
    pub size: u64,
    /// The baseline: the file's bytes over a plain TCP copy.
    pub raw_copy: Transfer,
    /// `get_slice` in base64 (the course's form).
    pub base64: Transfer,
    /// `get_slice ... raw`.
    pub raw: Transfer,
    /// The server's peak resident memory after the base64 download.
    pub peak_rss: Option<u64>,
    /// One TCP stream memory to memory, bytes per second.
    pub stream: f64,
    /// Small requests at each concurrency.
    pub small: Vec<Requests>,
    /// The machine's request/response ceiling at 100 clients.
    pub ceiling: f64,
    /// The same ceiling with one stat of the file per request.
    pub ceiling_stat: f64,
}

impl Report {
    /// Requests per second at 100 clients.
    pub fn hundred(&self) -> f64 {
        self.small
            .iter()
            .find(|r| r.clients == 100)
            .map_or(0.0, |r| r.per_second)
    }

    fn rss_mib(&self) -> f64 {
        self.peak_rss.unwrap_or(0) as f64 / 1_048_576.0
    }

    /// The machine-readable lines.
    pub fn bench_lines(&self) -> Vec<BenchLine> {
        let mb = |t: &Transfer| t.rate() / 1e6;
        let mut lines = vec![
            BenchLine::new("hftp_download")
                .field("bytes", self.size)
                .num("base64_mb_s", mb(&self.base64), 0)
                .num("raw_mb_s", mb(&self.raw), 0)
                .num("baseline_mb_s", mb(&self.raw_copy), 0)
                .num("stream_ceiling_mb_s", self.stream / 1e6, 0)
                .num("base64_ratio", self.base64.rate() / self.raw_copy.rate(), 3)
                .num("raw_ratio", self.raw.rate() / self.raw_copy.rate(), 3)
                .num("first_byte_ms", ms(self.base64.first_byte), 3)
                .num("server_peak_rss_mib", self.rss_mib(), 1),
            BenchLine::new("hftp_ceiling")
                .field("clients", 100)
                .num("req_s", self.ceiling, 0)
                .num("with_stat_req_s", self.ceiling_stat, 0)
                .num("ratio", self.hundred() / self.ceiling, 3)
                .num("ratio_with_stat", self.hundred() / self.ceiling_stat, 3),
        ];
        for r in &self.small {
            lines.push(
                BenchLine::new("hftp_small")
                    .field("clients", r.clients)
                    .num("req_s", r.per_second, 0)
                    .num("p50_ms", ms(r.p50), 3)
                    .num("p99_ms", ms(r.p99), 3)
                    .field("errors", r.errors),
            );
        }
        lines
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "hftp download of a {} MB file (one slice, one connection)",
            self.size / 1_000_000
        )?;
        writeln!(
            f,
            "  {:<34} {:>10} {:>10} {:>12}",
            "path", "MB/s", "ratio", "first byte"
        )?;
        for (label, t) in [
            ("raw TCP copy (baseline)", &self.raw_copy),
            ("get_slice base64", &self.base64),
            ("get_slice raw", &self.raw),
        ] {
            writeln!(
                f,
                "  {label:<34} {:>10.0} {:>10.2} {:>9.3} ms",
                t.rate() / 1e6,
                t.rate() / self.raw_copy.rate(),
                ms(t.first_byte)
            )?;
        }
        writeln!(
            f,
            "  machine ceiling, one TCP stream memory to memory (no file, no runtime, like iperf3): {:.0} MB/s; raw slice {:.2} of it",
            self.stream / 1e6,
            self.raw.rate() / self.stream
        )?;
        match self.peak_rss {
            Some(_) => writeln!(
                f,
                "  server peak memory (VmHWM) after the base64 download: {:.1} MiB",
                self.rss_mib()
            )?,
            None => writeln!(f, "  server peak memory: not readable here (no /proc)")?,
        }
        writeln!(
            f,
            "hftp small requests (get_metadata, one in flight per client)"
        )?;
        writeln!(
            f,
            "  {:>8} {:>12} {:>10} {:>10} {:>7}",
            "clients", "req/s", "p50 ms", "p99 ms", "errors"
        )?;
        for r in &self.small {
            writeln!(
                f,
                "  {:>8} {:>12.0} {:>10.3} {:>10.3} {:>7}",
                r.clients,
                r.per_second,
                ms(r.p50),
                ms(r.p99),
                r.errors
            )?;
        }
        writeln!(
            f,
            "  machine ceiling, 100 clients (epoll server and load, no runtime, no protocol, same sizes): {:.0} req/s",
            self.ceiling
        )?;
        writeln!(
            f,
            "  the same ceiling with one stat of the file per request (as the spec requires): {:.0} req/s",
            self.ceiling_stat
        )?;
        writeln!(
            f,
            "  100 clients reach {:.2} of the ceiling ({:.2} of the ceiling with stat)",
            self.hundred() / self.ceiling,
            self.hundred() / self.ceiling_stat
        )?;
        for line in self.bench_lines() {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}
