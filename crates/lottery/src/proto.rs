//! The lottery wire protocol, bytes ↔ messages, pure (spec: lottery.md, "Wire
//! protocol"; documented in docs/protocols/lottery.md).
//!
//! Client → server: `code u8 | agency u8 | len u32 BE | payload`.
//! Server → client: `code u8 | len u32 BE | payload`.
//! No message exceeds [`MAX_MESSAGE`] bytes including its header; the announced
//! length is checked against the limit as soon as the header is in, before any
//! byte of payload is buffered for it (check, then parse).
//!
//! Codes 1 and 2 are the seed's (`SEND_BET`, `SEND_LAST_BET`: bets joined by NUL).
//! Code 3 (`SEND_BATCH`) adds the place of the batch's first bet in the
//! agency's list, so a retried batch is recognised (by its place and content)
//! and stored once; code 4 asks for the agency's winners (waiting at most a
//! bound the client may set); code 5 asks where the agency's bets stand.

use bytes::{Buf, BufMut, BytesMut};
use netkit::Limit;
use netkit::frame::{be_u32_at, check_frame};
use tokio_util::codec::{Decoder, Encoder};

use crate::Error;
use crate::bet::Bet;

/// Largest message on the wire, header included (the seed's 8 KiB).
pub const MAX_MESSAGE: usize = 8192;
/// Client → server header length.
pub const REQUEST_HEADER: usize = 6;
/// Server → client header length.
pub const RESPONSE_HEADER: usize = 5;
/// Payload limit of a request.
pub const REQUEST_LIMIT: Limit =
    Limit::new("lottery request payload", MAX_MESSAGE - REQUEST_HEADER);
/// Payload limit of a response.
pub const RESPONSE_LIMIT: Limit =
    Limit::new("lottery response payload", MAX_MESSAGE - RESPONSE_HEADER);
/// Bytes of a `SEND_BATCH` payload before its bets: `first u32 | flags u8`.
pub const BATCH_PREFIX: usize = 5;
/// Bytes of a `PROGRESS` payload: `next u32 | digest u64 | flags u8`.
pub const PROGRESS_LEN: usize = 13;

/// Request codes (client → server).
pub mod req {
    /// Bets; more follow from this agency (seed).
    pub const SEND_BET: u8 = 1;
    /// Bets; the agency's last batch (seed).
    pub const SEND_LAST_BET: u8 = 2;
    /// `first u32 | flags u8 (bit 0: last) | bets`: `first` is the place of
    /// the batch's first bet in the agency's list; idempotent by place and content.
    pub const SEND_BATCH: u8 = 3;
    /// Empty, or `wait_ms u32`: the agency's winners once the draw has
    /// happened, or `NOT_YET` after at most that long (capped by the server).
    pub const ASK_WINNERS: u8 = 4;
    /// Empty: where the agency's bets stand (`PROGRESS`).
    pub const RESUME: u8 = 5;
}

/// Response codes (server → client).
pub mod resp {
    /// Every bet of the message is durably stored (seed), len 0.
    pub const BET_PROCESSED: u8 = 1;
    /// Winners' documentos joined by NUL; the last (or only) part.
    pub const WINNERS: u8 = 2;
    /// Winners' documentos joined by NUL; more parts follow.
    pub const WINNERS_PART: u8 = 3;
    /// UTF-8 text saying what was wrong.
    pub const ERROR: u8 = 4;
    /// `done u16 | expected u16`: no draw yet; ask again.
    pub const NOT_YET: u8 = 5;
    /// `next u32 | digest u64 | flags u8 (bit 0: last batch stored)`.
    pub const PROGRESS: u8 = 6;
    /// UTF-8 text: another live connection speaks for this agency.
    pub const AGENCY_TAKEN: u8 = 7;
    /// UTF-8 text: the batch could not be stored now (the server's database
    /// is unreachable); nothing of it is acknowledged; send it again, here
    /// later or to another server.
    pub const UNAVAILABLE: u8 = 8;
}

/// A decoded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A batch of bets.
    Bets {
        /// The agency sending.
        agency: u8,
        /// Place of the first bet in the agency's list (`SEND_BATCH`), `None`
        /// for the seed's codes.
        first: Option<u32>,
        /// This is the agency's last batch.
        last: bool,
        /// The bets (possibly none, for a bare "I am done").
        bets: Vec<Bet>,
    },
    /// The agency's winners.
    AskWinners {
        /// The agency asking.
        agency: u8,
        /// Longest wait for the draw the client wants, in milliseconds.
        wait_ms: Option<u32>,
    },
    /// Where the agency's bets stand.
    Resume {
        /// The agency asking.
        agency: u8,
    },
}

impl Request {
    /// The agency the request speaks for.
    pub fn agency(&self) -> u8 {
        match self {
            Request::Bets { agency, .. }
            | Request::AskWinners { agency, .. }
            | Request::Resume { agency } => *agency,
        }
    }
}

/// What the server's decoder yields: a request, or a batch that is well framed
/// but holds a malformed bet (answered with an error; the connection goes on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A valid request.
    Request(Request),
    /// A batch rejected whole.
    Rejected {
        /// The agency that sent it.
        agency: u8,
        /// Why, naming the bet.
        reason: String,
    },
}

/// A response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The batch is stored.
    BetProcessed,
    /// (Part of) the agency's winners.
    Winners {
        /// Documentos of winning bets.
        documentos: Vec<String>,
        /// More parts follow.
        more: bool,
    },
    /// Something was wrong.
    Error(String),
    /// No draw yet: this many agencies of those expected are done.
    NotYet {
        /// Agencies that sent their last batch.
        done: u16,
        /// Agencies the draw waits for.
        expected: u16,
    },
    /// Where the agency's bets stand.
    Progress {
        /// Bets stored from place 0 without a gap: the place to resume from.
        next: u32,
        /// Digest of those bets ([`crate::digest::range_digest`]).
        digest: u64,
        /// The agency's last batch is stored.
        done: bool,
    },
    /// Another live connection speaks for this agency.
    AgencyTaken(String),
    /// The batch could not be stored now; resend it (here or elsewhere).
    Unavailable(String),
}

/// Splits a bets payload at NUL bytes and validates every bet; the first bad bet
/// fails the whole batch. A single trailing NUL is tolerated.
pub fn parse_bets(payload: &[u8]) -> Result<Vec<Bet>, String> {
    if payload.is_empty() {
        return Ok(Vec::new());
    }
    let body = payload.strip_suffix(&[0]).unwrap_or(payload);
    body.split(|&b| b == 0)
        .enumerate()
        .map(|(i, raw)| {
            Bet::parse_bytes(raw).map_err(|e| format!("bet {} of the batch: {e}", i + 1))
        })
        .collect()
}

/// Decodes one request from its header fields and payload.
pub fn decode_request(code: u8, agency: u8, payload: &[u8]) -> Result<Incoming, Error> {
    let (first, last, bets) = match code {
        req::SEND_BET | req::SEND_LAST_BET => (None, code == req::SEND_LAST_BET, payload),
        req::SEND_BATCH => {
            let Some((prefix, bets)) = payload.split_first_chunk::<BATCH_PREFIX>() else {
                return Err(Error::Malformed {
                    what: "SEND_BATCH",
                    why: format!(
                        "payload of {} bytes is shorter than its 5-byte prefix",
                        payload.len()
                    ),
                });
            };
            let first = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
            if prefix[4] & !1 != 0 {
                return Err(Error::Malformed {
                    what: "SEND_BATCH",
                    why: format!("unknown flags {:#04x}", prefix[4]),
                });
            }
            (Some(first), prefix[4] & 1 == 1, bets)
        }
        req::ASK_WINNERS => {
            let wait_ms = match payload {
                [] => None,
                [a, b, c, d] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
                _ => {
                    return Err(Error::Malformed {
                        what: "ASK_WINNERS",
                        why: format!(
                            "payload must be empty or a 4-byte wait, got {} bytes",
                            payload.len()
                        ),
                    });
                }
            };
            return Ok(Incoming::Request(Request::AskWinners { agency, wait_ms }));
        }
        req::RESUME => {
            if !payload.is_empty() {
                return Err(Error::Malformed {
                    what: "RESUME",
                    why: format!("payload must be empty, got {} bytes", payload.len()),
                });
            }
            return Ok(Incoming::Request(Request::Resume { agency }));
        }
        _ => {
            return Err(Error::UnknownCode {
                code,
                header: vec![code, agency],
            });
        }
    };
    Ok(match parse_bets(bets) {
        Ok(bets) => Incoming::Request(Request::Bets {
            agency,
            first,
            last,
            bets,
        }),
        Err(reason) => Incoming::Rejected { agency, reason },
    })
}

/// Appends the wire form of a request.
pub fn encode_request(r: &Request, out: &mut BytesMut) {
    match r {
        Request::Bets {
            agency,
            first,
            last,
            bets,
        } => {
            let code = match (first, last) {
                (Some(_), _) => req::SEND_BATCH,
                (None, true) => req::SEND_LAST_BET,
                (None, false) => req::SEND_BET,
            };
            let prefix = if first.is_some() { BATCH_PREFIX } else { 0 };
            let len = prefix + bets_len(bets);
            out.reserve(REQUEST_HEADER + len);
            out.put_u8(code);
            out.put_u8(*agency);
            out.put_u32(len as u32);
            if let Some(first) = first {
                out.put_u32(*first);
                out.put_u8(u8::from(*last));
            }
            for (i, b) in bets.iter().enumerate() {
                if i > 0 {
                    out.put_u8(0);
                }
                // Display writes straight into the buffer.
                let _ = std::fmt::Write::write_fmt(&mut BytesWriter(out), format_args!("{b}"));
            }
        }
        Request::AskWinners { agency, wait_ms } => {
            out.put_u8(req::ASK_WINNERS);
            out.put_u8(*agency);
            match wait_ms {
                Some(ms) => {
                    out.put_u32(4);
                    out.put_u32(*ms);
                }
                None => out.put_u32(0),
            }
        }
        Request::Resume { agency } => {
            out.put_u8(req::RESUME);
            out.put_u8(*agency);
            out.put_u32(0);
        }
    }
}

/// Bytes the bets take in a payload: their text joined by NULs.
pub fn bets_len(bets: &[Bet]) -> usize {
    bets.iter().map(Bet::encoded_len).sum::<usize>() + bets.len().saturating_sub(1)
}

struct BytesWriter<'a>(&'a mut BytesMut);

impl std::fmt::Write for BytesWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.put_slice(s.as_bytes());
        Ok(())
    }
}

/// Appends the wire form of a response. Winners must fit one message (the
/// server splits long lists into parts with [`winners_parts`]).
pub fn encode_response(r: &Response, out: &mut BytesMut) {
    let (code, payload): (u8, Vec<u8>) = match r {
        Response::BetProcessed => (resp::BET_PROCESSED, Vec::new()),
        Response::Winners { documentos, more } => (
            if *more {
                resp::WINNERS_PART
            } else {
                resp::WINNERS
            },
            documentos.join("\0").into_bytes(),
        ),
        Response::Error(text) => (resp::ERROR, fitted(text)),
        Response::AgencyTaken(text) => (resp::AGENCY_TAKEN, fitted(text)),
        Response::Unavailable(text) => (resp::UNAVAILABLE, fitted(text)),
        Response::NotYet { done, expected } => {
            let mut p = done.to_be_bytes().to_vec();
            p.extend_from_slice(&expected.to_be_bytes());
            (resp::NOT_YET, p)
        }
        Response::Progress { next, digest, done } => {
            let mut p = Vec::with_capacity(PROGRESS_LEN);
            p.extend_from_slice(&next.to_be_bytes());
            p.extend_from_slice(&digest.to_be_bytes());
            p.push(u8::from(*done));
            (resp::PROGRESS, p)
        }
    };
    out.reserve(RESPONSE_HEADER + payload.len());
    out.put_u8(code);
    out.put_u32(payload.len() as u32);
    out.put_slice(&payload);
}

/// An error text cut to fit one message, at a char boundary.
fn fitted(text: &str) -> Vec<u8> {
    let mut end = text.len().min(RESPONSE_LIMIT.max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.as_bytes()[..end].to_vec()
}

/// Splits a winners list into responses that each fit one message.
pub fn winners_parts(documentos: &[String]) -> Vec<Response> {
    let mut parts = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut len = 0;
    for d in documentos {
        let extra = d.len() + usize::from(!current.is_empty());
        if len + extra > RESPONSE_LIMIT.max && !current.is_empty() {
            parts.push(std::mem::take(&mut current));
            len = 0;
        }
        len += d.len() + usize::from(!current.is_empty());
        current.push(d.clone());
    }
    parts.push(current);
    let n = parts.len();
    parts
        .into_iter()
        .enumerate()
        .map(|(i, documentos)| Response::Winners {
            documentos,
            more: i + 1 < n,
        })
        .collect()
}

/// Decodes one response from its code and payload.
pub fn decode_response(code: u8, payload: &[u8]) -> Result<Response, Error> {
    let text = |what| {
        std::str::from_utf8(payload).map_err(|e| Error::Malformed {
            what,
            why: format!("invalid UTF-8 after byte {}", e.valid_up_to()),
        })
    };
    match code {
        resp::BET_PROCESSED if payload.is_empty() => Ok(Response::BetProcessed),
        resp::BET_PROCESSED => Err(Error::Malformed {
            what: "BET_PROCESSED",
            why: format!("payload must be empty, got {} bytes", payload.len()),
        }),
        resp::WINNERS | resp::WINNERS_PART => {
            let t = text("WINNERS")?;
            let documentos = if t.is_empty() {
                Vec::new()
            } else {
                t.split('\0').map(str::to_string).collect()
            };
            Ok(Response::Winners {
                documentos,
                more: code == resp::WINNERS_PART,
            })
        }
        resp::ERROR => Ok(Response::Error(text("ERROR")?.to_string())),
        resp::AGENCY_TAKEN => Ok(Response::AgencyTaken(text("AGENCY_TAKEN")?.to_string())),
        resp::UNAVAILABLE => Ok(Response::Unavailable(text("UNAVAILABLE")?.to_string())),
        resp::NOT_YET => match payload {
            [a, b, c, d] => Ok(Response::NotYet {
                done: u16::from_be_bytes([*a, *b]),
                expected: u16::from_be_bytes([*c, *d]),
            }),
            _ => Err(Error::Malformed {
                what: "NOT_YET",
                why: format!("payload must be 4 bytes, got {}", payload.len()),
            }),
        },
        resp::PROGRESS => {
            let Some(p) = payload
                .first_chunk::<PROGRESS_LEN>()
                .filter(|_| payload.len() == PROGRESS_LEN)
            else {
                return Err(Error::Malformed {
                    what: "PROGRESS",
                    why: format!(
                        "payload must be {PROGRESS_LEN} bytes, got {}",
                        payload.len()
                    ),
                });
            };
            if p[12] & !1 != 0 {
                return Err(Error::Malformed {
                    what: "PROGRESS",
                    why: format!("unknown flags {:#04x}", p[12]),
                });
            }
            Ok(Response::Progress {
                next: u32::from_be_bytes([p[0], p[1], p[2], p[3]]),
                digest: u64::from_be_bytes([p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11]]),
                done: p[12] & 1 == 1,
            })
        }
        _ => Err(Error::UnknownCode {
            code,
            header: vec![code],
        }),
    }
}

/// The server side: decodes requests, encodes responses.
#[derive(Debug, Default, Clone, Copy)]
pub struct ServerCodec;

impl Decoder for ServerCodec {
    type Item = Incoming;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Incoming>, Error> {
        let Some(span) = check_frame::<REQUEST_HEADER>(src, REQUEST_LIMIT, |h| be_u32_at(h, 2))?
        else {
            // Reserve for the rest of this frame only (never past the limit).
            if let Some(h) = src.first_chunk::<REQUEST_HEADER>() {
                let want = REQUEST_HEADER + be_u32_at(h, 2) as usize;
                src.reserve(want.saturating_sub(src.len()));
            }
            return Ok(None);
        };
        let frame = src.split_to(span.total_len());
        let [code, agency, ..] = span.header;
        decode_request(code, agency, &frame[REQUEST_HEADER..])
            .map(Some)
            .map_err(|e| match e {
                Error::UnknownCode { code, .. } => Error::UnknownCode {
                    code,
                    header: span.header.to_vec(),
                },
                e => e,
            })
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Incoming>, Error> {
        match self.decode(src)? {
            Some(x) => Ok(Some(x)),
            None if src.is_empty() => Ok(None),
            None => Err(netkit::Error::UnexpectedEof {
                part: if src.len() < REQUEST_HEADER {
                    "header"
                } else {
                    "payload"
                },
                got: src.len(),
                expected: src
                    .first_chunk::<REQUEST_HEADER>()
                    .map_or(REQUEST_HEADER, |h| {
                        REQUEST_HEADER + be_u32_at(h, 2) as usize
                    }),
            }
            .into()),
        }
    }
}

impl Encoder<&Response> for ServerCodec {
    type Error = Error;
    fn encode(&mut self, r: &Response, dst: &mut BytesMut) -> Result<(), Error> {
        encode_response(r, dst);
        Ok(())
    }
}

/// The client side: encodes requests, decodes responses.
#[derive(Debug, Default, Clone, Copy)]
pub struct ClientCodec;

impl Decoder for ClientCodec {
    type Item = Response;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Response>, Error> {
        let Some(span) = check_frame::<RESPONSE_HEADER>(src, RESPONSE_LIMIT, |h| be_u32_at(h, 1))?
        else {
            return Ok(None);
        };
        let code = span.header[0];
        src.advance(RESPONSE_HEADER);
        let payload = src.split_to(span.body_len);
        decode_response(code, &payload).map(Some)
    }
}

impl Encoder<&Request> for ClientCodec {
    type Error = Error;
    fn encode(&mut self, r: &Request, dst: &mut BytesMut) -> Result<(), Error> {
        encode_request(r, dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
