//! Message reassembly for `recv(buff_size)` (spec "Socket API"): the first
//! segment of every message holds its length in decimal ASCII; `recv` returns
//! once it holds min(bytes left in the message, buff_size) bytes, never more
//! than buff_size, and keeps the rest of a straddling segment for later calls.
//! A message never runs into the next one.

use std::collections::VecDeque;

use bytes::{Buf, Bytes};

use crate::error::Error;

/// The longest decimal length we accept (fits u64).
const MAX_LENGTH_DIGITS: usize = 19;

#[derive(Debug, Default)]
struct Message {
    /// Bytes of this message the application has not yet been given.
    left: u64,
    chunks: VecDeque<Bytes>,
    buffered: usize,
}

/// What a read found.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    Data(Vec<u8>),
    /// Not enough bytes yet.
    Pending,
    /// The peer closed and every message has been read.
    End,
}

#[derive(Debug, Default)]
pub struct Inbox {
    /// Bytes of the message being received that have not arrived; 0 means the
    /// next segment is a length.
    incoming_left: u64,
    messages: VecDeque<Message>,
    buffered: usize,
    peer_closed: bool,
}

impl Inbox {
    /// Bytes held for the application.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    pub fn peer_closed(&mut self) {
        self.peer_closed = true;
    }

    /// Takes one in-order segment payload.
    pub fn deliver(&mut self, payload: Bytes) -> Result<(), Error> {
        if self.incoming_left == 0 {
            let length = parse_length(&payload)?;
            if length > 0 {
                self.messages.push_back(Message {
                    left: length,
                    ..Message::default()
                });
                self.incoming_left = length;
            }
            return Ok(());
        }
        let len = payload.len() as u64;
        if len > self.incoming_left {
            return Err(Error::Overrun((len - self.incoming_left) as usize));
        }
        self.incoming_left -= len;
        self.buffered += payload.len();
        if let Some(message) = self.messages.back_mut() {
            message.buffered += payload.len();
            message.chunks.push_back(payload);
        }
        Ok(())
    }

    /// Up to `max` bytes of the current message, once min(left, max) are here.
    pub fn read(&mut self, max: usize) -> Result<Read, Error> {
        let take = match self.next_take(max)? {
            Ok(take) => take,
            Err(not_now) => return Ok(not_now),
        };
        let mut out = Vec::with_capacity(take);
        self.take(take, |part| out.extend_from_slice(part));
        Ok(Read::Data(out))
    }

    /// [`Inbox::read`] into the caller's buffer (`buf.len()` is the most
    /// taken): `Some(n)` bytes copied (`Some(0)` once everything has been
    /// read and the peer closed), `None` if not enough is here yet.
    pub fn read_into(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Error> {
        let take = match self.next_take(buf.len())? {
            Ok(take) => take,
            Err(Read::End) => return Ok(Some(0)),
            Err(_) => return Ok(None),
        };
        let mut at = 0;
        self.take(take, |part| {
            buf[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        });
        Ok(Some(take))
    }

    /// How many bytes a read of at most `max` takes now, or what it says
    /// instead (nothing yet, or the end).
    fn next_take(&self, max: usize) -> Result<Result<usize, Read>, Error> {
        let Some(front) = self.messages.front() else {
            return Ok(Err(if self.peer_closed {
                Read::End
            } else {
                Read::Pending
            }));
        };
        let want = front.left.min(max as u64) as usize;
        let take = if front.buffered >= want {
            want
        } else if self.peer_closed && front.buffered > 0 {
            front.buffered
        } else if self.peer_closed {
            return Err(Error::Truncated {
                missing: front.left,
            });
        } else {
            return Ok(Err(Read::Pending));
        };
        Ok(Ok(take))
    }

    /// Moves `take` bytes (no more than [`Inbox::next_take`] said) of the
    /// current message to `out`, part by part.
    fn take(&mut self, take: usize, mut out: impl FnMut(&[u8])) {
        let Some(front) = self.messages.front_mut() else {
            return;
        };
        let mut moved = 0;
        while moved < take {
            let Some(chunk) = front.chunks.front_mut() else {
                break;
            };
            let n = chunk.len().min(take - moved);
            out(&chunk[..n]);
            moved += n;
            chunk.advance(n);
            if chunk.is_empty() {
                front.chunks.pop_front();
            }
        }
        front.buffered -= take;
        front.left -= take as u64;
        self.buffered -= take;
        if front.left == 0 {
            self.messages.pop_front();
        }
    }
}

fn parse_length(payload: &[u8]) -> Result<u64, Error> {
    let digits = payload.trim_ascii();
    let bad = || {
        Error::BadLength(String::from_utf8_lossy(&payload[..payload.len().min(40)]).into_owned())
    };
    if digits.is_empty()
        || digits.len() > MAX_LENGTH_DIGITS
        || !digits.iter().all(u8::is_ascii_digit)
    {
        return Err(bad());
    }
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inbox_with(segments: &[&[u8]]) -> Inbox {
        let mut inbox = Inbox::default();
        for s in segments {
            inbox.deliver(Bytes::copy_from_slice(s)).unwrap();
        }
        inbox
    }

    fn data(read: Read) -> Vec<u8> {
        match read {
            Read::Data(d) => d,
            other => panic!("expected data, got {other:?}"),
        }
    }

    #[test]
    fn sixteen_bytes_with_buff_size_sixteen() {
        let mut inbox = inbox_with(&[b"16", b"0123456789abcdef"]);
        assert_eq!(data(inbox.read(16).unwrap()), b"0123456789abcdef");
        assert_eq!(inbox.read(16).unwrap(), Read::Pending);
    }

    #[test]
    fn nineteen_bytes_in_two_reads_of_fourteen() {
        let mut inbox = inbox_with(&[b"19", b"0123456789abcdef", b"ghi"]);
        assert_eq!(data(inbox.read(14).unwrap()), b"0123456789abcd");
        assert_eq!(data(inbox.read(14).unwrap()), b"efghi");
        assert_eq!(inbox.buffered(), 0);
    }

    #[test]
    fn waits_for_min_of_left_and_max() {
        let mut inbox = inbox_with(&[b"19", b"0123456789abcdef"]);
        assert_eq!(inbox.read(19).unwrap(), Read::Pending, "only 16 of 19 here");
        inbox.deliver(Bytes::from_static(b"ghi")).unwrap();
        assert_eq!(data(inbox.read(19).unwrap()).len(), 19);
    }

    #[test]
    fn a_read_never_crosses_into_the_next_message() {
        let mut inbox = inbox_with(&[b"3", b"abc", b"2", b"de"]);
        assert_eq!(data(inbox.read(100).unwrap()), b"abc");
        assert_eq!(data(inbox.read(100).unwrap()), b"de");
    }

    #[test]
    fn read_into_follows_the_same_rules_into_the_callers_buffer() {
        let mut inbox = inbox_with(&[b"19", b"0123456789abcdef"]);
        let mut buf = [0u8; 14];
        assert_eq!(inbox.read_into(&mut buf).unwrap(), Some(14));
        assert_eq!(&buf, b"0123456789abcd");
        assert_eq!(inbox.read_into(&mut buf).unwrap(), None, "2 of 5 here");
        inbox.deliver(Bytes::from_static(b"ghi")).unwrap();
        assert_eq!(inbox.read_into(&mut buf).unwrap(), Some(5));
        assert_eq!(&buf[..5], b"efghi");
        inbox.peer_closed();
        assert_eq!(inbox.read_into(&mut buf).unwrap(), Some(0), "the end");
    }

    #[test]
    fn empty_messages_are_skipped_and_end_follows_close() {
        let mut inbox = inbox_with(&[b"0", b"1", b"x"]);
        assert_eq!(data(inbox.read(8).unwrap()), b"x");
        assert_eq!(inbox.read(8).unwrap(), Read::Pending);
        inbox.peer_closed();
        assert_eq!(inbox.read(8).unwrap(), Read::End);
    }

    #[test]
    fn a_close_mid_message_hands_over_what_came_then_says_what_is_missing() {
        let mut inbox = inbox_with(&[b"10", b"abc"]);
        inbox.peer_closed();
        assert_eq!(data(inbox.read(8).unwrap()), b"abc");
        assert!(matches!(
            inbox.read(8),
            Err(Error::Truncated { missing: 7 })
        ));
    }

    #[test]
    fn bad_lengths_and_overruns_are_errors() {
        let mut inbox = Inbox::default();
        assert!(matches!(
            inbox.deliver(Bytes::from_static(b"12a")),
            Err(Error::BadLength(_))
        ));
        assert!(matches!(
            inbox.deliver(Bytes::from_static(b"99999999999999999999")),
            Err(Error::BadLength(_))
        ));
        let mut inbox = inbox_with(&[b" 2\n"]);
        assert!(matches!(
            inbox.deliver(Bytes::from_static(b"abc")),
            Err(Error::Overrun(1))
        ));
    }
}
