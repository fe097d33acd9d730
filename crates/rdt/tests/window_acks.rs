#![allow(clippy::unwrap_used)]
//! How the windowed receivers answer data that arrives out of order
//! (docs/protocols/rdt.md "ACKs"): go-back-n, and selective repeat in the
//! course format, answer each such segment at once (a duplicate ACK the
//! sender counts); selective repeat in the binary format answers a batch of
//! them with one ACK whose SACK blocks name all it holds. Driven by hand,
//! with no network: the batch is what arrives between two polls.

mod support;

use std::time::Instant;

use rdt::{Config, Connection, Format, Kind, Mode, Output, Segment, Seq};

fn config(mode: Mode, format: Format) -> Config {
    Config {
        mode,
        window: 16,
        mss: 100,
        ..support::config(format)
    }
}

/// Every segment `c` wants sent now.
fn transmits(c: &mut Connection) -> Vec<Segment> {
    let mut out = Vec::new();
    while let Some(o) = c.poll_output() {
        if let Output::Transmit(seg) | Output::TransmitToListener(seg) = o {
            out.push(seg);
        }
    }
    out
}

/// A connected pair: the client's SYN, the server made from it, and the
/// segments between them until both are established.
fn pair(cfg: &Config) -> (Connection, Connection) {
    let now = Instant::now();
    let mut client = Connection::connect(cfg.clone(), now, Seq(1_000));
    let syn = transmits(&mut client).remove(0);
    let mut server = Connection::accept(cfg.clone(), now, &syn, Seq(9_000));
    for _ in 0..4 {
        for seg in transmits(&mut server) {
            client.handle_segment(now, seg);
        }
        for seg in transmits(&mut client) {
            server.handle_segment(now, seg);
        }
    }
    assert!(client.is_established() && server.is_established());
    (client, server)
}

/// The client's first data segments go to the server all but the first,
/// with no poll between them; returns the ACKs the server sends.
fn acks_of_a_burst_with_a_hole(mode: Mode, format: Format) -> (Vec<Segment>, Vec<Segment>) {
    let cfg = config(mode, format);
    let (mut client, mut server) = pair(&cfg);
    let now = Instant::now();
    client.write_message(now, &support::message(800)).unwrap();
    let data: Vec<Segment> = transmits(&mut client)
        .into_iter()
        .filter(|s| s.kind() == Kind::Data)
        .collect();
    assert!(data.len() >= 5, "{mode}: {} data segments", data.len());
    for seg in data.iter().skip(1).cloned() {
        server.handle_segment(now, seg);
    }
    let acks = transmits(&mut server)
        .into_iter()
        .filter(|s| s.flags.ack && s.data.is_empty())
        .collect();
    (data, acks)
}

#[test]
fn selective_repeat_in_binary_answers_a_burst_once_naming_all_it_holds() {
    let (data, acks) = acks_of_a_burst_with_a_hole(Mode::SelectiveRepeat, Format::Binary);
    assert_eq!(acks.len(), 1, "one ACK for the burst: {acks:?}");
    let ack = &acks[0];
    assert_eq!(ack.ack, data[0].seq, "cumulative: up to the hole");
    let last = data.last().unwrap();
    assert_eq!(
        ack.sack.blocks(),
        &[(data[1].seq, last.seq.plus(last.data.len()))],
        "one block from after the hole to the last segment"
    );
}

#[test]
fn go_back_n_and_the_course_format_answer_each_out_of_order_segment() {
    for (mode, format) in [
        (Mode::GoBackN, Format::Binary),
        (Mode::SelectiveRepeat, Format::Course),
    ] {
        let (data, acks) = acks_of_a_burst_with_a_hole(mode, format);
        assert_eq!(
            acks.len(),
            data.len() - 1,
            "{mode} {format}: a duplicate ACK for each segment after the hole"
        );
        assert!(acks.iter().all(|a| a.ack == data[0].seq), "{mode} {format}");
    }
}
