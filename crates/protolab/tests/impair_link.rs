#![allow(clippy::unwrap_used)]
//! `protolab impair link` as a user runs it: one command for a whole
//! experiment, `exec` into a running link, the summary on SIGTERM, cleaning up
//! after SIGKILL, and the refusals (bad values, no privilege, no link).
//! Tests that need root skip with a message unless PROTOLAB_REQUIRE_NETNS is
//! set (CI sets it).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Output, Stdio};

use common::{protolab, signal, stderr_text, wait_bounded};

fn name(tag: &str) -> String {
    format!("plc{}{tag}", std::process::id() % 100_000)
}

fn exists(ns: &str) -> bool {
    Path::new("/run/netns").join(ns).exists()
}

fn root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        == Some("0")
}

/// Whether the root-only tests run here.
fn may_run() -> bool {
    if root() {
        return true;
    }
    assert!(
        std::env::var_os("PROTOLAB_REQUIRE_NETNS").is_none(),
        "PROTOLAB_REQUIRE_NETNS is set but the tests do not run as root"
    );
    eprintln!("skipped: impair link needs root");
    false
}

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let mut child = protolab()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_bounded(&mut child);
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    (
        status.code(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

#[test]
fn bad_rule_values_get_a_one_line_error() {
    for (flag, value, why) in [
        ("--loss", "150%", "must be between 0 and 1"),
        ("--delay", "soon", "duration"),
        ("--addr-a", "10.0.0.300/24", "address"),
        ("--queue", "0", "at least 1"),
    ] {
        let (code, _, err) = run(&["impair", "link", "--name", "x", flag, value]);
        assert_eq!(code, Some(2), "{flag} {value}: {err}");
        let first = err.lines().next().unwrap_or_default();
        assert!(first.contains(why), "{flag} {value}: {first}");
        assert!(first.contains(value), "the value is named: {first}");
    }
}

#[test]
fn without_the_privilege_it_refuses_clearly() {
    let me = env!("CARGO_BIN_EXE_protolab");
    let (code, _, err) = if root() {
        // As nobody, with no capabilities.
        run_as_nobody(
            me,
            &["impair", "link", "--name", &name("np"), "--duration", "1s"],
        )
    } else {
        run(&["impair", "link", "--name", &name("np"), "--duration", "1s"])
    };
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("needs root or CAP_NET_ADMIN"), "{err}");
    assert!(!exists(&format!("{}-a", name("np"))));
}

fn run_as_nobody(me: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(me)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn exec_without_a_running_link_says_so() {
    let (code, _, err) = run(&[
        "impair",
        "link",
        "exec",
        "--name",
        &name("nx"),
        "a",
        "--",
        "true",
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no link"), "{err}");
}

/// A kernel TCP transfer of 1 MB from a to b, checked at b by its digest.
const SERVER: &str = "
import socket, hashlib, sys
s = socket.socket(); s.bind(('10.77.0.2', 5001)); s.listen(1)
print('listening', flush=True)
c, _ = s.accept(); h = hashlib.sha256()
while True:
    d = c.recv(65536)
    if not d: break
    h.update(d)
sys.exit(0 if h.hexdigest() == hashlib.sha256(bytes(range(256)) * 4096).hexdigest() else 3)
";
const CLIENT: &str = "
import socket, time
for _ in range(200):
    try:
        c = socket.create_connection(('10.77.0.2', 5001), timeout=5); break
    except OSError: time.sleep(0.05)
c.sendall(bytes(range(256)) * 4096); c.close()
";

#[test]
fn one_command_runs_a_whole_experiment_in_both_namespaces() {
    if !may_run() {
        return;
    }
    let n = name("ex");
    let (code, out, err) = run(&[
        "impair", "link", "--name", &n, "--loss", "5%", "--seed", "3", "--", "b:", "python3", "-c",
        SERVER, "a:", "python3", "-c", CLIENT,
    ]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        out.contains(&format!("impair link {n}: {n}-a (link0 10.77.0.1/24")),
        "{out}"
    );
    assert!(out.contains("impair link summary"), "{out}");
    assert!(!exists(&format!("{n}-a")) && !exists(&format!("{n}-b")));

    // A command that fails fails the run, named.
    let (code, _, err) = run(&[
        "impair", "link", "--name", &n, "--", "a:", "sh", "-c", "exit 4",
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("`a: sh -c exit 4` ended with exit status: 4"),
        "{err}"
    );
}

#[test]
fn a_running_link_takes_exec_and_prints_its_summary_on_sigterm() {
    if !may_run() {
        return;
    }
    let n = name("tm");
    let mut child = protolab()
        .args([
            "impair",
            "link",
            "--name",
            &n,
            "--addr-b",
            "10.9.9.9/24",
            "--addr-a",
            "10.9.9.8/24",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.contains("(link0 10.9.9.9/24)"), "{line}");
    let (code, shown, err) = run(&[
        "impair", "link", "exec", "--name", &n, "b", "--", "ip", "-4", "addr", "show", "link0",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(shown.contains("inet 10.9.9.9/24"), "{shown}");
    let (code, _, _) = run(&[
        "impair", "link", "exec", "--name", &n, "a", "--", "sh", "-c", "exit 5",
    ]);
    assert_eq!(code, Some(5), "exec passes the exit status on");
    signal(&child, "-TERM");
    let status = wait_bounded(&mut child);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(status.success(), "{}", stderr_text(&mut child));
    assert!(rest.contains("impair link summary"), "{rest}");
    assert!(!exists(&format!("{n}-a")));
}

#[test]
fn after_sigkill_cleanup_or_the_next_start_removes_the_leftovers() {
    if !may_run() {
        return;
    }
    let n = name("kl");
    let kill_a_running_link = || {
        let mut child = protolab()
            .args(["impair", "link", "--name", &n])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // Kept open until the kill: the link must die of SIGKILL, not of a
        // closed stdout.
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(line.starts_with("impair link"), "{line}");
        // While it runs, a second link of the same name is refused.
        let (code, _, err) = run(&["impair", "link", "--name", &n, "--cleanup"]);
        assert_eq!(code, Some(1));
        assert!(err.contains("in use by process"), "{err}");
        signal(&child, "-KILL");
        let status = wait_bounded(&mut child);
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "killed, not ended otherwise"
        );
        drop(out);
        assert!(
            exists(&format!("{n}-a")) && exists(&format!("{n}-b")),
            "left behind"
        );
    };
    kill_a_running_link();
    let (code, out, err) = run(&["impair", "link", "--name", &n, "--cleanup"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(&format!("removed {n}-a, {n}-b")), "{out}");
    assert!(!exists(&format!("{n}-a")) && !exists(&format!("{n}-b")));

    kill_a_running_link();
    let (code, _, err) = run(&["impair", "link", "--name", &n, "--duration", "100ms"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("left by an earlier run"), "{err}");
    assert!(!exists(&format!("{n}-a")));
}
