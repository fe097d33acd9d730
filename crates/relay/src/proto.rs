//! The relay wire protocol, bytes ↔ messages, pure (spec: relay.md, "Protocol").
//!
//! Every frame: `len u32 BE | version u8 | type u8 | body`, where `len` counts the
//! version, type and body bytes. `len` is checked against [`FRAME_LIMIT`] as soon
//! as the 4 length bytes are in, before anything is buffered for the frame. Text
//! fields are `u16 BE length | UTF-8 bytes`, validated. Numbers are big-endian.
//!
//! | type | message | body |
//! |---|---|---|
//! | 1 | Hello (client) | `client_id u64` (0 = new), `token u128` (the secret the server gave it, 0 = new), `resume_from u64` (last sequence delivered, 0 = new), `name` |
//! | 2 | Welcome (server) | `client_id u64`, `token u128` (the client's resume secret), `next_seq u64` (the next sequence number to be given), `name` (as others see it) |
//! | 3 | Chat (client) | `sender_seq u64` (the sender's own counter, for effectively-once), `text` |
//! | 4 | Deliver (server) | `seq u64`, `kind u8` (0 chat, 1 join, 2 leave), `origin u64` (the client it is about), `sender_seq u64` (its own counter for a chat, else 0), `name`, `text` |
//! | 5 | Ack (client) | `seq u64`: every message up to it is delivered (cumulative) |
//! | 6 | Ping (either) | `nonce u64` |
//! | 7 | Pong (either) | `nonce u64` |
//! | 8 | Leave (client) | empty |
//! | 9 | Error (server) | `text`, then the server closes |

use bytes::{Buf, BufMut, BytesMut};
use netkit::Limit;
use netkit::frame::check_frame;
use tokio_util::codec::{Decoder, Encoder};

use crate::Error;

/// The protocol version this build speaks (2: the resume token in `Hello` and
/// `Welcome`, and the name in `Welcome`).
pub const VERSION: u8 = 2;
/// Largest frame (`len`), so a chat line of up to ~64 KiB.
pub const FRAME_LIMIT: Limit = Limit::new("relay frame", 64 * 1024 + 64);
/// Longest name an event carries (bytes).
pub const MAX_NAME: usize = 256;
/// Longest text an event carries (bytes): with [`MAX_NAME`] and the fixed
/// fields (version, type, 29 bytes of numbers and lengths), every `Deliver`
/// fits [`FRAME_LIMIT`], whoever sent the line (a TCP client, a page, an
/// original chat client), so no sender can make a frame its receivers refuse.
pub const MAX_TEXT: usize = 64 * 1024 + 64 - 31 - MAX_NAME;

/// What a delivered event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A chat message.
    Chat,
    /// A client joined.
    Join,
    /// A client left (the text says why).
    Leave,
}

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
    /// Appends this event's `Deliver` frame.
    pub fn deliver_frame(&self, out: &mut BytesMut) {
        Message::Deliver(self.clone()).encode(out);
    }

    /// The event a native frame carries, if it is a whole `Deliver` (the
    /// other listeners re-encode what the sequencer encoded once).
    pub fn from_frame(frame: &[u8]) -> Option<Event> {
        let mut buf = BytesMut::from(frame);
        match Codec.decode(&mut buf) {
            Ok(Some(Message::Deliver(event))) if buf.is_empty() => Some(event),
            _ => None,
        }
    }
}

/// Every message of the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Client → server, first: who I am and where I stopped.
    Hello {
        /// The id the server gave this client before (0: a new client).
        client_id: u64,
        /// The secret the server gave with that id (0 for a new client).
        token: u128,
        /// Last sequence number delivered before (0: a new client).
        resume_from: u64,
        /// Display name.
        name: String,
    },
    /// Server → client: accepted.
    Welcome {
        /// The client's id (given by the server, never chosen by a client).
        client_id: u64,
        /// The secret that proves this client when it resumes.
        token: u128,
        /// The next sequence number the server will give.
        next_seq: u64,
        /// The name others see (marked `name#2`... if another client has it).
        name: String,
    },
    /// Client → server: a line to send.
    Chat {
        /// The sender's own counter.
        sender_seq: u64,
        /// The text.
        text: String,
    },
    /// Server → client: one event in total order.
    Deliver(Event),
    /// Client → server: delivered up to `seq`.
    Ack {
        /// Cumulative.
        seq: u64,
    },
    /// Heartbeat.
    Ping {
        /// Echoed in the pong.
        nonce: u64,
    },
    /// Heartbeat answer.
    Pong {
        /// From the ping.
        nonce: u64,
    },
    /// Client → server: leaving for good.
    Leave,
    /// Server → client: what went wrong, before a close.
    Error {
        /// Why.
        text: String,
    },
}

fn put_text(out: &mut BytesMut, s: &str) {
    // Texts longer than u16 cannot be framed; senders cut them first (the frame
    // limit is below that anyway).
    let len = s.len().min(usize::from(u16::MAX));
    out.put_u16(len as u16);
    out.put_slice(&s.as_bytes()[..len]);
}

impl Message {
    fn type_code(&self) -> u8 {
        match self {
            Message::Hello { .. } => 1,
            Message::Welcome { .. } => 2,
            Message::Chat { .. } => 3,
            Message::Deliver(_) => 4,
            Message::Ack { .. } => 5,
            Message::Ping { .. } => 6,
            Message::Pong { .. } => 7,
            Message::Leave => 8,
            Message::Error { .. } => 9,
        }
    }

    /// Appends the frame.
    pub fn encode(&self, out: &mut BytesMut) {
        let start = out.len();
        out.put_u32(0);
        out.put_u8(VERSION);
        out.put_u8(self.type_code());
        match self {
            Message::Hello {
                client_id,
                token,
                resume_from,
                name,
            } => {
                out.put_u64(*client_id);
                out.put_u128(*token);
                out.put_u64(*resume_from);
                put_text(out, name);
            }
            Message::Welcome {
                client_id,
                token,
                next_seq,
                name,
            } => {
                out.put_u64(*client_id);
                out.put_u128(*token);
                out.put_u64(*next_seq);
                put_text(out, name);
            }
            Message::Chat { sender_seq, text } => {
                out.put_u64(*sender_seq);
                put_text(out, text);
            }
            Message::Deliver(Event {
                seq,
                kind,
                origin,
                sender_seq,
                name,
                text,
            }) => {
                out.put_u64(*seq);
                out.put_u8(match kind {
                    Kind::Chat => 0,
                    Kind::Join => 1,
                    Kind::Leave => 2,
                });
                out.put_u64(*origin);
                out.put_u64(*sender_seq);
                put_text(out, name);
                put_text(out, text);
            }
            Message::Ack { seq } => out.put_u64(*seq),
            Message::Ping { nonce } | Message::Pong { nonce } => out.put_u64(*nonce),
            Message::Leave => {}
            Message::Error { text } => put_text(out, text),
        }
        let len = (out.len() - start - 4) as u32;
        out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    }

    /// Decodes one frame's body (after `len`): version, type, fields. Every
    /// byte must be used.
    pub fn decode_body(mut b: &[u8]) -> Result<Message, Error> {
        let version = take_u8(&mut b, "version")?;
        if version != VERSION {
            return Err(Error::Version(version));
        }
        let t = take_u8(&mut b, "type")?;
        let m = match t {
            1 => Message::Hello {
                client_id: take_u64(&mut b, "hello.client_id")?,
                token: take_u128(&mut b, "hello.token")?,
                resume_from: take_u64(&mut b, "hello.resume_from")?,
                name: take_text(&mut b, "hello.name")?,
            },
            2 => Message::Welcome {
                client_id: take_u64(&mut b, "welcome.client_id")?,
                token: take_u128(&mut b, "welcome.token")?,
                next_seq: take_u64(&mut b, "welcome.next_seq")?,
                name: take_text(&mut b, "welcome.name")?,
            },
            3 => Message::Chat {
                sender_seq: take_u64(&mut b, "chat.sender_seq")?,
                text: take_text(&mut b, "chat.text")?,
            },
            4 => Message::Deliver(Event {
                seq: take_u64(&mut b, "deliver.seq")?,
                kind: match take_u8(&mut b, "deliver.kind")? {
                    0 => Kind::Chat,
                    1 => Kind::Join,
                    2 => Kind::Leave,
                    k => return Err(malformed("deliver.kind", format!("unknown kind {k}"))),
                },
                origin: take_u64(&mut b, "deliver.origin")?,
                sender_seq: take_u64(&mut b, "deliver.sender_seq")?,
                name: take_text(&mut b, "deliver.name")?,
                text: take_text(&mut b, "deliver.text")?,
            }),
            5 => Message::Ack {
                seq: take_u64(&mut b, "ack.seq")?,
            },
            6 => Message::Ping {
                nonce: take_u64(&mut b, "ping.nonce")?,
            },
            7 => Message::Pong {
                nonce: take_u64(&mut b, "pong.nonce")?,
            },
            8 => Message::Leave,
            9 => Message::Error {
                text: take_text(&mut b, "error.text")?,
            },
            t => return Err(Error::UnknownType(t)),
        };
        if !b.is_empty() {
            return Err(malformed(
                "frame",
                format!("{} bytes left over after the fields", b.len()),
            ));
        }
        Ok(m)
    }
}

fn malformed(what: &'static str, why: String) -> Error {
    Error::Malformed { what, why }
}

fn take_u8(b: &mut &[u8], what: &'static str) -> Result<u8, Error> {
    if b.is_empty() {
        return Err(malformed(what, "missing".into()));
    }
    Ok(b.get_u8())
}

fn take_u64(b: &mut &[u8], what: &'static str) -> Result<u64, Error> {
    if b.len() < 8 {
        return Err(malformed(what, format!("needs 8 bytes, {} left", b.len())));
    }
    Ok(b.get_u64())
}

fn take_u128(b: &mut &[u8], what: &'static str) -> Result<u128, Error> {
    if b.len() < 16 {
        return Err(malformed(what, format!("needs 16 bytes, {} left", b.len())));
    }
    Ok(b.get_u128())
}

fn take_text(b: &mut &[u8], what: &'static str) -> Result<String, Error> {
    if b.len() < 2 {
        return Err(malformed(what, "missing length".into()));
    }
    let len = usize::from(b.get_u16());
    if b.len() < len {
        return Err(malformed(
            what,
            format!("announces {len} bytes, {} left", b.len()),
        ));
    }
    let (text, rest) = b.split_at(len);
    *b = rest;
    String::from_utf8(text.to_vec()).map_err(|e| {
        malformed(
            what,
            format!("invalid UTF-8 after byte {}", e.utf8_error().valid_up_to()),
        )
    })
}

/// Both sides' codec: frames in, messages out, and back.
#[derive(Debug, Default, Clone, Copy)]
pub struct Codec;

impl Decoder for Codec {
    type Item = Message;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, Error> {
        let Some(span) = check_frame::<4>(src, FRAME_LIMIT, |h| u64::from(u32::from_be_bytes(*h)))?
        else {
            return Ok(None);
        };
        src.advance(4);
        let body = src.split_to(span.body_len);
        Message::decode_body(&body).map(Some)
    }
}

impl Encoder<&Message> for Codec {
    type Error = Error;
    fn encode(&mut self, m: &Message, dst: &mut BytesMut) -> Result<(), Error> {
        m.encode(dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_read_back_from_its_own_frame_and_nothing_else_is_one() {
        let event = Event {
            seq: 5,
            kind: Kind::Chat,
            origin: 2,
            sender_seq: 1,
            name: "ana".into(),
            text: "¿hola?".into(),
        };
        let mut frame = BytesMut::new();
        event.deliver_frame(&mut frame);
        assert_eq!(Event::from_frame(&frame), Some(event));
        assert_eq!(
            Event::from_frame(&frame[..frame.len() - 1]),
            None,
            "cut short"
        );
        let mut ack = BytesMut::new();
        Message::Ack { seq: 5 }.encode(&mut ack);
        assert_eq!(Event::from_frame(&ack), None, "not a Deliver");
    }

    fn frame(m: &Message) -> Vec<u8> {
        let mut b = BytesMut::new();
        m.encode(&mut b);
        b.to_vec()
    }

    fn all() -> Vec<Message> {
        vec![
            Message::Hello {
                client_id: 7,
                token: 0x0011_2233_4455_6677_8899_aabb_ccdd_eeff,
                resume_from: 41,
                name: "Ana María".into(),
            },
            Message::Welcome {
                client_id: 7,
                token: u128::MAX,
                next_seq: 42,
                name: "Ana María#2".into(),
            },
            Message::Chat {
                sender_seq: 3,
                text: "hola | ¿qué tal?".into(),
            },
            Message::Deliver(Event {
                seq: 42,
                kind: Kind::Chat,
                origin: 7,
                sender_seq: 3,
                name: "Ana María".into(),
                text: "hola".into(),
            }),
            Message::Deliver(Event {
                seq: 43,
                kind: Kind::Leave,
                origin: 8,
                sender_seq: 0,
                name: "Luis".into(),
                text: "heartbeat timeout".into(),
            }),
            Message::Ack { seq: 43 },
            Message::Ping { nonce: 9 },
            Message::Pong { nonce: 9 },
            Message::Leave,
            Message::Error {
                text: "too slow".into(),
            },
        ]
    }

    #[test]
    fn golden_bytes() {
        assert_eq!(
            frame(&Message::Ack { seq: 5 }),
            vec![0, 0, 0, 10, 2, 5, 0, 0, 0, 0, 0, 0, 0, 5]
        );
        assert_eq!(frame(&Message::Leave), vec![0, 0, 0, 2, 2, 8]);
        assert_eq!(
            frame(&Message::Chat {
                sender_seq: 1,
                text: "hi".into()
            }),
            vec![0, 0, 0, 14, 2, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, b'h', b'i']
        );
        let mut hello = vec![0, 0, 0, 38, 2, 1, 0, 0, 0, 0, 0, 0, 0, 7];
        hello.extend_from_slice(&[0xab; 16]);
        hello.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 3, 0, 2, b'a', b'b']);
        assert_eq!(
            frame(&Message::Hello {
                client_id: 7,
                token: u128::from_be_bytes([0xab; 16]),
                resume_from: 3,
                name: "ab".into()
            }),
            hello
        );
    }

    #[test]
    fn every_message_round_trips_whole_split_and_coalesced() {
        let mut stream = Vec::new();
        for m in all() {
            stream.extend(frame(&m));
        }
        let mut buf = BytesMut::from(&stream[..]);
        let whole: Vec<_> = std::iter::from_fn(|| Codec.decode(&mut buf).unwrap()).collect();
        assert_eq!(whole, all());
        let mut buf = BytesMut::new();
        let mut trickled = Vec::new();
        for b in stream {
            buf.put_u8(b);
            while let Some(m) = Codec.decode(&mut buf).unwrap() {
                trickled.push(m);
            }
        }
        assert_eq!(trickled, all());
    }

    #[test]
    fn hostile_frames_get_errors_naming_what_is_wrong() {
        let mut oversized = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            Codec.decode(&mut oversized),
            Err(Error::Net(netkit::Error::TooLong { .. }))
        ));
        let mut v1 = BytesMut::from(&[0, 0, 0, 2, 1, 8][..]);
        assert!(matches!(Codec.decode(&mut v1), Err(Error::Version(1))));
        let mut unknown = BytesMut::from(&[0, 0, 0, 2, 2, 99][..]);
        assert!(matches!(
            Codec.decode(&mut unknown),
            Err(Error::UnknownType(99))
        ));
        let mut truncated = BytesMut::from(&[0, 0, 0, 5, 2, 5, 0, 0, 0][..]);
        let e = Codec.decode(&mut truncated).unwrap_err().to_string();
        assert_eq!(e, "malformed ack.seq: needs 8 bytes, 3 left");
        let mut bad_utf8 =
            BytesMut::from(&[0, 0, 0, 14, 2, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 0xc3, 0x28][..]);
        assert_eq!(
            Codec.decode(&mut bad_utf8).unwrap_err().to_string(),
            "malformed chat.text: invalid UTF-8 after byte 0"
        );
        let mut extra = BytesMut::from(&[0, 0, 0, 3, 2, 8, 0][..]);
        assert!(
            Codec
                .decode(&mut extra)
                .unwrap_err()
                .to_string()
                .contains("left over")
        );
    }

    proptest::proptest! {
        #[test]
        fn decoder_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let mut buf = BytesMut::from(&data[..]);
            while let Ok(Some(_)) = Codec.decode(&mut buf) {}
        }

        #[test]
        fn chats_round_trip(sender_seq: u64, text in "\\PC{0,200}") {
            let m = Message::Chat { sender_seq, text };
            let mut buf = BytesMut::from(&frame(&m)[..]);
            proptest::prop_assert_eq!(Codec.decode(&mut buf).unwrap(), Some(m));
        }
    }
}
