#![allow(clippy::unwrap_used)]
//! `rdt::check` against the reference peers (`tests/peers/course_peer.py`,
//! one per course reading: every scenario passes, in both roles) and against
//! the deliberately broken ones (`--bug`: each fails exactly the scenarios
//! its bug is about). Skipped, with a note, without `python3`.
//!
//! Random loss decides by itself whether it hits what a bug is about (a
//! server without the edge case survives 20% loss when no handshake segment
//! happens to be lost): those scenarios are listed as "may fail".

mod peers;

use std::collections::BTreeSet;
use std::thread;
use std::time::Duration;

use peers::have_python;
use rdt::check::{CheckOptions, Report, Role, SCENARIOS, Verdict};

fn options(args: &str) -> CheckOptions {
    let p = peers::course_peer().display().to_string();
    CheckOptions {
        server_cmd: Some(format!("python3 {p} server {{port}} {args}")),
        client_cmd: Some(format!(
            "python3 {p} client {{host}} {{port}} {args} < {{file}}"
        )),
        wait: Duration::from_secs(40),
        exit_wait: Duration::from_secs(4),
        patience: Duration::from_secs(3),
        ..CheckOptions::default()
    }
}

fn check(args: &str) -> Report {
    rdt::check::run(&options(args), |_, _| {}).unwrap()
}

/// Scenario ids with this verdict, per role.
fn ids(report: &Report, role: Role, f: impl Fn(&Verdict) -> bool) -> BTreeSet<&'static str> {
    report
        .sections
        .iter()
        .filter(|s| s.role == role)
        .flat_map(|s| &s.outcomes)
        .filter(|o| f(&o.verdict))
        .map(|o| o.scenario.id)
        .collect()
}

fn failed(report: &Report, role: Role) -> BTreeSet<&'static str> {
    ids(report, role, |v| matches!(v, Verdict::Fail(_)))
}

fn set(ids: &[&'static str]) -> BTreeSet<&'static str> {
    ids.iter().copied().collect()
}

#[test]
fn every_reference_peer_passes_every_scenario_and_is_named_by_its_reading() {
    if !have_python() {
        return;
    }
    // (reading, what the report must name in each role)
    let readings = [
        ("seed", "seed"),
        ("ack-free", "ack-free"),
        ("own-isn", "own-isn"),
        ("segments", "segments"),
        ("encoded", "encoded"),
        ("listen-ack", "listen-ack"),
        ("filler", "filler"),
        ("four-way", "four-way"),
        ("own-isn,segments,four-way", "segments"),
    ];
    let runs: Vec<_> = readings
        .iter()
        .map(|&(reading, name)| {
            thread::spawn(move || (reading, name, check(&format!("--dialect {reading}"))))
        })
        .collect();
    for run in runs {
        let (reading, name, report) = run.join().unwrap();
        assert_eq!(report.failures(), 0, "{reading}:\n{report}");
        for section in &report.sections {
            let (spoken, _) = section.dialect.clone().unwrap();
            let role = section.role.name();
            // What only one role can show: the server's ISN is seen by our
            // client, the listening-address ACK by a client of their server.
            let visible = match name {
                "own-isn" | "listen-ack" => section.role == Role::Server,
                _ => true,
            };
            if visible {
                assert!(
                    spoken.names().contains(&name),
                    "{reading} ({role}): named {spoken}\n{report}"
                );
            }
        }
        let na = ids(&report, Role::Server, |v| {
            matches!(v, Verdict::NotApplicable(_))
        });
        assert_eq!(na, set(&["segments-16", "length-first", "lost-syn"]));
        assert!(
            ids(&report, Role::Client, |v| matches!(
                v,
                Verdict::NotApplicable(_)
            ))
            .is_empty()
        );
    }
}

/// (bug, role, must fail, may fail: random loss decides, scenarios run)
type Case = (
    &'static str,
    Role,
    BTreeSet<&'static str>,
    BTreeSet<&'static str>,
    Vec<&'static str>,
);

#[test]
fn each_broken_peer_fails_exactly_the_scenarios_of_its_bug() {
    if !have_python() {
        return;
    }
    let applicable = |role| -> BTreeSet<&'static str> {
        let all = SCENARIOS.iter().map(|s| s.id);
        match role {
            Role::Server => all
                .filter(|id| !["segments-16", "length-first", "lost-syn"].contains(id))
                .collect(),
            Role::Client => all.collect(),
        }
    };
    // Each off-by-one scenario costs the peer's whole retry budget: a sample
    // of every phase stands for them all.
    let off_by_one = [
        "clean",
        "lost-synack",
        "lost-data-ack",
        "lost-final-ack",
        "all-bytes",
    ];
    let cases: Vec<Case> = vec![
        (
            "no-edge-case",
            Role::Server,
            set(&["lost-synack", "lost-handshake-ack"]),
            set(&["loss-20", "dup-reorder"]),
            vec![],
        ),
        ("no-edge-case", Role::Client, set(&[]), set(&[]), vec![]),
        (
            "close-never-ends",
            Role::Server,
            set(&["lost-final-ack"]),
            set(&[]),
            vec![],
        ),
        ("close-never-ends", Role::Client, set(&[]), set(&[]), vec![]),
        (
            "ignores-duplicates",
            Role::Server,
            set(&["lost-data-ack"]),
            set(&["loss-20", "dup-reorder"]),
            vec![],
        ),
        (
            "ignores-duplicates",
            Role::Client,
            set(&[]),
            set(&[]),
            vec![],
        ),
        (
            "off-by-one",
            Role::Server,
            set(&off_by_one),
            set(&[]),
            off_by_one.to_vec(),
        ),
        (
            "off-by-one",
            Role::Client,
            set(&off_by_one),
            set(&[]),
            off_by_one.to_vec(),
        ),
    ];
    let runs: Vec<_> = cases
        .into_iter()
        .map(|(bug, role, must, may, only)| {
            thread::spawn(move || {
                let mut o = options(&format!("--bug {bug}"));
                match role {
                    Role::Server => o.client_cmd = None,
                    Role::Client => o.server_cmd = None,
                }
                o.only = only.iter().map(ToString::to_string).collect();
                let report = rdt::check::run(&o, |_, _| {}).unwrap();
                (bug, role, must, may, report)
            })
        })
        .collect();
    for run in runs {
        let (bug, role, must, may, report) = run.join().unwrap();
        let failed = failed(&report, role);
        assert!(
            must.is_subset(&failed),
            "{bug} {role:?}: failed {failed:?}\n{report}"
        );
        assert!(
            failed.difference(&must).all(|id| may.contains(id)),
            "{bug} {role:?}: failed {failed:?}\n{report}"
        );
        let ran = ids(&report, role, |v| !matches!(v, Verdict::NotApplicable(_)));
        assert!(ran.is_subset(&applicable(role)));
    }
}
