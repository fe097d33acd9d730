//! The two ends of the 3-way handshake (spec "Socket API", "Loss handling";
//! seed steps 4 and 7): SYN-SENT and SYN-RECEIVED, the lost-handshake-ACK edge
//! case, duplicate SYNs and stale SYN-ACKs.
//!
//! Course readings differ here (see `dialect.rs`): the SYN-ACK may carry our
//! number + 1 (shared counter) or the server's own (own-isn); the handshake
//! ACK may consume a number or not. As a server we send x + 1, which every
//! reading accepts (an own-isn client takes it for our initial number), and
//! learn the rest from the ACK and the first data. As a client we learn the
//! counter from the SYN-ACK; if it is shared we send both possible ACKs (x + 2
//! first, the seed's) and start our data where the first one says, trying the
//! other start if the server shows it expects it or stays silent.

use std::time::Instant;

use super::{Connection, Start, State};
use crate::config::Config;
use crate::conn::note::{Answer, Ignore, Note};
use crate::dialect::Counter;
use crate::segment::{Kind, Segment};
use crate::seq::Seq;

impl Connection {
    /// The client side: SYN-SENT, with the SYN queued.
    pub fn connect(cfg: Config, now: Instant, isn: Seq) -> Connection {
        let mut conn = Connection::new(cfg, now, State::SynSent);
        conn.isn = isn;
        conn.snd_una = isn;
        conn.snd_nxt = isn;
        let syn = Segment::syn(isn).with_filler(conn.dialect.filler(false));
        conn.send_reliable(now, syn);
        conn
    }

    /// The server side, from a SYN the listener received: SYN-RECEIVED, with
    /// the SYN-ACK queued. It carries the SYN's number plus one, except for
    /// the binary format and a forced own-isn reading, which use `isn`.
    pub fn accept(cfg: Config, now: Instant, syn: &Segment, isn: Seq) -> Connection {
        let mut conn = Connection::new(cfg, now, State::SynReceived);
        if !syn.filler.is_empty()
            && let Some(l) = conn.dialect.observe_filler(&syn.filler, false)
        {
            conn.learned(l, syn);
        }
        conn.irs = syn.seq;
        conn.rcv_nxt = syn.seq.plus(1);
        let own = conn.dialect.is_forced() && !conn.shared();
        let iss = if own { isn } else { conn.rcv_nxt };
        conn.isn = iss;
        conn.snd_una = iss;
        conn.snd_nxt = iss;
        // The course header has one number: own-isn's SYN-ACK carries our
        // own initial number where the others carry theirs + 1.
        let shown = if own && conn.cfg.format == crate::wire::Format::Course {
            iss
        } else {
            conn.rcv_nxt
        };
        let synack = Segment::syn_ack(iss, shown).with_filler(conn.dialect.filler(false));
        conn.synack = Some(synack.clone());
        conn.send_reliable(now, synack);
        conn
    }

    pub(super) fn on_syn_sent(&mut self, now: Instant, seg: Segment) {
        if seg.kind() != Kind::SynAck {
            self.ignore(seg, Ignore::WaitingForSynAck);
            return;
        }
        // The course header has one number: ours + 1 (shared counter), or the
        // server's own initial number (one counter per side).
        let ours_plus_one = self.isn.plus(1);
        let n = if self.cfg.format == crate::wire::Format::Course {
            seg.seq
        } else {
            seg.ack
        };
        let per_side = if self.cfg.format == crate::wire::Format::Binary {
            if seg.ack != ours_plus_one {
                self.ignore(seg, Ignore::SynAckOfAnotherSyn);
                return;
            }
            true
        } else if self.dialect.is_forced() {
            if self.shared() && n != ours_plus_one {
                self.ignore(seg, Ignore::SynAckWithoutOurNumber);
                return;
            }
            !self.shared()
        } else if n == ours_plus_one {
            false
        } else {
            if let Some(l) = self.dialect.set_counter(Counter::PerSide) {
                self.learned(l, &seg);
            }
            true
        };
        self.acknowledged(ours_plus_one);
        let filler = self.dialect.filler(false);
        if per_side {
            let y = if self.cfg.format == crate::wire::Format::Course {
                n
            } else {
                seg.seq
            };
            self.irs = y;
            self.rcv_nxt = y.plus(1);
            self.snd_nxt = ours_plus_one;
            self.handshake_acks =
                vec![Segment::ack(self.snd_nxt, self.rcv_nxt).with_filler(filler)];
        } else if self.dialect.is_forced() || self.dialect.ack_known() {
            // The seed's counter: the handshake ACK uses x+2 (or x+1), data continues there.
            let next = if self.dialect.reading().ack_consumes {
                self.isn.plus(2)
            } else {
                ours_plus_one
            };
            self.irs = n;
            self.handshake_acks = vec![Segment::ack(next, next).with_filler(filler)];
            self.tie(next);
        } else {
            // Shared, or own-isn with the server's number one past ours: x + 2
            // suits both (and the seed) and goes out; x + 1, for the readings
            // whose ACK consumes nothing, joins it if the SYN-ACK comes again.
            // Data starts at x + 2 until the server shows it expects x + 1.
            self.irs = n;
            let (two, one) = (self.isn.plus(2), ours_plus_one);
            self.handshake_acks = vec![
                Segment::ack(two, two).with_filler(filler.clone()),
                Segment::ack(one, one).with_filler(filler),
            ];
            self.tie(two);
            self.snd_first = vec![
                Start {
                    seq: two,
                    ack_consumes: Some(true),
                    counter: None,
                },
                Start {
                    seq: one,
                    ack_consumes: Some(false),
                    counter: Some(Counter::Shared),
                },
            ];
            self.rcv_alts = vec![one];
        }
        self.send_handshake_acks(false);
        self.set_state(State::Established);
        self.push_next(now);
    }

    /// Sends our handshake ACK: to the per-connection port, and (for the
    /// listen-ack reading, or when the SYN-ACK came again and we do not know
    /// where the server reads, or which number it wants) every candidate ACK
    /// to the listening address too.
    fn send_handshake_acks(&mut self, again: bool) {
        let count = if again { self.handshake_acks.len() } else { 1 };
        self.send_handshake_ack_range(0, count, again);
    }

    /// For a server silent to our first data, which may wait for another
    /// handshake ACK than the one it got, reading nothing else (and so never
    /// timing out to send its SYN-ACK again while our data keeps coming):
    /// the candidates with other numbers than the seed's, to both addresses,
    /// and the seed's to the listening address only (where the listen-ack
    /// readings read it). The seed's does not go again to the server's port:
    /// its loss there is the seed's edge case, which our data must answer.
    pub(super) fn send_other_handshake_acks(&mut self) {
        let acks = self.handshake_acks.clone();
        for (i, ack) in acks.into_iter().enumerate() {
            if i > 0 {
                self.transmit(ack.clone());
            }
            self.transmit_to_listener(ack);
        }
    }

    fn send_handshake_ack_range(&mut self, from: usize, to: usize, again: bool) {
        let listen_ack = self.dialect.ack_to_listener();
        let (to_peer, to_listener) = if self.dialect.is_forced() {
            (!listen_ack, listen_ack)
        } else {
            (true, listen_ack || again)
        };
        // The first ACK at first; every candidate once the SYN-ACK came again.
        let acks = self
            .handshake_acks
            .get(from..to)
            .unwrap_or_default()
            .to_vec();
        for ack in acks {
            if to_peer {
                self.transmit(ack.clone());
            }
            if to_listener {
                self.transmit_to_listener(ack);
            }
        }
    }

    /// A SYN-ACK after the handshake: our ACK was lost (or went where the
    /// server does not read): send it again, to both addresses.
    pub(super) fn on_stale_syn_ack(&mut self, seg: Segment) {
        if self.handshake_acks.is_empty() {
            self.ignore(seg, Ignore::SynAckOnServerSide);
            return;
        }
        self.stats.duplicates += 1;
        if !self.dialect.ack_to_listener()
            && let Some(l) = self.dialect.observe_ack_to_listener()
        {
            self.learned(l, &seg);
        }
        self.note(Note::Duplicate {
            got: seg,
            answer: Answer::HandshakeAck,
        });
        self.send_handshake_acks(true);
    }

    pub(super) fn on_syn_received(&mut self, now: Instant, seg: Segment) {
        match seg.kind() {
            Kind::Syn if seg.seq == self.irs => self.answer_duplicate_syn(seg),
            Kind::Ack => {
                let Some(starts) = self.handshake_acked_by(seg.ack) else {
                    self.ignore(seg, Ignore::WaitingForHandshakeAck);
                    return;
                };
                self.acknowledged(self.snd_nxt);
                if starts.len() == 1
                    && starts[0].ack_consumes.is_some()
                    && let Some(l) = self
                        .dialect
                        .set_ack_consumes(starts[0].ack_consumes == Some(true))
                {
                    self.learned(l, &seg);
                }
                self.expect_first(starts);
                self.set_state(State::Established);
                self.push_next(now);
            }
            Kind::Data | Kind::Fin => {
                // The seed's edge case: the handshake ACK was lost and the
                // client went on; its first segment stands for the ACK and is kept.
                let starts = self.first_starts_after_lost_ack();
                if !starts.iter().any(|s| s.seq == seg.seq) {
                    self.ignore(seg, Ignore::WaitingForHandshakeAck);
                    return;
                }
                self.note(Note::ImplicitAck(seg.clone()));
                self.acknowledged(self.snd_nxt);
                self.expect_first(starts);
                self.set_state(State::Established);
                self.on_synchronized(now, seg);
                self.push_next(now);
            }
            _ => self.ignore(seg, Ignore::WaitingForHandshakeAck),
        }
    }

    /// If `ack` acknowledges our SYN-ACK, where the client's data may start.
    fn handshake_acked_by(&self, ack: Seq) -> Option<Vec<Start>> {
        let (x1, x2) = (self.irs.plus(1), self.irs.plus(2));
        if self.cfg.format == crate::wire::Format::Binary {
            return (ack == self.snd_nxt).then(|| vec![start(x1, None, Some(Counter::PerSide))]);
        }
        let r = self.dialect.reading();
        if self.dialect.is_forced() {
            return match r.counter {
                Counter::PerSide => {
                    (ack == self.snd_nxt).then(|| vec![start(x1, None, Some(Counter::PerSide))])
                }
                Counter::Shared if r.ack_consumes => {
                    (ack == x2).then(|| vec![start(x2, Some(true), None)])
                }
                Counter::Shared => (ack == x1).then(|| vec![start(x1, Some(false), None)]),
            };
        }
        if ack == x2 {
            // The seed's (data from x+2), or own-isn taking our x+1 for our
            // own number (data from x+1).
            Some(vec![
                start(x2, Some(true), Some(Counter::Shared)),
                start(x1, None, Some(Counter::PerSide)),
            ])
        } else if ack == x1 {
            Some(vec![start(x1, Some(false), Some(Counter::Shared))])
        } else {
            None
        }
    }

    /// Where the first data may start when the handshake ACK never came.
    fn first_starts_after_lost_ack(&self) -> Vec<Start> {
        let (x1, x2) = (self.irs.plus(1), self.irs.plus(2));
        if self.cfg.format == crate::wire::Format::Binary {
            return vec![start(x1, None, Some(Counter::PerSide))];
        }
        let r = self.dialect.reading();
        if self.dialect.is_forced() {
            return match r.counter {
                Counter::PerSide => vec![start(x1, None, Some(Counter::PerSide))],
                Counter::Shared if r.ack_consumes => vec![start(x2, Some(true), None)],
                Counter::Shared => vec![start(x1, Some(false), None)],
            };
        }
        vec![
            start(x2, Some(true), Some(Counter::Shared)),
            start(x1, Some(false), None),
        ]
    }

    /// The peer's first data may start at any of `starts`: the first is the guess.
    fn expect_first(&mut self, starts: Vec<Start>) {
        let Some(first) = starts.first() else { return };
        self.rcv_nxt = first.seq;
        self.rcv_alts = starts.iter().skip(1).map(|s| s.seq).collect();
        self.follow_peer(first.seq);
        self.rcv_first = if starts.len() > 1 || starts[0].counter.is_some() {
            starts
        } else {
            Vec::new()
        };
    }

    /// What the first data's start teaches, once it came.
    pub(super) fn learn_first_start(&mut self, seq: Seq, seg: &Segment) {
        let Some(s) = self.rcv_first.iter().find(|s| s.seq == seq).copied() else {
            return;
        };
        // A client not sure of its start may try x + 1 and x + 2 in turn: a
        // copy of this segment at the other one is this segment again.
        let others: Vec<Seq> =
            if self.dialect.is_forced() || self.cfg.format == crate::wire::Format::Binary {
                Vec::new()
            } else {
                [self.irs.plus(1), self.irs.plus(2)]
                    .into_iter()
                    .filter(|o| *o != seq)
                    .collect()
            };
        if !others.is_empty() && !seg.data.is_empty() {
            self.rcv_first_taken = Some((others, seg.data.clone()));
        }
        self.rcv_first.clear();
        self.settle_start(s, seg);
        self.own_numbers_from_syn_ack();
    }

    pub(super) fn answer_duplicate_syn(&mut self, seg: Segment) {
        self.stats.duplicates += 1;
        self.note(Note::Duplicate {
            got: seg,
            answer: Answer::SameSynAck,
        });
        if let Some(synack) = self.synack.clone() {
            self.transmit(synack);
        }
    }
}

fn start(seq: Seq, ack_consumes: Option<bool>, counter: Option<Counter>) -> Start {
    Start {
        seq,
        ack_consumes,
        counter,
    }
}
