//! What only a shared store does: several stores (servers) on one database,
//! the schema's versions, the lottery's expected count, the database going
//! away and coming back. The rules both backends share are tested on both in
//! `store::tests`.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::pg_sandbox::Sandbox;
use crate::store::{Backend, BatchJob, Store, Stored};

fn bets(from: usize, n: usize, numero: u16) -> Vec<Bet> {
    (from..from + n)
        .map(|i| Bet {
            nombre: "Ana".into(),
            apellido: "Pérez".into(),
            documento: format!("{i:08}"),
            nacimiento: "1999-03-17".into(),
            numero,
        })
        .collect()
}

async fn fresh() -> Option<Backend> {
    let sandbox = Sandbox::for_tests()?;
    Some(Backend::Postgres(
        sandbox.fresh_database("shared").await.unwrap(),
    ))
}

#[test]
fn targets_parse_and_show_without_the_password() {
    let t: PgTarget = "postgres://ana:secret@db.example:5433/lottery"
        .parse()
        .unwrap();
    assert_eq!(t.to_string(), "postgres://ana@db.example:5433/lottery");
    let t: PgTarget = "postgresql://ana@127.0.0.1/lottery".parse().unwrap();
    assert_eq!(t.to_string(), "postgres://ana@127.0.0.1:5432/lottery");
    let t: PgTarget = "host=/tmp/pg port=5499 user=ana dbname=l".parse().unwrap();
    assert_eq!(t.to_string(), "postgres://ana@[/tmp/pg]:5499/l");
}

#[test]
fn malformed_targets_are_refused_with_the_reason_and_no_password() {
    for (url, why) in [
        ("mysql://a@b/c", "not a postgres:// URL"),
        ("bets.db", "not a postgres:// URL"),
        ("postgres://ana@localhost", "no database name"),
        ("postgres://ana:pw@localhost:notaport/x", "invalid"),
    ] {
        let err = url.parse::<PgTarget>().unwrap_err();
        let text = err.to_string();
        assert!(text.contains(why), "{url}: {text}");
        assert!(!text.contains(":pw@"), "{text}");
        assert!(!text.contains('\n'), "one line: {text}");
    }
}

#[tokio::test]
async fn an_unreachable_database_is_a_one_line_error_naming_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target: PgTarget = format!("postgres://lottery:pw@127.0.0.1:{port}/none")
        .parse()
        .unwrap();
    let err = Store::open(&Backend::Postgres(target), 5)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Unreachable { .. }), "{text}");
    assert!(
        text.contains(&format!("127.0.0.1:{port}")) && text.contains("refused"),
        "{text}"
    );
    assert!(!text.contains("pw") && !text.contains('\n'), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_starting_together_migrate_once_and_share_the_lottery() {
    let Some(backend) = fresh().await else { return };
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let b = backend.clone();
            tokio::spawn(async move { Store::open(&b, 5).await })
        })
        .collect();
    let mut stores = Vec::new();
    for o in opens {
        stores.push(o.await.unwrap().unwrap());
    }
    // One version row: the migration ran once.
    let Backend::Postgres(t) = &backend else {
        unreachable!()
    };
    let (c, conn) = t.config().connect(NoTls).await.unwrap();
    tokio::spawn(conn);
    let versions: i64 = c
        .query_one("SELECT count(*) FROM lottery_schema", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(versions, 1);
    // A batch stored through one server is a retry through another.
    let job = BatchJob::new(1, Some(0), false, bets(0, 10, 1));
    assert_eq!(
        stores[0].0.store(job.clone()).await.unwrap(),
        Stored::New(10)
    );
    assert_eq!(stores[1].0.store(job).await.unwrap(), Stored::Duplicate);
    assert_eq!(stores[2].0.progress(1).await.unwrap().next, 10);
    // A clashing batch is refused on any server.
    let other = BatchJob::new(1, Some(5), false, bets(100, 10, 1));
    assert!(matches!(
        stores[3].0.store(other).await.unwrap(),
        Stored::Conflict(ref w) if w.contains("overlap the stored batch 0..10")
    ));
    assert_eq!(stores[3].0.count().await.unwrap(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lottery_keeps_its_expected_count_and_refuses_a_newer_schema() {
    let Some(backend) = fresh().await else { return };
    drop(Store::open(&backend, 3).await.unwrap());
    let err = Store::open(&backend, 5).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("waits for 3 agencies, this server for 5; start it with --agencies 3"),
        "{err}"
    );
    let Backend::Postgres(t) = &backend else {
        unreachable!()
    };
    let (c, conn) = t.config().connect(NoTls).await.unwrap();
    tokio::spawn(conn);
    c.execute("INSERT INTO lottery_schema VALUES (99)", &[])
        .await
        .unwrap();
    let err = Store::open(&backend, 3).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::SchemaNewer {
                found: 99,
                known: 1
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("newer than this program knows"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_agencies_finishing_on_two_servers_at_once_draw_once() {
    let Some(backend) = fresh().await else { return };
    for round in 0..10u8 {
        let Backend::Postgres(t) = &backend else {
            unreachable!()
        };
        // A fresh lottery per round (agency numbers offset per round).
        let (c, conn) = t.config().connect(NoTls).await.unwrap();
        tokio::spawn(conn);
        if round > 0 {
            c.batch_execute("UPDATE lottery SET drawn_at = NULL; DELETE FROM agencies_done")
                .await
                .unwrap();
        }
        let (a, _wa, _) = Store::open(&backend, 2).await.unwrap();
        let (b, _wb, _) = Store::open(&backend, 2).await.unwrap();
        let base = round * 2;
        let ja = a
            .submit(BatchJob::new(base + 1, Some(0), true, bets(0, 50, 1)))
            .unwrap();
        let jb = b
            .submit(BatchJob::new(base + 2, Some(0), true, bets(0, 50, 1)))
            .unwrap();
        let (ra, rb) = tokio::join!(ja, jb);
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert_eq!(
            (&ra.stored, &rb.stored),
            (&Stored::New(50), &Stored::New(50))
        );
        assert!(
            ra.drew ^ rb.drew,
            "round {round}: exactly one commit draws ({} {})",
            ra.drew,
            rb.drew
        );
        let state = a.state().await.unwrap();
        assert!(state.drawn);
        assert_eq!(state.done, vec![base + 1, base + 2]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_database_is_away_nothing_is_acknowledged_then_it_resumes() {
    // Its own cluster: stopping the shared one would stop other tests.
    if Sandbox::for_tests().is_none() {
        return;
    }
    let sandbox = Sandbox::start().unwrap();
    let target = sandbox.create_database("away").await.unwrap();
    let (store, _w, _) = Store::open(&Backend::Postgres(target), 5).await.unwrap();
    let first = BatchJob::new(1, Some(0), false, bets(0, 20, 1));
    assert_eq!(store.store(first).await.unwrap(), Stored::New(20));
    sandbox.stop_server().unwrap();
    let second = BatchJob::new(1, Some(20), false, bets(20, 20, 1));
    let err = store.store(second.clone()).await.unwrap_err();
    assert!(matches!(err, Error::Commit(_)), "{err}");
    assert!(
        store.count().await.is_err(),
        "no answer without the database"
    );
    sandbox.start_server().unwrap();
    // The next group connects again; the refused batch goes in once.
    assert_eq!(store.store(second.clone()).await.unwrap(), Stored::New(20));
    assert_eq!(store.store(second).await.unwrap(), Stored::Duplicate);
    assert_eq!(store.count().await.unwrap(), 40);
    assert_eq!(store.progress(1).await.unwrap().next, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_hangs_fails_the_group_in_bounded_time_then_it_resumes() {
    // Its own cluster: freezing the shared one would stop other tests.
    if Sandbox::for_tests().is_none() {
        return;
    }
    let sandbox = Sandbox::start().unwrap();
    let limit = Duration::from_millis(1500);
    let target = sandbox
        .create_database("hang")
        .await
        .unwrap()
        .with_operation_timeout(limit);
    let (store, _w, _) = Store::open(&Backend::Postgres(target), 5).await.unwrap();
    let first = BatchJob::new(1, Some(0), false, bets(0, 20, 1));
    assert_eq!(store.store(first).await.unwrap(), Stored::New(20));
    // Frozen: the connection stays open and nothing answers (not a close,
    // which the previous test covers).
    sandbox.pause_server().unwrap();
    let second = BatchJob::new(1, Some(20), false, bets(20, 20, 1));
    let started = std::time::Instant::now();
    let err = tokio::time::timeout(limit * 4, store.store(second.clone()))
        .await
        .expect("the writer gives up on a hung database")
        .unwrap_err();
    assert!(err.to_string().contains("did not answer within"), "{err}");
    assert!(started.elapsed() >= limit, "not before the limit");
    sandbox.resume_server().unwrap();
    // The next group connects again; the refused batch goes in once.
    assert_eq!(store.store(second.clone()).await.unwrap(), Stored::New(20));
    assert_eq!(store.store(second).await.unwrap(), Stored::Duplicate);
    assert_eq!(store.count().await.unwrap(), 40);
}
