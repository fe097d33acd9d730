//! One group commit on PostgreSQL: the group's batches decided by
//! `lottery_admit` (one round trip), the new ones' bets written with
//! `COPY ... FROM STDIN (FORMAT binary)`, then one commit.

use std::pin::pin;

use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

use super::schema::to_sql;
use super::{Link, describe};
use crate::store::{BatchJob, Committed, Job, Stored};

/// Column types of the `COPY`: agency, nombre, apellido, documento,
/// nacimiento, numero.
const COLUMNS: [Type; 6] = [
    Type::INT2,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT4,
];

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
    let a = arrays(&batches);
    let row = tx
        .query_one(
            &stmts.admit,
            &[&a.agencies, &a.firsts, &a.counts, &a.digests, &a.lasts],
        )
        .await
        .map_err(e)?;
    let verdicts: Vec<String> = row.try_get(0).map_err(e)?;
    let drew: bool = row.try_get(1).map_err(e)?;
    if verdicts.len() != batches.len() {
        return Err(format!(
            "lottery_admit answered {} verdicts for {} batches",
            verdicts.len(),
            batches.len()
        ));
    }
    let fresh: Vec<&BatchJob> = batches
        .iter()
        .zip(&verdicts)
        .filter(|(_, v)| v.is_empty())
        .map(|(b, _)| *b)
        .collect();
    if fresh.iter().any(|b| !b.bets.is_empty()) {
        let sink = tx.copy_in(&stmts.copy).await.map_err(e)?;
        let mut writer = pin!(BinaryCopyInWriter::new(sink, &COLUMNS));
        for b in &fresh {
            let agency = i16::from(b.agency);
            for bet in &b.bets {
                let numero = i32::from(bet.numero);
                writer
                    .as_mut()
                    .write(&[
                        &agency,
                        &bet.nombre,
                        &bet.apellido,
                        &bet.documento,
                        &bet.nacimiento,
                        &numero,
                    ])
                    .await
                    .map_err(e)?;
            }
        }
        writer.finish().await.map_err(e)?;
    }
    tx.commit().await.map_err(e)?;
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
