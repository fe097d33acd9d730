//! The main scenario (spec: lottery.md, "The main scenario"): servers and N
//! agencies on loopback, every agency sending its bets at once, then each
//! asking for its winners. Used by `protolab lottery simulate`, the demo and
//! the benchmark.
//!
//! With several servers (on one shared store) the agencies are spread over
//! them: agency `i` starts on server `i mod n` and knows the others, in
//! order, to fail over to.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::bet::Bet;
use crate::client::{AgencyConfig, AgencyReport, run_agency};
use crate::server::{Server, ServerConfig};
use crate::store::Backend;

/// What one simulation did.
#[derive(Debug, Clone)]
pub struct SimReport {
    /// Each agency's report, by agency.
    pub agencies: Vec<AgencyReport>,
    /// From the first connection to the last agency's winners.
    pub elapsed: Duration,
    /// Bets sent in all.
    pub bets: usize,
}

/// How the agencies of a simulation behave.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Where the servers store.
    pub backend: Backend,
    /// Bets per batch.
    pub max_amount: usize,
    /// Batches in flight per agency.
    pub window: usize,
    /// Servers sharing the store (more than one needs a shared store).
    pub servers: usize,
}

impl SimOptions {
    /// One server storing in `backend`; batches of 100, 32 in flight.
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            max_amount: 100,
            window: 32,
            servers: 1,
        }
    }
}

/// Runs `opts.servers` servers on 127.0.0.1 and one agency per entry of `data`.
pub async fn simulate(data: BTreeMap<u8, Vec<Bet>>, opts: &SimOptions) -> Result<SimReport, Error> {
    if opts.servers > 1 && !matches!(opts.backend, Backend::Postgres(_)) {
        return Err(Error::Refused(
            "several servers need a shared store (--store postgres://...)".into(),
        ));
    }
    let stop = CancellationToken::new();
    let mut addrs = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..opts.servers.max(1) {
        let mut cfg = ServerConfig::new(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            std::path::PathBuf::new(),
        );
        cfg.backend = opts.backend.clone();
        cfg.agencies = data.len();
        let server = Server::bind(cfg).await?;
        addrs.push(server.local_addr()?);
        tasks.push(tokio::spawn(server.run(stop.clone().cancelled_owned())));
    }
    let run = run_agencies(data, &addrs, opts).await;
    stop.cancel();
    for t in tasks {
        match t.await {
            Ok(r) => {
                r?;
            }
            Err(e) => return Err(Error::Refused(format!("server task failed: {e}"))),
        }
    }
    run
}

/// The servers agency number `nth` (0-based) tries, in order: its own first,
/// then the others.
pub fn server_list(addrs: &[SocketAddr], nth: usize) -> String {
    (0..addrs.len())
        .map(|k| addrs[(nth + k) % addrs.len()].to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs one agency per entry of `data` against servers already running at
/// `addrs`, spread over them.
pub async fn run_agencies(
    data: BTreeMap<u8, Vec<Bet>>,
    addrs: &[SocketAddr],
    opts: &SimOptions,
) -> Result<SimReport, Error> {
    let bets = data.values().map(Vec::len).sum();
    let start = Instant::now();
    let tasks: Vec<_> = data
        .into_iter()
        .enumerate()
        .map(|(nth, (agency, bets))| {
            let mut a = AgencyConfig::new(agency, &server_list(addrs, nth));
            a.max_amount = opts.max_amount;
            a.window = opts.window;
            tokio::spawn(async move { run_agency(&a, &bets).await })
        })
        .collect();
    let mut agencies = Vec::with_capacity(tasks.len());
    let mut failure = None;
    for t in tasks {
        match t.await {
            Ok(Ok(r)) => agencies.push(r),
            Ok(Err(e)) => failure = failure.or(Some(e)),
            Err(e) => {
                failure = failure.or(Some(Error::Refused(format!("agency task failed: {e}"))));
            }
        }
    }
    let elapsed = start.elapsed();
    if let Some(e) = failure {
        return Err(e);
    }
    agencies.sort_by_key(|r| r.agency);
    Ok(SimReport {
        agencies,
        elapsed,
        bets,
    })
}

/// Each agency's winners as the data says (bets on the winning number, in
/// the agency's order): what a correct draw reports.
pub fn expected_winners(data: &BTreeMap<u8, Vec<Bet>>) -> BTreeMap<u8, Vec<String>> {
    data.iter()
        .map(|(agency, bets)| {
            let w = bets
                .iter()
                .filter(|b| b.wins())
                .map(|b| b.documento.clone())
                .collect();
            (*agency, w)
        })
        .collect()
}
