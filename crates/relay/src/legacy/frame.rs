//! The original chat's frames (issue #17; docs/protocols/relay.md, "The
//! original chat"), bytes ↔ frames, pure.
//!
//! A frame is a 32-byte big-endian signed integer (the order number), one flag
//! byte (1: an acknowledgement), then the UTF-8 payload, with no length and
//! no delimiter: the original takes each `recv` as one frame. Over TCP that
//! is only true while nothing splits or merges writes, so this reader finds
//! the edges itself:
//! - an acknowledgement is exactly the 33-byte header with flag 1;
//! - a chat payload ends where the next frame starts (its number's first byte
//!   is 0 for any number below 2^248, and a typed line holds no NUL), or, when
//!   no NUL follows, once the peer has been quiet for a moment (the caller
//!   says so: [`Reader::next`]'s `quiet`).
//!
//! What cannot be told apart: a line whose bytes arrive with a pause longer
//! than the quiet time in the middle is read as two lines; a NUL inside a
//! payload ends it there (what follows is read as a frame and is most likely
//! refused). Refused outright, closing the connection: a number that is
//! negative or does not fit 64 bits, a flag other than 0 or 1, a payload that
//! is not UTF-8, a payload longer than [`MAX_PAYLOAD`].

use bytes::{Buf, BufMut, BytesMut};

use crate::Error;

/// Bytes before the payload: the number and the flag.
pub const HEADER: usize = 33;

/// Longest payload taken (the original server reads 1024 bytes at a time;
/// a line this long is already far past what it could take whole).
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// One frame from a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Flag 1: the peer has the frame with this number.
    Ack(u64),
    /// Flag 0: a frame with a payload (a chat line, a notice).
    Data {
        /// Its number.
        number: u64,
        /// The payload.
        payload: String,
    },
}

fn bad(why: String) -> Error {
    Error::Malformed {
        what: "original-chat frame",
        why,
    }
}

fn bad_number(first: &[u8]) -> Error {
    bad(format!(
        "number out of range (negative or wider than 64 bits; it starts {first:02x?})"
    ))
}

/// Writes one frame: `number`, the flag, the payload.
pub fn encode(number: u64, ack: bool, payload: &str, out: &mut BytesMut) {
    out.reserve(HEADER + payload.len());
    out.put_bytes(0, 24);
    out.put_u64(number);
    out.put_u8(u8::from(ack));
    out.put_slice(payload.as_bytes());
}

/// The frame number held by the 32 bytes at the start of `header`.
fn number(header: &[u8]) -> Result<u64, Error> {
    if header[..24].iter().any(|&b| b != 0) {
        return Err(bad_number(&header[..4]));
    }
    let mut low = [0u8; 8];
    low.copy_from_slice(&header[24..32]);
    let n = u64::from_be_bytes(low);
    if n > i64::MAX as u64 {
        return Err(bad_number(&header[..4]));
    }
    Ok(n)
}

fn too_long() -> Error {
    bad(format!("payload over {MAX_PAYLOAD} bytes"))
}

/// Reassembles a peer's frames from whatever pieces the stream gives.
#[derive(Debug, Default)]
pub struct Reader {
    buf: BytesMut,
}

impl Reader {
    /// A reader with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes bytes from the stream.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held that are not a frame yet.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next frame, if the bytes held make one. `quiet`: the peer sent
    /// nothing for a while, so a payload with no NUL after it is complete.
    pub fn next(&mut self, quiet: bool) -> Result<Option<Frame>, Error> {
        if self.buf.len() < HEADER {
            // Check what is there already: a hostile number is refused early.
            if self.buf.len() >= 24 && self.buf[..24].iter().any(|&b| b != 0) {
                return Err(bad_number(&self.buf[..4]));
            }
            return Ok(None);
        }
        let number = number(&self.buf[..32])?;
        match self.buf[32] {
            1 => {
                self.buf.advance(HEADER);
                Ok(Some(Frame::Ack(number)))
            }
            0 => {
                let body = &self.buf[HEADER..];
                let end = match memchr::memchr(0, body) {
                    Some(at) => at,
                    None if body.len() > MAX_PAYLOAD => return Err(too_long()),
                    None if quiet => body.len(),
                    None => return Ok(None),
                };
                if end > MAX_PAYLOAD {
                    return Err(too_long());
                }
                let payload = std::str::from_utf8(&body[..end])
                    .map_err(|_| bad("payload is not UTF-8".into()))?
                    .to_string();
                self.buf.advance(HEADER + end);
                Ok(Some(Frame::Data { number, payload }))
            }
            flag => Err(bad(format!("flag {flag} (only 0 and 1 exist)"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(number: u64, ack: bool, payload: &str) -> Vec<u8> {
        let mut b = BytesMut::new();
        encode(number, ack, payload, &mut b);
        b.to_vec()
    }

    #[test]
    fn frames_byte_for_byte() {
        let f = frame(258, false, "ana: hola");
        assert_eq!(f.len(), 33 + 9);
        assert!(f[..30].iter().all(|&b| b == 0));
        assert_eq!(&f[30..33], &[1, 2, 0]);
        assert_eq!(&f[33..], b"ana: hola");
        assert_eq!(frame(7, true, ""), {
            let mut v = vec![0u8; 31];
            v.extend([7, 1]);
            v
        });
    }

    #[test]
    fn whole_frames_in_one_piece_and_glued() {
        let mut r = Reader::new();
        let mut bytes = frame(3, false, "ana: hola");
        bytes.extend(frame(3, true, ""));
        bytes.extend(frame(4, false, "ana: ¿qué tal?"));
        r.feed(&bytes);
        assert_eq!(
            r.next(false).unwrap(),
            Some(Frame::Data {
                number: 3,
                payload: "ana: hola".into()
            })
        );
        assert_eq!(r.next(false).unwrap(), Some(Frame::Ack(3)));
        assert_eq!(r.next(false).unwrap(), None, "the last line may go on");
        assert_eq!(
            r.next(true).unwrap(),
            Some(Frame::Data {
                number: 4,
                payload: "ana: ¿qué tal?".into()
            })
        );
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn one_byte_at_a_time_gives_the_same_frames() {
        let mut bytes = frame(1, true, "");
        bytes.extend(frame(9, false, "bo: ñandú"));
        bytes.extend(frame(2, true, ""));
        let mut r = Reader::new();
        let mut got = Vec::new();
        for b in &bytes {
            r.feed(&[*b]);
            while let Some(f) = r.next(false).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(
            got,
            vec![
                Frame::Ack(1),
                Frame::Data {
                    number: 9,
                    payload: "bo: ñandú".into()
                },
                Frame::Ack(2)
            ]
        );
    }

    #[test]
    fn hostile_frames_are_refused() {
        let mut big = vec![0x80u8];
        big.extend([0u8; 31]);
        big.push(0);
        let mut r = Reader::new();
        r.feed(&big);
        assert!(
            r.next(false)
                .unwrap_err()
                .to_string()
                .contains("out of range"),
            "2^255"
        );
        let mut r = Reader::new();
        let mut wide = [0u8; 32];
        wide[10] = 1;
        r.feed(&wide[..24]);
        assert!(
            r.next(false)
                .unwrap_err()
                .to_string()
                .contains("out of range"),
            "early"
        );
        let mut r = Reader::new();
        let mut f = frame(1, false, "");
        f[32] = 2;
        r.feed(&f);
        assert!(r.next(false).unwrap_err().to_string().contains("flag 2"));
        let mut r = Reader::new();
        let mut f = frame(1, false, "");
        f.extend([0xff, 0xfe]);
        r.feed(&f);
        assert!(r.next(true).unwrap_err().to_string().contains("UTF-8"));
        let mut r = Reader::new();
        r.feed(&frame(1, false, &"x".repeat(MAX_PAYLOAD + 1)));
        assert!(
            r.next(false)
                .unwrap_err()
                .to_string()
                .contains("over 65536")
        );
    }

    proptest::proptest! {
        #[test]
        fn any_split_of_frames_reads_back(
            lines in proptest::collection::vec("[^\u{0}]{0,40}", 1..6),
            cut in 1usize..50,
        ) {
            let mut bytes = Vec::new();
            for (i, l) in lines.iter().enumerate() {
                bytes.extend(frame(i as u64, false, l));
                bytes.extend(frame(i as u64, true, ""));
            }
            let mut r = Reader::new();
            let mut got = Vec::new();
            for piece in bytes.chunks(cut) {
                r.feed(piece);
                while let Some(f) = r.next(false).unwrap() {
                    got.push(f);
                }
            }
            while let Some(f) = r.next(true).unwrap() {
                got.push(f);
            }
            let mut want = Vec::new();
            for (i, l) in lines.iter().enumerate() {
                want.push(Frame::Data { number: i as u64, payload: l.clone() });
                want.push(Frame::Ack(i as u64));
            }
            proptest::prop_assert_eq!(got, want);
        }
    }
}
