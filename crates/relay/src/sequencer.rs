//! The sequencer (spec: relay.md, "Guarantees"), sans-IO: the single place that
//! gives sequence numbers, so order is total and gap-free by construction.
//!
//! - every chat, join and leave becomes an [`Event`] with the next number;
//! - a chat carries `(client, sender_seq)`; a `sender_seq` not above the last one
//!   sequenced for that client is a retry and is not sequenced again;
//! - each client's cumulative acknowledgement is kept; events are discarded only
//!   below the lowest acknowledgement of the clients that may still resume, and
//!   never the last `history` events, which a new client gets before live
//!   traffic;
//! - a client resuming from the last sequence number it delivered gets exactly
//!   the events after it: no gap, no duplicate.

use std::collections::{HashMap, VecDeque};

use crate::proto::{Kind, Message};

/// One sequenced event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Global sequence number, from 1, gap-free.
    pub seq: u64,
    /// Chat, join or leave.
    pub kind: Kind,
    /// The client it is about.
    pub origin: u64,
    /// The sender's own counter, for a chat (0 otherwise).
    pub sender_seq: u64,
    /// Who.
    pub name: String,
    /// What was said (or why they left).
    pub text: String,
}

impl Event {
    /// The `Deliver` message for this event.
    pub fn deliver(&self) -> Message {
        Message::Deliver {
            seq: self.seq,
            kind: self.kind,
            origin: self.origin,
            sender_seq: self.sender_seq,
            name: self.name.clone(),
            text: self.text.clone(),
        }
    }
}

#[derive(Debug, Clone)]
struct Client {
    name: String,
    acked: u64,
    last_sender_seq: u64,
    online: bool,
}

/// What a hello gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The client's id (given now if it had none).
    pub client_id: u64,
    /// Events to deliver before live traffic: history for a new client, or
    /// everything after its resume point for a returning one.
    pub replay: Vec<Event>,
    /// The join event itself (delivered live, to everyone).
    pub join: Event,
}

/// Why a hello was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The resume point is older than what the server still has.
    TooOld {
        /// First sequence number still kept.
        oldest: u64,
    },
    /// The resume point is in the future.
    Ahead {
        /// Last sequence number given.
        last: u64,
    },
    /// That client is connected already.
    AlreadyOnline,
}

/// The sequencer state. See the module docs.
#[derive(Debug)]
pub struct Sequencer {
    next_seq: u64,
    log: VecDeque<Event>,
    history: usize,
    clients: HashMap<u64, Client>,
    next_client_id: u64,
}

impl Sequencer {
    /// A sequencer that always keeps the last `history` events for new clients.
    pub fn new(history: usize) -> Self {
        Self {
            next_seq: 1,
            log: VecDeque::new(),
            history,
            clients: HashMap::new(),
            next_client_id: 1,
        }
    }

    /// A sequencer rebuilt from the events of a durable log, in order: numbering
    /// continues after the last one, every client seen is known again (offline,
    /// with its last sequenced `sender_seq`, so a retry after the restart is
    /// still recognised), and the events are kept for history and resume.
    pub fn restore(history: usize, events: impl IntoIterator<Item = Event>) -> Self {
        let mut s = Self::new(history);
        for e in events {
            s.next_seq = e.seq + 1;
            s.next_client_id = s.next_client_id.max(e.origin + 1);
            let c = s.clients.entry(e.origin).or_insert_with(|| Client {
                name: e.name.clone(),
                acked: e.seq.saturating_sub(1),
                last_sender_seq: 0,
                online: false,
            });
            c.name.clone_from(&e.name);
            if e.kind == Kind::Chat {
                c.last_sender_seq = c.last_sender_seq.max(e.sender_seq);
            }
            s.log.push_back(e);
        }
        s
    }

    /// Every event kept, oldest first.
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.log.iter()
    }

    /// The number the next event will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Events kept now.
    pub fn kept(&self) -> usize {
        self.log.len()
    }

    fn push(&mut self, kind: Kind, origin: u64, sender_seq: u64, name: &str, text: &str) -> Event {
        let e = Event {
            seq: self.next_seq,
            kind,
            origin,
            sender_seq,
            name: name.to_string(),
            text: text.to_string(),
        };
        self.next_seq += 1;
        self.log.push_back(e.clone());
        e
    }

    /// A client says hello: `client_id` 0 for a new one, `resume_from` the last
    /// sequence number it delivered (0 if none).
    pub fn hello(
        &mut self,
        client_id: u64,
        resume_from: u64,
        name: &str,
    ) -> Result<Joined, Refusal> {
        let last = self.next_seq - 1;
        if resume_from > last {
            return Err(Refusal::Ahead { last });
        }
        let known = client_id != 0 && self.clients.contains_key(&client_id);
        if known && self.clients.get(&client_id).is_some_and(|c| c.online) {
            return Err(Refusal::AlreadyOnline);
        }
        let replay: Vec<Event> = if resume_from > 0 || known {
            let oldest = self.log.front().map_or(self.next_seq, |e| e.seq);
            if resume_from + 1 < oldest {
                return Err(Refusal::TooOld { oldest });
            }
            self.log
                .iter()
                .filter(|e| e.seq > resume_from)
                .cloned()
                .collect()
        } else {
            let skip = self.log.len().saturating_sub(self.history);
            self.log.iter().skip(skip).cloned().collect()
        };
        let client_id = if client_id == 0 {
            let id = self.next_client_id;
            self.next_client_id += 1;
            id
        } else {
            self.next_client_id = self.next_client_id.max(client_id + 1);
            client_id
        };
        let acked = replay.first().map_or(last, |e| e.seq - 1);
        let entry = self.clients.entry(client_id).or_insert_with(|| Client {
            name: name.to_string(),
            acked,
            last_sender_seq: 0,
            online: true,
        });
        entry.online = true;
        entry.name = name.to_string();
        entry.acked = entry.acked.max(acked);
        let join = self.push(Kind::Join, client_id, 0, name, "");
        Ok(Joined {
            client_id,
            replay,
            join,
        })
    }

    /// A chat line from `client_id`; `None` if it is a retry already sequenced
    /// (or the client is unknown).
    pub fn chat(&mut self, client_id: u64, sender_seq: u64, text: &str) -> Option<Event> {
        let c = self.clients.get_mut(&client_id)?;
        if sender_seq <= c.last_sender_seq {
            return None;
        }
        c.last_sender_seq = sender_seq;
        let name = c.name.clone();
        Some(self.push(Kind::Chat, client_id, sender_seq, &name, text))
    }

    /// The client delivered everything up to `seq`.
    pub fn ack(&mut self, client_id: u64, seq: u64) {
        let last = self.next_seq - 1;
        if let Some(c) = self.clients.get_mut(&client_id) {
            c.acked = c.acked.max(seq.min(last));
        }
        self.trim();
    }

    /// The client's connection ended (it may resume): a leave event.
    pub fn disconnected(&mut self, client_id: u64, reason: &str) -> Option<Event> {
        let c = self.clients.get_mut(&client_id)?;
        if !c.online {
            return None;
        }
        c.online = false;
        let name = c.name.clone();
        Some(self.push(Kind::Leave, client_id, 0, &name, reason))
    }

    /// The client left for good: it will not resume, so its position no longer
    /// holds events back.
    pub fn forget(&mut self, client_id: u64) {
        self.clients.remove(&client_id);
        self.trim();
    }

    /// The last sequence number `client_id` acknowledged.
    pub fn acked(&self, client_id: u64) -> Option<u64> {
        self.clients.get(&client_id).map(|c| c.acked)
    }

    /// Discards events every known client has acknowledged, keeping the last
    /// `history` ones.
    fn trim(&mut self) {
        let floor = self
            .clients
            .values()
            .map(|c| c.acked)
            .min()
            .unwrap_or(self.next_seq - 1);
        while self.log.len() > self.history && self.log.front().is_some_and(|e| e.seq <= floor) {
            self.log.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(events: &[Event]) -> Vec<u64> {
        events.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn joins_chats_and_leaves_share_one_gap_free_sequence() {
        let mut s = Sequencer::new(10);
        let a = s.hello(0, 0, "ana").unwrap();
        let b = s.hello(0, 0, "luis").unwrap();
        assert_eq!((a.client_id, b.client_id), (1, 2));
        assert_eq!((a.join.seq, b.join.seq), (1, 2));
        assert_eq!(b.replay, vec![a.join.clone()], "history for the new client");
        let m = s.chat(1, 1, "hola").unwrap();
        assert_eq!(
            (m.origin, m.sender_seq),
            (1, 1),
            "a sender can recognise its own line"
        );
        let l = s.disconnected(2, "bye").unwrap();
        assert_eq!((m.seq, l.seq, l.kind), (3, 4, Kind::Leave));
        assert_eq!(s.next_seq(), 5);
    }

    #[test]
    fn a_retried_message_is_sequenced_once() {
        let mut s = Sequencer::new(10);
        let id = s.hello(0, 0, "ana").unwrap().client_id;
        assert!(s.chat(id, 1, "one").is_some());
        assert!(s.chat(id, 1, "one").is_none(), "same sender_seq: a retry");
        assert!(s.chat(id, 2, "two").is_some());
        assert!(s.chat(id, 1, "one").is_none(), "older: a retry");
        assert!(s.chat(99, 1, "x").is_none(), "unknown client");
        assert_eq!(s.next_seq(), 4);
    }

    #[test]
    fn a_late_joiner_gets_the_last_n() {
        let mut s = Sequencer::new(3);
        let id = s.hello(0, 0, "ana").unwrap().client_id;
        for i in 1..=10 {
            s.chat(id, i, &format!("m{i}"));
        }
        let late = s.hello(0, 0, "late").unwrap();
        assert_eq!(seqs(&late.replay), vec![9, 10, 11]);
    }

    #[test]
    fn resume_gets_exactly_what_came_after_no_gap_no_duplicate() {
        let mut s = Sequencer::new(0);
        let a = s.hello(0, 0, "ana").unwrap().client_id;
        let b = s.hello(0, 0, "luis").unwrap().client_id;
        s.chat(a, 1, "1");
        s.ack(b, 3);
        s.disconnected(b, "network");
        for i in 2..=5 {
            s.chat(a, i, "x");
        }
        // b delivered up to 3 before it went.
        let back = s.hello(b, 3, "luis").unwrap();
        // 4 is b's own leave, 5..=8 what a said meanwhile.
        assert_eq!(seqs(&back.replay), vec![4, 5, 6, 7, 8]);
        assert_eq!(back.join.seq, 9);
        assert_eq!(s.hello(b, 3, "luis"), Err(Refusal::AlreadyOnline));
        assert_eq!(s.hello(0, 99, "x"), Err(Refusal::Ahead { last: 9 }));
    }

    #[test]
    fn events_are_kept_until_every_resumable_client_acked_them() {
        let mut s = Sequencer::new(2);
        let a = s.hello(0, 0, "ana").unwrap().client_id;
        let b = s.hello(0, 0, "luis").unwrap().client_id;
        for i in 1..=100 {
            s.chat(a, i, "x");
        }
        s.ack(a, 102);
        assert_eq!(
            s.kept(),
            102,
            "b acknowledged nothing yet: all 102 events are kept"
        );
        s.ack(b, 50);
        assert_eq!(s.kept(), 52);
        s.forget(b);
        assert_eq!(s.kept(), 2, "only the history is left");
        // A client resuming from before what is kept is told so.
        assert_eq!(s.hello(b, 10, "luis"), Err(Refusal::TooOld { oldest: 101 }));
    }

    #[test]
    fn a_restored_sequencer_continues_the_numbers_and_still_knows_retries() {
        let mut s = Sequencer::new(10);
        let a = s.hello(0, 0, "ana").unwrap().client_id;
        s.chat(a, 1, "one");
        s.chat(a, 2, "two");
        s.disconnected(a, "server stopping");
        let saved: Vec<Event> = s.events().cloned().collect();
        let mut r = Sequencer::restore(10, saved.clone());
        assert_eq!(r.next_seq(), 5);
        let back = r.hello(a, 3, "ana").unwrap();
        assert_eq!(seqs(&back.replay), vec![4]);
        assert_eq!(back.join.seq, 5);
        assert!(
            r.chat(a, 2, "two").is_none(),
            "a retry after the restart is recognised"
        );
        assert_eq!(r.chat(a, 3, "three").unwrap().seq, 6);
        let late = r.hello(0, 0, "late").unwrap();
        assert_ne!(late.client_id, a, "ids continue too");
        assert_eq!(
            late.replay.first().map(|e| e.seq),
            Some(1),
            "history survived"
        );
    }

    proptest::proptest! {
        /// Random joins, chats (with retries), acks and disconnects: the
        /// sequence stays gap-free and every resume replays a contiguous run.
        #[test]
        fn invariants_hold_under_any_interleaving(ops in proptest::collection::vec((0u8..5, 0u64..4, 0u64..6), 1..300)) {
            let mut s = Sequencer::new(5);
            let mut all: Vec<Event> = Vec::new();
            let mut delivered: HashMap<u64, u64> = HashMap::new();
            let mut known: HashMap<u64, bool> = HashMap::new();
            for (op, who, n) in ops {
                let id = who + 1;
                match op {
                    0 => {
                        let resume = delivered.get(&id).copied().unwrap_or(0);
                        if let Ok(j) = s.hello(if known.contains_key(&id) { id } else { 0 }, resume, "c") {
                            let expect: Vec<u64> = if known.contains_key(&id) {
                                (resume + 1..j.join.seq).collect()
                            } else { seqs(&j.replay) };
                            proptest::prop_assert_eq!(seqs(&j.replay), expect);
                            known.insert(j.client_id, true);
                            delivered.insert(j.client_id, j.join.seq);
                            all.push(j.join);
                        }
                    }
                    1 => if let Some(e) = s.chat(id, n, "t") { all.push(e) },
                    2 => s.ack(id, delivered.get(&id).copied().unwrap_or(0)),
                    3 => if let Some(e) = s.disconnected(id, "gone") { all.push(e) },
                    _ => {}
                }
            }
            let got = seqs(&all);
            let want: Vec<u64> = (1..=got.len() as u64).collect();
            proptest::prop_assert_eq!(got, want);
        }
    }
}
