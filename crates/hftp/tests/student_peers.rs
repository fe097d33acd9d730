//! The checker and the client against servers written by other people: a
//! student-style Python server (`tests/peers/student_server.py`, written from
//! the lab's description) with the quirks real student servers have, and
//! servers that never answer. Skipped, with a note, where no `python3` runs.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hftp::Error;
use hftp::check::{Lab, Options, Verdict};
use hftp::client::Client;
use netkit::peer::Peer;
use tokio::time::timeout;

const BOUND: Duration = Duration::from_secs(120);

fn student(dir: &Path, flags: &[&str]) -> Option<Peer> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/student_server.py");
    match Peer::spawn(Command::new("python3").arg(script).arg(dir).args(flags)) {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("no python3 peer ({e}): skipped");
            None
        }
    }
}

async fn check(addr: &str, dir: &Path, opts: Options) -> hftp::check::Report {
    timeout(BOUND, hftp::check::run(addr, dir, opts))
        .await
        .expect("the checker finished in bounded time")
        .unwrap()
}

/// A status line ending in a space is what the course's own client accepts:
/// every rule passes, and the difference is reported as a warning.
#[tokio::test]
async fn trailing_spaces_pass_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let Some(peer) = student(dir.path(), &["--trailing-space"]) else {
        return;
    };
    let report = check(&peer.addr, dir.path(), Options::default()).await;
    assert_eq!(report.failures(), 0, "\n{report}");
    assert_eq!(report.passed(), hftp::check::RULES.len());
    assert_eq!(report.lab, Lab::L2026);
    assert!(report.warnings() > 0, "\n{report}");
    assert!(
        report.to_string().contains(
            "warning: status line \"0 OK \\r\\n\" differs from the protocol's \"0 OK\\r\\n\""
        ),
        "\n{report}"
    );
    // Our client reads such a server too.
    let mut c = Client::connect(&peer.addr).await.unwrap();
    std::fs::write(dir.path().join("f"), b"abcdef").unwrap();
    assert_eq!(c.metadata("f").await.unwrap(), 6);
}

/// The older lab has no help and no raw slices: detected, those two rules
/// skipped, the rest passed; our client's raw download says what happened.
#[tokio::test]
async fn the_older_lab_is_detected_and_graded_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let Some(peer) = student(dir.path(), &["--lab", "2025"]) else {
        return;
    };
    let report = check(&peer.addr, dir.path(), Options::default()).await;
    assert_eq!(report.lab, Lab::L2025, "\n{report}");
    assert_eq!(report.failures(), 0, "\n{report}");
    assert_eq!(report.skipped(), 2, "\n{report}");
    // Forcing the newer lab fails exactly those two.
    let forced = check(
        &peer.addr,
        dir.path(),
        Options {
            lab: Lab::L2026,
            ..Options::default()
        },
    )
    .await;
    assert_eq!(forced.failures(), 2, "\n{forced}");

    std::fs::write(dir.path().join("f"), b"abcdef").unwrap();
    let mut c = Client::connect(&peer.addr).await.unwrap();
    let progress = std::sync::atomic::AtomicU64::new(0);
    let mut out = Vec::new();
    let err = c
        .slice("f", 0, 3, hftp::proto::Encoding::Raw, &mut out, &progress)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RawRefused(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("raw") && text.contains("without --raw"),
        "{text}"
    );
}

/// A server that accepts and never answers, and one that never even accepts:
/// every rule fails with "no answer within", in bounded time, and the client
/// gives up after its wait.
#[tokio::test]
async fn silent_servers_fail_each_rule_in_bounded_time() {
    let dir = tempfile::tempdir().unwrap();
    // Never accepts: the kernel completes connections into the backlog.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let never_accepts = listener.local_addr().unwrap().to_string();
    let silent = student(dir.path(), &["--silent"]);
    let mut servers = vec![never_accepts];
    if let Some(p) = &silent {
        servers.push(p.addr.clone());
    }
    let wait = Duration::from_millis(200);
    for addr in servers {
        let opts = Options {
            wait,
            lab: Lab::Auto,
        };
        let report = check(&addr, dir.path(), opts).await;
        assert_eq!(report.failures(), hftp::check::RULES.len(), "\n{report}");
        for o in &report.outcomes {
            let Verdict::Fail(why) = &o.verdict else {
                unreachable!()
            };
            assert!(why.contains("no answer within"), "{}: {why}", o.rule);
        }
        let mut c = Client::connect_with(&addr, wait).await.unwrap();
        let err = timeout(BOUND, c.list()).await.unwrap().unwrap_err();
        assert!(
            err.to_string().starts_with("no answer within 200ms"),
            "{err}"
        );
    }
}
