#![allow(clippy::unwrap_used)]
//! Every course reading of `dialect.rs`, spoken by one end (forced) and
//! learned by the other (auto), both ways, on the deterministic simulator:
//! clean, with the lost-handshake-ACK edge case, and with 20% loss both ways
//! over many seeds. The learning end must end up with the transfer byte for
//! byte, a graceful close, and the facts it could observe right.

mod support;

use std::time::Duration;

use rdt::dialect::{Counter, Unit};
use rdt::sim::{Dir, Network, Report, Script, Sim};
use rdt::{Config, DialectChoice, Ending, Format, Kind, Reading};
use support::{TIMEOUT, message};

const LIMIT: Duration = Duration::from_secs(600);

fn cfg(choice: DialectChoice) -> Config {
    Config {
        timeout: TIMEOUT,
        idle_limit: Duration::from_secs(20),
        dialect: choice,
        ..Config::new(Format::Course)
    }
}

fn auto() -> Config {
    cfg(DialectChoice::Auto)
}

fn forced(r: Reading) -> Config {
    cfg(DialectChoice::Forced(r))
}

/// The readings the tests play: each named one, and some together.
fn readings() -> Vec<Reading> {
    let mut v: Vec<Reading> = Reading::NAMED
        .iter()
        .map(|(n, _)| Reading::parse(n).unwrap())
        .collect();
    for combo in [
        "own-isn,segments",
        "ack-free,encoded,filler",
        "own-isn,four-way,filler",
        "segments,four-way",
    ] {
        v.push(Reading::parse(combo).unwrap());
    }
    v
}

fn script(len: usize, back: usize) -> Script {
    Script {
        client_sends: vec![message(len)],
        server_sends: if back > 0 {
            vec![message(back)]
        } else {
            Vec::new()
        },
        read_size: 1024,
    }
}

fn script_back(len: usize) -> Script {
    Script {
        client_sends: Vec::new(),
        server_sends: vec![message(len)],
        read_size: 1024,
    }
}

/// Runs `reading` forced on one side, auto on the other.
fn run(reading: Reading, forced_server: bool, net: Network, seed: u64, script: &Script) -> Sim {
    let (c, s) = if forced_server {
        (auto(), forced(reading))
    } else {
        (forced(reading), auto())
    };
    Sim::with_configs(c, s, net, seed, script.clone())
}

fn check(report: &Report, script: &Script, ctx: &str) {
    support::assert_delivered(report, script, ctx);
    if let Some(e) = &report.server_error {
        // The seed's close: a client whose FIN-ACK never came assumes the
        // server closed; the server then ends at its idle limit.
        assert!(
            matches!(e, rdt::Error::PeerSilent(_))
                && report.client_ending == Some(Ending::FinUnanswered),
            "{ctx}: server error {e}"
        );
    }
}

/// What the learning side knows at the end agrees with the reading, where
/// the exchange showed it. (A server whose handshake ACK was lost cannot
/// tell own-isn from ack-free: both send their data from x + 1.)
fn check_learned(report: &Report, reading: Reading, forced_server: bool, ctx: &str) {
    check_learned_as(report, reading, forced_server, true, ctx);
}

fn check_learned_as(
    report: &Report,
    reading: Reading,
    forced_server: bool,
    ack_seen: bool,
    ctx: &str,
) {
    let learned = if forced_server {
        report.client_reading.unwrap()
    } else {
        report.server_reading.unwrap()
    };
    if reading.unit != Unit::Bytes {
        assert_eq!(learned.unit, reading.unit, "{ctx}: unit");
    }
    if reading.counter == Counter::PerSide && (forced_server || ack_seen) {
        assert_eq!(learned.counter, Counter::PerSide, "{ctx}: counter");
    } else if reading.counter == Counter::PerSide {
        assert!(
            learned.counter == Counter::PerSide || !learned.ack_consumes,
            "{ctx}: data from x + 1"
        );
    } else if !reading.ack_consumes {
        assert!(!learned.ack_consumes, "{ctx}: the ACK consumes nothing");
    }
    if reading.filler {
        assert!(learned.filler, "{ctx}: filler");
    }
}

#[test]
fn each_reading_is_learned_both_ways_on_a_clean_network() {
    for reading in readings() {
        for forced_server in [true, false] {
            let ctx = format!(
                "{reading}, forced {}",
                if forced_server { "server" } else { "client" }
            );
            let s = script(300, 0);
            let report = run(reading, forced_server, Network::perfect(), 1, &s).run(LIMIT);
            check(&report, &s, &ctx);
            check_learned(&report, reading, forced_server, &ctx);
            assert_eq!(report.client_ending, Some(Ending::Graceful), "{ctx}");
            assert_eq!(report.server_ending, Some(Ending::Graceful), "{ctx}");
        }
    }
}

#[test]
fn each_reading_survives_the_lost_handshake_ack() {
    for reading in readings() {
        for forced_server in [true, false] {
            let ctx = format!(
                "{reading}, forced {}",
                if forced_server { "server" } else { "client" }
            );
            let s = script(100, 0);
            let report = run(reading, forced_server, Network::perfect(), 2, &s)
                .drop_nth(Dir::ToServer, Kind::Ack, 1)
                .run(LIMIT);
            check(&report, &s, &ctx);
            check_learned_as(&report, reading, forced_server, false, &ctx);
            // Repaired one of the seed's two ways: the first data stood for the
            // ACK, or (a server that would not take our first data's start) its
            // SYN-ACK came again and the ACKs went again.
            let implicit = report
                .server_notes
                .iter()
                .any(|(_, n)| matches!(n, rdt::Note::ImplicitAck(_)));
            let resent = report.client_notes.iter().any(|(_, n)| {
                matches!(n, rdt::Note::Duplicate { got, .. } if got.kind() == Kind::SynAck)
            });
            assert!(implicit || resent, "{ctx}: the lost ACK was repaired");
        }
    }
}

#[test]
fn each_reading_carries_data_back_too() {
    for reading in readings() {
        for forced_server in [true, false] {
            let ctx = format!(
                "{reading}, forced {}",
                if forced_server { "server" } else { "client" }
            );
            // The shared counter carries one direction at a time: the client
            // sends nothing, the server a message.
            let s = script_back(45);
            let report = run(reading, forced_server, Network::perfect(), 3, &s).run(LIMIT);
            check(&report, &s, &ctx);
        }
    }
}

/// Every reading, forced on either end, over `net` with each of `seeds`.
fn sweep(net: &Network, seeds: std::ops::Range<u64>) {
    for reading in readings() {
        for forced_server in [true, false] {
            for seed in seeds.clone() {
                let ctx = format!(
                    "{reading}, forced {}, seed {seed}",
                    if forced_server { "server" } else { "client" }
                );
                let s = script(500, 0);
                let report = run(reading, forced_server, net.clone(), seed, &s).run(LIMIT);
                check(&report, &s, &ctx);
            }
        }
    }
}

#[test]
fn each_reading_through_twenty_percent_loss_over_many_seeds() {
    sweep(&Network::perfect().loss(0.2), 0..60);
}

/// Two forced ends of the same reading talk (each reading is a complete
/// protocol of its own), and the auto end against auto is the seed's.
#[test]
fn each_reading_talks_to_itself_and_auto_to_auto() {
    for reading in readings() {
        let s = script(200, 0);
        let report = Sim::with_configs(
            forced(reading),
            forced(reading),
            Network::perfect(),
            4,
            s.clone(),
        )
        .run(LIMIT);
        check(&report, &s, &reading.to_string());
        assert_eq!(report.client_ending, Some(Ending::Graceful), "{reading}");
    }
    let s = script(200, 0);
    let report = Sim::with_configs(auto(), auto(), Network::perfect(), 4, s.clone()).run(LIMIT);
    check(&report, &s, "auto");
    assert_eq!(report.server_reading.unwrap().unit, Unit::Bytes);
}

#[test]
fn each_reading_through_loss_reordering_and_duplication() {
    let net = Network::perfect()
        .loss(0.2)
        .duplicate(0.05)
        .reorder(0.1, TIMEOUT * 2);
    sweep(&net, 1_000..1_060);
}
