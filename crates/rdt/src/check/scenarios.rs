//! The checker's scenarios (spec: rdt.md, "Conformance checker"): what each
//! one does to the connection, which of the seed's steps it grades, and which
//! file goes across.
//!
//! `impair udp` stands between the two programs in every scenario and makes
//! the random loss, duplication and reordering; a single loss is made by our
//! own socket, which knows segments by kind (a proxy cannot lose "the FIN"
//! whatever its numbers or spelling).

use crate::link::{DropKind, Way};
use crate::segment::Kind;

/// Which side of the connection the program under test is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Their server (`--server-cmd`); our client sends to it.
    Server,
    /// Their client (`--client-cmd`); it sends to our server.
    Client,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Client => "client",
        }
    }
}

/// One segment lost once (or, for the server's final ACK, every copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    Syn,
    SynAck,
    HandshakeAck,
    FirstData,
    DataAck,
    Fin,
    FinAck,
    FinalAck,
}

/// What the network does in a scenario.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Faults {
    /// Nothing: `impair udp` relays every datagram as it comes.
    Clean,
    /// Our socket loses one segment.
    Lose(Lost),
    /// `impair udp` loses, duplicates and reorders datagrams at random, both ways.
    Random {
        loss: f64,
        duplicate: f64,
        reorder: f64,
    },
}

/// The file sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fixture {
    /// Printable text of this many bytes.
    Text(usize),
    /// Decimal digits only: a missing length segment cannot pass unnoticed.
    Digits(usize),
    /// Every byte value, with the header's separator `|||` among them.
    AllBytes,
}

impl Fixture {
    pub fn bytes(self) -> Vec<u8> {
        match self {
            Fixture::Text(n) => {
                let mut v = Vec::with_capacity(n + 64);
                let mut line = 0u32;
                while v.len() < n {
                    v.extend_from_slice(
                        format!("{line:05} the quick brown fox jumps over the lazy dog\n")
                            .as_bytes(),
                    );
                    line += 1;
                }
                v.truncate(n);
                v
            }
            Fixture::Digits(n) => (0..n).map(|i| b'0' + (i % 10) as u8).collect(),
            Fixture::AllBytes => {
                let mut v = b"0|||1|||0|||7|||".to_vec();
                for round in 0..4u8 {
                    v.extend(0..=255u8);
                    v.extend_from_slice(b"|||");
                    v.extend_from_slice(&[b'|'; 5][..=usize::from(round)]);
                }
                v
            }
        }
    }
}

/// What else is graded, beyond the file arriving intact and the close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extra {
    None,
    /// Their data segments carry at most 16 bytes (their client only).
    Segments16,
    /// Their first data segment announces the whole file's length (their client only).
    LengthFirst,
}

/// One scenario.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// Short name, for `--only` and file names.
    pub id: &'static str,
    /// What it does, for the report.
    pub title: &'static str,
    /// The seed's step(s) it grades.
    pub step: &'static str,
    pub faults: Faults,
    pub fixture: Fixture,
    pub extra: Extra,
}

const fn scenario(
    id: &'static str,
    title: &'static str,
    step: &'static str,
    faults: Faults,
    fixture: Fixture,
) -> Scenario {
    Scenario {
        id,
        title,
        step,
        faults,
        fixture,
        extra: Extra::None,
    }
}

const SMALL: Fixture = Fixture::Text(1000);

/// Every scenario, in the order run (the first teaches us the dialect).
pub const SCENARIOS: [Scenario; 15] = [
    scenario("clean", "clean transfer", "4-6", Faults::Clean, SMALL),
    Scenario {
        extra: Extra::Segments16,
        ..scenario(
            "segments-16",
            "data in segments of at most 16 bytes",
            "5",
            Faults::Clean,
            SMALL,
        )
    },
    Scenario {
        extra: Extra::LengthFirst,
        ..scenario(
            "length-first",
            "the message length in the first segment",
            "5",
            Faults::Clean,
            Fixture::Digits(100),
        )
    },
    scenario(
        "lost-syn",
        "the SYN lost once",
        "7",
        Faults::Lose(Lost::Syn),
        SMALL,
    ),
    scenario(
        "lost-synack",
        "the SYN-ACK lost once",
        "7",
        Faults::Lose(Lost::SynAck),
        SMALL,
    ),
    scenario(
        "lost-handshake-ack",
        "the handshake ACK lost (the edge case)",
        "7",
        Faults::Lose(Lost::HandshakeAck),
        SMALL,
    ),
    scenario(
        "lost-first-data",
        "the first data segment lost once",
        "5",
        Faults::Lose(Lost::FirstData),
        SMALL,
    ),
    scenario(
        "lost-data-ack",
        "a data ACK lost once",
        "5",
        Faults::Lose(Lost::DataAck),
        SMALL,
    ),
    scenario(
        "lost-fin",
        "the FIN lost once",
        "8",
        Faults::Lose(Lost::Fin),
        SMALL,
    ),
    scenario(
        "lost-finack",
        "the FIN-ACK (or the second FIN) lost once",
        "8",
        Faults::Lose(Lost::FinAck),
        SMALL,
    ),
    scenario(
        "lost-final-ack",
        "the final ACK of the close lost",
        "8",
        Faults::Lose(Lost::FinalAck),
        SMALL,
    ),
    scenario(
        "loss-20",
        "20% random loss both ways",
        "5,7,8",
        Faults::Random {
            loss: 0.2,
            duplicate: 0.0,
            reorder: 0.0,
        },
        Fixture::Text(512),
    ),
    scenario(
        "dup-reorder",
        "datagrams duplicated and reordered (20% each, both ways)",
        "5",
        Faults::Random {
            loss: 0.0,
            duplicate: 0.2,
            reorder: 0.2,
        },
        Fixture::Text(2000),
    ),
    scenario(
        "file-100k",
        "a 100 KB file",
        "5",
        Faults::Clean,
        Fixture::Text(100 * 1024),
    ),
    scenario(
        "all-bytes",
        "bytes 0-255 in the data, ||| included",
        "3",
        Faults::Clean,
        Fixture::AllBytes,
    ),
];

/// How our socket loses `lost` against their `role`, or why the scenario
/// grades nothing of theirs in that role.
// One arm per (role, loss): the table reads as the scenario list does, even
// where two rows happen to lose the same kind.
#[allow(clippy::match_same_arms)]
pub fn drops(lost: Lost, role: Role) -> Result<Vec<DropKind>, &'static str> {
    let one = |way, kind| DropKind::nth(way, kind, 1);
    Ok(match (role, lost) {
        (Role::Server, Lost::Syn) => {
            return Err("a lost SYN exercises only our client's retransmission");
        }
        (Role::Server, Lost::SynAck) => vec![one(Way::Received, Kind::SynAck)],
        (Role::Server, Lost::HandshakeAck) => vec![one(Way::Sent, Kind::Ack)],
        (Role::Server, Lost::FirstData) => vec![one(Way::Sent, Kind::Data)],
        (Role::Server, Lost::DataAck) => vec![one(Way::Received, Kind::Ack)],
        (Role::Server, Lost::Fin) => vec![one(Way::Sent, Kind::Fin)],
        // Three segments: their FIN-ACK; four: their own FIN after the ACK.
        (Role::Server, Lost::FinAck) => vec![
            one(Way::Received, Kind::FinAck),
            one(Way::Received, Kind::Fin),
        ],
        // Their recv_close must give up after 3 timeouts (step 8): every
        // copy of our final ACK is lost, or our resending would hide it.
        (Role::Server, Lost::FinalAck) => vec![DropKind {
            way: Way::Sent,
            kind: Kind::Ack,
            nth: (1..=64).collect(),
            after_our_fin: true,
        }],
        (Role::Client, Lost::Syn) => vec![one(Way::Received, Kind::Syn)],
        (Role::Client, Lost::SynAck) => vec![one(Way::Sent, Kind::SynAck)],
        (Role::Client, Lost::HandshakeAck) => vec![one(Way::Received, Kind::Ack)],
        (Role::Client, Lost::FirstData) => vec![one(Way::Received, Kind::Data)],
        (Role::Client, Lost::DataAck) => vec![one(Way::Sent, Kind::Ack)],
        (Role::Client, Lost::Fin) => vec![one(Way::Received, Kind::Fin)],
        (Role::Client, Lost::FinAck) => {
            vec![one(Way::Sent, Kind::FinAck), one(Way::Sent, Kind::Fin)]
        }
        // The seed's close() sends its last ACK three times: one lost is
        // survived. (The four-way reading sets the FIN flag on it.)
        (Role::Client, Lost::FinalAck) => [Kind::Ack, Kind::FinAck]
            .into_iter()
            .map(|kind| DropKind {
                after_our_fin: true,
                ..one(Way::Received, kind)
            })
            .collect(),
    })
}

/// Why a scenario grades nothing of theirs in `role`, if it does not.
pub fn not_applicable(s: &Scenario, role: Role) -> Option<&'static str> {
    match (s.extra, s.faults, role) {
        (Extra::Segments16, _, Role::Server) => Some("their server sends no data"),
        (Extra::LengthFirst, _, Role::Server) => {
            Some("their server sends no message (it reads ours: every scenario)")
        }
        (_, Faults::Lose(lost), role) => drops(lost, role).err(),
        _ => None,
    }
}

/// What the activity expects of their `role` program in `s`, for a report
/// line under a failure.
pub fn rule(s: &Scenario, role: Role) -> &'static str {
    use Role::{Client, Server};
    match (s.faults, s.extra, role) {
        (_, Extra::Segments16, _) => "send() cuts the message in pieces of at most 16 bytes",
        (_, Extra::LengthFirst, _) => {
            "send()'s first segment carries len(message); the data follows"
        }
        (Faults::Lose(Lost::Syn), _, _) => "connect() sends the SYN again after a timeout",
        (Faults::Lose(Lost::SynAck), _, Server) => {
            "accept() answers a repeated SYN (or resends the SYN-ACK on its timeout)"
        }
        (Faults::Lose(Lost::SynAck), _, Client) => {
            "connect() sends the SYN again when no SYN-ACK comes"
        }
        (Faults::Lose(Lost::HandshakeAck), _, Server) => {
            "the edge case: data while waiting for the handshake ACK stands for it              (or the SYN-ACK is resent until the ACK comes)"
        }
        (Faults::Lose(Lost::HandshakeAck), _, Client) => {
            "connect() answers a repeated SYN-ACK with the handshake ACK again"
        }
        (Faults::Lose(Lost::FirstData | Lost::DataAck), _, Server) => {
            "recv() answers every copy of a segment with its ACK, and keeps one copy"
        }
        (Faults::Lose(Lost::FirstData | Lost::DataAck), _, Client) => {
            "send() resends a segment until its ACK comes"
        }
        (Faults::Lose(Lost::Fin), _, Server) => "recv_close() takes the FIN when it comes again",
        (Faults::Lose(Lost::Fin), _, Client) => "close() resends the FIN after a timeout",
        (Faults::Lose(Lost::FinAck), _, Server) => {
            "recv_close() answers a repeated FIN with its FIN-ACK again"
        }
        (Faults::Lose(Lost::FinAck), _, Client) => {
            "close() resends the FIN until the FIN-ACK comes (up to 3 timeouts)"
        }
        (Faults::Lose(Lost::FinalAck), _, Server) => {
            "recv_close() gives up after 3 timeouts without the last ACK"
        }
        (Faults::Lose(Lost::FinalAck), _, Client) => {
            "close() sends the last ACK three times, one timeout apart"
        }
        (Faults::Random { loss, .. }, _, _) if loss > 0.0 => {
            "every loss above, wherever it falls, is recovered"
        }
        (Faults::Random { .. }, _, _) => {
            "a copy is answered and never delivered twice; a late segment is not taken out of order"
        }
        (Faults::Clean, _, _) => "the file arrives intact and both ends close",
    }
}

/// The scenario called `id`.
pub fn find(id: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_files_hold_what_they_say() {
        for (i, s) in SCENARIOS.iter().enumerate() {
            assert!(SCENARIOS[..i].iter().all(|o| o.id != s.id), "{}", s.id);
            assert_eq!(find(s.id).map(|f| f.title), Some(s.title));
        }
        assert_eq!(Fixture::Text(100 * 1024).bytes().len(), 100 * 1024);
        assert!(Fixture::Text(1000).bytes().iter().all(u8::is_ascii));
        assert!(Fixture::Digits(100).bytes().iter().all(u8::is_ascii_digit));
        let all = Fixture::AllBytes.bytes();
        for b in 0..=255u8 {
            assert!(all.contains(&b), "{b}");
        }
        assert!(all.windows(3).any(|w| w == b"|||"));
    }

    #[test]
    fn every_single_loss_applies_to_a_client_and_all_but_the_syn_to_a_server() {
        for lost in [
            Lost::Syn,
            Lost::SynAck,
            Lost::HandshakeAck,
            Lost::FirstData,
            Lost::DataAck,
            Lost::Fin,
            Lost::FinAck,
            Lost::FinalAck,
        ] {
            assert!(drops(lost, Role::Client).is_ok_and(|d| !d.is_empty()));
            assert_eq!(drops(lost, Role::Server).is_err(), lost == Lost::Syn);
        }
        let n_a = |id, role| not_applicable(find(id).unwrap(), role).is_some();
        assert!(n_a("segments-16", Role::Server) && !n_a("segments-16", Role::Client));
        assert!(n_a("lost-syn", Role::Server) && !n_a("lost-syn", Role::Client));
        assert!(!n_a("loss-20", Role::Server));
    }

    #[test]
    fn each_role_is_told_its_own_rule() {
        let synack = find("lost-synack").unwrap();
        assert!(rule(synack, Role::Server).starts_with("accept()"));
        assert!(rule(synack, Role::Client).starts_with("connect()"));
        let last = find("lost-final-ack").unwrap();
        assert!(rule(last, Role::Server).contains("3 timeouts"));
        assert!(rule(last, Role::Client).contains("three times"));
    }
}
