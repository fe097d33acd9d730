//! The two wire formats (spec "Wire formats"): `course`, the seed's ASCII
//! header, and `binary`, a compact checksummed header. Both turn one datagram
//! into one [`Segment`] and back; neither touches a socket.

pub mod binary;
pub mod course;

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;

use crate::error::Error;
use crate::segment::Segment;

/// Largest UDP payload over IPv4 (65,535 − 8 − 20).
pub const MAX_DATAGRAM: usize = 65_507;

/// Which header a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `SYN|||ACK|||FIN|||SEQ|||DATA`, the seed's header. One number per segment,
    /// one counter shared by both directions (see `docs/protocols/rdt.md`).
    #[default]
    Course,
    /// A fixed 20-byte header with a CRC-32; corrupt datagrams are dropped.
    Binary,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Course => "course",
            Format::Binary => "binary",
        }
    }

    /// Largest data field a segment can carry in one datagram.
    pub fn max_mss(self) -> usize {
        match self {
            Format::Course => MAX_DATAGRAM - course::MAX_HEADER,
            Format::Binary => MAX_DATAGRAM - binary::HEADER,
        }
    }

    /// Appends the datagram for `segment` to `out`.
    pub fn encode(self, segment: &Segment, out: &mut Vec<u8>) {
        match self {
            Format::Course => course::encode(segment, out),
            Format::Binary => binary::encode(segment, out),
        }
    }

    /// Appends the header of `segment`'s datagram to `head` and returns the
    /// rest of it (the payload, uncopied): `head` then the payload is what
    /// [`Format::encode`] writes.
    pub fn encode_split(self, segment: &Segment, head: &mut Vec<u8>) -> Bytes {
        match self {
            Format::Course => course::encode_split(segment, head),
            Format::Binary => binary::encode_split(segment, head),
        }
    }

    /// Parses one datagram; the error names the field that was wrong.
    pub fn decode(self, datagram: &[u8]) -> Result<Segment, Error> {
        let copy = |range| Bytes::copy_from_slice(&datagram[range]);
        match self {
            Format::Course => course::decode_with(datagram, copy),
            Format::Binary => binary::decode_with(datagram, copy),
        }
    }

    /// [`Format::decode`] of a datagram in a buffer of its own: the payload
    /// is a slice of that buffer instead of a copy.
    pub fn decode_shared(self, datagram: &Bytes) -> Result<Segment, Error> {
        let share = |range| datagram.slice(range);
        match self {
            Format::Course => course::decode_with(datagram, share),
            Format::Binary => binary::decode_with(datagram, share),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "course" => Ok(Format::Course),
            "binary" => Ok(Format::Binary),
            other => Err(format!(
                "unknown format {other:?} (expected course or binary)"
            )),
        }
    }
}
