//! The rules of the conformance checker, in the order they run, each on its
//! own connections (spec: hftp.md, every rule of "Requests", "Responses",
//! "Commands", "Argument rules and check order", "Connections").

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use super::talk::{Check, Ctx, show};
use crate::proto::Status;
use crate::proto::Status::{
    BadEol, BadOffset, BadRequest, FileNotFound, InvalidArguments, InvalidCommand, Ok as Fine,
};

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

/// One rule: what it checks, what it needs of the lab, and how.
pub struct Rule {
    /// What it checks, as the report names it.
    pub name: &'static str,
    /// What it needs of the lab.
    pub needs: Needs,
    /// Runs it against the server behind `Ctx`.
    pub(super) run: for<'a> fn(&'a Ctx) -> Pin<Box<dyn Future<Output = Check> + 'a>>,
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rule")
            .field("name", &self.name)
            .field("needs", &self.needs)
            .finish_non_exhaustive()
    }
}

macro_rules! rule {
    ($name:expr, $needs:expr, $run:ident) => {
        Rule {
            name: $name,
            needs: $needs,
            run: |c| Box::pin($run(c)),
        }
    };
}

/// Every rule, in the order they run.
pub const RULES: &[Rule] = &[
    rule!(
        "listing shows regular files, ends with an empty line",
        Needs::Any,
        listing
    ),
    rule!(
        "get_metadata gives the size in decimal",
        Needs::Any,
        metadata_size
    ),
    rule!(
        "get_metadata of an empty file is 0",
        Needs::Any,
        metadata_empty
    ),
    rule!(
        "get_slice base64 round-trips all 256 byte values",
        Needs::Any,
        slice_base64_all_bytes
    ),
    rule!(
        "get_slice raw sends Content-Length, an empty line, the bytes",
        Needs::Raw,
        slice_raw
    ),
    rule!("a zero-size slice is an empty line", Needs::Any, slice_zero),
    rule!(
        "a slice may end exactly at end of file",
        Needs::Any,
        slice_to_the_end
    ),
    rule!("a 3 MB slice arrives whole", Needs::Any, slice_big),
    rule!(
        "help lists the five commands",
        Needs::Help,
        help_lists_commands
    ),
    rule!(
        "200 for an unknown command; the connection stays open",
        Needs::Any,
        unknown_command_keeps_open
    ),
    rule!(
        "201 for a wrong argument count (even for quit)",
        Needs::Any,
        wrong_argument_count
    ),
    rule!(
        "201 for a file name with a path, before existence",
        Needs::Any,
        name_with_path
    ),
    rule!(
        "201 for an offset that is not all digits",
        Needs::Any,
        offset_not_digits
    ),
    rule!(
        "201 for a bad fourth word, before the bounds check",
        Needs::Any,
        bad_fourth_word
    ),
    rule!("202 for a missing file", Needs::Any, missing_file),
    rule!(
        "202 for a name too long for the file system",
        Needs::Any,
        name_too_long
    ),
    rule!(
        "203 for offset + size past the end",
        Needs::Any,
        past_the_end
    ),
    rule!(
        "203 for a number too large for an integer",
        Needs::Any,
        number_too_large
    ),
    rule!(
        "100 for a bare LF, at once, then close (FIN)",
        Needs::Any,
        bare_lf_closes
    ),
    rule!(
        "101 for an empty line, then close",
        Needs::Any,
        empty_line_closes
    ),
    rule!(
        "pipelined requests are answered in order",
        Needs::Any,
        pipelined_in_order
    ),
    rule!(
        "a request sent one byte per segment",
        Needs::Any,
        one_byte_per_segment
    ),
    rule!(
        "CR and LF in separate segments",
        Needs::Any,
        cr_and_lf_apart
    ),
    rule!("a 5 MiB file name is answered 202", Needs::Any, huge_name),
    rule!(
        "an idle half-sent request does not delay another client",
        Needs::Any,
        idle_client_delays_nobody
    ),
    rule!("quit answers 0 OK and closes", Needs::Any, quit_closes),
];

/// Asks `req` on a new connection; the answer must be `status` (no body
/// checked).
async fn only(c: &Ctx, status: Status, req: String) -> Check {
    c.ask(req.as_bytes(), status, b"").await.map(drop)
}

/// listing shows regular files, ends with an empty line.
async fn listing(c: &Ctx) -> Check {
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

/// get_metadata gives the size in decimal.
async fn metadata_size(c: &Ctx) -> Check {
    c.ask(
        format!("get_metadata {ALL}\r\n").as_bytes(),
        Fine,
        b"1000\r\n",
    )
    .await
    .map(drop)
}

/// get_metadata of an empty file is 0.
async fn metadata_empty(c: &Ctx) -> Check {
    c.ask(
        format!("get_metadata {EMPTY}\r\n").as_bytes(),
        Fine,
        b"0\r\n",
    )
    .await
    .map(drop)
}

/// get_slice base64 round-trips all 256 byte values.
async fn slice_base64_all_bytes(c: &Ctx) -> Check {
    c.ask(
        format!("get_slice {ALL} 0 1000\r\n").as_bytes(),
        Fine,
        format!("{}\r\n", b64(&all_bytes())).as_bytes(),
    )
    .await
    .map(drop)
}

/// get_slice raw sends Content-Length, an empty line, the bytes.
async fn slice_raw(c: &Ctx) -> Check {
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

/// a zero-size slice is an empty line.
async fn slice_zero(c: &Ctx) -> Check {
    c.ask(format!("get_slice {ALL} 7 0\r\n").as_bytes(), Fine, b"\r\n")
        .await
        .map(drop)
}

/// a slice may end exactly at end of file.
async fn slice_to_the_end(c: &Ctx) -> Check {
    c.ask(
        format!("get_slice {ALL} 995 5\r\n").as_bytes(),
        Fine,
        format!("{}\r\n", b64(&all_bytes()[995..])).as_bytes(),
    )
    .await
    .map(drop)
}

/// a 3 MB slice arrives whole.
async fn slice_big(c: &Ctx) -> Check {
    c.ask(
        format!("get_slice {BIG} 0 {BIG_LEN}\r\n").as_bytes(),
        Fine,
        format!("{}\r\n", b64(&big_bytes())).as_bytes(),
    )
    .await
    .map(drop)
}

/// help lists the five commands.
async fn help_lists_commands(c: &Ctx) -> Check {
    c.ask(
        b"help\r\n",
        Fine,
        b"get_file_listing\r\nget_metadata\r\nget_slice\r\nhelp\r\nquit\r\n\r\n",
    )
    .await
    .map(drop)
}

/// 200 for an unknown command; the connection stays open.
async fn unknown_command_keeps_open(c: &Ctx) -> Check {
    let mut s = c.ask(b"no_such_thing\r\n", InvalidCommand, b"").await?;
    c.send(&mut s, format!("get_metadata {EMPTY}\r\n").as_bytes())
        .await?;
    c.status(&mut s, Fine).await?;
    c.expect(&mut s, b"0\r\n").await
}

/// 201 for a wrong argument count (even for quit).
async fn wrong_argument_count(c: &Ctx) -> Check {
    only(c, InvalidArguments, "quit now\r\n".into()).await
}

/// 201 for a file name with a path, before existence.
async fn name_with_path(c: &Ctx) -> Check {
    only(c, InvalidArguments, "get_metadata ../etc-passwd\r\n".into()).await
}

/// 201 for an offset that is not all digits.
async fn offset_not_digits(c: &Ctx) -> Check {
    only(c, InvalidArguments, format!("get_slice {ALL} -1 2\r\n")).await
}

/// 201 for a bad fourth word, before the bounds check.
async fn bad_fourth_word(c: &Ctx) -> Check {
    only(
        c,
        InvalidArguments,
        format!("get_slice {ALL} 1 99999 hex\r\n"),
    )
    .await
}

/// 202 for a missing file.
async fn missing_file(c: &Ctx) -> Check {
    only(
        c,
        FileNotFound,
        "get_metadata hftp-check-no-such-file\r\n".into(),
    )
    .await
}

/// 202 for a name too long for the file system.
async fn name_too_long(c: &Ctx) -> Check {
    only(
        c,
        FileNotFound,
        format!("get_metadata {}\r\n", "n".repeat(300)),
    )
    .await
}

/// 203 for offset + size past the end.
async fn past_the_end(c: &Ctx) -> Check {
    only(c, BadOffset, format!("get_slice {ALL} 990 11\r\n")).await
}

/// 203 for a number too large for an integer.
async fn number_too_large(c: &Ctx) -> Check {
    only(
        c,
        BadOffset,
        format!("get_slice {ALL} 99999999999999999999999999 1\r\n"),
    )
    .await
}

/// 100 for a bare LF, at once, then close (FIN).
async fn bare_lf_closes(c: &Ctx) -> Check {
    let mut s = c.ask(b"get_file_listing\n", BadEol, b"").await?;
    c.expect_close(&mut s).await
}

/// 101 for an empty line, then close.
async fn empty_line_closes(c: &Ctx) -> Check {
    let mut s = c.ask(b"\r\n", BadRequest, b"").await?;
    c.expect_close(&mut s).await
}

/// pipelined requests are answered in order.
async fn pipelined_in_order(c: &Ctx) -> Check {
    let mut s = c.connect().await?;
    c.send(
        &mut s,
        format!("get_metadata {ALL}\r\nget_metadata nope-x\r\nget_slice {ALL} 1 2\r\n").as_bytes(),
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

/// a request sent one byte per segment.
async fn one_byte_per_segment(c: &Ctx) -> Check {
    let mut s = c.connect().await?;
    for b in format!("get_metadata {ALL}\r\n").bytes() {
        c.send(&mut s, &[b]).await?;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    c.status(&mut s, Fine).await?;
    c.expect(&mut s, b"1000\r\n").await
}

/// CR and LF in separate segments.
async fn cr_and_lf_apart(c: &Ctx) -> Check {
    let mut s = c.connect().await?;
    c.send(&mut s, format!("get_metadata {EMPTY}\r").as_bytes())
        .await?;
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.send(&mut s, b"\n").await?;
    c.status(&mut s, Fine).await?;
    c.expect(&mut s, b"0\r\n").await
}

/// a 5 MiB file name is answered 202.
async fn huge_name(c: &Ctx) -> Check {
    let mut s = c.connect().await?;
    c.send(&mut s, b"get_metadata ").await?;
    let chunk = vec![b'a'; 64 * 1024];
    for _ in 0..80 {
        c.send(&mut s, &chunk).await?;
    }
    c.send(&mut s, b"\r\n").await?;
    c.status(&mut s, FileNotFound).await
}

/// an idle half-sent request does not delay another client.
async fn idle_client_delays_nobody(c: &Ctx) -> Check {
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

/// quit answers 0 OK and closes.
async fn quit_closes(c: &Ctx) -> Check {
    let mut s = c.ask(b"quit\r\n", Fine, b"").await?;
    c.expect_close(&mut s).await
}
