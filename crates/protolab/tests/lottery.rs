//! `protolab lottery` as a process: signals, crash recovery, the course's
//! environment variables and log lines, export.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use common::{BOUND, protolab, spawn_listening, wait_bounded};

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use lottery::Bet;
use lottery::proto::{Request, encode_request};
use lottery::store::{batch_recorded, read_all};

const BATCH: usize = 100;

/// A server process; its stderr is drained into `log` so it never blocks.
struct Served {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
    drain: Option<std::thread::JoinHandle<()>>,
}

fn serve(db: &Path, agencies: usize) -> Served {
    let mut cmd = protolab();
    cmd.args([
        "lottery",
        "serve",
        "--address",
        "127.0.0.1",
        "--port",
        "0",
        "--agencies",
        &agencies.to_string(),
    ])
    .arg("--db")
    .arg(db)
    .stderr(Stdio::piped());
    let (mut child, _out, addr) = spawn_listening(&mut cmd);
    let log = Arc::new(Mutex::new(String::new()));
    let mut err = child.stderr.take().unwrap();
    let sink = log.clone();
    let drain = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = err.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    Served {
        child,
        addr,
        log,
        drain: Some(drain),
    }
}

impl Served {
    fn signal(&self, sig: &str) {
        assert!(
            Command::new("kill")
                .arg(sig)
                .arg(self.child.id().to_string())
                .status()
                .unwrap()
                .success()
        );
    }
    /// Everything the server wrote to stderr. Call once it has exited:
    /// this waits for the drain to reach the end of the pipe (lines still in
    /// the pipe when the process ended are not lost).
    fn log(&mut self) -> String {
        if let Some(drain) = self.drain.take() {
            drain.join().unwrap();
        }
        self.log.lock().unwrap().clone()
    }
}

fn bets_of(seq: u32) -> Vec<Bet> {
    (0..BATCH)
        .map(|i| {
            Bet::parse(&format!(
                "Mónica,Ruiz,{seq:05}{i:03},1977-11-30,{}",
                (seq as usize * 7 + i) % 10_000
            ))
            .unwrap()
        })
        .collect()
}

fn batch_bytes(seq: u32, last: bool) -> Vec<u8> {
    let mut b = bytes::BytesMut::new();
    encode_request(
        &Request::Bets {
            agency: 1,
            first: Some(seq * BATCH as u32),
            last,
            bets: bets_of(seq),
        },
        &mut b,
    );
    b.to_vec()
}

/// Streams batches `seqs` over one connection, at most `WINDOW` unacknowledged
/// at a time (so a kill after N acks lands with at most N + WINDOW sent);
/// returns how many acks arrived, calling `on_threshold` once at `stop_after`.
fn stream_batches(
    addr: SocketAddr,
    seqs: std::ops::Range<u32>,
    stop_after: usize,
    on_threshold: impl FnOnce(),
) -> usize {
    const WINDOW: u32 = 20;
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(BOUND)).unwrap();
    let last = seqs.end - 1;
    let count = seqs.len();
    let mut next = seqs.start;
    let mut writable = true;
    let send_one = |s: &mut TcpStream, next: &mut u32, writable: &mut bool| {
        if *writable && *next <= last {
            *writable = s.write_all(&batch_bytes(*next, *next == last)).is_ok();
            *next += 1;
        }
    };
    for _ in 0..WINDOW {
        send_one(&mut s, &mut next, &mut writable);
    }
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut acks = 0;
    let mut on_threshold = Some(on_threshold);
    let mut header = [0u8; 5];
    while acks < count && r.read_exact(&mut header).is_ok() {
        assert_eq!(header, [1, 0, 0, 0, 0], "only BET_PROCESSED expected");
        acks += 1;
        if acks == stop_after
            && let Some(f) = on_threshold.take()
        {
            f();
        }
        send_one(&mut s, &mut next, &mut writable);
    }
    acks
}

#[test]
fn sigterm_mid_ingestion_exits_0_and_every_acknowledged_batch_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bets.db");
    let mut srv = serve(&db, 1);
    let pid = srv.child.id().to_string();
    let acked = stream_batches(srv.addr, 0..3000, 40, || {
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
    });
    let status = wait_bounded(&mut srv.child);
    assert_eq!(status.code(), Some(0));
    assert!(
        (40..3000).contains(&acked),
        "SIGTERM landed mid-ingestion ({acked} acks)"
    );
    for seq in 0..acked as u32 {
        assert!(
            batch_recorded(&db, 1, seq * BATCH as u32).unwrap(),
            "acknowledged batch {seq} is stored"
        );
    }
    let stored = read_all(&db).unwrap().len();
    assert!(stored >= acked * BATCH);
    assert_eq!(stored % BATCH, 0, "no batch stored in part");
    let log = srv.log();
    for line in [
        "action: server_shutdown | result: success",
        "action: listener_close | result: success",
        "action: store_close | result: success",
    ] {
        assert!(
            log.contains(line),
            "missing {line:?} in:\n{}",
            &log[log.len().saturating_sub(2000)..]
        );
    }
}

#[test]
fn sigkill_mid_ingestion_loses_no_acknowledged_bet_and_a_restart_stores_none_twice() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bets.db");
    let total = 400u32;
    let mut srv = serve(&db, 1);
    let pid = srv.child.id().to_string();
    let acked = stream_batches(srv.addr, 0..total, 60, || {
        assert!(
            Command::new("kill")
                .args(["-KILL", &pid])
                .status()
                .unwrap()
                .success()
        );
    });
    let status = wait_bounded(&mut srv.child);
    assert_eq!(status.code(), None, "killed by a signal");
    // Everything acknowledged survived the kill, and batches are whole.
    for seq in 0..acked as u32 {
        assert!(
            batch_recorded(&db, 1, seq * BATCH as u32).unwrap(),
            "acknowledged batch {seq} lost"
        );
    }
    let after_kill = read_all(&db).unwrap().len();
    assert_eq!(after_kill % BATCH, 0);
    assert!(
        after_kill < total as usize * BATCH,
        "the kill landed mid-ingestion"
    );

    // The agency does not know what made it: it resends everything.
    let mut srv = serve(&db, 1);
    let acked = stream_batches(srv.addr, 0..total, usize::MAX, || {});
    assert_eq!(
        acked, total as usize,
        "every batch, old and new, acknowledged"
    );
    srv.signal("-TERM");
    assert_eq!(wait_bounded(&mut srv.child).code(), Some(0));
    let stored = read_all(&db).unwrap();
    assert_eq!(
        stored.len(),
        total as usize * BATCH,
        "none stored twice, none missing"
    );
    let mut docs: Vec<_> = stored.iter().map(|(_, b)| b.documento.clone()).collect();
    docs.sort();
    docs.dedup();
    assert_eq!(docs.len(), total as usize * BATCH);
    assert!(
        srv.log()
            .contains("action: lote_repetido | result: success"),
        "retries were recognised"
    );
}

#[test]
fn single_bet_from_the_environment_with_the_course_log_lines_then_export() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bets.db");
    let mut srv = serve(&db, 1);
    let out = protolab()
        .args(["lottery", "client"])
        .env("CLI_ID", "5")
        .env("CLI_SERVER_ADDRESS", srv.addr.to_string())
        .env("NOMBRE", "Agustín Emanuel")
        .env("APELLIDO", "Zambrano")
        .env("DOCUMENTO", "21689196")
        .env("NACIMIENTO", "2000-05-10")
        .env("NUMERO", "7574")
        .env("CLI_LOG_LEVEL", "INFO")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("action: apuesta_enviada | result: success | dni: 21689196 | numero: 7574"),
        "{err}"
    );
    assert!(
        err.contains("action: consulta_ganadores | result: success | cant_ganadores: 1"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 winner(s): 21689196"));
    srv.signal("-TERM");
    assert_eq!(wait_bounded(&mut srv.child).code(), Some(0));
    let log = srv.log();
    for line in [
        "action: apuesta_almacenada | result: success | dni: 21689196 | numero: 7574",
        "action: apuesta_recibida | result: success | cantidad: 1",
        "action: sorteo | result: success",
    ] {
        assert!(log.contains(line), "missing {line:?} in:\n{log}");
    }
    assert!(
        !log.contains("\x1b["),
        "no colour codes when not on a terminal"
    );

    let csv = protolab()
        .args(["lottery", "export", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(csv.status.success());
    assert_eq!(
        String::from_utf8(csv.stdout).unwrap(),
        "5,Agustín Emanuel,Zambrano,21689196,2000-05-10,7574\r\n"
    );
}

#[test]
fn client_errors_are_clear() {
    let out = protolab()
        .args(["lottery", "client", "--id", "1", "--server", "127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("set NOMBRE, APELLIDO, DOCUMENTO, NACIMIENTO and NUMERO")
    );
    let out = protolab()
        .args(["lottery", "client", "--id", "1", "--server", "127.0.0.1:9"])
        .env("NOMBRE", "A")
        .env("APELLIDO", "B")
        .env("DOCUMENTO", "1")
        .env("NACIMIENTO", "2000-02-31")
        .env("NUMERO", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("nacimiento \"2000-02-31\" is not a date"),
        "{err}"
    );
}

/// Two servers on one database would split the agencies between two draws
/// that never happen: the second refuses to start, in one clear line.
#[test]
fn a_second_server_on_the_same_database_exits_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bets.db");
    let mut first = serve(&db, 1);
    let second = protolab()
        .args([
            "lottery",
            "serve",
            "--address",
            "127.0.0.1",
            "--port",
            "0",
            "--db",
        ])
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("is in use by another lottery server"), "{err}");
    first.signal("-TERM");
    assert_eq!(wait_bounded(&mut first.child).code(), Some(0));
}
