//! The application's writes (the seed's `send`): each message becomes its
//! length segment, sent whole, then its data, cut into MSS pieces as the
//! sender takes them (not when written).

use std::time::Instant;

use bytes::Bytes;

use super::{Connection, State};
use crate::error::Error;

impl Connection {
    /// Queues one message: its length segment, then its data in MSS pieces
    /// (the seed's `send`).
    pub fn write_message(&mut self, now: Instant, message: &[u8]) -> Result<(), Error> {
        self.write_bytes(now, Bytes::copy_from_slice(message))
    }

    /// [`Connection::write_message`] without the copy: a shell that copies a
    /// large message first takes `now` after it, so the segments' send times
    /// (and the timers from them) are when they really leave.
    pub fn write_bytes(&mut self, now: Instant, message: Bytes) -> Result<(), Error> {
        self.begin_message(now, message.len())?;
        self.write_more(now, message)
    }

    /// Starts a message of `len` bytes (its length segment) whose data the
    /// shell adds in parts with [`Connection::write_more`], as the sender
    /// needs them: a large message is never copied whole, and the parts it
    /// copies are still in the cache when they leave.
    pub fn begin_message(&mut self, now: Instant, len: usize) -> Result<(), Error> {
        self.writable()?;
        if self.unwritten > 0 {
            // Its length segment would land in the middle of the other's data.
            return Err(Error::Usage("the message begun before is complete"));
        }
        // The length segment goes whole, whatever the MSS (the seed's).
        self.unsent.push_back((Bytes::from(len.to_string()), true));
        self.unwritten = len;
        self.push_next(now);
        Ok(())
    }

    /// Data of the message begun last: at most what it still owes. Taken in
    /// any state but CLOSED (the message was accepted whole at
    /// `begin_message`: its rest goes out even after the peer's FIN or our
    /// `close`, which waits for it). Parts are cut into MSS pieces on their
    /// own: a part that is not a multiple of the MSS (but the last) would
    /// make a short segment in the middle of the message.
    pub fn write_more(&mut self, now: Instant, data: Bytes) -> Result<(), Error> {
        if data.is_empty() {
            return Ok(());
        }
        if data.len() > self.unwritten {
            return Err(Error::Usage("no more data than the message begun owes"));
        }
        if self.state == State::Closed {
            return Err(Error::Closed);
        }
        self.unwritten -= data.len();
        self.unsent.push_back((data, false));
        self.push_next(now);
        Ok(())
    }

    /// Writes are taken until a close starts (ours, or the peer's FIN).
    fn writable(&self) -> Result<(), Error> {
        let open = matches!(
            self.state,
            State::SynSent | State::SynReceived | State::Established
        );
        if open && !self.close_requested {
            Ok(())
        } else {
            Err(Error::Closed)
        }
    }

    /// Nothing written waits to be sent, and no part of a begun message is
    /// owed: the FIN may follow.
    pub(super) fn written_out(&self) -> bool {
        self.unsent.is_empty() && self.unwritten == 0
    }

    /// Bytes written and not yet sent once.
    pub fn unsent_bytes(&self) -> usize {
        self.unsent.iter().map(|(b, _)| b.len()).sum()
    }

    /// Length of the next segment's payload: at most MSS of what is queued.
    pub(super) fn next_piece_len(&self) -> Option<usize> {
        self.unsent.front().map(|(b, whole)| {
            if *whole {
                b.len()
            } else {
                b.len().min(self.cfg.mss)
            }
        })
    }

    /// The next segment's payload, cut from the queue (messages are cut
    /// into MSS pieces as they go, not when written).
    pub(super) fn next_piece(&mut self) -> Option<Bytes> {
        let (front, whole) = self.unsent.front_mut()?;
        if !*whole && front.len() > self.cfg.mss {
            return Some(front.split_to(self.cfg.mss));
        }
        self.unsent.pop_front().map(|(b, _)| b)
    }
}
