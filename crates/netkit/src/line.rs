//! A bounded, sans-IO reader for CR LF text protocols (HFTP, and anything like it).
//!
//! Bytes go in (in pieces of any size, down to one byte), lines come out. The rules:
//! - a line ends at CR LF; the CR may end one piece and the LF start the next;
//! - an LF not immediately preceded by CR is [`Error::BareLf`], reported as soon as
//!   that LF is fed (nothing waits for a later CR LF);
//! - memory is bounded by the limit: a line longer than it is either an error as
//!   soon as the limit is passed ([`Error::LineTooLong`]) or kept as its first `limit`
//!   bytes plus the total length, the tail discarded as it arrives
//!   ([`Overflow::Truncate`]) so a server can still answer it as the whole line
//!   would have been answered (HFTP's 5 MiB file name gets `202`).
//!
//! The same type is a `tokio_util::codec::Decoder`, for use with `FramedRead`.

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::Decoder;

use crate::Error;

/// What to do with a line longer than the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Fail with [`Error::LineTooLong`] as soon as the line passes the limit.
    Error,
    /// Keep the first `limit` bytes, count the rest, discard them as they arrive.
    Truncate,
}

/// One line, without its CR LF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The line's bytes, or its first `limit` bytes if it was truncated.
    pub bytes: Bytes,
    /// Length of the whole line as sent (without CR LF).
    pub total_len: usize,
}

impl Line {
    /// True if the line was longer than the limit and its tail was discarded.
    pub fn is_truncated(&self) -> bool {
        self.total_len > self.bytes.len()
    }
}

/// The line reader state machine. See the module docs.
#[derive(Debug)]
pub struct LineReader {
    limit: usize,
    overflow: Overflow,
    /// The current line's kept bytes (at most `limit`, plus one pending CR).
    current: BytesMut,
    /// Length of the current line so far, kept bytes and discarded ones.
    total: usize,
    /// Whether the last byte seen of the current line was a CR.
    last_cr: bool,
    /// Input fed but not yet scanned (only used through [`LineReader::feed`]).
    pending: BytesMut,
    /// Set once an error was returned: the stream is no longer framed.
    failed: bool,
}

impl LineReader {
    /// A reader for lines of at most `limit` bytes (CR LF excluded).
    pub fn new(limit: usize, overflow: Overflow) -> Self {
        Self {
            limit,
            overflow,
            current: BytesMut::new(),
            total: 0,
            last_cr: false,
            pending: BytesMut::new(),
            failed: false,
        }
    }

    /// The configured limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Adds input; take lines out with [`LineReader::next_line`].
    pub fn feed(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// The next complete line of the fed input, if any.
    ///
    /// `Some(Err(_))` is final: after an error the reader yields nothing more.
    pub fn next_line(&mut self) -> Option<Result<Line, Error>> {
        let mut pending = std::mem::take(&mut self.pending);
        let out = self.decode_from(&mut pending);
        self.pending = pending;
        out.transpose()
    }

    /// Scans `src`, consuming what it has looked at: every byte is either part of a
    /// returned line, kept in `current`, or counted and dropped. This is what keeps
    /// memory bounded however long a line is.
    fn decode_from(&mut self, src: &mut BytesMut) -> Result<Option<Line>, Error> {
        if self.failed {
            src.clear();
            return Ok(None);
        }
        match memchr::memchr(b'\n', src) {
            None => {
                let chunk = src.split();
                self.absorb(&chunk)?;
                Ok(None)
            }
            Some(lf) => {
                let before = src.split_to(lf);
                src.advance(1);
                self.absorb(&before)?;
                if !self.last_cr {
                    self.failed = true;
                    return Err(Error::BareLf { offset: self.total });
                }
                Ok(Some(self.finish_line()))
            }
        }
    }

    /// Appends bytes of the current line (no LF among them), within the limit.
    fn absorb(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let Some(&last) = bytes.last() else {
            return Ok(());
        };
        self.total += bytes.len();
        self.last_cr = last == b'\r';
        // Keep one byte beyond the limit so that a trailing CR of a line of
        // exactly `limit` bytes is still there to strip.
        let room = (self.limit + 1).saturating_sub(self.current.len());
        self.current
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
        // The line so far, less a CR that may turn out to be the terminator.
        let content = self.total - usize::from(self.last_cr);
        if content > self.limit && self.overflow == Overflow::Error {
            self.failed = true;
            return Err(Error::LineTooLong { max: self.limit });
        }
        Ok(())
    }

    fn finish_line(&mut self) -> Line {
        // The CR of the CR LF is the last byte of the line; drop it.
        let total_len = self.total - 1;
        let mut kept = self.current.split();
        kept.truncate(total_len.min(self.limit));
        self.total = 0;
        self.last_cr = false;
        Line {
            bytes: kept.freeze(),
            total_len,
        }
    }
}

impl Decoder for LineReader {
    type Item = Line;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Line>, Error> {
        self.decode_from(src)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Line>, Error> {
        match self.decode_from(src)? {
            Some(line) => Ok(Some(line)),
            None if self.total > 0 && !self.failed => Err(Error::UnexpectedEof {
                part: "line",
                got: self.total,
                expected: self.total + 2,
            }),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(reader: &mut LineReader) -> Vec<Result<Line, String>> {
        std::iter::from_fn(|| reader.next_line())
            .map(|r| r.map_err(|e| e.to_string()))
            .collect()
    }

    fn text(l: &Line) -> &[u8] {
        &l.bytes
    }

    #[test]
    fn pipelined_lines_come_out_in_order() {
        let mut r = LineReader::new(100, Overflow::Error);
        r.feed(b"help\r\nget_metadata a.txt\r\nquit\r\n");
        let got = lines_of(&mut r);
        assert_eq!(got.len(), 3);
        assert_eq!(text(got[0].as_ref().unwrap()), b"help");
        assert_eq!(text(got[1].as_ref().unwrap()), b"get_metadata a.txt");
        assert_eq!(text(got[2].as_ref().unwrap()), b"quit");
    }

    #[test]
    fn one_byte_at_a_time_gives_the_same_lines() {
        let input = b"a b\r\n\r\nccc\r\n";
        let mut r = LineReader::new(100, Overflow::Error);
        let mut got = Vec::new();
        for b in input {
            r.feed(&[*b]);
            got.extend(lines_of(&mut r));
        }
        let texts: Vec<_> = got
            .iter()
            .map(|l| l.as_ref().unwrap().bytes.to_vec())
            .collect();
        assert_eq!(texts, vec![b"a b".to_vec(), b"".to_vec(), b"ccc".to_vec()]);
    }

    #[test]
    fn cr_and_lf_in_separate_pieces_is_a_terminator() {
        let mut r = LineReader::new(100, Overflow::Error);
        r.feed(b"quit\r");
        assert!(r.next_line().is_none());
        r.feed(b"\n");
        assert_eq!(r.next_line().unwrap().unwrap().bytes, &b"quit"[..]);
    }

    #[test]
    fn bare_lf_is_reported_when_the_lf_arrives() {
        let mut r = LineReader::new(100, Overflow::Error);
        r.feed(b"ok\r\nget_file");
        assert_eq!(r.next_line().unwrap().unwrap().bytes, &b"ok"[..]);
        assert!(r.next_line().is_none());
        r.feed(b"_listing\n");
        assert!(matches!(
            r.next_line(),
            Some(Err(Error::BareLf { offset: 16 }))
        ));
        // After the error the stream is over.
        r.feed(b"help\r\n");
        assert!(r.next_line().is_none());
    }

    #[test]
    fn lone_lf_and_cr_not_before_lf() {
        let mut r = LineReader::new(100, Overflow::Error);
        r.feed(b"\n");
        assert!(matches!(
            r.next_line(),
            Some(Err(Error::BareLf { offset: 0 }))
        ));
        // A CR inside a line is an ordinary byte; only CR right before LF ends it.
        let mut r = LineReader::new(100, Overflow::Error);
        r.feed(b"a\rb\r\n");
        assert_eq!(r.next_line().unwrap().unwrap().bytes, &b"a\rb"[..]);
        let mut r = LineReader::new(100, Overflow::Error);
        r.feed(b"a\r x\n");
        assert!(matches!(r.next_line(), Some(Err(Error::BareLf { .. }))));
    }

    #[test]
    fn line_of_exactly_the_limit_is_accepted_and_one_more_is_not() {
        let mut r = LineReader::new(4, Overflow::Error);
        r.feed(b"abcd\r\n");
        assert_eq!(r.next_line().unwrap().unwrap().bytes, &b"abcd"[..]);
        let mut r = LineReader::new(4, Overflow::Error);
        r.feed(b"abcd\r");
        assert!(r.next_line().is_none(), "CR may still be the terminator");
        r.feed(b"e");
        assert!(matches!(
            r.next_line(),
            Some(Err(Error::LineTooLong { max: 4 }))
        ));
    }

    #[test]
    fn too_long_error_comes_before_any_terminator() {
        let mut r = LineReader::new(8, Overflow::Error);
        r.feed(&[b'x'; 9]);
        assert!(matches!(
            r.next_line(),
            Some(Err(Error::LineTooLong { max: 8 }))
        ));
    }

    #[test]
    fn truncate_keeps_the_head_and_counts_the_rest_with_bounded_memory() {
        let mut r = LineReader::new(16, Overflow::Truncate);
        r.feed(b"get_metadata ");
        assert!(r.next_line().is_none());
        // 5 MiB of file name in 64 KiB pieces: memory stays at the limit.
        let piece = vec![b'a'; 64 * 1024];
        for _ in 0..80 {
            r.feed(&piece);
            assert!(r.next_line().is_none());
            assert!(r.current.len() <= 17);
            assert!(r.pending.is_empty());
        }
        r.feed(b"\r\nhelp\r\n");
        let long = r.next_line().unwrap().unwrap();
        assert!(long.is_truncated());
        assert_eq!(long.total_len, 13 + 80 * 64 * 1024);
        assert_eq!(long.bytes, &b"get_metadata aaa"[..]);
        let help = r.next_line().unwrap().unwrap();
        assert!(!help.is_truncated());
        assert_eq!(help.bytes, &b"help"[..]);
    }

    #[test]
    fn truncated_line_ending_in_split_crlf() {
        let mut r = LineReader::new(3, Overflow::Truncate);
        r.feed(b"abcdef\r");
        assert!(r.next_line().is_none());
        r.feed(b"\n");
        let l = r.next_line().unwrap().unwrap();
        assert_eq!((l.bytes.as_ref(), l.total_len), (&b"abc"[..], 6));
    }

    #[test]
    fn decoder_reports_eof_mid_line() {
        let mut r = LineReader::new(10, Overflow::Error);
        let mut buf = BytesMut::from(&b"ok\r\npart"[..]);
        assert_eq!(r.decode_eof(&mut buf).unwrap().unwrap().bytes, &b"ok"[..]);
        assert!(matches!(
            r.decode_eof(&mut buf),
            Err(Error::UnexpectedEof {
                part: "line",
                got: 4,
                ..
            })
        ));
        let mut r = LineReader::new(10, Overflow::Error);
        assert!(r.decode_eof(&mut BytesMut::new()).unwrap().is_none());
    }

    /// Reference model: split the whole input at CR LF, knowing everything at once.
    fn model(input: &[u8], limit: usize) -> Vec<Result<(Vec<u8>, usize), ()>> {
        let mut out = Vec::new();
        let mut start = 0;
        for (i, &b) in input.iter().enumerate() {
            if b == b'\n' {
                if i == start || input[i - 1] != b'\r' {
                    out.push(Err(()));
                    return out;
                }
                let line = &input[start..i - 1];
                out.push(Ok((line[..line.len().min(limit)].to_vec(), line.len())));
                start = i + 1;
            }
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn any_split_gives_the_model_result(
            input in proptest::collection::vec(proptest::sample::select(vec![b'a', b'\r', b'\n', b' ', 0u8, 0xff]), 0..200),
            cuts in proptest::collection::vec(0usize..200, 0..20),
            limit in 1usize..12,
        ) {
            let mut r = LineReader::new(limit, Overflow::Truncate);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(input.len())).collect();
            cuts.push(0);
            cuts.push(input.len());
            cuts.sort_unstable();
            let mut got = Vec::new();
            for w in cuts.windows(2) {
                r.feed(&input[w[0]..w[1]]);
                while let Some(l) = r.next_line() {
                    got.push(l.map(|l| (l.bytes.to_vec(), l.total_len)).map_err(|_| ()));
                }
                proptest::prop_assert!(r.current.len() <= limit + 1);
            }
            proptest::prop_assert_eq!(got, model(&input, limit));
        }
    }
}
