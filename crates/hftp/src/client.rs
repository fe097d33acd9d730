//! The HFTP client (spec: hftp.md, "Client"): list, metadata, and downloads of
//! whole files or ranges in several slices, over one or several connections at
//! once, streamed to disk (a slice is decoded as it arrives, never held whole).
//! Each status code becomes a clear one-line error, and every wait (connect,
//! send, each answer, each piece of a slice) is bounded by the client's `wait`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::error::Error;
use crate::output::{Marked, classify};
use crate::proto::{Encoding, Status};

/// Longest status or listing line accepted from a server.
const MAX_LINE: usize = 64 * 1024;
/// Longest wait for the server by default (connecting, sending, any answer).
pub const WAIT: Duration = Duration::from_secs(30);

/// One connection to an HFTP server.
#[derive(Debug)]
pub struct Client {
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
    wait: Duration,
}

/// `fut`, or [`Error::Timeout`] naming `what` after `wait`.
async fn bounded<T>(
    wait: Duration,
    what: &'static str,
    fut: impl Future<Output = Result<T, std::io::Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(wait, fut).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(Error::Timeout { what, wait }),
    }
}

impl Client {
    /// Connects to `addr` (`host:port`), waiting at most [`WAIT`] for anything.
    pub async fn connect(addr: &str) -> Result<Client, Error> {
        Self::connect_with(addr, WAIT).await
    }

    /// Connects to `addr`; no wait for the server (connecting, sending, any
    /// answer or piece of one) lasts longer than `wait`.
    pub async fn connect_with(addr: &str, wait: Duration) -> Result<Client, Error> {
        let s = netkit::connect::connect(addr, wait).await?;
        let (r, w) = s.into_split();
        Ok(Client {
            r: BufReader::with_capacity(256 * 1024, r),
            w,
            wait,
        })
    }

    async fn send(&mut self, line: &str) -> Result<(), Error> {
        let bytes = format!("{line}\r\n");
        bounded(
            self.wait,
            "sending a request (the server does not read)",
            self.w.write_all(bytes.as_bytes()),
        )
        .await
    }

    /// Reads one CR LF line (without it).
    async fn line(&mut self) -> Result<String, Error> {
        let mut buf = Vec::new();
        let read = bounded(
            self.wait,
            "waiting for the server's answer",
            (&mut self.r)
                .take(MAX_LINE as u64 + 2)
                .read_until(b'\n', &mut buf),
        )
        .await?;
        if read == 0 {
            return Err(Error::Protocol("the server closed the connection".into()));
        }
        match buf.strip_suffix(b"\r\n") {
            Some(line) => String::from_utf8(line.to_vec())
                .map_err(|_| Error::Protocol("a line that is not text".into())),
            None => Err(Error::Protocol(format!(
                "a line not ended by CR LF: {:?}",
                String::from_utf8_lossy(&buf)
            ))),
        }
    }

    /// Reads a status line; an error status becomes [`Error::Status`].
    async fn status(&mut self, about: &str) -> Result<(), Error> {
        let line = self.line().await?;
        let code = line
            .split(' ')
            .next()
            .and_then(|c| c.parse::<u16>().ok())
            .and_then(Status::from_code)
            .ok_or_else(|| Error::Protocol(format!("not a status line: {line:?}")))?;
        if code == Status::Ok {
            Ok(())
        } else {
            Err(Error::Status(code, about.to_string()))
        }
    }

    /// The wait this client allows for any one step.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// `get_file_listing`.
    pub async fn list(&mut self) -> Result<Vec<String>, Error> {
        self.send("get_file_listing").await?;
        self.status("get_file_listing").await?;
        let mut names = Vec::new();
        loop {
            let l = self.line().await?;
            if l.is_empty() {
                return Ok(names);
            }
            names.push(l);
        }
    }

    /// `get_metadata NAME`: the file's size.
    pub async fn metadata(&mut self, name: &str) -> Result<u64, Error> {
        self.send(&format!("get_metadata {name}")).await?;
        self.status(name).await?;
        let l = self.line().await?;
        l.parse()
            .map_err(|_| Error::Protocol(format!("a size that is not a number: {l:?}")))
    }

    /// `get_slice`: `size` bytes from `offset`, written to `out` as they are
    /// decoded; `progress` is told of every byte.
    pub async fn slice(
        &mut self,
        name: &str,
        offset: u64,
        size: u64,
        encoding: Encoding,
        out: &mut (impl AsyncWriteExt + Unpin),
        progress: &AtomicU64,
    ) -> Result<(), Error> {
        let suffix = if encoding == Encoding::Raw {
            " raw"
        } else {
            ""
        };
        self.send(&format!("get_slice {name} {offset} {size}{suffix}"))
            .await?;
        match self.status(name).await {
            // The names were fine for get_metadata: it is the fourth word a
            // server of the older lab does not know.
            Err(Error::Status(Status::InvalidArguments, _)) if encoding == Encoding::Raw => {
                return Err(Error::RawRefused(name.to_string()));
            }
            other => other?,
        }
        match encoding {
            Encoding::Raw => {
                let header = self.line().await?;
                let n: u64 = header
                    .strip_prefix("Content-Length: ")
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| {
                        Error::Protocol(format!("expected Content-Length, got {header:?}"))
                    })?;
                if n != size {
                    return Err(Error::Protocol(format!(
                        "asked for {size} bytes, the server announces {n}"
                    )));
                }
                if !self.line().await?.is_empty() {
                    return Err(Error::Protocol("no empty line after Content-Length".into()));
                }
                let mut left = n;
                while left > 0 {
                    let buf =
                        bounded(self.wait, "waiting for slice data", self.r.fill_buf()).await?;
                    if buf.is_empty() {
                        return Err(Error::Protocol(format!(
                            "the connection ended {left} bytes short"
                        )));
                    }
                    let take = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    out.write_all(&buf[..take]).await?;
                    self.r.consume(take);
                    left -= take as u64;
                    progress.fetch_add(take as u64, Ordering::Relaxed);
                }
                Ok(())
            }
            Encoding::Base64 => self.base64_line(size, out, progress).await,
        }
    }

    /// Decodes a base64 line of any length as it arrives.
    async fn base64_line(
        &mut self,
        size: u64,
        out: &mut (impl AsyncWriteExt + Unpin),
        progress: &AtomicU64,
    ) -> Result<(), Error> {
        let mut carry: Vec<u8> = Vec::with_capacity(4);
        let mut decoded: Vec<u8> = Vec::new();
        let mut total = 0u64;
        // Base64 characters still to come on the line (padded groups of 4).
        let mut left = size.div_ceil(3) * 4;
        loop {
            let buf = bounded(self.wait, "waiting for slice data", self.r.fill_buf()).await?;
            if buf.is_empty() {
                return Err(Error::Protocol(
                    "the connection ended inside a slice".into(),
                ));
            }
            // The line's length follows from the size asked. A CR inside it
            // means the server's line is shorter than the size it accepted:
            // say so now rather than wait for characters that will not come.
            // (memchr is SIMD; a byte-by-byte scan here was the bottleneck.)
            let take = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let chunk = &buf[..take];
            if let Some(at) = memchr::memchr(b'\r', chunk) {
                let expected = size.div_ceil(3) * 4;
                return Err(Error::Protocol(format!(
                    "the base64 line ended after {} characters; {size} bytes take {expected}",
                    expected - left + at as u64
                )));
            }
            let end = (take as u64 == left).then_some(take);
            left -= take as u64;
            // A carry (< 4 characters left by the last read) is completed to one
            // group from the front of this chunk and decoded alone; the rest of
            // the chunk decodes in place, its tail kept as the next carry.
            // (Joining carry and chunk copied most of the data once more.)
            let mut rest = chunk;
            if !carry.is_empty() {
                let take = (4 - carry.len()).min(rest.len());
                carry.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if carry.len() == 4 || end.is_some() {
                    let group = std::mem::take(&mut carry);
                    let n = decode_into(&group, &mut decoded)?;
                    out.write_all(&decoded[..n]).await?;
                    total += n as u64;
                    progress.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
            if carry.is_empty() {
                let whole = if end.is_some() {
                    rest.len()
                } else {
                    rest.len() / 4 * 4
                };
                carry.extend_from_slice(&rest[whole..]);
                if whole > 0 {
                    let n = decode_into(&rest[..whole], &mut decoded)?;
                    out.write_all(&decoded[..n]).await?;
                    total += n as u64;
                    progress.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
            let consumed = chunk.len();
            self.r.consume(consumed);
            if end.is_some() {
                // The CR LF.
                let mut crlf = [0u8; 2];
                bounded(
                    self.wait,
                    "waiting for slice data",
                    self.r.read_exact(&mut crlf),
                )
                .await?;
                if &crlf != b"\r\n" {
                    return Err(Error::Protocol("slice line not ended by CR LF".into()));
                }
                return if total == size {
                    Ok(())
                } else {
                    Err(Error::Protocol(format!(
                        "asked for {size} bytes, got {total}"
                    )))
                };
            }
        }
    }

    /// `quit`, then close.
    pub async fn quit(mut self) -> Result<(), Error> {
        self.send("quit").await?;
        self.status("quit").await
    }
}

/// What to download.
#[derive(Debug, Clone)]
pub struct Download {
    /// Server `host:port`.
    pub server: String,
    /// File name on the server.
    pub name: String,
    /// First byte (default 0).
    pub offset: u64,
    /// Bytes (default: to the end of the file).
    pub size: Option<u64>,
    /// Raw instead of base64.
    pub encoding: Encoding,
    /// Connections used at once.
    pub connections: usize,
    /// Bytes per `get_slice`.
    pub slice_size: u64,
    /// Longest wait for the server at any one step.
    pub wait: Duration,
}

/// Downloads to `path` in slices over `connections` connections; `progress`
/// counts bytes as they land. Returns the number of bytes written.
///
/// A path that exists and is not a regular file (`/dev/null`, a FIFO) cannot
/// be written at offsets: it gets the slices in order over one connection.
pub async fn download(d: &Download, path: &Path, progress: Arc<AtomicU64>) -> Result<u64, Error> {
    let output = |source| Error::Output {
        path: path.to_path_buf(),
        source,
    };
    if tokio::fs::metadata(path).await.is_ok_and(|m| !m.is_file()) {
        let mut out = tokio::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .await
            .map_err(output)?;
        return download_to(d, &mut out, path, &progress).await;
    }
    let size = if let Some(size) = d.size {
        size
    } else {
        let mut first = Client::connect_with(&d.server, d.wait).await?;
        let file_size = first.metadata(&d.name).await?;
        let _ = first.quit().await;
        file_size.saturating_sub(d.offset)
    };
    let out = tokio::fs::File::create(path).await.map_err(output)?;
    out.set_len(size).await.map_err(output)?;
    drop(out);
    let slices = slices(size, d.slice_size);
    let queue = Arc::new(std::sync::Mutex::new(slices.into_iter()));
    let mut workers = Vec::new();
    for _ in 0..d.connections.max(1) {
        let queue = Arc::clone(&queue);
        let progress = Arc::clone(&progress);
        let d = d.clone();
        let path = path.to_path_buf();
        workers.push(tokio::spawn(async move {
            let output = |source| Error::Output {
                path: path.clone(),
                source,
            };
            let mut c = Client::connect_with(&d.server, d.wait).await?;
            let mut f = tokio::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .await
                .map_err(output)?;
            loop {
                let next = queue
                    .lock()
                    .map_err(|_| Error::Protocol("worker panicked".into()))?
                    .next();
                let Some((at, len)) = next else { break };
                f.seek(std::io::SeekFrom::Start(at)).await.map_err(output)?;
                let mut w = tokio::io::BufWriter::with_capacity(1 << 20, Marked(&mut f));
                c.slice(&d.name, d.offset + at, len, d.encoding, &mut w, &progress)
                    .await
                    .map_err(|e| classify(e, &path))?;
                w.flush().await.map_err(output)?;
            }
            f.flush().await.map_err(output)?;
            let _ = c.quit().await;
            Ok::<(), Error>(())
        }));
    }
    for w in workers {
        w.await
            .map_err(|e| Error::Protocol(format!("download task: {e}")))??;
    }
    Ok(size)
}

/// Downloads to a stream (standard output, a pipe): the slices in order over
/// one connection. Returns the number of bytes written. An error writing `out`
/// is [`Error::Output`] naming it `label`, told apart from the socket's.
pub async fn download_to(
    d: &Download,
    out: &mut (impl AsyncWriteExt + Unpin),
    label: &Path,
    progress: &AtomicU64,
) -> Result<u64, Error> {
    let mut c = Client::connect_with(&d.server, d.wait).await?;
    let size = match d.size {
        Some(size) => size,
        None => c.metadata(&d.name).await?.saturating_sub(d.offset),
    };
    let mut w = tokio::io::BufWriter::with_capacity(1 << 20, Marked(out));
    let written = async {
        for (at, len) in slices(size, d.slice_size) {
            c.slice(&d.name, d.offset + at, len, d.encoding, &mut w, progress)
                .await?;
        }
        w.flush().await?;
        Ok(())
    };
    written.await.map_err(|e| classify(e, label))?;
    let _ = c.quit().await;
    Ok(size)
}

/// `(offset, length)` of each slice of `size` bytes cut every `slice` bytes.
fn slices(size: u64, slice: u64) -> Vec<(u64, u64)> {
    let slice = slice.max(1);
    (0..size.div_ceil(slice))
        .map(|i| (i * slice, (size - i * slice).min(slice)))
        .collect()
}

/// Decodes whole base64 groups into `decoded` (one buffer reused for every
/// chunk: fresh large allocations cost page faults); returns the bytes decoded.
fn decode_into(b: &[u8], decoded: &mut Vec<u8>) -> Result<usize, Error> {
    let need = b.len() / 4 * 3;
    if decoded.len() < need {
        decoded.resize(need, 0);
    }
    base64_simd::STANDARD
        .decode(b, base64_simd::Out::from_slice(&mut decoded[..need]))
        .map(|d| d.len())
        .map_err(|e| Error::Protocol(format!("bad base64: {e}")))
}
