//! The binary format: a fixed 20-byte big-endian header, then the data.
//!
//! ```text
//! 0      version (1)
//! 1      flags: SYN 0x01, ACK 0x02, FIN 0x04, SACK 0x08 (others must be 0)
//! 2..4   window (u16)
//! 4..8   seq (u32)
//! 8..12  ack (u32)
//! 12..14 data length (u16), must equal datagram length − 20
//! 14..16 reserved, 0
//! 16..20 CRC-32 (IEEE) of the whole datagram with this field zeroed
//! ```
//! With SACK (an ACK of selective repeat), the data field holds 1 to 16
//! blocks of 8 bytes, each the start and end (u32, u32) of a range held
//! beyond the cumulative ACK; such a segment carries no data.
//! A datagram that fails any check is reported with the field named and the
//! caller drops it, so corruption costs a retransmission, never wrong data.

use bytes::Bytes;

use crate::error::Error;
use crate::segment::{Flags, Sack, Segment};
use crate::seq::Seq;

pub const HEADER: usize = 20;
const VERSION: u8 = 1;
const SYN: u8 = 0x01;
const ACK: u8 = 0x02;
const FIN: u8 = 0x04;
const SACK: u8 = 0x08;

/// Appends `segment` in the binary format. The data must fit a datagram
/// (the connection never builds a longer one: MSS is checked at configuration).
pub fn encode(segment: &Segment, out: &mut Vec<u8>) {
    let payload = encode_split(segment, out);
    out.extend_from_slice(&payload);
}

/// Appends the header (and SACK blocks) of `segment` to `head` and returns
/// the payload that follows it on the wire, uncopied: the sender hands both
/// to the kernel as one datagram in two pieces (`sendmsg` with two iovecs),
/// so the data is copied once, into the kernel, as TCP's is.
pub fn encode_split(segment: &Segment, head: &mut Vec<u8>) -> Bytes {
    let start = head.len();
    let f = segment.flags;
    let sack = !segment.sack.is_empty();
    let flags = (if f.syn { SYN } else { 0 })
        | (if f.ack { ACK } else { 0 })
        | (if f.fin { FIN } else { 0 })
        | (if sack { SACK } else { 0 });
    let (len, payload) = if sack {
        (8 * segment.sack.len(), Bytes::new())
    } else {
        (segment.data.len(), segment.data.clone())
    };
    head.push(VERSION);
    head.push(flags);
    head.extend_from_slice(&segment.window.to_be_bytes());
    head.extend_from_slice(&segment.seq.0.to_be_bytes());
    head.extend_from_slice(&segment.ack.0.to_be_bytes());
    head.extend_from_slice(&(len as u16).to_be_bytes());
    head.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    for (a, b) in segment.sack.blocks() {
        head.extend_from_slice(&a.0.to_be_bytes());
        head.extend_from_slice(&b.0.to_be_bytes());
    }
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&head[start..]);
    hasher.update(&payload);
    let crc = hasher.finalize();
    head[start + 16..start + 20].copy_from_slice(&crc.to_be_bytes());
    payload
}

/// Parses one binary datagram, checking version, flags, length and checksum;
/// `body` makes the data from its place in the datagram (a copy, or a slice
/// of a buffer the datagram has to itself: `Format::decode_shared`).
pub(crate) fn decode_with(
    datagram: &[u8],
    body: impl FnOnce(std::ops::Range<usize>) -> Bytes,
) -> Result<Segment, Error> {
    let Some((header, data)) = datagram.split_first_chunk::<HEADER>() else {
        return Err(malformed("header", "is shorter than 20 bytes"));
    };
    if header[0] != VERSION {
        return Err(malformed("version", "is not 1"));
    }
    let flags = header[1];
    if flags & !(SYN | ACK | FIN | SACK) != 0 {
        return Err(malformed("flags", "has unknown bits set"));
    }
    if usize::from(u16::from_be_bytes([header[12], header[13]])) != data.len() {
        return Err(malformed("length", "does not match the datagram"));
    }
    if header[14..16] != [0, 0] {
        return Err(malformed("reserved", "is not zero"));
    }
    let expected = u32::from_be_bytes([header[16], header[17], header[18], header[19]]);
    // The header as it was hashed (checksum field zeroed), in one piece:
    // crc32fast's pclmul path takes any length from 16 bytes without its
    // tables, while a separate 4-byte update would read four of them (cold
    // cache lines on every segment of a Stop & Wait exchange).
    let mut hashed = *header;
    hashed[16..].fill(0);
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&hashed);
    hasher.update(data);
    let actual = hasher.finalize();
    if actual != expected {
        return Err(Error::Checksum { expected, actual });
    }
    let word = |at: usize| {
        u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let mut sack = Sack::default();
    let data = if flags & SACK != 0 {
        if data.is_empty() || data.len() % 8 != 0 || data.len() > 8 * Sack::MAX {
            return Err(malformed("sack", "is not 1 to 16 blocks of 8 bytes"));
        }
        if flags & ACK == 0 {
            return Err(malformed("sack", "is set without ACK"));
        }
        for b in data.chunks_exact(8) {
            let at = |i: usize| Seq(u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]));
            sack.push(at(0), at(4));
        }
        Bytes::new()
    } else if data.is_empty() {
        Bytes::new()
    } else {
        body(HEADER..datagram.len())
    };
    Ok(Segment {
        flags: Flags {
            syn: flags & SYN != 0,
            ack: flags & ACK != 0,
            fin: flags & FIN != 0,
        },
        seq: Seq(word(4)),
        ack: Seq(word(8)),
        window: u16::from_be_bytes([header[2], header[3]]),
        data,
        filler: Bytes::new(),
        wire_len: datagram.len(),
        sack,
    })
}

fn malformed(field: &'static str, problem: &'static str) -> Error {
    Error::Malformed {
        format: "binary",
        field,
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(datagram: &[u8]) -> Result<Segment, Error> {
        crate::wire::Format::Binary.decode(datagram)
    }

    fn sample() -> Segment {
        Segment {
            flags: Flags {
                syn: false,
                ack: true,
                fin: true,
            },
            seq: Seq(0xDEAD_BEEF),
            ack: Seq(7),
            window: 512,
            data: Bytes::from_static(b"hello"),
            ..Segment::default()
        }
    }

    #[test]
    fn round_trips_every_field() {
        let mut out = Vec::new();
        encode(&sample(), &mut out);
        assert_eq!(out.len(), HEADER + 5);
        assert_eq!(
            &out[..16],
            &[
                1, 0x06, 2, 0, 0xDE, 0xAD, 0xBE, 0xEF, 0, 0, 0, 7, 0, 5, 0, 0
            ]
        );
        assert_eq!(decode(&out).unwrap(), sample());
    }

    #[test]
    fn every_single_bit_flip_is_caught() {
        let mut out = Vec::new();
        encode(&sample(), &mut out);
        for byte in 0..out.len() {
            for bit in 0..8 {
                let mut bad = out.clone();
                bad[byte] ^= 1 << bit;
                assert!(
                    decode(&bad).is_err(),
                    "flip of bit {bit} in byte {byte} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn sack_blocks_round_trip_in_place_of_data() {
        let mut ack = Segment::ack(Seq(1), Seq(100));
        ack.sack.push(Seq(200), Seq(300));
        ack.sack.push(Seq(u32::MAX - 9), Seq(5));
        let mut out = Vec::new();
        encode(&ack, &mut out);
        assert_eq!(out.len(), HEADER + 16);
        assert_eq!(out[1], 0x0A);
        let back = decode(&out).unwrap();
        assert_eq!(back, ack);
        assert_eq!(back.to_string(), "ACK 100 SACK 200-300 4294967286-5");
        // Five blocks, a ragged block, SACK without ACK: refused.
        let mut bad = out.clone();
        bad[12..14].copy_from_slice(&12u16.to_be_bytes());
        bad.truncate(HEADER + 12);
        bad[16..20].fill(0);
        let crc = crc32fast::hash(&bad);
        bad[16..20].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            decode(&bad),
            Err(Error::Malformed { field: "sack", .. })
        ));
    }

    #[test]
    fn errors_name_the_field() {
        let err = |d: &[u8]| decode(d).unwrap_err().to_string();
        assert!(err(&[1, 0, 0]).contains("header is shorter"));
        let mut out = Vec::new();
        encode(&sample(), &mut out);
        assert!(err(&out[..out.len() - 1]).contains("length does not match"));
        let mut v2 = out.clone();
        v2[0] = 2;
        assert!(err(&v2).contains("version is not 1"));
        let mut odd = out.clone();
        odd[1] |= 0x80;
        assert!(err(&odd).contains("flags has unknown bits"));
    }
}
