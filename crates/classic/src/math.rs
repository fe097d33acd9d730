//! The math protocol (spec: classic.md, "math"), pure.
//!
//! Request: `L u32 LE | a i16 LE | b i16 LE | L bytes of ASCII command`, no
//! terminator. Reply: `El resultado de la operacion es <result>`, no terminator.
//! The original read one `recv` and parsed it, so a request split across
//! segments or two requests in one segment broke it; here a request is taken
//! only when whole (check, then parse), any number per read, and `L` is checked
//! against [`COMMAND_LIMIT`] before anything is buffered for it.

use bytes::{Buf, BufMut, BytesMut};
use netkit::Limit;
use netkit::frame::check_frame;
use tokio_util::codec::{Decoder, Encoder};

use crate::Error;
use crate::pyfloat::py2_str;

/// Bytes before the command.
pub const HEADER: usize = 8;
/// Longest command accepted (the longest real one, `MULTIPLICACION`, is 14).
pub const COMMAND_LIMIT: Limit = Limit::new("math command", 64);
/// Every reply starts with this.
pub const REPLY_PREFIX: &str = "El resultado de la operacion es ";

/// One request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// First operand.
    pub a: i16,
    /// Second operand.
    pub b: i16,
    /// The command bytes as sent (normally `SUMA`, `RESTA`, `MULTIPLICACION`, `DIVISION`).
    pub command: Vec<u8>,
}

/// The four operations the original knows.
pub const OPERATIONS: [&str; 4] = ["SUMA", "RESTA", "MULTIPLICACION", "DIVISION"];

impl Request {
    /// A request for a known operation.
    pub fn new(op: &str, a: i16, b: i16) -> Self {
        Self {
            a,
            b,
            command: op.as_bytes().to_vec(),
        }
    }

    /// The wire form.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(HEADER + self.command.len());
        out.put_u32_le(self.command.len() as u32);
        out.put_i16_le(self.a);
        out.put_i16_le(self.b);
        out.put_slice(&self.command);
    }

    /// The result text, exactly as the original computes and prints it.
    pub fn result(&self) -> String {
        let (a, b) = (i32::from(self.a), i32::from(self.b));
        match self.command.as_slice() {
            b"SUMA" => (a + b).to_string(),
            b"RESTA" => (a - b).to_string(),
            b"MULTIPLICACION" => (a * b).to_string(),
            b"DIVISION" if b == 0 => "False".into(),
            b"DIVISION" => py2_str(f64::from(a) / f64::from(b)),
            _ => "None".into(),
        }
    }

    /// The whole reply.
    pub fn reply(&self) -> String {
        format!("{REPLY_PREFIX}{}", self.result())
    }
}

/// The server side: whole requests out of any segmentation.
#[derive(Debug, Default, Clone, Copy)]
pub struct ServerCodec;

impl Decoder for ServerCodec {
    type Item = Request;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Request>, Error> {
        let Some(span) = check_frame::<HEADER>(src, COMMAND_LIMIT, |h| {
            u64::from(u32::from_le_bytes([h[0], h[1], h[2], h[3]]))
        })?
        else {
            return Ok(None);
        };
        let h = span.header;
        src.advance(HEADER);
        let command = src.split_to(span.body_len).to_vec();
        Ok(Some(Request {
            a: i16::from_le_bytes([h[4], h[5]]),
            b: i16::from_le_bytes([h[6], h[7]]),
            command,
        }))
    }
}

impl Encoder<String> for ServerCodec {
    type Error = Error;
    fn encode(&mut self, reply: String, dst: &mut BytesMut) -> Result<(), Error> {
        dst.put_slice(reply.as_bytes());
        Ok(())
    }
}

/// Splits a stream of replies (which have no terminator) back into replies:
/// each starts with [`REPLY_PREFIX`]; a reply is complete when the next prefix
/// starts, or when it reads exactly what the client expects.
#[derive(Debug, Default)]
pub struct ReplySplitter {
    buf: Vec<u8>,
}

impl ReplySplitter {
    /// Adds received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next reply's result text, if it is complete. `expected` is what the
    /// client computed for the oldest request in flight.
    pub fn next(&mut self, expected: Option<&str>) -> Option<String> {
        let p = REPLY_PREFIX.as_bytes();
        if self.buf.len() < p.len() {
            return None;
        }
        let body_start = if self.buf.starts_with(p) { p.len() } else { 0 };
        let rest = &self.buf[body_start..];
        let end = find(rest, p).map(|i| body_start + i);
        let body_end = match (end, expected) {
            (Some(e), _) => e,
            (None, Some(exp)) if rest.starts_with(exp.as_bytes()) => body_start + exp.len(),
            _ => return None,
        };
        let body = String::from_utf8_lossy(&self.buf[body_start..body_end]).into_owned();
        self.buf.drain(..body_end);
        Some(body)
    }

    /// Whatever is buffered (a reply that matched no expectation).
    pub fn take_rest(&mut self) -> String {
        let p = REPLY_PREFIX.as_bytes();
        let start = if self.buf.starts_with(p) { p.len() } else { 0 };
        let s = String::from_utf8_lossy(&self.buf[start..]).into_owned();
        self.buf.clear();
        s
    }

    /// Bytes waiting.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(r: &Request) -> Vec<u8> {
        let mut b = BytesMut::new();
        r.encode(&mut b);
        b.to_vec()
    }

    #[test]
    fn golden_request_bytes() {
        assert_eq!(
            wire(&Request::new("SUMA", 5, -3)),
            vec![4, 0, 0, 0, 5, 0, 0xfd, 0xff, b'S', b'U', b'M', b'A']
        );
        assert_eq!(
            wire(&Request::new("MULTIPLICACION", -32768, 32767)).len(),
            8 + 14
        );
    }

    #[test]
    fn golden_replies() {
        let cases = [
            ("SUMA", 5, -3, "El resultado de la operacion es 2"),
            (
                "RESTA",
                -32768,
                32767,
                "El resultado de la operacion es -65535",
            ),
            (
                "MULTIPLICACION",
                -32768,
                -32768,
                "El resultado de la operacion es 1073741824",
            ),
            ("DIVISION", 8, 2, "El resultado de la operacion es 4.0"),
            (
                "DIVISION",
                1,
                3,
                "El resultado de la operacion es 0.333333333333",
            ),
            ("DIVISION", 7, 0, "El resultado de la operacion es False"),
            ("RAIZ", 7, 2, "El resultado de la operacion es None"),
            ("suma", 7, 2, "El resultado de la operacion es None"),
        ];
        for (op, a, b, want) in cases {
            assert_eq!(Request::new(op, a, b).reply(), want);
        }
    }

    #[test]
    fn split_and_coalesced_requests() {
        let mut all = Vec::new();
        for (i, op) in OPERATIONS.iter().enumerate() {
            all.extend(wire(&Request::new(op, i as i16, 2)));
        }
        let mut codec = ServerCodec;
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in &all {
            buf.put_u8(*b);
            while let Some(r) = codec.decode(&mut buf).unwrap() {
                got.push(r);
            }
        }
        assert_eq!(got.len(), 4);
        let mut whole = BytesMut::from(&all[..]);
        let coalesced: Vec<_> = std::iter::from_fn(|| codec.decode(&mut whole).unwrap()).collect();
        assert_eq!(coalesced, got);
        assert_eq!(got[3], Request::new("DIVISION", 3, 2));
    }

    #[test]
    fn four_gib_command_length_is_refused_from_the_header() {
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 1, 0, 2, 0][..]);
        assert!(matches!(
            ServerCodec.decode(&mut buf),
            Err(Error::Net(netkit::Error::TooLong {
                announced: 4_294_967_295,
                max: 64,
                ..
            }))
        ));
        assert!(buf.capacity() < 1024);
    }

    #[test]
    fn reply_splitter_handles_coalesced_and_split_replies() {
        let mut s = ReplySplitter::default();
        s.feed(b"El resultado de la operacion es 12El resultado de la operacion es -3El resul");
        assert_eq!(s.next(Some("12")).as_deref(), Some("12"));
        assert_eq!(s.next(Some("-3")).as_deref(), Some("-3"));
        assert_eq!(s.next(Some("4.0")), None);
        s.feed(b"tado de la operacion es 4");
        assert_eq!(s.next(Some("4.0")), None, "4 is only the start of 4.0");
        s.feed(b".0");
        assert_eq!(s.next(Some("4.0")).as_deref(), Some("4.0"));
        assert_eq!(s.pending(), 0);
        s.feed(b"El resultado de la operacion es 99");
        assert_eq!(s.next(Some("7")), None);
        assert_eq!(s.take_rest(), "99");
    }

    proptest::proptest! {
        #[test]
        fn decoder_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..100)) {
            let mut buf = BytesMut::from(&data[..]);
            while let Ok(Some(_)) = ServerCodec.decode(&mut buf) {}
        }

        #[test]
        fn requests_round_trip(a: i16, b: i16, op in 0usize..4) {
            let r = Request::new(OPERATIONS[op], a, b);
            let mut buf = BytesMut::from(&wire(&r)[..]);
            proptest::prop_assert_eq!(ServerCodec.decode(&mut buf).unwrap(), Some(r));
        }
    }
}
