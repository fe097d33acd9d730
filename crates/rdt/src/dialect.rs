//! The course's readings of the one-number header `SYN|||ACK|||FIN|||SEQ|||DATA`
//! (spec "Wire formats": be liberal with other course implementations; issue
//! #13: every student's reading). Next to `wire/course.rs`, so a teacher
//! reading one student's quirk finds it by file name.
//!
//! A [`Reading`] is one way to number and close: a shared counter or one per
//! side, a handshake ACK that consumes a number or not, numbers that count
//! bytes, segments or whole encoded segments, the handshake ACK sent to the new
//! port or to the listening address, filler data on control segments, a three-
//! or four-segment close. [`Dialect`] is what one connection knows of its
//! peer's reading: forced (`--dialect`), or learned segment by segment from
//! what the peer sends, each step recorded as a [`Learned`] note naming the
//! segment it came from. Until a question is settled the connection answers so
//! that every reading still possible accepts the answer (see the connection
//! core for where).

use std::fmt;

use bytes::Bytes;

use crate::few::Few;

/// Who owns the numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// The seed's single counter: every acknowledged number becomes both
    /// ends' next number (SYN x, SYN-ACK x+1, ACK x+2, data from x+2).
    Shared,
    /// One counter per side, as TCP: the SYN-ACK carries the server's own
    /// initial number y, the handshake ACK y+1, the client's data from x+1.
    PerSide,
}

/// What a data segment advances the number by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Its data length: the seed's (data seq 98 with 17 bytes → ACK 115).
    Bytes,
    /// One per segment, whatever its length (ACK = seq + 1).
    Segments,
    /// The length of the whole encoded segment, header text and data.
    Encoded,
}

impl Unit {
    const ALL: [Unit; 3] = [Unit::Bytes, Unit::Segments, Unit::Encoded];

    fn bit(self) -> u8 {
        match self {
            Unit::Bytes => 1,
            Unit::Segments => 2,
            Unit::Encoded => 4,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Unit::Bytes => "bytes",
            Unit::Segments => "segments",
            Unit::Encoded => "encoded segment lengths",
        }
    }
}

/// One reading of the course header, as one student's `SocketTCP` speaks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    pub counter: Counter,
    /// Shared counter: the handshake ACK uses a number of its own (x+2, data
    /// from x+2) or not (x+1, data from x+1).
    pub ack_consumes: bool,
    pub unit: Unit,
    /// The handshake ACK goes to (is read at) the listening address, not the
    /// new per-connection port.
    pub ack_to_listener: bool,
    /// Control segments carry filler data (`SYN ... |||0`, a FIN with `-`).
    pub filler: bool,
    /// Close in four segments (ACK, then a separate FIN), the closer's final
    /// ACK with the FIN flag set.
    pub four_way_close: bool,
}

impl Reading {
    /// The seed's reading: shared counter, handshake ACK consumes one,
    /// bytes, ACK to the new port, no filler, three-segment close.
    pub const SEED: Reading = Reading {
        counter: Counter::Shared,
        ack_consumes: true,
        unit: Unit::Bytes,
        ack_to_listener: false,
        filler: false,
        four_way_close: false,
    };

    /// The readings by name (`--dialect`), each the seed's but for one thing.
    pub const NAMED: [(&'static str, &'static str); 8] = [
        (
            "seed",
            "the seed's reading: one shared counter, handshake ACK x+2, numbers count bytes",
        ),
        (
            "ack-free",
            "the handshake ACK consumes no number (ACK x+1, data from x+1)",
        ),
        (
            "own-isn",
            "one counter per side: the SYN-ACK carries the server's own initial number",
        ),
        (
            "segments",
            "numbers count segments (ACK = seq + 1 whatever the length)",
        ),
        (
            "encoded",
            "numbers count the whole encoded segment (header text and data)",
        ),
        (
            "listen-ack",
            "the handshake ACK goes to the listening address",
        ),
        (
            "filler",
            "control segments carry filler data (SYN ...|||0, FIN ...|||-)",
        ),
        (
            "four-way",
            "four-segment close (ACK, then FIN); the final ACK has the FIN flag",
        ),
    ];

    /// Parses `seed`, `own-isn`, or several readings joined by `,` or `+`
    /// (`own-isn,segments`): each name changes one thing of the seed's.
    pub fn parse(text: &str) -> Result<Reading, String> {
        let mut r = Reading::SEED;
        for name in text.split([',', '+']).map(str::trim) {
            match name {
                "seed" => {}
                "ack-free" => r.ack_consumes = false,
                "own-isn" => r.counter = Counter::PerSide,
                "segments" => r.unit = Unit::Segments,
                "encoded" => r.unit = Unit::Encoded,
                "listen-ack" => r.ack_to_listener = true,
                "filler" => r.filler = true,
                "four-way" => r.four_way_close = true,
                other => {
                    let names: Vec<&str> = Reading::NAMED.iter().map(|(n, _)| *n).collect();
                    return Err(format!(
                        "unknown dialect {other:?} (auto, or one or more of {})",
                        names.join(", ")
                    ));
                }
            }
        }
        Ok(r)
    }

    /// The names that make up this reading (`seed` alone for the seed's).
    pub fn names(&self) -> Vec<&'static str> {
        let mut n = Vec::new();
        if self.counter == Counter::PerSide {
            n.push("own-isn");
        } else if !self.ack_consumes {
            n.push("ack-free");
        }
        match self.unit {
            Unit::Bytes => {}
            Unit::Segments => n.push("segments"),
            Unit::Encoded => n.push("encoded"),
        }
        if self.ack_to_listener {
            n.push("listen-ack");
        }
        if self.filler {
            n.push("filler");
        }
        if self.four_way_close {
            n.push("four-way");
        }
        if n.is_empty() {
            n.push("seed");
        }
        n
    }
}

impl fmt::Display for Reading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

/// `auto` (learn the peer's reading) or one reading forced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DialectChoice {
    #[default]
    Auto,
    Forced(Reading),
}

impl std::str::FromStr for DialectChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "auto" {
            Ok(DialectChoice::Auto)
        } else {
            Reading::parse(s).map(DialectChoice::Forced)
        }
    }
}

impl fmt::Display for DialectChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DialectChoice::Auto => f.write_str("auto"),
            DialectChoice::Forced(r) => r.fmt(f),
        }
    }
}

/// Something learned about the peer's reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// Its SYN-ACK carried its own initial number, not ours + 1.
    OwnIsn,
    /// It numbers on from our numbers: one shared counter.
    SharedCounter,
    /// Its handshake ACK used a number of its own (data from x+2).
    AckConsumes,
    /// Its handshake ACK used none (data from x+1).
    AckFree,
    /// Its numbers count this.
    Unit(Unit),
    /// It put filler data on a control segment.
    Filler,
    /// It closed in four segments (ACK, then FIN).
    FourWayClose,
    /// Its final close ACK had the FIN flag set.
    FinOnFinalAck,
    /// It sent its SYN-ACK again after our handshake ACK went to its new
    /// port: it reads the ACK at its listening address (listen-ack).
    AckAtListener,
}

impl fmt::Display for Learned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Learned::OwnIsn => f.write_str("one counter per side (own-isn)"),
            Learned::SharedCounter => f.write_str("one shared counter"),
            Learned::AckConsumes => f.write_str("the handshake ACK consumes a number"),
            Learned::AckFree => f.write_str("the handshake ACK consumes no number (ack-free)"),
            Learned::Unit(u) => write!(f, "numbers count {}", u.name()),
            Learned::Filler => f.write_str("control segments carry filler data"),
            Learned::FourWayClose => f.write_str("a four-segment close"),
            Learned::FinOnFinalAck => f.write_str("the final ACK carries the FIN flag"),
            Learned::AckAtListener => {
                f.write_str("the handshake ACK is read at the listening address (listen-ack)")
            }
        }
    }
}

/// What one connection knows of its peer's reading.
#[derive(Debug, Clone)]
pub struct Dialect {
    forced: bool,
    /// The best guess: what we send.
    reading: Reading,
    counter_known: bool,
    ack_known: bool,
    /// Units still possible (a bit set of [`Unit`]).
    units: u8,
    /// The peer's filler on handshake and close segments, if it used any.
    filler_open: Option<Bytes>,
    filler_close: Option<Bytes>,
    fin_on_final_ack: bool,
    learned: Vec<Learned>,
}

impl Dialect {
    /// A dialect for a connection: learned (`Auto`) or forced.
    pub fn new(choice: DialectChoice) -> Dialect {
        match choice {
            DialectChoice::Auto => Dialect {
                forced: false,
                reading: Reading::SEED,
                counter_known: false,
                ack_known: false,
                units: 7,
                filler_open: None,
                filler_close: None,
                fin_on_final_ack: false,
                learned: Vec::new(),
            },
            DialectChoice::Forced(reading) => Dialect {
                forced: true,
                reading,
                counter_known: true,
                ack_known: true,
                units: reading.unit.bit(),
                filler_open: reading.filler.then(|| Bytes::from_static(b"0")),
                filler_close: reading.filler.then(|| Bytes::from_static(b"-")),
                fin_on_final_ack: reading.four_way_close,
                learned: Vec::new(),
            },
        }
    }

    /// The binary format's numbering: one sequence space per side, bytes.
    pub fn binary() -> Dialect {
        Dialect::new(DialectChoice::Forced(Reading {
            counter: Counter::PerSide,
            ack_consumes: false,
            ..Reading::SEED
        }))
    }

    pub fn is_forced(&self) -> bool {
        self.forced
    }

    /// The reading as known so far (a guess where not settled).
    pub fn reading(&self) -> Reading {
        self.reading
    }

    /// Everything learned, in order.
    pub fn learned(&self) -> &[Learned] {
        &self.learned
    }

    pub fn shared(&self) -> bool {
        self.reading.counter == Counter::Shared
    }

    pub fn counter_known(&self) -> bool {
        self.counter_known
    }

    pub fn ack_known(&self) -> bool {
        self.ack_known
    }

    pub fn unit_known(&self) -> bool {
        self.units.is_power_of_two()
    }

    /// Records a fact; returns it if it is news.
    fn learn(&mut self, what: Learned) -> Option<Learned> {
        if self.forced || self.learned.contains(&what) {
            return None;
        }
        self.learned.push(what);
        Some(what)
    }

    /// The counter, from the SYN-ACK's number or the first data's.
    pub fn set_counter(&mut self, counter: Counter) -> Option<Learned> {
        if self.forced || self.counter_known {
            return None;
        }
        self.counter_known = true;
        self.reading.counter = counter;
        self.learn(match counter {
            Counter::Shared => Learned::SharedCounter,
            Counter::PerSide => Learned::OwnIsn,
        })
    }

    /// Whether the handshake ACK consumed a number.
    pub fn set_ack_consumes(&mut self, consumes: bool) -> Option<Learned> {
        if self.forced || self.ack_known {
            return None;
        }
        self.ack_known = true;
        self.reading.ack_consumes = consumes;
        self.learn(if consumes {
            Learned::AckConsumes
        } else {
            Learned::AckFree
        })
    }

    /// The advances a data segment of `len` bytes, `wire_len` on the wire,
    /// may make, one per unit still possible (distinct, the current guess first).
    pub fn advances(&self, len: usize, wire_len: usize) -> Few<u32> {
        let mut out = Few::default();
        let guess = self.reading.unit;
        for u in std::iter::once(guess).chain(Unit::ALL) {
            if self.units & u.bit() == 0 {
                continue;
            }
            let a = match u {
                Unit::Bytes => len,
                Unit::Segments => 1,
                Unit::Encoded => wire_len,
            } as u32;
            out.push_new(a);
        }
        out
    }

    /// A data segment of `len` bytes (`wire_len` encoded) advanced the number
    /// by `by`: keeps the units that agree. Returns what was learned, if that
    /// settles the unit.
    pub fn observe_advance(&mut self, len: usize, wire_len: usize, by: u32) -> Option<Learned> {
        if self.forced {
            return None;
        }
        let before = self.units;
        let mut left = 0;
        for u in Unit::ALL {
            let a = match u {
                Unit::Bytes => len,
                Unit::Segments => 1,
                Unit::Encoded => wire_len,
            } as u32;
            if before & u.bit() != 0 && a == by {
                left |= u.bit();
            }
        }
        if left == 0 || left == before {
            return None;
        }
        self.units = left;
        let first = Unit::ALL.into_iter().find(|u| left & u.bit() != 0)?;
        self.reading.unit = first;
        if self.unit_known() {
            self.learn(Learned::Unit(first))
        } else {
            None
        }
    }

    /// The peer put `filler` on a control segment (`closing`: FIN, FIN-ACK or
    /// a final ACK): ours will carry the same.
    pub fn observe_filler(&mut self, filler: &Bytes, closing: bool) -> Option<Learned> {
        if self.forced || filler.is_empty() {
            return None;
        }
        let slot = if closing {
            &mut self.filler_close
        } else {
            &mut self.filler_open
        };
        if slot.is_none() {
            *slot = Some(filler.clone());
        }
        self.reading.filler = true;
        self.learn(Learned::Filler)
    }

    /// Filler for one of our control segments (`closing` as above).
    pub fn filler(&self, closing: bool) -> Bytes {
        let (own, other) = if closing {
            (&self.filler_close, &self.filler_open)
        } else {
            (&self.filler_open, &self.filler_close)
        };
        own.clone().or_else(|| other.clone()).unwrap_or_default()
    }

    /// The peer acknowledged our FIN with a plain ACK, its FIN to follow.
    pub fn observe_four_way(&mut self) -> Option<Learned> {
        if self.forced {
            return None;
        }
        self.reading.four_way_close = true;
        self.learn(Learned::FourWayClose)
    }

    /// The peer's final ACK carried the FIN flag.
    pub fn observe_fin_on_final_ack(&mut self) -> Option<Learned> {
        if self.forced {
            return None;
        }
        self.fin_on_final_ack = true;
        // The mark of the four-way reading seen from its closing side (the
        // name a report gives; nothing is left for us to send differently).
        self.reading.four_way_close = true;
        self.learn(Learned::FinOnFinalAck)
    }

    /// Whether our final ACKs carry the FIN flag: the forced four-way reading
    /// always; learned, every other one (so a peer that wants either gets it).
    pub fn fin_on_final_ack(&self, nth: u32) -> bool {
        if self.forced {
            self.fin_on_final_ack
        } else {
            self.reading.four_way_close && nth % 2 == 1
        }
    }

    /// Our handshake ACK goes to the listening address too.
    pub fn ack_to_listener(&self) -> bool {
        self.reading.ack_to_listener
    }

    /// The SYN-ACK came again after our ACK went to the new port: from now
    /// on the ACK goes to the listening address too.
    pub fn observe_ack_to_listener(&mut self) -> Option<Learned> {
        if self.forced {
            return None;
        }
        self.reading.ack_to_listener = true;
        self.learn(Learned::AckAtListener)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_refused() {
        for (name, _) in Reading::NAMED {
            let r = Reading::parse(name).unwrap();
            assert_eq!(r.to_string(), name);
        }
        let r = Reading::parse("own-isn,segments+four-way").unwrap();
        assert_eq!(r.counter, Counter::PerSide);
        assert_eq!(r.unit, Unit::Segments);
        assert!(r.four_way_close);
        assert_eq!(r.to_string(), "own-isn,segments,four-way");
        let err = Reading::parse("tcp").unwrap_err();
        assert!(
            err.contains("unknown dialect \"tcp\"") && err.contains("own-isn"),
            "{err}"
        );
        assert_eq!("auto".parse::<DialectChoice>(), Ok(DialectChoice::Auto));
    }

    #[test]
    fn the_unit_is_narrowed_by_each_advance_seen() {
        let mut d = Dialect::new(DialectChoice::Auto);
        // A 4-byte length segment of 20 bytes on the wire: three candidates.
        assert_eq!(&d.advances(4, 20)[..], [4, 1, 20]);
        // One byte of data: bytes and segments agree; not settled yet.
        assert_eq!(d.observe_advance(1, 17, 1), None);
        assert!(!d.unit_known());
        assert_eq!(&d.advances(16, 33)[..], [16, 1]);
        // Then 16 bytes advanced the number by 1: segments.
        assert_eq!(
            d.observe_advance(16, 33, 1),
            Some(Learned::Unit(Unit::Segments))
        );
        assert_eq!(&d.advances(16, 33)[..], [1]);
        assert_eq!(d.reading().unit, Unit::Segments);
        // Nothing learned twice; an impossible advance changes nothing.
        assert_eq!(d.observe_advance(16, 33, 1), None);
        assert_eq!(d.observe_advance(16, 33, 7), None);
        assert_eq!(&d.advances(16, 33)[..], [1]);
    }

    #[test]
    fn a_forced_reading_learns_nothing() {
        let mut d = Dialect::new(DialectChoice::Forced(Reading::parse("encoded").unwrap()));
        assert_eq!(&d.advances(16, 36)[..], [36]);
        assert_eq!(d.observe_advance(16, 36, 16), None);
        assert_eq!(d.set_counter(Counter::PerSide), None);
        assert_eq!(d.observe_filler(&Bytes::from_static(b"0"), false), None);
        assert!(d.learned().is_empty());
    }

    #[test]
    fn filler_is_mirrored_by_kind_of_segment() {
        let mut d = Dialect::new(DialectChoice::Auto);
        assert!(d.filler(false).is_empty());
        assert_eq!(
            d.observe_filler(&Bytes::from_static(b"0"), false),
            Some(Learned::Filler)
        );
        assert_eq!(d.filler(false), Bytes::from_static(b"0"));
        assert_eq!(
            d.filler(true),
            Bytes::from_static(b"0"),
            "until the peer shows its close filler"
        );
        d.observe_filler(&Bytes::from_static(b"-"), true);
        assert_eq!(d.filler(true), Bytes::from_static(b"-"));
        let forced = Dialect::new(DialectChoice::Forced(Reading::parse("filler").unwrap()));
        assert_eq!(
            (forced.filler(false), forced.filler(true)),
            (Bytes::from_static(b"0"), Bytes::from_static(b"-"))
        );
    }
}
