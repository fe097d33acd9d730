//! A deterministic network simulator (spec "Design", DESIGN habit 8): two
//! connection cores, a virtual clock, and a seeded network that drops,
//! duplicates, delays, reorders and corrupts datagrams. Segments cross it
//! encoded, so the wire formats are exercised too. The drive loop is bounded in
//! steps and in virtual time, so a livelock shows as an unfinished run.
//!
//! The script is the seed's programs: the client connects, sends its messages
//! and closes; the server accepts, reads everything with `recv(read_size)` and
//! answers the close. The server may send messages back.

pub mod bottleneck;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::Config;
use crate::conn::{Connection, Ending, Note, Output, Read, Stats};
use crate::error::Error;
use crate::segment::{Kind, Segment};
use crate::seq::Seq;

/// Which way a datagram travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dir {
    ToServer,
    ToClient,
}

/// What the network does to datagrams, each way.
#[derive(Debug, Clone)]
pub struct Network {
    pub loss: f64,
    pub duplicate: f64,
    /// Probability a datagram takes an extra random delay (so later ones overtake it).
    pub reorder: f64,
    pub reorder_delay: Duration,
    /// Probability one bit is flipped (only the binary format can detect it).
    pub corrupt: f64,
    pub delay: Duration,
}

impl Network {
    pub fn perfect() -> Network {
        Network {
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            corrupt: 0.0,
            delay: Duration::from_micros(50),
        }
    }
}

/// What happened to one datagram the network carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Delivered,
    Lost,
    Corrupted,
}

/// One datagram put on the simulated network.
#[derive(Debug, Clone)]
pub struct Transit {
    pub at: Duration,
    pub dir: Dir,
    pub segment: Segment,
    pub bytes: Vec<u8>,
    pub fate: Fate,
    pub duplicated: bool,
}

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

/// What a rule does to the `nth` segment of a kind in a direction.
#[derive(Debug, Clone, Copy)]
enum Action {
    Drop,
    /// Deliver it, and a second copy this much later.
    EchoLate(Duration),
}

struct Rule {
    dir: Dir,
    kind: Kind,
    nth: usize,
    seen: usize,
    action: Action,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Pending {
    at: Instant,
    order: u64,
    dir: Dir,
    bytes: Vec<u8>,
}

/// Step bound: far above any run the tests make, low enough to stop a livelock fast.
const MAX_STEPS: usize = 2_000_000;

/// The simulator.
pub struct Sim {
    cfg: Config,
    server_cfg: Config,
    net: Network,
    rng: ChaCha8Rng,
    start: Instant,
    now: Instant,
    client: Connection,
    server: Option<Connection>,
    server_isn: Seq,
    queue: BinaryHeap<Reverse<Pending>>,
    order: u64,
    rules: Vec<Rule>,
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
        let mut client = Connection::connect(cfg.clone(), start, client_isn);
        for message in &script.client_sends {
            // A fresh connection accepts writes; an error here is a bug in the core.
            client
                .write_message(start, message)
                .expect("a new connection takes messages");
        }
        Sim {
            cfg,
            server_cfg,
            net,
            rng,
            start,
            now: start,
            client,
            server: None,
            server_isn,
            queue: BinaryHeap::new(),
            order: 0,
            rules: Vec::new(),
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
        self.client = Connection::connect(self.cfg.clone(), self.start, client);
        for message in &self.script.client_sends {
            self.client
                .write_message(self.start, message)
                .expect("a new connection takes messages");
        }
        self.server_isn = server;
        self
    }

    /// Loses the `nth` (1-based) segment of `kind` sent in direction `dir`.
    pub fn drop_nth(mut self, dir: Dir, kind: Kind, nth: usize) -> Sim {
        self.rules.push(Rule {
            dir,
            kind,
            nth,
            seen: 0,
            action: Action::Drop,
        });
        self
    }

    /// Delivers the `nth` (1-based) segment of `kind` in direction `dir`, and a
    /// duplicate of it `late` afterwards (a copy the network held back).
    pub fn echo_nth_late(mut self, dir: Dir, kind: Kind, nth: usize, late: Duration) -> Sim {
        self.rules.push(Rule {
            dir,
            kind,
            nth,
            seen: 0,
            action: Action::EchoLate(late),
        });
        self
    }

    /// Runs until both ends are closed, `limit` of virtual time passes, or the step bound.
    pub fn run(mut self, limit: Duration) -> Report {
        let deadline = self.start + limit;
        let mut steps = 0;
        loop {
            steps += 1;
            self.flush();
            self.applications();
            self.flush();
            if self.client.is_closed() && self.server.as_ref().is_none_or(Connection::is_closed) {
                self.report.finished = true;
                break;
            }
            if steps >= MAX_STEPS {
                break;
            }
            let next = [
                self.queue.peek().map(|Reverse(p)| p.at),
                self.client.poll_timeout(),
                self.server.as_ref().and_then(Connection::poll_timeout),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next else { break };
            if next > deadline {
                break;
            }
            self.now = self.now.max(next);
            self.deliver_due();
            self.client.handle_timeout(self.now);
            if let Some(server) = &mut self.server {
                server.handle_timeout(self.now);
            }
        }
        self.flush();
        self.applications();
        let mut report = self.report;
        report.steps = steps;
        report.elapsed = self.now - self.start;
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
        let mut ruled = false;
        let mut echo = None;
        for rule in self
            .rules
            .iter_mut()
            .filter(|r| r.dir == dir && r.kind == seg.kind())
        {
            rule.seen += 1;
            if rule.seen == rule.nth {
                match rule.action {
                    Action::Drop => ruled = true,
                    Action::EchoLate(late) => echo = Some(late),
                }
            }
        }
        if let Some(late) = echo {
            self.report.transits.push(Transit {
                at: self.now - self.start + late,
                dir,
                segment: seg.clone(),
                bytes: bytes.clone(),
                fate: Fate::Delivered,
                duplicated: true,
            });
            self.order += 1;
            self.queue.push(Reverse(Pending {
                at: self.now + self.net.delay + late,
                order: self.order,
                dir,
                bytes: bytes.clone(),
            }));
        }
        let copies = if self.rng.random_bool(self.net.duplicate) {
            2
        } else {
            1
        };
        for copy in 0..copies {
            let fate = if ruled || self.rng.random_bool(self.net.loss) {
                Fate::Lost
            } else if self.rng.random_bool(self.net.corrupt) {
                Fate::Corrupted
            } else {
                Fate::Delivered
            };
            let mut wire = bytes.clone();
            if fate == Fate::Corrupted && !wire.is_empty() {
                let bit = self.rng.random_range(0..wire.len() * 8);
                wire[bit / 8] ^= 1 << (bit % 8);
            }
            self.report.transits.push(Transit {
                at: self.now - self.start,
                dir,
                segment: seg.clone(),
                bytes: wire.clone(),
                fate,
                duplicated: copy > 0,
            });
            if fate == Fate::Lost {
                continue;
            }
            let mut delay = self.net.delay;
            if self.rng.random_bool(self.net.reorder) && !self.net.reorder_delay.is_zero() {
                delay += self.net.reorder_delay.mul_f64(self.rng.random::<f64>());
            }
            self.order += 1;
            self.queue.push(Reverse(Pending {
                at: self.now + delay,
                order: self.order,
                dir,
                bytes: wire,
            }));
        }
    }

    fn deliver_due(&mut self) {
        while self.queue.peek().is_some_and(|Reverse(p)| p.at <= self.now) {
            let Some(Reverse(p)) = self.queue.pop() else {
                break;
            };
            // A datagram that does not decode is dropped, as the socket shell does.
            let Ok(seg) = self.cfg.format.decode(&p.bytes) else {
                continue;
            };
            match p.dir {
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
