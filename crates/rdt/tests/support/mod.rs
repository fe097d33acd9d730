//! Helpers shared by the simulator tests.
#![allow(dead_code)]

use std::time::Duration;

use rdt::sim::{Dir, Fate, Network, Report, Script, Sim};
use rdt::{Answer, Config, DialectChoice, Ending, Error, Format, Kind, Note, Reading, State};

pub const TIMEOUT: Duration = Duration::from_millis(100);

/// Both ends speak the seed's reading (forced: the loss cases are the seed's;
/// learning readings is tested in `tests/dialects.rs`).
pub fn config(format: Format) -> Config {
    Config {
        timeout: TIMEOUT,
        idle_limit: Duration::from_secs(20),
        dialect: DialectChoice::Forced(Reading::SEED),
        ..Config::new(format)
    }
}

/// A message of `len` bytes covering every byte value.
pub fn message(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 256) as u8).collect()
}

pub fn one_way(len: usize) -> Script {
    Script {
        client_sends: vec![message(len)],
        server_sends: Vec::new(),
        read_size: 1024,
    }
}

pub fn sim(format: Format, script: Script) -> Sim {
    Sim::new(config(format), Network::perfect(), 7, script)
}

/// How many segments of `kind` went `dir`, lost ones included.
pub fn sent(report: &Report, dir: Dir, kind: Kind) -> usize {
    report
        .transits
        .iter()
        .filter(|t| t.dir == dir && t.segment.kind() == kind)
        .count()
}

pub fn lost(report: &Report, dir: Dir, kind: Kind) -> usize {
    report
        .transits
        .iter()
        .filter(|t| t.dir == dir && t.segment.kind() == kind && t.fate == Fate::Lost)
        .count()
}

/// Asserts the transfer completed byte for byte with no error on either side.
pub fn assert_clean(report: &Report, script: &Script) {
    assert!(report.finished, "run did not finish: {report:#?}");
    assert!(report.client_error.is_none(), "{:?}", report.client_error);
    assert!(report.server_error.is_none(), "{:?}", report.server_error);
    assert_eq!(report.server_received, script.client_sends.concat());
    assert_eq!(report.client_received, script.server_sends.concat());
}

/// The run finished, each side received exactly what the other sent, and
/// the client saw no error (what the server may end with is the caller's).
pub fn assert_delivered(report: &Report, script: &Script, ctx: &str) {
    assert!(
        report.finished,
        "{ctx}: did not finish (livelock or stuck): {} steps, {:?}",
        report.steps, report.elapsed
    );
    same_bytes(
        &report.server_received,
        &script.client_sends.concat(),
        &format!("{ctx}: server data"),
    );
    same_bytes(
        &report.client_received,
        &script.server_sends.concat(),
        &format!("{ctx}: client data"),
    );
    assert!(
        report.client_error.is_none(),
        "{ctx}: {:?}",
        report.client_error
    );
}

/// A duplicate was answered with `answer`.
pub fn answered(notes: &[(Duration, Note)], answer: Answer) -> bool {
    notes
        .iter()
        .any(|(_, n)| matches!(n, Note::Duplicate { answer: a, .. } if *a == answer))
}

/// A duplicate of a `kind` segment arrived (and was answered).
pub fn duplicate_of(notes: &[(Duration, Note)], kind: Kind) -> bool {
    notes
        .iter()
        .any(|(_, n)| matches!(n, Note::Duplicate { got, .. } if got.kind() == kind))
}

/// A `kind` segment was sent again.
pub fn retransmitted(notes: &[(Duration, Note)], kind: Kind) -> bool {
    notes
        .iter()
        .any(|(_, n)| matches!(n, Note::Retransmit(s) if s.kind() == kind))
}

/// Time from the first change into state `from` to the first into `to`.
pub fn span(notes: &[(Duration, Note)], from: State, to: State) -> Option<Duration> {
    let entered = |state: State| {
        notes
            .iter()
            .find(|(_, n)| matches!(n, Note::State { to, .. } if *to == state))
            .map(|(at, _)| *at)
    };
    entered(to)?.checked_sub(entered(from)?)
}

/// A run of a lossy sweep: delivered both ways, the client without error,
/// the server's error (if any) one the seed's close rules allow, and each
/// close within its bound (`idle_limit` bounds FIN-WAIT-2 while the server
/// still sends).
pub fn check_lossy_run(ctx: &str, report: &Report, script: &Script, idle_limit: Duration) {
    assert_delivered(report, script, ctx);
    // None, or one the seed's close rules allow: after 3 unanswered FINs the
    // client assumes the server closed, and a server that never saw a FIN
    // ends at its idle limit; or, the other way, the client had all the
    // server's data but its last ACKs were lost and it stopped answering
    // after its timeouts.
    let allowed = match (&report.server_error, report.client_ending) {
        (None, _) => true,
        (Some(Error::PeerSilent(_) | Error::GaveUp { what: "DATA", .. }), ending) => {
            ending == Some(Ending::FinUnanswered)
        }
        (Some(_), _) => false,
    };
    assert!(
        allowed,
        "{ctx}: server error {:?} (client ending {:?})",
        report.server_error, report.client_ending
    );
    // close(): ≤ 3 timeouts for the FIN-ACK (FIN-WAIT-1), ≤ 3 more after the
    // last segment heard if a plain ACK came first (FIN-WAIT-2), then 2 between
    // the final ACKs; one more for network delay.
    if let Some(d) = span(&report.client_notes, State::FinWait1, State::Closed) {
        let bound = if script.server_sends.is_empty() {
            TIMEOUT * 9
        } else {
            idle_limit
        };
        assert!(d <= bound, "{ctx}: client close took {d:?}");
    }
    // recv_close(): ≤ 3 timeouts for the last ACK.
    if let Some(d) = span(&report.server_notes, State::LastAck, State::Closed) {
        assert!(d <= TIMEOUT * 3, "{ctx}: server close took {d:?}");
    }
}

/// Equal byte strings; on a difference, says where (not the whole strings).
pub fn same_bytes(got: &[u8], want: &[u8], ctx: &str) {
    if got != want {
        let at = got
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        panic!(
            "{ctx}: {} bytes received, {} sent, first difference at {at}",
            got.len(),
            want.len()
        );
    }
}

/// A random bad network of the sweeps: up to 30% loss both ways, 10%
/// duplication, 20% reordering (held behind the next datagram, up to two
/// timeouts), corruption up to 5%
/// when the format can detect it, one-way delay 10 µs to 2 ms.
pub fn lossy_network(rng: &mut impl rand::Rng, corrupt: bool) -> Network {
    Network::perfect()
        .loss(rng.random_range(0.0..=0.30))
        .duplicate(rng.random_range(0.0..=0.10))
        .reorder(rng.random_range(0.0..=0.20), TIMEOUT * 2)
        .corrupt(if corrupt {
            rng.random_range(0.0..=0.05)
        } else {
            0.0
        })
        .delay(Duration::from_micros(rng.random_range(10..=2_000)))
}
