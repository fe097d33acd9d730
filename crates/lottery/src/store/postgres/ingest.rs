//! One group commit on PostgreSQL: the group's batches decided by
//! `lottery_admit` (one round trip), the new ones' bets written with
//! `COPY ... FROM STDIN (FORMAT binary)` ([`copy_format`]), then one commit.

use bytes::{Bytes, BytesMut};
use futures_util::SinkExt;

use super::copy_format::{self, CHUNK};
use super::schema::to_sql;
use super::{Link, describe};
use crate::store::{BatchJob, Committed, Job, Stored};

/// The group's arrays for `lottery_admit`, in queue order.
struct Arrays {
    agencies: Vec<i16>,
    firsts: Vec<Option<i64>>,
    counts: Vec<i64>,
    digests: Vec<i64>,
    lasts: Vec<bool>,
}

fn arrays(batches: &[&BatchJob]) -> Arrays {
    Arrays {
        agencies: batches.iter().map(|b| i16::from(b.agency)).collect(),
        firsts: batches
            .iter()
            .map(|b| b.placed.map(|p| i64::from(p.first)))
            .collect(),
        counts: batches.iter().map(|b| b.bets.len() as i64).collect(),
        digests: batches
            .iter()
            .map(|b| b.placed.map_or(0, |p| to_sql(p.digest)))
            .collect(),
        lasts: batches.iter().map(|b| b.last).collect(),
    }
}

/// Commits a group; the outcome of each batch, or why nothing was committed.
pub(super) async fn commit(link: &mut Link, jobs: &[Job]) -> Result<Vec<Committed>, String> {
    let batches: Vec<&BatchJob> = jobs
        .iter()
        .filter_map(|j| match j {
            Job::Batch(b, _) => Some(b),
            _ => None,
        })
        .collect();
    let e = |e: tokio_postgres::Error| describe(&e);
    let (client, stmts) = link.ready().await?;
    let tx = client.transaction().await.map_err(e)?;
    let t0 = std::time::Instant::now();
    let a = arrays(&batches);
    let row = tx
        .query_one(
            &stmts.admit,
            &[&a.agencies, &a.firsts, &a.counts, &a.digests, &a.lasts],
        )
        .await
        .map_err(e)?;
    let t_admit = t0.elapsed();
    let verdicts: Vec<String> = row.try_get(0).map_err(e)?;
    let ids: Vec<Option<i64>> = row.try_get(1).map_err(e)?;
    let drew: bool = row.try_get(2).map_err(e)?;
    if verdicts.len() != batches.len() || ids.len() != batches.len() {
        return Err(format!(
            "lottery_admit answered {} verdicts and {} numbers for {} batches",
            verdicts.len(),
            ids.len(),
            batches.len()
        ));
    }
    // The new batches, each with the number the database gave it.
    let fresh: Vec<(i64, &BatchJob)> = batches
        .iter()
        .zip(&verdicts)
        .zip(&ids)
        .filter_map(|((b, v), id)| match id {
            Some(id) if v.is_empty() => Some((*id, *b)),
            _ => None,
        })
        .collect();
    if fresh.iter().any(|(_, b)| !b.bets.is_empty()) {
        let sink = tx.copy_in::<_, Bytes>(&stmts.copy).await.map_err(e)?;
        let mut sink = std::pin::pin!(sink);
        let mut buf = BytesMut::with_capacity(CHUNK + 1024);
        copy_format::header(&mut buf);
        for (id, b) in &fresh {
            if b.bets.is_empty() {
                continue;
            }
            copy_format::row(&mut buf, *id, b);
            if buf.len() >= CHUNK {
                sink.feed(buf.split().freeze()).await.map_err(e)?;
            }
        }
        copy_format::trailer(&mut buf);
        sink.feed(buf.freeze()).await.map_err(e)?;
        sink.as_mut().finish().await.map_err(e)?;
    }
    let t_copy = t0.elapsed();
    tx.commit().await.map_err(e)?;
    tracing::debug!(
        batches = batches.len(),
        admit_us = t_admit.as_micros(),
        copy_us = t_copy.saturating_sub(t_admit).as_micros(),
        commit_us = t0.elapsed().saturating_sub(t_copy).as_micros(),
        "group committed"
    );
    // The draw belongs to the commit; the first new last batch carries it.
    let mut drew_left = drew;
    Ok(batches
        .iter()
        .zip(verdicts)
        .map(|(b, v)| {
            let stored = match v.as_str() {
                "" => Stored::New(b.bets.len()),
                "same" => Stored::Duplicate,
                _ => Stored::Conflict(v),
            };
            let drew = drew_left && b.last && matches!(stored, Stored::New(_));
            drew_left &= !drew;
            Committed { stored, drew }
        })
        .collect())
}
