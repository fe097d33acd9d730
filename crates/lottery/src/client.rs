//! The agency (client) (spec: lottery.md, "Size limit", "Durability and
//! exactly-once", "Logs").
//!
//! It packs its bets into batches once ([`crate::batch::plan`]), sends them with
//! up to `window` batches in flight, and counts a batch as sent only when its
//! `BET_PROCESSED` arrives. If the server is not up yet or the connection drops,
//! it reconnects with exponential backoff and resends every batch not yet
//! acknowledged; the batch sequence numbers let the server store each batch once.
//! Then it asks for its winners (the server answers after the draw) and logs
//! `consulta_ganadores`.

use std::ops::Range;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use netkit::log_action;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use crate::Error;
use crate::batch;
use crate::bet::Bet;
use crate::proto::{ClientCodec, Request, Response};

/// How an agency runs.
#[derive(Debug, Clone)]
pub struct AgencyConfig {
    /// Agency id, 1..=255 (`CLI_ID`).
    pub agency: u8,
    /// Server `host:port` (`CLI_SERVER_ADDRESS`).
    pub server: String,
    /// Most bets per batch (`CLI_BATCH_MAXAMOUNT`).
    pub max_amount: usize,
    /// Batches sent before waiting for the first ack.
    pub window: usize,
    /// Speak only the seed's codes (1, 2): one batch at a time, no retry of an
    /// unacknowledged batch (the seed's server cannot deduplicate it).
    pub legacy: bool,
    /// Connection attempts without progress before giving up.
    pub attempts: u32,
    /// First backoff delay; it doubles up to `max_backoff`.
    pub backoff: Duration,
    /// Longest backoff delay.
    pub max_backoff: Duration,
    /// Longest wait for one acknowledgement.
    pub io_timeout: Duration,
    /// Longest wait for the winners (the draw waits for every agency).
    pub draw_timeout: Duration,
}

impl AgencyConfig {
    /// Defaults: batches of 100, window 32, 10 attempts from 50 ms to 2 s.
    pub fn new(agency: u8, server: impl Into<String>) -> Self {
        Self {
            agency,
            server: server.into(),
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
    /// Bets acknowledged.
    pub bets: usize,
    /// Batches acknowledged.
    pub batches: usize,
    /// Connections made after the first.
    pub reconnects: u32,
    /// Documentos of its winning bets, as the server reported them.
    pub winners: Vec<String>,
}

/// Where a session stopped.
struct Progress {
    acked: usize,
    reconnects: u32,
}

/// Sends every bet of the agency and returns its winners.
pub async fn run_agency(cfg: &AgencyConfig, bets: &[Bet]) -> Result<AgencyReport, Error> {
    let plan = batch::plan(bets, cfg.max_amount, !cfg.legacy)?;
    let mut progress = Progress {
        acked: 0,
        reconnects: 0,
    };
    let mut failures = 0u32;
    let mut delay = cfg.backoff;
    let mut first = true;
    loop {
        if !first {
            progress.reconnects += 1;
        }
        first = false;
        let before = progress.acked;
        match session(cfg, bets, &plan, &mut progress).await {
            Ok(winners) => {
                log_action!(
                    info,
                    "consulta_ganadores",
                    Success,
                    cant_ganadores = winners.len()
                );
                return Ok(AgencyReport {
                    agency: cfg.agency,
                    bets: bets.len(),
                    batches: plan.len(),
                    reconnects: progress.reconnects,
                    winners,
                });
            }
            Err(e)
                if retryable(&e)
                    && !(cfg.legacy && progress.acked < plan.len() && sent_unacked(&e)) =>
            {
                if progress.acked > before {
                    failures = 0;
                    delay = cfg.backoff;
                }
                failures += 1;
                if failures >= cfg.attempts {
                    return Err(Error::GaveUp {
                        attempts: failures,
                        last: e.to_string(),
                    });
                }
                log_action!(
                    warn,
                    "conexion",
                    Fail,
                    agency = cfg.agency,
                    error = &e,
                    retry_in_ms = delay.as_millis(),
                    batches_acked = progress.acked
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(cfg.max_backoff);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Errors worth a new connection: the server is not up, or the connection broke.
fn retryable(e: &Error) -> bool {
    match e {
        Error::Io(_) => true,
        Error::Net(n) => n.is_disconnect() || matches!(n, netkit::Error::Io(_)),
        _ => false,
    }
}

/// A legacy batch may have been stored without its ack arriving; resending it
/// could store it twice, so legacy mode only retries failures to connect.
fn sent_unacked(e: &Error) -> bool {
    !matches!(e, Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused)
}

async fn session(
    cfg: &AgencyConfig,
    bets: &[Bet],
    plan: &[Range<usize>],
    p: &mut Progress,
) -> Result<Vec<String>, Error> {
    let stream = tokio::time::timeout(cfg.io_timeout, TcpStream::connect(&cfg.server))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    let mut framed = Framed::new(stream, ClientCodec);
    let window = if cfg.legacy { 1 } else { cfg.window.max(1) };
    let mut next = p.acked;
    while p.acked < plan.len() {
        while next < plan.len() && next - p.acked < window {
            let r = &plan[next];
            let req = Request::Bets {
                agency: cfg.agency,
                seq: (!cfg.legacy).then_some(next as u32),
                last: next + 1 == plan.len(),
                bets: bets[r.clone()].to_vec(),
            };
            framed.feed(&req).await?;
            next += 1;
        }
        framed.flush().await?;
        match next_response(&mut framed, cfg.io_timeout).await? {
            Response::BetProcessed => {
                let r = plan[p.acked].clone();
                log_sent(&bets[r]);
                p.acked += 1;
            }
            Response::Error(text) => return Err(Error::Refused(text)),
            Response::Winners { .. } => {
                return Err(Error::Malformed {
                    what: "response",
                    why: "winners before they were asked for".into(),
                });
            }
        }
    }
    framed
        .send(&Request::AskWinners { agency: cfg.agency })
        .await?;
    let mut winners = Vec::new();
    loop {
        match next_response(&mut framed, cfg.draw_timeout).await? {
            Response::Winners { documentos, more } => {
                winners.extend(documentos);
                if !more {
                    return Ok(winners);
                }
            }
            Response::Error(text) => return Err(Error::Refused(text)),
            Response::BetProcessed => {
                return Err(Error::Malformed {
                    what: "response",
                    why: "an ack where winners were expected".into(),
                });
            }
        }
    }
}

async fn next_response(
    framed: &mut Framed<TcpStream, ClientCodec>,
    timeout: Duration,
) -> Result<Response, Error> {
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
