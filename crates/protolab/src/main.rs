//! `protolab`: one command for every protolab system.
//!
//! This crate only parses arguments, sets up logging and wires the libraries
//! together; no protocol logic lives here.

// Macros first: `note!` is seen by the modules after it.
mod bench_out;
#[macro_use]
mod progress;

mod classic_cmd;
mod cli_values;
mod demo;
mod hftp_cmd;
mod impair_cmd;
mod impair_link_cmd;
mod listen;
mod lottery_cmd;
mod lottery_multi;
mod paths;
mod rdt_check_cmd;
mod rdt_cmd;
mod relay_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// The package version and the commit it was built from (`build.rs`).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("PROTOLAB_COMMIT"),
    ")"
);

const ABOUT: &str = "Real client/server network systems, correct to the byte, in one command.";

const SYSTEMS: &str = "\
Systems:
  impair    a network impairment proxy (UDP and TCP): loss, duplication, delay,
            reordering, corruption, chopped streams, resets; and a
            lossy link between two network namespaces (root)         [done]
  lottery   agencies send bets to a central server over a binary
            protocol; durable store, the draw, winners (seed 000)    [done]
  hftp      a text-protocol file server, a sliced-download client and
            a conformance checker (seed 001)                         [done]
  relay     ordered group chat through a dispatcher: total order,
            acks, history, resume (seed 002)                         [done]
  rdt       reliable transport over UDP with a TCP-like socket: Stop &
            Wait, go-back-n, selective repeat; course and binary
            formats; a checker for students' programs (seed 003)     [done]
  classic   echo, math and positions servers and clients, byte-
            compatible with the Python originals (seed 004)          [done]

Examples:
  protolab demo                      every finished system, end to end on loopback
  protolab impair tcp --listen 127.0.0.1:9001 --upstream 127.0.0.1:9000 --chop 1
  protolab impair --help             the proxy's rules";

#[derive(Debug, Parser)]
#[command(name = "protolab", version = VERSION, about = ABOUT, after_help = SYSTEMS)]
struct Cli {
    /// Log level or filter (`debug`, `info,impair=debug`); overrides RUST_LOG.
    #[arg(long, global = true, value_name = "FILTER")]
    log_level: Option<String>,

    /// Worker threads of the async runtime (default: one per core; 1 runs
    /// everything on one thread with one fair run queue). On a small machine
    /// shared with a load generator, fewer can serve more.
    #[arg(long, global = true, value_name = "N", env = "PROTOLAB_THREADS")]
    threads: Option<std::num::NonZeroUsize>,

    /// No progress bars, summaries or informational log lines: only the
    /// command's output, warnings and errors.
    #[arg(short, long, global = true)]
    quiet: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
enum Command {
    /// Run every finished system end to end on loopback and show what happened.
    #[command(
        after_help = "Examples:\n  cargo run --release -- demo\n  cargo run --release -- demo --verbose   # with the servers' log lines"
    )]
    Demo {
        /// Show the servers' log lines too (by default only the story and
        /// warnings).
        #[arg(long)]
        verbose: bool,
    },
    /// Print a shell completion script.
    #[command(after_help = "Examples:
  protolab completions bash > ~/.local/share/bash-completion/completions/protolab
  protolab completions zsh > \"${fpath[1]}/_protolab\"
  protolab completions fish > ~/.config/fish/completions/protolab.fish")]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff).
    #[command(after_help = "Example:\n  protolab man > protolab.1 && man ./protolab.1")]
    Man,
    /// The impairment proxy: put a bad network between a client and a server.
    Impair(impair_cmd::ImpairArgs),
    /// The lottery bets system (seed 000): server, agencies, draw.
    Lottery(lottery_cmd::LotteryArgs),
    /// Ordered group chat through a central dispatcher (seed 002).
    Relay(relay_cmd::RelayArgs),
    /// The HFTP file server (seed 001).
    Hftp(hftp_cmd::HftpArgs),
    /// Echo, math and positions, byte-compatible with the Python originals (seed 004).
    Classic(classic_cmd::ClassicArgs),
    /// Reliable transport over UDP with a TCP-like socket: Stop & Wait, go-back-n, selective repeat (seed 003).
    Rdt(rdt_cmd::RdtArgs),
}

/// The log filter: `--log-level`, else the system's own variable (the course's
/// `LOGGING_LEVEL` / `CLI_LOG_LEVEL`), else `RUST_LOG`, else `info`.
fn init_logging(level: Option<&str>, system_env: Option<&str>) -> anyhow::Result<()> {
    let from_system = system_env
        .and_then(|v| std::env::var(v).ok())
        .map(|v| v.to_ascii_lowercase());
    let filter = match level.map(str::to_string).or(from_system) {
        Some(l) => EnvFilter::try_new(l)?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(colors_wanted(
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
            std::env::var_os("NO_COLOR"),
        ))
        .with_writer(std::io::stderr)
        .init();
    Ok(())
}

/// Colour only on a terminal, and never when `NO_COLOR` is set to anything
/// (no-color.org).
fn colors_wanted(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let system_env = match &cli.command {
        Command::Lottery(l) => l.cmd.log_env(),
        _ => None,
    };
    // `rdt --debug`: every segment, timeout and retransmission (the seed asks for it).
    let level = match (&cli.log_level, &cli.command) {
        (None, Command::Rdt(args)) if args.debug() => Some("info,rdt=debug".to_string()),
        // The bench's in-process servers would log every one of its clients.
        (None, Command::Relay(args)) if args.is_bench() => Some("warn".to_string()),
        (None, _) if cli.quiet => Some("warn".to_string()),
        // The demo tells its own story; the servers' lines are for --verbose.
        (None, Command::Demo { verbose: false }) => Some("warn".to_string()),
        (level, _) => level.clone(),
    };
    progress::set_quiet(cli.quiet);
    if let Err(e) = init_logging(level.as_deref(), system_env) {
        eprintln!("error: invalid --log-level: {e}");
        return ExitCode::from(2);
    }
    // One thread gets the current-thread scheduler: a single FIFO run queue.
    // The multi-thread one with one worker keeps a 256-task local queue and
    // overflows the rest to a global queue it visits only now and then, so
    // with 1,000 busy connections some waited 100+ ms (p99), against 10 ms on
    // the current-thread scheduler at the same rate.
    let mut builder = match cli.threads {
        Some(n) if n.get() == 1 => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n.get());
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Demo { .. } => demo::run().await,
            Command::Completions { shell } => {
                let mut cmd = <Cli as clap::CommandFactory>::command();
                clap_complete::generate(shell, &mut cmd, "protolab", &mut std::io::stdout());
                Ok(())
            }
            Command::Man => {
                let cmd = <Cli as clap::CommandFactory>::command();
                clap_mangen::Man::new(cmd)
                    .render(&mut std::io::stdout())
                    .map_err(anyhow::Error::from)
            }
            Command::Impair(args) => impair_cmd::run(args).await,
            Command::Lottery(args) => lottery_cmd::run(args).await,
            Command::Classic(args) => classic_cmd::run(args).await,
            Command::Hftp(args) => hftp_cmd::run(args).await,
            Command::Relay(args) => relay_cmd::run(args).await,
            Command::Rdt(args) => rdt_cmd::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// One clear line: the error and its causes, each said once. The libraries'
/// errors repeat their cause in their own text (so a log line with just the
/// error says it all), and a plain `{:#}` would print it twice.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::{colors_wanted, one_line};

    #[test]
    fn colour_only_on_a_terminal_and_never_with_no_color() {
        assert!(colors_wanted(true, None));
        assert!(!colors_wanted(false, None));
        assert!(!colors_wanted(true, Some("1".into())));
        // An empty NO_COLOR does not count (no-color.org).
        assert!(colors_wanted(true, Some("".into())));
    }

    #[test]
    fn causes_are_said_once() {
        // Every library's Io variant says its cause and has it as its source.
        let io = std::io::Error::from_raw_os_error(22);
        let e = anyhow::Error::from(hftp::error::Error::Io(io)).context("cannot write out.bin");
        assert_eq!(
            one_line(&e),
            "cannot write out.bin: i/o error: Invalid argument (os error 22)"
        );
        let plain = anyhow::anyhow!("no such file").context("get failed");
        assert_eq!(one_line(&plain), "get failed: no such file");
    }
}
