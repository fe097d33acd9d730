//! Several servers, one lottery (issue #16; docs: lottery.md, "Several
//! servers"): `protolab lottery simulate --servers N --store URL
//! [--kill-one]`. N server processes share one PostgreSQL database; the
//! agencies, spread over them and each knowing the others to fail over to,
//! run here; with `kill_one` the first server is SIGKILLed once a third of
//! the bets is stored. At the end the database is read back ([`verify`]):
//! every bet stored once, in order, and each agency told exactly its winners.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use netkit::process::ServerProcess;

use crate::Bet;
use crate::error::Error;
use crate::simulate::{SimOptions, SimReport, expected_winners, run_agencies};
use crate::store::{Backend, PgTarget, Store};

/// What a run with several servers does.
#[derive(Debug, Clone)]
pub struct MultiOptions {
    /// The shared database.
    pub target: PgTarget,
    /// Server processes.
    pub servers: usize,
    /// SIGKILL the first server at a third of the bets.
    pub kill_one: bool,
    /// The agencies' options (the backend is the servers' business).
    pub sim: SimOptions,
}

/// Starts `opts.servers` processes from `server()` (each a command that
/// serves the lottery on `opts.target` and prints `listening on ADDR`
/// first), runs every agency of `data` against them, kills one if asked;
/// `say` hears what happens. The agencies' report.
pub async fn run(
    data: &BTreeMap<u8, Vec<Bet>>,
    opts: &MultiOptions,
    server: impl Fn() -> Command,
    mut say: impl FnMut(String),
) -> Result<SimReport, Error> {
    if opts.kill_one && opts.servers < 2 {
        return Err(Error::Scenario(
            "--kill-one needs --servers 2 or more (another server must take over)".into(),
        ));
    }
    let mut servers = (0..opts.servers)
        .map(|_| ServerProcess::start(server()))
        .collect::<Result<Vec<_>, _>>()?;
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    say(format!(
        "{} servers on one PostgreSQL database ({}): {}",
        servers.len(),
        opts.target,
        addrs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let agencies = tokio::spawn({
        let (data, addrs, sim) = (data.clone(), addrs.clone(), opts.sim.clone());
        async move { run_agencies(data, &addrs, &sim).await }
    });
    if opts.kill_one {
        let total: usize = data.values().map(Vec::len).sum();
        let (watch, _w, _) =
            Store::open(&Backend::Postgres(opts.target.clone()), data.len()).await?;
        let killed_at = loop {
            let n = watch.count().await?;
            if n as usize >= total / 3 || agencies.is_finished() {
                break n;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        if agencies.is_finished() {
            return Err(Error::Scenario(
                "the agencies finished before a third of the bets was stored; nothing to kill (use more bets)".into(),
            ));
        }
        let victim = &mut servers[0];
        victim.kill()?;
        say(format!(
            "SIGKILLed the server at {} (pid {}) with {killed_at} of {total} bets stored; its agencies fail over",
            victim.addr,
            victim.id()
        ));
    }
    let report = agencies
        .await
        .map_err(|e| Error::Scenario(format!("the agencies' task failed: {e}")))??;
    let failovers: u32 = report.agencies.iter().map(|r| r.reconnects).sum();
    say(format!("agencies reconnected {failovers} time(s) in all"));
    for s in servers {
        s.stop();
    }
    Ok(report)
}

/// Reads the database back: every bet of `data` stored once, in order, and
/// each agency told exactly its winners. What was found, in a sentence.
pub async fn verify(
    target: &PgTarget,
    data: &BTreeMap<u8, Vec<Bet>>,
    report: &SimReport,
) -> Result<String, Error> {
    let (store, _w, _) = Store::open(&Backend::Postgres(target.clone()), data.len()).await?;
    let stored = store.all_bets().await?;
    let total: usize = data.values().map(Vec::len).sum();
    if stored.len() != total {
        return Err(Error::Scenario(format!(
            "the database holds {} bets, the agencies sent {total}",
            stored.len()
        )));
    }
    for (agency, bets) in data {
        let mine = stored.iter().filter(|(a, _)| a == agency).map(|(_, b)| b);
        if !mine.eq(bets.iter()) {
            return Err(Error::Scenario(format!(
                "agency {agency}: the stored bets are not its bets, once each, in order"
            )));
        }
    }
    let told: BTreeMap<u8, Vec<String>> = report
        .agencies
        .iter()
        .map(|r| (r.agency, r.winners.clone()))
        .collect();
    if told != expected_winners(data) {
        return Err(Error::Scenario(
            "the winners told differ from the data's".into(),
        ));
    }
    Ok(format!(
        "totals and winners unchanged: {total} bets stored once each, every agency told exactly its winners"
    ))
}
