//! The durable store (spec: lottery.md, "Storage", "Durability and exactly-once").
//!
//! SQLite (bundled) in WAL mode with `synchronous=FULL`: a batch is acknowledged
//! only after the transaction holding it has committed and the WAL has been
//! synced, so a server killed at any moment loses no acknowledged bet.
//!
//! One writer thread owns the connection and does **group commit**: it takes
//! every batch waiting in its queue, writes them all in one transaction, syncs
//! once, then answers each. Many agencies sending at once share one fsync.
//!
//! Exactly-once: a `SEND_BATCH` says where its bets sit in the agency's list
//! (`first`); the server computes the batch's digest ([`crate::digest`]) and
//! records `(agency, first, count, digest)` in `ranges`, in the same
//! transaction as the bets. A batch is a retry only if it is the same batch:
//! same place, same count, same digest; then it is acknowledged without being
//! stored again. A batch that overlaps a stored one in any other way (another
//! batch size after a restart, another client claiming the agency's places) is
//! a conflict: refused, never acknowledged, nothing stored, and the answer names
//! the stored batch it clashes with. `progress` keeps, per agency, how many
//! bets are stored from place 0 without a gap and their digest: what `RESUME`
//! answers, so a restarted client (whatever its batch size) sends only the rest.
//! The seed's codes carry no place and cannot be deduplicated.
//!
//! One server per database file: the store takes an exclusive lock (`flock`)
//! on the file for its whole life, and a second server refuses to start.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use crate::Error;
use crate::bet::{Bet, WINNING_NUMBER};
use crate::draw::{Winners, group_winners};

/// Most bets written in one transaction before committing.
const GROUP_BETS: usize = 200_000;

/// Where a batch's bets sit in its agency's list, and what they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    /// Place of the first bet.
    pub first: u32,
    /// [`crate::digest::range_digest`] of the bets from `first`.
    pub digest: u64,
}

/// One batch to store.
#[derive(Debug, Clone)]
pub struct BatchJob {
    /// The agency.
    pub agency: u8,
    /// Where its bets sit, if it said (`SEND_BATCH`).
    pub placed: Option<Placed>,
    /// This is the agency's last batch.
    pub last: bool,
    /// The bets.
    pub bets: Vec<Bet>,
}

impl BatchJob {
    /// A batch; placed at `first` when the client says where (its digest
    /// computed from its bets), unplaced from a legacy client.
    pub fn new(agency: u8, first: Option<u32>, last: bool, bets: Vec<Bet>) -> Self {
        let placed = first.map(|first| Placed {
            first,
            digest: crate::digest::range_digest(u64::from(first), &bets),
        });
        Self {
            agency,
            placed,
            last,
            bets,
        }
    }
}

/// What storing a batch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// Stored now (this many bets), durably.
    New(usize),
    /// Already stored earlier (a retry); nothing written.
    Duplicate,
    /// It clashes with a stored batch (said how); nothing written.
    Conflict(String),
}

/// Where an agency's bets stand.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Bets stored from place 0 without a gap.
    pub next: u32,
    /// Their digest.
    pub digest: u64,
    /// Its last batch is stored.
    pub done: bool,
}

/// What a store found when it opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Bets already stored.
    pub bets: u64,
    /// Agencies that had already sent their last batch.
    pub done: Vec<u8>,
}

enum Job {
    Batch(BatchJob, oneshot::Sender<Result<Stored, String>>),
    Winners(oneshot::Sender<Result<Winners, String>>),
    Count(oneshot::Sender<Result<u64, String>>),
    Progress(u8, oneshot::Sender<Result<Progress, String>>),
}

/// Where bets go.
#[derive(Debug, Clone)]
pub enum Backend {
    /// SQLite at this path (created on first run).
    Sqlite(PathBuf),
    /// Acknowledge without storing: the benchmark's baseline.
    Discard,
}

/// Handle to the writer thread. Cheap to clone; the thread ends when every
/// handle is dropped (after finishing what was queued).
#[derive(Debug, Clone)]
pub struct Store {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Job::Batch(..) => "Batch",
            Job::Winners(_) => "Winners",
            Job::Count(_) => "Count",
            Job::Progress(..) => "Progress",
        })
    }
}

/// The writer thread, to join at shutdown.
#[derive(Debug)]
pub struct Writer {
    thread: JoinHandle<()>,
}

impl Writer {
    /// Waits until the writer has finished its queue and closed the database.
    pub fn join(self) {
        let _ = self.thread.join();
    }
}

/// Takes the database file for this process alone: a second server on the
/// same file would split the agencies between two draws that never happen.
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

impl Store {
    /// Opens (creating if needed) the store and starts its writer thread.
    pub fn open(backend: &Backend) -> Result<(Store, Writer, Recovered), Error> {
        let (conn, lock) = match backend {
            Backend::Sqlite(path) => {
                let lock = lock_file(path)?;
                (Some(open_sqlite(path)?), Some(lock))
            }
            Backend::Discard => (None, None),
        };
        let recovered = match &conn {
            Some(c) => Recovered {
                bets: c.query_row("SELECT COUNT(*) FROM bets", [], |r| r.get::<_, i64>(0))? as u64,
                done: c
                    .prepare("SELECT agency FROM agencies_done ORDER BY agency")?
                    .query_map([], |r| r.get::<_, u8>(0))?
                    .collect::<Result<_, _>>()?,
            },
            None => Recovered::default(),
        };
        let (tx, rx) = mpsc::channel();
        let name = match backend {
            Backend::Sqlite(p) => p.display().to_string(),
            Backend::Discard => "discard".to_string(),
        };
        let thread = std::thread::Builder::new()
            .name("lottery-store".into())
            .spawn(move || {
                writer_loop(conn, &rx, &name);
                // Released only once the database is closed.
                drop(lock);
            })?;
        Ok((Store { jobs: tx }, Writer { thread }, recovered))
    }

    /// Stores a batch; resolves once it is durable (or known to be a retry).
    pub async fn store(&self, job: BatchJob) -> Result<Stored, Error> {
        self.submit(job)?.await
    }

    /// Queues a batch and returns the receiver of its outcome, so a connection
    /// can pipeline batches and still answer them in order.
    pub fn submit(
        &self,
        job: BatchJob,
    ) -> Result<impl Future<Output = Result<Stored, Error>> + Send + use<>, Error> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Job::Batch(job, tx))
            .map_err(|_| Error::StoreClosed)?;
        Ok(async move {
            match rx.await {
                Ok(r) => r.map_err(Error::Commit),
                Err(_) => Err(Error::StoreClosed),
            }
        })
    }

    /// Every winning bet's documento, per agency.
    pub async fn winners(&self) -> Result<Winners, Error> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Job::Winners(tx))
            .map_err(|_| Error::StoreClosed)?;
        rx.await
            .map_err(|_| Error::StoreClosed)?
            .map_err(Error::Commit)
    }

    /// Where `agency`'s bets stand.
    pub async fn progress(&self, agency: u8) -> Result<Progress, Error> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Job::Progress(agency, tx))
            .map_err(|_| Error::StoreClosed)?;
        rx.await
            .map_err(|_| Error::StoreClosed)?
            .map_err(Error::Commit)
    }

    /// Bets stored so far.
    pub async fn count(&self) -> Result<u64, Error> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Job::Count(tx))
            .map_err(|_| Error::StoreClosed)?;
        rx.await
            .map_err(|_| Error::StoreClosed)?
            .map_err(Error::Commit)
    }
}

fn writer_loop(mut conn: Option<Connection>, rx: &mpsc::Receiver<Job>, name: &str) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        let mut bets = 0;
        while bets < GROUP_BETS {
            match rx.try_recv() {
                Ok(job) => {
                    if let Job::Batch(b, _) = &job {
                        bets += b.bets.len();
                    }
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        let (batches, queries): (Vec<Job>, Vec<Job>) =
            group.into_iter().partition(|j| matches!(j, Job::Batch(..)));
        if !batches.is_empty() {
            commit_group(conn.as_mut(), batches);
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

/// Writes a group of batches in one transaction and answers each.
fn commit_group(conn: Option<&mut Connection>, jobs: Vec<Job>) {
    let Some(conn) = conn else {
        for job in jobs {
            if let Job::Batch(b, reply) = job {
                let _ = reply.send(Ok(Stored::New(b.bets.len())));
            }
        }
        return;
    };
    let outcome = (|| -> rusqlite::Result<Vec<Stored>> {
        let tx = conn.transaction()?;
        let mut results = Vec::with_capacity(jobs.len());
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO bets (agency, nombre, apellido, documento, nacimiento, numero) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let mut done =
                tx.prepare_cached("INSERT OR IGNORE INTO agencies_done (agency) VALUES (?1)")?;
            for job in &jobs {
                let Job::Batch(b, _) = job else { continue };
                if let Some(placed) = b.placed {
                    match ranges::admit(&tx, b.agency, placed, b.bets.len())? {
                        ranges::Admit::New => {}
                        ranges::Admit::Same => {
                            results.push(Stored::Duplicate);
                            continue;
                        }
                        ranges::Admit::Clash(why) => {
                            results.push(Stored::Conflict(why));
                            continue;
                        }
                    }
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
                results.push(Stored::New(b.bets.len()));
            }
        }
        tx.commit()?;
        Ok(results)
    })();
    match outcome {
        Ok(results) => {
            for (job, r) in jobs.into_iter().zip(results) {
                if let Job::Batch(_, reply) = job {
                    let _ = reply.send(Ok(r));
                }
            }
        }
        Err(e) => {
            netkit::log_action!(error, "store_commit", Fail, error = e);
            for job in jobs {
                if let Job::Batch(_, reply) = job {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
        }
    }
}

fn answer_query(conn: Option<&Connection>, job: Job) {
    match job {
        Job::Winners(reply) => {
            let r = conn.map_or(Ok(Winners::new()), |c| {
                let mut stmt =
                    c.prepare("SELECT agency, documento FROM bets WHERE numero = ?1 ORDER BY id")?;
                let rows = stmt.query_map([WINNING_NUMBER], |r| {
                    Ok((r.get::<_, u8>(0)?, r.get::<_, String>(1)?))
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
                    .map(group_winners)
            });
            let _ = reply.send(r.map_err(|e: rusqlite::Error| e.to_string()));
        }
        Job::Progress(agency, reply) => {
            let r = conn.map_or(Ok(Progress::default()), |c| ranges::progress(c, agency));
            let _ = reply.send(r.map_err(|e| e.to_string()));
        }
        Job::Count(reply) => {
            let r = conn.map_or(Ok(0), |c| {
                c.query_row("SELECT COUNT(*) FROM bets", [], |r| r.get::<_, i64>(0))
                    .map(|n| n as u64)
            });
            let _ = reply.send(r.map_err(|e| e.to_string()));
        }
        Job::Batch(..) => {}
    }
}

/// Reads every stored bet, in storage order, as `(agency, bet)`; for export and
/// tests. Opens its own read connection (WAL lets it run beside the writer).
pub fn read_all(path: &Path) -> Result<Vec<(u8, Bet)>, Error> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut stmt = conn.prepare(
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
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Whether a batch of `agency` starting at place `first` is recorded, for tests.
pub fn batch_recorded(path: &Path, agency: u8, first: u32) -> Result<bool, Error> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    Ok(conn
        .query_row(
            "SELECT 1 FROM ranges WHERE agency = ?1 AND first = ?2",
            params![agency, first],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

mod ranges;
#[cfg(test)]
mod tests;
