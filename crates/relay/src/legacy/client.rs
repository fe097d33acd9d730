//! Our client against the seed's original chat server (issue #17; docs:
//! relay.md, "The original chat").
//!
//! It prints each frame's payload once and in order (the first frame it sees,
//! then only the number after the last printed; the server's resends of a
//! frame are acknowledged again, not printed again), acknowledges every frame,
//! and sends each line as one frame, the next only once the previous has come
//! back through the server's log: the original server reads each `recv` as one
//! frame, so two lines in flight could reach it as one. For the same reason
//! no two of its writes (lines and acknowledgements) go out closer than `gap`:
//! an acknowledgement glued to the next line would lose the line (the server
//! would read it all as the acknowledgement), a line glued to an
//! acknowledgement would carry the acknowledgement's bytes in its text. TCP
//! gives no guarantee; the gap makes the merge as unlikely as the original's
//! own design allows. A server that sends nothing for `silence` while a line
//! waits for its echo is reported as stopped.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::frame::{self, Frame, Reader};
use crate::Error;

/// How the client runs.
#[derive(Debug, Clone)]
pub struct LegacyClientConfig {
    /// The original server, `host:port`.
    pub server: String,
    /// The name in front of every line (`name: text`).
    pub name: String,
    /// A server silent this long while a line waits for its echo has stopped.
    pub silence: Duration,
    /// Quiet time that ends a frame with nothing after it.
    pub quiet: Duration,
    /// Least time between two of our writes.
    pub gap: Duration,
}

impl LegacyClientConfig {
    /// `name` on `server`; 10 s of silence is a stopped server.
    pub fn new(server: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            server: server.into(),
            name: name.into(),
            silence: Duration::from_secs(10),
            quiet: Duration::from_millis(20),
            gap: Duration::from_millis(20),
        }
    }
}

/// Writes one frame, no sooner than `gap` after the previous write.
async fn write_spaced(
    w: &mut (impl AsyncWriteExt + Unpin),
    bytes: &[u8],
    last: &mut Option<Instant>,
    gap: Duration,
) -> Result<(), Error> {
    if let Some(at) = *last {
        tokio::time::sleep_until(at + gap).await;
    }
    w.write_all(bytes).await?;
    *last = Some(Instant::now());
    Ok(())
}

/// Runs until `lines` ends and its last line has come back, showing every
/// new payload with `show`.
pub async fn run(
    cfg: &LegacyClientConfig,
    mut lines: mpsc::Receiver<String>,
    mut show: impl FnMut(u64, &str),
) -> Result<(), Error> {
    let stream = netkit::connect::connect(&cfg.server, cfg.silence).await?;
    let _ = stream.set_nodelay(true);
    let (mut r, mut w) = stream.into_split();
    let mut reader = Reader::new();
    let mut buf = vec![0u8; 4096];
    let mut last: Option<u64> = None;
    // The payload of the line sent and not yet seen back.
    let mut waiting: Option<String> = None;
    let mut input_open = true;
    let mut out = BytesMut::new();
    let mut wrote: Option<Instant> = None;
    loop {
        if waiting.is_none() && !input_open {
            return Ok(());
        }
        let wait = if reader.pending() >= frame::HEADER {
            cfg.quiet
        } else {
            cfg.silence
        };
        let quiet = tokio::select! {
            line = lines.recv(), if waiting.is_none() && input_open => {
                match line {
                    Some(line) => {
                        let payload = format!("{}: {line}", cfg.name);
                        out.clear();
                        frame::encode(last.unwrap_or(0), false, &payload, &mut out);
                        write_spaced(&mut w, &out, &mut wrote, cfg.gap).await?;
                        waiting = Some(payload);
                    }
                    None => input_open = false,
                }
                continue;
            }
            got = tokio::time::timeout(wait, r.read(&mut buf)) => match got {
                Ok(Ok(0)) => {
                    return Err(Error::Io(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the original server closed the connection",
                    )));
                }
                Ok(Ok(n)) => {
                    reader.feed(&buf[..n]);
                    false
                }
                Ok(Err(e)) => return Err(e.into()),
                Err(_) if wait == cfg.quiet => true,
                Err(_) if waiting.is_some() => {
                    return Err(Error::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "the original server stopped answering: nothing for {:?} while a line waits for its echo",
                            cfg.silence
                        ),
                    )));
                }
                Err(_) => false,
            },
        };
        while let Some(f) = reader.next(quiet)? {
            let Frame::Data { number, payload } = f else {
                continue;
            };
            out.clear();
            frame::encode(number, true, "", &mut out);
            write_spaced(&mut w, &out, &mut wrote, cfg.gap).await?;
            if last.is_none_or(|l| number == l + 1) {
                last = Some(number);
                show(number, &payload);
                if waiting.as_deref() == Some(payload.as_str()) {
                    waiting = None;
                }
            }
        }
    }
}
