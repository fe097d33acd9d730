//! The SQLite backend (spec: lottery.md, "Storage"): the embedded default.
//!
//! SQLite (bundled) in WAL mode with `synchronous=FULL`: a batch is
//! acknowledged only after the transaction holding it has committed and the
//! WAL has been synced, so a server killed at any moment loses no
//! acknowledged bet. One writer thread owns the connection.
//!
//! One server per database file: the store takes an exclusive lock (`flock`)
//! on the file for its whole life, and a second server refuses to start (two
//! servers on one file would split the agencies between two draws that never
//! happen; several servers share a PostgreSQL database instead).

use std::fs::File;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::mpsc;

use super::{Committed, Job, LotteryState, Progress, Recovered, Stored, Writer};
use crate::Error;
use crate::bet::{Bet, WINNING_NUMBER};
use crate::draw::{Winners, group_winners};

mod ranges;

/// Takes the database file for this process alone.
fn lock_file(path: &Path) -> Result<File, Error> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked(path.display().to_string())),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

fn open_sqlite(path: &Path) -> Result<Connection, Error> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS bets (
             id INTEGER PRIMARY KEY,
             agency INTEGER NOT NULL,
             nombre TEXT NOT NULL,
             apellido TEXT NOT NULL,
             documento TEXT NOT NULL,
             nacimiento TEXT NOT NULL,
             numero INTEGER NOT NULL
         );
         CREATE TABLE IF NOT EXISTS ranges (
             agency INTEGER NOT NULL,
             first INTEGER NOT NULL,
             count INTEGER NOT NULL,
             digest INTEGER NOT NULL,
             PRIMARY KEY (agency, first)
         ) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS progress (
             agency INTEGER PRIMARY KEY,
             next INTEGER NOT NULL,
             digest INTEGER NOT NULL
         );
         CREATE TABLE IF NOT EXISTS agencies_done (agency INTEGER PRIMARY KEY);",
    )?;
    Ok(conn)
}

fn done_agencies(c: &Connection) -> rusqlite::Result<Vec<u8>> {
    c.prepare_cached("SELECT agency FROM agencies_done ORDER BY agency")?
        .query_map([], |r| r.get::<_, u8>(0))?
        .collect()
}

/// Opens the file (locked for this process) or, with no path, the discarding
/// baseline, and starts the writer thread.
pub(super) fn start(
    path: Option<&Path>,
    rx: mpsc::UnboundedReceiver<Job>,
) -> Result<(Writer, Recovered), Error> {
    let (conn, lock) = match path {
        Some(path) => {
            let lock = lock_file(path)?;
            (Some(open_sqlite(path)?), Some(lock))
        }
        None => (None, None),
    };
    let recovered = match &conn {
        Some(c) => Recovered {
            bets: c.query_row("SELECT COUNT(*) FROM bets", [], |r| r.get::<_, i64>(0))? as u64,
            done: done_agencies(c)?,
            drawn: false,
        },
        None => Recovered::default(),
    };
    let name = path.map_or_else(|| "discard".to_string(), |p| p.display().to_string());
    let thread = std::thread::Builder::new()
        .name("lottery-store".into())
        .spawn(move || {
            writer_loop(conn, rx, &name);
            // Released only once the database is closed.
            drop(lock);
        })?;
    Ok((Writer::Thread(thread), recovered))
}

fn writer_loop(mut conn: Option<Connection>, mut rx: mpsc::UnboundedReceiver<Job>, name: &str) {
    while let Some(first) = rx.blocking_recv() {
        let (batches, queries) = super::take_group(first, &mut rx);
        if !batches.is_empty() {
            let outcome = match conn.as_mut() {
                Some(c) => commit_group(c, &batches).map_err(|e| e.to_string()),
                None => Ok(batches.iter().map(discarded).collect()),
            };
            super::answer_batches(batches, outcome);
        }
        for q in queries {
            answer_query(conn.as_ref(), q);
        }
    }
    if let Some(c) = conn {
        match c.close() {
            Ok(()) => netkit::log_action!(info, "store_close", Success, db = name),
            Err((_, e)) => netkit::log_action!(warn, "store_close", Fail, db = name, error = e),
        }
    }
}

/// The baseline's answer: acknowledged, nothing written.
fn discarded(job: &Job) -> Committed {
    let n = match job {
        Job::Batch(b, _) => b.bets.len(),
        _ => 0,
    };
    Committed {
        stored: Stored::New(n),
        drew: false,
    }
}

/// Writes a group of batches in one transaction.
fn commit_group(conn: &mut Connection, jobs: &[Job]) -> rusqlite::Result<Vec<Committed>> {
    let tx = conn.transaction()?;
    let mut results = Vec::with_capacity(jobs.len());
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO bets (agency, nombre, apellido, documento, nacimiento, numero) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut done =
            tx.prepare_cached("INSERT OR IGNORE INTO agencies_done (agency) VALUES (?1)")?;
        for job in jobs {
            let Job::Batch(b, _) = job else { continue };
            let stored = if let Some(placed) = b.placed {
                match ranges::admit(&tx, b.agency, placed, b.bets.len())? {
                    ranges::Admit::New => None,
                    ranges::Admit::Same => Some(Stored::Duplicate),
                    ranges::Admit::Clash(why) => Some(Stored::Conflict(why)),
                }
            } else {
                None
            };
            if let Some(stored) = stored {
                results.push(Committed {
                    stored,
                    drew: false,
                });
                continue;
            }
            for bet in &b.bets {
                insert.execute(params![
                    b.agency,
                    bet.nombre,
                    bet.apellido,
                    bet.documento,
                    bet.nacimiento,
                    bet.numero
                ])?;
            }
            if b.last {
                done.execute(params![b.agency])?;
            }
            results.push(Committed {
                stored: Stored::New(b.bets.len()),
                drew: false,
            });
        }
    }
    tx.commit()?;
    Ok(results)
}

fn answer_query(conn: Option<&Connection>, job: Job) {
    fn send<T>(reply: super::Reply<T>, r: rusqlite::Result<T>) {
        let _ = reply.send(r.map_err(|e| e.to_string()));
    }
    match job {
        Job::Winners(reply) => send(reply, conn.map_or(Ok(Winners::new()), winners)),
        Job::Progress(agency, reply) => send(
            reply,
            conn.map_or(Ok(Progress::default()), |c| ranges::progress(c, agency)),
        ),
        Job::Count(reply) => send(
            reply,
            conn.map_or(Ok(0), |c| {
                c.query_row("SELECT COUNT(*) FROM bets", [], |r| r.get::<_, i64>(0))
                    .map(|n| n as u64)
            }),
        ),
        Job::State(reply) => send(
            reply,
            conn.map_or(Ok(Vec::new()), done_agencies)
                .map(|done| LotteryState {
                    expected: 0,
                    done,
                    drawn: false,
                }),
        ),
        Job::All(reply) => send(reply, conn.map_or(Ok(Vec::new()), all_bets)),
        Job::Recorded(agency, first, reply) => send(
            reply,
            conn.map_or(Ok(false), |c| recorded(c, agency, first)),
        ),
        Job::Batch(..) => {}
    }
}

fn winners(c: &Connection) -> rusqlite::Result<Winners> {
    let mut stmt =
        c.prepare_cached("SELECT agency, documento FROM bets WHERE numero = ?1 ORDER BY id")?;
    let rows = stmt.query_map([WINNING_NUMBER], |r| {
        Ok((r.get::<_, u8>(0)?, r.get::<_, String>(1)?))
    })?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .map(group_winners)
}

fn all_bets(c: &Connection) -> rusqlite::Result<Vec<(u8, Bet)>> {
    let mut stmt = c.prepare(
        "SELECT agency, nombre, apellido, documento, nacimiento, numero FROM bets ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, u8>(0)?,
            Bet {
                nombre: r.get(1)?,
                apellido: r.get(2)?,
                documento: r.get(3)?,
                nacimiento: r.get(4)?,
                numero: r.get(5)?,
            },
        ))
    })?;
    rows.collect()
}

fn recorded(c: &Connection, agency: u8, first: u32) -> rusqlite::Result<bool> {
    Ok(c.query_row(
        "SELECT 1 FROM ranges WHERE agency = ?1 AND first = ?2",
        params![agency, first],
        |_| Ok(()),
    )
    .optional()?
    .is_some())
}

/// Reads every stored bet of a database file, in storage order, as
/// `(agency, bet)`; for export and tests. Opens its own read connection (WAL
/// lets it run beside the writer).
pub fn read_all(path: &Path) -> Result<Vec<(u8, Bet)>, Error> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    Ok(all_bets(&conn)?)
}

/// Whether a batch of `agency` starting at place `first` is recorded in a
/// database file, for tests.
pub fn batch_recorded(path: &Path, agency: u8, first: u32) -> Result<bool, Error> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    Ok(recorded(&conn, agency, first)?)
}
