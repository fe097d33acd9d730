//! The listening side of the seed's `accept` (spec "Socket API"): SYNs arrive
//! on the listening socket; each new client gets a socket on a new port, and
//! its handshake runs on its own thread, so a client that never finishes its
//! handshake holds nobody else back. `accept` takes the next connection whose
//! handshake is done. A duplicate SYN (its SYN-ACK was lost) is answered with
//! the same SYN-ACK, from the connection's own port.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::conn::Connection;
use crate::error::Error;
use crate::isn;
use crate::link::{Incoming, Link, Options};
use crate::segment::Kind;
use crate::seq::Seq;
use crate::socket::Endpoint;
use crate::trace::TraceKind;

/// Handshakes in progress at once; further SYNs are dropped (their clients
/// resend them), so a SYN flood costs bounded threads and sockets.
pub const MAX_PENDING: usize = 128;
/// How often the listening thread looks at its stop flag.
const TICK: Duration = Duration::from_millis(100);

/// A listening socket; its thread stops when this is dropped.
#[derive(Debug)]
pub(crate) struct Listener {
    local: SocketAddr,
    ready: mpsc::Receiver<Result<Endpoint, Error>>,
    stop: Arc<AtomicBool>,
}

impl Listener {
    /// Starts listening on `link`'s socket.
    pub fn start(link: Link, opts: Options) -> Result<Listener, Error> {
        let local = link.local_addr()?;
        let (tx, ready) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        thread::Builder::new()
            .name("rdt-listener".into())
            .spawn(move || listen(link, &opts, &tx, &flag))
            .map_err(|e| Error::io("start the listening thread", e))?;
        Ok(Listener { local, ready, stop })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The next connection whose handshake is complete.
    pub fn accept(&self) -> Result<Endpoint, Error> {
        self.ready.recv().map_err(|_| Error::Closed)?
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// A client recently accepted: what its duplicate SYN gets.
#[derive(Debug)]
struct Recent {
    syn_seq: Seq,
    synack: Vec<u8>,
    socket: UdpSocket,
    at: Instant,
}

fn listen(
    mut link: Link,
    opts: &Options,
    ready: &mpsc::Sender<Result<Endpoint, Error>>,
    stop: &AtomicBool,
) {
    let mut recent: HashMap<SocketAddr, Recent> = HashMap::new();
    let pending = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::Acquire) {
        let forget = opts.config.idle_limit;
        recent.retain(|_, r| r.at.elapsed() < forget);
        let (seg, from) = match link.receive(Some(TICK)) {
            Ok(Incoming::Segment(seg, from)) => (seg, from),
            Ok(_) => continue,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        if seg.kind() != Kind::Syn {
            tracing::debug!(target: "rdt", "listener ignored {seg} from {from}: not a SYN");
            continue;
        }
        if let Some(r) = recent.get(&from).filter(|r| r.syn_seq == seg.seq) {
            tracing::debug!(target: "rdt", "duplicate SYN from {from}: same SYN-ACK sent again");
            if let Err(e) = Link::send_raw(&r.socket, &r.synack, from) {
                tracing::debug!(target: "rdt", "{e}");
            }
            continue;
        }
        if pending.load(Ordering::Acquire) >= MAX_PENDING {
            tracing::warn!(target: "rdt", "SYN from {from} dropped: {MAX_PENDING} handshakes already in progress");
            continue;
        }
        match new_connection(&mut link, opts, &seg, from) {
            Ok((mut endpoint, entry)) => {
                recent.insert(from, entry);
                pending.fetch_add(1, Ordering::AcqRel);
                let pending = Arc::clone(&pending);
                let ready = ready.clone();
                let spawned = thread::Builder::new().name("rdt-handshake".into()).spawn(
                    move || {
                        let done = endpoint.drive(|c| Ok(c.is_established().then_some(())));
                        pending.fetch_sub(1, Ordering::AcqRel);
                        match done {
                            Ok(()) => {
                                let _ = ready.send(Ok(endpoint));
                            }
                            Err(e) => {
                                tracing::warn!(target: "rdt", "handshake with {from} failed: {e}");
                            }
                        }
                    },
                );
                if let Err(e) = spawned {
                    tracing::warn!(target: "rdt", "no thread for the handshake with {from}: {e}");
                }
            }
            Err(e) => tracing::warn!(target: "rdt", "cannot take the connection from {from}: {e}"),
        }
    }
}

/// A socket on a new port and a core in SYN-RECEIVED for the client at `from`.
fn new_connection(
    link: &mut Link,
    opts: &Options,
    syn: &crate::Segment,
    from: SocketAddr,
) -> Result<(Endpoint, Recent), Error> {
    let ip = link.local_addr()?.ip();
    let udp = UdpSocket::bind((ip, 0))
        .map_err(|e| Error::io("bind a socket for the new connection", e))?;
    let clone = udp.try_clone().map_err(|e| Error::io("clone socket", e))?;
    let server_isn = isn::initial(opts.config.format, link.rng());
    let conn = Connection::accept(opts.config.clone(), Instant::now(), syn, server_isn);
    let mut synack = Vec::new();
    if let Some(s) = conn.syn_ack() {
        opts.config.format.encode(s, &mut synack);
    }
    // Each connection draws its own loss decisions, reproducible from the seed.
    let link_rng = ChaCha8Rng::seed_from_u64(link.rng().random());
    let new_link = Link::new(udp, opts.clone(), link_rng)?;
    new_link.trace_hosts(from);
    new_link.trace(
        TraceKind::Note,
        format!("new socket :{}", new_link.local_addr()?.port()),
    );
    let recent = Recent {
        syn_seq: syn.seq,
        synack,
        socket: clone,
        at: Instant::now(),
    };
    Ok((Endpoint::new(new_link, from, conn), recent))
}
