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

impl Word {
    fn new() -> Self {
        Self {
            head: Vec::new(),
            len: 0,
            name_chars: true,
            digits: true,
            value: Some(0),
        }
    }

    fn push(&mut self, b: u8) {
        if self.head.len() < WORD_HEAD {
            self.head.push(b);
        }
        self.len += 1;
        self.name_chars &= b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_');
        if b.is_ascii_digit() {
            self.value = self
                .value
                .and_then(|v| v.checked_mul(10)?.checked_add(u64::from(b - b'0')));
        } else {
            self.digits = false;
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
#[derive(Debug, Default)]
pub struct RequestSink {
    line: RequestLine,
    current: Option<Word>,
}

impl LineSink for RequestSink {
    type Line = RequestLine;

    fn push(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.line.len += bytes.len();
        for &b in bytes {
            if b >= 0x80 {
                self.line.non_ascii = true;
            }
            if b == b' ' {
                self.end_word();
            } else {
                self.current.get_or_insert_with(Word::new).push(b);
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> RequestLine {
        self.end_word();
        std::mem::take(&mut self.line)
    }
}

impl RequestSink {
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
                    match l { Ok(l) => split.push(l), Err(_) => break 'outer }
                }
            }
            proptest::prop_assert_eq!(whole, split);
        }
    }
}
