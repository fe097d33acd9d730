//! The receiving side of selective repeat (spec "Modes"): segments that
//! arrive ahead of the next expected number are kept, inside the receive
//! window, until the gap before them fills; each arrival is acknowledged with
//! the cumulative number and SACK blocks (RFC 2018: the block holding the
//! segment that just came first; then the blocks of the other segments that
//! came since the last ACK and the one before, so an ACK of a burst names
//! every block it made and one lost ACK hides none; then the lowest ones;
//! `Sack::MAX` at most).
//!
//! Keys are 64-bit stream offsets (the wrapping 32-bit number unrolled from
//! the next expected one), so ordering never depends on the wrap. Memory is
//! bounded by the window: a segment beyond it is dropped unacknowledged, and
//! each held piece counts its bookkeeping too ([`PIECE_COST`]), so a hostile
//! peer's one-byte segments cannot make the map cost many times the window.

use std::collections::BTreeMap;

use bytes::{Buf as _, Bytes};

use crate::segment::Sack;
use crate::seq::Seq;

/// What one held piece costs beyond its data (map node, `Bytes` handle),
/// counted against the receive buffer.
pub(crate) const PIECE_COST: usize = 64;

/// A segment that starts before `rcv_nxt` and ends after it (a peer that
/// sent again with other segment boundaries, or a larger MSS) keeps its new
/// part: the numbers it carries from `rcv_nxt` on. Others are unchanged.
/// Takes the data by value: a freshly decoded payload moves on without a
/// reference count made for it (a clone would allocate one per segment).
pub(crate) fn trim_old(rcv_nxt: Seq, seq: Seq, data: Bytes) -> (Seq, Bytes) {
    let behind = rcv_nxt.since(seq);
    if behind > 0 && (behind as usize) < data.len() {
        (rcv_nxt, tail(data, behind as usize))
    } else {
        (seq, data)
    }
}

/// `data` from `from` on. A part of less than half is copied out: a slice
/// keeps its whole buffer alive (a large datagram's is 64 KiB, see
/// `batch::Gro`), and a peer sending segments that overlap all but a byte of
/// what came before must not make each byte held cost a buffer.
fn tail(mut data: Bytes, from: usize) -> Bytes {
    let whole = data.len();
    data.advance(from);
    if 2 * data.len() < whole {
        Bytes::copy_from_slice(&data)
    } else {
        data
    }
}

#[derive(Debug, Default)]
pub(crate) struct Reassembly {
    /// Offset (from the stream's start) → data, every key past `next`.
    held: BTreeMap<u64, Bytes>,
    held_bytes: usize,
    /// Offset of the next expected byte.
    next: u64,
    /// Offset of the segment that arrived last (its block goes first).
    latest: Option<u64>,
    /// Offsets of the segments held since the last SACK, oldest first (at
    /// most [`FRESH`]).
    fresh: Vec<u64>,
    /// Those of the SACK before (named again: that ACK may have been lost).
    fresh_before: Vec<u64>,
}

/// Arrivals remembered between two ACKs (a burst of datagrams taken in one
/// turn is at most 64).
const FRESH: usize = 128;

/// What became of one data segment.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// In order: the segment is ready, then any held pieces it joined, in
    /// order (apart, so the usual case allocates nothing).
    Ready(Bytes, Vec<Bytes>),
    /// Kept for later.
    Held,
    /// Already received.
    Duplicate,
    /// Past the window: dropped (the data comes back, for the note).
    Beyond(Bytes),
}

impl Reassembly {
    pub(crate) fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// A segment at `seq` when `rcv_nxt` is next; `room` bytes may be held
    /// beyond `rcv_nxt`.
    pub(crate) fn arrive(&mut self, rcv_nxt: Seq, seq: Seq, data: Bytes, room: usize) -> Arrival {
        let ahead = seq.since(rcv_nxt);
        if ahead < 0 {
            return Arrival::Duplicate;
        }
        let at = self.next + ahead as u64;
        if ahead == 0 && data.len() + self.held_bytes > room {
            // In order, but the application has not read enough (a peer
            // past our advertised window): dropped, as beyond it.
            return Arrival::Beyond(data);
        }
        if ahead == 0 {
            let mut ready = Vec::new();
            let mut end = at + data.len() as u64;
            // Held pieces now joined (and any copy now covered).
            while let Some((&k, _)) = self.held.first_key_value() {
                if k > end {
                    break;
                }
                let Some((k, piece)) = self.held.pop_first() else {
                    break;
                };
                self.held_bytes -= piece.len() + PIECE_COST;
                let piece_end = k + piece.len() as u64;
                if piece_end > end {
                    ready.push(tail(piece, (end - k) as usize));
                    end = piece_end;
                }
            }
            self.next = end;
            self.latest = None;
            self.fresh.retain(|&k| k >= end);
            self.fresh_before.retain(|&k| k >= end);
            return Arrival::Ready(data, ready);
        }
        if ahead as usize + data.len() > room || self.held_bytes + data.len() + PIECE_COST > room {
            return Arrival::Beyond(data);
        }
        if self.held.contains_key(&at) {
            self.latest = Some(at);
            return Arrival::Duplicate;
        }
        self.held_bytes += data.len() + PIECE_COST;
        self.held.insert(at, data);
        self.latest = Some(at);
        if self.fresh.len() < FRESH {
            self.fresh.push(at);
        }
        Arrival::Held
    }

    /// The SACK blocks to send with the cumulative ACK `rcv_nxt`; the
    /// arrivals since the last call are then no longer fresh.
    pub(crate) fn sack(&mut self, rcv_nxt: Seq) -> Sack {
        let mut blocks: Vec<(u64, u64)> = Vec::new();
        for (&k, piece) in &self.held {
            let end = k + piece.len() as u64;
            match blocks.last_mut() {
                Some(last) if last.1 >= k => last.1 = last.1.max(end),
                _ => blocks.push((k, end)),
            }
        }
        let block_of = |k: u64| {
            let i = blocks.partition_point(|b| b.1 <= k);
            (i < blocks.len() && blocks[i].0 <= k).then_some(i)
        };
        let mut chosen: Vec<usize> = Vec::with_capacity(Sack::MAX);
        let fresh = self
            .latest
            .into_iter()
            .chain(self.fresh.iter().rev().copied())
            .chain(self.fresh_before.iter().rev().copied());
        for i in fresh.filter_map(block_of).chain(0..blocks.len()) {
            if chosen.len() == Sack::MAX {
                break;
            }
            if !chosen.contains(&i) {
                chosen.push(i);
            }
        }
        std::mem::swap(&mut self.fresh, &mut self.fresh_before);
        self.fresh.clear();
        let to_seq = |off: u64| rcv_nxt.plus((off - self.next) as usize);
        let mut sack = Sack::default();
        for i in chosen {
            let (a, b) = blocks[i];
            sack.push(to_seq(a), to_seq(b));
        }
        sack
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(n: usize) -> Bytes {
        Bytes::from(vec![7u8; n])
    }

    #[test]
    fn holds_out_of_order_data_until_the_gap_fills() {
        let mut r = Reassembly::default();
        let base = Seq(u32::MAX - 15);
        assert_eq!(r.arrive(base, base.plus(20), b(10), 1_000), Arrival::Held);
        assert_eq!(r.arrive(base, base.plus(10), b(10), 1_000), Arrival::Held);
        assert_eq!(r.held_bytes(), 20 + 2 * PIECE_COST);
        let sack = r.sack(base);
        assert_eq!(sack.blocks(), &[(base.plus(10), base.plus(30))]);
        assert_eq!(
            r.arrive(base, base.plus(10), b(10), 1_000),
            Arrival::Duplicate
        );
        let Arrival::Ready(first, joined) = r.arrive(base, base, b(10), 1_000) else {
            panic!("in order")
        };
        assert_eq!(first.len(), 10);
        assert_eq!(joined.iter().map(Bytes::len).sum::<usize>(), 20);
        assert_eq!(r.held_bytes(), 0);
        assert!(r.sack(base.plus(30)).is_empty());
        assert_eq!(
            r.arrive(base.plus(30), base.plus(5), b(5), 1_000),
            Arrival::Duplicate
        );
    }

    /// A hostile peer's one-byte segments at every other number: held
    /// pieces stop at the room, bookkeeping included.
    #[test]
    fn tiny_pieces_cannot_cost_more_than_the_room() {
        let mut r = Reassembly::default();
        let room = 64 * 1024;
        let held = (1..100_000u32)
            .filter(|k| r.arrive(Seq(0), Seq(2 * k), b(1), room) == Arrival::Held)
            .count();
        assert!(held <= room / (PIECE_COST + 1), "{held} pieces held");
        assert!(r.held_bytes() <= room);
        // In order but past what the application left room for: dropped too.
        assert_eq!(
            r.arrive(Seq(0), Seq(0), b(room), room),
            Arrival::Beyond(b(room))
        );
    }

    #[test]
    fn a_segment_straddling_the_next_number_keeps_its_new_part() {
        let data = Bytes::from_static(b"0123456789");
        let (seq, rest) = trim_old(Seq(104), Seq(100), data.clone());
        assert_eq!((seq, &rest[..]), (Seq(104), &b"456789"[..]));
        // Wholly old, wholly new: unchanged.
        assert_eq!(trim_old(Seq(110), Seq(100), data.clone()).0, Seq(100));
        assert_eq!(trim_old(Seq(100), Seq(100), data.clone()).1.len(), 10);
        assert_eq!(trim_old(Seq(90), Seq(100), data.clone()).0, Seq(100));
        // Across the wrap.
        let (seq, rest) = trim_old(Seq(2), Seq(u32::MAX - 2), data.clone());
        assert_eq!((seq, rest.len()), (Seq(2), 5));
    }

    /// A hostile peer's overlapping segments: the new part kept is a copy
    /// when it is a small part of its buffer (a slice would keep all of it
    /// alive), a slice when it is most of it; joined pieces the same.
    #[test]
    fn a_small_new_part_does_not_keep_its_whole_buffer() {
        let big = Bytes::from(vec![5u8; 40_000]);
        let inside = |b: &Bytes| big.as_ptr_range().contains(&b.as_ptr());
        let (_, one) = trim_old(Seq(39_999), Seq(0), big.clone());
        assert_eq!(&one[..], &[5]);
        assert!(!inside(&one), "one byte of 40,000 copied out");
        let (_, most) = trim_old(Seq(100), Seq(0), big.clone());
        assert_eq!(most.len(), 39_900);
        assert!(inside(&most), "most of it sliced, not copied");
        // A held piece that an in-order segment covers all but the end of.
        let mut r = Reassembly::default();
        assert_eq!(
            r.arrive(Seq(0), Seq(10), big.clone(), 1 << 20),
            Arrival::Held
        );
        let Arrival::Ready(first, joined) = r.arrive(Seq(0), Seq(0), b(40_009), 1 << 20) else {
            panic!("in order")
        };
        assert_eq!(first.len(), 40_009);
        assert_eq!(joined.len(), 1);
        assert_eq!(&joined[0][..], &[5]);
        assert!(!inside(&joined[0]));
    }

    #[test]
    fn the_latest_block_comes_first_then_the_fresh_then_the_lowest() {
        let mut r = Reassembly::default();
        let n = Seq(0);
        for k in [10, 30, 50, 70, 90, 110] {
            assert_eq!(r.arrive(n, Seq(k), b(5), 1_000), Arrival::Held);
        }
        r.arrive(n, Seq(50), b(5), 1_000);
        let blocks: Vec<u32> = r.sack(n).blocks().iter().map(|(a, _)| a.0).collect();
        // The copy at 50 came last; 110..10 came since the last ACK, newest first.
        assert_eq!(blocks, [50, 110, 90, 70, 30, 10]);
        assert_eq!(r.arrive(n, Seq(995), b(10), 1_000), Arrival::Beyond(b(10)));
        // The next ACK names them again (the last may have been lost); the
        // one after, the latest and then the lowest.
        let blocks: Vec<u32> = r.sack(n).blocks().iter().map(|(a, _)| a.0).collect();
        assert_eq!(blocks, [50, 110, 90, 70, 30, 10]);
        let blocks: Vec<u32> = r.sack(n).blocks().iter().map(|(a, _)| a.0).collect();
        assert_eq!(blocks, [50, 10, 30, 70, 90, 110]);
    }

    /// More blocks than an ACK holds: every block made since the last ACK is
    /// in the next one, however high, so the sender never takes a segment
    /// that arrived for lost.
    #[test]
    fn every_block_made_since_the_last_ack_is_named() {
        let mut r = Reassembly::default();
        let n = Seq(0);
        let room = 1 << 20;
        for k in 0..40u32 {
            r.arrive(n, Seq(10 + 20 * k), b(5), room);
        }
        let _ = r.sack(n);
        let _ = r.sack(n);
        let burst = [410u32, 610, 790, 430];
        for k in burst {
            r.arrive(n, Seq(k + 5), b(5), room);
        }
        let sack = r.sack(n);
        assert_eq!(sack.len(), Sack::MAX);
        for k in burst {
            let s = Seq(k + 5);
            assert!(
                sack.blocks()
                    .iter()
                    .any(|&(a, e)| !s.before(a) && s.before(e)),
                "{k} named"
            );
        }
        assert_eq!(sack.blocks()[0], (Seq(430), Seq(440)), "the latest first");
    }
}
