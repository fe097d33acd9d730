//! The seed's ASCII header: `SYN|||ACK|||FIN|||SEQ|||DATA`.
//!
//! What we send: flags as `0`/`1`, one decimal number, then the raw data. The
//! number is the acknowledgment number on segments whose job is to acknowledge
//! (pure ACK, SYN-ACK, FIN-ACK: `0|||1|||0|||115|||`) and the sequence number on
//! the others (SYN, FIN, data: `0|||0|||0|||98|||…`).
//!
//! What we accept (liberal, spec "Wire formats"): the datagram is split on the
//! first four `|||` only, so data may hold `|||` and any byte; flags `0`/`1`
//! (also `True`/`False` as some Python peers print them), spaces around fields,
//! numbers of any size (kept modulo 2^32). Decoding fills both `seq` and `ack`
//! with the one number; the core reads the one that the segment's kind means.
//! Bytes after the header of a segment with any flag set are filler, not data
//! (some readings write `SYN|||...|||0`, or a FIN with `-`; see
//! `dialect.rs`): they are kept apart, and written back on segments that
//! carry filler. The datagram's length is kept for the readings whose numbers
//! count whole encoded segments.

use bytes::Bytes;

use crate::error::Error;
use crate::segment::{Flags, Segment};
use crate::seq::Seq;

const SEP: &[u8] = b"|||";
/// The longest header we write: three flags, a 10-digit number, four separators.
pub const MAX_HEADER: usize = 3 + 10 + 4 * SEP.len();

/// Appends `segment` in the course format.
pub fn encode(segment: &Segment, out: &mut Vec<u8>) {
    let payload = encode_split(segment, out);
    out.extend_from_slice(&payload);
}

/// Appends the header of `segment` to `head` and returns what follows it
/// (the data, or a control segment's filler), uncopied (see
/// `binary::encode_split`).
pub fn encode_split(segment: &Segment, head: &mut Vec<u8>) -> Bytes {
    let f = segment.flags;
    let number = if f.ack && segment.data.is_empty() {
        segment.ack
    } else {
        segment.seq
    };
    for flag in [f.syn, f.ack, f.fin] {
        head.push(if flag { b'1' } else { b'0' });
        head.extend_from_slice(SEP);
    }
    push_decimal(number.0, head);
    head.extend_from_slice(SEP);
    if segment.data.is_empty() {
        segment.filler.clone()
    } else {
        segment.data.clone()
    }
}

/// Appends `n` in decimal. Not `to_string`: a heap string and the formatting
/// machinery on every segment, on the path between a segment's arrival and
/// its answer (Stop & Wait's round trip).
fn push_decimal(mut n: u32, out: &mut Vec<u8>) {
    let mut digits = [0u8; 10];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Where the first `|||` of `bytes` starts. A plain scan, not `memmem`: the
/// header's separators are a few bytes in, and a searcher built for each of
/// them costs more than the scan.
fn find_sep(bytes: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'|', &bytes[from..]) {
        let at = from + i;
        if bytes.get(at..at + SEP.len()) == Some(SEP) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// The length of `segment` in this format, as [`encode`] writes it.
pub fn encoded_len(segment: &Segment) -> usize {
    let f = segment.flags;
    let number = if f.ack && segment.data.is_empty() {
        segment.ack
    } else {
        segment.seq
    };
    let digits = number.0.checked_ilog10().map_or(1, |d| d as usize + 1);
    let body = if segment.data.is_empty() {
        segment.filler.len()
    } else {
        segment.data.len()
    };
    3 + 4 * SEP.len() + digits + body
}

/// Parses one course datagram; `body` makes what follows the header from
/// its place in the datagram (a copy, or a slice of a buffer the datagram
/// has to itself: `Format::decode_shared`).
pub(crate) fn decode_with(
    datagram: &[u8],
    body: impl FnOnce(std::ops::Range<usize>) -> Bytes,
) -> Result<Segment, Error> {
    let mut fields = [&[][..]; 4];
    let mut rest = datagram;
    for (i, field) in fields.iter_mut().enumerate() {
        let Some(at) = find_sep(rest) else {
            return Err(malformed(FIELD_NAMES[i], "is not followed by |||"));
        };
        *field = &rest[..at];
        rest = &rest[at + SEP.len()..];
    }
    let flags = Flags {
        syn: flag(fields[0], "SYN")?,
        ack: flag(fields[1], "ACK")?,
        fin: flag(fields[2], "FIN")?,
    };
    let number = Seq(number(fields[3])?);
    let body = if rest.is_empty() {
        Bytes::new()
    } else {
        body(datagram.len() - rest.len()..datagram.len())
    };
    let (data, filler) = if flags.syn || flags.ack || flags.fin {
        (Bytes::new(), body)
    } else {
        (body, Bytes::new())
    };
    Ok(Segment {
        flags,
        seq: number,
        ack: number,
        window: 0,
        data,
        filler,
        wire_len: datagram.len(),
        sack: crate::segment::Sack::default(),
    })
}

const FIELD_NAMES: [&str; 4] = ["SYN", "ACK", "FIN", "SEQ"];

fn malformed(field: &'static str, problem: &'static str) -> Error {
    Error::Malformed {
        format: "course",
        field,
        problem,
    }
}

fn flag(field: &[u8], name: &'static str) -> Result<bool, Error> {
    match field.trim_ascii() {
        b"0" | b"False" => Ok(false),
        b"1" | b"True" => Ok(true),
        _ => Err(malformed(name, "is not 0 or 1")),
    }
}

fn number(field: &[u8]) -> Result<u32, Error> {
    let digits = field.trim_ascii();
    if digits.is_empty() {
        return Err(malformed("SEQ", "is empty"));
    }
    let mut value: u32 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return Err(malformed("SEQ", "is not a decimal number"));
        }
        // Modulo 2^32: a peer whose counter grew past 32 bits still lines up.
        value = value.wrapping_mul(10).wrapping_add(u32::from(b - b'0'));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(datagram: &[u8]) -> Result<Segment, Error> {
        crate::wire::Format::Course.decode(datagram)
    }

    fn encoded(segment: &Segment) -> Vec<u8> {
        let mut out = Vec::new();
        encode(segment, &mut out);
        out
    }

    #[test]
    fn the_seeds_examples_byte_for_byte() {
        assert_eq!(
            encoded(&Segment::syn_ack(Seq(3), Seq(8))),
            b"1|||1|||0|||8|||"
        );
        assert_eq!(
            encoded(&Segment::ack(Seq(0), Seq(115))),
            b"0|||1|||0|||115|||"
        );
        let data = Segment::data(Seq(98), Bytes::from_static(b"Mensaje de prueba"));
        assert_eq!(encoded(&data), b"0|||0|||0|||98|||Mensaje de prueba");
        assert_eq!(Seq(98).plus(data.data.len()), Seq(115));
    }

    #[test]
    fn syn_and_fin_carry_their_sequence_number() {
        assert_eq!(encoded(&Segment::syn(Seq(42))), b"1|||0|||0|||42|||");
        assert_eq!(encoded(&Segment::fin(Seq(77))), b"0|||0|||1|||77|||");
        assert_eq!(
            encoded(&Segment::fin_ack(Seq(77), Seq(78))),
            b"0|||1|||1|||78|||"
        );
    }

    #[test]
    fn data_may_hold_separators_and_any_byte() {
        let payload: Vec<u8> = b"a|||b|||".iter().copied().chain(0..=255).collect();
        let segment = Segment::data(Seq(5), Bytes::from(payload.clone()));
        let back = decode(&encoded(&segment)).unwrap();
        assert_eq!(back.data, payload);
        assert_eq!(back.seq, Seq(5));
    }

    #[test]
    fn decoding_fills_both_numbers() {
        let s = decode(b"0|||1|||0|||115|||").unwrap();
        assert_eq!((s.seq, s.ack), (Seq(115), Seq(115)));
        assert!(s.flags.ack && !s.flags.syn && !s.flags.fin);
    }

    #[test]
    fn liberal_variants_are_accepted() {
        let s = decode(b"True ||| False |||0||| 12 |||x").unwrap();
        assert!(s.flags.syn && !s.flags.ack);
        assert_eq!(s.seq, Seq(12));
        // A counter past 32 bits is kept modulo 2^32.
        assert_eq!(decode(b"0|||0|||0|||4294967301|||").unwrap().seq, Seq(5));
    }

    #[test]
    fn bytes_after_a_control_header_are_filler_and_go_back_out() {
        let syn = decode(b"1|||0|||0|||40|||0").unwrap();
        assert_eq!(syn.kind(), crate::segment::Kind::Syn);
        assert!(syn.data.is_empty());
        assert_eq!(&syn.filler[..], b"0");
        assert_eq!(syn.wire_len, 18);
        let fin = decode(b"0|||0|||1|||77|||-").unwrap();
        assert_eq!(fin.kind(), crate::segment::Kind::Fin);
        assert_eq!(fin.len(), 1, "filler takes no number");
        assert_eq!(encoded(&fin), b"0|||0|||1|||77|||-");
        // Data is data: no flag set.
        assert_eq!(decode(b"0|||0|||0|||9|||0").unwrap().data, &b"0"[..]);
    }

    #[test]
    fn encoded_len_is_what_encode_writes() {
        for seg in [
            Segment::syn(Seq(0)),
            Segment::ack(Seq(0), Seq(4_294_967_295)),
            Segment::data(Seq(98), Bytes::from_static(b"Mensaje de prueba")),
            Segment::fin(Seq(10)).with_filler(Bytes::from_static(b"-")),
        ] {
            assert_eq!(encoded_len(&seg), encoded(&seg).len(), "{seg}");
        }
    }

    #[test]
    fn numbers_are_written_in_decimal_from_zero_to_the_largest() {
        for n in [0, 7, 10, 99, 100, 1_000_000, u32::MAX] {
            let mut out = Vec::new();
            push_decimal(n, &mut out);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }

    #[test]
    fn the_separator_is_found_after_shorter_runs_of_bars() {
        assert_eq!(find_sep(b"|||"), Some(0));
        assert_eq!(find_sep(b"0|||1"), Some(1));
        assert_eq!(find_sep(b"a||b|||c"), Some(4));
        assert_eq!(find_sep(b"||||"), Some(0));
        assert_eq!(find_sep(b"|a|b||"), None);
        assert_eq!(find_sep(b"||"), None);
        assert_eq!(find_sep(b""), None);
    }

    #[test]
    fn errors_name_the_field() {
        let err = |d: &[u8]| decode(d).unwrap_err().to_string();
        assert!(err(b"2|||0|||0|||1|||").contains("SYN is not 0 or 1"));
        assert!(err(b"0|||0|||x|||1|||").contains("FIN is not 0 or 1"));
        assert!(err(b"0|||0|||0|||-1|||").contains("SEQ is not a decimal"));
        assert!(err(b"0|||0|||0||||||").contains("SEQ is empty"));
        assert!(err(b"0|||0|||0|||5").contains("SEQ is not followed by |||"));
        assert!(err(b"").contains("SYN is not followed"));
    }
}
