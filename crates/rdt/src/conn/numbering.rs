//! The course header's one number, and how both directions share it
//! (`dialect.rs`, "counter"): with one shared counter (the seed's reading)
//! the two directions continue from the same number, so what one side
//! receives moves what it sends next; with one counter per side (`own-isn`)
//! each keeps its own. Every place the rule applies names it here, instead of
//! branching on the reading where it happens.

use super::Connection;
use crate::seq::Seq;

impl Connection {
    /// One counter for both directions (the reading, learned or forced).
    pub(super) fn shared(&self) -> bool {
        self.dialect.shared()
    }

    /// The shared counter: both directions continue from `n`.
    pub(super) fn tie(&mut self, n: Seq) {
        self.snd_una = n;
        self.snd_nxt = n;
        self.rcv_nxt = n;
        self.rcv_alts.clear();
        self.rcv_first.clear();
    }

    /// With a shared counter and nothing of ours in flight, our next number
    /// is the peer's: what we receive moves it.
    pub(super) fn follow_peer(&mut self, n: Seq) {
        if self.shared() && self.sender_idle() {
            self.snd_nxt = n;
            self.snd_una = n;
        }
    }

    /// With a shared counter and all of ours acknowledged (up to `n`), the
    /// peer's next number is ours.
    pub(super) fn peer_follows(&mut self, n: Seq) {
        if self.shared() && self.sender_idle() {
            self.rcv_nxt = n;
        }
    }

    /// The same, once the peer's FIN came: both directions end at `n`.
    pub(super) fn tie_at_peer_fin(&mut self, n: Seq) {
        if self.shared() && self.sender_idle() {
            self.tie(n);
        }
    }

    /// Our segment acknowledged up to `ack`: with a shared counter both
    /// directions go on from there, with ours alone only our next number.
    pub(super) fn after_our_ack(&mut self, ack: Seq) {
        if self.shared() {
            self.tie(ack);
        } else {
            self.snd_nxt = ack;
        }
    }

    /// Our first data now starts at `seq`: with a shared counter the peer's
    /// next number is there too.
    pub(super) fn first_data_from(&mut self, seq: Seq) {
        if self.shared() {
            self.rcv_nxt = seq;
        }
    }

    /// The peer's first data settled its start: with a counter per side,
    /// our own numbers go on from our SYN-ACK's.
    pub(super) fn own_numbers_from_syn_ack(&mut self) {
        if !self.shared() {
            self.snd_nxt = self.isn.plus(1);
            self.snd_una = self.snd_nxt;
        }
    }
}
