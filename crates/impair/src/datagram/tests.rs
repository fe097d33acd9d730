use super::*;

const N: u64 = 10_000;

fn p(x: f64) -> Probability {
    Probability::new(x).unwrap()
}

fn engine(rules: UdpRules, seed: u64) -> DatagramEngine {
    DatagramEngine::new(
        rules,
        rand::SeedableRng::seed_from_u64(seed),
        Arc::default(),
    )
}

fn payload(i: u64) -> Bytes {
    Bytes::from(i.to_be_bytes().to_vec())
}

/// Feeds `N` datagrams 1 ms apart, draining everything due; returns the decisions
/// and the payload indices in the order they came out.
fn run(e: &mut DatagramEngine, n: u64) -> (Vec<Decision>, Vec<u64>) {
    let t0 = Instant::now();
    let mut decisions = Vec::new();
    let mut out = Vec::new();
    let drain = |e: &mut DatagramEngine, now: Instant, out: &mut Vec<u64>| {
        e.on_timeout(now);
        while let Some(b) = e.poll_emit(now) {
            out.push(u64::from_be_bytes(b[..8].try_into().unwrap()));
        }
    };
    for i in 1..=n {
        let now = t0 + Duration::from_millis(i);
        drain(e, now, &mut out);
        decisions.push(e.on_datagram(now, payload(i)));
        drain(e, now, &mut out);
    }
    // Let every timer run out.
    let mut now = t0 + Duration::from_millis(n);
    for _ in 0..10_000 {
        match e.poll_timeout() {
            Some(t) => {
                now = now.max(t);
                drain(e, now, &mut out);
            }
            None => break,
        }
    }
    assert_eq!(e.pending(), 0, "drive loop left datagrams behind");
    (decisions, out)
}

fn everything() -> UdpRules {
    UdpRules {
        loss: p(0.2),
        duplicate: p(0.1),
        corrupt: p(0.05),
        reorder: p(0.1),
        delay: Duration::from_millis(3),
        jitter: Duration::from_millis(2),
        ..UdpRules::default()
    }
}

/// Asserts `count` is within 5 standard deviations of a binomial(n, p) mean.
fn assert_binomial(count: u64, n: u64, p: f64, what: &str) {
    let mean = n as f64 * p;
    let sd = (n as f64 * p * (1.0 - p)).sqrt();
    let c = count as f64;
    assert!(
        (c - mean).abs() <= 5.0 * sd,
        "{what}: {count} of {n}, expected {mean:.0} ± {:.0}",
        5.0 * sd
    );
}

#[test]
fn same_seed_same_traffic_same_decisions() {
    let (d1, o1) = run(&mut engine(everything(), 42), 2000);
    let (d2, o2) = run(&mut engine(everything(), 42), 2000);
    assert_eq!(d1, d2);
    assert_eq!(o1, o2);
    let (d3, _) = run(&mut engine(everything(), 43), 2000);
    assert_ne!(d1, d3, "a different seed must give different decisions");
}

#[test]
fn one_rule_does_not_shift_another_rules_choices() {
    let loss_only = UdpRules {
        loss: p(0.3),
        ..UdpRules::default()
    };
    let both = UdpRules {
        loss: p(0.3),
        duplicate: p(0.5),
        ..UdpRules::default()
    };
    let drops = |rules| {
        run(&mut engine(rules, 7), 1000)
            .0
            .into_iter()
            .filter(|d| matches!(d.verdict, Verdict::Drop(_)))
            .map(|d| d.index)
            .collect::<Vec<_>>()
    };
    assert_eq!(drops(loss_only), drops(both));
}

#[test]
fn loss_rate_within_bounds_over_10000() {
    let mut e = engine(
        UdpRules {
            loss: p(0.1),
            ..UdpRules::default()
        },
        1,
    );
    let (d, out) = run(&mut e, N);
    let dropped = d
        .iter()
        .filter(|d| d.verdict == Verdict::Drop(DropReason::Loss))
        .count() as u64;
    assert_binomial(dropped, N, 0.1, "loss");
    assert_eq!(out.len() as u64, N - dropped);
    let s = e.counters.snapshot();
    assert_eq!(
        (s.seen, s.dropped_loss, s.delivered),
        (N, dropped, N - dropped)
    );
    // Order is kept when nothing reorders.
    assert!(out.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn duplication_rate_within_bounds_over_10000() {
    let mut e = engine(
        UdpRules {
            duplicate: p(0.05),
            ..UdpRules::default()
        },
        2,
    );
    let (_, out) = run(&mut e, N);
    let dups = out.len() as u64 - N;
    assert_binomial(dups, N, 0.05, "duplicate");
    assert_eq!(e.counters.snapshot().duplicated, dups);
    // Every datagram arrives at least once; duplicates are adjacent.
    let mut dedup = out.clone();
    dedup.dedup();
    assert_eq!(dedup, (1..=N).collect::<Vec<_>>());
}

#[test]
fn reordering_rate_within_bounds_over_10000() {
    let mut e = engine(
        UdpRules {
            reorder: p(0.1),
            ..UdpRules::default()
        },
        3,
    );
    let (d, out) = run(&mut e, N);
    let held = d
        .iter()
        .filter(|d| {
            matches!(
                d.verdict,
                Verdict::Deliver {
                    reordered: true,
                    ..
                }
            )
        })
        .count() as u64;
    // A datagram can only be held when none is: the rate is p / (1 + p).
    let eff = 0.1 / 1.1;
    assert_binomial(held, N, eff, "reorder");
    // Every held datagram comes out right after its successor: count inversions.
    let swaps = out.windows(2).filter(|w| w[0] > w[1]).count() as u64;
    assert_eq!(
        swaps,
        held - u64::from(d.last().is_some_and(|x| matches!(
            x.verdict,
            Verdict::Deliver {
                reordered: true,
                ..
            }
        )))
    );
    let mut sorted = out.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (1..=N).collect::<Vec<_>>(),
        "reordering loses nothing"
    );
}

#[test]
fn drop_exactly_the_nth() {
    let mut e = engine(
        UdpRules {
            drop_nth: vec![5, 9],
            ..UdpRules::default()
        },
        0,
    );
    let (d, out) = run(&mut e, 12);
    assert_eq!(out, vec![1, 2, 3, 4, 6, 7, 8, 10, 11, 12]);
    assert_eq!(d[4].verdict, Verdict::Drop(DropReason::Nth));
    assert_eq!(e.counters.snapshot().dropped_nth, 2);
}

#[test]
fn drop_matching_pattern_up_to_a_limit() {
    let rules = UdpRules {
        drop_match: Some(b"FIN".to_vec()),
        drop_match_limit: Some(2),
        ..UdpRules::default()
    };
    let mut e = engine(rules, 0);
    let t = Instant::now();
    let verdicts: Vec<_> = [&b"DATA"[..], b"xFINx", b"DATA", b"FIN", b"FIN"]
        .iter()
        .map(|m| e.on_datagram(t, Bytes::copy_from_slice(m)).verdict)
        .collect();
    assert_eq!(verdicts[1], Verdict::Drop(DropReason::Match));
    assert_eq!(verdicts[3], Verdict::Drop(DropReason::Match));
    assert!(matches!(verdicts[0], Verdict::Deliver { .. }));
    assert!(
        matches!(verdicts[4], Verdict::Deliver { .. }),
        "limit of 2 reached"
    );
}

#[test]
fn corruption_flips_exactly_one_byte() {
    let mut e = engine(
        UdpRules {
            corrupt: p(1.0),
            ..UdpRules::default()
        },
        9,
    );
    let t = Instant::now();
    for _ in 0..200 {
        let orig = vec![0u8; 32];
        let d = e.on_datagram(t, Bytes::from(orig.clone()));
        let got = e.poll_emit(t).unwrap();
        let diff: Vec<usize> = (0..32).filter(|&i| got[i] != orig[i]).collect();
        assert_eq!(diff.len(), 1);
        assert!(matches!(d.verdict, Verdict::Deliver { corrupted: Some(at), .. } if at == diff[0]));
    }
}

#[test]
fn delay_and_jitter_stay_in_range() {
    let rules = UdpRules {
        delay: Duration::from_millis(10),
        jitter: Duration::from_millis(4),
        ..UdpRules::default()
    };
    let mut e = engine(rules, 5);
    let t = Instant::now();
    let mut delays = Vec::new();
    for i in 0..1000 {
        if let Verdict::Deliver { delay, .. } = e.on_datagram(t, payload(i)).verdict {
            delays.push(delay);
        }
    }
    assert!(
        delays
            .iter()
            .all(|d| *d >= Duration::from_millis(6) && *d <= Duration::from_millis(14))
    );
    assert!(delays.iter().any(|d| *d < Duration::from_millis(8)));
    assert!(delays.iter().any(|d| *d > Duration::from_millis(12)));
    // Nothing comes out before it is due.
    assert!(e.poll_emit(t + Duration::from_millis(5)).is_none());
}

#[test]
fn rate_limit_paces_datagrams() {
    let rules = UdpRules {
        rate: Some(10_000),
        ..UdpRules::default()
    };
    let mut e = engine(rules, 0);
    let t = Instant::now();
    let delays: Vec<_> = (0..5)
        .map(
            |_| match e.on_datagram(t, Bytes::from(vec![0u8; 1000])).verdict {
                Verdict::Deliver { delay, .. } => delay.as_millis(),
                v @ Verdict::Drop(_) => panic!("{v:?}"),
            },
        )
        .collect();
    assert_eq!(delays, vec![0, 100, 200, 300, 400]);
}

#[test]
fn held_datagram_is_released_after_the_timeout() {
    let rules = UdpRules {
        reorder: p(1.0),
        reorder_timeout: Duration::from_millis(20),
        ..UdpRules::default()
    };
    let mut e = engine(rules, 0);
    let t = Instant::now();
    e.on_datagram(t, payload(1));
    assert!(e.poll_emit(t).is_none());
    assert_eq!(e.poll_timeout(), Some(t + Duration::from_millis(20)));
    e.on_timeout(t + Duration::from_millis(20));
    assert_eq!(
        e.poll_emit(t + Duration::from_millis(20)).unwrap(),
        payload(1)
    );
}

#[test]
fn queue_is_bounded() {
    let rules = UdpRules {
        delay: Duration::from_secs(1),
        ..UdpRules::default()
    };
    let mut e = engine(rules, 0);
    let t = Instant::now();
    for i in 0..(QUEUE_LIMIT as u64 + 10) {
        e.on_datagram(t, payload(i));
    }
    assert_eq!(e.pending(), QUEUE_LIMIT);
    assert_eq!(e.counters.snapshot().dropped_queue, 10);
}
