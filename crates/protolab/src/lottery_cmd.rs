//! `protolab lottery serve|client|generate|simulate|export|bench`: arguments
//! (flags and the course's environment variables) → the `lottery` library.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use lottery::Bet;
use lottery::client::{AgencyConfig, run_agency};
use lottery::generate::{GenConfig, generate, write_dir, write_zip};
use lottery::server::{Server, ServerConfig};
use lottery::simulate::{SimOptions, SimReport, simulate};
use lottery::store::Backend;

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  protolab lottery serve --agencies 5
  CLI_ID=5 NOMBRE='Agustín Emanuel' APELLIDO=Zambrano DOCUMENTO=21689196 \\
      NACIMIENTO=2000-05-10 NUMERO=9325 protolab lottery client
  protolab lottery client --id 1 --dataset dataset.zip
  protolab lottery simulate --agencies 5
  protolab lottery bench")]
pub struct LotteryArgs {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// The central server: stores bets durably, runs the draw, answers winners.
    #[command(
        after_help = "Example:\n  SERVER_PORT=12345 protolab lottery serve --agencies 5 --db bets.db"
    )]
    Serve(ServeArgs),
    /// An agency: sends its bets in batches, then asks for its winners.
    #[command(
        after_help = "Examples:\n  protolab lottery client --id 1 --server 127.0.0.1:12345 --dataset dataset.zip\n  CLI_ID=5 NOMBRE=Ana APELLIDO=Pérez DOCUMENTO=30904465 NACIMIENTO=1999-03-17 NUMERO=7574 protolab lottery client"
    )]
    Client(ClientArgs),
    /// Write a deterministic, realistic data set (agency-N.csv files or a zip).
    #[command(
        after_help = "Example:\n  protolab lottery generate --agencies 5 --bets 1000000 --out bets.zip"
    )]
    Generate(GenerateArgs),
    /// A server and N agencies on loopback; prints the winners per agency.
    #[command(
        after_help = "Examples:\n  protolab lottery simulate --agencies 5\n  protolab lottery simulate --dataset dataset.zip"
    )]
    Simulate(SimulateArgs),
    /// Write the stored bets as the course's bets.csv.
    #[command(after_help = "Example:\n  protolab lottery export --db bets.db --out bets.csv")]
    Export {
        /// The server's database.
        #[arg(long, default_value = "bets.db")]
        db: PathBuf,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Durable ingest rate with 5 and 100 agencies against a discarding server.
    #[command(after_help = "Example:\n  cargo run --release -- lottery bench --bets 2000000")]
    Bench {
        /// Bets per measured run.
        #[arg(long, default_value_t = 2_000_000)]
        bets: usize,
        /// Bets per batch.
        #[arg(long, default_value_t = 140)]
        max_amount: usize,
        /// Print each BENCH line as a JSON object on stdout (the report on stderr).
        #[arg(long)]
        json: bool,
        /// The real data set for the end-to-end figure (else a generated one).
        #[arg(long, env = "PROTOLAB_DATASET")]
        dataset: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    address: IpAddr,
    /// Port (0 picks a free one; the bound address is printed).
    #[arg(short, long, env = "SERVER_PORT", default_value_t = 12345)]
    port: u16,
    /// Listen backlog.
    #[arg(long, env = "SERVER_LISTEN_BACKLOG", default_value_t = 1024)]
    backlog: u32,
    /// The SQLite database (created on first run).
    #[arg(long, default_value = "bets.db")]
    db: PathBuf,
    /// Agencies the draw waits for.
    #[arg(long, env = "LOTTERY_AGENCIES", default_value_t = 5)]
    agencies: usize,
    /// Agencies connected at once (at the limit, the connection idle the
    /// longest makes room for a new one).
    #[arg(long, default_value_t = 10_000)]
    max_connections: usize,
    /// Close a connection with nothing in flight that is silent this long.
    #[arg(long, default_value = "60s", value_parser = crate::cli_values::timeout)]
    idle_timeout: impair::units::Dur,
    /// Longest a winners query waits for the draw before "not yet" (a client
    /// may ask for less).
    #[arg(long, default_value = "30s", value_parser = crate::cli_values::timeout)]
    winners_wait: impair::units::Dur,
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Agency id (1..=255).
    #[arg(long, env = "CLI_ID")]
    id: u8,
    /// Server host:port.
    #[arg(long, env = "CLI_SERVER_ADDRESS", default_value = "127.0.0.1:12345")]
    server: String,
    /// Most bets per batch.
    #[arg(long, env = "CLI_BATCH_MAXAMOUNT", default_value_t = 100)]
    batch_max_amount: usize,
    /// Bets to send: a CSV file, or a zip or directory holding agency-<ID>.csv.
    /// Without it, one bet from NOMBRE, APELLIDO, DOCUMENTO, NACIMIENTO, NUMERO.
    #[arg(long)]
    dataset: Option<PathBuf>,
    /// Batches in flight before waiting for the first acknowledgement.
    #[arg(long, default_value_t = 32)]
    window: usize,
    /// Speak only the seed's codes 1 and 2 (for the original server): one
    /// batch at a time, and done once every bet is acknowledged (that server
    /// has no winners query).
    #[arg(long)]
    legacy: bool,
    /// Connection attempts without progress before giving up.
    #[arg(long, default_value_t = 10)]
    attempts: u32,
    #[command(flatten)]
    single: SingleBet,
}

/// A single bet from the environment, as the seed's containers passed it.
#[derive(Debug, Args)]
struct SingleBet {
    #[arg(long, env = "NOMBRE", hide = true)]
    nombre: Option<String>,
    #[arg(long, env = "APELLIDO", hide = true)]
    apellido: Option<String>,
    #[arg(long, env = "DOCUMENTO", hide = true)]
    documento: Option<String>,
    #[arg(long, env = "NACIMIENTO", hide = true)]
    nacimiento: Option<String>,
    #[arg(long, env = "NUMERO", hide = true)]
    numero: Option<String>,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Agencies (agency-1.csv ..).
    #[arg(long, default_value_t = 5)]
    agencies: u8,
    /// Bets in all.
    #[arg(long, default_value_t = 100_000)]
    bets: usize,
    /// Share of bets on the winning number 7574.
    #[arg(long, default_value_t = 0.0001)]
    winner_share: f64,
    /// Seed: the same seed gives the same data set.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A directory for agency-N.csv files, or a file name ending in .zip.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Agencies (for a generated data set).
    #[arg(long, default_value_t = 5)]
    agencies: u8,
    /// Bets in all (for a generated data set).
    #[arg(long, default_value_t = 78_697)]
    bets: usize,
    /// A zip or directory of agency-N.csv instead of generated bets.
    #[arg(long)]
    dataset: Option<PathBuf>,
    /// Bets per batch.
    #[arg(long, default_value_t = 100)]
    max_amount: usize,
    /// Keep the database here (default: a temporary directory).
    #[arg(long)]
    db: Option<PathBuf>,
}

impl Cmd {
    /// The environment variable the course's containers used for the log level.
    pub fn log_env(&self) -> Option<&'static str> {
        match self {
            Cmd::Serve(_) => Some("LOGGING_LEVEL"),
            Cmd::Client(_) => Some("CLI_LOG_LEVEL"),
            _ => None,
        }
    }
}

fn single_bet(env: &SingleBet) -> anyhow::Result<Bet> {
    let fields = [
        &env.nombre,
        &env.apellido,
        &env.documento,
        &env.nacimiento,
        &env.numero,
    ];
    let present: Vec<&str> = fields.iter().filter_map(|f| f.as_deref()).collect();
    anyhow::ensure!(
        present.len() == fields.len(),
        "no --dataset and no single bet: set NOMBRE, APELLIDO, DOCUMENTO, NACIMIENTO and NUMERO"
    );
    Bet::parse(&present.join(","))
        .context("the bet from NOMBRE/APELLIDO/DOCUMENTO/NACIMIENTO/NUMERO")
}

pub fn print_winners(report: &SimReport) {
    println!(
        "{:>8} {:>10} {:>10}  winners (documento)",
        "agency", "bets", "winners"
    );
    for a in &report.agencies {
        let mut list = a.winners.join(", ");
        if list.len() > 60 {
            list.truncate(57);
            list.push_str("...");
        }
        println!(
            "{:>8} {:>10} {:>10}  {list}",
            a.agency,
            a.bets,
            a.winners.len()
        );
    }
    println!(
        "{} bets from {} agencies stored, drawn and answered in {:.3} s",
        report.bets,
        report.agencies.len(),
        report.elapsed.as_secs_f64()
    );
}

pub async fn run(args: LotteryArgs) -> anyhow::Result<()> {
    match args.cmd {
        Cmd::Serve(a) => {
            crate::paths::file_to_write(&a.db, "database")?;
            let mut cfg = ServerConfig::new(SocketAddr::new(a.address, a.port), a.db.clone());
            cfg.agencies = a.agencies;
            cfg.backlog = a.backlog;
            cfg.max_connections = a.max_connections;
            cfg.idle_timeout = a.idle_timeout.0;
            cfg.winners_wait = a.winners_wait.0;
            let signal = netkit::shutdown::signal().context("cannot install signal handlers")?;
            let server = Server::bind(cfg).await?;
            println!(
                "lottery server: listening on {} (db {}, draw after {} agencies)",
                server.local_addr()?,
                a.db.display(),
                a.agencies
            );
            let _ = std::io::stdout().flush();
            server.run(signal).await?;
        }
        Cmd::Client(a) => {
            let bets = match &a.dataset {
                Some(p) => lottery::dataset::load_agency(p, a.id)?,
                None => vec![single_bet(&a.single)?],
            };
            let mut cfg = AgencyConfig::new(a.id, &a.server);
            cfg.max_amount = a.batch_max_amount;
            cfg.window = a.window;
            cfg.legacy = a.legacy;
            cfg.attempts = a.attempts.max(1);
            let report = run_agency(&cfg, &bets).await?;
            let resumed = if report.resumed_from > 0 {
                format!(" ({} already on the server)", report.resumed_from)
            } else {
                String::new()
            };
            let winners = if a.legacy {
                String::new()
            } else if report.winners.is_empty() {
                "; 0 winner(s)".to_string()
            } else {
                format!(
                    "; {} winner(s): {}",
                    report.winners.len(),
                    report.winners.join(", ")
                )
            };
            println!(
                "agency {}: {} bets acknowledged{resumed}, {} batches sent{winners}",
                report.agency, report.bets, report.batches,
            );
        }
        Cmd::Generate(a) => {
            let data = generate(&GenConfig {
                agencies: a.agencies,
                bets: a.bets,
                winner_share: a.winner_share,
                seed: a.seed,
            });
            if a.out
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("zip"))
            {
                write_zip(&data, &a.out)?;
            } else {
                write_dir(&data, &a.out)?;
            }
            println!(
                "wrote {} bets for {} agencies to {}",
                a.bets,
                data.len(),
                a.out.display()
            );
        }
        Cmd::Simulate(a) => {
            let data = match &a.dataset {
                Some(p) => lottery::dataset::load_all(p)?,
                None => generate(&GenConfig {
                    agencies: a.agencies,
                    bets: a.bets,
                    winner_share: 0.0001,
                    seed: 1,
                }),
            };
            let tmp = tempfile::tempdir()?;
            let db = a.db.unwrap_or_else(|| tmp.path().join("bets.db"));
            let report = simulate(
                data,
                &SimOptions {
                    backend: Backend::Sqlite(db),
                    max_amount: a.max_amount,
                    window: 32,
                },
            )
            .await?;
            print_winners(&report);
        }
        Cmd::Export { db, out } => {
            anyhow::ensure!(db.exists(), "no database at {}", db.display());
            let n = match out {
                Some(p) => {
                    let mut f = std::io::BufWriter::new(
                        std::fs::File::create(&p)
                            .with_context(|| format!("cannot create {}", p.display()))?,
                    );
                    lottery::export::export_csv(&db, &mut f)?
                }
                None => lottery::export::export_csv(&db, &mut std::io::stdout().lock())?,
            };
            note!("exported {n} bets");
        }
        Cmd::Bench {
            bets,
            max_amount,
            json,
            dataset,
        } => {
            let tmp = tempfile::tempdir()?;
            let report =
                lottery::bench::run(bets, max_amount, dataset.as_deref(), tmp.path()).await?;
            crate::bench_out::BenchOut::new(json).report(report);
        }
    }
    Ok(())
}
