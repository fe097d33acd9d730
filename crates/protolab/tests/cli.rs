//! The `protolab` binary as a user runs it: help, the proxies printing their
//! bound address and relaying, clean exit on SIGTERM with a summary, errors.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use common::{BOUND, protolab, signal, spawn_listening, stderr_text, stdout_text, wait_bounded};

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Stdio};

/// Starts `protolab impair ...` and reads the bound address from its first line.
fn start_proxy(args: &[&str]) -> (Child, BufReader<std::process::ChildStdout>, SocketAddr) {
    let mut cmd = protolab();
    cmd.args(args).stderr(Stdio::null());
    spawn_listening(&mut cmd)
}

/// The row of a proxy summary table that starts with `name`.
fn summary_row<'a>(summary: &'a str, name: &str) -> &'a str {
    summary
        .lines()
        .find(|l| l.trim_start().starts_with(name))
        .unwrap_or_else(|| panic!("no {name} row in {summary}"))
}

fn tcp_echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut r = s.try_clone().unwrap();
                let _ = std::io::copy(&mut r, &mut s);
            });
        }
    });
    addr
}

#[test]
fn help_lists_the_systems_and_subcommands_have_examples() {
    let out = protolab().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for word in [
        "impair", "lottery", "hftp", "relay", "rdt", "classic", "demo",
    ] {
        assert!(text.contains(word), "--help does not mention {word}");
    }
    for sub in [
        &["impair", "--help"][..],
        &["impair", "tcp", "--help"],
        &["impair", "udp", "--help"],
        &["impair", "bench", "--help"],
        &["demo", "--help"],
        &["lottery", "--help"],
        &["lottery", "serve", "--help"],
        &["lottery", "client", "--help"],
        &["lottery", "simulate", "--help"],
        &["lottery", "bench", "--help"],
        &["classic", "--help"],
        &["classic", "math", "--help"],
        &["classic", "positions", "client", "--help"],
        &["classic", "bench", "--help"],
        &["hftp", "--help"],
        &["hftp", "serve", "--help"],
        &["hftp", "get", "--help"],
        &["hftp", "check", "--help"],
        &["relay", "--help"],
        &["relay", "serve", "--help"],
        &["relay", "client", "--help"],
    ] {
        let out = protolab().args(sub).output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("Example"), "{sub:?} --help has no example");
    }
}

#[test]
fn impair_tcp_prints_its_address_relays_and_exits_0_on_sigterm() {
    let upstream = tcp_echo().to_string();
    let (mut child, mut out, addr) = start_proxy(&[
        "impair",
        "tcp",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &upstream,
        "--chop",
        "up=1",
    ]);
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(BOUND)).unwrap();
    c.write_all(b"hello through the proxy").unwrap();
    let mut back = [0u8; 23];
    c.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"hello through the proxy");
    drop(c);
    signal(&child, "-TERM");
    let status = wait_bounded(&mut child);
    assert_eq!(status.code(), Some(0));
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert!(
        rest.contains("impair tcp summary: 1 connection(s)"),
        "{rest}"
    );
    let writes = summary_row(&rest, "writes");
    assert_eq!(
        writes.split_whitespace().nth(1),
        Some("23"),
        "one write per byte up: {writes}"
    );
}

#[test]
fn impair_udp_drops_the_nth_and_reports_it() {
    let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
    let echo_addr = echo.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = echo.recv_from(&mut buf) {
            let _ = echo.send_to(&buf[..n], from);
        }
    });
    let mut cmd = protolab();
    cmd.args([
        "impair",
        "udp",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &echo_addr,
        "--drop-nth",
        "up=2",
        "--log",
    ])
    .stderr(Stdio::piped());
    let (mut child, mut out, addr) = spawn_listening(&mut cmd);
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.connect(addr).unwrap();
    c.set_read_timeout(Some(BOUND)).unwrap();
    let mut buf = [0u8; 16];
    c.send(b"one").unwrap();
    let n = c.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"one");
    c.send(b"two").unwrap(); // dropped by the proxy
    c.send(b"three").unwrap();
    let n = c.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"three", "the 2nd datagram must not arrive");
    signal(&child, "-TERM");
    assert_eq!(wait_bounded(&mut child).code(), Some(0));
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let log = stderr_text(&mut child);
    assert!(
        log.contains("action: impair_udp | result: success | dir: up"),
        "{log}"
    );
    assert!(
        log.contains("| n: 2 | len: 3 | verdict: drop | reason: nth"),
        "{log}"
    );
    let nth = summary_row(&rest, "dropped_nth");
    assert_eq!(
        nth.split_whitespace().collect::<Vec<_>>(),
        vec!["dropped_nth", "1", "0"]
    );
}

#[test]
fn bad_paths_are_refused_at_start_in_one_line_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let file = file.to_str().unwrap();
    let missing = dir.path().join("missing");
    let missing = missing.to_str().unwrap();
    let db = format!("{missing}/bets.db");
    let out_file = format!("{missing}/out.bin");
    for (args, path, why) in [
        (
            vec!["hftp", "serve", "-p", "0", "-d", missing],
            missing,
            "no such directory",
        ),
        (
            vec!["hftp", "serve", "-p", "0", "-d", file],
            file,
            "a file, not a directory",
        ),
        (
            vec![
                "lottery",
                "serve",
                "--address",
                "127.0.0.1",
                "-p",
                "0",
                "--db",
                &db,
            ],
            &db,
            "does not exist",
        ),
        (
            vec![
                "relay",
                "serve",
                "--address",
                "127.0.0.1:0",
                "--log-dir",
                file,
            ],
            file,
            "a file, not a directory",
        ),
        (
            vec![
                "rdt",
                "recv",
                "--address",
                "127.0.0.1",
                "--port",
                "0",
                "-o",
                &out_file,
            ],
            &out_file,
            "does not exist",
        ),
    ] {
        let mut child = protolab()
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        common::wait_bounded(&mut child);
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(path) && err.contains(why), "{args:?}: {err}");
        assert!(
            String::from_utf8_lossy(&out.stdout).is_empty(),
            "{args:?}: nothing announced"
        );
    }
}

#[test]
fn bench_json_prints_one_object_per_bench_line_and_the_report_on_stderr() {
    let mut child = protolab()
        .args([
            "hftp",
            "bench",
            "--size",
            "1MiB",
            "--duration",
            "200ms",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = stdout_text(&mut child);
    let status = wait_bounded(&mut child);
    let err = stderr_text(&mut child);
    assert!(status.success(), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() >= 3, "{out}");
    for l in &lines {
        assert!(
            l.starts_with("{\"bench\":\"hftp_") && l.ends_with('}') && !l.contains("BENCH"),
            "{l}"
        );
    }
    assert!(out.contains("\"bytes\":1048576,"), "{out}");
    assert!(err.contains("machine ceiling"), "{err}");
}

#[test]
fn completions_for_three_shells_pass_their_syntax_checks() {
    for shell in ["bash", "zsh", "fish"] {
        let out = protolab().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(
            script.contains("protolab") && script.contains("impair"),
            "{shell}"
        );
        let installed = std::process::Command::new(shell)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !installed {
            eprintln!("{shell} is not installed: syntax not checked");
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("completion");
        std::fs::write(&path, &script).unwrap();
        let check = std::process::Command::new(shell)
            .arg("-n")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{shell} -n: {}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
}

#[test]
fn the_man_page_and_the_version_with_its_commit() {
    let out = protolab().arg("man").output().unwrap();
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(
        page.starts_with(".ie") || page.contains(".TH protolab"),
        "{}",
        &page[..200.min(page.len())]
    );
    assert!(page.contains("impair"));
    let out = protolab().arg("--version").output().unwrap();
    let v = String::from_utf8(out.stdout).unwrap();
    // `protolab 0.1.0 (1a2b3c4d5e6f)`, `(…+dirty)` or `(unknown commit)`.
    let inside = v
        .split('(')
        .nth(1)
        .and_then(|r| r.split(')').next())
        .unwrap_or_default();
    let hash = inside.trim_end_matches("+dirty");
    assert!(
        inside == "unknown commit"
            || (hash.len() == 12 && hash.chars().all(|c| c.is_ascii_hexdigit())),
        "{v}"
    );
}

#[test]
fn an_unreachable_server_is_named_with_the_likely_cause() {
    // A port just released: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let port_s = port.to_string();
    for args in [
        vec!["hftp", "get", "x", "--server", &addr],
        vec!["hftp", "list", "--server", &addr],
        vec![
            "classic",
            "math",
            "client",
            "--host",
            "127.0.0.1",
            "--port",
            &port_s,
            "--count",
            "1",
        ],
        vec![
            "lottery",
            "client",
            "--id",
            "1",
            "--server",
            &addr,
            "--attempts",
            "1",
        ],
    ] {
        let mut child = protolab()
            .args(&args)
            .env("NOMBRE", "Ana")
            .env("APELLIDO", "Perez")
            .env("DOCUMENTO", "30904465")
            .env("NACIMIENTO", "1999-03-17")
            .env("NUMERO", "7574")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_bounded(&mut child);
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        let want = format!("cannot connect to {addr}: connection refused (is the server running");
        assert!(err.contains(&want), "{args:?}: {err}");
        assert!(!err.contains("os error"), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn a_directory_that_cannot_be_listed_is_refused_too() {
    use std::os::unix::fs::PermissionsExt as _;
    // Root lists anything: run the server as nobody when we are root, as
    // ourselves otherwise.
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    // Reachable by anyone, but the directory itself unreadable.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let me = env!("CARGO_BIN_EXE_protolab");
    let as_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let mut cmd = if as_root {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", me]);
        c
    } else {
        std::process::Command::new(me)
    };
    let locked_s = locked.to_str().unwrap();
    let out = cmd
        .args(["hftp", "serve", "-p", "0", "-d", locked_s])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(locked_s) && err.contains("cannot list it"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn errors_are_one_clear_line_and_a_nonzero_exit() {
    let out = protolab()
        .args([
            "impair",
            "udp",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:9",
            "--loss",
            "2",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be between 0 and 1"));
}

#[test]
fn zero_timeouts_are_refused_naming_the_flag() {
    // A zero timeout would cut every connection at once, or retransmit or
    // ping in a busy loop: refused, naming the flag.
    for (args, flag) in [
        (
            &["hftp", "serve", "-p", "0", "--idle-timeout", "0s"][..],
            "--idle-timeout <IDLE_TIMEOUT>",
        ),
        (
            &[
                "classic",
                "math",
                "serve",
                "-p",
                "0",
                "--idle-timeout",
                "0s",
            ],
            "--idle-timeout <IDLE_TIMEOUT>",
        ),
        (
            &["rdt", "send", "127.0.0.1", "9", "--timeout", "0ms"],
            "--timeout <TIMEOUT>",
        ),
        (
            &["hftp", "check", "127.0.0.1:9", "--dir", ".", "--wait", "0s"],
            "--wait <WAIT>",
        ),
        (
            &["relay", "serve", "--heartbeat", "0s"],
            "--heartbeat <HEARTBEAT>",
        ),
    ] {
        let out = protolab().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("'{flag}': it must be longer than zero")),
            "{err}"
        );
    }
}

#[test]
fn zero_counts_are_refused_naming_the_flag() {
    // Zero counts would drop everything, nothing, or exit at once: refused too.
    let udp = [
        "impair",
        "udp",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "127.0.0.1:9",
    ];
    let tcp = [
        "impair",
        "tcp",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "127.0.0.1:9",
    ];
    for (base, extra, flag, why) in [
        (
            udp,
            &["--max-flows", "0"][..],
            "--max-flows <MAX_FLOWS>",
            "it must be at least 1",
        ),
        (
            udp,
            &["--drop-nth", "0"],
            "--drop-nth <[DIR=]N>",
            "it counts from 1",
        ),
        (
            udp,
            &["--drop-nth", "up=0"],
            "--drop-nth <[DIR=]N>",
            "it counts from 1",
        ),
        (
            udp,
            &["--duration", "0s"],
            "--duration <DURATION>",
            "it must be longer than zero",
        ),
        (
            tcp,
            &["--chop", "0"],
            "--chop <[DIR=]K>",
            "it must be at least 1",
        ),
        (
            tcp,
            &["--max-connections", "0"],
            "--max-connections <MAX_CONNECTIONS>",
            "it must be at least 1",
        ),
    ] {
        let out = protolab().args(base).args(extra).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("'{flag}': {why}")), "{err}");
    }
}

#[test]
fn an_address_in_use_is_one_line_and_exit_1() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = protolab()
        .args([
            "impair",
            "tcp",
            "--listen",
            &addr,
            "--upstream",
            "127.0.0.1:9",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("error: cannot listen on {addr}")),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn demo_runs_and_shows_impairs_effects() {
    // Its log goes to a file, so a failure shows what went wrong.
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = protolab()
        .arg("demo")
        .stdout(Stdio::piped())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let out = stdout_text(&mut child);
    let code = wait_bounded(&mut child).code();
    let text = format!(
        "{out}\n--- log ---\n{}",
        std::fs::read_to_string(log.path()).unwrap()
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(out.contains("reads, intact"), "{text}");
    assert!(
        out.contains("the server got 100 and then Some(ConnectionReset)"),
        "{text}"
    );
    assert!(out.contains("impair udp summary"), "{text}");
    assert!(out.contains("the store holds 2000 bets"), "{text}");
    assert!(out.contains("   Test Packet"), "{text}");
    assert!(
        out.contains("   El resultado de la operacion es "),
        "{text}"
    );
    assert!(
        out.contains("bytes in 6 base64 slices over 2 connections, identical"),
        "{text}"
    );
    assert!(
        out.contains("conformance checker: 26 passed, 0 failed"),
        "{text}"
    );
    assert!(out.contains("observer: that was everyone"), "{text}");
    assert!(out.contains("right after the last event she saw"), "{text}");
    assert!(
        out.contains("(course format, --loss 0.2): received identical"),
        "{text}"
    );
    assert!(
        out.contains(
            "the server took the first data segment as the ACK; 0 retransmissions, data identical"
        ),
        "{text}"
    );
    assert!(
        out.contains(
            "selective repeat (binary format, window 8, MSS 100), --loss 0.2: received identical"
        ),
        "{text}"
    );
    assert!(out.contains("demo finished"), "{text}");
    // A story: each section's verdict, and none of the servers' log lines.
    assert_eq!(out.matches(": held\n").count(), 10, "{text}");
    let log_text = std::fs::read_to_string(log.path()).unwrap();
    assert!(!log_text.contains(" INFO "), "{text}");
    assert!(!out.contains(" INFO "), "{text}");

    // With --verbose the servers' lines are there too.
    let verbose = protolab()
        .args(["demo", "--verbose"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let got = verbose.wait_with_output().unwrap();
    assert!(got.status.success());
    let err = String::from_utf8_lossy(&got.stderr);
    assert!(
        err.contains(" INFO ") && err.contains("apuesta_recibida"),
        "{err}"
    );
}

/// Runs a short `impair tcp` session with a relayed connection and returns stderr.
fn impair_session_stderr(extra: &[&str], rust_log: Option<&str>) -> String {
    let upstream = tcp_echo().to_string();
    let mut cmd = protolab();
    cmd.args([
        "impair",
        "tcp",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &upstream,
    ])
    .args(extra)
    .stderr(Stdio::piped());
    if let Some(l) = rust_log {
        cmd.env("RUST_LOG", l);
    }
    let (mut child, _out, addr) = spawn_listening(&mut cmd);
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(BOUND)).unwrap();
    c.write_all(b"ping").unwrap();
    let mut back = [0u8; 4];
    c.read_exact(&mut back).unwrap();
    drop(c);
    signal(&child, "-TERM");
    assert_eq!(wait_bounded(&mut child).code(), Some(0));
    stderr_text(&mut child)
}

#[test]
fn log_flag_prints_one_line_per_decision() {
    let err = impair_session_stderr(&["--log", "--reset-after", "down=1GB"], None);
    let decisions: Vec<_> = err
        .lines()
        .filter(|l| l.contains("action: impair_tcp | result: success"))
        .collect();
    assert_eq!(decisions.len(), 2, "one chunk each way:\n{err}");
    assert!(
        decisions.iter().any(|l| l.contains("dir: up | bytes: 4")),
        "{err}"
    );
    // Without --log, no decision lines.
    let err = impair_session_stderr(&[], None);
    assert!(!err.contains("action: impair_tcp |"), "{err}");
}

#[test]
fn log_level_comes_from_the_flag_then_rust_log() {
    let debug = impair_session_stderr(&["--log-level", "debug"], None);
    assert!(debug.contains("DEBUG"), "{debug}");
    let quiet = impair_session_stderr(&[], Some("error"));
    assert!(
        !quiet.contains("INFO"),
        "RUST_LOG=error must hide info lines:\n{quiet}"
    );
    let flag_wins = impair_session_stderr(&["--log-level", "info"], Some("error"));
    assert!(
        flag_wins.contains("INFO"),
        "--log-level overrides RUST_LOG:\n{flag_wins}"
    );
}

#[test]
fn classic_math_serve_answers_and_exits_0_on_sigterm() {
    let mut cmd = protolab();
    cmd.args([
        "classic",
        "math",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
    ])
    .stderr(Stdio::null());
    let (mut child, _out, addr) = spawn_listening(&mut cmd);
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(BOUND)).unwrap();
    // L=8, a=1, b=3, "DIVISION"
    let mut req = vec![8, 0, 0, 0, 1, 0, 3, 0];
    req.extend_from_slice(b"DIVISION");
    c.write_all(&req).unwrap();
    let want = b"El resultado de la operacion es 0.333333333333";
    let mut got = vec![0u8; want.len()];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got[..], &want[..]);
    signal(&child, "-TERM");
    assert_eq!(wait_bounded(&mut child).code(), Some(0));
}

/// `protolab [--threads N] hftp serve` on 127.0.0.1 and a free port, serving `dir`.
fn start_hftp(
    dir: &std::path::Path,
    threads: Option<&str>,
) -> (Child, BufReader<std::process::ChildStdout>, SocketAddr) {
    let mut cmd = protolab();
    if let Some(n) = threads {
        cmd.args(["--threads", n]);
    }
    cmd.args(["hftp", "serve", "-a", "127.0.0.1", "-p", "0", "-d"])
        .arg(dir)
        .stderr(Stdio::null());
    spawn_listening(&mut cmd)
}

#[test]
fn hftp_serve_answers_and_exits_0_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), b"hi!").unwrap();
    // The default runtime, the current-thread one (`--threads 1`) and a sized one.
    for threads in [None, Some("1"), Some("2")] {
        let (mut child, _out, addr) = start_hftp(dir.path(), threads);
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(BOUND)).unwrap();
        c.write_all(b"get_file_listing\r\nget_slice hello.txt 0 3\r\nquit\r\n")
            .unwrap();
        let mut all = String::new();
        c.read_to_string(&mut all).unwrap();
        assert_eq!(all, "0 OK\r\nhello.txt\r\n\r\n0 OK\r\naGkh\r\n0 OK\r\n");
        signal(&child, "-TERM");
        assert_eq!(wait_bounded(&mut child).code(), Some(0), "{threads:?}");
    }
}

#[test]
fn hftp_client_against_our_server() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(dir.path().join("data.bin"), &data).unwrap();
    let (mut child, _out, addr) = start_hftp(dir.path(), None);
    let server = addr.to_string();
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("copy.bin");
    let get = protolab()
        .args([
            "hftp",
            "get",
            "data.bin",
            "--connections",
            "2",
            "--slice-size",
            "30000",
            "--server",
            &server,
            "-o",
        ])
        .arg(&target)
        .output()
        .unwrap();
    assert!(
        get.status.success(),
        "{}",
        String::from_utf8_lossy(&get.stderr)
    );
    assert!(std::fs::read(&target).unwrap() == data);
    // Piped: no progress bar, only the one-line summary.
    let err = String::from_utf8_lossy(&get.stderr);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(
        err.starts_with("data.bin: 200000 bytes to ") && !err.contains('\x1b'),
        "{err:?}"
    );
    // -q: the file, and not a word on stderr.
    std::fs::remove_file(&target).unwrap();
    let quiet = protolab()
        .args(["-q", "hftp", "get", "data.bin", "--server", &server, "-o"])
        .arg(&target)
        .output()
        .unwrap();
    assert!(quiet.status.success());
    assert!(std::fs::read(&target).unwrap() == data);
    assert!(
        quiet.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&quiet.stderr)
    );
    // To standard output, in order, whatever --connections says.
    let piped = protolab()
        .args(["hftp", "get", "data.bin", "--connections", "3"])
        .args(["--slice-size", "70000", "--server", &server, "-o", "-"])
        .output()
        .unwrap();
    assert!(piped.status.success());
    assert!(piped.stdout == data);
    // An output that cannot be created: one line that names it, each cause once.
    let nowhere = out.path().join("no/dir/x.bin");
    let failed = protolab()
        .args(["hftp", "get", "data.bin", "--server", &server, "-o"])
        .arg(&nowhere)
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&failed.stderr).trim_end(),
        format!(
            "error: cannot write {}: No such file or directory (os error 2)",
            nowhere.display()
        )
    );
    let missing = protolab()
        .args(["hftp", "meta", "nope.txt", "--server", &server])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr).trim_end(),
        "error: the server has no file \"nope.txt\" (202)"
    );
    signal(&child, "-TERM");
    assert_eq!(wait_bounded(&mut child).code(), Some(0));
}

#[test]
fn hftp_checker_against_our_server_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, _out, addr) = start_hftp(dir.path(), None);
    let server = addr.to_string();
    let check = protolab()
        .args(["hftp", "check", &server, "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{report}");
    assert!(report.contains(" passed, 0 failed"), "{report}");
    let json = protolab()
        .args(["hftp", "check", &server, "--json", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let doc = String::from_utf8_lossy(&json.stdout);
    assert!(json.status.success(), "{doc}");
    let passed = report.lines().filter(|l| l.starts_with("PASS ")).count();
    assert!(
        doc.trim_end().lines().count() == 1
            && doc.contains(&format!("\"passed\":{passed},\"failed\":0,"))
            && doc.matches("\"verdict\":\"pass\"").count() == passed,
        "{doc}"
    );
    signal(&child, "-TERM");
    assert_eq!(wait_bounded(&mut child).code(), Some(0));
}

#[test]
fn relay_serve_and_piped_clients() {
    let mut cmd = protolab();
    cmd.args(["relay", "serve", "--address", "127.0.0.1:0"])
        .stderr(Stdio::null());
    let (mut child, _out, addr) = spawn_listening(&mut cmd);
    let server = addr.to_string();
    let run_client = |name: &str, input: &str| {
        let mut c = protolab()
            .args(["relay", "client", "--address", &server, "--name", name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let mut out = String::new();
        c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        assert_eq!(wait_bounded(&mut c).code(), Some(0));
        out
    };
    let first = run_client("ana", "hola\nque tal\n");
    assert_eq!(first, "[1] * ana joined\n[2] ana: hola\n[3] ana: que tal\n");
    let second = run_client("bob", "hi\n");
    // History first (ana's lines and her leave), then bob's own.
    assert!(
        second.starts_with(
            "[1] * ana joined\n[2] ana: hola\n[3] ana: que tal\n[4] * ana left (left)\n"
        ),
        "{second}"
    );
    assert!(
        second.ends_with("[5] * bob joined\n[6] bob: hi\n"),
        "{second}"
    );
    signal(&child, "-TERM");
    assert_eq!(wait_bounded(&mut child).code(), Some(0));
}

#[test]
fn threads_is_checked_and_used() {
    let out = protolab()
        .args(["--threads", "0", "hftp", "list", "--server", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--threads"));
    // A proxy on one worker thread still relays (and exits 0 with its summary).
    let err = impair_session_stderr(&["--threads", "1"], None);
    assert!(err.contains("server: impair-tcp | accepted: 1"), "{err}");
}

#[test]
fn relay_legacy_listener_and_legacy_client_speak_the_original_protocol() {
    let mut child = protolab()
        .args(["relay", "serve", "--address", "127.0.0.1:0"])
        .args(["--legacy-address", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    let mut server_out = BufReader::new(child.stdout.take().unwrap());
    server_out.read_line(&mut first).unwrap();
    let addr_after = |marker: &str| {
        first
            .split(marker)
            .nth(1)
            .and_then(|rest| rest.split([' ', ')']).next())
            .unwrap_or_else(|| panic!("no address after {marker:?} in {first:?}"))
            .to_string()
    };
    let native = addr_after("listening on ");
    let legacy = addr_after("original chat clients on ");
    // Our client in the original's protocol, on the original-chat listener.
    let mut c = protolab()
        .args([
            "relay",
            "client",
            "--legacy",
            "--address",
            &legacy,
            "--name",
            "ana",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(b"hola\nchau\n").unwrap();
    let mut out = String::new();
    c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert_eq!(wait_bounded(&mut c).code(), Some(0), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("[1] Server: ('127.0.0.1', ")
            && lines[0].ends_with(") has joined the net"),
        "{out}"
    );
    assert_eq!(&lines[1..], ["[2] ana: hola", "[3] ana: chau"], "{out}");
    // A native client sees the original-protocol member as an ordinary one.
    let mut n = protolab()
        .args(["relay", "client", "--address", &native, "--name", "bob"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    n.stdin.take().unwrap().write_all(b"hi\n").unwrap();
    let mut seen = String::new();
    n.stdout.take().unwrap().read_to_string(&mut seen).unwrap();
    assert_eq!(wait_bounded(&mut n).code(), Some(0));
    assert!(
        seen.contains("[2] ana: hola\n[3] ana: chau\n[4] * ana left"),
        "{seen}"
    );
    signal(&child, "-TERM");
    assert_eq!(wait_bounded(&mut child).code(), Some(0));
}
