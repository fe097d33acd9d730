//! Allocation-free scanning of what bench clients receive: relay frames and
//! Redis (RESP) pub/sub messages. The load generator must cost the same for
//! every server it measures, and less than any of them.

/// Bytes of every chat text: `OOOOOOOO NNNNNNNNNNNNNNNNNNNN ` + padding, where
/// O is the sender's index and N the send time in ns since the bench's base.
pub const TEXT_LEN: usize = 64;

/// The chat text of sender `origin` at `ns`.
pub fn text(origin: usize, ns: u64) -> String {
    let mut t = format!("{origin:08} {ns:020} ");
    while t.len() < TEXT_LEN {
        t.push('x');
    }
    t
}

/// (sender index, send time in ns) of a chat text.
pub fn parse_text(text: &[u8]) -> Option<(usize, u64)> {
    let origin = std::str::from_utf8(text.get(..8)?).ok()?.parse().ok()?;
    let ns = std::str::from_utf8(text.get(9..29)?).ok()?.parse().ok()?;
    Some((origin, ns))
}

/// One complete frame or message, as far as a bench client cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen<'a> {
    Welcome {
        client_id: u64,
    },
    Chat {
        seq: u64,
        text: &'a [u8],
    },
    /// A join or leave (with its sequence number, for the order check).
    Event {
        seq: u64,
    },
    Ping {
        nonce: u64,
    },
    Other,
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn u16_at(b: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(u16::from_be_bytes(
        b.get(at..at + 2)?.try_into().ok()?,
    )))
}

/// The first relay frame in `buf`: `(bytes it takes, what it is)`, or None if incomplete.
pub fn relay_frame(buf: &[u8]) -> Option<(usize, Seen<'_>)> {
    let len = u32::from_be_bytes(buf.get(..4)?.try_into().ok()?) as usize;
    let frame = buf.get(..4 + len)?;
    let seen = match frame.get(5) {
        Some(2) => Seen::Welcome {
            client_id: u64_at(frame, 6)?,
        },
        Some(4) => {
            let seq = u64_at(frame, 6)?;
            match frame.get(14) {
                Some(0) => {
                    let name_len = u16_at(frame, 31)?;
                    let text_at = 33 + name_len + 2;
                    let text_len = u16_at(frame, 33 + name_len)?;
                    Seen::Chat {
                        seq,
                        text: frame.get(text_at..text_at + text_len)?,
                    }
                }
                _ => Seen::Event { seq },
            }
        }
        Some(6) => Seen::Ping {
            nonce: u64_at(frame, 6)?,
        },
        _ => Seen::Other,
    };
    Some((frame.len(), seen))
}

/// The first RESP array of bulk strings / integers in `buf`: `(bytes, items)`,
/// or None if incomplete. Enough for `message` and `subscribe` replies.
pub fn resp_array(buf: &[u8]) -> Option<(usize, [&[u8]; 3])> {
    let (count, mut at) = resp_line(buf, 0, b'*')?;
    let mut items: [&[u8]; 3] = [&[], &[], &[]];
    for i in 0..count {
        match buf.get(at)? {
            b'$' => {
                let (n, next) = resp_line(buf, at, b'$')?;
                let item = buf.get(next..next + n)?;
                buf.get(next + n..next + n + 2)?;
                if i < 3 {
                    items[i] = item;
                }
                at = next + n + 2;
            }
            b':' => {
                let end = find_crlf(buf, at)?;
                if i < 3 {
                    items[i] = &buf[at + 1..end];
                }
                at = end + 2;
            }
            _ => return Some((buf.len(), items)),
        }
    }
    Some((at, items))
}

/// `<marker><decimal>\r\n` at `at`: (the number, the index after CR LF).
fn resp_line(buf: &[u8], at: usize, marker: u8) -> Option<(usize, usize)> {
    if *buf.get(at)? != marker {
        return None;
    }
    let end = find_crlf(buf, at)?;
    let n = std::str::from_utf8(&buf[at + 1..end]).ok()?.parse().ok()?;
    Some((n, end + 2))
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    memchr::memmem::find(buf.get(from..)?, b"\r\n").map(|i| from + i)
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::proto::{Event, Kind, Message};

    #[test]
    fn chat_frames_are_read_in_place() {
        let mut b = BytesMut::new();
        let t = text(7, 123_456);
        assert_eq!(t.len(), TEXT_LEN);
        Message::Deliver(Event {
            seq: 42,
            kind: Kind::Chat,
            origin: 9,
            sender_seq: 3,
            name: "bench".into(),
            text: t.clone(),
        })
        .encode(&mut b);
        Message::Welcome {
            client_id: 5,
            token: 9,
            next_seq: 1,
            name: "bench".into(),
        }
        .encode(&mut b);
        let (n, seen) = relay_frame(&b).unwrap();
        assert_eq!(
            seen,
            Seen::Chat {
                seq: 42,
                text: t.as_bytes()
            }
        );
        assert_eq!(parse_text(t.as_bytes()), Some((7, 123_456)));
        assert_eq!(
            relay_frame(&b[n..]).unwrap().1,
            Seen::Welcome { client_id: 5 }
        );
        assert_eq!(relay_frame(&b[..n - 1]), None, "incomplete");
    }

    #[test]
    fn resp_messages_and_replies() {
        let m = b"*3\r\n$7\r\nmessage\r\n$5\r\nbench\r\n$3\r\nabc\r\n:1\r\n:2\r\n";
        let (n, items) = resp_array(m).unwrap();
        assert_eq!(items, [&b"message"[..], b"bench", b"abc"]);
        assert_eq!(&m[n..], b":1\r\n:2\r\n");
        assert_eq!(resp_array(&m[..n - 1]), None);
        let sub = b"*3\r\n$9\r\nsubscribe\r\n$5\r\nbench\r\n:1\r\n";
        assert_eq!(resp_array(sub).unwrap().1[0], b"subscribe");
    }
}
