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
//! What is kept of a line is up to a [`LineSink`]: the default [`Head`] keeps the
//! first `limit` bytes; a protocol can keep a summary instead (HFTP keeps, per
//! word, its first bytes, its length and what kind of characters it holds), so a
//! line of any length is judged exactly in constant memory.
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

/// Receives the content of a line as it arrives (never its CR LF), so a
/// protocol can keep exactly what it needs of a line of any length: the default
/// [`Head`] keeps the first bytes; HFTP keeps a summary of each word.
pub trait LineSink {
    /// What a finished line becomes.
    type Line;
    /// More bytes of the current line. An error ends the stream.
    fn push(&mut self, bytes: &[u8]) -> Result<(), Error>;
    /// The current line's CR LF arrived: hand it over and start afresh.
    fn finish(&mut self) -> Self::Line;
}

/// The default sink: the first `limit` bytes of the line and its total length;
/// past the limit, an error or the tail discarded, as [`Overflow`] says.
#[derive(Debug)]
pub struct Head {
    limit: usize,
    overflow: Overflow,
    kept: BytesMut,
    total: usize,
}

impl Head {
    /// Lines of at most `limit` bytes (CR LF excluded).
    pub fn new(limit: usize, overflow: Overflow) -> Self {
        Self {
            limit,
            overflow,
            kept: BytesMut::new(),
            total: 0,
        }
    }
}

impl LineSink for Head {
    type Line = Line;

    fn push(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.total += bytes.len();
        let room = self.limit.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
        if self.total > self.limit && self.overflow == Overflow::Error {
            return Err(Error::LineTooLong { max: self.limit });
        }
        Ok(())
    }

    fn finish(&mut self) -> Line {
        let total_len = std::mem::take(&mut self.total);
        Line {
            bytes: self.kept.split().freeze(),
            total_len,
        }
    }
}

/// The line reader state machine. See the module docs.
#[derive(Debug)]
pub struct LineReader<S: LineSink = Head> {
    sink: S,
    /// Bytes of the current line handed to the sink so far.
    total: usize,
    /// The previous piece ended in CR: a terminator if LF comes next, content if
    /// anything else does. Held back from the sink until then.
    pending_cr: bool,
    /// Input fed but not yet scanned (only used through [`LineReader::feed`]).
    pending: BytesMut,
    /// Set once an error was returned: the stream is no longer framed.
    failed: bool,
}

impl LineReader<Head> {
    /// A reader for lines of at most `limit` bytes (CR LF excluded).
    pub fn new(limit: usize, overflow: Overflow) -> Self {
        Self::with_sink(Head::new(limit, overflow))
    }

    /// The configured limit.
    pub fn limit(&self) -> usize {
        self.sink.limit
    }
}

impl<S: LineSink> LineReader<S> {
    /// A reader that hands each line's content to `sink`.
    pub fn with_sink(sink: S) -> Self {
        Self {
            sink,
            total: 0,
            pending_cr: false,
            pending: BytesMut::new(),
            failed: false,
        }
    }

    /// The sink, e.g. to hand it back a line for its buffers.
    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    /// Adds input; take lines out with [`LineReader::next_line`].
    pub fn feed(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// The next complete line of the fed input, if any.
    ///
    /// `Some(Err(_))` is final: after an error the reader yields nothing more.
    pub fn next_line(&mut self) -> Option<Result<S::Line, Error>> {
        let mut pending = std::mem::take(&mut self.pending);
        let out = self.decode_from(&mut pending);
        self.pending = pending;
        out.transpose()
    }

    /// Scans `src`, consuming what it has looked at: every byte goes to the sink
    /// or is the held-back CR. The sink decides what to keep, which is what
    /// keeps memory bounded however long a line is.
    fn decode_from(&mut self, src: &mut BytesMut) -> Result<Option<S::Line>, Error> {
        if self.failed {
            src.clear();
            return Ok(None);
        }
        let result = match memchr::memchr(b'\n', src) {
            None => {
                let chunk = src.split();
                self.absorb(&chunk).map(|()| None)
            }
            Some(lf) => {
                let before = src.split_to(lf);
                src.advance(1);
                self.end_line(&before).map(Some)
            }
        };
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// Bytes of the current line with no LF among them.
    fn absorb(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let Some((&last, _)) = bytes.split_last() else {
            return Ok(());
        };
        self.flush_cr()?;
        let (content, holds_cr) = if last == b'\r' {
            (&bytes[..bytes.len() - 1], true)
        } else {
            (bytes, false)
        };
        self.push(content)?;
        self.pending_cr = holds_cr;
        Ok(())
    }

    /// The bytes before an LF: the line ends here if a CR is right before it.
    fn end_line(&mut self, before: &[u8]) -> Result<S::Line, Error> {
        let terminated = match before.last() {
            Some(&b) => b == b'\r',
            None => self.pending_cr,
        };
        if !terminated {
            // The bytes before the LF count first, as they would had they come
            // in an earlier piece: a too-long line is reported the same way
            // however the input was split (found by the netkit_line fuzz target).
            self.flush_cr()?;
            self.push(before)?;
            return Err(Error::BareLf { offset: self.total });
        }
        if let Some((_, content)) = before.split_last() {
            self.flush_cr()?;
            self.push(content)?;
        }
        self.pending_cr = false;
        self.total = 0;
        Ok(self.sink.finish())
    }

    /// A held CR followed by more than LF was content after all.
    fn flush_cr(&mut self) -> Result<(), Error> {
        if std::mem::take(&mut self.pending_cr) {
            self.push(b"\r")?;
        }
        Ok(())
    }

    fn push(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.total += bytes.len();
        self.sink.push(bytes)
    }
}

impl<S: LineSink> Decoder for LineReader<S> {
    type Item = S::Line;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<S::Line>, Error> {
        self.decode_from(src)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<S::Line>, Error> {
        match self.decode_from(src)? {
            Some(line) => Ok(Some(line)),
            None if (self.total > 0 || self.pending_cr) && !self.failed => {
                let got = self.total + usize::from(self.pending_cr);
                Err(Error::UnexpectedEof {
                    part: "line",
                    got,
                    expected: got + 2,
                })
            }
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
    fn the_same_error_however_the_input_is_split() {
        // Found by fuzzing: a long line with a bare LF is "too long" whether the
        // LF comes in the same piece or a later one.
        let mut whole = LineReader::new(1, Overflow::Error);
        whole.feed(b"xyz\n");
        let mut split = LineReader::new(1, Overflow::Error);
        split.feed(b"xy");
        let first = split.next_line();
        split.feed(b"z\n");
        let err = first
            .or_else(|| split.next_line())
            .unwrap()
            .unwrap_err()
            .to_string();
        assert_eq!(whole.next_line().unwrap().unwrap_err().to_string(), err);
        assert_eq!(err, "line longer than 1 bytes");
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
            assert!(r.sink.kept.len() <= 16);
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
                proptest::prop_assert!(r.sink.kept.len() <= limit);
            }
            proptest::prop_assert_eq!(got, model(&input, limit));
        }
    }
}
