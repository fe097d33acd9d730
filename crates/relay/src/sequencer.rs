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
//!   the events after it: no gap, no duplicate;
//! - identities come from the server only (hostile input: a `Hello` that named
//!   another client's id took its place, and one near `u64::MAX` wrapped the id
//!   counter onto live clients): a new client gets the next id (never reused,
//!   never wrapping) and a secret token the caller drew at random; resuming
//!   takes both. Two clients may share a name, but the later one is shown
//!   marked (`alice#2`), so no one can pass for another;
//! - what is kept is bounded by [`Limits`] whatever the acknowledgements (a
//!   client that vanished without `Leave` pinned every event in memory): past
//!   `max_events` or `max_bytes` the oldest go, and a client whose resume point
//!   went with them is told where history starts now.

use std::collections::{HashMap, VecDeque};

pub use crate::proto::Event;
use crate::proto::{Kind, Message};

/// `s` cut to at most `max` bytes, at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl Event {
    /// The `Deliver` message for this event.
    pub fn deliver(&self) -> Message {
        Message::Deliver(self.clone())
    }
}

impl Event {
    /// Bytes this event holds in memory, roughly (its texts and a fixed part).
    pub fn weight(&self) -> usize {
        64 + self.name.len() + self.text.len()
    }
}

#[derive(Debug, Clone)]
struct Client {
    name: String,
    token: u128,
    acked: u64,
    last_sender_seq: u64,
    online: bool,
    /// It said `Leave`: its position no longer holds events back.
    left: bool,
}

/// What the sequencer keeps, at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The last events a new client gets (kept even when everyone acked them).
    pub history: usize,
    /// Events kept in all, acknowledged or not.
    pub max_events: usize,
    /// Bytes of events kept in all (see [`Event::weight`]).
    pub max_bytes: usize,
}

impl Limits {
    /// `history` events for new clients; at most 100,000 events and 64 MiB.
    pub fn new(history: usize) -> Self {
        Self {
            history,
            max_events: 100_000,
            max_bytes: 64 << 20,
        }
    }
}

/// What a hello gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The client's id (given now if it had none).
    pub client_id: u64,
    /// Its resume secret.
    pub token: u128,
    /// Its name as others see it (marked if another client has it).
    pub name: String,
    /// A new client (not a resume).
    pub new: bool,
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
    /// No such client, or not its token: only the server gives ids.
    Unknown,
    /// Every id has been given (after 2^64 − 1 clients).
    NoIds,
}

/// The sequencer state. See the module docs.
#[derive(Debug)]
pub struct Sequencer {
    next_seq: u64,
    log: VecDeque<Event>,
    /// Sum of the kept events' weights.
    bytes: usize,
    limits: Limits,
    clients: HashMap<u64, Client>,
    /// Shown names of known clients, to mark a taken one in constant time.
    names: HashMap<String, u64>,
    /// Per name, the next mark worth trying (`name#k`).
    marks: HashMap<String, u64>,
    next_client_id: u64,
}

/// A client as a durable log remembers it (the log's client record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownClient {
    /// Its id.
    pub id: u64,
    /// Its resume secret.
    pub token: u128,
    /// Its name as others see it.
    pub name: String,
}

impl Sequencer {
    /// A sequencer that keeps what `limits` allow.
    pub fn new(limits: Limits) -> Self {
        Self {
            next_seq: 1,
            log: VecDeque::new(),
            bytes: 0,
            limits,
            clients: HashMap::new(),
            names: HashMap::new(),
            marks: HashMap::new(),
            next_client_id: 1,
        }
    }

    /// A sequencer rebuilt from a durable log, in order: the clients it gave
    /// ids to (with their tokens) and the events. Numbering continues after the
    /// last event and ids after the last client; every client is known again
    /// (offline, with its last sequenced `sender_seq`, so a retry after the
    /// restart is still recognised) and may resume with its token; the events
    /// are kept for history and resume, within the limits.
    pub fn restore(
        limits: Limits,
        clients: impl IntoIterator<Item = KnownClient>,
        events: impl IntoIterator<Item = Event>,
    ) -> Self {
        let mut s = Self::new(limits);
        for k in clients {
            s.next_client_id = s.next_client_id.max(k.id.saturating_add(1));
            s.names.insert(k.name.clone(), k.id);
            s.clients.insert(
                k.id,
                Client {
                    name: k.name,
                    token: k.token,
                    acked: 0,
                    last_sender_seq: 0,
                    online: false,
                    left: false,
                },
            );
        }
        for e in events {
            s.next_seq = e.seq + 1;
            // Events name clients the log has no record of only if the log is
            // from before tokens: they are known, but cannot resume (token 0).
            let c = s.clients.entry(e.origin).or_insert_with(|| Client {
                name: e.name.clone(),
                token: 0,
                acked: 0,
                last_sender_seq: 0,
                online: false,
                left: false,
            });
            c.acked = c.acked.max(e.seq.saturating_sub(1));
            if e.kind == Kind::Chat {
                c.last_sender_seq = c.last_sender_seq.max(e.sender_seq);
            }
            s.bytes += e.weight();
            s.log.push_back(e);
        }
        s.trim();
        s
    }

    /// Bytes of events kept now (see [`Event::weight`]).
    pub fn kept_bytes(&self) -> usize {
        self.bytes
    }

    /// `name`, or `name#2`, `name#3`... if another known client has it.
    /// Marks already given are skipped from a per-name hint, so a thousand
    /// clients with one name cost a thousand look-ups, not a million.
    fn unique_name(&mut self, name: &str) -> String {
        if !self.names.contains_key(name) {
            return name.to_string();
        }
        let mut k = self.marks.get(name).copied().unwrap_or(2);
        loop {
            let candidate = format!("{name}#{k}");
            k += 1;
            if !self.names.contains_key(&candidate) {
                self.marks.insert(name.to_string(), k);
                return candidate;
            }
        }
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
            name: cut(name, crate::proto::MAX_NAME).to_string(),
            text: cut(text, crate::proto::MAX_TEXT).to_string(),
        };
        self.next_seq += 1;
        self.bytes += e.weight();
        self.log.push_back(e.clone());
        self.trim_over();
        e
    }

    /// Discards the oldest events past the limits (cheap: run on every event).
    fn trim_over(&mut self) {
        while self.log.len() > self.limits.max_events || self.bytes > self.limits.max_bytes {
            let Some(front) = self.log.pop_front() else {
                break;
            };
            self.bytes -= front.weight();
        }
    }

    /// A client says hello: `client_id` 0 (and `token` 0) for a new one, or
    /// the id and token the server gave it to resume; `resume_from` is the
    /// last sequence number it delivered (0 if none). `new_token` is the
    /// secret a new client gets: the caller draws it at random (this core has
    /// no randomness of its own).
    pub fn hello(
        &mut self,
        client_id: u64,
        token: u128,
        resume_from: u64,
        name: &str,
        new_token: u128,
    ) -> Result<Joined, Refusal> {
        let last = self.next_seq - 1;
        if resume_from > last {
            return Err(Refusal::Ahead { last });
        }
        let new = client_id == 0;
        if !new {
            // An unknown id and a wrong token get the same answer: nothing
            // tells a prober which ids exist.
            let c = self.clients.get(&client_id).ok_or(Refusal::Unknown)?;
            if c.token == 0 || c.token != token {
                return Err(Refusal::Unknown);
            }
            if c.online {
                return Err(Refusal::AlreadyOnline);
            }
        }
        let replay: Vec<Event> = if resume_from > 0 || !new {
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
            let skip = self.log.len().saturating_sub(self.limits.history);
            self.log.iter().skip(skip).cloned().collect()
        };
        let acked = replay.first().map_or(last, |e| e.seq - 1);
        let (client_id, token, name) = if new {
            let id = self.next_client_id;
            self.next_client_id = id.checked_add(1).ok_or(Refusal::NoIds)?;
            let shown = self.unique_name(name);
            self.names.insert(shown.clone(), id);
            self.clients.insert(
                id,
                Client {
                    name: shown.clone(),
                    token: new_token,
                    acked,
                    last_sender_seq: 0,
                    online: true,
                    left: false,
                },
            );
            (id, new_token, shown)
        } else {
            let c = self.clients.get_mut(&client_id).ok_or(Refusal::Unknown)?;
            c.online = true;
            c.left = false;
            c.acked = c.acked.max(acked);
            (client_id, c.token, c.name.clone())
        };
        let join = self.push(Kind::Join, client_id, 0, &name, "");
        Ok(Joined {
            client_id,
            token,
            name,
            new,
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

    /// A chat line from a client that names itself per line (the original
    /// chat's `name: text`): the event carries `name`, and the client goes by
    /// it from now on (its leave says it). No retry detection: the original
    /// never resends a line; `sender_seq` only numbers them.
    pub fn chat_named(
        &mut self,
        client_id: u64,
        sender_seq: u64,
        name: &str,
        text: &str,
    ) -> Option<Event> {
        let c = self.clients.get_mut(&client_id)?;
        c.last_sender_seq = sender_seq;
        if c.name != name {
            c.name = name.to_string();
        }
        Some(self.push(Kind::Chat, client_id, sender_seq, name, text))
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

    /// The client said `Leave`: its position no longer holds events back. It
    /// keeps its id, token and name: if it comes back, it resumes while history
    /// still reaches its position, and is told where history starts otherwise.
    pub fn forget(&mut self, client_id: u64) {
        if let Some(c) = self.clients.get_mut(&client_id) {
            c.left = true;
        }
        self.trim();
    }

    /// The last sequence number `client_id` acknowledged.
    pub fn acked(&self, client_id: u64) -> Option<u64> {
        self.clients.get(&client_id).map(|c| c.acked)
    }

    /// Discards events every known client has acknowledged, keeping the last
    /// `history` ones; and whatever is past the limits, acknowledged or not.
    fn trim(&mut self) {
        let floor = self
            .clients
            .values()
            .filter(|c| !c.left)
            .map(|c| c.acked)
            .min()
            .unwrap_or(self.next_seq - 1);
        while self.log.len() > self.limits.history
            && self.log.front().is_some_and(|e| e.seq <= floor)
        {
            if let Some(front) = self.log.pop_front() {
                self.bytes -= front.weight();
            }
        }
        self.trim_over();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(events: &[Event]) -> Vec<u64> {
        events.iter().map(|e| e.seq).collect()
    }

    /// A new client named `name`; its token is derived from the name here.
    fn join(s: &mut Sequencer, name: &str) -> Joined {
        s.hello(0, 0, 0, name, 0xfeed ^ name.len() as u128).unwrap()
    }

    fn limits(history: usize) -> Limits {
        Limits::new(history)
    }

    #[test]
    fn joins_chats_and_leaves_share_one_gap_free_sequence() {
        let mut s = Sequencer::new(limits(10));
        let a = join(&mut s, "ana");
        let b = join(&mut s, "luis");
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
        let mut s = Sequencer::new(limits(10));
        let id = join(&mut s, "ana").client_id;
        assert!(s.chat(id, 1, "one").is_some());
        assert!(s.chat(id, 1, "one").is_none(), "same sender_seq: a retry");
        assert!(s.chat(id, 2, "two").is_some());
        assert!(s.chat(id, 1, "one").is_none(), "older: a retry");
        assert!(s.chat(99, 1, "x").is_none(), "unknown client");
        assert_eq!(s.next_seq(), 4);
    }

    #[test]
    fn a_late_joiner_gets_the_last_n() {
        let mut s = Sequencer::new(limits(3));
        let id = join(&mut s, "ana").client_id;
        for i in 1..=10 {
            s.chat(id, i, &format!("m{i}"));
        }
        let late = join(&mut s, "late");
        assert_eq!(seqs(&late.replay), vec![9, 10, 11]);
    }

    #[test]
    fn resume_gets_exactly_what_came_after_no_gap_no_duplicate() {
        let mut s = Sequencer::new(limits(0));
        let a = join(&mut s, "ana").client_id;
        let lj = join(&mut s, "luis");
        let (b, tb) = (lj.client_id, lj.token);
        s.chat(a, 1, "1");
        s.ack(b, 3);
        s.disconnected(b, "network");
        for i in 2..=5 {
            s.chat(a, i, "x");
        }
        // b delivered up to 3 before it went.
        let back = s.hello(b, tb, 3, "luis", 0).unwrap();
        // 4 is b's own leave, 5..=8 what a said meanwhile.
        assert_eq!(seqs(&back.replay), vec![4, 5, 6, 7, 8]);
        assert_eq!(back.join.seq, 9);
        assert_eq!(s.hello(b, tb, 3, "luis", 0), Err(Refusal::AlreadyOnline));
        assert_eq!(s.hello(0, 0, 99, "x", 1), Err(Refusal::Ahead { last: 9 }));
    }

    #[test]
    fn events_are_kept_until_every_resumable_client_acked_them() {
        let mut s = Sequencer::new(limits(2));
        let a = join(&mut s, "ana").client_id;
        let lj = join(&mut s, "luis");
        let (b, tb) = (lj.client_id, lj.token);
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
        s.disconnected(b, "left");
        s.forget(b);
        assert_eq!(s.kept(), 2, "only the history is left");
        // A client that left and comes back from before what is kept is told so.
        assert_eq!(
            s.hello(b, tb, 10, "luis", 0),
            Err(Refusal::TooOld { oldest: 102 })
        );
    }

    #[test]
    fn a_restored_sequencer_continues_the_numbers_and_still_knows_retries() {
        let mut s = Sequencer::new(limits(10));
        let aj = join(&mut s, "ana");
        let (a, ta) = (aj.client_id, aj.token);
        s.chat(a, 1, "one");
        s.chat(a, 2, "two");
        s.disconnected(a, "server stopping");
        let saved: Vec<Event> = s.events().cloned().collect();
        let known = KnownClient {
            id: a,
            token: ta,
            name: "ana".into(),
        };
        let mut r = Sequencer::restore(limits(10), [known], saved.clone());
        assert_eq!(r.next_seq(), 5);
        assert_eq!(
            r.hello(a, ta ^ 1, 3, "ana", 0),
            Err(Refusal::Unknown),
            "the token survives"
        );
        let back = r.hello(a, ta, 3, "ana", 0).unwrap();
        assert_eq!(seqs(&back.replay), vec![4]);
        assert_eq!(back.join.seq, 5);
        assert!(
            r.chat(a, 2, "two").is_none(),
            "a retry after the restart is recognised"
        );
        assert_eq!(r.chat(a, 3, "three").unwrap().seq, 6);
        let late = join(&mut r, "late");
        assert_ne!(late.client_id, a, "ids continue too");
        assert_eq!(
            late.replay.first().map(|e| e.seq),
            Some(1),
            "history survived"
        );
    }

    #[test]
    fn ids_come_from_the_server_only_and_resume_takes_the_token() {
        let mut s = Sequencer::new(limits(10));
        let a = join(&mut s, "ana");
        s.disconnected(a.client_id, "network");
        // Another client cannot resume as ana: not without her token, and
        // not by naming an id of its own choosing.
        assert_eq!(s.hello(a.client_id, 0, 0, "x", 5), Err(Refusal::Unknown));
        assert_eq!(
            s.hello(a.client_id, a.token ^ 1, 0, "x", 5),
            Err(Refusal::Unknown)
        );
        assert_eq!(s.hello(u64::MAX - 1, 0, 0, "x", 5), Err(Refusal::Unknown));
        // A huge id asked for does not move the counter.
        let b = join(&mut s, "luis");
        assert_eq!(b.client_id, a.client_id + 1);
        assert!(b.new);
        let back = s.hello(a.client_id, a.token, 1, "ignored", 0).unwrap();
        assert_eq!(
            (back.client_id, back.token, back.name.as_str(), back.new),
            (a.client_id, a.token, "ana", false)
        );
    }

    #[test]
    fn the_id_counter_refuses_instead_of_wrapping() {
        let mut s = Sequencer::new(limits(10));
        s.next_client_id = u64::MAX;
        assert_eq!(s.hello(0, 0, 0, "last", 1), Err(Refusal::NoIds));
        assert_eq!(s.next_client_id, u64::MAX, "never wraps onto live ids");
    }

    #[test]
    fn a_shared_name_is_marked_for_the_later_client() {
        let mut s = Sequencer::new(limits(10));
        let a = join(&mut s, "alice");
        let b = join(&mut s, "alice");
        let c = join(&mut s, "alice");
        assert_eq!(
            (a.name.as_str(), b.name.as_str(), c.name.as_str()),
            ("alice", "alice#2", "alice#3")
        );
        assert_eq!(b.join.name, "alice#2", "others see the mark");
        let m = s.chat(b.client_id, 1, "hi").unwrap();
        assert_eq!(m.name, "alice#2");
        // A name that looks marked is marked too if taken.
        let d = join(&mut s, "alice#2");
        assert_eq!(d.name, "alice#2#2");
    }

    #[test]
    fn history_is_bounded_by_count_and_bytes_even_if_nobody_acks() {
        let mut s = Sequencer::new(Limits {
            history: 10,
            max_events: 50,
            max_bytes: 1 << 30,
        });
        let a = join(&mut s, "ana");
        let _silent = join(&mut s, "gone"); // never acks: it used to pin everything
        for i in 1..=1000 {
            s.chat(a.client_id, i, "x");
        }
        assert_eq!(s.kept(), 50);
        let mut s = Sequencer::new(Limits {
            history: 10,
            max_events: 1_000_000,
            max_bytes: 100_000,
        });
        let a = join(&mut s, "ana");
        let g = join(&mut s, "gone");
        s.disconnected(g.client_id, "vanished");
        let big = "y".repeat(60_000);
        for i in 1..=100 {
            s.chat(a.client_id, i, &big);
        }
        assert!(s.kept_bytes() <= 100_000, "{}", s.kept_bytes());
        assert_eq!(s.kept(), 1);
        // The vanished client's resume point went: it is told where history starts.
        let oldest = s.events().next().unwrap().seq;
        assert_eq!(
            s.hello(g.client_id, g.token, 2, "gone", 0),
            Err(Refusal::TooOld { oldest })
        );
    }

    proptest::proptest! {
        /// Random joins, chats (with retries), acks and disconnects: the
        /// sequence stays gap-free and every resume replays a contiguous run.
        #[test]
        fn invariants_hold_under_any_interleaving(ops in proptest::collection::vec((0u8..5, 0u64..4, 0u64..6), 1..300)) {
            let mut s = Sequencer::new(limits(5));
            let mut all: Vec<Event> = Vec::new();
            let mut delivered: HashMap<u64, u64> = HashMap::new();
            let mut known: HashMap<u64, u128> = HashMap::new();
            for (op, who, n) in ops {
                let id = who + 1;
                match op {
                    0 => {
                        let resume = delivered.get(&id).copied().unwrap_or(0);
                        let (cid, tok) = known.get(&id).map_or((0, 0), |t| (id, *t));
                        if let Ok(j) = s.hello(cid, tok, resume, "c", u128::from(id) << 64 | 7) {
                            let expect: Vec<u64> = if known.contains_key(&id) {
                                (resume + 1..j.join.seq).collect()
                            } else { seqs(&j.replay) };
                            proptest::prop_assert_eq!(seqs(&j.replay), expect);
                            known.insert(j.client_id, j.token);
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

    #[test]
    fn every_event_fits_a_frame_whatever_its_sender_sent() {
        use bytes::BytesMut;
        use tokio_util::codec::Decoder;
        let mut s = Sequencer::new(Limits::new(10));
        let long_name = "ñ".repeat(400);
        let j = s.hello(0, 0, 0, &long_name, 7).unwrap();
        let line = "é".repeat(40_000);
        for e in [
            j.join,
            s.chat(j.client_id, 1, &line).unwrap(),
            s.chat_named(j.client_id, 2, &long_name, &line).unwrap(),
        ] {
            assert!(
                e.name.len() <= crate::proto::MAX_NAME && e.text.len() <= crate::proto::MAX_TEXT
            );
            let mut b = BytesMut::new();
            e.deliver().encode(&mut b);
            let back = crate::proto::Codec.decode(&mut b).unwrap().unwrap();
            assert_eq!(back, e.deliver(), "decodes whole, cut at a character");
        }
    }
}
