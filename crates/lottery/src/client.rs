//! The agency (client) (spec: lottery.md, "Size limit", "Durability and
//! exactly-once", "Logs").
//!
//! Every connection starts with `RESUME`: the server says how many of the
//! agency's bets it holds from place 0 and their digest. The client checks the
//! digest against its own bets (another client's bets under this agency, or
//! another data set, stop it with a clear error before anything is sent),
//! then packs the rest into batches ([`crate::batch::plan`]), sends them with up
//! to `window` in flight, each placed (`first`) so the server recognises a
//! retry by place and content, and counts a batch as sent only when its
//! `BET_PROCESSED` arrives. So a client that restarts, with any batch size,
//! sends exactly what is missing. If the server is not up yet, the connection
//! drops, the server cannot store now (`UNAVAILABLE`), or another connection
//! still holds the agency, it reconnects with exponential backoff. Given
//! several servers (of one lottery on a shared database), it fails over: each
//! failure moves it to the next server at once, and it backs off only after a
//! whole round of them failed; `RESUME` on the new server says what the
//! database holds, so what was not acknowledged is sent again (and what was
//! stored without its acknowledgement arriving is not stored twice). Then it
//! asks for its winners, again and again while the server answers `NOT_YET`,
//! and logs `consulta_ganadores`.
//!
//! `--legacy` speaks only the seed's codes 1 and 2 to the seed author's server:
//! one batch at a time, no resend of an unacknowledged batch (that server
//! cannot deduplicate), and it ends with success once every bet is
//! acknowledged (that server has no winners query).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use netkit::log_action;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use crate::Error;
use crate::batch;
use crate::bet::Bet;
use crate::digest::range_digest;
use crate::proto::{ClientCodec, Request, Response};

/// How an agency runs.
#[derive(Debug, Clone)]
pub struct AgencyConfig {
    /// Agency id, 1..=255 (`CLI_ID`).
    pub agency: u8,
    /// Servers `host:port` of one lottery, tried in turn (`CLI_SERVER_ADDRESS`,
    /// comma-separated).
    pub servers: Vec<String>,
    /// Most bets per batch (`CLI_BATCH_MAXAMOUNT`).
    pub max_amount: usize,
    /// Batches sent before waiting for the first ack.
    pub window: usize,
    /// Speak only the seed's codes (1, 2): one batch at a time, no retry of an
    /// unacknowledged batch (the seed's server cannot deduplicate it).
    pub legacy: bool,
    /// Connection attempts without progress before giving up (per server).
    pub attempts: u32,
    /// First backoff delay; it doubles up to `max_backoff`.
    pub backoff: Duration,
    /// Longest backoff delay.
    pub max_backoff: Duration,
    /// Longest wait for one acknowledgement.
    pub io_timeout: Duration,
    /// Longest wait for the winners in all (the draw waits for every agency);
    /// each query waits at most [`WINNERS_ASK`] of it.
    pub draw_timeout: Duration,
}

/// Longest wait a winners query asks the server for (it answers `NOT_YET` then).
pub const WINNERS_ASK: Duration = Duration::from_secs(10);

impl AgencyConfig {
    /// Defaults: batches of 100, window 32, 10 attempts from 50 ms to 2 s.
    /// `servers` is one `host:port` or several, comma-separated.
    pub fn new(agency: u8, servers: &str) -> Self {
        Self {
            agency,
            servers: split_servers(servers),
            max_amount: 100,
            window: 32,
            legacy: false,
            attempts: 10,
            backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            io_timeout: Duration::from_secs(30),
            draw_timeout: Duration::from_secs(600),
        }
    }
}

/// What an agency did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgencyReport {
    /// The agency.
    pub agency: u8,
    /// Bets acknowledged (by this run or, found at `RESUME`, by an earlier one).
    pub bets: usize,
    /// Batches acknowledged in this run.
    pub batches: usize,
    /// Connections made after the first.
    pub reconnects: u32,
    /// Bets the server already held when this run first asked.
    pub resumed_from: usize,
    /// Documentos of its winning bets, as the server reported them (none in
    /// legacy mode, whose server has no winners query).
    pub winners: Vec<String>,
}

/// Where the sessions stand.
#[derive(Debug, Default)]
struct Progress {
    /// Bets acknowledged from place 0.
    acked: usize,
    batches: usize,
    reconnects: u32,
    resumed_from: Option<usize>,
}

/// The servers of a comma-separated list, blanks ignored.
pub fn split_servers(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// Sends every bet of the agency and returns its winners.
pub async fn run_agency(cfg: &AgencyConfig, bets: &[Bet]) -> Result<AgencyReport, Error> {
    // A bet too long for one message is an error before anything is sent.
    batch::plan(bets, cfg.max_amount, !cfg.legacy)?;
    if cfg.servers.is_empty() {
        return Err(Error::Refused("no server address given".into()));
    }
    let mut p = Progress::default();
    let mut server = 0;
    let mut failures = 0u32;
    let mut delay = cfg.backoff;
    let mut first = true;
    loop {
        if !first {
            p.reconnects += 1;
        }
        first = false;
        let before = p.acked;
        let addr = &cfg.servers[server % cfg.servers.len()];
        match session(cfg, addr, bets, &mut p).await {
            Ok(winners) => {
                if !cfg.legacy {
                    log_action!(
                        info,
                        "consulta_ganadores",
                        Success,
                        cant_ganadores = winners.len()
                    );
                }
                return Ok(AgencyReport {
                    agency: cfg.agency,
                    bets: p.acked,
                    batches: p.batches,
                    reconnects: p.reconnects,
                    resumed_from: p.resumed_from.unwrap_or(0),
                    winners,
                });
            }
            Err(e)
                if retryable(&e) && !(cfg.legacy && p.acked < bets.len() && sent_unacked(&e)) =>
            {
                if p.acked > before {
                    failures = 0;
                    delay = cfg.backoff;
                }
                failures += 1;
                let servers = cfg.servers.len() as u32;
                if failures >= cfg.attempts.saturating_mul(servers) {
                    return Err(Error::GaveUp {
                        attempts: failures,
                        last: e.to_string(),
                    });
                }
                server += 1;
                // The next server at once; a pause after a whole round failed.
                let pause = if failures.is_multiple_of(servers) {
                    delay
                } else {
                    Duration::ZERO
                };
                log_action!(
                    warn,
                    "conexion",
                    Fail,
                    agency = cfg.agency,
                    server = addr,
                    error = &e,
                    next_server = cfg.servers[server % cfg.servers.len()],
                    retry_in_ms = pause.as_millis(),
                    bets_acked = p.acked
                );
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                    delay = (delay * 2).min(cfg.max_backoff);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Errors worth a new connection: the server is not up, the connection broke,
/// the server cannot store now, or another connection still holds the agency.
fn retryable(e: &Error) -> bool {
    match e {
        Error::Io(_) | Error::AgencyTaken(_) | Error::Unavailable(_) => true,
        Error::Net(n) => {
            n.is_disconnect() || matches!(n, netkit::Error::Io(_) | netkit::Error::Connect { .. })
        }
        _ => false,
    }
}

/// A legacy batch may have been stored without its ack arriving; resending it
/// could store it twice, so legacy mode only retries failures to connect.
fn sent_unacked(e: &Error) -> bool {
    !matches!(e, Error::Net(n) if n.is_refused())
}

type Conn = Framed<TcpStream, ClientCodec>;

async fn session(
    cfg: &AgencyConfig,
    addr: &str,
    bets: &[Bet],
    p: &mut Progress,
) -> Result<Vec<String>, Error> {
    let stream = netkit::connect::connect(addr, cfg.io_timeout).await?;
    let mut framed = Framed::new(stream, ClientCodec);
    if cfg.legacy {
        send_rest(cfg, bets, p, &mut framed, false).await?;
        return Ok(Vec::new());
    }
    let done = resume(cfg, bets, p, &mut framed).await?;
    if !(done && p.acked == bets.len()) {
        send_rest(cfg, bets, p, &mut framed, true).await?;
    }
    ask_winners(cfg, &mut framed).await
}

/// `RESUME`: takes the server's count of this agency's bets as acknowledged,
/// once their digest shows they are this data set's. Returns whether the
/// agency's last batch is stored.
async fn resume(
    cfg: &AgencyConfig,
    bets: &[Bet],
    p: &mut Progress,
    framed: &mut Conn,
) -> Result<bool, Error> {
    framed.send(&Request::Resume { agency: cfg.agency }).await?;
    let (next, digest, done) = match next_response(framed, cfg.io_timeout).await? {
        Response::Progress { next, digest, done } => (next, digest, done),
        other => return Err(unexpected(other, "PROGRESS")),
    };
    let held = next as usize;
    if held > bets.len() {
        return Err(Error::NotOurs {
            agency: cfg.agency,
            stored: next,
            why: format!("this data set has {} bets", bets.len()),
        });
    }
    let ours = range_digest(0, &bets[..held]);
    if ours != digest {
        return Err(Error::NotOurs {
            agency: cfg.agency,
            stored: next,
            why: format!("digest {digest:016x}, this data set's {ours:016x}"),
        });
    }
    if p.resumed_from.is_none() {
        p.resumed_from = Some(held);
        if held > 0 {
            log_action!(
                info,
                "reanudacion",
                Success,
                agency = cfg.agency,
                apuestas_en_servidor = held
            );
        }
    }
    p.acked = held;
    Ok(done)
}

/// Sends the bets from `p.acked` on, up to `window` batches in flight.
async fn send_rest(
    cfg: &AgencyConfig,
    bets: &[Bet],
    p: &mut Progress,
    framed: &mut Conn,
    placed: bool,
) -> Result<(), Error> {
    let start = p.acked;
    let plan: Vec<_> = batch::plan(&bets[start..], cfg.max_amount, placed)?
        .into_iter()
        .map(|r| r.start + start..r.end + start)
        .collect();
    let window = if placed { cfg.window.max(1) } else { 1 };
    let mut next = 0;
    let mut acked = 0;
    while acked < plan.len() {
        while next < plan.len() && next - acked < window {
            let r = &plan[next];
            let req = Request::Bets {
                agency: cfg.agency,
                first: placed.then_some(r.start as u32),
                last: next + 1 == plan.len(),
                bets: bets[r.clone()].to_vec(),
            };
            framed.feed(&req).await?;
            next += 1;
        }
        framed.flush().await?;
        match next_response(framed, cfg.io_timeout).await? {
            Response::BetProcessed => {
                let r = plan[acked].clone();
                log_sent(&bets[r.clone()]);
                p.acked = r.end;
                p.batches += 1;
                acked += 1;
            }
            other => return Err(unexpected(other, "BET_PROCESSED")),
        }
    }
    Ok(())
}

/// Asks for the winners until the draw has happened or `draw_timeout` passed.
async fn ask_winners(cfg: &AgencyConfig, framed: &mut Conn) -> Result<Vec<String>, Error> {
    let deadline = tokio::time::Instant::now() + cfg.draw_timeout;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let wait = left.min(WINNERS_ASK);
        framed
            .send(&Request::AskWinners {
                agency: cfg.agency,
                wait_ms: Some(u32::try_from(wait.as_millis()).unwrap_or(u32::MAX)),
            })
            .await?;
        let mut winners = Vec::new();
        loop {
            // The server answers within the wait asked for; the I/O timeout on top.
            match next_response(framed, wait + cfg.io_timeout).await? {
                Response::Winners { documentos, more } => {
                    winners.extend(documentos);
                    if !more {
                        return Ok(winners);
                    }
                }
                Response::NotYet { done, expected } => {
                    if left <= wait {
                        return Err(Error::Io(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!(
                                "no draw within {:?}: {done} of {expected} agencies are done",
                                cfg.draw_timeout
                            ),
                        )));
                    }
                    tracing::debug!(done, expected, "no draw yet; asking again");
                    break;
                }
                other => return Err(unexpected(other, "WINNERS")),
            }
        }
    }
}

/// The error for an answer other than the one expected.
fn unexpected(r: Response, expected: &str) -> Error {
    match r {
        Response::Error(text) => Error::Refused(text),
        Response::AgencyTaken(text) => Error::AgencyTaken(text),
        Response::Unavailable(text) => Error::Unavailable(text),
        other => Error::Malformed {
            what: "response",
            why: format!("expected {expected}, got {other:?}"),
        },
    }
}

async fn next_response(framed: &mut Conn, timeout: Duration) -> Result<Response, Error> {
    match tokio::time::timeout(timeout, framed.next()).await {
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no answer from the server",
        )
        .into()),
        Ok(None) => Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the server closed the connection",
        )
        .into()),
        Ok(Some(r)) => r,
    }
}

fn log_sent(bets: &[Bet]) {
    for b in bets {
        if bets.len() == 1 {
            log_action!(
                info,
                "apuesta_enviada",
                Success,
                dni = b.documento,
                numero = b.numero
            );
        } else {
            log_action!(
                debug,
                "apuesta_enviada",
                Success,
                dni = b.documento,
                numero = b.numero
            );
        }
    }
}
