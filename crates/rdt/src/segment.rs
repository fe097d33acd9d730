//! One segment as the connection core sees it, whatever the wire format: the
//! three flags of the seed's header (SYN, ACK, FIN), a sequence number, an
//! acknowledgment number, an advertised window and the data.
//!
//! The course format carries a single number; its codec (`wire::course`) says
//! which of `seq`/`ack` that number is and fills both when decoding.

use std::fmt;

use bytes::Bytes;

use crate::seq::Seq;

/// The seed's three header flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
}

/// A decoded segment.
#[derive(Debug, Clone, Default)]
pub struct Segment {
    pub flags: Flags,
    pub seq: Seq,
    pub ack: Seq,
    pub window: u16,
    pub data: Bytes,
    /// Bytes a course peer put after the header of a control segment (SYN,
    /// SYN-ACK, ACK, FIN, FIN-ACK): filler, not data; it occupies no number.
    pub filler: Bytes,
    /// The datagram's length when it was decoded (0 for one we built): the
    /// unit of the course peers that count whole encoded segments.
    pub wire_len: usize,
    /// Ranges held beyond the cumulative ACK (binary format, selective repeat).
    pub sack: Sack,
}

/// Selective acknowledgment blocks: ranges `[start, end)` of the sender's
/// numbers the receiver holds beyond its cumulative ACK, the block of the
/// segment that arrived last first (RFC 2018's order), at most
/// [`Sack::MAX`]: with a window of hundreds of segments on a lossy path, four
/// (TCP's option room) leave holes the sender never hears of and resends for nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sack {
    /// On the heap, and only when there are blocks: a segment is moved
    /// several times on its way, and most carry none.
    blocks: Vec<(Seq, Seq)>,
}

impl Sack {
    pub const MAX: usize = 16;

    /// Adds a block; false (and nothing added) when [`Sack::MAX`] are there already.
    pub fn push(&mut self, start: Seq, end: Seq) -> bool {
        if self.blocks.len() == Sack::MAX {
            return false;
        }
        self.blocks.push((start, end));
        true
    }

    pub fn blocks(&self) -> &[(Seq, Seq)] {
        &self.blocks
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    pub fn len(&self) -> usize {
        self.blocks.len()
    }
}

/// Equal when the same segment: how it came on the wire does not count.
impl PartialEq for Segment {
    fn eq(&self, other: &Self) -> bool {
        self.flags == other.flags
            && self.seq == other.seq
            && self.ack == other.ack
            && self.window == other.window
            && self.data == other.data
            && self.filler == other.filler
            && self.sack == other.sack
    }
}

impl Eq for Segment {}

/// What a segment is, by its flags (the names of the seed's diagrams).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Syn,
    SynAck,
    Ack,
    Data,
    Fin,
    FinAck,
    /// A flag combination no peer should send (SYN+FIN, data with SYN...).
    Odd,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Syn => "SYN",
            Kind::SynAck => "SYN-ACK",
            Kind::Ack => "ACK",
            Kind::Data => "DATA",
            Kind::Fin => "FIN",
            Kind::FinAck => "FIN-ACK",
            Kind::Odd => "ODD",
        }
    }
}

impl Segment {
    pub fn kind(&self) -> Kind {
        let Flags { syn, ack, fin } = self.flags;
        match (syn, ack, fin, self.data.is_empty()) {
            (true, false, false, true) => Kind::Syn,
            (true, true, false, true) => Kind::SynAck,
            (false, true, false, true) => Kind::Ack,
            (false, _, false, false) => Kind::Data,
            (false, false, true, true) => Kind::Fin,
            (false, true, true, true) => Kind::FinAck,
            _ => Kind::Odd,
        }
    }

    /// Sequence space this segment occupies: SYN and FIN count one, data its length.
    pub fn len(&self) -> usize {
        self.data.len() + usize::from(self.flags.syn) + usize::from(self.flags.fin)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn syn(seq: Seq) -> Segment {
        Segment::control(
            Flags {
                syn: true,
                ack: false,
                fin: false,
            },
            seq,
            Seq(0),
        )
    }

    pub fn syn_ack(seq: Seq, ack: Seq) -> Segment {
        Segment::control(
            Flags {
                syn: true,
                ack: true,
                fin: false,
            },
            seq,
            ack,
        )
    }

    pub fn ack(seq: Seq, ack: Seq) -> Segment {
        Segment::control(
            Flags {
                syn: false,
                ack: true,
                fin: false,
            },
            seq,
            ack,
        )
    }

    pub fn fin(seq: Seq) -> Segment {
        Segment::control(
            Flags {
                syn: false,
                ack: false,
                fin: true,
            },
            seq,
            Seq(0),
        )
    }

    pub fn fin_ack(seq: Seq, ack: Seq) -> Segment {
        Segment::control(
            Flags {
                syn: false,
                ack: true,
                fin: true,
            },
            seq,
            ack,
        )
    }

    pub fn data(seq: Seq, data: Bytes) -> Segment {
        Segment {
            seq,
            data,
            ..Segment::default()
        }
    }

    fn control(flags: Flags, seq: Seq, ack: Seq) -> Segment {
        Segment {
            flags,
            seq,
            ack,
            ..Segment::default()
        }
    }

    /// The same segment with `filler` after its header.
    pub fn with_filler(mut self, filler: Bytes) -> Segment {
        self.filler = filler;
        self
    }
}

/// A one-line summary for debug output and traces: `DATA seq=98 len=17`, `ACK 115`.
impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.kind();
        match kind {
            Kind::Syn | Kind::Fin => write!(f, "{} seq={}", kind.name(), self.seq),
            Kind::Ack if self.sack.is_empty() => write!(f, "ACK {}", self.ack),
            Kind::Ack => {
                write!(f, "ACK {} SACK", self.ack)?;
                for (a, b) in self.sack.blocks() {
                    write!(f, " {a}-{b}")?;
                }
                Ok(())
            }
            Kind::SynAck | Kind::FinAck => {
                write!(f, "{} seq={} ack={}", kind.name(), self.seq, self.ack)
            }
            Kind::Data => write!(f, "DATA seq={} len={}", self.seq, self.data.len()),
            Kind::Odd => write!(
                f,
                "ODD syn={} ack={} fin={} seq={} len={}",
                u8::from(self.flags.syn),
                u8::from(self.flags.ack),
                u8::from(self.flags.fin),
                self.seq,
                self.data.len()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_flags() {
        assert_eq!(Segment::syn(Seq(1)).kind(), Kind::Syn);
        assert_eq!(Segment::syn_ack(Seq(1), Seq(2)).kind(), Kind::SynAck);
        assert_eq!(Segment::ack(Seq(1), Seq(2)).kind(), Kind::Ack);
        assert_eq!(Segment::fin(Seq(1)).kind(), Kind::Fin);
        assert_eq!(Segment::fin_ack(Seq(1), Seq(2)).kind(), Kind::FinAck);
        assert_eq!(
            Segment::data(Seq(1), Bytes::from_static(b"x")).kind(),
            Kind::Data
        );
        let mut odd = Segment::syn(Seq(1));
        odd.flags.fin = true;
        assert_eq!(odd.kind(), Kind::Odd);
    }

    #[test]
    fn syn_and_fin_occupy_one_number() {
        assert_eq!(Segment::syn(Seq(1)).len(), 1);
        assert_eq!(Segment::fin(Seq(1)).len(), 1);
        assert_eq!(Segment::ack(Seq(1), Seq(1)).len(), 0);
        assert_eq!(Segment::data(Seq(98), Bytes::from(vec![0; 17])).len(), 17);
    }

    #[test]
    fn summaries_name_the_numbers_that_matter() {
        assert_eq!(Segment::ack(Seq(0), Seq(115)).to_string(), "ACK 115");
        assert_eq!(
            Segment::data(Seq(98), Bytes::from(vec![0; 17])).to_string(),
            "DATA seq=98 len=17"
        );
    }
}
