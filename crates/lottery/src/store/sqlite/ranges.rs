//! Which places of an agency's list are stored, and by which batch (spec:
//! lottery.md, "Durability and exactly-once"; hostile input: a batch is a
//! retry only if it is the same batch).
//!
//! Stored batches of one agency never overlap (this module refuses any that
//! would), so the only stored batch that can overlap a new one `[first, end)`
//! is the last one starting before `end`: one indexed look-up, whatever the
//! number of batches.

use rusqlite::{Connection, OptionalExtension, params};

use crate::store::{Placed, Progress};

/// What to do with a placed batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admit {
    /// New places: store it (its range is recorded already).
    New,
    /// The very batch stored before: a retry.
    Same,
    /// It clashes with a stored batch, as said.
    Clash(String),
}

/// SQLite keeps 64-bit signed integers: the digest's bits go in as they are.
fn to_sql(d: u64) -> i64 {
    i64::from_ne_bytes(d.to_ne_bytes())
}

fn from_sql(d: i64) -> u64 {
    u64::from_ne_bytes(d.to_ne_bytes())
}

fn batch_at(c: &Connection, agency: u8, first: i64) -> rusqlite::Result<Option<(i64, u64)>> {
    c.prepare_cached("SELECT count, digest FROM ranges WHERE agency = ?1 AND first = ?2")?
        .query_row(params![agency, first], |r| {
            Ok((r.get(0)?, from_sql(r.get(1)?)))
        })
        .optional()
}

/// Decides about a placed batch of `count` bets and, if it is new, records
/// its range and moves the agency's progress on. Runs inside the batch's
/// transaction, so a batch is recorded exactly when its bets are stored.
pub fn admit(c: &Connection, agency: u8, placed: Placed, count: usize) -> rusqlite::Result<Admit> {
    let first = i64::from(placed.first);
    let end = first + count as i64;
    if let Some((n, digest)) = batch_at(c, agency, first)? {
        if n == count as i64 && digest == placed.digest {
            return Ok(Admit::Same);
        }
        let why = if n == count as i64 {
            "other bets"
        } else {
            "another batch size"
        };
        return Ok(Admit::Clash(format!(
            "batch conflict: bets {first}..{end} of agency {agency} clash with the stored batch {first}..{} ({why}); nothing stored. Ask RESUME where the agency stands",
            first + n
        )));
    }
    let before: Option<(i64, i64)> = c
        .prepare_cached(
            "SELECT first, count FROM ranges WHERE agency = ?1 AND first < ?2 ORDER BY first DESC LIMIT 1",
        )?
        .query_row(params![agency, end.max(first + 1)], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((f, n)) = before
        && (f + n > first || (f >= first && f < end))
    {
        return Ok(Admit::Clash(format!(
            "batch conflict: bets {first}..{end} of agency {agency} overlap the stored batch {f}..{} (another batch size or other bets); nothing stored. Ask RESUME where the agency stands",
            f + n
        )));
    }
    c.prepare_cached("INSERT INTO ranges (agency, first, count, digest) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![agency, first, count as i64, to_sql(placed.digest)])?;
    let (mut next, mut digest) = stored_prefix(c, agency)?;
    if next == first {
        // Move on over this batch and any stored past a gap it fills.
        while let Some((n, d)) = batch_at(c, agency, next)? {
            if n == 0 {
                break;
            }
            next += n;
            digest = digest.wrapping_add(d);
        }
        c.prepare_cached(
            "INSERT INTO progress (agency, next, digest) VALUES (?1, ?2, ?3)
             ON CONFLICT (agency) DO UPDATE SET next = excluded.next, digest = excluded.digest",
        )?
        .execute(params![agency, next, to_sql(digest)])?;
    }
    Ok(Admit::New)
}

fn stored_prefix(c: &Connection, agency: u8) -> rusqlite::Result<(i64, u64)> {
    Ok(
        c.prepare_cached("SELECT next, digest FROM progress WHERE agency = ?1")?
            .query_row(params![agency], |r| Ok((r.get(0)?, from_sql(r.get(1)?))))
            .optional()?
            .unwrap_or((0, 0)),
    )
}

/// Where `agency`'s bets stand.
pub fn progress(c: &Connection, agency: u8) -> rusqlite::Result<Progress> {
    let (next, digest) = stored_prefix(c, agency)?;
    let done = c
        .prepare_cached("SELECT 1 FROM agencies_done WHERE agency = ?1")?
        .query_row(params![agency], |_| Ok(()))
        .optional()?
        .is_some();
    Ok(Progress {
        next: u32::try_from(next).unwrap_or(u32::MAX),
        digest,
        done,
    })
}
