//! Helpers shared by the simulator tests.
#![allow(dead_code)]

use std::time::Duration;

use rdt::sim::{Dir, Fate, Network, Report, Script, Sim};
use rdt::{Config, DialectChoice, Format, Kind, Reading};

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
    assert_eq!(report.client_error, None);
    assert_eq!(report.server_error, None);
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
    assert_eq!(
        report.server_received,
        script.client_sends.concat(),
        "{ctx}: server data"
    );
    assert_eq!(
        report.client_received,
        script.server_sends.concat(),
        "{ctx}: client data"
    );
    assert_eq!(report.client_error, None, "{ctx}");
}

pub fn server_noted(report: &Report, text: &str) -> bool {
    report
        .server_notes
        .iter()
        .any(|(_, n)| n.to_string().contains(text))
}

pub fn client_noted(report: &Report, text: &str) -> bool {
    report
        .client_notes
        .iter()
        .any(|(_, n)| n.to_string().contains(text))
}
