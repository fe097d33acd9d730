//! The PostgreSQL backend (spec: lottery.md, "Storage"; issue: several
//! servers, one lottery): the store that several `lottery serve` processes
//! share.
//!
//! Everything the servers must agree on lives in the database, not in a
//! server's memory: the batches stored (exactly-once across servers, decided
//! by [`schema`]'s `lottery_admit` under a per-agency transaction lock), the
//! agencies done, the expected count, and the draw (recorded by exactly one
//! commit, the one that completes the set; every server reads it from there).
//!
//! One connection per server, owned by the writer task: group commit needs one
//! writer, and queries answered after the group see its commit. A broken
//! connection (the database restarted, the network dropped) fails its group
//! (nothing acknowledged) and is made again for the next one; a commit whose
//! answer was lost is found again as a duplicate when the agency resends.
//! Ingest is `COPY ... FROM STDIN (FORMAT binary)` inside the group's
//! transaction; `synchronous_commit` is set on for the session, so a commit's
//! answer means the WAL is on disk.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_postgres::{Client, Config, NoTls, Statement};

use super::{Job, LotteryState, Progress, Recovered, Reply, Writer};
use crate::Error;
use crate::bet::{Bet, WINNING_NUMBER};
use crate::draw::{Winners, group_winners};

mod copy_format;
mod ingest;
pub mod schema;

/// Longest wait for a connection to the database.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest wait, by default, for one group commit or query: a database that hangs without
/// closing the connection (a stopped process, a partitioned network) fails
/// the group instead of holding the writer; nothing of it is acknowledged,
/// agencies retry (on this server or another), and a group the database did
/// commit after all is recognised then as stored (exactly once).
pub(crate) const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

/// Dead peers are found by the kernel too: keepalives on an idle connection,
/// and a bound on unacknowledged data on a busy one.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);

/// A PostgreSQL database to store in: `postgres://USER@HOST:PORT/DB` (or the
/// `key=value` form PostgreSQL's tools take).
#[derive(Clone)]
pub struct PgTarget {
    config: Box<Config>,
    /// Longest wait for one group commit or query ([`OPERATION_TIMEOUT`]).
    operation_timeout: Duration,
}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgTarget({self})")
    }
}

impl FromStr for PgTarget {
    type Err = Error;

    fn from_str(url: &str) -> Result<Self, Error> {
        let bad = |why: String| Error::StoreUrl {
            url: redact(url),
            why,
        };
        let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
        if !is_url && !url.contains('=') {
            return Err(bad("not a postgres:// URL".into()));
        }
        let mut config = Config::from_str(url).map_err(|e| bad(describe(&e)))?;
        if config.get_hosts().is_empty() {
            return Err(bad("no host".into()));
        }
        if config.get_dbname().is_none() {
            return Err(bad("no database name".into()));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config
            .keepalives(true)
            .keepalives_idle(KEEPALIVE_IDLE)
            .keepalives_interval(Duration::from_secs(2))
            .keepalives_retries(3)
            .tcp_user_timeout(OPERATION_TIMEOUT);
        config.application_name("protolab-lottery");
        Ok(PgTarget {
            config: Box::new(config),
            operation_timeout: OPERATION_TIMEOUT,
        })
    }
}

impl PgTarget {
    /// The same database, waiting at most `limit` for one group commit or
    /// query (tests shorten it; the default is [`OPERATION_TIMEOUT`]).
    pub fn with_operation_timeout(mut self, limit: Duration) -> PgTarget {
        self.operation_timeout = limit;
        self
    }

    /// The driver's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The same server, database `db`.
    pub fn with_database(&self, db: &str) -> PgTarget {
        let mut config = self.config.clone();
        config.dbname(db);
        PgTarget {
            config,
            operation_timeout: self.operation_timeout,
        }
    }

    /// Creates database `name` (lowercase letters, digits, `_`) on the same
    /// server (the user needs the right to) and returns its target.
    pub async fn create_database(&self, name: &str) -> Result<PgTarget, Error> {
        self.admin(&format!("CREATE DATABASE {}", checked_name(name)?))
            .await?;
        Ok(self.with_database(name))
    }

    /// Drops database `name` of the same server, if it exists.
    pub async fn drop_database(&self, name: &str) -> Result<(), Error> {
        self.admin(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            checked_name(name)?
        ))
        .await
    }

    /// Runs one statement on a connection of its own.
    async fn admin(&self, sql: &str) -> Result<(), Error> {
        let client = Link::connect(self).await?;
        client.batch_execute(sql).await.map_err(pg)
    }
}

/// A database name safe to put in a statement as it is.
fn checked_name(name: &str) -> Result<&str, Error> {
    let ok = !name.is_empty()
        && name.len() < 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(name)
    } else {
        Err(Error::Postgres(format!(
            "bad database name {name:?} (lowercase letters, digits, _)"
        )))
    }
}

/// Shows a target without its password.
impl fmt::Display for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        write!(f, "postgres://")?;
        if let Some(user) = c.get_user() {
            write!(f, "{user}@")?;
        }
        for (i, host) in c.get_hosts().iter().enumerate() {
            if i > 0 {
                write!(f, ",")?;
            }
            match host {
                tokio_postgres::config::Host::Tcp(h) => write!(f, "{h}")?,
                tokio_postgres::config::Host::Unix(p) => write!(f, "[{}]", p.display())?,
            }
            if let Some(port) = c.get_ports().get(i).or(c.get_ports().first()) {
                write!(f, ":{port}")?;
            }
        }
        write!(f, "/{}", c.get_dbname().unwrap_or_default())
    }
}

/// A URL as it may be shown: any `:password@` replaced.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..s + 3], &creds[..colon], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// A driver error with its cause (the driver's own text stops at the kind).
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {}", db.severity(), db.message());
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// The statements the writer uses, prepared on each new connection.
struct Statements {
    admit: Statement,
    copy: Statement,
    winners: Statement,
    count: Statement,
    progress: Statement,
    state: Statement,
    all: Statement,
    recorded: Statement,
}

/// The writer's connection: made on first use and again after it broke.
struct Link {
    target: PgTarget,
    live: Option<(Client, Statements)>,
}

impl Link {
    pub(crate) async fn connect(target: &PgTarget) -> Result<Client, Error> {
        let (client, connection) =
            target
                .config
                .connect(NoTls)
                .await
                .map_err(|e| Error::Unreachable {
                    target: target.to_string(),
                    why: describe(&e),
                })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                netkit::log_action!(warn, "store_connection", Fail, error = describe(&e));
            }
        });
        // Acknowledge only what is on disk, whatever the server's default.
        // (Notices such as "already exists, skipping" are not worth a log line.)
        client
            .batch_execute("SET synchronous_commit = on; SET client_min_messages = warning")
            .await
            .map_err(pg)?;
        Ok(client)
    }

    async fn prepare(client: &Client) -> Result<Statements, tokio_postgres::Error> {
        Ok(Statements {
            admit: client
                .prepare("SELECT verdicts, ids, drew FROM lottery_admit($1, $2, $3, $4, $5)")
                .await?,
            copy: client
                .prepare(
                    "COPY bet_batches (batch, agency, first, count, bets) FROM STDIN (FORMAT binary)",
                )
                .await?,
            winners: client
                .prepare("SELECT agency, documento FROM bets WHERE numero = $1 ORDER BY batch, pos")
                .await?,
            count: client.prepare("SELECT coalesce(sum(count), 0)::bigint FROM bet_batches").await?,
            progress: client
                .prepare(
                    "SELECT coalesce((SELECT next FROM progress WHERE agency = $1), 0),
                            coalesce((SELECT digest FROM progress WHERE agency = $1), 0),
                            EXISTS (SELECT 1 FROM agencies_done WHERE agency = $1)",
                )
                .await?,
            state: client
                .prepare(
                    "SELECT expected, drawn_at IS NOT NULL,
                            ARRAY(SELECT agency FROM agencies_done ORDER BY agency)
                     FROM lottery",
                )
                .await?,
            all: client
                .prepare(
                    "SELECT agency, nombre, apellido, documento, nacimiento, numero FROM bets ORDER BY batch, pos",
                )
                .await?,
            recorded: client
                .prepare("SELECT EXISTS (SELECT 1 FROM ranges WHERE agency = $1 AND first = $2)")
                .await?,
        })
    }

    /// The live connection, made again if it broke.
    async fn ready(&mut self) -> Result<(&mut Client, &Statements), String> {
        if self.live.as_ref().is_some_and(|(c, _)| c.is_closed()) {
            self.live = None;
        }
        if self.live.is_none() {
            let client = Self::connect(&self.target)
                .await
                .map_err(|e| e.to_string())?;
            let stmts = Self::prepare(&client).await.map_err(|e| describe(&e))?;
            netkit::log_action!(info, "store_connect", Success, db = self.target);
            self.live = Some((client, stmts));
        }
        match self.live.as_mut() {
            Some((c, s)) => Ok((c, s)),
            None => Err("no connection".into()),
        }
    }

    /// Forgets the connection: the next use makes a new one (dropping the
    /// client closes the socket; a statement the server still runs is
    /// its to finish or roll back).
    fn forget(&mut self) {
        self.live = None;
    }

    /// Forgets the connection if that error broke it.
    fn after_error(&mut self) {
        if self.live.as_ref().is_some_and(|(c, _)| c.is_closed()) {
            self.live = None;
        }
    }
}

#[allow(clippy::needless_pass_by_value)] // shaped for `map_err(pg)`
fn pg(e: tokio_postgres::Error) -> Error {
    Error::Postgres(describe(&e))
}

/// Connects, creates or migrates the schema, checks the lottery's expected
/// count, and starts the writer task.
pub(super) async fn start(
    target: &PgTarget,
    expected: usize,
    rx: mpsc::UnboundedReceiver<Job>,
) -> Result<(Writer, Recovered), Error> {
    let mut client = Link::connect(target).await?;
    let state = schema::migrate(&mut client, expected).await?;
    let bets: i64 = client
        .query_one(
            "SELECT coalesce(sum(count), 0)::bigint FROM bet_batches",
            &[],
        )
        .await
        .map_err(pg)?
        .try_get(0)
        .map_err(pg)?;
    let stmts = Link::prepare(&client).await.map_err(pg)?;
    let link = Link {
        target: target.clone(),
        live: Some((client, stmts)),
    };
    let task = tokio::spawn(writer(link, rx));
    Ok((
        Writer::Task(task),
        Recovered {
            bets: bets as u64,
            done: state.done,
            drawn: state.drawn,
        },
    ))
}

/// Runs `op` on the link within its target's operation timeout; on an error the
/// connection is forgotten if it broke, on the timeout always.
async fn bounded<T>(
    link: &mut Link,
    op: impl AsyncFnOnce(&mut Link) -> Result<T, String>,
) -> Result<T, String> {
    let limit = link.target.operation_timeout;
    match tokio::time::timeout(limit, op(link)).await {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => {
            link.after_error();
            Err(e)
        }
        Err(_) => {
            link.forget();
            netkit::log_action!(
                warn,
                "store_timeout",
                Fail,
                db = link.target,
                after_ms = limit.as_millis()
            );
            Err(format!("the database did not answer within {limit:?}"))
        }
    }
}

async fn writer(mut link: Link, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = rx.recv().await {
        let (batches, queries) = super::take_group(first, &mut rx);
        if !batches.is_empty() {
            let outcome =
                bounded(&mut link, async |link| ingest::commit(link, &batches).await).await;
            super::answer_batches(batches, outcome);
        }
        for q in queries {
            answer_query(&mut link, q).await;
        }
    }
    netkit::log_action!(info, "store_close", Success, db = link.target);
}

fn agency_of(v: i16) -> Result<u8, String> {
    u8::try_from(v).map_err(|_| format!("agency {v} in the database is out of range"))
}

async fn answer_query(link: &mut Link, job: Job) {
    async fn run<T>(
        link: &mut Link,
        reply: Reply<T>,
        q: impl AsyncFnOnce(&Client, &Statements) -> Result<T, String>,
    ) {
        let r = bounded(link, async |link| {
            let (c, s) = link.ready().await?;
            q(c, s).await
        })
        .await;
        let _ = reply.send(r);
    }
    let e = |e: tokio_postgres::Error| describe(&e);
    match job {
        Job::Winners(reply) => {
            run(link, reply, async |c, s| {
                let rows = c
                    .query(&s.winners, &[&i32::from(WINNING_NUMBER)])
                    .await
                    .map_err(e)?;
                let w = rows
                    .iter()
                    .map(winner_of)
                    .collect::<Result<Vec<_>, String>>()?;
                Ok::<Winners, String>(group_winners(w))
            })
            .await;
        }
        Job::Count(reply) => {
            run(link, reply, async |c, s| {
                let n: i64 = c
                    .query_one(&s.count, &[])
                    .await
                    .map_err(e)?
                    .try_get(0)
                    .map_err(e)?;
                Ok(n as u64)
            })
            .await;
        }
        Job::Progress(agency, reply) => {
            run(link, reply, async |c, s| {
                let r = c
                    .query_one(&s.progress, &[&i16::from(agency)])
                    .await
                    .map_err(e)?;
                let next: i64 = r.try_get(0).map_err(e)?;
                let digest: i64 = r.try_get(1).map_err(e)?;
                Ok(Progress {
                    next: u32::try_from(next).unwrap_or(u32::MAX),
                    digest: schema::from_sql(digest),
                    done: r.try_get(2).map_err(e)?,
                })
            })
            .await;
        }
        Job::State(reply) => {
            run(link, reply, async |c, s| {
                let r = c.query_one(&s.state, &[]).await.map_err(e)?;
                state_of(&r)
            })
            .await;
        }
        Job::All(reply) => {
            run(link, reply, async |c, s| {
                let rows = c.query(&s.all, &[]).await.map_err(e)?;
                rows.iter().map(bet_of).collect::<Result<Vec<_>, String>>()
            })
            .await;
        }
        Job::Recorded(agency, first, reply) => {
            run(link, reply, async |c, s| {
                c.query_one(&s.recorded, &[&i16::from(agency), &i64::from(first)])
                    .await
                    .map_err(e)?
                    .try_get(0)
                    .map_err(e)
            })
            .await;
        }
        Job::Batch(..) => {}
    }
}

/// One row of the `bets` view: its agency and the bet.
fn bet_of(r: &tokio_postgres::Row) -> Result<(u8, Bet), String> {
    let e = |e: tokio_postgres::Error| describe(&e);
    let numero: i32 = r.try_get(5).map_err(e)?;
    Ok((
        agency_of(r.try_get(0).map_err(e)?)?,
        Bet {
            nombre: r.try_get(1).map_err(e)?,
            apellido: r.try_get(2).map_err(e)?,
            documento: r.try_get(3).map_err(e)?,
            nacimiento: r.try_get(4).map_err(e)?,
            numero: u16::try_from(numero).map_err(|_| format!("numero {numero} out of range"))?,
        },
    ))
}

/// One winner row: its agency and documento.
fn winner_of(r: &tokio_postgres::Row) -> Result<(u8, String), String> {
    let e = |e: tokio_postgres::Error| describe(&e);
    Ok((
        agency_of(r.try_get(0).map_err(e)?)?,
        r.try_get(1).map_err(e)?,
    ))
}

/// Reads the `lottery` row's state query.
fn state_of(r: &tokio_postgres::Row) -> Result<LotteryState, String> {
    let e = |e: tokio_postgres::Error| describe(&e);
    let expected: i32 = r.try_get(0).map_err(e)?;
    let done: Vec<i16> = r.try_get(2).map_err(e)?;
    Ok(LotteryState {
        expected: usize::try_from(expected).unwrap_or(0),
        drawn: r.try_get(1).map_err(e)?,
        done: done.into_iter().map(agency_of).collect::<Result<_, _>>()?,
    })
}

#[cfg(test)]
mod tests;
