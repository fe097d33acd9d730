//! The durable store (spec: lottery.md, "Storage", "Durability and exactly-once").
//!
//! Two backends behind one handle, chosen at start ([`Backend`]):
//! - **SQLite** ([`sqlite`], the embedded default): one server owns one file;
//! - **PostgreSQL** ([`postgres`]): several servers share one database, which
//!   decides exactly-once and the draw for all of them.
//!
//! Both do **group commit**: one writer takes every batch waiting in its
//! queue, writes them all in one transaction, commits once (the commit is
//! durable: SQLite `synchronous=FULL`, PostgreSQL `synchronous_commit=on`),
//! then answers each. Many agencies sending at once share one sync. A batch is
//! acknowledged only after the commit holding it; a failed commit answers
//! every batch of its group with an error, never with an acknowledgement.
//!
//! Exactly-once (the same rule in both): a `SEND_BATCH` says where its bets
//! sit in the agency's list (`first`); the server computes the batch's digest
//! ([`crate::digest`]) and records `(agency, first, count, digest)` in
//! `ranges`, in the same transaction as the bets. A batch is a retry only if it
//! is the same batch: same place, same count, same digest; then it is
//! acknowledged without being stored again. A batch that overlaps a stored one
//! in any other way (another batch size after a restart, another client
//! claiming the agency's places) is a conflict: refused, never acknowledged,
//! nothing stored, and the answer names the stored batch it clashes with.
//! `progress` keeps, per agency, how many bets are stored from place 0 without
//! a gap and their digest: what `RESUME` answers, so a restarted client
//! (whatever its batch size) sends only the rest. The seed's codes carry no
//! place and cannot be deduplicated.

use std::path::PathBuf;

use tokio::sync::{mpsc, oneshot};

use crate::Error;
use crate::bet::Bet;
use crate::draw::Winners;

pub mod postgres;
mod sqlite;

pub use postgres::PgTarget;
pub use sqlite::{batch_recorded, read_all};

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

/// A batch's outcome, and whether its commit ran the draw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// What storing it did.
    pub stored: Stored,
    /// The commit holding it recorded the draw (a shared store decides the
    /// draw in the database: exactly one commit of the lottery does this).
    pub drew: bool,
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
    /// The draw has already happened (a shared store says; SQLite leaves it
    /// to the server, which counts `done`).
    pub drawn: bool,
}

/// The lottery as a shared store sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LotteryState {
    /// Agencies the draw waits for.
    pub expected: usize,
    /// Agencies that sent their last batch, on any server.
    pub done: Vec<u8>,
    /// The draw has happened.
    pub drawn: bool,
}

type Reply<T> = oneshot::Sender<Result<T, String>>;

/// What the writer is asked to do.
enum Job {
    Batch(BatchJob, Reply<Committed>),
    Winners(Reply<Winners>),
    Count(Reply<u64>),
    Progress(u8, Reply<Progress>),
    State(Reply<LotteryState>),
    All(Reply<Vec<(u8, Bet)>>),
    Recorded(u8, u32, Reply<bool>),
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Job::Batch(..) => "Batch",
            Job::Winners(_) => "Winners",
            Job::Count(_) => "Count",
            Job::Progress(..) => "Progress",
            Job::State(_) => "State",
            Job::All(_) => "All",
            Job::Recorded(..) => "Recorded",
        })
    }
}

/// Where bets go.
#[derive(Debug, Clone)]
pub enum Backend {
    /// SQLite at this path (created on first run), for this server alone.
    Sqlite(PathBuf),
    /// A PostgreSQL database that several servers may share.
    Postgres(PgTarget),
    /// Acknowledge without storing: the benchmark's baseline.
    Discard,
}

impl Backend {
    /// Where the bets go, for logs: a path, a URL without its password, or
    /// `discard`.
    pub fn describe(&self) -> String {
        match self {
            Backend::Sqlite(p) => p.display().to_string(),
            Backend::Postgres(t) => t.to_string(),
            Backend::Discard => "discard".to_string(),
        }
    }
}

/// Handle to the writer. Cheap to clone; the writer ends when every handle is
/// dropped (after finishing what was queued).
#[derive(Debug, Clone)]
pub struct Store {
    jobs: mpsc::UnboundedSender<Job>,
    shared: bool,
}

/// The writer, to wait for at shutdown.
#[derive(Debug)]
pub enum Writer {
    /// SQLite's (and the discarding baseline's) writer thread.
    Thread(std::thread::JoinHandle<()>),
    /// PostgreSQL's writer task.
    Task(tokio::task::JoinHandle<()>),
}

impl Writer {
    /// Waits until the writer has finished its queue and closed the database.
    pub async fn finish(self) {
        match self {
            Writer::Thread(t) => {
                let _ = tokio::task::spawn_blocking(move || t.join()).await;
            }
            Writer::Task(t) => {
                let _ = t.await;
            }
        }
    }
}

impl Store {
    /// Opens (creating or migrating if needed) the store and starts its
    /// writer. `expected` is the agencies the draw waits for: a shared store
    /// records it on first start and refuses a server that says otherwise.
    pub async fn open(
        backend: &Backend,
        expected: usize,
    ) -> Result<(Store, Writer, Recovered), Error> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (writer, recovered, shared) = match backend {
            Backend::Sqlite(path) => {
                let (w, r) = sqlite::start(Some(path), rx)?;
                (w, r, false)
            }
            Backend::Discard => {
                let (w, r) = sqlite::start(None, rx)?;
                (w, r, false)
            }
            Backend::Postgres(target) => {
                let (w, r) = postgres::start(target, expected, rx).await?;
                (w, r, true)
            }
        };
        Ok((Store { jobs: tx, shared }, writer, recovered))
    }

    /// The draw is decided in the database, shared by every server
    /// ([`Committed::drew`], [`Store::state`]), not by this server's memory.
    pub fn shared(&self) -> bool {
        self.shared
    }

    /// Stores a batch; resolves once it is durable (or known to be a retry).
    pub async fn store(&self, job: BatchJob) -> Result<Stored, Error> {
        Ok(self.submit(job)?.await?.stored)
    }

    /// Queues a batch and returns the receiver of its outcome, so a connection
    /// can pipeline batches and still answer them in order.
    pub fn submit(
        &self,
        job: BatchJob,
    ) -> Result<impl Future<Output = Result<Committed, Error>> + Send + use<>, Error> {
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

    async fn ask<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.jobs.send(job(tx)).map_err(|_| Error::StoreClosed)?;
        rx.await
            .map_err(|_| Error::StoreClosed)?
            .map_err(Error::Commit)
    }

    /// Every winning bet's documento, per agency.
    pub async fn winners(&self) -> Result<Winners, Error> {
        self.ask(Job::Winners).await
    }

    /// Where `agency`'s bets stand.
    pub async fn progress(&self, agency: u8) -> Result<Progress, Error> {
        self.ask(|r| Job::Progress(agency, r)).await
    }

    /// Bets stored so far.
    pub async fn count(&self) -> Result<u64, Error> {
        self.ask(Job::Count).await
    }

    /// Who is done and whether the draw happened, on any server.
    pub async fn state(&self) -> Result<LotteryState, Error> {
        self.ask(Job::State).await
    }

    /// Every stored bet, in storage order, as `(agency, bet)` (export, tests).
    pub async fn all_bets(&self) -> Result<Vec<(u8, Bet)>, Error> {
        self.ask(Job::All).await
    }

    /// Whether a batch of `agency` starting at place `first` is recorded.
    pub async fn recorded(&self, agency: u8, first: u32) -> Result<bool, Error> {
        self.ask(|r| Job::Recorded(agency, first, r)).await
    }
}

/// Takes the next group from the queue: the first job (already received) and
/// whatever else is waiting, up to [`GROUP_BETS`] bets; split into batches
/// (committed together) and queries (answered after the commit).
fn take_group(first: Job, rx: &mut mpsc::UnboundedReceiver<Job>) -> (Vec<Job>, Vec<Job>) {
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
    group.into_iter().partition(|j| matches!(j, Job::Batch(..)))
}

/// Answers every batch of a group with its outcome, or all with the error.
fn answer_batches(jobs: Vec<Job>, outcome: Result<Vec<Committed>, String>) {
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
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
