//! `protolab rdt bench`, the windowed modes (issue #15 "Performance"):
//! goodput of go-back-n and selective repeat beside kernel TCP moving the
//! same bytes in the same run — over loopback without loss, and over one
//! lossy path for the others: an `impair link` between two namespaces with
//! the loss both ways, for rdt and TCP alike. Where the machine forbids
//! namespaces the lossy rows run rdt alone over loopback with its built-in
//! loss, and say that no TCP comparison was made.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use impair::link::bench::{flat, transfer as tcp_transfer};
use impair::link::{Link, LinkConfig, Side};
use netkit::units::Probability;

use crate::config::Config;
use crate::conn::Stats;
use crate::error::Error;
use crate::mode::{CcKind, Mode, RtoChoice};
use crate::wire::Format;

/// Where a transfer runs.
#[derive(Debug, Clone, Copy)]
pub enum Path<'a> {
    Loopback,
    /// Server in namespace b, client in a.
    Link(&'a Link),
}

/// How a server tells where it listens.
pub type Ready = mpsc::Sender<SocketAddr>;

impl Path<'_> {
    /// The server's and the client's addresses.
    pub fn ips(self) -> (IpAddr, IpAddr) {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        match self {
            Path::Loopback => (lo, lo),
            Path::Link(l) => (
                l.addr(Side::B, true).unwrap_or(lo),
                l.addr(Side::A, true).unwrap_or(lo),
            ),
        }
    }

    /// Runs `server` (in b) until it has said where it listens, then
    /// `client` (in a) against that address; returns both results.
    pub fn run_pair<R: Send>(
        self,
        server: impl FnOnce(Ready) -> Result<usize, Error> + Send,
        client: impl FnOnce(SocketAddr) -> Result<R, Error> + Send,
    ) -> Result<(R, usize), Error> {
        let (tx, rx) = mpsc::channel();
        std::thread::scope(|scope| {
            let served = scope.spawn(move || match self {
                Path::Loopback => server(tx),
                Path::Link(l) => l.in_namespace(Side::B, || server(tx))?,
            });
            let Ok(addr) = rx.recv() else {
                // The server ended before it listened: its own error says why.
                return match served.join() {
                    Ok(Err(e)) => Err(e),
                    _ => Err(Error::Usage("a bench server that starts")),
                };
            };
            let timed = match self {
                Path::Loopback => client(addr),
                Path::Link(l) => l.in_namespace(Side::A, || client(addr))?,
            };
            let received = served
                .join()
                .map_err(|_| Error::Usage("a bench server that does not panic"))??;
            Ok((timed?, received))
        })
    }

    /// Kernel TCP moving `bytes` over this path: bytes per second.
    fn tcp(self, bytes: usize) -> Result<f64, Error> {
        let (b, _) = self.ips();
        let took = match self {
            Path::Loopback => tcp_transfer(
                || TcpListener::bind((b, 0)).map_err(impair::Error::Io),
                |to| TcpStream::connect(to).map_err(impair::Error::Io),
                bytes as u64,
            ),
            Path::Link(l) => tcp_transfer(
                || flat(l.in_namespace(Side::B, || TcpListener::bind((b, 0)))),
                |to| flat(l.in_namespace(Side::A, || TcpStream::connect(to))),
                bytes as u64,
            ),
        }?;
        Ok(bytes as f64 / took.as_secs_f64())
    }
}

/// One windowed configuration measured.
#[derive(Debug, Clone)]
pub struct WindowRow {
    pub mode: Mode,
    pub cc: CcKind,
    pub window: usize,
    pub mss: usize,
    pub loss: f64,
    /// `loopback` or `link`.
    pub path: &'static str,
    pub bytes: usize,
    pub elapsed: Duration,
    pub stats: Stats,
    /// Kernel TCP over the same path in the same run, if measured.
    pub tcp_bytes_s: Option<f64>,
}

impl WindowRow {
    pub fn bytes_per_sec(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64()
    }

    pub fn ratio(&self) -> Option<f64> {
        self.tcp_bytes_s.map(|t| self.bytes_per_sec() / t)
    }

    pub fn bench_line(&self) -> String {
        let mut line = netkit::bench::BenchLine::new("rdt_window")
            .field("mode", self.mode)
            .field("cc", self.cc)
            .field("window", self.window)
            .field("mss", self.mss)
            .field("loss", self.loss)
            .field("path", self.path)
            .num("bytes_s", self.bytes_per_sec(), 0)
            .field("retransmissions", self.stats.retransmissions)
            .field("timeouts", self.stats.timeouts);
        if let (Some(tcp), Some(r)) = (self.tcp_bytes_s, self.ratio()) {
            line = line.num("tcp_bytes_s", tcp, 0).num("ratio", r, 3);
        }
        line.to_string()
    }
}

fn config(mode: Mode, cc: CcKind, window: usize, mss: usize) -> Config {
    Config {
        mode,
        cc,
        window,
        mss,
        rto: RtoChoice::Adaptive,
        timeout: Duration::from_millis(20),
        min_rto: Duration::from_millis(10),
        max_rto: Duration::from_millis(500),
        max_retries: 200,
        syn_retries: 200,
        recv_buffer: 64 << 20,
        ..Config::new(Format::Binary)
    }
}

/// Loopback without loss: these, best of `ROUNDS` alternating with TCP.
const CLEAN: [(Mode, CcKind, usize, usize); 5] = [
    (Mode::GoBackN, CcKind::None, 64, 65_000),
    (Mode::SelectiveRepeat, CcKind::None, 64, 65_000),
    (Mode::SelectiveRepeat, CcKind::Cubic, 64, 65_000),
    (Mode::SelectiveRepeat, CcKind::Reno, 64, 65_000),
    (Mode::SelectiveRepeat, CcKind::None, 512, 1_400),
];

/// Lossy rows: the same configurations at each loss. The MSS fills the
/// link's 1500-byte MTU (20 IP + 8 UDP + 20 rdt header bytes), as kernel TCP
/// fills it with its own. Go-back-n's window is small: each loss sends all of
/// it again. Selective repeat's counts segments in flight (SACKed ones have
/// left it), so a hole under repair does not stop the sender.
const LOSSY: [(Mode, CcKind, usize, usize); 4] = [
    (Mode::GoBackN, CcKind::None, 32, LINK_MSS),
    (Mode::SelectiveRepeat, CcKind::None, 256, LINK_MSS),
    (Mode::SelectiveRepeat, CcKind::None, 1024, LINK_MSS),
    (Mode::SelectiveRepeat, CcKind::Cubic, 512, LINK_MSS),
];

/// The largest rdt segment in one 1500-byte packet.
const LINK_MSS: usize = 1_500 - 20 - 8 - 20;

const LOSSES: [f64; 4] = [0.0, 0.01, 0.05, 0.10];

fn print_row(out: &mut impl FnMut(&str), row: &WindowRow) {
    let mut line = String::new();
    let _ = write!(
        line,
        "  {:<17} {:<6} {:>6} {:>6} {:>5.0}% {:<8} {:>8} {:>4} {:>10.1} MB/s",
        row.mode.name(),
        row.cc.name(),
        row.window,
        row.mss,
        row.loss * 100.0,
        row.path,
        row.stats.retransmissions,
        row.stats.timeouts,
        row.bytes_per_sec() / 1e6,
    );
    if let (Some(tcp), Some(r)) = (row.tcp_bytes_s, row.ratio()) {
        let _ = write!(line, " {:>10.1} MB/s {:>6.2}", tcp / 1e6, r);
    }
    out(&line);
}

/// The windowed table; prints as it goes.
pub fn run(out: &mut impl FnMut(&str), name: &str) -> Result<Vec<WindowRow>, Error> {
    out("");
    out(
        "rdt windowed modes (binary format, adaptive RTO) against kernel TCP moving the same bytes",
    );
    out(
        "  mode              cc      window    mss  loss path      retrans  rto     goodput        TCP   ratio",
    );
    let mut rows = Vec::new();
    let clean_bytes = 128 << 20;
    for (mode, cc, window, mss) in CLEAN {
        let cfg = config(mode, cc, window, mss);
        let mut tcp: f64 = 0.0;
        let (elapsed, stats) = super::alternate(
            super::ROUNDS,
            || {
                tcp = tcp.max(Path::Loopback.tcp(clean_bytes)?);
                Ok(())
            },
            || super::transfer_with(&cfg, 0.0, clean_bytes, Path::Loopback),
        )?;
        let row = WindowRow {
            mode,
            cc,
            window,
            mss,
            loss: 0.0,
            path: "loopback",
            bytes: clean_bytes,
            elapsed,
            stats,
            tcp_bytes_s: Some(tcp),
        };
        print_row(out, &row);
        rows.push(row);
    }
    let lossy_bytes = 32 << 20;
    for loss in LOSSES {
        let mut link_cfg = LinkConfig::new(name).ipv4_only();
        let p = Probability::new(loss).unwrap_or(Probability::ZERO);
        link_cfg.rules.up.loss = p;
        link_cfg.rules.down.loss = p;
        let link = match Link::start(link_cfg) {
            Ok(link) => Some(link),
            Err(impair::Error::NotPermitted(why)) => {
                if loss == 0.0 {
                    out(&format!(
                        "  (no impair link here: {why}; lossy rows use the built-in loss over loopback, no TCP comparison)"
                    ));
                }
                None
            }
            Err(e) => return Err(e.into()),
        };
        let (path, path_name, builtin) = match &link {
            Some(l) => (Path::Link(l), "link", 0.0),
            None if loss == 0.0 => continue,
            None => (Path::Loopback, "loopback", loss),
        };
        for (mode, cc, window, mss) in LOSSY {
            let cfg = config(mode, cc, window, mss);
            // Go-back-n and a loss-driven controller crawl at 10% loss:
            // fewer bytes, one run, keep it short.
            let (bytes, rounds) = if mode == Mode::GoBackN || cc != CcKind::None {
                (lossy_bytes / 8, 1)
            } else {
                (lossy_bytes, super::ROUNDS)
            };
            // Best of alternate runs, kernel TCP's too: one run of each
            // over a lossy link swings by a third.
            let mut best_tcp: f64 = 0.0;
            let (elapsed, stats) = super::alternate(
                rounds,
                || {
                    if let Path::Link(_) = path {
                        best_tcp = best_tcp.max(path.tcp(lossy_bytes)?);
                    }
                    Ok(())
                },
                || super::transfer_with(&cfg, builtin, bytes, path),
            )?;
            let tcp = (best_tcp > 0.0).then_some(best_tcp);
            let row = WindowRow {
                mode,
                cc,
                window,
                mss,
                loss,
                path: path_name,
                bytes,
                elapsed,
                stats,
                tcp_bytes_s: tcp,
            };
            print_row(out, &row);
            rows.push(row);
        }
        if let Some(l) = link {
            l.shutdown()?;
        }
    }
    Ok(rows)
}

/// Goodput against loss over the lossy path: one line per configuration
/// and one for kernel TCP (SVG).
pub fn plot(rows: &[WindowRow]) -> String {
    use crate::plot::{Panel, Series};
    let lossy: Vec<&WindowRow> = rows
        .iter()
        .filter(|r| r.path == "link" || r.loss > 0.0)
        .collect();
    let mut series: Vec<Series> = Vec::new();
    for (mode, cc, window, mss) in LOSSY {
        let points = lossy
            .iter()
            .filter(|r| (r.mode, r.cc, r.window, r.mss) == (mode, cc, window, mss))
            .map(|r| (r.loss * 100.0, r.bytes_per_sec() / 1e6))
            .collect();
        series.push(Series {
            name: format!("{} {} w{window}", short(mode), cc.name()),
            points,
        });
    }
    let mut tcp: Vec<(f64, f64)> = Vec::new();
    for r in &lossy {
        if let Some(t) = r.tcp_bytes_s
            && !tcp.iter().any(|(l, _)| (*l - r.loss * 100.0).abs() < 1e-9)
        {
            tcp.push((r.loss * 100.0, t / 1e6));
        }
    }
    if !tcp.is_empty() {
        series.push(Series {
            name: "kernel TCP".into(),
            points: tcp,
        });
    }
    let path = lossy.first().map_or("loopback", |r| r.path);
    crate::plot::svg(&[Panel {
        title: format!("rdt goodput against loss ({path}, MSS {LINK_MSS})"),
        x_label: "loss each way (%)".into(),
        y_label: "MB/s".into(),
        series,
    }])
}

fn short(mode: Mode) -> &'static str {
    match mode {
        Mode::StopAndWait => "S&W",
        Mode::GoBackN => "GBN",
        Mode::SelectiveRepeat => "SR",
    }
}
