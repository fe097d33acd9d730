//! `protolab lottery bench`: durable ingest rate against a baseline measured in
//! the same run (spec: lottery.md; targets in TARGETS.md).
//!
//! For 5 and for 100 agencies, the same generated bets are sent once to a server
//! that acknowledges without storing (the baseline: protocol, parsing, network)
//! and once to the real server (SQLite, WAL, synchronous=FULL, acks after
//! commit). The ratio shows what durable storage costs. Then the end-to-end
//! scenario (5 agencies, draw, winners) on the real data set if one is given, or
//! on a generated set of the same size.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use crate::Error;
use crate::bet::Bet;
use crate::generate::{GenConfig, generate};
use crate::simulate::{SimOptions, simulate};
use crate::store::Backend;

/// One measured row.
#[derive(Debug, Clone)]
pub struct Row {
    /// Agencies sending at once.
    pub agencies: usize,
    /// Bets sent.
    pub bets: usize,
    /// Baseline (discarding server) time.
    pub baseline: Duration,
    /// Durable server time.
    pub durable: Duration,
}

impl Row {
    fn rate(&self, d: Duration) -> f64 {
        self.bets as f64 / d.as_secs_f64()
    }
}

/// The whole benchmark's result.
#[derive(Debug, Clone)]
pub struct Report {
    /// Ingest rows.
    pub rows: Vec<Row>,
    /// The end-to-end scenario: what it ran on, and how long it took.
    pub end_to_end: (String, usize, Duration),
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "lottery durable ingest (bets acknowledged per second)")?;
        writeln!(
            f,
            "  {:>8} {:>10} {:>16} {:>16} {:>7}",
            "agencies", "bets", "baseline bets/s", "durable bets/s", "ratio"
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "  {:>8} {:>10} {:>16.0} {:>16.0} {:>7.2}",
                r.agencies,
                r.bets,
                r.rate(r.baseline),
                r.rate(r.durable),
                r.baseline.as_secs_f64() / r.durable.as_secs_f64()
            )?;
        }
        let (what, bets, t) = &self.end_to_end;
        writeln!(
            f,
            "end to end on {what} ({bets} bets, 5 agencies, draw, winners): {:.3} s",
            t.as_secs_f64()
        )?;
        for r in &self.rows {
            let line = netkit::bench::BenchLine::new("lottery_ingest")
                .field("agencies", r.agencies)
                .field("bets", r.bets)
                .num("durable_bets_s", r.rate(r.durable), 0)
                .num("baseline_bets_s", r.rate(r.baseline), 0)
                .num(
                    "ratio",
                    r.baseline.as_secs_f64() / r.durable.as_secs_f64(),
                    3,
                );
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
    }
}

async fn measure(
    data: &BTreeMap<u8, Vec<Bet>>,
    dir: &Path,
    max_amount: usize,
) -> Result<Row, Error> {
    let baseline = simulate(data.clone(), &options(Backend::Discard, max_amount))
        .await?
        .elapsed;
    let db = dir.join(format!("bench-{}.db", data.len()));
    let durable = simulate(
        data.clone(),
        &options(Backend::Sqlite(db.clone()), max_amount),
    )
    .await?
    .elapsed;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    Ok(Row {
        agencies: data.len(),
        bets: data.values().map(Vec::len).sum(),
        baseline,
        durable,
    })
}

/// Runs the benchmark with `bets` bets per ingest row, in `dir` (scratch space).
pub async fn run(
    bets: usize,
    max_amount: usize,
    dataset: Option<&Path>,
    dir: &Path,
) -> Result<Report, Error> {
    let mut rows = Vec::new();
    for agencies in [5u8, 100] {
        let data = generate(&GenConfig {
            agencies,
            bets,
            winner_share: 0.0001,
            seed: 7,
        });
        rows.push(measure(&data, dir, max_amount).await?);
    }
    let (what, data) = match dataset {
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
    let db = dir.join("bench-e2e.db");
    let t = simulate(data, &options(Backend::Sqlite(db), max_amount))
        .await?
        .elapsed;
    Ok(Report {
        rows,
        end_to_end: (what, n, t),
    })
}
