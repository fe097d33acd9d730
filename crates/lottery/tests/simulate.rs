//! The main scenario end to end: a server and N agencies on loopback.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::Path;
use std::time::Duration;

use lottery::dataset::load_all;
use lottery::generate::{GenConfig, generate};
use lottery::simulate::{SimOptions, simulate};
use lottery::store::{Backend, read_all};

const BOUND: Duration = Duration::from_secs(120);

fn opts(db: &Path) -> SimOptions {
    SimOptions {
        backend: Backend::Sqlite(db.to_path_buf()),
        max_amount: 100,
        window: 16,
        servers: 1,
    }
}

async fn run_generated(agencies: u8) {
    let data = generate(&GenConfig {
        agencies,
        bets: 6000,
        winner_share: 0.005,
        seed: 42,
    });
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bets.db");
    let report = tokio::time::timeout(BOUND, simulate(data.clone(), &opts(&db)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.agencies.len(), usize::from(agencies));
    for r in &report.agencies {
        let expected: Vec<String> = data[&r.agency]
            .iter()
            .filter(|b| b.wins())
            .map(|b| b.documento.clone())
            .collect();
        assert_eq!(
            r.winners, expected,
            "agency {} gets exactly its own winners",
            r.agency
        );
        assert_eq!(r.reconnects, 0);
    }
    let stored = read_all(&db).unwrap();
    assert_eq!(stored.len(), 6000);
    for (agency, bets) in &data {
        let mine: Vec<_> = stored
            .iter()
            .filter(|(a, _)| a == agency)
            .map(|(_, b)| b.clone())
            .collect();
        assert_eq!(
            &mine, bets,
            "agency {agency}: every bet stored once, in order"
        );
    }
}

#[tokio::test]
async fn three_agencies() {
    run_generated(3).await;
}

#[tokio::test]
async fn five_agencies() {
    run_generated(5).await;
}

/// The course's data set, when `PROTOLAB_DATASET` points at it: 78,697 bets
/// stored, winners 2, 3, 3, 2, 0.
#[tokio::test]
async fn real_dataset_when_available() {
    let Some(path) = std::env::var_os("PROTOLAB_DATASET") else {
        return;
    };
    let data = load_all(Path::new(&path)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bets.db");
    let report = tokio::time::timeout(BOUND, simulate(data, &opts(&db)))
        .await
        .unwrap()
        .unwrap();
    let winners: Vec<usize> = report.agencies.iter().map(|r| r.winners.len()).collect();
    assert_eq!(winners, vec![2, 3, 3, 2, 0]);
    assert_eq!(read_all(&db).unwrap().len(), 78_697);
}
