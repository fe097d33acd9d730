//! The central server (spec: lottery.md, "Concurrency", "Shutdown", "Logs").
//!
//! Each agency connection runs a reader and a writer side by side: the reader
//! decodes requests and queues their batches on the store straight away
//! (pipelining: an agency may send several batches before the first ack), the
//! writer answers in request order, each `BET_PROCESSED` only once its batch is
//! durable. A malformed batch gets an error reply and the connection goes on; a
//! broken frame (length over the limit, unknown code, EOF mid-message) gets an
//! error reply and the connection is closed.
//!
//! Hostile input: a connection speaks for one agency, and an agency has one
//! live connection ([`crate::agencies`]); a batch that clashes with a stored
//! one is refused, never acknowledged ([`crate::store`]); a winners query waits
//! for the draw at most a bound the client knows, then gets `NOT_YET`; a
//! connection with nothing in flight that stays silent for the idle timeout is
//! closed, one that stops reading its answers is cut ([`netkit::StallGuard`]),
//! and at the connection limit the oldest idle one makes room for a new client.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::{SinkExt, StreamExt};
use netkit::server::{Conn, ServeReport, ServerConfig as RuntimeConfig, ServerStats, serve};
use netkit::{StallGuard, log_action};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::Error;
use crate::agencies::{Agencies, Claim};
use crate::draw::Draw;
use crate::proto::{Incoming, Request, Response, ServerCodec, winners_parts};
use crate::store::{Backend, BatchJob, Committed, Store, Stored};

/// Requests one connection may have in flight (queued, not yet answered).
const PIPELINE: usize = 64;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Where bets go.
    pub backend: Backend,
    /// Agencies the draw waits for.
    pub agencies: usize,
    /// The listen backlog.
    pub backlog: u32,
    /// Agencies connected at once.
    pub max_connections: usize,
    /// A connection with nothing in flight, silent this long, is closed; a
    /// client that stops reading its answers this long is cut.
    pub idle_timeout: Duration,
    /// Longest a winners query waits for the draw before `NOT_YET` (the
    /// client may ask for less).
    pub winners_wait: Duration,
    /// At the connection limit, a connection idle this long makes room for a
    /// new client (`None`: new clients wait).
    pub evict_idle_after: Option<Duration>,
}

impl ServerConfig {
    /// Listen on `listen`, store in `db`, wait for 5 agencies; 60 s idle
    /// timeout, winners queries answered within 30 s.
    pub fn new(listen: SocketAddr, db: PathBuf) -> Self {
        Self {
            listen,
            backend: Backend::Sqlite(db),
            agencies: 5,
            backlog: 1024,
            max_connections: 10_000,
            idle_timeout: Duration::from_secs(60),
            winners_wait: WINNERS_WAIT,
            evict_idle_after: Some(Duration::from_secs(1)),
        }
    }
}

/// Default bound on a winners query's wait for the draw.
pub const WINNERS_WAIT: Duration = Duration::from_secs(30);

/// Binds with an explicit backlog (`SERVER_LISTEN_BACKLOG`).
pub fn bind(addr: SocketAddr, backlog: u32) -> Result<TcpListener, Error> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket
        .bind(addr)
        .map_err(|source| netkit::Error::Bind { addr, source })?;
    Ok(socket.listen(backlog)?)
}

/// A bound server, ready to run.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    config: ServerConfig,
    store: Store,
    writer: crate::store::Writer,
    draw: Arc<Draw>,
}

impl Server {
    /// Opens the store (recovering what a previous run stored) and binds.
    pub async fn bind(config: ServerConfig) -> Result<Server, Error> {
        let (store, writer, recovered) = Store::open(&config.backend, config.agencies).await?;
        let draw = Arc::new(Draw::new(config.agencies));
        let mut due = false;
        for agency in &recovered.done {
            due |= draw.agency_done(*agency);
        }
        // A shared store says whether the draw happened (on whichever server).
        if store.shared() {
            due = recovered.drawn;
        }
        log_action!(
            info,
            "store_open",
            Success,
            store = config.backend.describe(),
            bets = recovered.bets,
            agencies_done = recovered.done.len(),
            agencies_expected = draw.expected()
        );
        if due {
            run_draw(&store, &draw, "recovered").await?;
        }
        let listener = bind(config.listen, config.backlog)?;
        Ok(Server {
            listener,
            config,
            store,
            writer,
            draw,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        Ok(self.listener.local_addr()?)
    }

    /// The draw (to watch it from outside, e.g. the simulation).
    pub fn draw(&self) -> Arc<Draw> {
        Arc::clone(&self.draw)
    }

    /// Serves until `shutdown` completes, then closes every connection and the
    /// store, logging each.
    pub async fn run(self, shutdown: impl Future) -> Result<ServeReport, Error> {
        let Server {
            listener,
            config,
            store,
            writer,
            draw,
        } = self;
        let addr = listener.local_addr()?;
        log_action!(info, "server_listen", Success, address = addr);
        let mut rt = RuntimeConfig::new("lottery");
        rt.max_connections = config.max_connections;
        rt.shutdown_grace = Duration::from_secs(5);
        rt.evict_idle_after = config.evict_idle_after;
        let shared_stop = tokio_util::sync::CancellationToken::new();
        let shared = Arc::new(Shared {
            store: store.clone(),
            draw,
            agencies: Arc::new(Agencies::default()),
            idle_timeout: config.idle_timeout,
            winners_wait: config.winners_wait,
        });
        let watcher = store.shared().then(|| {
            tokio::spawn(watch_draw(
                store.clone(),
                Arc::clone(&shared.draw),
                shared_stop.clone(),
            ))
        });
        let report = serve(
            listener,
            rt,
            Arc::new(ServerStats::default()),
            move |stream, conn| handle(stream, conn, Arc::clone(&shared)),
            shutdown,
        )
        .await;
        log_action!(info, "listener_close", Success, address = addr);
        shared_stop.cancel();
        if let Some(w) = watcher {
            let _ = w.await;
        }
        drop(store);
        // The writer finishes what was queued, then closes the database.
        writer.finish().await;
        Ok(report)
    }
}

/// Runs the draw: reads the winners from the store and publishes them.
/// `how` says where this server learnt that it is due (`here`: its own
/// commit completed the set; `recovered`: at start; `shared`: another
/// server's commit, seen in the database).
async fn run_draw(store: &Store, draw: &Draw, how: &str) -> Result<(), Error> {
    let winners = store.winners().await?;
    log_action!(info, "sorteo", Success, how = how);
    draw.publish(winners);
    Ok(())
}

/// How often a server on a shared store looks at the lottery's state until
/// the draw (agencies finishing on other servers, the draw they record).
const WATCH_EVERY: Duration = Duration::from_millis(100);

/// On a shared store: keeps this server's view of who is done current and
/// publishes the draw once any server has recorded it.
async fn watch_draw(store: Store, draw: Arc<Draw>, stop: tokio_util::sync::CancellationToken) {
    while draw.winners().is_none() {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(WATCH_EVERY) => {}
        }
        match store.state().await {
            Ok(state) => {
                for agency in state.done {
                    draw.agency_done(agency);
                }
                if state.drawn
                    && draw.winners().is_none()
                    && let Err(e) = run_draw(&store, &draw, "shared").await
                {
                    log_action!(warn, "sorteo", Fail, error = e);
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot read the lottery's state; trying again"),
        }
    }
}

/// What every connection shares.
struct Shared {
    store: Store,
    draw: Arc<Draw>,
    agencies: Arc<Agencies>,
    idle_timeout: Duration,
    winners_wait: Duration,
}

/// One queued answer, in request order.
enum Pending {
    Batch {
        agency: u8,
        first: Option<u32>,
        last: bool,
        count: usize,
        bets_for_log: Option<Vec<(String, u16)>>,
        outcome: std::pin::Pin<Box<dyn Future<Output = Result<Committed, Error>> + Send>>,
    },
    Winners(u8, Duration),
    Progress(u8),
    Reply(Response),
    Fatal(Response),
}

/// Checks that `agency` is the one this connection speaks for, claiming it on
/// the first message; the refusal to send (and close with) otherwise.
fn speak_for(
    agency: u8,
    claim: &mut Option<Claim>,
    shared: &Shared,
    conn: &Conn,
) -> Result<(), Response> {
    match claim {
        Some(c) if c.agency() == agency => Ok(()),
        Some(c) => {
            let held = c.agency();
            log_action!(
                warn,
                "agencia_duplicada",
                Fail,
                agency = agency,
                peer = conn.peer,
                holds = held
            );
            Err(Response::Error(format!(
                "this connection speaks for agency {held}; agency {agency} needs a connection of its own"
            )))
        }
        None => match shared.agencies.claim(agency, conn.id, conn.peer) {
            Ok(c) => {
                *claim = Some(c);
                Ok(())
            }
            Err(holder) => {
                log_action!(
                    warn,
                    "agencia_duplicada",
                    Fail,
                    agency = agency,
                    peer = conn.peer,
                    holder = holder
                );
                Err(Response::AgencyTaken(format!(
                    "agency {agency} is already connected from {holder}; one connection per agency (retry once it has closed)"
                )))
            }
        },
    }
}

type Requests = FramedRead<tokio::net::tcp::OwnedReadHalf, ServerCodec>;
type Answers = FramedWrite<StallGuard<tokio::net::tcp::OwnedWriteHalf>, ServerCodec>;

/// Serves one agency's connection: a reading side that turns requests into
/// queued work (batches go to the store at once, pipelined) and a writing
/// side that answers them in order.
async fn handle(stream: TcpStream, conn: Conn, shared: Arc<Shared>) {
    let peer = conn.peer;
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    let reader = FramedRead::new(r, ServerCodec);
    let writer = FramedWrite::new(StallGuard::new(w, shared.idle_timeout), ServerCodec);
    let (tx, rx) = mpsc::channel::<Pending>(PIPELINE);
    // Requests queued and not yet answered: while there are some, the
    // connection is busy (not idle, not to be closed for room).
    let in_flight = AtomicUsize::new(0);
    tokio::join!(
        read_requests(reader, tx, &shared, &conn, &in_flight),
        write_answers(writer, rx, &shared, &conn, &in_flight),
    );
    log_action!(info, "conexion_cerrada", Success, peer = peer);
}

/// The reading side: each request (once this connection may speak for its
/// agency) becomes queued work, until the peer closes, idles out, sends
/// something fatal, or the server shuts down.
async fn read_requests(
    mut reader: Requests,
    tx: mpsc::Sender<Pending>,
    shared: &Shared,
    conn: &Conn,
    in_flight: &AtomicUsize,
) {
    let mut claim: Option<Claim> = None;
    loop {
        let item = tokio::select! {
            () = conn.shutdown.cancelled() => break,
            item = tokio::time::timeout(shared.idle_timeout, reader.next()) => item,
        };
        let Ok(item) = item else {
            if in_flight.load(Ordering::Relaxed) > 0 {
                continue;
            }
            log_action!(
                info,
                "conexion_inactiva",
                Success,
                peer = conn.peer,
                idle_s = shared.idle_timeout.as_secs()
            );
            break;
        };
        let agency = match &item {
            Some(Ok(Incoming::Request(r))) => Some(r.agency()),
            Some(Ok(Incoming::Rejected { agency, .. })) => Some(*agency),
            _ => None,
        };
        if let Some(agency) = agency
            && let Err(refusal) = speak_for(agency, &mut claim, shared, conn)
        {
            in_flight.fetch_add(1, Ordering::Relaxed);
            let _ = tx.send(Pending::Fatal(refusal)).await;
            break;
        }
        let Some(item) = item else { break };
        let (pending, fatal) = match item {
            Ok(incoming) => (pending_for(incoming, shared), false),
            Err(e) => {
                if !matches!(&e, Error::Net(n) if n.is_disconnect()) {
                    log_action!(warn, "mensaje_invalido", Fail, peer = conn.peer, error = &e);
                }
                (Pending::Fatal(Response::Error(e.to_string())), true)
            }
        };
        if in_flight.fetch_add(1, Ordering::Relaxed) == 0 {
            conn.activity.busy();
        }
        if tx.send(pending).await.is_err() || fatal {
            break;
        }
    }
    // The claim on the agency lasts as long as the reading side.
    drop(claim);
}

/// The work one request asks for: a batch goes to the store now (its
/// answer comes when it is stored), the rest is answered in turn.
fn pending_for(incoming: Incoming, shared: &Shared) -> Pending {
    match incoming {
        Incoming::Request(Request::Bets {
            agency,
            first,
            last,
            bets,
        }) => {
            let count = bets.len();
            // Per-bet lines are INFO for single bets, DEBUG for batches.
            let bets_for_log =
                (count == 1 || tracing::enabled!(tracing::Level::DEBUG)).then(|| {
                    bets.iter()
                        .map(|b| (b.documento.clone(), b.numero))
                        .collect()
                });
            let job = BatchJob::new(agency, first, last, bets);
            match shared.store.submit(job) {
                Ok(outcome) => Pending::Batch {
                    agency,
                    first,
                    last,
                    count,
                    bets_for_log,
                    outcome: Box::pin(outcome),
                },
                Err(e) => Pending::Fatal(Response::Error(format!("server shutting down: {e}"))),
            }
        }
        Incoming::Request(Request::AskWinners { agency, wait_ms }) => {
            let wait = wait_ms
                .map_or(shared.winners_wait, |ms| {
                    Duration::from_millis(u64::from(ms))
                })
                .min(shared.winners_wait);
            Pending::Winners(agency, wait)
        }
        Incoming::Request(Request::Resume { agency }) => Pending::Progress(agency),
        Incoming::Rejected { agency, reason } => {
            log_action!(
                warn,
                "apuesta_recibida",
                Fail,
                agency = agency,
                error = &reason
            );
            Pending::Reply(Response::Error(reason))
        }
    }
}

/// The writing side: answers in order, pipelined answers sharing a write,
/// until a fatal one or the reading side is done.
async fn write_answers(
    mut writer: Answers,
    mut rx: mpsc::Receiver<Pending>,
    shared: &Shared,
    conn: &Conn,
    in_flight: &AtomicUsize,
) {
    while let Some(p) = rx.recv().await {
        let (responses, fatal) = answer(p, shared, conn).await;
        for r in &responses {
            if writer.feed(r).await.is_err() {
                return;
            }
        }
        // Flush when nothing else is ready to go out: pipelined acks share writes.
        if (rx.is_empty() || fatal) && writer.flush().await.is_err() {
            return;
        }
        if in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            conn.activity.idle();
        }
        if fatal {
            break;
        }
    }
    let _ = writer.close().await;
}

/// The responses to one queued request, and whether the connection ends after them.
async fn answer(p: Pending, shared: &Shared, conn: &Conn) -> (Vec<Response>, bool) {
    match p {
        Pending::Batch {
            agency,
            first,
            last,
            count,
            bets_for_log,
            outcome,
        } => match outcome.await {
            Ok(Committed {
                stored: Stored::Conflict(why),
                ..
            }) => {
                log_action!(
                    warn,
                    "lote_en_conflicto",
                    Fail,
                    agency = agency,
                    first = first.unwrap_or(0),
                    cantidad = count,
                    error = &why
                );
                (vec![Response::Error(why)], false)
            }
            Ok(Committed { stored, drew }) => {
                log_stored(agency, first, count, &stored, bets_for_log.as_deref());
                if last {
                    // Alone on its store, the server counts; on a shared
                    // store the database said whether this commit drew.
                    let due_here = shared.draw.agency_done(agency);
                    let due = if shared.store.shared() {
                        drew
                    } else {
                        due_here
                    };
                    if due && let Err(e) = run_draw(&shared.store, &shared.draw, "here").await {
                        log_action!(error, "sorteo", Fail, error = e);
                    }
                }
                (vec![Response::BetProcessed], false)
            }
            Err(e) => {
                log_action!(
                    error,
                    "apuesta_recibida",
                    Fail,
                    cantidad = count,
                    error = &e
                );
                // Nothing of it is acknowledged; the agency sends it again
                // (to this server later or to another one).
                (
                    vec![Response::Unavailable(format!("not stored: {e}"))],
                    true,
                )
            }
        },
        Pending::Winners(agency, wait) => {
            let drawn = tokio::select! {
                w = tokio::time::timeout(wait, shared.draw.winners_of(agency)) => w.ok(),
                () = conn.shutdown.cancelled() => None,
            };
            match drawn {
                Some(w) => (winners_parts(&w), false),
                None => (
                    vec![Response::NotYet {
                        done: u16::try_from(shared.draw.done_count()).unwrap_or(u16::MAX),
                        expected: u16::try_from(shared.draw.expected()).unwrap_or(u16::MAX),
                    }],
                    false,
                ),
            }
        }
        Pending::Progress(agency) => match shared.store.progress(agency).await {
            Ok(p) => (
                vec![Response::Progress {
                    next: p.next,
                    digest: p.digest,
                    done: p.done,
                }],
                false,
            ),
            Err(e) => (
                vec![Response::Unavailable(format!("cannot read progress: {e}"))],
                true,
            ),
        },
        Pending::Reply(r) => (vec![r], false),
        Pending::Fatal(r) => (vec![r], true),
    }
}

fn log_stored(
    agency: u8,
    first: Option<u32>,
    count: usize,
    stored: &Stored,
    bets: Option<&[(String, u16)]>,
) {
    match stored {
        Stored::New(n) => {
            if let Some(bets) = bets {
                for (dni, numero) in bets {
                    if count == 1 {
                        log_action!(
                            info,
                            "apuesta_almacenada",
                            Success,
                            dni = dni,
                            numero = numero
                        );
                    } else {
                        log_action!(
                            debug,
                            "apuesta_almacenada",
                            Success,
                            dni = dni,
                            numero = numero
                        );
                    }
                }
            }
            log_action!(info, "apuesta_recibida", Success, cantidad = n);
        }
        Stored::Duplicate => {
            log_action!(
                info,
                "lote_repetido",
                Success,
                agency = agency,
                first = first.unwrap_or(0),
                cantidad = count
            );
        }
        Stored::Conflict(_) => {}
    }
}
