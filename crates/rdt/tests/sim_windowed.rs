#![allow(clippy::unwrap_used)]
//! The windowed modes on the deterministic simulator (issue #15): for each
//! mode a sweep of 2,000 seeds with up to 30% loss both ways, duplication,
//! reordering and corruption; go-back-n resends the window on a timeout,
//! selective repeat only the expired segment; the wrap point; flow control;
//! go-back-n in the course format.

mod support;

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rdt::sim::{Dir, Fate, Network, Report, Script, Sim};
use rdt::{
    CcKind, Config, DialectChoice, Format, Kind, Mode, Note, Reading, RtoChoice, Seq, State,
};
use support::{TIMEOUT, message};

const SEEDS: u64 = 2_000;

fn windowed(mode: Mode, cc: CcKind) -> Config {
    Config {
        mode,
        cc,
        window: 16,
        mss: 100,
        ..support::config(Format::Binary)
    }
}

fn run(cfg: Config, net: Network, seed: u64, script: &Script) -> Report {
    Sim::new(cfg, net, seed, script.clone()).run(Duration::from_secs(3_600))
}

/// Data segments sent toward the server, first copies and retransmissions.
fn data_sent(report: &Report) -> usize {
    support::sent(report, Dir::ToServer, Kind::Data)
}

/// When the client began its close: everything it sent was acknowledged.
fn all_acked(report: &Report) -> Duration {
    report
        .client_notes
        .iter()
        .find(|(_, n)| {
            matches!(
                n,
                Note::State {
                    to: State::FinWait1,
                    ..
                }
            )
        })
        .map(|(at, _)| *at)
        .unwrap()
}

#[test]
fn every_mode_and_controller_moves_a_message_without_loss() {
    let script = support::one_way(50_000);
    let stop_and_wait = run(
        Config {
            mss: 100,
            ..support::config(Format::Binary)
        },
        Network::perfect(),
        1,
        &script,
    );
    for mode in [Mode::GoBackN, Mode::SelectiveRepeat] {
        for cc in [CcKind::None, CcKind::Tahoe, CcKind::Reno, CcKind::Cubic] {
            let report = run(windowed(mode, cc), Network::perfect(), 1, &script);
            support::assert_clean(&report, &script);
            assert_eq!(report.client_stats.retransmissions, 0, "{mode} {cc}");
            assert_eq!(
                data_sent(&report),
                501,
                "{mode} {cc}: length + 500 segments"
            );
            // Several segments per round trip: far faster than one.
            let (done, sw) = (all_acked(&report), all_acked(&stop_and_wait));
            assert!(
                done * 4 < sw,
                "{mode} {cc}: {done:?} vs stop-and-wait {sw:?}"
            );
        }
    }
}

/// The 3rd data segment of a 9-segment message is lost once; duplicate
/// ACKs cannot help (threshold out of reach), so the timer finds it.
fn one_timeout(mode: Mode) -> Report {
    let cfg = Config {
        dup_thresh: 100,
        ..windowed(mode, CcKind::None)
    };
    let script = support::one_way(800);
    let report = Sim::new(cfg, Network::perfect(), 3, script.clone())
        .drop_nth(Dir::ToServer, Kind::Data, 3)
        .run(Duration::from_secs(60));
    support::assert_clean(&report, &script);
    report
}

#[test]
fn go_back_n_resends_the_whole_window_on_a_timeout() {
    let report = one_timeout(Mode::GoBackN);
    // Segments 3..=9 (the receiver dropped everything after the hole).
    assert_eq!(report.client_stats.timeouts, 1);
    assert_eq!(report.client_stats.retransmissions, 7);
    assert_eq!(data_sent(&report), 16);
}

#[test]
fn selective_repeat_resends_only_the_expired_segment() {
    let report = one_timeout(Mode::SelectiveRepeat);
    assert_eq!(report.client_stats.timeouts, 1);
    assert_eq!(report.client_stats.retransmissions, 1);
    assert_eq!(data_sent(&report), 10);
    // The server held segments 4..=9 and said so.
    let sacks = report
        .transits
        .iter()
        .filter(|t| t.dir == Dir::ToClient && !t.segment.sack.is_empty())
        .count();
    assert!(sacks >= 1);
}

#[test]
fn a_loss_is_repaired_before_its_timer_by_later_acknowledgments() {
    for mode in [Mode::GoBackN, Mode::SelectiveRepeat] {
        for cc in [CcKind::None, CcKind::Reno] {
            // The 12th segment goes when slow start has 8 or more in flight.
            let script = support::one_way(5_000);
            let report = Sim::new(windowed(mode, cc), Network::perfect(), 3, script.clone())
                .drop_nth(Dir::ToServer, Kind::Data, 12)
                .run(Duration::from_secs(60));
            support::assert_clean(&report, &script);
            assert_eq!(report.client_stats.timeouts, 0, "{mode} {cc}");
            assert!(
                report
                    .client_notes
                    .iter()
                    .any(|(_, n)| matches!(n, Note::Lost { .. })),
                "{mode} {cc}: loss detected"
            );
            let recovered = report.client_notes.iter().any(
                |(_, n)| matches!(n, Note::Congestion(s) if s.phase == rdt::cc::Phase::Recovery),
            );
            assert_eq!(recovered, cc == CcKind::Reno, "{mode} {cc}");
            // Repaired well before one timeout.
            assert!(
                all_acked(&report) < TIMEOUT / 2,
                "{mode} {cc}: {:?}",
                report.elapsed
            );
        }
    }
}

/// Selective repeat sending to a peer that never sends SACK blocks (a
/// go-back-n receiver here; a Stop & Wait course program would do the
/// same): duplicate ACKs still find the loss before the timer.
#[test]
fn selective_repeat_finds_losses_by_duplicate_acks_when_the_peer_sends_no_sack() {
    let client = windowed(Mode::SelectiveRepeat, CcKind::None);
    let server = windowed(Mode::GoBackN, CcKind::None);
    let script = support::one_way(1_500);
    let report = Sim::with_configs(client, server, Network::perfect(), 3, script.clone())
        .drop_nth(Dir::ToServer, Kind::Data, 4)
        .run(Duration::from_secs(60));
    support::assert_clean(&report, &script);
    assert_eq!(report.client_stats.timeouts, 0);
    assert!(report.client_notes.iter().any(|(_, n)| matches!(
        n,
        Note::Lost { how, .. } if how.contains("no SACK")
    )));
    assert!(all_acked(&report) < TIMEOUT / 2, "{:?}", report.elapsed);
}

#[test]
fn the_wrap_point_of_the_sequence_space_is_crossed_in_every_mode() {
    for mode in [Mode::GoBackN, Mode::SelectiveRepeat] {
        let net = Network::perfect()
            .loss(0.1)
            .reorder(0.2, Duration::from_millis(5));
        let script = Script {
            client_sends: vec![message(20_000)],
            server_sends: vec![message(7_000)],
            read_size: 1_000,
        };
        let report = Sim::new(windowed(mode, CcKind::Reno), net, 11, script.clone())
            .isns(Seq(u32::MAX - 5_000), Seq(u32::MAX - 50))
            .run(Duration::from_secs(600));
        support::assert_delivered(&report, &script, &format!("{mode}"));
        let wrapped = report.transits.iter().any(|t| {
            t.dir == Dir::ToServer && t.segment.seq.0 < 20_000 && t.segment.kind() == Kind::Data
        });
        assert!(wrapped, "{mode}: data numbers went past 2^32");
    }
}

#[test]
fn the_sender_never_has_more_in_flight_than_the_receiver_advertises() {
    for mode in [Mode::GoBackN, Mode::SelectiveRepeat] {
        let cfg = Config {
            recv_buffer: 2_048,
            window: 64,
            ..windowed(mode, CcKind::None)
        };
        let script = support::one_way(30_000);
        let report = run(cfg, Network::perfect(), 5, &script);
        support::assert_clean(&report, &script);
        // The highest acknowledged number the client knew at each send.
        let delay = rdt::sim::PERFECT_DELAY;
        let mut worst = 0;
        for t in report
            .transits
            .iter()
            .filter(|t| t.dir == Dir::ToServer && t.segment.kind() == Kind::Data)
        {
            let known = report
                .transits
                .iter()
                .filter(|a| a.dir == Dir::ToClient && a.at + delay <= t.at && a.segment.flags.ack)
                .map(|a| a.segment.ack)
                .fold(None, |m: Option<Seq>, a| {
                    Some(m.map_or(a, |m| if a.after(m) { a } else { m }))
                });
            if let Some(known) = known {
                let end = t.segment.seq.plus(t.segment.data.len());
                worst = worst.max(end.since(known));
            }
        }
        assert!(worst <= 2_048, "{mode}: {worst} bytes beyond the last ACK");
        assert!(worst > 1_000, "{mode}: the window was used ({worst})");
    }
}

#[test]
fn go_back_n_speaks_the_course_format_with_a_named_reading() {
    let cfg = Config {
        mode: Mode::GoBackN,
        window: 8,
        mss: 16,
        dialect: DialectChoice::Forced(Reading::SEED),
        ..support::config(Format::Course)
    };
    let net = Network::perfect().loss(0.1);
    for seed in 0..50 {
        let script = support::one_way(700);
        let report = run(cfg.clone(), net.clone(), seed, &script);
        support::check_lossy_run(
            &format!("course gbn seed {seed}"),
            &report,
            &script,
            cfg.idle_limit,
        );
    }
}

fn sweep(mode: Mode) -> u64 {
    let mut retransmissions = 0;
    for seed in 0..SEEDS {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x51de);
        let net = support::lossy_network(&mut rng, true);
        let client_sends = (0..rng.random_range(1..=3))
            .map(|_| message(rng.random_range(0..=3_000)))
            .collect();
        let server_sends = if rng.random_bool(0.5) {
            vec![message(rng.random_range(1..=1_500))]
        } else {
            Vec::new()
        };
        let script = Script {
            client_sends,
            server_sends,
            read_size: rng.random_range(1..=512),
        };
        let cc = [CcKind::None, CcKind::Tahoe, CcKind::Reno, CcKind::Cubic][rng.random_range(0..4)];
        let cfg = Config {
            mode,
            cc,
            rto: if rng.random_bool(0.5) {
                RtoChoice::Adaptive
            } else {
                RtoChoice::Fixed
            },
            window: rng.random_range(1..=32),
            mss: rng.random_range(1..=200),
            // 40 backed-off tries fit in the idle limit: a run of lost
            // exchanges long enough to end it is out of reach.
            max_rto: Duration::from_millis(500),
            ..support::config(Format::Binary)
        };
        let idle = cfg.idle_limit;
        let report = run(cfg, net, seed, &script);
        let ctx = format!("{mode} {cc} seed {seed}");
        support::check_lossy_run(&ctx, &report, &script, idle);
        let fate = |f: Fate| report.transits.iter().filter(|t| t.fate == f).count();
        assert!(fate(Fate::Delivered) > 0, "{ctx}");
        retransmissions +=
            report.client_stats.retransmissions + report.server_stats.retransmissions;
    }
    retransmissions
}

#[test]
fn two_thousand_lossy_go_back_n_transfers_are_byte_identical() {
    assert!(
        sweep(Mode::GoBackN) > SEEDS,
        "the network really lost segments"
    );
}

#[test]
fn two_thousand_lossy_selective_repeat_transfers_are_byte_identical() {
    assert!(sweep(Mode::SelectiveRepeat) > SEEDS);
}
