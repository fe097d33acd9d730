//! What the server keeps of a request line (spec: hftp.md, "Requests"): a
//! summary of each word, built as bytes arrive, in constant memory however long
//! the line is. So a `get_metadata` with a 5 MiB file name is judged exactly as
//! the whole line would be (`202`), without holding 5 MiB.
//!
//! Words are separated by runs of spaces; leading and trailing spaces are
//! ignored. Per word: its first [`WORD_HEAD`] bytes, its length, whether it is
//! all file-name characters (`A-Z a-z 0-9 . - _`), and its value if it is all
//! digits (or that it overflowed). Per line: the number of words, and whether a
//! byte outside ASCII appeared.

use netkit::{Error, LineSink};

/// Bytes kept of each word (longer than any command, number or usable name).
pub const WORD_HEAD: usize = 1024;
/// Words summarised; later ones are only counted.
pub const MAX_WORDS: usize = 5;

/// One word of a request line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Word {
    /// Its first [`WORD_HEAD`] bytes.
    pub head: Vec<u8>,
    /// Its whole length.
    pub len: usize,
    /// Every byte is a file-name character.
    pub name_chars: bool,
    /// Every byte is an ASCII digit.
    pub digits: bool,
    /// Its value when all digits, `None` if it does not fit a `u64`.
    pub value: Option<u64>,
}

/// Head capacity of a fresh word: any command and any usual name fits without
/// growing it (growing byte by byte showed as the server's largest user-space cost).
const HEAD_START: usize = 32;

impl Word {
    fn new(head: Vec<u8>) -> Self {
        Self {
            head,
            len: 0,
            name_chars: true,
            digits: true,
            value: Some(0),
        }
    }

    /// More bytes of the word (none of them a space).
    fn extend(&mut self, run: &[u8]) {
        let room = WORD_HEAD.saturating_sub(self.head.len());
        self.head.extend_from_slice(&run[..run.len().min(room)]);
        self.len += run.len();
        for &b in run {
            self.name_chars &= b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_');
            if b.is_ascii_digit() {
                self.value = self
                    .value
                    .and_then(|v| v.checked_mul(10)?.checked_add(u64::from(b - b'0')));
            } else {
                self.digits = false;
            }
        }
    }

    /// The word as text, when it was kept whole.
    pub fn text(&self) -> Option<&str> {
        (self.len == self.head.len())
            .then(|| std::str::from_utf8(&self.head).ok())
            .flatten()
    }

    /// True if the word is exactly `s`.
    pub fn is(&self, s: &str) -> bool {
        self.len == s.len() && self.head == s.as_bytes()
    }
}

/// A request line, summarised.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestLine {
    /// The first [`MAX_WORDS`] words.
    pub words: Vec<Word>,
    /// How many words the line had.
    pub word_count: usize,
    /// A byte outside ASCII appeared.
    pub non_ascii: bool,
    /// Length of the line (without CR LF).
    pub len: usize,
}

/// The [`LineSink`] that builds [`RequestLine`]s.
///
/// A line handed back with [`RequestSink::recycle`] lends its buffers to the
/// next one, so a connection's requests cost no allocation once it is warm.
#[derive(Debug, Default)]
pub struct RequestSink {
    line: RequestLine,
    current: Option<Word>,
    /// Empty head buffers of recycled words (at most [`MAX_WORDS`], none large).
    heads: Vec<Vec<u8>>,
    /// The (empty) word list of a recycled line.
    words: Vec<Word>,
}

impl LineSink for RequestSink {
    type Line = RequestLine;

    fn push(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.line.len += bytes.len();
        self.line.non_ascii |= !bytes.is_ascii();
        let mut runs = bytes.split(|&b| b == b' ');
        // The first run continues the current word; every later run comes
        // after a space, which ended the word before it.
        if let Some(first) = runs.next() {
            self.extend_word(first);
        }
        for run in runs {
            self.end_word();
            self.extend_word(run);
        }
        Ok(())
    }

    fn finish(&mut self) -> RequestLine {
        self.end_word();
        let fresh = RequestLine {
            words: std::mem::take(&mut self.words),
            ..RequestLine::default()
        };
        std::mem::replace(&mut self.line, fresh)
    }
}

impl RequestSink {
    /// Hands back a line the caller is done with, for its buffers.
    pub fn recycle(&mut self, mut line: RequestLine) {
        for word in line.words.drain(..) {
            // A head grown by a long word is let go: idle connections stay small.
            if self.heads.len() < MAX_WORDS && word.head.capacity() <= HEAD_START {
                let mut head = word.head;
                head.clear();
                self.heads.push(head);
            }
        }
        if self.words.capacity() == 0 {
            self.words = line.words;
        }
    }

    fn extend_word(&mut self, run: &[u8]) {
        if run.is_empty() {
            return;
        }
        let heads = &mut self.heads;
        self.current
            .get_or_insert_with(|| {
                Word::new(
                    heads
                        .pop()
                        .unwrap_or_else(|| Vec::with_capacity(HEAD_START)),
                )
            })
            .extend(run);
    }

    fn end_word(&mut self) {
        if let Some(w) = self.current.take() {
            self.line.word_count += 1;
            if self.line.words.len() < MAX_WORDS {
                self.line.words.push(w);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netkit::LineReader;

    fn lines(input: &[u8], piece: usize) -> Vec<RequestLine> {
        let mut r = LineReader::with_sink(RequestSink::default());
        let mut out = Vec::new();
        for chunk in input.chunks(piece.max(1)) {
            r.feed(chunk);
            while let Some(l) = r.next_line() {
                out.push(l.unwrap());
            }
        }
        out
    }

    #[test]
    fn words_runs_of_spaces_and_numbers() {
        let got = lines(b"  get_slice   a.txt 10  20 \r\n", 1);
        let l = &got[0];
        assert_eq!(l.word_count, 4);
        assert!(l.words[0].is("get_slice"));
        assert_eq!(l.words[1].text(), Some("a.txt"));
        assert_eq!((l.words[2].digits, l.words[2].value), (true, Some(10)));
        assert_eq!(l.words[3].value, Some(20));
        assert!(!l.non_ascii);
    }

    #[test]
    fn a_five_mib_name_in_constant_memory() {
        let mut input = b"get_metadata ".to_vec();
        input.extend(std::iter::repeat_n(b'a', 5 << 20));
        input.extend_from_slice(b"\r\n");
        let got = lines(&input, 64 * 1024);
        let l = &got[0];
        assert_eq!(l.word_count, 2);
        assert_eq!(l.words[1].len, 5 << 20);
        assert_eq!(l.words[1].head.len(), WORD_HEAD);
        assert!(l.words[1].name_chars);
        assert_eq!(l.words[1].text(), None);
    }

    #[test]
    fn huge_numbers_overflow_and_bad_chars_are_seen() {
        let l = &lines(b"get_slice f 99999999999999999999999 -1\r\n", 3)[0];
        assert!(l.words[2].digits);
        assert_eq!(l.words[2].value, None);
        assert!(!l.words[3].digits);
        let l = &lines("get_metadata ñ\r\n".as_bytes(), 2)[0];
        assert!(l.non_ascii);
        let l = &lines(b"get_metadata ../x\r\n", 2)[0];
        assert!(!l.words[1].name_chars);
    }

    #[test]
    fn recycled_buffers_never_leak_into_the_next_line() {
        let mut r = LineReader::with_sink(RequestSink::default());
        r.feed(b"get_slice abcdefgh 123 456 raw\r\nget_metadata x\r\n\r\nhelp\r\n");
        let mut seen = Vec::new();
        while let Some(l) = r.next_line() {
            let l = l.unwrap();
            seen.push(
                l.words
                    .iter()
                    .map(|w| w.text().unwrap().to_owned())
                    .collect::<Vec<_>>(),
            );
            r.sink_mut().recycle(l);
        }
        assert_eq!(
            seen,
            [
                vec!["get_slice", "abcdefgh", "123", "456", "raw"],
                vec!["get_metadata", "x"],
                vec![],
                vec!["help"],
            ]
        );
        // A long word's grown buffer is not kept for later lines.
        let mut sink = RequestSink::default();
        sink.push(&[b'a'; 500]).unwrap();
        let line = sink.finish();
        sink.recycle(line);
        assert!(sink.heads.is_empty());
    }

    #[test]
    fn blank_and_many_words() {
        let l = &lines(b"   \r\n", 1)[0];
        assert_eq!(l.word_count, 0);
        let l = &lines(b"a b c d e f g h\r\n", 5)[0];
        assert_eq!((l.word_count, l.words.len()), (8, MAX_WORDS));
    }

    proptest::proptest! {
        #[test]
        fn any_split_gives_the_same_summary(input in proptest::collection::vec(proptest::sample::select(vec![b'a', b'1', b' ', b'\r', b'\n', b'.', 0xc3]), 0..120), piece in 1usize..9) {
            let mut r = LineReader::with_sink(RequestSink::default());
            r.feed(&input);
            let mut whole = Vec::new();
            while let Some(l) = r.next_line() {
                match l { Ok(l) => whole.push(l), Err(_) => break }
            }
            let mut r = LineReader::with_sink(RequestSink::default());
            let mut split = Vec::new();
            'outer: for c in input.chunks(piece) {
                r.feed(c);
                while let Some(l) = r.next_line() {
                    // Recycled lines lend their buffers to the next: same summaries.
                    match l { Ok(l) => { split.push(l.clone()); r.sink_mut().recycle(l); } Err(_) => break 'outer }
                }
            }
            proptest::prop_assert_eq!(whole, split);
        }
    }
}
