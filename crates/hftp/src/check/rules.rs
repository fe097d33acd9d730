//! The rules of the conformance checker, in the order they run, each on its
//! own connections (spec: hftp.md, every rule of "Requests", "Responses",
//! "Commands", "Argument rules and check order", "Connections").

use std::path::Path;
use std::time::Duration;

use super::talk::{Check, Ctx, show};
use crate::proto::Status;

const ALL: &str = "hftp-check-all.bin";
const EMPTY: &str = "hftp-check-empty";
const BIG: &str = "hftp-check-big.bin";
const BIG_LEN: usize = 3_000_000;

fn all_bytes() -> Vec<u8> {
    (0..=255u8).cycle().take(1000).collect()
}

fn big_bytes() -> Vec<u8> {
    (0..BIG_LEN as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

fn b64(b: &[u8]) -> String {
    base64_simd::STANDARD.encode_to_string(b)
}

/// Writes the files the rules ask for into the served directory.
pub(super) fn write_fixtures(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes);
    write(ALL, &all_bytes())?;
    write(EMPTY, b"")?;
    write(BIG, &big_bytes())
}

/// What a rule needs of the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Every lab has it.
    Any,
    /// The `help` command (2026 only).
    Help,
    /// Raw slices (2026 only).
    Raw,
}

/// Every rule, in the order they run, with what it needs of the lab.
pub const RULES: &[(&str, Needs)] = &[
    (
        "listing shows regular files, ends with an empty line",
        Needs::Any,
    ),
    ("get_metadata gives the size in decimal", Needs::Any),
    ("get_metadata of an empty file is 0", Needs::Any),
    (
        "get_slice base64 round-trips all 256 byte values",
        Needs::Any,
    ),
    (
        "get_slice raw sends Content-Length, an empty line, the bytes",
        Needs::Raw,
    ),
    ("a zero-size slice is an empty line", Needs::Any),
    ("a slice may end exactly at end of file", Needs::Any),
    ("a 3 MB slice arrives whole", Needs::Any),
    ("help lists the five commands", Needs::Help),
    (
        "200 for an unknown command; the connection stays open",
        Needs::Any,
    ),
    ("201 for a wrong argument count (even for quit)", Needs::Any),
    (
        "201 for a file name with a path, before existence",
        Needs::Any,
    ),
    ("201 for an offset that is not all digits", Needs::Any),
    (
        "201 for a bad fourth word, before the bounds check",
        Needs::Any,
    ),
    ("202 for a missing file", Needs::Any),
    ("202 for a name too long for the file system", Needs::Any),
    ("203 for offset + size past the end", Needs::Any),
    ("203 for a number too large for an integer", Needs::Any),
    ("100 for a bare LF, at once, then close (FIN)", Needs::Any),
    ("101 for an empty line, then close", Needs::Any),
    ("pipelined requests are answered in order", Needs::Any),
    ("a request sent one byte per segment", Needs::Any),
    ("CR and LF in separate segments", Needs::Any),
    ("a 5 MiB file name is answered 202", Needs::Any),
    (
        "an idle half-sent request does not delay another client",
        Needs::Any,
    ),
    ("quit answers 0 OK and closes", Needs::Any),
];

/// Runs rule `i`.
pub(super) async fn run(i: usize, c: &Ctx, dir: &Path) -> Check {
    use Status::{
        BadEol, BadOffset, BadRequest, FileNotFound, InvalidArguments, InvalidCommand, Ok as Fine,
    };
    let only =
        |status, req: String| async move { c.ask(req.as_bytes(), status, b"").await.map(drop) };
    match i {
        0 => {
            let mut s = c.connect().await?;
            c.send(&mut s, b"get_file_listing\r\n").await?;
            c.status(&mut s, Fine).await?;
            // The fixtures are there, so the body is names and an empty line.
            let all = c
                .read_until(&mut s, b"\r\n\r\n", 1 << 20)
                .await
                .map_err(|e| format!("not a listing: {e}"))?;
            let text = String::from_utf8_lossy(&all);
            for f in [ALL, EMPTY, BIG] {
                if !text.split("\r\n").any(|l| l == f) {
                    return Err(format!("{f} missing from {}", show(&all)));
                }
            }
            Ok(())
        }
        1 => c
            .ask(
                format!("get_metadata {ALL}\r\n").as_bytes(),
                Fine,
                b"1000\r\n",
            )
            .await
            .map(drop),
        2 => c
            .ask(
                format!("get_metadata {EMPTY}\r\n").as_bytes(),
                Fine,
                b"0\r\n",
            )
            .await
            .map(drop),
        3 => c
            .ask(
                format!("get_slice {ALL} 0 1000\r\n").as_bytes(),
                Fine,
                format!("{}\r\n", b64(&all_bytes())).as_bytes(),
            )
            .await
            .map(drop),
        4 => {
            let mut want = b"Content-Length: 300\r\n\r\n".to_vec();
            want.extend_from_slice(&all_bytes()[100..400]);
            c.ask(
                format!("get_slice {ALL} 100 300 raw\r\n").as_bytes(),
                Fine,
                &want,
            )
            .await
            .map(drop)
        }
        5 => c
            .ask(format!("get_slice {ALL} 7 0\r\n").as_bytes(), Fine, b"\r\n")
            .await
            .map(drop),
        6 => c
            .ask(
                format!("get_slice {ALL} 995 5\r\n").as_bytes(),
                Fine,
                format!("{}\r\n", b64(&all_bytes()[995..])).as_bytes(),
            )
            .await
            .map(drop),
        7 => c
            .ask(
                format!("get_slice {BIG} 0 {BIG_LEN}\r\n").as_bytes(),
                Fine,
                format!("{}\r\n", b64(&big_bytes())).as_bytes(),
            )
            .await
            .map(drop),
        8 => c
            .ask(
                b"help\r\n",
                Fine,
                b"get_file_listing\r\nget_metadata\r\nget_slice\r\nhelp\r\nquit\r\n\r\n",
            )
            .await
            .map(drop),
        9 => {
            let mut s = c.ask(b"no_such_thing\r\n", InvalidCommand, b"").await?;
            c.send(&mut s, format!("get_metadata {EMPTY}\r\n").as_bytes())
                .await?;
            c.status(&mut s, Fine).await?;
            c.expect(&mut s, b"0\r\n").await
        }
        10 => only(InvalidArguments, "quit now\r\n".into()).await,
        11 => only(InvalidArguments, "get_metadata ../etc-passwd\r\n".into()).await,
        12 => only(InvalidArguments, format!("get_slice {ALL} -1 2\r\n")).await,
        13 => only(InvalidArguments, format!("get_slice {ALL} 1 99999 hex\r\n")).await,
        14 => {
            only(
                FileNotFound,
                "get_metadata hftp-check-no-such-file\r\n".into(),
            )
            .await
        }
        15 => {
            only(
                FileNotFound,
                format!("get_metadata {}\r\n", "n".repeat(300)),
            )
            .await
        }
        16 => only(BadOffset, format!("get_slice {ALL} 990 11\r\n")).await,
        17 => {
            only(
                BadOffset,
                format!("get_slice {ALL} 99999999999999999999999999 1\r\n"),
            )
            .await
        }
        18 => {
            let mut s = c.ask(b"get_file_listing\n", BadEol, b"").await?;
            c.expect_close(&mut s).await
        }
        19 => {
            let mut s = c.ask(b"\r\n", BadRequest, b"").await?;
            c.expect_close(&mut s).await
        }
        20 => {
            let mut s = c.connect().await?;
            c.send(
                &mut s,
                format!("get_metadata {ALL}\r\nget_metadata nope-x\r\nget_slice {ALL} 1 2\r\n")
                    .as_bytes(),
            )
            .await?;
            c.status(&mut s, Fine).await?;
            c.expect(&mut s, b"1000\r\n").await?;
            c.status(&mut s, FileNotFound).await?;
            c.status(&mut s, Fine).await?;
            c.expect(
                &mut s,
                format!("{}\r\n", b64(&all_bytes()[1..3])).as_bytes(),
            )
            .await
        }
        21 => {
            let mut s = c.connect().await?;
            for b in format!("get_metadata {ALL}\r\n").bytes() {
                c.send(&mut s, &[b]).await?;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            c.status(&mut s, Fine).await?;
            c.expect(&mut s, b"1000\r\n").await
        }
        22 => {
            let mut s = c.connect().await?;
            c.send(&mut s, format!("get_metadata {EMPTY}\r").as_bytes())
                .await?;
            tokio::time::sleep(Duration::from_millis(50)).await;
            c.send(&mut s, b"\n").await?;
            c.status(&mut s, Fine).await?;
            c.expect(&mut s, b"0\r\n").await
        }
        23 => {
            let mut s = c.connect().await?;
            c.send(&mut s, b"get_metadata ").await?;
            let chunk = vec![b'a'; 64 * 1024];
            for _ in 0..80 {
                c.send(&mut s, &chunk).await?;
            }
            c.send(&mut s, b"\r\n").await?;
            c.status(&mut s, FileNotFound).await
        }
        24 => {
            let mut idle = c.connect().await?;
            c.send(&mut idle, b"get_metad").await?;
            let (req, want) = (
                format!("get_slice {BIG} 0 {BIG_LEN}\r\n"),
                format!("{}\r\n", b64(&big_bytes())),
            );
            tokio::time::timeout(c.wait, c.ask(req.as_bytes(), Fine, want.as_bytes()))
                .await
                .map_err(|_| {
                    format!(
                        "no answer within {:?}: the other client was kept waiting",
                        c.wait
                    )
                })??;
            c.send(&mut idle, format!("ata {EMPTY}\r\n").as_bytes())
                .await?;
            c.status(&mut idle, Fine).await?;
            c.expect(&mut idle, b"0\r\n").await
        }
        25 => {
            let mut s = c.ask(b"quit\r\n", Fine, b"").await?;
            c.expect_close(&mut s).await
        }
        _ => Err(format!("no rule {i} (fixtures in {})", dir.display())),
    }
}
