//! The client and the conformance checker against our server (and the checker
//! against a broken one).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hftp::Error;
use hftp::client::{Client, Download, download, download_to};
use hftp::proto::{Encoding, Status};
use hftp::server::{Config, run};
use netkit::testing::Served;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::timeout;

const BOUND: Duration = Duration::from_secs(60);

async fn start(dir: &std::path::Path) -> (String, Served<netkit::server::ServeReport>) {
    let config = Config::new(dir);
    let server = Served::bind(|l, shutdown| run(l, config, shutdown)).await;
    (server.addr.to_string(), server)
}

#[tokio::test]
async fn the_checker_passes_against_our_server() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, server) = start(dir.path()).await;
    let report = timeout(
        BOUND,
        hftp::check::run(&addr, dir.path(), hftp::check::Options::default()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(report.failures(), 0, "\n{report}");
    assert_eq!(report.outcomes.len(), hftp::check::RULES.len());
    assert!(
        report
            .to_string()
            .ends_with(&format!("{} passed, 0 failed\n", hftp::check::RULES.len()))
    );
    server.stop().await;
}

#[tokio::test]
async fn the_checker_catches_a_server_that_gets_things_wrong() {
    // A "server" that answers every line with 0 OK and never closes.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    for _ in buf[..n].iter().filter(|&&b| b == b'\n') {
                        let _ = s.write_all(b"0 OK\r\n").await;
                    }
                }
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let report = timeout(
        BOUND,
        hftp::check::run(
            &addr,
            dir.path(),
            hftp::check::Options {
                wait: Duration::from_millis(300),
                lab: hftp::check::Lab::L2026,
            },
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(report.failures() >= 20, "\n{report}");
    let text = report.to_string();
    assert!(text.contains("FAIL  202 for a missing file\n      expected \"202 FILE NOT FOUND\\r\\n\", got \"0 OK\\r\\n\""), "{text}");
}

#[tokio::test]
async fn client_lists_reads_metadata_and_names_errors_clearly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), b"hello").unwrap();
    let (addr, server) = start(dir.path()).await;
    let mut c = Client::connect(&addr).await.unwrap();
    assert_eq!(c.list().await.unwrap(), vec!["a.txt"]);
    assert_eq!(c.metadata("a.txt").await.unwrap(), 5);
    let err = c.metadata("missing.txt").await.unwrap_err();
    assert!(matches!(err, Error::Status(Status::FileNotFound, _)));
    assert_eq!(
        err.to_string(),
        "the server has no file \"missing.txt\" (202)"
    );
    let mut out = Vec::new();
    let progress = AtomicU64::new(0);
    let err = c
        .slice("a.txt", 3, 9, Encoding::Base64, &mut out, &progress)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the range asked of \"a.txt\" goes past its end (203)"
    );
    c.slice("a.txt", 1, 3, Encoding::Base64, &mut out, &progress)
        .await
        .unwrap();
    c.slice("a.txt", 0, 0, Encoding::Raw, &mut out, &progress)
        .await
        .unwrap();
    assert_eq!(out, b"ell");
    c.quit().await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn sliced_downloads_over_several_connections_are_identical() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..5_000_003u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.path().join("data.bin"), &data).unwrap();
    let (addr, server) = start(dir.path()).await;
    let out = tempfile::tempdir().unwrap();
    for (encoding, connections) in [
        (Encoding::Base64, 1),
        (Encoding::Base64, 4),
        (Encoding::Raw, 3),
    ] {
        let d = Download {
            server: addr.clone(),
            name: "data.bin".into(),
            offset: 0,
            size: None,
            encoding,
            connections,
            slice_size: 1_000_000,
            wait: hftp::client::WAIT,
        };
        let progress = Arc::new(AtomicU64::new(0));
        let path = out.path().join(format!("{connections}.bin"));
        let n = timeout(BOUND, download(&d, &path, progress.clone()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(progress.load(Ordering::Relaxed), n);
        assert!(
            std::fs::read(&path).unwrap() == data,
            "{encoding:?} over {connections}"
        );
    }
    // A range.
    let d = Download {
        server: addr.clone(),
        name: "data.bin".into(),
        offset: 1234,
        size: Some(777_777),
        encoding: Encoding::Base64,
        connections: 2,
        slice_size: 100_000,
        wait: hftp::client::WAIT,
    };
    let path = out.path().join("range.bin");
    download(&d, &path, Arc::default()).await.unwrap();
    assert!(std::fs::read(&path).unwrap() == data[1234..1234 + 777_777]);
    server.stop().await;
}

/// The client decodes base64 whatever the segment sizes: reads of 1, 5 and 7
/// bytes leave 1–3 characters for the next read (the carry) all along the line.
#[tokio::test]
async fn base64_decodes_across_reads_of_any_size() {
    use impair::{TcpProxy, TcpProxyConfig, TcpRules};
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..601u32).map(|i| (i * 7 + i / 3) as u8).collect();
    std::fs::write(dir.path().join("d.bin"), &data).unwrap();
    let (addr, server) = start(dir.path()).await;
    for k in [1, 5, 7] {
        let mut cfg = TcpProxyConfig::new("127.0.0.1:0".parse().unwrap(), addr.parse().unwrap());
        // A pause after each write, so the client reads them one by one.
        cfg.rules.down = TcpRules::chopped(k, Duration::from_millis(1));
        let proxy = TcpProxy::start(cfg).await.unwrap();
        let mut c = Client::connect(&proxy.local_addr().to_string())
            .await
            .unwrap();
        let mut out = Vec::new();
        timeout(
            BOUND,
            c.slice(
                "d.bin",
                0,
                601,
                Encoding::Base64,
                &mut out,
                &AtomicU64::new(0),
            ),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(out, data, "segments of {k} bytes");
        assert!(proxy.summary().dirs.down.writes > 601 * 4 / 3 / k as u64);
    }
    server.stop().await;
}

/// A server whose base64 line is shorter than the size it accepted gets a
/// clear error at once, not a wait for characters that never come.
#[tokio::test]
async fn a_short_base64_line_is_an_error_at_once() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = [0u8; 256];
        let _ = s.read(&mut buf).await;
        // 6 bytes asked, 4 characters (3 bytes) sent; then the connection stays open.
        s.write_all(b"0 OK\r\nYWJj\r\n").await.unwrap();
        tokio::time::sleep(BOUND).await;
    });
    let mut c = Client::connect(&addr).await.unwrap();
    let mut out = Vec::new();
    let err = timeout(
        Duration::from_secs(5),
        c.slice("f", 0, 6, Encoding::Base64, &mut out, &AtomicU64::new(0)),
    )
    .await
    .expect("an error at once, not a wait")
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "protocol error: the base64 line ended after 4 characters; 6 bytes take 8"
    );
}

/// A stream (standard output, a pipe) and a path that is not a regular file
/// (a FIFO here; `/dev/null` alike) get the slices in order over one
/// connection; a path that cannot be created is named in the error.
#[tokio::test]
async fn downloads_to_streams_and_fifos_arrive_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..1_000_001u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("data.bin"), &data).unwrap();
    let (addr, server) = start(dir.path()).await;
    let d = Download {
        server: addr.clone(),
        name: "data.bin".into(),
        offset: 5,
        size: None,
        encoding: Encoding::Base64,
        connections: 4,
        slice_size: 77_777,
        wait: hftp::client::WAIT,
    };
    let mut got = Vec::new();
    let progress = AtomicU64::new(0);
    let n = timeout(
        BOUND,
        download_to(&d, &mut got, std::path::Path::new("memory"), &progress),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(n, data.len() as u64 - 5);
    assert!(got == data[5..], "in order, whole");
    assert_eq!(progress.load(Ordering::Relaxed), n);

    // A stream whose reader is gone: an output error naming it, not a
    // socket error (the CLI ends quietly on the first, never on the second).
    let (mut gone, reader) = tokio::io::duplex(1024);
    drop(reader);
    let err = timeout(
        BOUND,
        download_to(&d, &mut gone, std::path::Path::new("the pipe"), &progress),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert!(
        matches!(&err, Error::Output { path, source } if path == std::path::Path::new("the pipe") && source.kind() == std::io::ErrorKind::BrokenPipe),
        "{err:?}"
    );

    let out = tempfile::tempdir().unwrap();
    let fifo = out.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let reader = {
        let fifo = fifo.clone();
        tokio::task::spawn_blocking(move || std::fs::read(fifo).unwrap())
    };
    let n = timeout(BOUND, download(&d, &fifo, Arc::default()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, data.len() as u64 - 5);
    assert!(timeout(BOUND, reader).await.unwrap().unwrap() == data[5..]);

    let nowhere = out.path().join("no/such/dir/x.bin");
    let err = download(&d, &nowhere, Arc::default()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot write {}: No such file or directory (os error 2)",
            nowhere.display()
        )
    );
    server.stop().await;
}
