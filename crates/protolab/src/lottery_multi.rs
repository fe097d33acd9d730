//! `protolab lottery simulate`: the main scenario, with one server in this
//! process, or with several `protolab lottery serve` processes sharing one
//! PostgreSQL database, one of which `--kill-one` SIGKILLs mid-ingest (issue:
//! several servers, one lottery). The agencies run here, spread over the
//! servers, each knowing the others to fail over to; at the end the database
//! is read back: every bet stored once, each agency's winners as the data
//! says.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use lottery::Bet;
use lottery::generate::{GenConfig, generate};
use lottery::simulate::{SimOptions, expected_winners, run_agencies, simulate as simulate_here};
use lottery::store::{Backend, PgTarget, Store};

use crate::lottery_cmd::{SimulateArgs, print_winners};

/// A `protolab lottery serve` process and where it listens.
struct ServerProc {
    child: Child,
    addr: SocketAddr,
    _stdout: BufReader<ChildStdout>,
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // A graceful stop: the server finishes its queue and closes.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .status();
            let _ = self.child.wait();
        }
    }
}

fn spawn_server(target: &PgTarget, url: &str, agencies: usize) -> anyhow::Result<ServerProc> {
    let mut child = Command::new(std::env::current_exe().context("cannot find this program")?)
        .args(["lottery", "serve", "--address", "127.0.0.1", "--port", "0"])
        .args(["--store", url, "--agencies", &agencies.to_string()])
        .env("LOGGING_LEVEL", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start a lottery server")?;
    let mut out = BufReader::new(child.stdout.take().context("no stdout")?);
    let mut line = String::new();
    out.read_line(&mut line)?;
    let addr = line
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok());
    let Some(addr) = addr else {
        let _ = child.wait();
        anyhow::bail!("a lottery server on {target} did not start (its error is above)");
    };
    Ok(ServerProc {
        child,
        addr,
        _stdout: out,
    })
}

fn data_of(a: &SimulateArgs) -> anyhow::Result<BTreeMap<u8, Vec<Bet>>> {
    Ok(match &a.dataset {
        Some(p) => lottery::dataset::load_all(p)?,
        None => generate(&GenConfig {
            agencies: a.agencies,
            bets: a.bets,
            winner_share: 0.0001,
            seed: 1,
        }),
    })
}

pub async fn simulate(a: SimulateArgs) -> anyhow::Result<()> {
    let data = data_of(&a)?;
    anyhow::ensure!(
        a.servers == 1 || a.store.is_some(),
        "--servers {} needs a shared store: --store postgres://USER@HOST:PORT/DB (protolab lottery pg-sandbox starts a throwaway one)",
        a.servers
    );
    anyhow::ensure!(
        !a.kill_one || a.servers >= 2,
        "--kill-one needs --servers 2 or more (another server must take over)"
    );
    let target: Option<PgTarget> = a.store.as_deref().map(str::parse).transpose()?;
    let mut opts = SimOptions::new(Backend::Discard);
    opts.max_amount = a.max_amount;
    let Some(target) = target else {
        let tmp = tempfile::tempdir()?;
        opts.backend = Backend::Sqlite(a.db.clone().unwrap_or_else(|| tmp.path().join("bets.db")));
        print_winners(&simulate_here(data, &opts).await?);
        return Ok(());
    };
    opts.backend = Backend::Postgres(target.clone());
    if a.servers == 1 {
        let report = simulate_here(data.clone(), &opts).await?;
        print_winners(&report);
        return check(&target, &data, &report).await;
    }
    let url = a.store.clone().unwrap_or_default();
    let servers = (0..a.servers)
        .map(|_| spawn_server(&target, &url, data.len()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    println!(
        "{} servers on one PostgreSQL database ({target}): {}",
        servers.len(),
        addrs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let total: usize = data.values().map(Vec::len).sum();
    let mut servers = servers;
    let agencies = tokio::spawn({
        let (data, addrs, opts) = (data.clone(), addrs.clone(), opts.clone());
        async move { run_agencies(data, &addrs, &opts).await }
    });
    if a.kill_one {
        let (watch, _w, _) = Store::open(&Backend::Postgres(target.clone()), data.len()).await?;
        let killed_at = loop {
            let n = watch.count().await?;
            if n as usize >= total / 3 || agencies.is_finished() {
                break n;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        anyhow::ensure!(
            !agencies.is_finished(),
            "the agencies finished before a third of the bets was stored; nothing to kill (use more bets)"
        );
        let victim = &mut servers[0];
        victim.child.kill().context("cannot kill the server")?;
        let _ = victim.child.wait();
        println!(
            "SIGKILLed the server at {} (pid {}) with {killed_at} of {total} bets stored; its agencies fail over",
            victim.addr,
            victim.child.id()
        );
    }
    let report = agencies.await??;
    print_winners(&report);
    let failovers: u32 = report.agencies.iter().map(|r| r.reconnects).sum();
    println!("agencies reconnected {failovers} time(s) in all");
    drop(servers);
    check(&target, &data, &report).await
}

/// Reads the database back: every bet of the data stored once, and each
/// agency told exactly its winners.
async fn check(
    target: &PgTarget,
    data: &BTreeMap<u8, Vec<Bet>>,
    report: &lottery::simulate::SimReport,
) -> anyhow::Result<()> {
    let (store, _w, _) = Store::open(&Backend::Postgres(target.clone()), data.len()).await?;
    let stored = store.all_bets().await?;
    let total: usize = data.values().map(Vec::len).sum();
    anyhow::ensure!(
        stored.len() == total,
        "the database holds {} bets, the agencies sent {total}",
        stored.len()
    );
    for (agency, bets) in data {
        let mine = stored.iter().filter(|(a, _)| a == agency).map(|(_, b)| b);
        anyhow::ensure!(
            mine.eq(bets.iter()),
            "agency {agency}: the stored bets are not its bets, once each, in order"
        );
    }
    let told: BTreeMap<u8, Vec<String>> = report
        .agencies
        .iter()
        .map(|r| (r.agency, r.winners.clone()))
        .collect();
    anyhow::ensure!(
        told == expected_winners(data),
        "the winners told differ from the data's"
    );
    println!(
        "totals and winners unchanged: {total} bets stored once each, every agency told exactly its winners"
    );
    Ok(())
}
