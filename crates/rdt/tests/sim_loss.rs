#![allow(clippy::unwrap_used)]
//! One targeted simulator test per loss case of the spec ("Loss handling"),
//! plus the course numbering of a clean exchange, byte for byte.

mod support;

use std::time::Duration;

use rdt::sim::{Dir, Network, Script, Sim};
use rdt::{Answer, Ending, Format, Kind, Note, State};
use support::*;

const LIMIT: Duration = Duration::from_secs(60);

fn wire_text(report: &rdt::sim::Report, dir: Dir) -> Vec<String> {
    report
        .transits
        .iter()
        .filter(|t| t.dir == dir)
        .map(|t| String::from_utf8_lossy(&t.bytes).into_owned())
        .collect()
}

#[test]
fn a_clean_course_exchange_numbers_as_the_seed() {
    let script = Script {
        client_sends: vec![b"Mensaje de prueba".to_vec()],
        server_sends: Vec::new(),
        read_size: 100,
    };
    let report = sim(Format::Course, script.clone()).run(LIMIT);
    assert_clean(&report, &script);
    let up = wire_text(&report, Dir::ToServer);
    let down = wire_text(&report, Dir::ToClient);
    let x: u32 = up[0]
        .strip_prefix("1|||0|||0|||")
        .unwrap()
        .trim_end_matches('|')
        .parse()
        .unwrap();
    assert!(x <= 100, "initial sequence number in 0..=100");
    let n = |k: u32| (x + k).to_string();
    // SYN x, SYN-ACK x+1, ACK x+2; length "17" at x+2 acked x+4; data at x+4 acked x+21.
    assert_eq!(up[1], format!("0|||1|||0|||{}|||", n(2)));
    assert_eq!(down[0], format!("1|||1|||0|||{}|||", n(1)));
    assert_eq!(up[2], format!("0|||0|||0|||{}|||17", n(2)));
    assert_eq!(down[1], format!("0|||1|||0|||{}|||", n(4)));
    // MSS 16: 16 bytes at x+4 acked x+20, the last byte at x+20 acked x+21.
    assert_eq!(up[3], format!("0|||0|||0|||{}|||Mensaje de prueb", n(4)));
    assert_eq!(down[2], format!("0|||1|||0|||{}|||", n(20)));
    assert_eq!(up[4], format!("0|||0|||0|||{}|||a", n(20)));
    assert_eq!(down[3], format!("0|||1|||0|||{}|||", n(21)));
    // Close: FIN x+21, FIN-ACK x+22, the final ACK x+23 three times.
    assert_eq!(up[5], format!("0|||0|||1|||{}|||", n(21)));
    assert_eq!(down[4], format!("0|||1|||1|||{}|||", n(22)));
    assert_eq!(up[6..], vec![format!("0|||1|||0|||{}|||", n(23)); 3]);
    assert_eq!(down.len(), 5);
    assert_eq!(report.client_ending, Some(Ending::Graceful));
    assert_eq!(report.server_ending, Some(Ending::Graceful));
}

#[test]
fn the_final_acks_go_out_one_timeout_apart() {
    let report = sim(Format::Course, one_way(10)).run(LIMIT);
    let acks: Vec<Duration> = report
        .transits
        .iter()
        .filter(|t| t.dir == Dir::ToServer && t.segment.kind() == Kind::Ack)
        .skip(1)
        .map(|t| t.at)
        .collect();
    assert_eq!(acks.len(), 3);
    assert_eq!(acks[1].checked_sub(acks[0]), Some(TIMEOUT));
    assert_eq!(acks[2].checked_sub(acks[1]), Some(TIMEOUT));
}

#[test]
fn lost_syn_is_sent_again() {
    let script = one_way(40);
    let report = sim(Format::Course, script.clone())
        .drop_nth(Dir::ToServer, Kind::Syn, 1)
        .run(LIMIT);
    assert_clean(&report, &script);
    assert_eq!(sent(&report, Dir::ToServer, Kind::Syn), 2);
    assert!(retransmitted(&report.client_notes, Kind::Syn));
}

#[test]
fn lost_syn_ack_a_duplicate_syn_gets_the_same_syn_ack() {
    let script = one_way(40);
    let report = sim(Format::Course, script.clone())
        .drop_nth(Dir::ToClient, Kind::SynAck, 1)
        .run(LIMIT);
    assert_clean(&report, &script);
    let synacks: Vec<&Vec<u8>> = report
        .transits
        .iter()
        .filter(|t| t.segment.kind() == Kind::SynAck)
        .map(|t| &t.bytes)
        .collect();
    assert!(synacks.len() >= 2);
    assert!(
        synacks.iter().all(|b| *b == synacks[0]),
        "identical SYN-ACKs"
    );
    assert!(answered(&report.server_notes, Answer::SameSynAck));
}

#[test]
fn lost_handshake_ack_first_data_is_the_implicit_ack_and_is_kept() {
    for format in [Format::Course, Format::Binary] {
        let script = one_way(40);
        let report = sim(format, script.clone())
            .drop_nth(Dir::ToServer, Kind::Ack, 1)
            .run(LIMIT);
        assert_clean(&report, &script);
        assert!(
            report
                .server_notes
                .iter()
                .any(|(_, n)| matches!(n, Note::ImplicitAck(_))),
            "{format}"
        );
        // The first data segment was kept, not asked for again.
        assert_eq!(report.client_stats.retransmissions, 0, "{format}");
    }
}

#[test]
fn lost_handshake_ack_a_stale_syn_ack_makes_the_client_send_it_again() {
    // The client has nothing to send, so only the server's SYN-ACK timer
    // can repair the lost ACK; the server's own data waits for it.
    let script = Script {
        client_sends: Vec::new(),
        server_sends: vec![message(50)],
        read_size: 64,
    };
    for format in [Format::Course, Format::Binary] {
        let report = sim(format, script.clone())
            .drop_nth(Dir::ToServer, Kind::Ack, 1)
            .run(LIMIT);
        assert_clean(&report, &script);
        assert!(
            answered(&report.client_notes, Answer::HandshakeAck),
            "{format}"
        );
        assert_eq!(sent(&report, Dir::ToClient, Kind::SynAck), 2, "{format}");
    }
}

#[test]
fn lost_data_is_retransmitted_and_delivered_once() {
    for format in [Format::Course, Format::Binary] {
        let script = one_way(100);
        let report = sim(format, script.clone())
            .drop_nth(Dir::ToServer, Kind::Data, 3)
            .run(LIMIT);
        assert_clean(&report, &script);
        assert_eq!(report.client_stats.retransmissions, 1, "{format}");
        assert!(retransmitted(&report.client_notes, Kind::Data));
    }
}

#[test]
fn lost_ack_duplicate_data_is_acknowledged_again_and_not_delivered_twice() {
    for format in [Format::Course, Format::Binary] {
        let script = one_way(100);
        let report = sim(format, script.clone())
            .drop_nth(Dir::ToClient, Kind::Ack, 2)
            .run(LIMIT);
        assert_clean(&report, &script);
        assert!(
            answered(&report.server_notes, Answer::CumulativeAck),
            "{format}"
        );
        assert_eq!(
            report.server_stats.bytes_delivered,
            100 + 3,
            "length segment + data, once"
        );
    }
}

#[test]
fn lost_fin_is_sent_again() {
    let script = one_way(20);
    let report = sim(Format::Course, script.clone())
        .drop_nth(Dir::ToServer, Kind::Fin, 1)
        .run(LIMIT);
    assert_clean(&report, &script);
    assert_eq!(sent(&report, Dir::ToServer, Kind::Fin), 2);
    assert_eq!(report.client_ending, Some(Ending::Graceful));
    assert_eq!(report.server_ending, Some(Ending::Graceful));
}

#[test]
fn lost_fin_ack_a_duplicate_fin_gets_it_again() {
    let script = one_way(20);
    let report = sim(Format::Course, script.clone())
        .drop_nth(Dir::ToClient, Kind::FinAck, 1)
        .run(LIMIT);
    assert_clean(&report, &script);
    assert!(
        answered(&report.server_notes, Answer::FinAck)
            || retransmitted(&report.server_notes, Kind::FinAck)
    );
    assert_eq!(report.client_ending, Some(Ending::Graceful));
    assert_eq!(report.server_ending, Some(Ending::Graceful));
}

#[test]
fn lost_final_ack_the_next_of_the_three_closes_the_server() {
    let script = one_way(20);
    // ACKs to the server: the handshake ACK is the first, the final ACKs follow.
    let report = sim(Format::Course, script.clone())
        .drop_nth(Dir::ToServer, Kind::Ack, 2)
        .run(LIMIT);
    assert_clean(&report, &script);
    assert_eq!(report.server_ending, Some(Ending::Graceful));
}

#[test]
fn every_final_ack_lost_recv_close_gives_up_after_three_timeouts() {
    let script = one_way(20);
    let report = Sim::new(
        config(Format::Course),
        Network::perfect(),
        7,
        script.clone(),
    )
    .drop_nth(Dir::ToServer, Kind::Ack, 2)
    .drop_nth(Dir::ToServer, Kind::Ack, 3)
    .drop_nth(Dir::ToServer, Kind::Ack, 4)
    .drop_nth(Dir::ToServer, Kind::Ack, 5)
    .drop_nth(Dir::ToServer, Kind::Ack, 6)
    .drop_nth(Dir::ToServer, Kind::Ack, 7)
    .run(LIMIT);
    assert_clean(&report, &script);
    assert_eq!(report.server_ending, Some(Ending::LastAckMissing));
    assert_eq!(report.client_ending, Some(Ending::Graceful));
    let first_fin_ack = report
        .transits
        .iter()
        .find(|t| t.segment.kind() == Kind::FinAck)
        .unwrap()
        .at;
    let closed = report
        .server_notes
        .iter()
        .find(|(_, n)| {
            matches!(
                n,
                Note::State {
                    to: State::Closed,
                    ..
                }
            )
        })
        .unwrap()
        .0;
    assert_eq!(closed.checked_sub(first_fin_ack), Some(TIMEOUT * 3));
}

#[test]
fn close_gives_up_after_three_timeouts_without_a_fin_ack() {
    let script = one_way(20);
    let mut sim = Sim::new(
        config(Format::Course),
        Network::perfect(),
        7,
        script.clone(),
    );
    for nth in 1..=3 {
        sim = sim.drop_nth(Dir::ToServer, Kind::Fin, nth);
    }
    let report = sim.run(LIMIT);
    assert_eq!(report.server_received, script.client_sends.concat());
    assert_eq!(
        sent(&report, Dir::ToServer, Kind::Fin),
        3,
        "FIN sent, then resent on 2 of 3 timeouts"
    );
    assert_eq!(report.client_ending, Some(Ending::FinUnanswered));
    assert!(
        report
            .client_notes
            .iter()
            .any(|(_, n)| matches!(n, Note::GaveUp { what: "FIN", .. }))
    );
    // The server never saw a FIN: it waits until its idle limit and says so.
    assert!(matches!(
        report.server_error,
        Some(rdt::Error::PeerSilent(_))
    ));
}

#[test]
fn duplicates_in_every_state_are_answered_and_never_delivered_twice() {
    let net = Network::perfect().duplicate(1.0);
    for format in [Format::Course, Format::Binary] {
        // Both directions at once only in binary: the course format's single
        // shared counter carries one direction at a time.
        let server_sends = if format == Format::Binary {
            vec![message(45)]
        } else {
            Vec::new()
        };
        let script = Script {
            client_sends: vec![message(300), message(17)],
            server_sends,
            read_size: 7,
        };
        let report = Sim::new(config(format), net.clone(), 3, script.clone()).run(LIMIT);
        assert_clean(&report, &script);
        assert!(report.server_stats.duplicates > 0 && report.client_stats.duplicates > 0);
        assert!(
            answered(&report.server_notes, Answer::SameSynAck),
            "{format}: duplicate SYN"
        );
        assert!(
            answered(&report.server_notes, Answer::CumulativeAck),
            "{format}: duplicate data"
        );
        assert!(
            answered(&report.server_notes, Answer::FinAck),
            "{format}: duplicate FIN"
        );
        assert!(
            answered(&report.client_notes, Answer::HandshakeAck),
            "{format}: duplicate SYN-ACK"
        );
        assert!(
            duplicate_of(&report.client_notes, Kind::FinAck),
            "{format}: duplicate FIN-ACK"
        );
    }
}

#[test]
fn no_server_connect_fails_with_a_clear_error_within_its_bound() {
    let net = Network::perfect().loss(1.0);
    let report = Sim::new(config(Format::Course), net, 1, one_way(5)).run(LIMIT);
    assert!(report.finished);
    let err = report.client_error.unwrap();
    assert!(
        matches!(
            err,
            rdt::Error::GaveUp {
                what: "SYN",
                tries: 15,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(report.elapsed, TIMEOUT * 15);
}

#[test]
fn a_peer_that_vanishes_mid_transfer_ends_the_send_with_an_error() {
    let mut sim = Sim::new(config(Format::Binary), Network::perfect(), 1, one_way(64));
    for nth in 2..=200 {
        sim = sim.drop_nth(Dir::ToClient, Kind::Ack, nth);
    }
    let report = sim.run(LIMIT);
    assert!(report.finished);
    let err = report.client_error.unwrap();
    assert!(
        matches!(
            err,
            rdt::Error::GaveUp {
                what: "DATA",
                tries: 50,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn recv_returns_min_of_message_and_buff_size_and_keeps_the_rest() {
    let script = Script {
        client_sends: vec![message(19)],
        server_sends: Vec::new(),
        read_size: 14,
    };
    let report = sim(Format::Course, script.clone()).run(LIMIT);
    assert_clean(&report, &script);
    assert_eq!(report.server_reads, [14, 5]);
}

#[test]
fn corrupt_binary_datagrams_are_dropped_and_repaired() {
    let net = Network::perfect().corrupt(0.2);
    let script = one_way(2_000);
    let report =
        Sim::new(config(Format::Binary), net, 11, script.clone()).run(Duration::from_secs(600));
    assert_clean(&report, &script);
    assert!(report.client_stats.retransmissions > 10);
}

#[test]
fn duplicate_data_is_acknowledged_again_while_closing() {
    // The last data segment comes again, held back by the network, while the
    // server waits in LAST-ACK (every final ACK lost keeps it there).
    let script = one_way(20);
    let mut sim = sim(Format::Course, script.clone()).echo_nth_late(
        Dir::ToServer,
        Kind::Data,
        3,
        TIMEOUT / 2,
    );
    for nth in 2..=8 {
        sim = sim.drop_nth(Dir::ToServer, Kind::Ack, nth);
    }
    let report = sim.run(LIMIT);
    assert_clean(&report, &script);
    let last_ack_at = report
        .server_notes
        .iter()
        .find(|(_, n)| {
            matches!(
                n,
                Note::State {
                    to: State::LastAck,
                    ..
                }
            )
        })
        .unwrap()
        .0;
    let answered = report
        .server_notes
        .iter()
        .find(|(_, n)| matches!(n, Note::Duplicate { got, .. } if got.kind() == Kind::Data))
        .unwrap();
    assert!(answered.0 > last_ack_at, "the duplicate came while closing");
    assert!(matches!(
        answered.1,
        Note::Duplicate {
            answer: Answer::CumulativeAck,
            ..
        }
    ));
    assert_eq!(
        report.server_stats.bytes_delivered,
        20 + 2,
        "delivered once"
    );
}

// The simulator is a steppable pair: a test can look and act between events.

#[test]
fn stepping_shows_the_handshake_one_crossing_at_a_time() {
    let script = one_way(40);
    let mut sim = sim(Format::Course, script.clone());
    let mut seen: Vec<(State, Option<State>)> = Vec::new();
    while sim.step() {
        let now = (sim.client().state(), sim.server().map(|s| s.state()));
        if seen.last() != Some(&now) {
            seen.push(now);
        }
    }
    assert!(sim.is_finished());
    // The SYN arrives (the server is born), the SYN-ACK arrives, the ACK arrives.
    assert_eq!(
        seen[..3],
        [
            (State::SynSent, Some(State::SynReceived)),
            (State::Established, Some(State::SynReceived)),
            (State::Established, Some(State::Established)),
        ]
    );
    assert_eq!(seen.last(), Some(&(State::Closed, Some(State::Closed))));
    assert_clean(&sim.into_report(true), &script);
}

#[test]
fn a_bounded_drive_stops_after_its_steps_and_the_next_carries_on() {
    let script = one_way(400);
    let mut sim = sim(Format::Binary, script.clone());
    assert!(!sim.drive_bounded(LIMIT, 3));
    assert!(!sim.is_finished());
    assert!(sim.drive(LIMIT));
    let report = sim.into_report(true);
    assert_clean(&report, &script);
}

#[test]
fn a_message_written_between_steps_is_delivered_after_the_scripted_one() {
    let script = one_way(300);
    let mut sim = sim(Format::Binary, script.clone());
    while !sim.client().is_established() {
        assert!(sim.step(), "the handshake completes");
    }
    let now = sim.now();
    sim.client().write_message(now, &message(77)).unwrap();
    assert!(sim.drive(LIMIT));
    let report = sim.into_report(true);
    assert_eq!(report.server_received, [message(300), message(77)].concat());
    assert!(report.server_error.is_none() && report.client_error.is_none());
}

#[test]
fn a_message_given_in_parts_is_sent_whole_and_the_close_waits_for_it() {
    let script = Script {
        client_sends: Vec::new(),
        server_sends: Vec::new(),
        read_size: 1024,
    };
    let mut sim = sim(Format::Binary, script);
    while !sim.client().is_established() {
        assert!(sim.step(), "the handshake completes");
    }
    let whole = message(100);
    let now = sim.now();
    sim.client().begin_message(now, 100).unwrap();
    sim.client()
        .write_more(now, whole[..40].to_vec().into())
        .unwrap();
    // Another message cannot start inside this one, nor take more than it owes.
    assert!(matches!(
        sim.client().begin_message(now, 5),
        Err(rdt::Error::Usage(_))
    ));
    assert!(matches!(
        sim.client().write_more(now, vec![0; 61].into()),
        Err(rdt::Error::Usage(_))
    ));
    // Asked to close with 60 bytes owed: no FIN while they are.
    sim.client().close(now);
    // Half a second (five timeouts) later, still no FIN, and no error.
    let soon = sim.elapsed() + TIMEOUT * 5;
    assert!(!sim.drive_bounded(soon, 200));
    assert_eq!(sim.client().state(), State::Established, "no FIN yet");
    let now = sim.now();
    sim.client()
        .write_more(now, whole[40..].to_vec().into())
        .unwrap();
    assert!(sim.drive(LIMIT));
    let report = sim.into_report(true);
    assert_eq!(report.server_received, whole);
    assert_eq!(report.client_ending, Some(Ending::Graceful));
}
