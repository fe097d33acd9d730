#![allow(clippy::unwrap_used)]
//! `protolab rdt check` as a teacher runs it: our own `rdt recv` and
//! `rdt send` graded as their server and client (they pass), a program that
//! fails (exit status 1, the reason, the trace directory, `--json`), and the
//! usage errors.

mod common;

use std::process::{Output, Stdio};

use common::{protolab, wait_bounded};

fn check(args: &[&str]) -> (bool, String, String) {
    let mut child = protolab()
        .args(["rdt", "check", "--wait", "20s", "--patience", "3s"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_bounded(&mut child);
    let Output { stdout, stderr, .. } = child.wait_with_output().unwrap();
    (
        status.success(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

#[test]
fn our_own_programs_pass_as_their_server_and_client() {
    let me = env!("CARGO_BIN_EXE_protolab");
    let server = format!("{me} rdt recv --port {{port}} --address 127.0.0.1");
    let client = format!("{me} rdt send {{host}} {{port}} < {{file}}");
    let (ok, out, err) = check(&[
        "--server-cmd",
        &server,
        "--client-cmd",
        &client,
        "--only",
        "clean,length-first,lost-handshake-ack,lost-final-ack,all-bytes",
    ]);
    assert!(ok, "{out}\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("their server: "), "{out}");
    assert!(lines[1].starts_with("dialect: seed"), "{out}");
    assert!(lines[2].starts_with("PASS  clean "), "{out}");
    assert!(out.contains("N/A   length-first"), "{out}");
    assert!(out.contains("server        4      0    1"), "{out}");
    assert!(out.contains("client        5      0    0"), "{out}");
    // Progress goes to stderr as each scenario ends.
    assert!(err.contains("checking their server..."), "{err}");
}

#[test]
fn a_failing_program_exits_one_with_reasons_traces_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let traces = dir.path().join("traces");
    let (ok, out, _) = check(&[
        "--server-cmd",
        "echo cannot bind >&2; exit 3",
        "--client-cmd",
        "true",
        "--only",
        "clean",
        "--trace-dir",
        traces.to_str().unwrap(),
        "--json",
    ]);
    assert!(!ok);
    let json = out.trim();
    assert!(json.starts_with("{\"passed\":0,\"failed\":2,"), "{json}");
    assert!(
        json.contains("it ended before listening on port") && json.contains("cannot bind"),
        "{json}"
    );
    assert!(
        json.contains("it exited (code 0) before the transfer ended"),
        "{json}"
    );
    assert!(traces.join("server-clean.svg").exists());
    assert_eq!(
        std::fs::read_to_string(traces.join("server-clean.stderr")).unwrap(),
        "cannot bind\n"
    );
}

#[test]
fn usage_errors_say_what_to_give() {
    let (ok, _, err) = check(&[]);
    assert!(!ok);
    assert!(
        err.contains("give --server-cmd, --client-cmd or both"),
        "{err}"
    );
    let (ok, _, err) = check(&["--client-cmd", "true", "--only", "bogus"]);
    assert!(!ok);
    assert!(
        err.contains("unknown scenario \"bogus\"; known: clean,"),
        "{err}"
    );
    let (ok, out, _) = check(&["--list"]);
    assert!(ok);
    assert_eq!(out.lines().count(), rdt::check::SCENARIOS.len());
    assert!(out.starts_with("clean "));
}
