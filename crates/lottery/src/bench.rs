//! `protolab lottery bench`: durable ingest rate against a baseline measured in
//! the same run (spec: lottery.md; targets in TARGETS.md).
//!
//! For 5 and for 100 agencies, the same generated bets are sent to a server
//! that acknowledges without storing (the baseline: protocol, parsing,
//! network), to the SQLite server (WAL, synchronous=FULL) and, given a
//! PostgreSQL server, to the PostgreSQL store (synchronous_commit=on); every
//! durable server acknowledges after the commit. Then 5 agencies spread over
//! 1, 2 and 3 servers sharing one PostgreSQL database. Each PostgreSQL run
//! gets a scratch database of its own, dropped afterwards. Last, the
//! end-to-end scenario (5 agencies, draw, winners) on the real data set if one
//! is given, or on a generated set of the same size.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::Error;
use crate::bet::Bet;
use crate::generate::{GenConfig, generate};
use crate::simulate::{SimOptions, simulate};
use crate::store::{Backend, PgTarget};

/// One measured row: the same bets through each store.
#[derive(Debug, Clone)]
pub struct Row {
    /// Agencies sending at once.
    pub agencies: usize,
    /// Bets sent.
    pub bets: usize,
    /// Baseline (discarding server) time.
    pub baseline: Duration,
    /// SQLite server time.
    pub sqlite: Duration,
    /// PostgreSQL server time, if measured.
    pub postgres: Option<Duration>,
}

/// 5 agencies spread over several servers of one PostgreSQL database.
#[derive(Debug, Clone)]
pub struct ServersRow {
    /// Servers sharing the database.
    pub servers: usize,
    /// Bets sent.
    pub bets: usize,
    /// Time to store them all.
    pub elapsed: Duration,
}

fn rate(bets: usize, d: Duration) -> f64 {
    bets as f64 / d.as_secs_f64()
}

/// The whole benchmark's result.
#[derive(Debug, Clone)]
pub struct Report {
    /// Ingest rows.
    pub rows: Vec<Row>,
    /// Several servers on one database (empty without PostgreSQL).
    pub servers: Vec<ServersRow>,
    /// Where PostgreSQL ran, or why it was not measured.
    pub postgres: String,
    /// The end-to-end scenario: what it ran on, and how long it took.
    pub end_to_end: (String, usize, Duration),
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "lottery durable ingest (bets acknowledged per second)")?;
        writeln!(f, "PostgreSQL: {}", self.postgres)?;
        writeln!(
            f,
            "  {:>8} {:>9} {:>13} {:>13} {:>13} {:>8} {:>8}",
            "agencies", "bets", "baseline", "sqlite", "postgres", "sq/base", "pg/sq"
        )?;
        for r in &self.rows {
            let pg = r
                .postgres
                .map_or("-".to_string(), |d| format!("{:.0}", rate(r.bets, d)));
            let pg_ratio = r.postgres.map_or("-".to_string(), |d| {
                format!("{:.2}", r.sqlite.as_secs_f64() / d.as_secs_f64())
            });
            writeln!(
                f,
                "  {:>8} {:>9} {:>13.0} {:>13.0} {:>13} {:>8.2} {:>8}",
                r.agencies,
                r.bets,
                rate(r.bets, r.baseline),
                rate(r.bets, r.sqlite),
                pg,
                r.baseline.as_secs_f64() / r.sqlite.as_secs_f64(),
                pg_ratio
            )?;
        }
        if !self.servers.is_empty() {
            writeln!(
                f,
                "5 agencies over several servers on one PostgreSQL database"
            )?;
            for s in &self.servers {
                writeln!(
                    f,
                    "  {} server(s): {:>10.0} bets/s",
                    s.servers,
                    rate(s.bets, s.elapsed)
                )?;
            }
        }
        let (what, bets, t) = &self.end_to_end;
        writeln!(
            f,
            "end to end on {what} ({bets} bets, 5 agencies, draw, winners): {:.3} s",
            t.as_secs_f64()
        )?;
        for r in &self.rows {
            let mut line = netkit::bench::BenchLine::new("lottery_ingest")
                .field("agencies", r.agencies)
                .field("bets", r.bets)
                .num("durable_bets_s", rate(r.bets, r.sqlite), 0)
                .num("baseline_bets_s", rate(r.bets, r.baseline), 0)
                .num(
                    "ratio",
                    r.baseline.as_secs_f64() / r.sqlite.as_secs_f64(),
                    3,
                );
            if let Some(pg) = r.postgres {
                line = line.num("postgres_bets_s", rate(r.bets, pg), 0).num(
                    "postgres_to_sqlite",
                    r.sqlite.as_secs_f64() / pg.as_secs_f64(),
                    3,
                );
            }
            writeln!(f, "{line}")?;
        }
        for s in &self.servers {
            let line = netkit::bench::BenchLine::new("lottery_postgres_servers")
                .field("servers", s.servers)
                .field("bets", s.bets)
                .num("bets_s", rate(s.bets, s.elapsed), 0);
            writeln!(f, "{line}")?;
        }
        let line = netkit::bench::BenchLine::new("lottery_end_to_end")
            .field("bets", bets)
            .num("seconds", t.as_secs_f64(), 3);
        writeln!(f, "{line}")
    }
}

fn options(backend: Backend, max_amount: usize) -> SimOptions {
    SimOptions {
        backend,
        max_amount,
        window: 64,
        servers: 1,
    }
}

/// Runs `data` through `servers` servers on a scratch database of `admin`'s
/// server, dropped afterwards.
async fn on_postgres(
    admin: &PgTarget,
    data: &BTreeMap<u8, Vec<Bet>>,
    max_amount: usize,
    servers: usize,
) -> Result<Duration, Error> {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "protolab_bench_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let target = admin.create_database(&name).await?;
    let mut opts = options(Backend::Postgres(target), max_amount);
    opts.servers = servers;
    let run = simulate(data.clone(), &opts).await;
    admin.drop_database(&name).await?;
    Ok(run?.elapsed)
}

async fn measure(
    data: &BTreeMap<u8, Vec<Bet>>,
    dir: &Path,
    max_amount: usize,
    postgres: Option<&PgTarget>,
) -> Result<Row, Error> {
    let baseline = simulate(data.clone(), &options(Backend::Discard, max_amount))
        .await?
        .elapsed;
    let db = dir.join(format!("bench-{}.db", data.len()));
    let sqlite = simulate(
        data.clone(),
        &options(Backend::Sqlite(db.clone()), max_amount),
    )
    .await?
    .elapsed;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let postgres = match postgres {
        Some(admin) => Some(on_postgres(admin, data, max_amount, 1).await?),
        None => None,
    };
    Ok(Row {
        agencies: data.len(),
        bets: data.values().map(Vec::len).sum(),
        baseline,
        sqlite,
        postgres,
    })
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig<'a> {
    /// Bets per ingest row.
    pub bets: usize,
    /// Bets per batch.
    pub max_amount: usize,
    /// The real data set for the end-to-end figure.
    pub dataset: Option<&'a Path>,
    /// Scratch space for SQLite files.
    pub dir: &'a Path,
    /// A PostgreSQL server to make scratch databases on (through this
    /// target's database), and how to describe it; `None`: not measured,
    /// with the reason.
    pub postgres: Result<PgTarget, String>,
}

/// Runs the benchmark.
pub async fn run(cfg: &BenchConfig<'_>) -> Result<Report, Error> {
    let pg = cfg.postgres.as_ref().ok();
    let mut rows = Vec::new();
    let five = generate(&GenConfig {
        agencies: 5,
        bets: cfg.bets,
        winner_share: 0.0001,
        seed: 7,
    });
    for agencies in [5u8, 100] {
        let data = if agencies == 5 {
            five.clone()
        } else {
            generate(&GenConfig {
                agencies,
                bets: cfg.bets,
                winner_share: 0.0001,
                seed: 7,
            })
        };
        rows.push(measure(&data, cfg.dir, cfg.max_amount, pg).await?);
    }
    let mut servers = Vec::new();
    if let Some(admin) = pg {
        for n in 1..=3 {
            servers.push(ServersRow {
                servers: n,
                bets: cfg.bets,
                elapsed: on_postgres(admin, &five, cfg.max_amount, n).await?,
            });
        }
    }
    let (what, data) = match cfg.dataset {
        Some(p) => (p.display().to_string(), crate::dataset::load_all(p)?),
        None => (
            "a generated set the size of the course's".to_string(),
            generate(&GenConfig {
                agencies: 5,
                bets: 78_697,
                winner_share: 0.0001,
                seed: 11,
            }),
        ),
    };
    let n = data.values().map(Vec::len).sum();
    let db = cfg.dir.join("bench-e2e.db");
    let t = simulate(data, &options(Backend::Sqlite(db), cfg.max_amount))
        .await?
        .elapsed;
    Ok(Report {
        rows,
        servers,
        postgres: match &cfg.postgres {
            Ok(t) => format!("{t} (a scratch database per run)"),
            Err(why) => format!("not measured ({why})"),
        },
        end_to_end: (what, n, t),
    })
}
