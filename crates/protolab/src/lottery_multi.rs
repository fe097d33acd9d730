//! `protolab lottery simulate`: arguments → the scenario, with one server in
//! this process (`lottery::simulate`), or with several `protolab lottery
//! serve` processes of this program sharing one PostgreSQL database
//! (`lottery::multi`), then the database read back.

use std::collections::BTreeMap;

use anyhow::Context as _;
use lottery::Bet;
use lottery::generate::{GenConfig, generate};
use lottery::multi::MultiOptions;
use lottery::simulate::{SimOptions, simulate as simulate_here};
use lottery::store::{Backend, PgTarget};

use crate::lottery_cmd::{SimulateArgs, print_winners};

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
    let target: Option<PgTarget> = a.store.as_deref().map(str::parse).transpose()?;
    let mut opts = SimOptions::new(Backend::Discard);
    opts.max_amount = a.max_amount;
    let Some(target) = target else {
        anyhow::ensure!(
            !a.kill_one,
            "--kill-one needs --servers 2 or more (another server must take over)"
        );
        let tmp = tempfile::tempdir()?;
        opts.backend = Backend::Sqlite(a.db.clone().unwrap_or_else(|| tmp.path().join("bets.db")));
        print_winners(&simulate_here(data, &opts).await?);
        return Ok(());
    };
    opts.backend = Backend::Postgres(target.clone());
    let report = if a.servers == 1 && !a.kill_one {
        simulate_here(data.clone(), &opts).await?
    } else {
        let exe = std::env::current_exe().context("cannot find this program")?;
        let url = a.store.clone().unwrap_or_default();
        let agencies = data.len().to_string();
        let server = || {
            let mut cmd = std::process::Command::new(&exe);
            cmd.args(["lottery", "serve", "--address", "127.0.0.1", "--port", "0"])
                .args(["--store", &url, "--agencies", &agencies])
                .env("LOGGING_LEVEL", "warn");
            cmd
        };
        let multi = MultiOptions {
            target: target.clone(),
            servers: usize::from(a.servers),
            kill_one: a.kill_one,
            sim: opts,
        };
        lottery::multi::run(&data, &multi, server, |line| println!("{line}")).await?
    };
    print_winners(&report);
    println!("{}", lottery::multi::verify(&target, &data, &report).await?);
    Ok(())
}
