//! `protolab relay serve|client`: arguments → the `relay` library.

use std::fmt::Write as _;
use std::net::SocketAddr;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use netkit::units::Dur;
use tokio::io::AsyncBufReadExt;

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  protolab relay serve --address 127.0.0.1:8081
  protolab relay client --address 127.0.0.1:8081 --name ana
  printf 'hola\\nchau\\n' | protolab relay client --address 127.0.0.1:8081 --name bot
  protolab relay bench")]
pub struct RelayArgs {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// The dispatcher: sequences every message and delivers it to everyone.
    #[command(
        after_help = "Examples:\n  protolab relay serve --address 127.0.0.1 --port 8081 --history 100\n  # the seed's original chat clients too (python3 client.py --address 127.0.0.1:8082 --name ana):\n  protolab relay serve --port 8081 --legacy-address 127.0.0.1:8082\n  # a chat page for browsers:\n  protolab relay serve --port 8081 --web 127.0.0.1:8080",
        mut_arg("address", |a| a.default_value("127.0.0.1")),
        mut_arg("port", |a| a.default_value("8081"))
    )]
    Serve {
        #[command(flatten)]
        listen: crate::listen::ListenArgs,
        /// Events a new client gets before live traffic.
        #[arg(long, default_value_t = 100)]
        history: usize,
        /// Events kept in all for history and resume, acknowledged or not (a
        /// client whose resume point is gone is told where history starts).
        #[arg(long, default_value_t = 100_000)]
        history_max_events: usize,
        /// Bytes of events kept in all, acknowledged or not.
        #[arg(long, default_value = "64MiB")]
        history_max_bytes: netkit::units::Bytes,
        /// A client that reads nothing for this long is cut (senders are
        /// slowed while it lags).
        #[arg(long, default_value = "15s", value_parser = crate::cli_values::timeout)]
        stall: Dur,
        /// Ping interval; a client silent for three is dropped.
        #[arg(long, default_value = "5s", value_parser = crate::cli_values::timeout)]
        heartbeat: Dur,
        /// Events queued for one client before it is cut off as too slow.
        #[arg(long, default_value_t = 4096)]
        outbox: usize,
        /// Keep a durable event log here: a restart keeps history and numbering.
        #[arg(long)]
        log_dir: Option<std::path::PathBuf>,
        /// Also listen here for the seed's original chat clients (its own
        /// protocol), in the same total order.
        #[arg(long)]
        legacy_address: Option<SocketAddr>,
        /// Also serve the chat page here (a browser joins as a client; give a
        /// loopback address unless others should reach it).
        #[arg(long, value_name = "ADDR")]
        web: Option<SocketAddr>,
    },
    /// A participant: sends stdin's lines, prints `[seq] name: text`.
    #[command(
        after_help = "Examples:\n  protolab relay client --address 127.0.0.1:8081 --name ana\n  # against the seed's original server (python3 server.py --address 127.0.0.1:8082):\n  protolab relay client --legacy --address 127.0.0.1:8082 --name ana"
    )]
    Client {
        /// The server, host:port.
        #[arg(long, default_value = "127.0.0.1:8081")]
        address: String,
        /// Your name.
        #[arg(long)]
        name: String,
        /// Remember identity and position here: a restarted client resumes with
        /// no gap and no duplicate.
        #[arg(long, conflicts_with = "legacy")]
        state: Option<std::path::PathBuf>,
        /// Speak the seed's original chat protocol (to its own server): each
        /// line is sent once the previous one came back through its log.
        #[arg(long)]
        legacy: bool,
    },
    /// Deliveries/s with 10, 100 and 1,000 clients and latency at 100,000
    /// deliveries/s, against a plain TCP fan-out and Redis pub/sub (if installed).
    #[command(after_help = "Example:\n  cargo run --release -- relay bench")]
    Bench {
        /// Print each BENCH line as a JSON object on stdout (the report on stderr).
        #[arg(long)]
        json: bool,
    },
}

impl RelayArgs {
    pub fn is_bench(&self) -> bool {
        matches!(self.cmd, Cmd::Bench { .. })
    }
}

pub async fn run(args: RelayArgs) -> anyhow::Result<()> {
    match args.cmd {
        Cmd::Serve {
            listen,
            history,
            history_max_events,
            history_max_bytes,
            stall,
            heartbeat,
            outbox,
            log_dir,
            legacy_address,
            web,
        } => {
            if let Some(dir) = &log_dir {
                crate::paths::dir_to_keep(dir, "log directory")?;
            }
            let (listener, signal) = crate::listen::listen(&listen).await?;
            let legacy = match legacy_address {
                Some(a) => Some(netkit::server::bind(a).await?),
                None => None,
            };
            let web = match web {
                Some(a) => Some(netkit::server::bind(a).await?),
                None => None,
            };
            let mut line = format!("relay server: listening on {}", listener.local_addr()?);
            if let Some(l) = &legacy {
                write!(line, " (original chat clients on {})", l.local_addr()?)?;
            }
            if let Some(l) = &web {
                write!(line, " (chat page on http://{})", l.local_addr()?)?;
            }
            println!("{line}");
            let cfg = relay::server::Config {
                history,
                history_max_events,
                history_max_bytes: usize::try_from(history_max_bytes.0).unwrap_or(usize::MAX),
                stall: stall.0,
                heartbeat: heartbeat.0,
                outbox,
                log_dir,
                ..relay::server::Config::default()
            };
            relay::server::run_with(listener, relay::server::Extra { legacy, web }, cfg, signal)
                .await?;
        }
        Cmd::Client {
            address,
            name,
            state,
            legacy,
        } => {
            let (tx, rx) = tokio::sync::mpsc::channel(1024);
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if tx.send(line).await.is_err() {
                        break;
                    }
                }
            });
            if legacy {
                let cfg = relay::legacy::client::LegacyClientConfig::new(address.clone(), name);
                relay::legacy::client::run(&cfg, rx, |n, payload| println!("[{n}] {payload}"))
                    .await
                    .with_context(|| format!("original-chat client of {address}"))?;
                return Ok(());
            }
            let cfg = relay::client::ClientConfig {
                server: address.clone(),
                name,
                attempts: 10,
                state,
            };
            relay::client::run(&cfg, rx, |d| println!("{d}"))
                .await
                .with_context(|| format!("relay client of {address}"))?;
        }
        Cmd::Bench { json } => {
            let out = crate::bench_out::BenchOut::new(json);
            relay::bench::run(|line| out.line(line)).await?;
        }
    }
    Ok(())
}
