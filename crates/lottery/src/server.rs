//! The central server (spec: lottery.md, "Concurrency", "Shutdown", "Logs").
//!
//! Each agency connection runs a reader and a writer side by side: the reader
//! decodes requests and queues their batches on the store straight away
//! (pipelining: an agency may send several batches before the first ack), the
//! writer answers in request order, each `BET_PROCESSED` only once its batch is
//! durable. A malformed batch gets an error reply and the connection goes on; a
//! broken frame (length over the limit, unknown code, EOF mid-message) gets an
//! error reply and the connection is closed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use netkit::log_action;
use netkit::server::{Conn, ServeReport, ServerConfig as RuntimeConfig, ServerStats, serve};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::Error;
use crate::draw::Draw;
use crate::proto::{Incoming, Request, Response, ServerCodec, winners_parts};
use crate::store::{Backend, BatchJob, Store, Stored};

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
}

impl ServerConfig {
    /// Listen on `listen`, store in `db`, wait for 5 agencies.
    pub fn new(listen: SocketAddr, db: PathBuf) -> Self {
        Self {
            listen,
            backend: Backend::Sqlite(db),
            agencies: 5,
            backlog: 1024,
            max_connections: 10_000,
        }
    }
}

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
        let (store, writer, recovered) = Store::open(&config.backend)?;
        let draw = Arc::new(Draw::new(config.agencies));
        let mut due = false;
        for agency in &recovered.done {
            due |= draw.agency_done(*agency);
        }
        log_action!(
            info,
            "store_open",
            Success,
            bets = recovered.bets,
            agencies_done = recovered.done.len(),
            agencies_expected = draw.expected()
        );
        if due {
            run_draw(&store, &draw).await?;
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
        let handler_store = store.clone();
        let report = serve(
            listener,
            rt,
            Arc::new(ServerStats::default()),
            move |stream, conn| handle(stream, conn, handler_store.clone(), Arc::clone(&draw)),
            shutdown,
        )
        .await;
        log_action!(info, "listener_close", Success, address = addr);
        drop(store);
        // The writer finishes what was queued, then closes the database.
        tokio::task::spawn_blocking(move || writer.join())
            .await
            .ok();
        Ok(report)
    }
}

/// Runs the draw: reads the winners from the store and publishes them.
async fn run_draw(store: &Store, draw: &Draw) -> Result<(), Error> {
    let winners = store.winners().await?;
    log_action!(info, "sorteo", Success);
    draw.publish(winners);
    Ok(())
}

/// One queued answer, in request order.
enum Pending {
    Batch {
        agency: u8,
        seq: Option<u32>,
        last: bool,
        count: usize,
        bets_for_log: Option<Vec<(String, u16)>>,
        outcome: std::pin::Pin<Box<dyn Future<Output = Result<Stored, Error>> + Send>>,
    },
    Winners(u8),
    Reply(Response),
    Fatal(Response),
}

async fn handle(stream: TcpStream, conn: Conn, store: Store, draw: Arc<Draw>) {
    let draw_store = store.clone();
    let peer = conn.peer;
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    let mut reader = FramedRead::new(r, ServerCodec);
    let mut writer = FramedWrite::new(w, ServerCodec);
    let (tx, mut rx) = mpsc::channel::<Pending>(PIPELINE);

    let read_side = async move {
        loop {
            let item = tokio::select! {
                () = conn.shutdown.cancelled() => break,
                item = reader.next() => item,
            };
            let pending = match item {
                None => break,
                Some(Ok(Incoming::Request(Request::Bets {
                    agency,
                    seq,
                    last,
                    bets,
                }))) => {
                    let count = bets.len();
                    // Per-bet lines are INFO for single bets, DEBUG for batches.
                    let bets_for_log = (count == 1 || tracing::enabled!(tracing::Level::DEBUG))
                        .then(|| {
                            bets.iter()
                                .map(|b| (b.documento.clone(), b.numero))
                                .collect()
                        });
                    match store.submit(BatchJob {
                        agency,
                        seq,
                        last,
                        bets,
                    }) {
                        Ok(outcome) => Pending::Batch {
                            agency,
                            seq,
                            last,
                            count,
                            bets_for_log,
                            outcome: Box::pin(outcome),
                        },
                        Err(e) => {
                            Pending::Fatal(Response::Error(format!("server shutting down: {e}")))
                        }
                    }
                }
                Some(Ok(Incoming::Request(Request::AskWinners { agency }))) => {
                    Pending::Winners(agency)
                }
                Some(Ok(Incoming::Rejected { agency, reason })) => {
                    log_action!(
                        warn,
                        "apuesta_recibida",
                        Fail,
                        agency = agency,
                        error = &reason
                    );
                    Pending::Reply(Response::Error(reason))
                }
                Some(Err(e)) => {
                    if !matches!(&e, Error::Net(n) if n.is_disconnect()) {
                        log_action!(warn, "mensaje_invalido", Fail, peer = conn.peer, error = &e);
                    }
                    let _ = tx
                        .send(Pending::Fatal(Response::Error(e.to_string())))
                        .await;
                    break;
                }
            };
            if tx.send(pending).await.is_err() {
                break;
            }
        }
    };

    let write_side = async move {
        while let Some(p) = rx.recv().await {
            let (responses, fatal) = match p {
                Pending::Batch {
                    agency,
                    seq,
                    last,
                    count,
                    bets_for_log,
                    outcome,
                } => match outcome.await {
                    Ok(stored) => {
                        log_stored(agency, seq, count, stored, bets_for_log.as_deref());
                        if last && draw.agency_done(agency) {
                            if let Err(e) = run_draw(&draw_store, &draw).await {
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
                        (vec![Response::Error(format!("not stored: {e}"))], true)
                    }
                },
                Pending::Winners(agency) => (winners_parts(&draw.winners_of(agency).await), false),
                Pending::Reply(r) => (vec![r], false),
                Pending::Fatal(r) => (vec![r], true),
            };
            for r in &responses {
                if writer.feed(r).await.is_err() {
                    return;
                }
            }
            // Flush when nothing else is ready to go out: pipelined acks share writes.
            if (rx.is_empty() || fatal) && writer.flush().await.is_err() {
                return;
            }
            if fatal {
                break;
            }
        }
        let _ = writer.close().await;
    };
    tokio::join!(read_side, write_side);
    log_action!(info, "conexion_cerrada", Success, peer = peer);
}

fn log_stored(
    agency: u8,
    seq: Option<u32>,
    count: usize,
    stored: Stored,
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
                seq = seq.unwrap_or(0),
                cantidad = count
            );
        }
    }
}
