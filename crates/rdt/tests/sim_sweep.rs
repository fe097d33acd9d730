#![allow(clippy::unwrap_used)]
//! The seed sweep (issue: "at least 2,000 seeds with loss up to 30% both ways
//! plus duplication and reordering"): every transfer byte-identical, every
//! close within its bound, no livelock (the simulator's drive loop is bounded).

mod support;

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rdt::sim::{Network, Report, Script, Sim};
use rdt::{DialectChoice, Ending, Format, Reading};
use support::{TIMEOUT, config, message};

const SEEDS: u64 = 2_000;

/// Time from the first note containing `from` to the first containing `to`.
fn span(notes: &[(Duration, rdt::Note)], from: &str, to: &str) -> Option<Duration> {
    let start = notes.iter().find(|(_, n)| n.to_string().contains(from))?.0;
    let end = notes.iter().find(|(_, n)| n.to_string().contains(to))?.0;
    end.checked_sub(start)
}

fn check(seed: u64, format: Format, report: &Report, script: &Script) {
    let ctx = format!("{format} seed {seed}");
    support::assert_delivered(report, script, &ctx);
    match (&report.server_error, report.client_ending) {
        (None, _) => {}
        // The seed's close(): after 3 unanswered FINs the client assumes the
        // server closed; a server that never saw a FIN ends at its idle limit.
        (Some(e), Some(Ending::FinUnanswered)) if e.contains("peer silent") => {}
        // Same rule, other direction: the client had all the server's data but
        // its last ACKs were lost and it stopped answering after its timeouts.
        (Some(e), Some(Ending::FinUnanswered)) if e.contains("no answer to DATA") => {}
        (Some(e), ending) => panic!("{ctx}: server error {e} (client ending {ending:?})"),
    }
    // close(): ≤ 3 timeouts for the FIN-ACK (FIN-WAIT-1), ≤ 3 more after the
    // last segment heard if a plain ACK came first (FIN-WAIT-2), then 2 between
    // the final ACKs; one more for network delay. When the server still has
    // data to send, FIN-WAIT-2 lasts while it does: the idle limit bounds it.
    if let Some(d) = span(&report.client_notes, "=> FIN-WAIT-1", "=> CLOSED") {
        let bound = if script.server_sends.is_empty() {
            TIMEOUT * 9
        } else {
            config(format).idle_limit
        };
        assert!(d <= bound, "{ctx}: client close took {d:?}");
    }
    // recv_close(): ≤ 3 timeouts for the last ACK.
    if let Some(d) = span(&report.server_notes, "=> LAST-ACK", "=> CLOSED") {
        assert!(d <= TIMEOUT * 3, "{ctx}: server close took {d:?}");
    }
}

fn sweep(format: Format) -> (u64, u64) {
    sweep_with(format, DialectChoice::Forced(Reading::SEED))
}

fn sweep_with(format: Format, dialect: DialectChoice) -> (u64, u64) {
    let mut retransmissions = 0;
    let mut gave_up_fin = 0;
    for seed in 0..SEEDS {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
        let net = Network {
            loss: rng.random_range(0.0..=0.30),
            duplicate: rng.random_range(0.0..=0.10),
            reorder: rng.random_range(0.0..=0.20),
            reorder_delay: TIMEOUT * 2,
            corrupt: if format == Format::Binary {
                rng.random_range(0.0..=0.05)
            } else {
                0.0
            },
            delay: Duration::from_micros(rng.random_range(10..=2_000)),
        };
        let client_sends = (0..rng.random_range(1..=3))
            .map(|_| message(rng.random_range(0..=600)))
            .collect();
        // Both directions at once only in binary (course: one shared counter).
        let server_sends = if format == Format::Binary && rng.random_bool(0.5) {
            vec![message(rng.random_range(1..=300))]
        } else {
            Vec::new()
        };
        let script = Script {
            client_sends,
            server_sends,
            read_size: rng.random_range(1..=64),
        };
        let mut cfg = config(format);
        cfg.mss = rng.random_range(1..=64);
        cfg.dialect = dialect;
        let report = Sim::new(cfg, net, seed, script.clone()).run(Duration::from_secs(3_600));
        check(seed, format, &report, &script);
        retransmissions +=
            report.client_stats.retransmissions + report.server_stats.retransmissions;
        gave_up_fin += u64::from(report.client_ending == Some(Ending::FinUnanswered));
    }
    (retransmissions, gave_up_fin)
}

#[test]
fn two_thousand_lossy_course_transfers_are_byte_identical() {
    let (retransmissions, _) = sweep(Format::Course);
    assert!(retransmissions > SEEDS, "the network really lost segments");
}

#[test]
fn two_thousand_lossy_binary_transfers_are_byte_identical() {
    let (retransmissions, _) = sweep(Format::Binary);
    assert!(retransmissions > SEEDS);
}

/// Both ends learning (`--dialect auto`, the default): the same sweep.
#[test]
fn two_thousand_lossy_course_transfers_between_learning_ends() {
    let (retransmissions, _) = sweep_with(Format::Course, DialectChoice::Auto);
    assert!(retransmissions > SEEDS);
}
