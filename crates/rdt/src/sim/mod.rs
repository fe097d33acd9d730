//! A deterministic network simulator (spec "Design", DESIGN habit 8): two
//! connection cores, a virtual clock, and a seeded network that drops,
//! duplicates, delays, reorders and corrupts datagrams (impair's engine,
//! `network.rs`). Segments cross it
//! encoded, so the wire formats are exercised too. The drive loop is bounded in
//! steps and in virtual time, so a livelock shows as an unfinished run.
//!
//! The script is the seed's programs: the client connects, sends its messages
//! and closes; the server accepts, reads everything with `recv(read_size)` and
//! answers the close. The server may send messages back.

pub mod bottleneck;
mod network;

use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use network::{Action, KindRule, Wire};
pub use network::{Dir, Fate, Network, PERFECT_DELAY, Transit};

use crate::config::Config;
use crate::conn::{Connection, Ending, Note, Output, Read, Stats};
use crate::error::Error;
use crate::segment::{Kind, Segment};
use crate::seq::Seq;

/// What each side's application does.
#[derive(Debug, Clone, Default)]
pub struct Script {
    pub client_sends: Vec<Vec<u8>>,
    pub server_sends: Vec<Vec<u8>>,
    /// `buff_size` of every `recv` call.
    pub read_size: usize,
}

/// The outcome of a run.
#[derive(Debug)]
pub struct Report {
    /// Both ends reached CLOSED within the limits.
    pub finished: bool,
    pub elapsed: Duration,
    pub steps: usize,
    pub server_received: Vec<u8>,
    pub client_received: Vec<u8>,
    /// Sizes of the server's `recv` results, in order.
    pub server_reads: Vec<usize>,
    /// The first error each end's application saw (typed: tests match the
    /// variant, not its text).
    pub client_error: Option<Error>,
    pub server_error: Option<Error>,
    pub client_ending: Option<Ending>,
    pub server_ending: Option<Ending>,
    pub client_stats: Stats,
    pub server_stats: Stats,
    pub transits: Vec<Transit>,
    pub client_notes: Vec<(Duration, Note)>,
    pub server_notes: Vec<(Duration, Note)>,
    /// Each side's reading of the course header at the end (learned or forced).
    pub client_reading: Option<crate::dialect::Reading>,
    pub server_reading: Option<crate::dialect::Reading>,
}

/// Step bound: far above any run the tests make, low enough to stop a livelock fast.
pub const MAX_STEPS: usize = 2_000_000;

/// The simulator: a steppable pair of cores and the network between them.
/// [`Sim::run`] drives it to the end; a test that wants to look or intervene
/// between events calls [`Sim::step`] and reaches the ends through
/// [`Sim::client`] and [`Sim::server`].
pub struct Sim {
    cfg: Config,
    server_cfg: Config,
    start: Instant,
    now: Instant,
    client: Connection,
    server: Option<Connection>,
    server_isn: Seq,
    wire: Wire,
    script: Script,
    report: Report,
    client_closing: bool,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("now", &(self.now - self.start))
            .finish_non_exhaustive()
    }
}

impl Sim {
    /// A client and a network; the server is born from the first SYN that arrives.
    pub fn new(cfg: Config, net: Network, seed: u64, script: Script) -> Sim {
        Sim::with_configs(cfg.clone(), cfg, net, seed, script)
    }

    /// As [`Sim::new`], each end with its own settings (one reading forced on
    /// one side, say). Both speak `client_cfg`'s format.
    pub fn with_configs(
        cfg: Config,
        server_cfg: Config,
        net: Network,
        seed: u64,
        script: Script,
    ) -> Sim {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let client_isn = crate::isn::initial(cfg.format, &mut rng);
        let server_isn = crate::isn::initial(cfg.format, &mut rng);
        let start = Instant::now();
        let client = connect(&cfg, &script, start, client_isn);
        Sim {
            cfg,
            server_cfg,
            start,
            now: start,
            client,
            server: None,
            server_isn,
            wire: Wire::new(net, seed, start),
            script,
            report: Report {
                finished: false,
                elapsed: Duration::ZERO,
                steps: 0,
                server_received: Vec::new(),
                client_received: Vec::new(),
                server_reads: Vec::new(),
                client_error: None,
                server_error: None,
                client_ending: None,
                server_ending: None,
                client_stats: Stats::default(),
                server_stats: Stats::default(),
                transits: Vec::new(),
                client_notes: Vec::new(),
                server_notes: Vec::new(),
                client_reading: None,
                server_reading: None,
            },
            client_closing: false,
        }
    }

    /// Starts the client at `client` and the server at `server` (the wrap
    /// point of the sequence space, say) instead of the seeded numbers.
    pub fn isns(mut self, client: Seq, server: Seq) -> Sim {
        self.client = connect(&self.cfg, &self.script, self.start, client);
        self.server_isn = server;
        self
    }

    /// Loses the `nth` (1-based) segment of `kind` sent in direction `dir`.
    pub fn drop_nth(mut self, dir: Dir, kind: Kind, nth: usize) -> Sim {
        self.wire
            .rules
            .push(KindRule::new(dir, kind, nth, Action::Drop));
        self
    }

    /// Delivers the `nth` (1-based) segment of `kind` in direction `dir`, and a
    /// duplicate of it `late` afterwards (a copy the network held back).
    pub fn echo_nth_late(mut self, dir: Dir, kind: Kind, nth: usize, late: Duration) -> Sim {
        self.wire
            .rules
            .push(KindRule::new(dir, kind, nth, Action::EchoLate(late)));
        self
    }

    /// The client's core.
    pub fn client(&mut self) -> &mut Connection {
        &mut self.client
    }

    /// The server's core, once a SYN has reached it.
    pub fn server(&mut self) -> Option<&mut Connection> {
        self.server.as_mut()
    }

    /// The virtual clock (what to pass the cores' calls made between steps).
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Both ends are closed.
    pub fn is_finished(&self) -> bool {
        self.client.is_closed() && self.server.as_ref().is_none_or(Connection::is_closed)
    }

    /// When something next happens: a datagram due, a timer of either end.
    pub fn next_event(&self) -> Option<Instant> {
        [
            self.wire.poll_timeout(),
            self.client.poll_timeout(),
            self.server.as_ref().and_then(Connection::poll_timeout),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// One step: the applications act and what the ends queued goes on the
    /// network; then the clock moves to the next event, which happens (due
    /// datagrams arrive, due timers fire). False when nothing is left to do
    /// (both ends closed, or no event pending).
    pub fn step(&mut self) -> bool {
        self.settle();
        if self.is_finished() {
            return false;
        }
        let Some(next) = self.next_event() else {
            return false;
        };
        self.report.steps += 1;
        self.advance(next);
        true
    }

    /// Steps until both ends are closed (true), `limit` of virtual time has
    /// passed, nothing is pending, or [`MAX_STEPS`] steps were made (false).
    pub fn drive(&mut self, limit: Duration) -> bool {
        self.drive_bounded(limit, MAX_STEPS)
    }

    /// As [`Sim::drive`], stopping after `max_steps` steps of this call.
    pub fn drive_bounded(&mut self, limit: Duration, max_steps: usize) -> bool {
        let deadline = self.start + limit;
        for _ in 0..max_steps {
            self.settle();
            if self.is_finished() {
                return true;
            }
            match self.next_event() {
                Some(next) if next <= deadline => {
                    self.report.steps += 1;
                    self.advance(next);
                }
                _ => return false,
            }
        }
        self.settle();
        self.is_finished()
    }

    /// Runs until both ends are closed, `limit` of virtual time passes, or the
    /// step bound, and reports.
    pub fn run(mut self, limit: Duration) -> Report {
        let finished = self.drive(limit);
        self.into_report(finished)
    }

    /// What happened so far.
    pub fn into_report(mut self, finished: bool) -> Report {
        self.settle();
        let mut report = self.report;
        report.finished = finished;
        report.elapsed = self.now - self.start;
        report.transits = self.wire.transits;
        report.client_ending = self.client.ending();
        report.client_stats = self.client.stats();
        report.client_reading = Some(self.client.dialect().reading());
        if let Some(server) = &self.server {
            report.server_ending = server.ending();
            report.server_stats = server.stats();
            report.server_reading = Some(server.dialect().reading());
        }
        report
    }

    /// The applications act; what both ends queued goes on the network.
    fn settle(&mut self) {
        self.flush();
        self.applications();
        self.flush();
    }

    /// The clock moves to `next`; due datagrams arrive and due timers fire.
    fn advance(&mut self, next: Instant) {
        self.now = self.now.max(next);
        for (dir, bytes) in self.wire.take_due(self.now) {
            self.arrive(dir, &bytes);
        }
        self.client.handle_timeout(self.now);
        if let Some(server) = &mut self.server {
            server.handle_timeout(self.now);
        }
    }

    /// Moves every queued transmit onto the network.
    fn flush(&mut self) {
        let at = self.now - self.start;
        while let Some(output) = self.client.poll_output() {
            match output {
                // The simulated server is its listening socket too.
                Output::Transmit(seg) | Output::TransmitToListener(seg) => {
                    self.send(Dir::ToServer, &seg);
                }
                Output::Note(note) => self.report.client_notes.push((at, note)),
            }
        }
        while let Some(output) = self.server.as_mut().and_then(Connection::poll_output) {
            match output {
                Output::Transmit(seg) | Output::TransmitToListener(seg) => {
                    self.send(Dir::ToClient, &seg);
                }
                Output::Note(note) => self.report.server_notes.push((at, note)),
            }
        }
    }

    fn send(&mut self, dir: Dir, seg: &Segment) {
        let mut bytes = Vec::new();
        self.cfg.format.encode(seg, &mut bytes);
        self.wire.send(self.now, dir, seg, &bytes);
    }

    fn arrive(&mut self, dir: Dir, bytes: &[u8]) {
        // A datagram that does not decode is dropped, as the socket shell does.
        let Ok(seg) = self.cfg.format.decode(bytes) else {
            return;
        };
        match dir {
            Dir::ToClient => self.client.handle_segment(self.now, seg),
            Dir::ToServer => match &mut self.server {
                Some(server) => server.handle_segment(self.now, seg),
                None if seg.kind() == Kind::Syn => {
                    let mut server = Connection::accept(
                        self.server_cfg.clone(),
                        self.now,
                        &seg,
                        self.server_isn,
                    );
                    for message in &self.script.server_sends {
                        server
                            .write_message(self.now, message)
                            .expect("a new connection takes messages");
                    }
                    self.server = Some(server);
                }
                None => {}
            },
        }
    }

    /// Both applications: read what is ready; the client closes once its
    /// messages are acknowledged and it has read all the server sends.
    fn applications(&mut self) {
        let size = self.script.read_size.max(1);
        if let Some(server) = &mut self.server {
            read_all(
                server,
                size,
                &mut self.report.server_received,
                Some(&mut self.report.server_reads),
                &mut self.report.server_error,
            );
        }
        read_all(
            &mut self.client,
            size,
            &mut self.report.client_received,
            None,
            &mut self.report.client_error,
        );
        let expected_back: usize = self.script.server_sends.iter().map(Vec::len).sum();
        if !self.client_closing
            && self.client.all_acked()
            && self.report.client_received.len() >= expected_back
        {
            self.client_closing = true;
            self.client.close(self.now);
        }
    }
}

/// The client's core at `start`, with the script's messages written.
fn connect(cfg: &Config, script: &Script, start: Instant, isn: Seq) -> Connection {
    let mut client = Connection::connect(cfg.clone(), start, isn);
    for message in &script.client_sends {
        // A fresh connection accepts writes; an error here is a bug in the core.
        client
            .write_message(start, message)
            .expect("a new connection takes messages");
    }
    client
}

fn read_all(
    conn: &mut Connection,
    size: usize,
    into: &mut Vec<u8>,
    mut sizes: Option<&mut Vec<usize>>,
    error: &mut Option<Error>,
) {
    loop {
        match conn.read(size) {
            Ok(Read::Data(d)) => {
                if let Some(sizes) = sizes.as_deref_mut() {
                    sizes.push(d.len());
                }
                into.extend_from_slice(&d);
            }
            Ok(Read::Pending | Read::End) => break,
            Err(e) => {
                error.get_or_insert(e);
                break;
            }
        }
    }
    if let Some(e) = conn.take_error() {
        error.get_or_insert(e);
    }
}
