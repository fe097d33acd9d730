//! The conformance checker (spec: hftp.md, "Conformance checker"): a suite of
//! rules run against any HFTP server, ours or anyone's. It writes its fixture
//! files into the directory that server serves, talks to the server only over
//! TCP, and reports each rule as passed or failed with what it saw.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest wait for any answer, by default.
pub const WAIT: Duration = Duration::from_secs(10);

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
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Every rule, in the order they run.
pub const RULES: &[&str] = &[
    "listing shows regular files, ends with an empty line",
    "get_metadata gives the size in decimal",
    "get_metadata of an empty file is 0",
    "get_slice base64 round-trips all 256 byte values",
    "get_slice raw sends Content-Length, an empty line, the bytes",
    "a zero-size slice is an empty line",
    "a slice may end exactly at end of file",
    "a 3 MB slice arrives whole",
    "help lists the five commands",
    "200 for an unknown command; the connection stays open",
    "201 for a wrong argument count (even for quit)",
    "201 for a file name with a path, before existence",
    "201 for an offset that is not all digits",
    "201 for a bad fourth word, before the bounds check",
    "202 for a missing file",
    "202 for a name too long for the file system",
    "203 for offset + size past the end",
    "203 for a number too large for an integer",
    "100 for a bare LF, at once, then close (FIN)",
    "101 for an empty line, then close",
    "pipelined requests are answered in order",
    "a request sent one byte per segment",
    "CR and LF in separate segments",
    "a 5 MiB file name is answered 202",
    "an idle half-sent request does not delay another client",
    "quit answers 0 OK and closes",
];

/// The result of one rule.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The rule.
    pub rule: &'static str,
    /// `None` if it passed, else what went wrong.
    pub failure: Option<String>,
}

/// The whole run.
#[derive(Debug, Clone)]
pub struct Report {
    /// One outcome per rule.
    pub outcomes: Vec<Outcome>,
}

impl Report {
    /// Rules failed.
    pub fn failures(&self) -> usize {
        self.outcomes.iter().filter(|o| o.failure.is_some()).count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for o in &self.outcomes {
            match &o.failure {
                None => writeln!(f, "PASS  {}", o.rule)?,
                Some(why) => writeln!(f, "FAIL  {}\n      {why}", o.rule)?,
            }
        }
        let failed = self.failures();
        writeln!(
            f,
            "{} passed, {failed} failed",
            self.outcomes.len() - failed
        )
    }
}

struct Ctx {
    server: String,
    wait: Duration,
}

type Check = Result<(), String>;

impl Ctx {
    async fn connect(&self) -> Result<TcpStream, String> {
        let s = tokio::time::timeout(self.wait, TcpStream::connect(&self.server))
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| format!("cannot connect: {e}"))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        Ok(s)
    }

    /// Sends `req` on a fresh connection and expects exactly `want` back.
    async fn ask(&self, req: &[u8], want: &[u8]) -> Result<TcpStream, String> {
        let mut s = self.connect().await?;
        send(&mut s, req).await?;
        expect(&mut s, want, self.wait).await?;
        Ok(s)
    }
}

async fn send(s: &mut TcpStream, bytes: &[u8]) -> Check {
    s.write_all(bytes)
        .await
        .map_err(|e| format!("send failed: {e}"))
}

fn show(b: &[u8]) -> String {
    let t = String::from_utf8_lossy(&b[..b.len().min(120)]).into_owned();
    format!("{t:?}{}", if b.len() > 120 { "..." } else { "" })
}

async fn expect(s: &mut TcpStream, want: &[u8], wait: Duration) -> Check {
    let mut got = vec![0u8; want.len()];
    let mut n = 0;
    while n < want.len() {
        match tokio::time::timeout(wait, s.read(&mut got[n..])).await {
            Err(_) => {
                return Err(format!(
                    "expected {}, got {} then silence",
                    show(want),
                    show(&got[..n])
                ));
            }
            Ok(Ok(0)) => {
                return Err(format!(
                    "expected {}, got {} then the connection closed",
                    show(want),
                    show(&got[..n])
                ));
            }
            Ok(Ok(k)) => n += k,
            Ok(Err(e)) => {
                return Err(format!(
                    "expected {}, got {} then {e}",
                    show(want),
                    show(&got[..n])
                ));
            }
        }
        if got[..n] != want[..n] {
            return Err(format!("expected {}, got {}", show(want), show(&got[..n])));
        }
    }
    Ok(())
}

async fn expect_close(s: &mut TcpStream, wait: Duration) -> Check {
    let mut b = [0u8; 64];
    match tokio::time::timeout(wait, s.read(&mut b)).await {
        Err(_) => Err("the connection stayed open".into()),
        Ok(Ok(0)) => Ok(()),
        Ok(Ok(n)) => Err(format!("extra bytes instead of a close: {}", show(&b[..n]))),
        Ok(Err(e)) => Err(format!("closed with an error instead of FIN: {e}")),
    }
}

/// Writes the fixtures into `dir`, then runs every rule against `server`,
/// waiting at most `wait` for any one answer.
pub async fn run(server: &str, dir: &Path, wait: Duration) -> Result<Report, std::io::Error> {
    std::fs::create_dir_all(dir)?;
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes);
    write(ALL, &all_bytes())?;
    write(EMPTY, b"")?;
    write(BIG, &big_bytes())?;
    let ctx = Ctx {
        server: server.to_string(),
        wait,
    };
    let mut outcomes = Vec::new();
    for (i, rule) in RULES.iter().enumerate() {
        let failure = rule_n(i, &ctx, dir).await.err();
        outcomes.push(Outcome { rule, failure });
    }
    Ok(Report { outcomes })
}

async fn rule_n(i: usize, c: &Ctx, dir: &Path) -> Check {
    let status = |code: &str| format!("{code}\r\n").into_bytes();
    match i {
        0 => {
            let mut s = c.connect().await?;
            send(&mut s, b"get_file_listing\r\n").await?;
            let mut all = Vec::new();
            let _ = tokio::time::timeout(Duration::from_millis(500), async {
                let mut buf = vec![0u8; 65536];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    all.extend_from_slice(&buf[..n]);
                    if all.ends_with(b"\r\n\r\n") {
                        break;
                    }
                }
            })
            .await;
            let text = String::from_utf8_lossy(&all);
            if !text.starts_with("0 OK\r\n") || !text.ends_with("\r\n\r\n") {
                return Err(format!("not a listing: {}", show(&all)));
            }
            for f in [ALL, EMPTY, BIG] {
                if !text.lines().any(|l| l == f) {
                    return Err(format!("{f} missing from {}", show(&all)));
                }
            }
            Ok(())
        }
        1 => c
            .ask(
                format!("get_metadata {ALL}\r\n").as_bytes(),
                b"0 OK\r\n1000\r\n",
            )
            .await
            .map(drop),
        2 => c
            .ask(
                format!("get_metadata {EMPTY}\r\n").as_bytes(),
                b"0 OK\r\n0\r\n",
            )
            .await
            .map(drop),
        3 => c
            .ask(
                format!("get_slice {ALL} 0 1000\r\n").as_bytes(),
                format!("0 OK\r\n{}\r\n", b64(&all_bytes())).as_bytes(),
            )
            .await
            .map(drop),
        4 => {
            let mut want = b"0 OK\r\nContent-Length: 300\r\n\r\n".to_vec();
            want.extend_from_slice(&all_bytes()[100..400]);
            c.ask(format!("get_slice {ALL} 100 300 raw\r\n").as_bytes(), &want)
                .await
                .map(drop)
        }
        5 => c
            .ask(
                format!("get_slice {ALL} 7 0\r\n").as_bytes(),
                b"0 OK\r\n\r\n",
            )
            .await
            .map(drop),
        6 => c
            .ask(
                format!("get_slice {ALL} 995 5\r\n").as_bytes(),
                format!("0 OK\r\n{}\r\n", b64(&all_bytes()[995..])).as_bytes(),
            )
            .await
            .map(drop),
        7 => c
            .ask(
                format!("get_slice {BIG} 0 {BIG_LEN}\r\n").as_bytes(),
                format!("0 OK\r\n{}\r\n", b64(&big_bytes())).as_bytes(),
            )
            .await
            .map(drop),
        8 => c
            .ask(
                b"help\r\n",
                b"0 OK\r\nget_file_listing\r\nget_metadata\r\nget_slice\r\nhelp\r\nquit\r\n\r\n",
            )
            .await
            .map(drop),
        9 => {
            let mut s = c
                .ask(b"no_such_thing\r\n", &status("200 NO SUCH COMMAND"))
                .await?;
            send(&mut s, format!("get_metadata {EMPTY}\r\n").as_bytes()).await?;
            expect(&mut s, b"0 OK\r\n0\r\n", c.wait).await
        }
        10 => c
            .ask(
                b"quit now\r\n",
                &status("201 INVALID ARGUMENTS FOR COMMAND"),
            )
            .await
            .map(drop),
        11 => c
            .ask(
                b"get_metadata ../etc-passwd\r\n",
                &status("201 INVALID ARGUMENTS FOR COMMAND"),
            )
            .await
            .map(drop),
        12 => c
            .ask(
                format!("get_slice {ALL} -1 2\r\n").as_bytes(),
                &status("201 INVALID ARGUMENTS FOR COMMAND"),
            )
            .await
            .map(drop),
        13 => c
            .ask(
                format!("get_slice {ALL} 1 99999 hex\r\n").as_bytes(),
                &status("201 INVALID ARGUMENTS FOR COMMAND"),
            )
            .await
            .map(drop),
        14 => c
            .ask(
                b"get_metadata hftp-check-no-such-file\r\n",
                &status("202 FILE NOT FOUND"),
            )
            .await
            .map(drop),
        15 => c
            .ask(
                format!("get_metadata {}\r\n", "n".repeat(300)).as_bytes(),
                &status("202 FILE NOT FOUND"),
            )
            .await
            .map(drop),
        16 => c
            .ask(
                format!("get_slice {ALL} 990 11\r\n").as_bytes(),
                &status("203 OFFSET EXCEEDS FILE SIZE"),
            )
            .await
            .map(drop),
        17 => c
            .ask(
                format!("get_slice {ALL} 99999999999999999999999999 1\r\n").as_bytes(),
                &status("203 OFFSET EXCEEDS FILE SIZE"),
            )
            .await
            .map(drop),
        18 => {
            let mut s = c.ask(b"get_file_listing\n", &status("100 BAD EOL")).await?;
            expect_close(&mut s, c.wait).await
        }
        19 => {
            let mut s = c.ask(b"\r\n", &status("101 BAD REQUEST")).await?;
            expect_close(&mut s, c.wait).await
        }
        20 => {
            let want = format!(
                "0 OK\r\n1000\r\n202 FILE NOT FOUND\r\n0 OK\r\n{}\r\n",
                b64(&all_bytes()[1..3])
            );
            c.ask(
                format!("get_metadata {ALL}\r\nget_metadata nope-x\r\nget_slice {ALL} 1 2\r\n")
                    .as_bytes(),
                want.as_bytes(),
            )
            .await
            .map(drop)
        }
        21 => {
            let mut s = c.connect().await?;
            for b in format!("get_metadata {ALL}\r\n").bytes() {
                send(&mut s, &[b]).await?;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            expect(&mut s, b"0 OK\r\n1000\r\n", c.wait).await
        }
        22 => {
            let mut s = c.connect().await?;
            send(&mut s, format!("get_metadata {EMPTY}\r").as_bytes()).await?;
            tokio::time::sleep(Duration::from_millis(50)).await;
            send(&mut s, b"\n").await?;
            expect(&mut s, b"0 OK\r\n0\r\n", c.wait).await
        }
        23 => {
            let mut s = c.connect().await?;
            send(&mut s, b"get_metadata ").await?;
            let chunk = vec![b'a'; 64 * 1024];
            for _ in 0..80 {
                send(&mut s, &chunk).await?;
            }
            send(&mut s, b"\r\n").await?;
            expect(&mut s, &status("202 FILE NOT FOUND"), c.wait).await
        }
        24 => {
            let mut idle = c.connect().await?;
            send(&mut idle, b"get_metad").await?;
            let (req, want) = (
                format!("get_slice {BIG} 0 {BIG_LEN}\r\n"),
                format!("0 OK\r\n{}\r\n", b64(&big_bytes())),
            );
            tokio::time::timeout(c.wait, c.ask(req.as_bytes(), want.as_bytes()))
                .await
                .map_err(|_| "the other client was kept waiting".to_string())??;
            send(&mut idle, format!("ata {EMPTY}\r\n").as_bytes()).await?;
            expect(&mut idle, b"0 OK\r\n0\r\n", c.wait).await
        }
        25 => {
            let mut s = c.ask(b"quit\r\n", b"0 OK\r\n").await?;
            expect_close(&mut s, c.wait).await
        }
        _ => Err(format!("no rule {i} (fixtures in {})", dir.display())),
    }
}
