//! The main scenario (spec: lottery.md, "The main scenario"): one server and N
//! agencies on loopback, every agency sending its bets at once, then each asking
//! for its winners. Used by `protolab lottery simulate`, the demo and the
//! benchmark.

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
    /// Where the server stores.
    pub backend: Backend,
    /// Bets per batch.
    pub max_amount: usize,
    /// Batches in flight per agency.
    pub window: usize,
}

/// Runs a server on 127.0.0.1:0 and one agency per entry of `data`.
pub async fn simulate(data: BTreeMap<u8, Vec<Bet>>, opts: &SimOptions) -> Result<SimReport, Error> {
    let mut cfg = ServerConfig::new(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        std::path::PathBuf::new(),
    );
    cfg.backend = opts.backend.clone();
    cfg.agencies = data.len();
    let server = Server::bind(cfg).await?;
    let addr = server.local_addr()?;
    let stop = CancellationToken::new();
    let server_task = tokio::spawn(server.run(stop.clone().cancelled_owned()));
    let bets = data.values().map(Vec::len).sum();
    let start = Instant::now();
    let tasks: Vec<_> = data
        .into_iter()
        .map(|(agency, bets)| {
            let mut a = AgencyConfig::new(agency, &addr.to_string());
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
    stop.cancel();
    match server_task.await {
        Ok(r) => {
            r?;
        }
        Err(e) => return Err(Error::Refused(format!("server task failed: {e}"))),
    }
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
