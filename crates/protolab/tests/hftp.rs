//! `protolab hftp serve` as a separate process, so its memory is its own.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use common::{BOUND, protolab, signal, spawn_listening, wait_bounded};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;

/// The server's peak resident memory (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

/// The spec's streaming rule: a 4 GiB slice is served with small, constant
/// memory, every byte of it. The file is sparse (no disk space); the slice
/// goes raw (base64 in a debug build would only make the test slow).
#[test]
fn a_four_gib_slice_is_streamed_in_constant_memory() {
    const SIZE: u64 = 4 << 30;
    // On tmpfs, reading a hole costs no page-cache page (ext4 allocates and
    // zeroes one per 4 KiB: 19 s instead of 3 s here).
    let dir = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap();
    let file = std::fs::File::create(dir.path().join("huge")).unwrap();
    file.set_len(SIZE).unwrap();
    // The last bytes are not zeros, so the end of the slice is checked too.
    std::os::unix::fs::FileExt::write_all_at(&file, b"END!", SIZE - 4).unwrap();
    let mut cmd = protolab();
    cmd.args(["hftp", "serve", "-a", "127.0.0.1", "-p", "0", "-d"])
        .arg(dir.path())
        .stderr(Stdio::null());
    let (mut child, _out, addr) = spawn_listening(&mut cmd);
    let before = peak_rss(child.id());

    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(BOUND)).unwrap();
    c.write_all(format!("get_slice huge 0 {SIZE} raw\r\n").as_bytes())
        .unwrap();
    let header = format!("0 OK\r\nContent-Length: {SIZE}\r\n\r\n");
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0u64;
    let mut tail = Vec::new();
    let total = header.len() as u64 + SIZE;
    while got < total {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0, "the slice ended after {got} bytes");
        if got == 0 {
            assert!(buf[..n].starts_with(header.as_bytes()));
        }
        got += n as u64;
        tail.extend_from_slice(&buf[..n]);
        let keep = tail.len().saturating_sub(4);
        tail.drain(..keep);
    }
    assert_eq!(got, total);
    assert_eq!(tail, b"END!");

    let peak = peak_rss(child.id());
    assert!(
        peak < before + (32 << 20),
        "serving 4 GiB took the server from {before} to {peak} bytes resident"
    );
    signal(&child, "-TERM");
    assert_eq!(wait_bounded(&mut child).code(), Some(0));
}

/// The threads of a process now.
fn threads(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Threads:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Hostile input: a hundred clients ask for a 1 GiB slice and never read it.
/// The server's memory and threads stay bounded (it took 8 MB and a thread
/// per such client), and a good client's small requests are answered
/// meanwhile, promptly, again and again.
#[test]
fn stalled_readers_cost_bounded_memory_and_delay_nobody() {
    const SIZE: u64 = 1 << 30;
    const STALLED: usize = 100;
    let dir = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap();
    let file = std::fs::File::create(dir.path().join("huge")).unwrap();
    file.set_len(SIZE).unwrap();
    std::fs::write(dir.path().join("small"), b"0123456789").unwrap();
    let mut cmd = protolab();
    cmd.args(["hftp", "serve", "-a", "127.0.0.1", "-p", "0", "-d"])
        .arg(dir.path())
        .stderr(Stdio::null());
    let (mut child, _out, addr) = spawn_listening(&mut cmd);
    let before = peak_rss(child.id());

    let header = format!("0 OK\r\nContent-Length: {SIZE}\r\n\r\n");
    let mut stalled = Vec::new();
    for _ in 0..STALLED {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(BOUND)).unwrap();
        c.write_all(format!("get_slice huge 0 {SIZE} raw\r\n").as_bytes())
            .unwrap();
        // The slice has started (the server holds it), then nobody reads.
        let mut head = vec![0u8; header.len()];
        c.read_exact(&mut head).unwrap();
        assert_eq!(head, header.as_bytes());
        stalled.push(c);
    }
    // Let every stalled slice fill its socket buffers.
    std::thread::sleep(std::time::Duration::from_millis(500));

    let small_answer = b"0 OK\r\nMDEyMzQ1Njc4OQ==\r\n";
    let listing = b"0 OK\r\nhuge\r\nsmall\r\n\r\n";
    let patience = std::time::Duration::from_secs(5);
    let mut good = TcpStream::connect(addr).unwrap();
    good.set_read_timeout(Some(patience)).unwrap();
    for round in 0..10 {
        for (req, want) in [
            (&b"get_slice small 0 10\r\n"[..], &small_answer[..]),
            (b"get_file_listing\r\n", listing),
        ] {
            good.write_all(req).unwrap();
            let mut got = vec![0u8; want.len()];
            good.read_exact(&mut got).unwrap_or_else(|e| {
                panic!("round {round}: no answer to {req:?} within {patience:?}: {e}")
            });
            assert_eq!(got, want);
        }
    }
    let peak = peak_rss(child.id());
    let threads = threads(child.id());
    eprintln!(
        "{STALLED} stalled 1 GiB slices: server resident {} -> {} MiB, {threads} threads",
        before >> 20,
        peak >> 20
    );
    assert!(
        peak < before + (96 << 20),
        "{STALLED} stalled slices took the server from {before} to {peak} bytes resident"
    );
    assert!(
        threads < 64,
        "{STALLED} stalled slices hold {threads} threads"
    );
    drop(stalled);
    signal(&child, "-TERM");
    assert_eq!(wait_bounded(&mut child).code(), Some(0));
}
