//! The socket side of one endpoint: a UDP socket, the format's codec, the
//! built-in loss (spec "Programs": `--loss P --seed N`, dropping both ways so
//! the seed's lossy runs need no root), `--debug` lines and the trace.
//! Fault injection as a wrapper (DESIGN habit 9): the core never knows. The
//! loss is impair's datagram engine (the one `impair udp` and the simulator
//! run), one per direction; rdt adds only its rules by segment kind.
//! It waits for datagrams with the core's deadline through [`Waiter`].

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use impair::datagram::{DatagramEngine, Verdict};
use impair::{Direction, UdpRules};
use netkit::units::Probability;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::batch::{self, Gro, Gso};
use crate::config::Config;
use crate::conn::Note;
use crate::error::Error;
use crate::segment::Segment;
use crate::trace::{Trace, TraceKind};
use crate::wait::{Until, Waiter};
use crate::wire::MAX_DATAGRAM;

/// Everything about a socket that is not the protocol's configuration.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub config: Config,
    /// Probability each datagram this socket sends, and each it receives, is
    /// dropped: set on one end, it covers both directions of the connection.
    pub loss: f64,
    /// Seed of the loss decisions and initial sequence numbers (random if None).
    pub seed: Option<u64>,
    /// 1-based indexes of datagrams this socket sends that are dropped
    /// (e.g. `[3]` loses the handshake ACK of a client: SYN, then ... see docs).
    pub drop_sent: Vec<u64>,
    /// Segments of a kind lost on their way out or in, by their rank among
    /// that kind (the checker's single-loss scenarios: the network loses
    /// exactly the peer's FIN, say, whatever its numbers or header spelling).
    pub drop_kinds: Vec<DropKind>,
    pub trace: Option<Trace>,
    /// Records cwnd and goodput over time (`--trace-cwnd`).
    pub cwnd_trace: Option<crate::cwnd_trace::CwndTrace>,
}

/// Which way a [`DropKind`] rule looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    Sent,
    Received,
}

/// Loses the `nth` (1-based) segments of `kind` going `way`; with
/// `after_our_fin`, counting those after this socket sent its FIN (or FIN-ACK)
/// only (the final ACK, whatever came before).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropKind {
    pub way: Way,
    pub kind: crate::segment::Kind,
    pub nth: Vec<u64>,
    pub after_our_fin: bool,
}

impl DropKind {
    /// The `nth` segment of `kind` going `way`.
    pub fn nth(way: Way, kind: crate::segment::Kind, nth: u64) -> DropKind {
        DropKind {
            way,
            kind,
            nth: vec![nth],
            after_our_fin: false,
        }
    }
}

impl Options {
    pub fn new(config: Config) -> Options {
        Options {
            config,
            ..Options::default()
        }
    }

    pub(crate) fn rng(&self) -> ChaCha8Rng {
        match self.seed {
            Some(seed) => ChaCha8Rng::seed_from_u64(seed),
            None => ChaCha8Rng::from_os_rng(),
        }
    }
}

/// Socket buffers asked for in the windowed modes.
const WINDOWED_SOCKET_BUFFER: usize = 8 << 20;

/// One UDP socket with codec, loss and observation around it.
#[derive(Debug)]
pub(crate) struct Link {
    pub udp: UdpSocket,
    opts: Options,
    /// Boxed: used at set-up only, and some 300 bytes inline would spread
    /// the fields every datagram reads over more cache lines.
    rng: Box<ChaCha8Rng>,
    /// The built-in loss, when there is any.
    impairment: Option<Box<Impairment>>,
    /// A datagram's header (the payload goes to the kernel from where it is).
    out: Vec<u8>,
    buf: Vec<u8>,
    waiter: Waiter,
    /// Segments seen per [`DropKind`] rule.
    kind_seen: Vec<u64>,
    /// This socket sent a FIN (or FIN-ACK).
    sent_fin: bool,
    /// Windowed modes: sends gathered into GSO trains until [`Link::flush`].
    gso: Option<Gso>,
    /// Windowed modes, from the first wait on: trains read whole (GRO). Not
    /// before, so a half-open handshake (the listener turns those without
    /// waiting; a flood may hold many) never holds its 64 KiB buffer.
    gro: Option<Box<Gro>>,
}

/// What `receive` got.
pub(crate) enum Incoming {
    Segment(Segment, SocketAddr),
    /// Dropped by loss, or undecodable: nothing for the core.
    Nothing,
    TimedOut,
}

impl Link {
    pub fn new(udp: UdpSocket, opts: Options, rng: ChaCha8Rng) -> Result<Link, Error> {
        if opts.config.mode.windowed() {
            // A window of datagrams arrives in a burst: the default socket
            // buffers (about 200 KiB) would drop what the window sends.
            // The kernel caps the size at net.core.[rw]mem_max; less is fine.
            let sock = socket2::SockRef::from(&udp);
            let _ = sock.set_recv_buffer_size(WINDOWED_SOCKET_BUFFER);
            let _ = sock.set_send_buffer_size(WINDOWED_SOCKET_BUFFER);
        }
        let waiter = Waiter::new(&udp).map_err(|e| Error::io("set up the socket's poller", e))?;
        let kind_seen = vec![0; opts.drop_kinds.len()];
        let mut rng = rng;
        let impairment = Impairment::new(&opts, &mut rng).map(Box::new);
        let gso = opts.config.mode.windowed().then(Gso::default);
        Ok(Link {
            udp,
            opts,
            rng: Box::new(rng),
            impairment,
            // The longest header: 20 bytes and 16 SACK blocks (the course
            // header is shorter); it grows if ever needed.
            out: Vec::with_capacity(crate::wire::binary::HEADER + 8 * crate::segment::Sack::MAX),
            buf: vec![0; MAX_DATAGRAM + 1],
            kind_seen,
            sent_fin: false,
            waiter,
            gso,
            gro: None,
        })
    }

    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        self.udp
            .local_addr()
            .map_err(|e| Error::io("local address", e))
    }

    /// Encodes and sends one segment, unless the built-in loss takes it.
    pub fn send(&mut self, seg: &Segment, to: SocketAddr) -> Result<(), Error> {
        let by_kind = self.dropped_by_kind(Way::Sent, seg);
        let format = self.opts.config.format;
        let impairment = &mut self.impairment;
        // Every datagram goes through the engine, so its index counts them all.
        let mut keep = |head: &[u8], payload: &[u8]| {
            let passes = impairment
                .as_mut()
                .is_none_or(|i| Impairment::passes(&mut i.sent, head, payload));
            passes && !by_kind
        };
        let kept = if let Some(gso) = &mut self.gso {
            gso.push_with(&self.udp, to, |head| format.encode_split(seg, head), keep)
        } else {
            self.out.clear();
            let payload = format.encode_split(seg, &mut self.out);
            if keep(&self.out, &payload) {
                batch::send_alone(&self.udp, &self.out, &payload, to).map(|()| true)
            } else {
                Ok(false)
            }
        }
        .map_err(|e| Error::io(format!("send to {to}"), e))?;
        if !kept {
            tracing::debug!(target: "rdt", "send {seg} -> {to}: LOST (simulated)");
            self.trace(TraceKind::SentLost, || seg.to_string());
            return Ok(());
        }
        tracing::debug!(target: "rdt", "send {seg} -> {to}");
        self.trace(TraceKind::Sent, || seg.to_string());
        Ok(())
    }

    /// Sends what [`Link::send`] gathered; the endpoint calls it before it waits.
    pub fn flush(&mut self) -> Result<(), Error> {
        match &mut self.gso {
            Some(gso) => gso
                .flush(&self.udp)
                .map_err(|e| Error::io("send a train of datagrams", e)),
            None => Ok(()),
        }
    }

    /// Sends already-encoded bytes (the listener's stored SYN-ACK) through `udp`.
    pub fn send_raw(udp: &UdpSocket, bytes: &[u8], to: SocketAddr) -> Result<(), Error> {
        udp.send_to(bytes, to)
            .map(drop)
            .map_err(|e| Error::io(format!("send to {to}"), e))
    }

    /// Waits for one datagram until `until`.
    pub fn receive(&mut self, until: Until) -> Result<Incoming, Error> {
        if self.gro.is_none() && until != Until::Now && self.gso.is_some() {
            self.gro = Gro::enable(&self.udp).map(Box::new);
        }
        // Outer None: `until` passed; inner None: a datagram with no IP
        // sender to answer (nothing for the core).
        let got = match &mut self.gro {
            Some(gro) => match gro.next() {
                Some(next) => Ok(Some(Some(next))),
                None => self
                    .waiter
                    .recv_with(&self.udp, until, |udp| gro.fill(udp))
                    .map(|filled| filled.map(|()| gro.next())),
            },
            None => self
                .waiter
                .recv_from(&self.udp, &mut self.buf, until)
                .map(|got| got.map(|(n, from)| Some((0..n, from)))),
        };
        let (range, from) = match got {
            Ok(Some(Some(got))) => got,
            Ok(Some(None)) => return Ok(Incoming::Nothing),
            Ok(None) => return Ok(Incoming::TimedOut),
            // An ICMP port unreachable from an earlier send: not for this datagram.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return Ok(Incoming::Nothing),
            Err(e) => return Err(Error::io("receive", e)),
        };
        let shared = self.gro.as_ref().and_then(|g| g.shared(range.clone()));
        let datagram = match &self.gro {
            Some(gro) => gro.bytes(range),
            None => &self.buf[range],
        };
        let n = datagram.len();
        let format = self.opts.config.format;
        let decoded = match &shared {
            Some(own) => format.decode_shared(own),
            None => format.decode(datagram),
        };
        let seg = match decoded {
            Ok(seg) => seg,
            Err(e) => {
                tracing::debug!(target: "rdt", "recv {n} bytes <- {from}: dropped, {e}");
                self.trace(TraceKind::Undecodable, || format!("{n} bytes: {e}"));
                return Ok(Incoming::Nothing);
            }
        };
        let passes = self
            .impairment
            .as_mut()
            .is_none_or(|i| Impairment::passes(&mut i.received, datagram, &[]));
        let by_kind = self.dropped_by_kind(Way::Received, &seg);
        if by_kind || !passes {
            tracing::debug!(target: "rdt", "recv {seg} <- {from}: LOST (simulated)");
            self.trace(TraceKind::ReceivedLost, || seg.to_string());
            return Ok(Incoming::Nothing);
        }
        tracing::debug!(target: "rdt", "recv {seg} <- {from}");
        self.trace(TraceKind::Received, || seg.to_string());
        Ok(Incoming::Segment(seg, from))
    }

    /// Counts `seg` for the rules of its kind going `way`; true if one drops it.
    fn dropped_by_kind(&mut self, way: Way, seg: &Segment) -> bool {
        let kind = seg.kind();
        let mut drop = false;
        for (rule, seen) in self.opts.drop_kinds.iter().zip(self.kind_seen.iter_mut()) {
            if rule.after_our_fin && !self.sent_fin {
                continue;
            }
            if rule.way == way && rule.kind == kind {
                *seen += 1;
                drop |= rule.nth.contains(seen);
            }
        }
        if way == Way::Sent && seg.flags.fin {
            self.sent_fin = true;
        }
        drop
    }

    /// Shows one note of the core: `--debug` output and the trace.
    pub fn note(&self, note: &Note) {
        tracing::debug!(target: "rdt", "{note}");
        let kind = match note {
            Note::Timeout { .. } => TraceKind::Timeout,
            Note::State { .. }
            | Note::ImplicitAck(_)
            | Note::GaveUp { .. }
            | Note::Learned { .. }
            | Note::Lost { .. }
            | Note::Congestion(_) => TraceKind::Note,
            _ => return,
        };
        self.trace(kind, || match note {
            Note::ImplicitAck(_) => "data taken as the lost ACK".to_string(),
            Note::State { to, .. } => to.to_string(),
            other => other.to_string(),
        });
    }

    /// Records an event, its text made only if a trace is being kept (a
    /// formatted string per segment would cost more than the segment).
    pub fn trace(&self, kind: TraceKind, text: impl FnOnce() -> String) {
        if let Some(trace) = &self.opts.trace {
            trace.record(kind, text());
        }
    }

    /// The cwnd recorder, if one is kept.
    pub fn cwnd_trace(&self) -> Option<&crate::cwnd_trace::CwndTrace> {
        self.opts.cwnd_trace.as_ref()
    }

    pub fn trace_hosts(&self, peer: SocketAddr) {
        if let (Some(trace), Ok(local)) = (&self.opts.trace, self.udp.local_addr()) {
            trace.hosts(local, peer);
        }
    }
}

/// The built-in loss, each way: impair's engine with only `loss` (both ways)
/// and `drop_nth` (what this socket sends) set. Such rules never delay,
/// duplicate or alter a datagram, so what passes is the datagram itself, due at
/// once, and the link sends (or delivers) its own copy.
#[derive(Debug)]
struct Impairment {
    sent: DatagramEngine,
    received: DatagramEngine,
}

impl Impairment {
    /// None when the options ask for no loss. The engines draw from two
    /// streams of a seed taken from the link's generator.
    fn new(opts: &Options, rng: &mut ChaCha8Rng) -> Option<Impairment> {
        if opts.loss <= 0.0 && opts.drop_sent.is_empty() {
            return None;
        }
        let loss = Probability::new(opts.loss.clamp(0.0, 1.0)).unwrap_or(Probability::ZERO);
        let seed: u64 = rng.random();
        let engine = |drop_nth: &[u64], dir| {
            let rules = UdpRules {
                loss,
                drop_nth: drop_nth.to_vec(),
                ..UdpRules::default()
            };
            DatagramEngine::new(rules, impair::stream_rng(seed, 0, dir), Arc::default())
        };
        Some(Impairment {
            sent: engine(&opts.drop_sent, Direction::Up),
            received: engine(&[], Direction::Down),
        })
    }

    /// Whether the datagram `head` then `rest` gets through `engine`.
    fn passes(engine: &mut DatagramEngine, head: &[u8], rest: &[u8]) -> bool {
        let now = Instant::now();
        let mut datagram = BytesMut::with_capacity(head.len() + rest.len());
        datagram.extend_from_slice(head);
        datagram.extend_from_slice(rest);
        let decision = engine.on_datagram(now, datagram.freeze());
        // Nothing is delayed: empty the queue, so it never holds anything.
        while engine.poll_emit(now).is_some() {}
        !matches!(decision.verdict, Verdict::Drop(_))
    }
}
