//! `protolab classic echo|math|positions serve|client` and `protolab classic
//! bench`: arguments → the `classic` library.

use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use classic::Kind;
use classic::client::ClientOptions;
use classic::server::Options;
use netkit::units::Dur;

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  protolab classic math serve --port 9000
  protolab classic math client --port 9000 --interval 1s --count 5
  protolab classic positions client --reconnect
  protolab classic bench")]
pub struct ClassicArgs {
    #[command(subcommand)]
    example: Example,
}

#[derive(Debug, Subcommand)]
enum Example {
    /// "Test packets": the client sends `Test Packet`, the server echoes it.
    #[command(
        after_help = "Example:\n  protolab classic echo serve &\n  protolab classic echo client --count 3"
    )]
    Echo {
        #[command(subcommand)]
        role: Role,
    },
    /// The math server: SUMA, RESTA, MULTIPLICACION, DIVISION of two i16.
    #[command(
        after_help = "Example:\n  protolab classic math serve &\n  protolab classic math client --interval 1s"
    )]
    Math {
        #[command(subcommand)]
        role: Role,
    },
    /// Position broadcasting: every client's (x, y) to every client.
    #[command(
        after_help = "Examples:\n  protolab classic positions serve &\n  protolab classic positions client --interval 1s\n  protolab classic positions serve --web 127.0.0.1:8080   # and open http://127.0.0.1:8080/"
    )]
    Positions {
        #[command(subcommand)]
        role: Role,
    },
    /// Requests/s and broadcast latency against a raw echo server.
    #[command(after_help = "Example:\n  cargo run --release -- classic bench")]
    Bench {
        /// Seconds per measurement.
        #[arg(long, default_value = "3s")]
        duration: Dur,
        /// Print each BENCH line as a JSON object on stdout (the report on stderr).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum Role {
    /// Run the server.
    #[command(
        after_help = "Example:\n  protolab classic math serve --address 127.0.0.1 --port 9000 --idle-timeout 30s",
        mut_arg("port", |a| a.default_value("9000"))
    )]
    Serve(ServeArgs),
    /// Run the client.
    #[command(
        after_help = "Example:\n  protolab classic math client --host 127.0.0.1 --port 9000 --count 3"
    )]
    Client(ClientArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    listen: crate::listen::ListenArgs,
    /// Drop a client silent for this long.
    #[arg(long, default_value = "60s", value_parser = crate::cli_values::timeout)]
    idle_timeout: Dur,
    /// Clients served at once.
    #[arg(long, default_value_t = 10_000)]
    max_clients: usize,
    /// positions only: also serve the live map page here (a browser watches,
    /// and can join as a player; give a loopback address unless others
    /// should reach it).
    #[arg(long, value_name = "ADDR")]
    web: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args)]
struct ClientArgs {
    /// Server host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Server port.
    #[arg(short, long, default_value_t = classic::DEFAULT_PORT)]
    port: u16,
    /// Time between messages (default: echo 1s, math 10s, positions 5s, as the originals).
    #[arg(long)]
    interval: Option<Dur>,
    /// Stop after this many messages (default: run until interrupted).
    #[arg(long)]
    count: Option<u64>,
    /// When the server goes away, reconnect with backoff instead of stopping.
    #[arg(long)]
    reconnect: bool,
    /// Seed of the random operations and moves.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn default_interval(kind: Kind) -> Duration {
    Duration::from_secs(match kind {
        Kind::Echo => 1,
        Kind::Math => 10,
        Kind::Positions => 5,
    })
}

pub async fn run(args: ClassicArgs) -> anyhow::Result<()> {
    let (kind, role) = match args.example {
        Example::Echo { role } => (Kind::Echo, role),
        Example::Math { role } => (Kind::Math, role),
        Example::Positions { role } => (Kind::Positions, role),
        Example::Bench { duration, json } => {
            let report = classic::bench::run_all(duration.0).await?;
            crate::bench_out::BenchOut::new(json).report(report);
            return Ok(());
        }
    };
    match role {
        Role::Serve(a) => {
            let (listener, signal) = crate::listen::listen(&a.listen).await?;
            anyhow::ensure!(
                a.web.is_none() || kind == Kind::Positions,
                "--web is for the positions server (a live map); {} has no page",
                kind.name()
            );
            let web = match a.web {
                Some(w) => Some(netkit::server::bind(w).await?),
                None => None,
            };
            match &web {
                Some(w) => println!(
                    "classic {} server: listening on {} (map page on http://{})",
                    kind.name(),
                    listener.local_addr()?,
                    w.local_addr()?
                ),
                None => println!(
                    "classic {} server: listening on {}",
                    kind.name(),
                    listener.local_addr()?
                ),
            }
            let mut opts = Options::new(kind);
            opts.idle_timeout = a.idle_timeout.0;
            opts.max_clients = a.max_clients;
            classic::server::run_with_web(listener, web, opts, signal).await?;
        }
        Role::Client(a) => {
            let opts = ClientOptions {
                server: format!("{}:{}", a.host, a.port),
                interval: a.interval.map_or_else(|| default_interval(kind), |d| d.0),
                count: a.count,
                reconnect: a.reconnect,
                seed: a.seed,
            };
            let say = |line: String| println!("{line}");
            let result = match kind {
                Kind::Echo => classic::client::echo(&opts, say).await,
                Kind::Math => classic::client::math(&opts, say).await,
                Kind::Positions => classic::client::positions(&opts, say).await,
            };
            result.with_context(|| format!("{} client of {}", kind.name(), opts.server))?;
        }
    }
    Ok(())
}
