#![allow(clippy::unwrap_used)]
//! Fairness (issue #15): two selective-repeat flows with the same congestion
//! controller over one rate-limited simulated link, the second starting
//! while the first holds the link, each get 40–60% of what crosses it.

use std::time::Duration;

use rdt::sim::bottleneck::{self, Bottleneck, Schedule};
use rdt::{CcKind, Config, Format, Mode, RtoChoice};

#[test]
fn two_flows_with_the_same_controller_share_a_bottleneck_fairly() {
    let link = Bottleneck {
        rate: 1_250_000,
        queue: 60_000,
        delay: Duration::from_millis(10),
    };
    let plan = Schedule {
        stagger: Duration::from_secs(2),
        warmup: Duration::from_secs(10),
        run: Duration::from_secs(50),
    };
    for cc in [CcKind::Reno, CcKind::Cubic, CcKind::Tahoe] {
        let cfg = Config {
            mode: Mode::SelectiveRepeat,
            cc,
            window: 2_000,
            mss: 1_000,
            rto: RtoChoice::Adaptive,
            idle_limit: Duration::from_secs(120),
            ..Config::new(Format::Binary)
        };
        let shares = bottleneck::run(&cfg, 2, link, plan);
        let f = shares.fractions();
        eprintln!(
            "{cc}: shares {f:.3?} {:?}, {} dropped",
            shares.bytes, shares.dropped
        );
        assert!(
            f.iter().all(|x| (0.4..=0.6).contains(x)),
            "{cc}: shares {f:?} ({:?} bytes)",
            shares.bytes
        );
        assert!(shares.dropped > 0, "{cc}: the link was the limit");
        let total: u64 = shares.bytes.iter().sum();
        let capacity = link.rate * plan.run.saturating_sub(plan.warmup).as_secs();
        assert!(
            total * 10 >= capacity * 7,
            "{cc}: the two flows used the link: {total} of {capacity}"
        );
    }
}
