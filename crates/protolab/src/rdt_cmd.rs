//! `protolab rdt send|recv|bench|check`: arguments → the `rdt` library (blocking
//! sockets, run on a blocking thread).

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use netkit::units::Dur;
use rdt::{
    CcKind, Config, CwndTrace, DialectChoice, Ending, Format, Mode, Options, RdtSocket, RtoChoice,
    Stats, Trace,
};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  protolab rdt recv --port 8000 -o received.txt
  protolab rdt send localhost 8000 < archivo.txt
  protolab rdt send localhost 8000 --loss 0.2 --seed 7 --debug < archivo.txt
  protolab rdt send localhost 8000 --drop 2 --trace lost-ack.svg < archivo.txt
  protolab rdt send localhost 8000 --dialect own-isn,segments < archivo.txt
  protolab rdt recv --port 8000 --format binary --mode sr -o big.bin
  protolab rdt send localhost 8000 --format binary --mode sr --window 256 --mss 1452 --rto adaptive < big.bin
  protolab rdt send localhost 8000 --format binary --mode sr --cc reno --loss 0.02 --trace-cwnd cwnd.svg < big.bin
  protolab rdt check --server-cmd 'python3 servidor.py {port}'
  protolab rdt bench")]
pub struct RdtArgs {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// The seed's client: sends stdin to HOST PORT as one message, then closes.
    #[command(after_help = "Example:\n  protolab rdt send localhost 8000 < archivo.txt")]
    Send {
        host: String,
        port: u16,
        /// Read this file instead of stdin.
        #[arg(long, short)]
        input: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// The receiving server: accepts one client, writes what it sends to stdout or a file.
    #[command(
        after_help = "Example:\n  protolab rdt recv --port 8000 -o received.txt",
        mut_arg("port", |a| a.required(true).default_value(None::<&str>))
    )]
    Recv {
        #[command(flatten)]
        listen: crate::listen::ListenArgs,
        /// Write the received data here instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Grade another implementation (their server, their client or both),
    /// scenario by scenario.
    Check(crate::rdt_check_cmd::CheckArgs),
    /// Stop & Wait against one segment per measured round trip; go-back-n and
    /// selective repeat against kernel TCP (over loopback, and over a lossy
    /// `impair link` when the machine allows namespaces).
    #[command(
        after_help = "Examples:\n  cargo run --release -- rdt bench\n  cargo run --release -- rdt bench --only windowed --plot goodput.svg"
    )]
    Bench {
        /// Print each BENCH line as a JSON object on stdout (the report on stderr).
        #[arg(long)]
        json: bool,
        /// One table only: `stop-and-wait` or `windowed`.
        #[arg(long)]
        only: Option<BenchTable>,
        /// Write goodput against loss (the windowed table) as an SVG chart.
        #[arg(long)]
        plot: Option<PathBuf>,
    },
}

/// `rdt bench --only`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum BenchTable {
    StopAndWait,
    Windowed,
}

/// Flags of both ends.
#[derive(Debug, Args, Clone)]
pub struct Common {
    /// Largest data field per segment (the seed tests with 16).
    #[arg(long, default_value_t = 16)]
    mss: usize,
    /// Retransmission timeout: fixed, or the adaptive one's first value.
    #[arg(long, default_value = "200ms", value_parser = crate::cli_values::timeout)]
    timeout: Dur,
    /// stop-and-wait (the seed's), go-back-n or selective-repeat (short: sw, gbn, sr).
    #[arg(long, default_value = "stop-and-wait")]
    mode: Mode,
    /// Windowed modes: segments in flight at most (go-back-n counts them from the oldest unacknowledged; selective repeat counts those not yet acknowledged, selectively or not, within the peer's advertised window).
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Windowed modes: congestion controller (none, tahoe, reno, cubic).
    #[arg(long, default_value = "none")]
    cc: CcKind,
    /// Windowed modes: `fixed` timeout, or `adaptive` (RFC 6298, Karn's rule, backoff).
    #[arg(long, default_value = "fixed")]
    rto: RtoChoice,
    /// Wire format: `course` (SYN|||ACK|||FIN|||SEQ|||DATA) or `binary` (checksummed).
    #[arg(long, default_value = "course")]
    format: Format,
    /// Course format: `auto` learns the peer's reading of the header from
    /// what it sends; or speak one: seed, ack-free, own-isn, segments,
    /// encoded, listen-ack, filler, four-way (several joined by commas).
    #[arg(long, default_value = "auto")]
    dialect: DialectChoice,
    /// Drop each datagram this end sends or receives with this probability (no
    /// root needed). Set it on one end: it then covers both directions.
    #[arg(long, default_value = "0")]
    loss: netkit::units::Probability,
    /// Seed of the loss decisions and sequence numbers (same seed, same run).
    #[arg(long)]
    seed: Option<u64>,
    /// Drop these datagrams this end sends, by 1-based number (`--drop 2`: a
    /// client's handshake ACK).
    #[arg(long, value_delimiter = ',')]
    drop: Vec<u64>,
    /// Print every segment, timeout, retransmission and detected loss.
    #[arg(long)]
    pub debug: bool,
    /// Write a sequence diagram of the session (SVG) to this file.
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Windowed modes: write cwnd and goodput over time (SVG) to this file.
    #[arg(long)]
    trace_cwnd: Option<PathBuf>,
}

impl Common {
    fn options(&self) -> Options {
        Options {
            config: Config {
                mss: self.mss,
                timeout: self.timeout.0,
                dialect: self.dialect,
                mode: self.mode,
                window: self.window,
                cc: self.cc,
                rto: self.rto,
                ..Config::new(self.format)
            },
            loss: self.loss.get(),
            seed: self.seed,
            drop_sent: self.drop.clone(),
            drop_kinds: Vec::new(),
            trace: self.trace.as_ref().map(|_| Trace::new()),
            cwnd_trace: self.trace_cwnd.as_ref().map(|_| CwndTrace::new()),
        }
    }

    /// Writes the trace, if one was asked for, whatever happened.
    fn write_trace(&self, opts: &Options) -> anyhow::Result<()> {
        if let (Some(path), Some(trace)) = (&self.trace, &opts.trace) {
            std::fs::write(path, trace.svg())
                .with_context(|| format!("write trace {}", path.display()))?;
            eprintln!("trace written to {}", path.display());
        }
        if let (Some(path), Some(trace)) = (&self.trace_cwnd, &opts.cwnd_trace) {
            std::fs::write(path, trace.svg())
                .with_context(|| format!("write cwnd trace {}", path.display()))?;
            eprintln!("cwnd trace written to {}", path.display());
        }
        Ok(())
    }
}

impl RdtArgs {
    /// `--debug` turns on the rdt debug lines.
    pub fn debug(&self) -> bool {
        match &self.cmd {
            Cmd::Send { common, .. } | Cmd::Recv { common, .. } => common.debug,
            Cmd::Bench { .. } | Cmd::Check(_) => false,
        }
    }
}

pub async fn run(args: RdtArgs) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || match args.cmd {
        Cmd::Send {
            host,
            port,
            input,
            common,
        } => send(&host, port, input.as_ref(), &common),
        Cmd::Recv {
            listen,
            output,
            common,
        } => {
            // A blocking thread of the runtime: it may wait for the lookup.
            let addr = tokio::runtime::Handle::current().block_on(listen.resolve())?;
            recv(addr, output.as_ref(), &common)
        }
        Cmd::Bench { json, only, plot } => {
            let out = crate::bench_out::BenchOut::new(json);
            let tables = match only {
                None => rdt::bench::Tables::All,
                Some(BenchTable::StopAndWait) => rdt::bench::Tables::StopAndWait,
                Some(BenchTable::Windowed) => rdt::bench::Tables::Windowed,
            };
            let report = rdt::bench::run(|line| out.line(line), tables)?;
            if let Some(path) = plot {
                std::fs::write(&path, rdt::bench::window::plot(&report.windowed))
                    .with_context(|| format!("write {}", path.display()))?;
                eprintln!("plot written to {}", path.display());
            }
            Ok(())
        }
        Cmd::Check(args) => crate::rdt_check_cmd::run(args),
    })
    .await
    .context("rdt task")?
}

fn send(host: &str, port: u16, input: Option<&PathBuf>, common: &Common) -> anyhow::Result<()> {
    let data = if let Some(path) = input {
        std::fs::read(path).with_context(|| format!("read {}", path.display()))?
    } else {
        let mut data = Vec::new();
        std::io::stdin()
            .read_to_end(&mut data)
            .context("read stdin")?;
        data
    };
    // Owned: its segments are slices of it, no copy before the kernel's.
    let data = bytes::Bytes::from(data);
    let opts = common.options();
    let result = send_data(host, port, &data, &opts);
    common.write_trace(&opts)?;
    let (peer, elapsed, stats, ending) = result?;
    note!(
        "sent {} bytes to {peer} in {:.3} s ({}); {}",
        data.len(),
        elapsed.as_secs_f64(),
        counts(&stats),
        ending.describe(opts.config.close_timeouts)
    );
    Ok(())
}

fn send_data(
    host: &str,
    port: u16,
    data: &bytes::Bytes,
    opts: &Options,
) -> anyhow::Result<(SocketAddr, Duration, Stats, Ending)> {
    let start = Instant::now();
    let mut socket = RdtSocket::with_options(opts.clone());
    socket
        .connect((host, port))
        .with_context(|| format!("connect to {host}:{port}"))?;
    let peer = socket.peer_addr()?;
    let bar = crate::progress::bar(data.len() as u64);
    socket
        .send_bytes_with_progress(data, |n| bar.set_position(n))
        .context("send")?;
    bar.finish_and_clear();
    let ending = socket.close().context("close")?;
    let stats = socket.stats().unwrap_or_default();
    Ok((peer, start.elapsed(), stats, ending))
}

fn recv(addr: SocketAddr, output: Option<&PathBuf>, common: &Common) -> anyhow::Result<()> {
    let opts = common.options();
    let result = recv_data(addr, output, &opts);
    common.write_trace(&opts)?;
    let (peer, bytes, elapsed, stats, ending) = result?;
    note!(
        "received {bytes} bytes from {peer} in {:.3} s ({}); {}",
        elapsed.as_secs_f64(),
        counts(&stats),
        ending.describe(opts.config.close_timeouts)
    );
    Ok(())
}

fn recv_data(
    addr: SocketAddr,
    output: Option<&PathBuf>,
    opts: &Options,
) -> anyhow::Result<(SocketAddr, u64, Duration, Stats, Ending)> {
    if let Some(path) = output {
        crate::paths::file_to_write(path, "output")?;
    }
    let mut listener = RdtSocket::with_options(opts.clone());
    listener
        .bind(addr)
        .with_context(|| format!("listen on {addr}"))?;
    eprintln!("listening on {}", listener.local_addr()?);
    let (mut conn, _) = listener.accept().context("accept")?;
    let start = Instant::now();
    let peer = conn.peer_addr()?;
    let mut sink: Box<dyn std::io::Write> = match output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut bytes = 0u64;
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = conn.recv_into(&mut buf).context("recv")?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        sink.write_all(&buf[..n]).context("write output")?;
    }
    sink.flush().context("write output")?;
    let ending = conn.recv_close().context("close")?;
    let stats = conn.stats().unwrap_or_default();
    Ok((peer, bytes, start.elapsed(), stats, ending))
}

fn counts(s: &Stats) -> String {
    format!(
        "{} segments sent, {} received, {} retransmissions, {} duplicates answered",
        s.segments_sent, s.segments_received, s.retransmissions, s.duplicates
    )
}
