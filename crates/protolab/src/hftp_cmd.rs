//! `protolab hftp serve`: arguments → the `hftp` server.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use netkit::units::Dur;

#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  protolab hftp serve -d testdata            # port 19500 on 0.0.0.0, as the course's server"
)]
pub struct HftpArgs {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// The file server: a drop-in replacement for the course's `server.py`.
    #[command(
        after_help = "Examples:\n  protolab hftp serve\n  protolab hftp serve -a 127.0.0.1 -p 19500 -d /srv/files",
        mut_arg("port", |a| a.default_value("19500"))
    )]
    Serve {
        #[command(flatten)]
        listen: crate::listen::ListenArgs,
        /// The shared directory (resolved on every request).
        #[arg(short, long, default_value = "testdata")]
        datadir: PathBuf,
        /// Close a connection silent for this long.
        #[arg(long, default_value = "60s", value_parser = crate::cli_values::timeout)]
        idle_timeout: Dur,
        /// Connections served at once.
        #[arg(long, default_value_t = 10_000)]
        max_connections: usize,
    },
    /// List the files a server shares.
    #[command(after_help = "Example:\n  protolab hftp list --server 127.0.0.1:19500")]
    List {
        #[command(flatten)]
        at: ServerArg,
    },
    /// Print a file's size.
    #[command(after_help = "Example:\n  protolab hftp meta report.pdf")]
    Meta {
        #[command(flatten)]
        at: ServerArg,
        /// File name on the server.
        file: String,
    },
    /// Download a file, or a range of it, in slices over one or more connections.
    #[command(
        after_help = "Examples:\n  protolab hftp get big.iso --connections 4\n  protolab hftp get log.txt --offset 100 --size 50 -o part.txt --raw\n  protolab hftp get log.txt -o - | grep ERROR"
    )]
    Get(GetArgs),
    /// Download throughput, small-request rate and server memory, against raw TCP.
    #[command(after_help = "Example:\n  cargo run --release -- hftp bench --size 1GiB")]
    Bench {
        /// Size of the file downloaded.
        #[arg(long, default_value = "1GiB")]
        size: netkit::units::Bytes,
        /// Seconds per small-request measurement.
        #[arg(long, default_value = "3s")]
        duration: Dur,
        /// Print each BENCH line as a JSON object on stdout (the report on stderr).
        #[arg(long)]
        json: bool,
    },
    /// Run the conformance suite against any HFTP server.
    #[command(
        after_help = "Examples:\n  protolab hftp check 127.0.0.1:19500 --dir /path/the/server/serves\n  protolab hftp check 127.0.0.1:19500 --dir testdata --lab 2025 --wait 2s\n\nGrades as the course does: the status code and the body. A different status\ntext passes with a warning; rules of the other lab are skipped."
    )]
    Check {
        /// The server, host:port.
        server: String,
        /// The directory that server serves (fixture files are written there).
        #[arg(long)]
        dir: PathBuf,
        /// Longest wait for any one step of a rule (each rule is also bounded
        /// as a whole, so a silent server fails each rule in bounded time).
        #[arg(long, default_value = "10s", value_parser = crate::cli_values::timeout)]
        wait: Dur,
        /// The lab the server implements: 2026 (help and raw slices), 2025
        /// (neither: those rules are skipped), or auto (ask the server).
        #[arg(long, default_value = "auto")]
        lab: hftp::check::Lab,
        /// The report as one JSON document on stdout (exit status as without).
        #[arg(long)]
        json: bool,
    },
}

/// `hftp get`.
#[derive(Debug, Args)]
struct GetArgs {
    #[command(flatten)]
    at: ServerArg,
    /// File name on the server.
    file: String,
    /// Output file, or `-` for standard output (default: the same name in
    /// the current directory). Standard output, `/dev/null` or a pipe get
    /// the slices in order over one connection.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// First byte.
    #[arg(long, default_value_t = 0)]
    offset: u64,
    /// Bytes (default: to the end).
    #[arg(long)]
    size: Option<u64>,
    /// Ask for raw slices instead of base64.
    #[arg(long)]
    raw: bool,
    /// Connections at once.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Bytes per slice.
    #[arg(long, default_value_t = 8 << 20)]
    slice_size: u64,
}

#[derive(Debug, Args)]
struct ServerArg {
    /// The server, host:port.
    #[arg(long, default_value = "127.0.0.1:19500")]
    server: String,
    /// Longest wait for the server at any one step (connecting, sending,
    /// each answer, each piece of a slice).
    #[arg(long, default_value = "30s", value_parser = crate::cli_values::timeout)]
    wait: Dur,
}

/// A progress bar (see [`crate::progress::bar`]) moved along by a ticker
/// reading the bytes done.
fn progress_bar(
    total: u64,
    done: Arc<AtomicU64>,
) -> (indicatif::ProgressBar, tokio::task::JoinHandle<()>) {
    let bar = crate::progress::bar(total);
    let b = bar.clone();
    let ticker = tokio::spawn(async move {
        loop {
            b.set_position(done.load(Ordering::Relaxed));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    (bar, ticker)
}

pub async fn run(args: HftpArgs) -> anyhow::Result<()> {
    match args.cmd {
        Cmd::Serve {
            listen,
            datadir,
            idle_timeout,
            max_connections,
        } => {
            crate::paths::served_dir(&datadir)?;
            let (listener, signal) = crate::listen::listen(&listen).await?;
            println!(
                "hftp server: listening on {} serving {}",
                listener.local_addr()?,
                datadir.display()
            );
            let mut cfg = hftp::server::Config::new(datadir);
            cfg.idle_timeout = idle_timeout.0;
            cfg.max_connections = max_connections;
            hftp::server::run(listener, cfg, signal).await;
        }
        Cmd::List { at } => {
            let mut c = hftp::client::Client::connect_with(&at.server, at.wait.0).await?;
            for name in c.list().await? {
                println!("{name}");
            }
            c.quit().await?;
        }
        Cmd::Meta { at, file } => {
            let mut c = hftp::client::Client::connect_with(&at.server, at.wait.0).await?;
            println!("{}", c.metadata(&file).await?);
            c.quit().await?;
        }
        Cmd::Get(a) => get(a).await?,
        Cmd::Bench {
            size,
            duration,
            json,
        } => bench(size.0, duration.0, crate::bench_out::BenchOut::new(json)).await?,
        Cmd::Check {
            server,
            dir,
            wait,
            lab,
            json,
        } => {
            let opts = hftp::check::Options { wait: wait.0, lab };
            let report = hftp::check::run(&server, &dir, opts)
                .await
                .with_context(|| format!("cannot write fixtures into {}", dir.display()))?;
            if json {
                println!("{}", report.json());
            } else {
                print!("{report}");
            }
            anyhow::ensure!(
                report.failures() == 0,
                "{} of {} rules failed",
                report.failures(),
                report.outcomes.len()
            );
        }
    }
    Ok(())
}

/// `hftp get`: the file's size first (unless given), then the download with
/// a progress bar, and a one-line summary.
async fn get(a: GetArgs) -> anyhow::Result<()> {
    let GetArgs {
        at,
        file,
        output,
        offset,
        size,
        raw,
        connections,
        slice_size,
    } = a;
    let output = output.unwrap_or_else(|| PathBuf::from(&file));
    let mut probe = hftp::client::Client::connect_with(&at.server, at.wait.0).await?;
    let total = size.unwrap_or(probe.metadata(&file).await?.saturating_sub(offset));
    let _ = probe.quit().await;
    let done = Arc::new(AtomicU64::new(0));
    let (bar, ticker) = progress_bar(total, Arc::clone(&done));
    let d = hftp::client::Download {
        server: at.server,
        name: file.clone(),
        offset,
        size: Some(total),
        encoding: if raw {
            hftp::proto::Encoding::Raw
        } else {
            hftp::proto::Encoding::Base64
        },
        connections,
        slice_size,
        wait: at.wait.0,
    };
    let start = std::time::Instant::now();
    let to_stdout = output.as_os_str() == "-";
    // What the output is called in errors and in the summary.
    let to = if to_stdout {
        PathBuf::from("standard output")
    } else {
        output.clone()
    };
    let result = if to_stdout {
        hftp::client::download_to(&d, &mut tokio::io::stdout(), &to, &done).await
    } else {
        hftp::client::download(&d, &output, done).await
    };
    ticker.abort();
    bar.finish_and_clear();
    let n = match result {
        // The reader of our output left (`| head`): like any Unix
        // filter, stop quietly.
        Err(hftp::error::Error::Output { source, .. })
            if to_stdout && source.kind() == std::io::ErrorKind::BrokenPipe =>
        {
            return Ok(());
        }
        other => other?,
    };
    let secs = start.elapsed().as_secs_f64();
    note!(
        "{file}: {n} bytes to {} in {secs:.2} s ({:.1} MB/s)",
        to.display(),
        n as f64 / secs.max(1e-9) / 1e6
    );
    Ok(())
}

/// `hftp bench`: this program's own `hftp serve` as the server under test
/// (a separate process, so its memory is its own).
async fn bench(size: u64, secs: Duration, out: crate::bench_out::BenchOut) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let server = |dir: &std::path::Path| {
        let mut cmd = std::process::Command::new(&exe);
        // One worker thread: the load generator needs the other core of a
        // 2-core machine (measured: p99 4 ms with two workers, 1 ms with one).
        cmd.args([
            "--threads",
            "1",
            "--log-level",
            "warn",
            "hftp",
            "serve",
            "-a",
            "127.0.0.1",
            "-p",
            "0",
            "-d",
        ])
        .arg(dir);
        cmd
    };
    let report = hftp::bench::run(server, hftp::bench::Options { size, secs }).await?;
    out.report(report);
    Ok(())
}
