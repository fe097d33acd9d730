//! `protolab lottery serve|client|generate|simulate|export|bench`: arguments
//! (flags and the course's environment variables) → the `lottery` library.

use std::io::Write as _;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use lottery::Bet;
use lottery::client::{AgencyConfig, run_agency};
use lottery::generate::{GenConfig, generate, write_dir, write_zip};
use lottery::server::{Server, ServerConfig};
use lottery::simulate::SimReport;
use lottery::store::Backend;

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  protolab lottery serve --agencies 5
  CLI_ID=5 NOMBRE='Agustín Emanuel' APELLIDO=Zambrano DOCUMENTO=21689196 \\
      NACIMIENTO=2000-05-10 NUMERO=9325 protolab lottery client
  protolab lottery client --id 1 --dataset dataset.zip
  protolab lottery simulate --agencies 5
  protolab lottery pg-sandbox        # a throwaway PostgreSQL; prints its URL
  protolab lottery simulate --servers 3 --store postgres://lottery@127.0.0.1:5433/lottery --kill-one
  protolab lottery bench")]
pub struct LotteryArgs {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// The central server: stores bets durably, runs the draw, answers winners.
    #[command(
        after_help = "Examples:\n  SERVER_PORT=12345 protolab lottery serve --agencies 5 --db bets.db\n  # several servers of one lottery, sharing a PostgreSQL database:\n  protolab lottery serve --port 12345 --store postgres://lottery@127.0.0.1:5433/lottery\n  LOTTERY_STORE=postgres://lottery@127.0.0.1:5433/lottery protolab lottery serve --port 12346",
        mut_arg("port", |a| a.default_value("12345").env("SERVER_PORT"))
    )]
    Serve(ServeArgs),
    /// An agency: sends its bets in batches, then asks for its winners.
    #[command(
        after_help = "Examples:\n  protolab lottery client --id 1 --server 127.0.0.1:12345 --dataset dataset.zip\n  protolab lottery client --id 2 --server 127.0.0.1:12345,127.0.0.1:12346 --dataset dataset.zip\n  CLI_ID=5 NOMBRE=Ana APELLIDO=Pérez DOCUMENTO=30904465 NACIMIENTO=1999-03-17 NUMERO=7574 protolab lottery client"
    )]
    Client(ClientArgs),
    /// Write a deterministic, realistic data set (agency-N.csv files or a zip).
    #[command(
        after_help = "Example:\n  protolab lottery generate --agencies 5 --bets 1000000 --out bets.zip"
    )]
    Generate(GenerateArgs),
    /// Servers and N agencies on loopback; prints the winners per agency.
    #[command(
        after_help = "Examples:\n  protolab lottery simulate --agencies 5\n  protolab lottery simulate --dataset dataset.zip\n  protolab lottery simulate --servers 3 --store postgres://lottery@127.0.0.1:5433/lottery --kill-one"
    )]
    Simulate(SimulateArgs),
    /// Start a throwaway PostgreSQL cluster (as `nobody` when run as root),
    /// print its URL, and remove it on Ctrl-C.
    #[command(
        name = "pg-sandbox",
        after_help = "Example:\n  protolab lottery pg-sandbox --port 5433\n  # then, in another terminal:\n  protolab lottery simulate --servers 3 --store postgres://lottery@127.0.0.1:5433/lottery"
    )]
    PgSandbox {
        /// Port on 127.0.0.1 (0 picks a free one).
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
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
    /// Durable ingest rate with 5 and 100 agencies (SQLite, PostgreSQL)
    /// against a discarding server; then 1, 2 and 3 servers on one database.
    #[command(
        after_help = "Examples:\n  cargo run --release -- lottery bench --bets 2000000\n  cargo run --release -- lottery bench --store postgres://lottery@127.0.0.1:5433/postgres"
    )]
    Bench {
        /// PostgreSQL server to measure on (a scratch database per run is
        /// made through this URL's database and dropped); `sandbox` (the
        /// default) starts a throwaway cluster, `none` skips PostgreSQL.
        #[arg(long, default_value = "sandbox", value_name = "URL|sandbox|none")]
        store: String,
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
    #[command(flatten)]
    listen: crate::listen::ListenArgs,
    /// Listen backlog.
    #[arg(long, env = "SERVER_LISTEN_BACKLOG", default_value_t = 1024)]
    backlog: u32,
    /// The SQLite database (created on first run).
    #[arg(long, default_value = "bets.db")]
    db: PathBuf,
    /// Store in this PostgreSQL database instead (postgres://USER@HOST:PORT/DB;
    /// several servers may share it); also from DATABASE_URL.
    #[arg(long, env = "LOTTERY_STORE", value_name = "URL", conflicts_with = "db")]
    store: Option<String>,
    /// Agencies the draw waits for.
    #[arg(long, env = "LOTTERY_AGENCIES", default_value_t = 5)]
    agencies: usize,
    /// Agencies connected at once (at the limit, the connection idle the
    /// longest makes room for a new one).
    #[arg(long, default_value_t = 10_000)]
    max_connections: usize,
    /// Close a connection with nothing in flight that is silent this long.
    #[arg(long, default_value = "60s", value_parser = crate::cli_values::timeout)]
    idle_timeout: netkit::units::Dur,
    /// Longest a winners query waits for the draw before "not yet" (a client
    /// may ask for less).
    #[arg(long, default_value = "30s", value_parser = crate::cli_values::timeout)]
    winners_wait: netkit::units::Dur,
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Agency id (1..=255).
    #[arg(long, env = "CLI_ID")]
    id: u8,
    /// Server host:port, or several servers of one lottery, comma-separated:
    /// on a refused or dropped connection the agency moves to the next and
    /// resends what was not acknowledged.
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
    pub agencies: u8,
    /// Bets in all (for a generated data set).
    #[arg(long, default_value_t = 78_697)]
    pub bets: usize,
    /// A zip or directory of agency-N.csv instead of generated bets.
    #[arg(long)]
    pub dataset: Option<PathBuf>,
    /// Bets per batch.
    #[arg(long, default_value_t = 100)]
    pub max_amount: usize,
    /// Keep the database here (default: a temporary directory).
    #[arg(long, conflicts_with = "store")]
    pub db: Option<PathBuf>,
    /// Store in this PostgreSQL database (give a fresh one: it becomes this
    /// simulation's lottery).
    #[arg(long, env = "LOTTERY_STORE", value_name = "URL")]
    pub store: Option<String>,
    /// Servers sharing the store (more than one needs --store); each runs as
    /// its own `protolab lottery serve` process.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub servers: u16,
    /// SIGKILL one server mid-ingest (needs --servers 2 or more) and show
    /// that the totals and the winners are unchanged.
    #[arg(long)]
    pub kill_one: bool,
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

/// `DATABASE_URL`, when it names a PostgreSQL database (the common variable
/// of database tools; `LOTTERY_STORE` and `--store` come first).
fn database_url() -> Option<String> {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"))
}

/// Where the benchmark measures PostgreSQL: a given server, a throwaway
/// cluster (kept alive by the returned sandbox), or nowhere (with why).
async fn bench_postgres(
    store: &str,
) -> anyhow::Result<(
    Option<lottery::pg_sandbox::Sandbox>,
    Result<lottery::store::PgTarget, String>,
)> {
    match store {
        "none" => Ok((None, Err("--store none".into()))),
        "sandbox" => {
            match tokio::task::spawn_blocking(lottery::pg_sandbox::Sandbox::start).await? {
                Ok(s) => {
                    let admin = s.url("postgres").parse()?;
                    Ok((Some(s), Ok(admin)))
                }
                Err(e) => Ok((None, Err(e.to_string()))),
            }
        }
        url => Ok((None, Ok(url.parse()?))),
    }
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

/// `lottery serve`: the store (SQLite or PostgreSQL), the listener, the run.
async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let store = a.store.clone().or_else(database_url);
    let mut cfg = ServerConfig::new(a.listen.resolve().await?, a.db.clone());
    match &store {
        Some(url) => cfg.backend = Backend::Postgres(url.parse()?),
        None => crate::paths::file_to_write(&a.db, "database")?,
    }
    cfg.agencies = a.agencies;
    cfg.backlog = a.backlog;
    cfg.max_connections = a.max_connections;
    cfg.idle_timeout = a.idle_timeout.0;
    cfg.winners_wait = a.winners_wait.0;
    let signal = crate::listen::signals()?;
    let cfg_store = cfg.backend.describe();
    let server = Server::bind(cfg).await?;
    println!(
        "lottery server: listening on {} (store {}, draw after {} agencies)",
        server.local_addr()?,
        cfg_store,
        a.agencies
    );
    let _ = std::io::stdout().flush();
    server.run(signal).await?;

    Ok(())
}

/// `lottery client`: one agency's bets (a data set's, or one from the
/// course's variables), then its winners.
async fn client(a: ClientArgs) -> anyhow::Result<()> {
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

    Ok(())
}

/// `lottery pg-sandbox`: a throwaway PostgreSQL cluster until Ctrl-C.
async fn pg_sandbox(port: u16) -> anyhow::Result<()> {
    let sandbox =
        tokio::task::spawn_blocking(move || lottery::pg_sandbox::Sandbox::start_on(port)).await??;
    let target = sandbox.create_database("lottery").await?;
    println!("PostgreSQL is up: {target}");
    println!(
        "  protolab lottery serve --store {target}\n  protolab lottery simulate --servers 3 --store {target} --kill-one"
    );
    println!(
        "(cluster in {}; Ctrl-C stops it and removes it)",
        sandbox.dir().display()
    );
    let _ = std::io::stdout().flush();
    netkit::shutdown::signal()
        .context("cannot install signal handlers")?
        .await;
    tokio::task::spawn_blocking(move || drop(sandbox)).await?;
    note!("PostgreSQL stopped and removed");

    Ok(())
}

pub async fn run(args: LotteryArgs) -> anyhow::Result<()> {
    match args.cmd {
        Cmd::Serve(a) => serve(a).await?,
        Cmd::Client(a) => client(a).await?,
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
        Cmd::Simulate(a) => crate::lottery_multi::simulate(a).await?,
        Cmd::PgSandbox { port } => pg_sandbox(port).await?,
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
            store,
            bets,
            max_amount,
            json,
            dataset,
        } => {
            let tmp = tempfile::tempdir()?;
            let (sandbox, postgres) = bench_postgres(&store).await?;
            let report = lottery::bench::run(&lottery::bench::BenchConfig {
                bets,
                max_amount,
                dataset: dataset.as_deref(),
                dir: tmp.path(),
                postgres,
            })
            .await?;
            if let Some(s) = sandbox {
                tokio::task::spawn_blocking(move || drop(s)).await?;
            }
            crate::bench_out::BenchOut::new(json).report(report);
        }
    }
    Ok(())
}
