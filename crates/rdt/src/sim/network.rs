//! The simulated network between the two cores: impair's seeded datagram
//! engine (`impair::datagram`, the same one `impair udp` runs) in each
//! direction, so loss, duplication, corruption, reordering and delay are
//! decided by one implementation everywhere (DESIGN habit 9). What rdt adds is
//! only its own predicate: "the Nth segment of this kind" is lost, or comes
//! again late — rules that need to know what a segment is.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use impair::datagram::{DatagramEngine, Decision, Verdict};
use impair::stats::UdpCounters;
use impair::{Direction, UdpRules};
use netkit::units::Probability;

use crate::segment::{Kind, Segment};

/// Which way a datagram travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dir {
    ToServer,
    ToClient,
}

/// What the network does to datagrams, each way: impair's rules.
#[derive(Debug, Clone)]
pub struct Network {
    pub to_server: UdpRules,
    pub to_client: UdpRules,
}

/// One-way delay of [`Network::perfect`].
pub const PERFECT_DELAY: Duration = Duration::from_micros(50);

impl Network {
    /// No loss, no duplication, no reordering; 50 µs each way.
    pub fn perfect() -> Network {
        Network::each_way(UdpRules {
            delay: PERFECT_DELAY,
            ..UdpRules::default()
        })
    }

    /// The same rules both ways.
    pub fn each_way(rules: UdpRules) -> Network {
        Network {
            to_server: rules.clone(),
            to_client: rules,
        }
    }

    fn both(mut self, set: impl Fn(&mut UdpRules)) -> Network {
        set(&mut self.to_server);
        set(&mut self.to_client);
        self
    }

    /// Drops each datagram with probability `p` (clamped to 0..=1), each way.
    #[must_use]
    pub fn loss(self, p: f64) -> Network {
        self.both(|r| r.loss = probability(p))
    }

    /// Sends each datagram twice with probability `p`, each way.
    #[must_use]
    pub fn duplicate(self, p: f64) -> Network {
        self.both(|r| r.duplicate = probability(p))
    }

    /// Flips one byte of a datagram with probability `p` (only the binary
    /// format can detect it), each way.
    #[must_use]
    pub fn corrupt(self, p: f64) -> Network {
        self.both(|r| r.corrupt = probability(p))
    }

    /// Holds a datagram back behind its successor with probability `p` (or for
    /// `hold` if none comes), each way.
    #[must_use]
    pub fn reorder(self, p: f64, hold: Duration) -> Network {
        self.both(|r| {
            r.reorder = probability(p);
            r.reorder_timeout = hold;
        })
    }

    /// One-way delay, each way.
    #[must_use]
    pub fn delay(self, delay: Duration) -> Network {
        self.both(|r| r.delay = delay)
    }
}

fn probability(p: f64) -> Probability {
    Probability::new(p.clamp(0.0, 1.0)).unwrap_or(Probability::ZERO)
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
    /// When it was sent (a late echo: when it comes again).
    pub at: Duration,
    pub dir: Dir,
    pub segment: Segment,
    /// The bytes as sent (a corrupted one differs on arrival in one byte).
    pub bytes: Vec<u8>,
    pub fate: Fate,
    pub duplicated: bool,
}

/// What a rule does to the `nth` segment of a kind in a direction.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Action {
    Drop,
    /// Deliver it, and a second copy this much later.
    EchoLate(Duration),
}

#[derive(Debug)]
pub(crate) struct KindRule {
    pub dir: Dir,
    pub kind: Kind,
    pub nth: usize,
    pub action: Action,
    seen: usize,
}

impl KindRule {
    pub fn new(dir: Dir, kind: Kind, nth: usize, action: Action) -> KindRule {
        KindRule {
            dir,
            kind,
            nth,
            action,
            seen: 0,
        }
    }
}

/// Both directions of the network, and the record of what crossed it.
#[derive(Debug)]
pub(crate) struct Wire {
    start: Instant,
    to_server: DatagramEngine,
    to_client: DatagramEngine,
    /// Copies the kind rules send again later, in the order they are due.
    echoes: Vec<(Instant, Dir, Bytes)>,
    pub rules: Vec<KindRule>,
    pub transits: Vec<Transit>,
}

impl Wire {
    /// The engines draw from their own streams of `seed` (flow 1: stream 0 is
    /// the simulator's initial sequence numbers).
    pub fn new(net: Network, seed: u64, start: Instant) -> Wire {
        let engine = |rules, dir| {
            DatagramEngine::new(
                rules,
                impair::stream_rng(seed, 1, dir),
                Arc::new(UdpCounters::default()),
            )
        };
        Wire {
            start,
            to_server: engine(net.to_server, Direction::Up),
            to_client: engine(net.to_client, Direction::Down),
            echoes: Vec::new(),
            rules: Vec::new(),
            transits: Vec::new(),
        }
    }

    fn engine(&mut self, dir: Dir) -> &mut DatagramEngine {
        match dir {
            Dir::ToServer => &mut self.to_server,
            Dir::ToClient => &mut self.to_client,
        }
    }

    /// Puts one encoded segment on the network at `now`.
    pub fn send(&mut self, now: Instant, dir: Dir, seg: &Segment, bytes: &[u8]) {
        let at = now - self.start;
        let (dropped, echo) = self.apply_kind_rules(dir, seg.kind());
        let record = |fate, duplicated| Transit {
            at,
            dir,
            segment: seg.clone(),
            bytes: bytes.to_vec(),
            fate,
            duplicated,
        };
        let mut transits = Vec::with_capacity(3);
        if let Some(late) = echo {
            transits.push(Transit {
                at: at + late,
                ..record(Fate::Delivered, true)
            });
            let due = now + late + self.engine(dir).rules().delay;
            self.echoes.push((due, dir, Bytes::copy_from_slice(bytes)));
            self.echoes.sort_by_key(|(due, _, _)| *due);
        }
        if dropped {
            transits.push(record(Fate::Lost, false));
        } else {
            let decision = self
                .engine(dir)
                .on_datagram(now, Bytes::copy_from_slice(bytes));
            transits.extend(fates(&decision).map(|(fate, dup)| record(fate, dup)));
        }
        self.transits.append(&mut transits);
    }

    /// Counts `kind` for the rules of `dir`: (lost by one, echoed after).
    fn apply_kind_rules(&mut self, dir: Dir, kind: Kind) -> (bool, Option<Duration>) {
        let mut dropped = false;
        let mut echo = None;
        for rule in self
            .rules
            .iter_mut()
            .filter(|r| r.dir == dir && r.kind == kind)
        {
            rule.seen += 1;
            if rule.seen == rule.nth {
                match rule.action {
                    Action::Drop => dropped = true,
                    Action::EchoLate(late) => echo = Some(late),
                }
            }
        }
        (dropped, echo)
    }

    /// When the network next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.to_server.poll_timeout(),
            self.to_client.poll_timeout(),
            self.echoes.first().map(|(due, _, _)| *due),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The datagrams due at `now`, each with its direction, in due order per
    /// direction.
    pub fn take_due(&mut self, now: Instant) -> Vec<(Dir, Bytes)> {
        let mut due = Vec::new();
        let ready = self.echoes.partition_point(|(at, _, _)| *at <= now);
        due.extend(self.echoes.drain(..ready).map(|(_, dir, b)| (dir, b)));
        for dir in [Dir::ToServer, Dir::ToClient] {
            let engine = self.engine(dir);
            engine.on_timeout(now);
            while let Some(bytes) = engine.poll_emit(now) {
                due.push((dir, bytes));
            }
        }
        due
    }
}

/// The transits one engine decision makes: (fate, is a duplicate copy).
fn fates(decision: &Decision) -> impl Iterator<Item = (Fate, bool)> {
    let (fate, copies) = match decision.verdict {
        Verdict::Drop(_) => (Fate::Lost, 1),
        Verdict::Deliver {
            copies, corrupted, ..
        } => {
            let fate = if corrupted.is_some() {
                Fate::Corrupted
            } else {
                Fate::Delivered
            };
            (fate, copies)
        }
    };
    (0..copies).map(move |copy| (fate, copy > 0))
}
