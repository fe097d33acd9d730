//! Talking to the server under test: every step bounded by the checker's
//! wait, status lines graded as the course grades them (by code), with any
//! other text reported as a warning.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::proto::Status;

/// A rule's verdict so far: `Err` is the failure.
pub type Check = Result<(), String>;

/// The server under test, the wait, and the warnings of the rule running.
#[derive(Debug)]
pub struct Ctx {
    /// `host:port`.
    pub server: String,
    /// Longest wait for any one step.
    pub wait: Duration,
    warnings: std::sync::Mutex<Vec<String>>,
}

/// Longest status line read before giving up on it.
const STATUS_MAX: usize = 256;

impl Ctx {
    /// A context for `server`.
    pub fn new(server: &str, wait: Duration) -> Self {
        Self {
            server: server.to_string(),
            wait,
            warnings: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Notes a difference the course does not grade.
    pub fn warn(&self, w: String) {
        if let Ok(mut ws) = self.warnings.lock()
            && !ws.contains(&w)
        {
            ws.push(w);
        }
    }

    /// The warnings noted since the last call.
    pub fn take_warnings(&self) -> Vec<String> {
        self.warnings
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default()
    }

    /// A fresh connection.
    pub async fn connect(&self) -> Result<TcpStream, String> {
        netkit::connect::connect(&self.server, self.wait)
            .await
            .map_err(|e| e.to_string())
    }

    /// Sends `req` on a fresh connection, expects status `status` and then
    /// exactly `body`; returns the connection.
    pub async fn ask(&self, req: &[u8], status: Status, body: &[u8]) -> Result<TcpStream, String> {
        let mut s = self.connect().await?;
        self.send(&mut s, req).await?;
        self.status(&mut s, status).await?;
        self.expect(&mut s, body).await?;
        Ok(s)
    }

    /// Writes all of `bytes`, within the wait.
    pub async fn send(&self, s: &mut TcpStream, bytes: &[u8]) -> Check {
        match tokio::time::timeout(self.wait, s.write_all(bytes)).await {
            Err(_) => Err(format!(
                "no answer within {:?}: the server stopped reading the request",
                self.wait
            )),
            Ok(r) => r.map_err(|e| format!("send failed: {e}")),
        }
    }

    /// Reads a status line and checks its code; a text other than the
    /// protocol's is a warning, not a failure (the course's client reads the
    /// code only).
    pub async fn status(&self, s: &mut TcpStream, want: Status) -> Check {
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            if line.len() > STATUS_MAX {
                return Err(format!(
                    "expected {}, got {} without CR LF",
                    show(want.line().as_bytes()),
                    show(&line)
                ));
            }
            match tokio::time::timeout(self.wait, s.read(&mut b)).await {
                Err(_) => {
                    return Err(format!(
                        "expected {}, got {} then no answer within {:?}",
                        show(want.line().as_bytes()),
                        show(&line),
                        self.wait
                    ));
                }
                Ok(Ok(0)) => {
                    return Err(format!(
                        "expected {}, got {} then the connection closed",
                        show(want.line().as_bytes()),
                        show(&line)
                    ));
                }
                Ok(Ok(_)) => line.push(b[0]),
                Ok(Err(e)) => {
                    return Err(format!(
                        "expected {}, got {} then {e}",
                        show(want.line().as_bytes()),
                        show(&line)
                    ));
                }
            }
        }
        let text = &line[..line.len() - 2];
        let code = text.split(|&b| b == b' ').next().unwrap_or_default();
        if code != want.code().to_string().as_bytes() {
            return Err(format!(
                "expected {}, got {}",
                show(want.line().as_bytes()),
                show(&line)
            ));
        }
        if line != want.line().as_bytes() {
            self.warn(format!(
                "status line {} differs from the protocol's {}",
                show(&line),
                show(want.line().as_bytes())
            ));
        }
        Ok(())
    }

    /// Reads exactly `want`, failing at the first difference, on silence, or
    /// on a close.
    pub async fn expect(&self, s: &mut TcpStream, want: &[u8]) -> Check {
        let mut got = vec![0u8; want.len()];
        let mut n = 0;
        while n < want.len() {
            match tokio::time::timeout(self.wait, s.read(&mut got[n..])).await {
                Err(_) => {
                    return Err(format!(
                        "expected {}, got {} then no answer within {:?}",
                        show(want),
                        show(&got[..n]),
                        self.wait
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

    /// Reads until the connection closes with FIN (nothing more may come).
    pub async fn expect_close(&self, s: &mut TcpStream) -> Check {
        let mut b = [0u8; 64];
        match tokio::time::timeout(self.wait, s.read(&mut b)).await {
            Err(_) => Err(format!("the connection stayed open for {:?}", self.wait)),
            Ok(Ok(0)) => Ok(()),
            Ok(Ok(n)) => Err(format!("extra bytes instead of a close: {}", show(&b[..n]))),
            Ok(Err(e)) => Err(format!("closed with an error instead of FIN: {e}")),
        }
    }

    /// Reads everything up to and including `end` (at most `max` bytes).
    pub async fn read_until(
        &self,
        s: &mut TcpStream,
        end: &[u8],
        max: usize,
    ) -> Result<Vec<u8>, String> {
        let mut all = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        while !all.ends_with(end) {
            if all.len() > max {
                return Err(format!(
                    "more than {max} bytes without the end: {}",
                    show(&all)
                ));
            }
            match tokio::time::timeout(self.wait, s.read(&mut buf)).await {
                Err(_) => {
                    return Err(format!(
                        "got {} then no answer within {:?}",
                        show(&all),
                        self.wait
                    ));
                }
                Ok(Ok(0)) => return Err(format!("got {} then the connection closed", show(&all))),
                Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
                Ok(Err(e)) => return Err(format!("got {} then {e}", show(&all))),
            }
        }
        Ok(all)
    }
}

/// Bytes as a short quoted string for a report.
pub fn show(b: &[u8]) -> String {
    let t = String::from_utf8_lossy(&b[..b.len().min(120)]).into_owned();
    format!("{t:?}{}", if b.len() > 120 { "..." } else { "" })
}
