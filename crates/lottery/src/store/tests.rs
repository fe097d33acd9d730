use super::*;

fn bet(doc: &str, numero: u16) -> Bet {
    Bet {
        nombre: "María José".into(),
        apellido: "Núñez".into(),
        documento: doc.into(),
        nacimiento: "1985-07-14".into(),
        numero,
    }
}

fn job(agency: u8, first: Option<u32>, last: bool, bets: Vec<Bet>) -> BatchJob {
    BatchJob::new(agency, first, last, bets)
}

/// `n` distinct bets whose documentos start at `from`.
fn bets(from: usize, n: usize) -> Vec<Bet> {
    (from..from + n)
        .map(|i| bet(&format!("{i:08}"), (i % 10_000) as u16))
        .collect()
}

/// A fresh, empty store of one backend, to open (and open again).
struct Fixture {
    backend: Backend,
    _dir: Option<tempfile::TempDir>,
}

impl Fixture {
    fn sqlite() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        Fixture {
            backend: Backend::Sqlite(dir.path().join("bets.db")),
            _dir: Some(dir),
        }
    }

    /// A fresh database of the process's throwaway cluster; `None` where
    /// PostgreSQL cannot run (and is not required).
    async fn postgres() -> Option<Fixture> {
        let sandbox = crate::pg_sandbox::Sandbox::for_tests()?;
        let target = sandbox.fresh_database("store").await.unwrap();
        Some(Fixture {
            backend: Backend::Postgres(target),
            _dir: None,
        })
    }

    async fn open(&self) -> (Store, Writer, Recovered) {
        Store::open(&self.backend, 5).await.unwrap()
    }
}

/// Runs each named case against SQLite and against PostgreSQL.
macro_rules! both_backends {
    ($($case:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::Fixture::sqlite()).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    if let Some(f) = super::Fixture::postgres().await {
                        super::$case(f).await;
                    }
                }
            )*
        }
    };
}

both_backends!(
    stores_durably_and_recovers_on_reopen,
    a_retried_batch_is_stored_once,
    duplicates_inside_one_group_are_caught_too,
    winners_are_grouped_by_agency_never_by_documento,
    many_concurrent_batches_share_commits_and_all_land,
    a_resend_with_another_batch_size_is_a_conflict_never_an_ack,
    progress_waits_at_a_gap_and_moves_on_when_it_is_filled
);

async fn stores_durably_and_recovers_on_reopen(f: Fixture) {
    let (store, writer, rec) = f.open().await;
    assert_eq!(rec, Recovered::default());
    let r = store
        .store(job(1, Some(0), false, vec![bet("01", 1), bet("02", 7574)]))
        .await
        .unwrap();
    assert_eq!(r, Stored::New(2));
    let r = store
        .store(job(1, Some(2), true, vec![bet("03", 3)]))
        .await
        .unwrap();
    assert_eq!(r, Stored::New(1));
    assert_eq!(store.count().await.unwrap(), 3);
    drop(store);
    writer.finish().await;
    let (store, _w, rec) = f.open().await;
    assert_eq!(
        rec,
        Recovered {
            bets: 3,
            done: vec![1],
            drawn: false,
        }
    );
    let all = store.all_bets().await.unwrap();
    assert_eq!(
        all.iter()
            .map(|(_, b)| b.documento.as_str())
            .collect::<Vec<_>>(),
        ["01", "02", "03"]
    );
    assert_eq!(
        all[0].1,
        bet("01", 1),
        "every field round-trips, accents included"
    );
}

async fn a_retried_batch_is_stored_once(f: Fixture) {
    let (store, _w, _) = f.open().await;
    let b = job(4, Some(7), false, vec![bet("1", 1), bet("2", 2)]);
    assert_eq!(store.store(b.clone()).await.unwrap(), Stored::New(2));
    assert_eq!(store.store(b.clone()).await.unwrap(), Stored::Duplicate);
    // The same place from another agency is another batch.
    assert_eq!(
        store
            .store(job(5, Some(7), false, vec![bet("1", 1)]))
            .await
            .unwrap(),
        Stored::New(1)
    );
    // Seed-style batches (no place) are always stored.
    assert_eq!(
        store
            .store(job(4, None, false, vec![bet("9", 9)]))
            .await
            .unwrap(),
        Stored::New(1)
    );
    assert_eq!(store.count().await.unwrap(), 4);
    assert!(store.recorded(4, 7).await.unwrap());
    assert!(!store.recorded(4, 8).await.unwrap());
}

async fn duplicates_inside_one_group_are_caught_too(f: Fixture) {
    let (store, _w, _) = f.open().await;
    let b = job(2, Some(0), false, vec![bet("1", 1)]);
    // Queue both before either commits: they land in the same transaction.
    let first = store.submit(b.clone()).unwrap();
    let second = store.submit(b).unwrap();
    let (a, c) = tokio::join!(first, second);
    assert_eq!(
        (a.unwrap().stored, c.unwrap().stored),
        (Stored::New(1), Stored::Duplicate)
    );
    assert_eq!(store.count().await.unwrap(), 1);
}

async fn winners_are_grouped_by_agency_never_by_documento(f: Fixture) {
    let (store, _w, _) = f.open().await;
    store
        .store(job(
            1,
            Some(0),
            true,
            vec![bet("111", 7574), bet("222", 1), bet("111", 7574)],
        ))
        .await
        .unwrap();
    store
        .store(job(
            2,
            Some(0),
            true,
            vec![bet("111", 7574), bet("333", 7575)],
        ))
        .await
        .unwrap();
    let w = store.winners().await.unwrap();
    assert_eq!(w[&1], vec!["111", "111"]);
    assert_eq!(w[&2], vec!["111"]);
    assert_eq!(w.len(), 2);
}

async fn many_concurrent_batches_share_commits_and_all_land(f: Fixture) {
    let (store, _w, _) = f.open().await;
    let mut pending = Vec::new();
    for agency in 1..=10u8 {
        for seq in 0..20u32 {
            let bets = (0..50)
                .map(|i| bet(&format!("{agency}{seq:03}{i:03}"), i))
                .collect();
            pending.push(
                store
                    .submit(job(agency, Some(seq * 50), seq == 19, bets))
                    .unwrap(),
            );
        }
    }
    for p in pending {
        assert_eq!(p.await.unwrap().stored, Stored::New(50));
    }
    assert_eq!(store.count().await.unwrap(), 10 * 20 * 50);
}

async fn a_resend_with_another_batch_size_is_a_conflict_never_an_ack(f: Fixture) {
    let (store, _w, _) = f.open().await;
    let all = bets(0, 200);
    // Batches of 50: places 0..50 and 50..100.
    assert_eq!(
        store
            .store(job(1, Some(0), false, all[..50].to_vec()))
            .await
            .unwrap(),
        Stored::New(50)
    );
    assert_eq!(
        store
            .store(job(1, Some(50), false, all[50..100].to_vec()))
            .await
            .unwrap(),
        Stored::New(50)
    );
    // Restarted with batches of 100: 0..100 is not the stored 0..50.
    let r = store
        .store(job(1, Some(0), false, all[..100].to_vec()))
        .await
        .unwrap();
    let Stored::Conflict(why) = r else {
        panic!("{r:?}")
    };
    assert!(
        why.contains("bets 0..100 of agency 1") && why.contains("stored batch 0..50"),
        "{why}"
    );
    // 25..125 overlaps from inside.
    let r = store
        .store(job(1, Some(25), false, all[25..125].to_vec()))
        .await
        .unwrap();
    assert!(
        matches!(r, Stored::Conflict(ref w) if w.contains("overlap the stored batch 50..100")),
        "{r:?}"
    );
    // 90..190 overlaps the end of 50..100.
    let r = store
        .store(job(1, Some(90), false, all[90..190].to_vec()))
        .await
        .unwrap();
    assert!(
        matches!(r, Stored::Conflict(ref w) if w.contains("stored batch 50..100")),
        "{r:?}"
    );
    // The same place and size with other bets is a conflict too.
    let r = store
        .store(job(1, Some(0), false, bets(1000, 50)))
        .await
        .unwrap();
    assert!(
        matches!(r, Stored::Conflict(ref w) if w.contains("other bets")),
        "{r:?}"
    );
    // Nothing of those was stored; resuming from the progress stores the rest.
    assert_eq!(store.count().await.unwrap(), 100);
    let p = store.progress(1).await.unwrap();
    assert_eq!((p.next, p.done), (100, false));
    assert_eq!(p.digest, crate::digest::range_digest(0, &all[..100]));
    assert_eq!(
        store
            .store(job(1, Some(100), true, all[100..].to_vec()))
            .await
            .unwrap(),
        Stored::New(100)
    );
    let p = store.progress(1).await.unwrap();
    assert_eq!((p.next, p.done), (200, true));
    assert_eq!(p.digest, crate::digest::range_digest(0, &all));
    let stored: Vec<_> = store
        .all_bets()
        .await
        .unwrap()
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    assert_eq!(stored, all, "every bet once, in order");
}

async fn progress_waits_at_a_gap_and_moves_on_when_it_is_filled(f: Fixture) {
    let (store, _w, _) = f.open().await;
    let all = bets(0, 30);
    assert_eq!(store.progress(3).await.unwrap(), Progress::default());
    store
        .store(job(3, Some(10), false, all[10..20].to_vec()))
        .await
        .unwrap();
    store
        .store(job(3, Some(20), false, all[20..30].to_vec()))
        .await
        .unwrap();
    assert_eq!(store.progress(3).await.unwrap().next, 0, "a gap at 0..10");
    store
        .store(job(3, Some(0), false, all[..10].to_vec()))
        .await
        .unwrap();
    let p = store.progress(3).await.unwrap();
    assert_eq!(p.next, 30);
    assert_eq!(p.digest, crate::digest::range_digest(0, &all));
    assert_eq!(
        store.progress(4).await.unwrap(),
        Progress::default(),
        "per agency"
    );
}

#[tokio::test]
async fn discard_backend_acknowledges_without_storing() {
    let (store, _w, rec) = Store::open(&Backend::Discard, 5).await.unwrap();
    assert_eq!(rec, Recovered::default());
    assert_eq!(
        store
            .store(job(1, Some(0), true, vec![bet("1", 1)]))
            .await
            .unwrap(),
        Stored::New(1)
    );
    assert_eq!(store.count().await.unwrap(), 0);
}

#[tokio::test]
async fn a_second_server_on_the_same_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bets.db");
    let (store, writer, _) = Store::open(&Backend::Sqlite(path.clone()), 5)
        .await
        .unwrap();
    let err = Store::open(&Backend::Sqlite(path.clone()), 5)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Locked(_)), "{err}");
    assert!(
        err.to_string().contains("in use by another lottery server"),
        "{err}"
    );
    // Once the first has closed, the file is free again.
    drop(store);
    writer.finish().await;
    assert!(Store::open(&Backend::Sqlite(path), 5).await.is_ok());
}
