//! Several servers, one lottery (issue: lottery at national scale): servers
//! on loopback sharing one database of a throwaway PostgreSQL cluster.
//! Without PostgreSQL these skip with a message, unless PROTOLAB_REQUIRE_PG is
//! set (CI), where that fails.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use lottery::Bet;
use lottery::client::{AgencyConfig, run_agency};
use lottery::generate::{GenConfig, generate};
use lottery::pg_sandbox::Sandbox;
use lottery::server::{Server, ServerConfig};
use lottery::simulate::{SimOptions, expected_winners, run_agencies, simulate};
use lottery::store::{Backend, PgTarget, Store};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

const BOUND: Duration = Duration::from_secs(120);

/// The course's data set when `PROTOLAB_DATASET` points at it (78,697 bets,
/// winners 2, 3, 3, 2, 0), else a generated one of five agencies.
fn data() -> (BTreeMap<u8, Vec<Bet>>, bool) {
    match std::env::var_os("PROTOLAB_DATASET") {
        Some(p) => (lottery::dataset::load_all(Path::new(&p)).unwrap(), true),
        None => (
            generate(&GenConfig {
                agencies: 5,
                bets: 20_000,
                winner_share: 0.001,
                seed: 16,
            }),
            false,
        ),
    }
}

/// Every bet of the data stored exactly once, in each agency's order.
async fn assert_stored_once(target: &PgTarget, data: &BTreeMap<u8, Vec<Bet>>) {
    let (store, _w, _) = Store::open(&Backend::Postgres(target.clone()), data.len())
        .await
        .unwrap();
    let all = store.all_bets().await.unwrap();
    assert_eq!(all.len(), data.values().map(Vec::len).sum::<usize>());
    for (agency, bets) in data {
        let mine: Vec<&Bet> = all
            .iter()
            .filter(|(a, _)| a == agency)
            .map(|(_, b)| b)
            .collect();
        assert_eq!(
            mine.len(),
            bets.len(),
            "agency {agency}: none lost, none twice"
        );
        assert!(
            mine.iter().zip(bets).all(|(a, b)| *a == b),
            "agency {agency}: every bet once, in order"
        );
    }
}

fn winners_of(report: &lottery::simulate::SimReport) -> BTreeMap<u8, Vec<String>> {
    report
        .agencies
        .iter()
        .map(|a| (a.agency, a.winners.clone()))
        .collect()
}

/// A server on 127.0.0.1:0 of the shared lottery, running until `stop`.
async fn serve(
    target: &PgTarget,
    agencies: usize,
    stop: &CancellationToken,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let mut cfg = ServerConfig::new("127.0.0.1:0".parse().unwrap(), "unused".into());
    cfg.backend = Backend::Postgres(target.clone());
    cfg.agencies = agencies;
    let server = Server::bind(cfg).await.unwrap();
    let addr = server.local_addr().unwrap();
    let s = stop.clone();
    let task = tokio::spawn(async move {
        server.run(s.cancelled_owned()).await.unwrap();
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_five_agencies_one_lottery() {
    let Some(sandbox) = Sandbox::for_tests() else {
        return;
    };
    let target = sandbox.fresh_database("three").await.unwrap();
    let (data, real) = data();
    let mut opts = SimOptions::new(Backend::Postgres(target.clone()));
    opts.servers = 3;
    let report = timeout(BOUND, simulate(data.clone(), &opts))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(winners_of(&report), expected_winners(&data));
    if real {
        let counts: Vec<usize> = report.agencies.iter().map(|a| a.winners.len()).collect();
        assert_eq!(counts, vec![2, 3, 3, 2, 0]);
        assert_eq!(report.bets, 78_697);
    }
    assert_stored_once(&target, &data).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agency_moving_to_another_server_mid_stream_is_stored_once() {
    let Some(sandbox) = Sandbox::for_tests() else {
        return;
    };
    let target = sandbox.fresh_database("moving").await.unwrap();
    let data = generate(&GenConfig {
        agencies: 1,
        bets: 3_000,
        winner_share: 0.01,
        seed: 3,
    });
    let bets = data[&1].clone();
    let stop_a = CancellationToken::new();
    let stop_b = CancellationToken::new();
    let (a, task_a) = serve(&target, 1, &stop_a).await;
    let (b, task_b) = serve(&target, 1, &stop_b).await;
    let mut cfg = AgencyConfig::new(1, &format!("{a},{b}"));
    cfg.max_amount = 20;
    cfg.window = 4;
    let agency = tokio::spawn(async move { run_agency(&cfg, &bets).await });
    // Server A goes away once part of the bets are in: the agency moves to B.
    let (watch, _w, _) = Store::open(&Backend::Postgres(target.clone()), 1)
        .await
        .unwrap();
    timeout(BOUND, async {
        while watch.count().await.unwrap() < 500 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .unwrap();
    stop_a.cancel();
    task_a.await.unwrap();
    let report = timeout(BOUND, agency).await.unwrap().unwrap().unwrap();
    assert!(report.reconnects >= 1, "it failed over");
    assert_eq!(report.bets, 3_000);
    assert_eq!(
        report.winners,
        expected_winners(&data)[&1],
        "B runs the draw"
    );
    stop_b.cancel();
    task_b.await.unwrap();
    assert_stored_once(&target, &data).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_agencies_on_two_servers_at_once_and_a_server_restarted_after_the_draw() {
    let Some(sandbox) = Sandbox::for_tests() else {
        return;
    };
    let target = sandbox.fresh_database("together").await.unwrap();
    let data = generate(&GenConfig {
        agencies: 2,
        bets: 2_000,
        winner_share: 0.01,
        seed: 5,
    });
    let stop = CancellationToken::new();
    let (a, task_a) = serve(&target, 2, &stop).await;
    let (b, task_b) = serve(&target, 2, &stop).await;
    // Agency 1 only on A, agency 2 only on B: each server sees one agency
    // finish, at about the same moment; the draw must still happen once.
    let report = timeout(
        BOUND,
        run_agencies(
            data.clone(),
            &[a, b],
            &SimOptions::new(Backend::Postgres(target.clone())),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(winners_of(&report), expected_winners(&data));
    stop.cancel();
    task_a.await.unwrap();
    task_b.await.unwrap();
    // A server started after the draw answers winners at once.
    let stop = CancellationToken::new();
    let (c, task_c) = serve(&target, 2, &stop).await;
    let mut cfg = AgencyConfig::new(2, &c.to_string());
    cfg.draw_timeout = Duration::from_secs(5);
    let again = timeout(BOUND, run_agency(&cfg, &data[&2]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.resumed_from, data[&2].len(), "nothing sent again");
    assert_eq!(again.batches, 0);
    assert_eq!(again.winners, expected_winners(&data)[&2]);
    stop.cancel();
    task_c.await.unwrap();
    assert_stored_once(&target, &data).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_stopped_mid_ingest_then_back_every_bet_once() {
    if Sandbox::for_tests().is_none() {
        return;
    }
    // Its own cluster: the shared one stays up for the other tests.
    let sandbox = Sandbox::start().unwrap();
    let target = sandbox.create_database("outage").await.unwrap();
    let data = generate(&GenConfig {
        agencies: 3,
        bets: 60_000,
        winner_share: 0.001,
        seed: 9,
    });
    let stop = CancellationToken::new();
    let (addr, task) = serve(&target, 3, &stop).await;
    let mut opts = SimOptions::new(Backend::Postgres(target.clone()));
    opts.max_amount = 20;
    opts.window = 4;
    let agencies = tokio::spawn({
        let data = data.clone();
        async move { run_agencies(data, &[addr], &opts).await }
    });
    // Stop the database once some bets are in, start it again a second later.
    let (watch, _w, _) = Store::open(&Backend::Postgres(target.clone()), 3)
        .await
        .unwrap();
    timeout(BOUND, async {
        while watch.count().await.unwrap() < 5_000 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    sandbox.stop_server().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !agencies.is_finished(),
        "nothing completes without the database"
    );
    sandbox.start_server().unwrap();
    let report = timeout(BOUND, agencies).await.unwrap().unwrap().unwrap();
    assert_eq!(winners_of(&report), expected_winners(&data));
    assert!(
        report.agencies.iter().any(|a| a.reconnects > 0),
        "the outage was seen: {:?}",
        report.agencies
    );
    stop.cancel();
    task.await.unwrap();
    drop(watch);
    assert_stored_once(&target, &data).await;
}
