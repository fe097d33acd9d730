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

fn job(agency: u8, seq: Option<u32>, last: bool, bets: Vec<Bet>) -> BatchJob {
    BatchJob {
        agency,
        seq,
        last,
        bets,
    }
}

#[tokio::test]
async fn stores_durably_and_recovers_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bets.db");
    let (store, writer, rec) = Store::open(&Backend::Sqlite(path.clone())).unwrap();
    assert_eq!(rec, Recovered::default());
    let r = store
        .store(job(1, Some(0), false, vec![bet("01", 1), bet("02", 7574)]))
        .await
        .unwrap();
    assert_eq!(r, Stored::New(2));
    let r = store
        .store(job(1, Some(1), true, vec![bet("03", 3)]))
        .await
        .unwrap();
    assert_eq!(r, Stored::New(1));
    assert_eq!(store.count().await.unwrap(), 3);
    drop(store);
    writer.join();
    let (_s, _w, rec) = Store::open(&Backend::Sqlite(path.clone())).unwrap();
    assert_eq!(
        rec,
        Recovered {
            bets: 3,
            done: vec![1]
        }
    );
    let all = read_all(&path).unwrap();
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

#[tokio::test]
async fn a_retried_batch_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bets.db");
    let (store, _w, _) = Store::open(&Backend::Sqlite(path.clone())).unwrap();
    let b = job(4, Some(7), false, vec![bet("1", 1), bet("2", 2)]);
    assert_eq!(store.store(b.clone()).await.unwrap(), Stored::New(2));
    assert_eq!(store.store(b.clone()).await.unwrap(), Stored::Duplicate);
    // The same seq from another agency is another batch.
    assert_eq!(
        store
            .store(job(5, Some(7), false, vec![bet("1", 1)]))
            .await
            .unwrap(),
        Stored::New(1)
    );
    // Seed-style batches (no seq) are always stored.
    assert_eq!(
        store
            .store(job(4, None, false, vec![bet("9", 9)]))
            .await
            .unwrap(),
        Stored::New(1)
    );
    assert_eq!(store.count().await.unwrap(), 4);
    assert!(batch_recorded(&path, 4, 7).unwrap());
    assert!(!batch_recorded(&path, 4, 8).unwrap());
}

#[tokio::test]
async fn duplicates_inside_one_group_are_caught_too() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _w, _) = Store::open(&Backend::Sqlite(dir.path().join("b.db"))).unwrap();
    let b = job(2, Some(0), false, vec![bet("1", 1)]);
    // Queue both before either commits: they land in the same transaction.
    let first = store.submit(b.clone()).unwrap();
    let second = store.submit(b).unwrap();
    let (a, c) = tokio::join!(first, second);
    assert_eq!(
        (a.unwrap(), c.unwrap()),
        (Stored::New(1), Stored::Duplicate)
    );
    assert_eq!(store.count().await.unwrap(), 1);
}

#[tokio::test]
async fn winners_are_grouped_by_agency_never_by_documento() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _w, _) = Store::open(&Backend::Sqlite(dir.path().join("b.db"))).unwrap();
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

#[tokio::test]
async fn many_concurrent_batches_share_commits_and_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _w, _) = Store::open(&Backend::Sqlite(dir.path().join("b.db"))).unwrap();
    let mut pending = Vec::new();
    for agency in 1..=10u8 {
        for seq in 0..20u32 {
            let bets = (0..50)
                .map(|i| bet(&format!("{agency}{seq:03}{i:03}"), i))
                .collect();
            pending.push(
                store
                    .submit(job(agency, Some(seq), seq == 19, bets))
                    .unwrap(),
            );
        }
    }
    for p in pending {
        assert_eq!(p.await.unwrap(), Stored::New(50));
    }
    assert_eq!(store.count().await.unwrap(), 10 * 20 * 50);
}

#[tokio::test]
async fn discard_backend_acknowledges_without_storing() {
    let (store, _w, rec) = Store::open(&Backend::Discard).unwrap();
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
