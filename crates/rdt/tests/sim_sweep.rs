#![allow(clippy::unwrap_used)]
//! The seed sweep (issue: "at least 2,000 seeds with loss up to 30% both ways
//! plus duplication and reordering"): every transfer byte-identical, every
//! close within its bound, no livelock (the simulator's drive loop is bounded).

mod support;

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rdt::sim::{Script, Sim};
use rdt::{DialectChoice, Ending, Format, Reading};
use support::{config, message};

const SEEDS: u64 = 2_000;

fn sweep(format: Format) -> (u64, u64) {
    sweep_with(format, DialectChoice::Forced(Reading::SEED))
}

fn sweep_with(format: Format, dialect: DialectChoice) -> (u64, u64) {
    let mut retransmissions = 0;
    let mut gave_up_fin = 0;
    for seed in 0..SEEDS {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
        let net = support::lossy_network(&mut rng, format == Format::Binary);
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
        support::check_lossy_run(
            &format!("{format} seed {seed}"),
            &report,
            &script,
            config(format).idle_limit,
        );
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
