//! HFTP commands, status codes and the check order (spec: hftp.md, "Responses",
//! "Commands", "Argument rules and check order"), pure: no socket, no file.
//!
//! [`parse`] applies the checks that need only the request line (1–4: argument
//! count, file name, digits, fourth word); the server applies 5–7 (existence,
//! bounds, readability) with [`check_bounds`] and its file system.

use crate::request::{RequestLine, Word};

/// Longest file name the file system accepts (`NAME_MAX`); longer is `202`.
pub const NAME_MAX: usize = 255;

/// Every status the protocol has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 0
    Ok,
    /// 100, fatal: LF outside CR LF.
    BadEol,
    /// 101, fatal: empty, unparseable or abusive request.
    BadRequest,
    /// 199, fatal: the file exists but cannot be read.
    InternalError,
    /// 200: unknown command word.
    InvalidCommand,
    /// 201: wrong argument count or form.
    InvalidArguments,
    /// 202: no such file.
    FileNotFound,
    /// 203: offset + size past the end.
    BadOffset,
}

impl Status {
    /// The numeric code.
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 0,
            Status::BadEol => 100,
            Status::BadRequest => 101,
            Status::InternalError => 199,
            Status::InvalidCommand => 200,
            Status::InvalidArguments => 201,
            Status::FileNotFound => 202,
            Status::BadOffset => 203,
        }
    }

    /// The text after the code.
    pub fn text(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadEol => "BAD EOL",
            Status::BadRequest => "BAD REQUEST",
            Status::InternalError => "INTERNAL SERVER ERROR",
            Status::InvalidCommand => "NO SUCH COMMAND",
            Status::InvalidArguments => "INVALID ARGUMENTS FOR COMMAND",
            Status::FileNotFound => "FILE NOT FOUND",
            Status::BadOffset => "OFFSET EXCEEDS FILE SIZE",
        }
    }

    /// Fatal statuses close the connection after the status line.
    pub fn is_fatal(self) -> bool {
        matches!(
            self,
            Status::BadEol | Status::BadRequest | Status::InternalError
        )
    }

    /// The status line, with its CR LF (`code`, a space, `text`; a test checks
    /// they agree).
    pub fn line(self) -> &'static str {
        match self {
            Status::Ok => "0 OK\r\n",
            Status::BadEol => "100 BAD EOL\r\n",
            Status::BadRequest => "101 BAD REQUEST\r\n",
            Status::InternalError => "199 INTERNAL SERVER ERROR\r\n",
            Status::InvalidCommand => "200 NO SUCH COMMAND\r\n",
            Status::InvalidArguments => "201 INVALID ARGUMENTS FOR COMMAND\r\n",
            Status::FileNotFound => "202 FILE NOT FOUND\r\n",
            Status::BadOffset => "203 OFFSET EXCEEDS FILE SIZE\r\n",
        }
    }

    /// The status for a code, if there is one.
    pub fn from_code(code: u16) -> Option<Status> {
        [
            Status::Ok,
            Status::BadEol,
            Status::BadRequest,
            Status::InternalError,
            Status::InvalidCommand,
            Status::InvalidArguments,
            Status::FileNotFound,
            Status::BadOffset,
        ]
        .into_iter()
        .find(|s| s.code() == code)
    }
}

/// How a slice is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Standard base64 on one line (the default).
    Base64,
    /// `Content-Length: N`, an empty line, N raw bytes.
    Raw,
}

/// A request that passed checks 1–4; names borrow from the request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// `get_file_listing`
    List,
    /// `get_metadata NAME`
    Metadata(&'a str),
    /// `get_slice NAME OFFSET SIZE [raw|base64]`; `None` numbers did not fit u64.
    Slice {
        /// File name (its first bytes if it is longer than any real name).
        name: &'a str,
        /// Offset, if it fit.
        offset: Option<u64>,
        /// Size, if it fit.
        size: Option<u64>,
        /// How to send it.
        encoding: Encoding,
    },
    /// `help`
    Help,
    /// `quit`
    Quit,
}

/// The commands, in the order `help` lists them.
pub const COMMANDS: [&str; 5] = [
    "get_file_listing",
    "get_metadata",
    "get_slice",
    "help",
    "quit",
];

fn name_of(w: &Word) -> Result<&str, Status> {
    if !w.name_chars || w.is(".") || w.is("..") {
        return Err(Status::InvalidArguments);
    }
    // All name characters are ASCII, so the head is valid text.
    std::str::from_utf8(&w.head).map_err(|_| Status::InvalidArguments)
}

fn number(w: &Word) -> Result<Option<u64>, Status> {
    if w.digits {
        Ok(w.value)
    } else {
        Err(Status::InvalidArguments)
    }
}

/// Checks 1–4 (and the line-level rules: empty or non-ASCII is `101`).
pub fn parse(line: &RequestLine) -> Result<Command<'_>, Status> {
    let Some(cmd) = line.words.first() else {
        return Err(Status::BadRequest);
    };
    if line.non_ascii {
        return Err(Status::BadRequest);
    }
    let args = line.word_count - 1;
    let w = &line.words;
    let count = |n: &[usize]| {
        if n.contains(&args) {
            Ok(())
        } else {
            Err(Status::InvalidArguments)
        }
    };
    if cmd.is("get_file_listing") {
        count(&[0])?;
        Ok(Command::List)
    } else if cmd.is("get_metadata") {
        count(&[1])?;
        Ok(Command::Metadata(name_of(&w[1])?))
    } else if cmd.is("get_slice") {
        count(&[3, 4])?;
        let name = name_of(&w[1])?;
        let offset = number(&w[2])?;
        let size = number(&w[3])?;
        let encoding = match w.get(4) {
            None => Encoding::Base64,
            Some(x) if x.is("base64") => Encoding::Base64,
            Some(x) if x.is("raw") => Encoding::Raw,
            Some(_) => return Err(Status::InvalidArguments),
        };
        Ok(Command::Slice {
            name,
            offset,
            size,
            encoding,
        })
    } else if cmd.is("help") {
        count(&[0])?;
        Ok(Command::Help)
    } else if cmd.is("quit") {
        count(&[0])?;
        Ok(Command::Quit)
    } else {
        Err(Status::InvalidCommand)
    }
}

/// Check 6: the slice lies within a file of `file_size` bytes (numbers that did
/// not fit, or whose sum overflows, are past any end).
pub fn check_bounds(
    offset: Option<u64>,
    size: Option<u64>,
    file_size: u64,
) -> Result<(u64, u64), Status> {
    match (offset, size) {
        (Some(o), Some(s)) if o.checked_add(s).is_some_and(|end| end <= file_size) => Ok((o, s)),
        _ => Err(Status::BadOffset),
    }
}

/// The `help` response body (after `0 OK`).
pub fn help_body() -> String {
    let mut s = String::new();
    for c in COMMANDS {
        s.push_str(c);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s
}

/// True for names a client could request (listing skips the others).
pub fn requestable(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= NAME_MAX
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::RequestSink;
    use netkit::LineReader;

    fn req(text: &[u8]) -> Result<Command<'static>, Status> {
        let mut r = LineReader::with_sink(RequestSink::default());
        r.feed(text);
        r.feed(b"\r\n");
        // Leaked so the command can borrow its names in a test's assertions.
        parse(Box::leak(Box::new(r.next_line().unwrap().unwrap())))
    }

    #[test]
    fn status_lines() {
        assert_eq!(Status::Ok.line(), "0 OK\r\n");
        assert_eq!(Status::BadEol.line(), "100 BAD EOL\r\n");
        assert_eq!(
            Status::InvalidArguments.line(),
            "201 INVALID ARGUMENTS FOR COMMAND\r\n"
        );
        for code in 0..=u16::MAX {
            if let Some(s) = Status::from_code(code) {
                assert_eq!(s.line(), format!("{} {}\r\n", s.code(), s.text()));
            }
        }
        assert!(Status::InternalError.is_fatal() && !Status::FileNotFound.is_fatal());
        assert_eq!(Status::from_code(203), Some(Status::BadOffset));
    }

    #[test]
    fn commands_and_argument_counts() {
        assert_eq!(req(b"get_file_listing"), Ok(Command::List));
        assert_eq!(req(b"  help  "), Ok(Command::Help));
        assert_eq!(req(b"quit"), Ok(Command::Quit));
        assert_eq!(req(b"get_metadata a.txt"), Ok(Command::Metadata("a.txt")));
        for bad in [
            &b"quit now"[..],
            b"help me",
            b"get_file_listing x",
            b"get_metadata",
            b"get_metadata a b",
            b"get_slice a 1",
            b"get_slice a 1 2 raw x",
        ] {
            assert_eq!(
                req(bad),
                Err(Status::InvalidArguments),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            req(b"GET_METADATA a"),
            Err(Status::InvalidCommand),
            "case-sensitive"
        );
        assert_eq!(req(b"frobnicate"), Err(Status::InvalidCommand));
        assert_eq!(req(b""), Err(Status::BadRequest));
        assert_eq!(req(b"    "), Err(Status::BadRequest));
        assert_eq!(req("get_metadata año".as_bytes()), Err(Status::BadRequest));
    }

    #[test]
    fn check_order() {
        // 2 before existence: a path is 201, not 202.
        assert_eq!(
            req(b"get_metadata ../secret"),
            Err(Status::InvalidArguments)
        );
        assert_eq!(req(b"get_metadata ."), Err(Status::InvalidArguments));
        assert_eq!(req(b"get_metadata a\0b"), Err(Status::InvalidArguments));
        // 3: digits only.
        assert_eq!(req(b"get_slice a -1 2"), Err(Status::InvalidArguments));
        assert_eq!(req(b"get_slice a x 2"), Err(Status::InvalidArguments));
        // 4 before bounds.
        assert_eq!(req(b"get_slice a 1 2 hex"), Err(Status::InvalidArguments));
        assert_eq!(
            req(b"get_slice a 1 2 raw"),
            Ok(Command::Slice {
                name: "a",
                offset: Some(1),
                size: Some(2),
                encoding: Encoding::Raw
            })
        );
        // Too large for an integer: kept as None, answered 203 at the bounds check.
        let Ok(Command::Slice { offset, size, .. }) = req(b"get_slice a 99999999999999999999999 1")
        else {
            panic!()
        };
        assert_eq!(check_bounds(offset, size, 10), Err(Status::BadOffset));
        assert_eq!(
            check_bounds(Some(u64::MAX), Some(1), u64::MAX),
            Err(Status::BadOffset),
            "sum overflows"
        );
        assert_eq!(
            check_bounds(Some(4), Some(6), 10),
            Ok((4, 6)),
            "ends exactly at EOF"
        );
        assert_eq!(check_bounds(Some(10), Some(0), 10), Ok((10, 0)));
        assert_eq!(check_bounds(Some(4), Some(7), 10), Err(Status::BadOffset));
    }

    #[test]
    fn listing_skips_unrequestable_names() {
        assert!(requestable("report-2024_v1.pdf"));
        assert!(!requestable("with space"));
        assert!(!requestable("ñ.txt"));
        assert!(!requestable(&"a".repeat(256)));
        assert_eq!(
            help_body(),
            "get_file_listing\r\nget_metadata\r\nget_slice\r\nhelp\r\nquit\r\n\r\n"
        );
    }
}
