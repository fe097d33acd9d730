#![allow(clippy::unwrap_used)]
//! `protolab rdt send|recv` as a user runs them: the seed's
//! `send HOST PORT < file`, a receiver writing to a file, built-in loss,
//! `--drop`, `--debug` and `--trace`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStderr, Stdio};

use common::{protolab, stderr_text, wait_bounded};

/// Starts `rdt recv` on an ephemeral port and reads the address it prints on stderr.
fn receiver(args: &[&str]) -> (Child, BufReader<ChildStderr>, SocketAddr) {
    let mut child = protolab()
        .args(["rdt", "recv", "--port", "0", "--address", "127.0.0.1"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    let addr = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .trim()
        .parse()
        .unwrap();
    (child, err, addr)
}

/// Runs `rdt send` with `data` on stdin; returns (success, stderr).
fn send(addr: SocketAddr, data: &[u8], args: &[&str]) -> (bool, String) {
    let mut child = protolab()
        .args(["rdt", "send", "127.0.0.1", &addr.port().to_string()])
        .args(args)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let status = wait_bounded(&mut child);
    (status.success(), stderr_text(&mut child))
}

fn finish(mut child: Child, mut err: BufReader<ChildStderr>) -> (bool, Vec<u8>, String) {
    let status = wait_bounded(&mut child);
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    let mut text = String::new();
    err.read_to_string(&mut text).unwrap();
    (status.success(), out, text)
}

fn file(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 13 + i / 5) as u8).collect()
}

#[test]
fn a_file_through_twenty_percent_loss_both_ways_arrives_intact() {
    let data = file(5_000);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("received.bin");
    // The sender's --loss drops what it sends and what it receives: both directions.
    let (child, err, addr) = receiver(&["--timeout", "20ms", "-o", out.to_str().unwrap()]);
    let (ok, send_err) = send(
        addr,
        &data,
        &["--loss", "0.2", "--seed", "2", "--timeout", "20ms"],
    );
    assert!(ok, "{send_err}");
    assert!(send_err.contains("sent 5000 bytes"), "{send_err}");
    let (ok, _, recv_err) = finish(child, err);
    assert!(ok, "{recv_err}");
    assert!(recv_err.contains("received 5000 bytes"), "{recv_err}");
    assert_eq!(std::fs::read(&out).unwrap(), data);
    let retransmissions: u64 = send_err
        .split(", ")
        .find_map(|part| part.strip_suffix(" retransmissions"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(retransmissions > 0, "the loss really happened: {send_err}");
}

#[test]
fn recv_writes_to_stdout_by_default_in_both_formats() {
    for format in ["course", "binary"] {
        let data = file(777);
        let (child, err, addr) = receiver(&["--format", format]);
        let (ok, send_err) = send(addr, &data, &["--format", format, "--mss", "100"]);
        assert!(ok, "{send_err}");
        let (ok, out, _) = finish(child, err);
        assert!(ok);
        assert_eq!(out, data, "{format}");
    }
}

#[test]
fn a_lost_handshake_ack_is_traced_and_debugged() {
    let dir = tempfile::tempdir().unwrap();
    let send_svg = dir.path().join("send.svg");
    let recv_svg = dir.path().join("recv.svg");
    let (child, err, addr) = receiver(&["--trace", recv_svg.to_str().unwrap()]);
    // The client's datagrams: 1 SYN, 2 the handshake ACK, 3 the length...
    let (ok, send_err) = send(
        addr,
        b"Hola, mundo",
        &[
            "--drop",
            "2",
            "--debug",
            "--timeout",
            "20ms",
            "--trace",
            send_svg.to_str().unwrap(),
        ],
    );
    assert!(ok, "{send_err}");
    assert!(send_err.contains("send ACK"), "{send_err}");
    assert!(
        send_err.contains("LOST (simulated)"),
        "--debug shows the drop: {send_err}"
    );
    let (ok, out, recv_err) = finish(child, err);
    assert!(ok, "{recv_err}");
    assert_eq!(out, b"Hola, mundo");
    let sent = std::fs::read_to_string(&send_svg).unwrap();
    assert!(sent.starts_with("<svg") && sent.contains("(lost)"));
    let received = std::fs::read_to_string(&recv_svg).unwrap();
    assert!(
        received.contains("data taken as the lost ACK"),
        "the server took data as the ACK"
    );
}

#[test]
fn sending_to_nobody_fails_with_one_clear_line() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let (ok, err) = send(silent.local_addr().unwrap(), b"x", &["--timeout", "10ms"]);
    assert!(!ok);
    assert!(err.contains("error: connect to 127.0.0.1"), "{err}");
    assert!(err.contains("no answer to SYN after 15 tries"), "{err}");
}

#[test]
fn bad_flags_are_refused_with_a_reason() {
    let out = protolab()
        .args(["rdt", "send", "localhost", "1", "--loss", "1.5"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("invalid probability \"1.5\": must be between 0 and 1")
    );
    let out = protolab()
        .args(["rdt", "recv", "--port", "0", "--mss", "70000"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("MSS 70000 out of range"));
}

#[test]
fn selective_repeat_with_reno_moves_a_file_through_loss_and_draws_its_window() {
    let data = file(60_000);
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("cwnd.svg");
    let (child, err, addr) = receiver(&["--format", "binary", "--mode", "sr", "--timeout", "20ms"]);
    let (ok, send_err) = send(
        addr,
        &data,
        &[
            "--format",
            "binary",
            "--mode",
            "sr",
            "--window",
            "16",
            "--mss",
            "500",
            "--cc",
            "reno",
            "--rto",
            "adaptive",
            "--loss",
            "0.1",
            "--seed",
            "3",
            "--timeout",
            "20ms",
            "--debug",
            "--trace-cwnd",
            svg.to_str().unwrap(),
        ],
    );
    assert!(ok, "{send_err}");
    assert!(
        send_err.contains("congestion"),
        "--debug shows cwnd changes: {send_err}"
    );
    assert!(
        send_err.contains("SACK"),
        "SACK blocks came back: {send_err}"
    );
    let (ok, out, recv_err) = finish(child, err);
    assert!(ok, "{recv_err}");
    assert_eq!(out, data);
    let drawn = std::fs::read_to_string(&svg).unwrap();
    assert!(
        drawn.starts_with("<svg") && drawn.contains("cwnd (KiB)"),
        "{drawn}"
    );
    assert_eq!(drawn.matches("<polyline").count(), 2);
}

#[test]
fn windowed_modes_say_why_the_course_format_cannot_carry_them() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let (ok, err) = send(silent.local_addr().unwrap(), b"x", &["--mode", "sr"]);
    assert!(!ok);
    assert!(err.contains("use --format binary"), "{err}");
    let (ok, err) = send(silent.local_addr().unwrap(), b"x", &["--mode", "gbn"]);
    assert!(!ok);
    assert!(err.contains("--dialect seed"), "{err}");
    let out = protolab()
        .args(["rdt", "send", "localhost", "1", "--cc", "vegas"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("none, tahoe, reno, cubic"));
}
