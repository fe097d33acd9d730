//! The HFTP server (spec: hftp.md): a drop-in replacement for the course's.
//!
//! One task per connection on the netkit runtime; requests are read through
//! [`netkit::LineReader`] with a [`RequestSink`] (constant memory per connection
//! whatever the line length), answered in order (pipelining), and a connection
//! flushes its answers when no further complete request is waiting. The data
//! directory is resolved on every request. Slices are streamed in chunks whose
//! length is a multiple of 3 (so base64 needs no padding until the end), so a
//! 4 GiB slice costs the same small buffer as a 4 KiB one.
//!
//! Fatal statuses (100, 101, 199) and `quit` close gracefully: the answer, then
//! FIN, then whatever the client still sends is read and dropped for a moment,
//! so the close is not turned into a reset by unread input.

use std::io::{ErrorKind, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use futures_util::StreamExt;
use netkit::server::{Conn, ServeReport, ServerConfig, ServerStats, serve};
use netkit::{LineReader, log_action};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio_util::codec::FramedRead;

use crate::proto::{
    Command, Encoding, NAME_MAX, Status, check_bounds, help_body, parse, requestable,
};
use crate::request::RequestSink;

/// Bytes read from a file at once: a multiple of 3, so every chunk but the last
/// encodes to base64 without padding.
pub const CHUNK: usize = 3 * 64 * 1024;
/// How long a fatal close waits for the client's remaining input.
const DRAIN: Duration = Duration::from_secs(1);

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The shared directory (resolved on every request).
    pub datadir: PathBuf,
    /// A client silent this long is closed.
    pub idle_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Config {
    /// Serve `datadir`, 60 s idle timeout, 10,000 connections.
    pub fn new(datadir: impl Into<PathBuf>) -> Self {
        Self {
            datadir: datadir.into(),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
        }
    }
}

/// Serves until `shutdown` completes.
pub async fn run(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future,
) -> ServeReport {
    let mut rt = ServerConfig::new("hftp");
    rt.max_connections = config.max_connections;
    rt.shutdown_grace = Duration::from_secs(5);
    let config = Arc::new(config);
    serve(
        listener,
        rt,
        Arc::new(ServerStats::default()),
        move |s, c| handle(s, c, Arc::clone(&config)),
        shutdown,
    )
    .await
}

/// What happens after a response.
enum Next {
    Continue,
    /// Close gracefully (fatal status or `quit`).
    Close,
    /// The client is gone or the stream cannot be completed: drop at once.
    Abort,
}

type Writer = BufWriter<OwnedWriteHalf>;

async fn handle(stream: TcpStream, conn: Conn, config: Arc<Config>) {
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    let mut lines = FramedRead::new(r, LineReader::with_sink(RequestSink::default()));
    let mut w = BufWriter::with_capacity(64 * 1024, w);
    let next = loop {
        let item = tokio::select! {
            () = conn.shutdown.cancelled() => break Next::Close,
            item = tokio::time::timeout(config.idle_timeout, lines.next()) => item,
        };
        let parsed = match item {
            Err(_) | Ok(None) => break Next::Abort,
            Ok(Some(Ok(line))) => parse(&line),
            Ok(Some(Err(netkit::Error::BareLf { .. }))) => Err(Status::BadEol),
            Ok(Some(Err(e))) if e.is_disconnect() => break Next::Abort,
            Ok(Some(Err(_))) => Err(Status::BadRequest),
        };
        let next = match parsed {
            Ok(cmd) => execute(cmd, &config.datadir, &mut w).await,
            Err(status) => respond_status(status, &mut w).await,
        };
        match next {
            Next::Continue => {
                // Answers to pipelined requests share a write.
                if !lines.read_buffer().contains(&b'\n') && w.flush().await.is_err() {
                    break Next::Abort;
                }
            }
            other => break other,
        }
    };
    if let Next::Close = next {
        let _ = w.flush().await;
        let mut w = w.into_inner();
        let _ = w.shutdown().await;
        drain(lines.into_inner()).await;
    }
}

/// Reads and drops what the client still sends, for a moment, so closing the
/// socket sends FIN rather than RST.
async fn drain(mut r: impl AsyncRead + Unpin) {
    let mut buf = vec![0u8; 16 * 1024];
    let _ = tokio::time::timeout(DRAIN, async {
        while let Ok(n) = r.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

async fn respond_status(status: Status, w: &mut Writer) -> Next {
    if w.write_all(status.line().as_bytes()).await.is_err() {
        return Next::Abort;
    }
    if status.is_fatal() {
        Next::Close
    } else {
        Next::Continue
    }
}

async fn ok_with(body: &[u8], w: &mut Writer) -> Next {
    let mut all = Status::Ok.line().into_bytes();
    all.extend_from_slice(body);
    if w.write_all(&all).await.is_err() {
        Next::Abort
    } else {
        Next::Continue
    }
}

/// The status for a failed look-up of a requestable name.
fn lookup_error(e: &std::io::Error) -> Status {
    match e.kind() {
        ErrorKind::NotFound | ErrorKind::InvalidFilename | ErrorKind::NotADirectory => {
            Status::FileNotFound
        }
        _ => Status::InternalError,
    }
}

/// Checks 5 (exists, regular, name not too long) and returns the file's size.
async fn regular_file(dir: &Path, name: &str) -> Result<(PathBuf, u64), Status> {
    if name.len() > NAME_MAX {
        return Err(Status::FileNotFound);
    }
    let path = dir.join(name);
    match tokio::fs::metadata(&path).await {
        Ok(m) if m.is_file() => Ok((path, m.len())),
        Ok(_) => Err(Status::FileNotFound),
        Err(e) => Err(lookup_error(&e)),
    }
}

async fn execute(cmd: Command, dir: &Path, w: &mut Writer) -> Next {
    match cmd {
        Command::Help => ok_with(help_body().as_bytes(), w).await,
        Command::Quit => match w.write_all(Status::Ok.line().as_bytes()).await {
            Ok(()) => Next::Close,
            Err(_) => Next::Abort,
        },
        Command::List => match listing(dir).await {
            Ok(body) => ok_with(body.as_bytes(), w).await,
            Err(status) => respond_status(status, w).await,
        },
        Command::Metadata(name) => match regular_file(dir, &name).await {
            Ok((_, size)) => ok_with(format!("{size}\r\n").as_bytes(), w).await,
            Err(status) => respond_status(status, w).await,
        },
        Command::Slice {
            name,
            offset,
            size,
            encoding,
        } => {
            let (path, file_size) = match regular_file(dir, &name).await {
                Ok(x) => x,
                Err(status) => return respond_status(status, w).await,
            };
            let (offset, size) = match check_bounds(offset, size, file_size) {
                Ok(x) => x,
                Err(status) => return respond_status(status, w).await,
            };
            slice(&path, offset, size, encoding, w).await
        }
    }
}

/// The directory as it is now: regular files a client could request, sorted.
/// A directory that does not exist (deleted for a moment) lists as empty.
async fn listing(dir: &Path) -> Result<String, Status> {
    let mut names = Vec::new();
    let mut rd = match tokio::fs::read_dir(dir).await {
        Ok(rd) => rd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok("\r\n".into()),
        Err(_) => return Err(Status::InternalError),
    };
    loop {
        match rd.next_entry().await {
            Ok(Some(entry)) => {
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                if !requestable(&name) {
                    continue;
                }
                if tokio::fs::metadata(entry.path())
                    .await
                    .is_ok_and(|m| m.is_file())
                {
                    names.push(name);
                }
            }
            Ok(None) => break,
            Err(_) => return Err(Status::InternalError),
        }
    }
    names.sort();
    let mut body = String::new();
    for n in names {
        body.push_str(&n);
        body.push_str("\r\n");
    }
    body.push_str("\r\n");
    Ok(body)
}

/// Streams `size` bytes from `offset`: base64 on one line, or raw with a
/// `Content-Length` header. Opening failure is 199; if the file turns out
/// shorter than announced once bytes are on their way, the connection is cut
/// (a client must never take a short body for a whole one).
async fn slice(path: &Path, offset: u64, size: u64, encoding: Encoding, w: &mut Writer) -> Next {
    let mut file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) => return respond_status(lookup_error(&e), w).await,
    };
    if offset > 0 && file.seek(SeekFrom::Start(offset)).await.is_err() {
        return respond_status(Status::InternalError, w).await;
    }
    // Read the first chunk before answering: an unreadable file is still a 199.
    let mut buf = vec![0u8; CHUNK.min(usize::try_from(size).unwrap_or(CHUNK)).max(1)];
    let Ok(first) = read_full(&mut file, &mut buf, size).await else {
        return respond_status(Status::InternalError, w).await;
    };
    if (first as u64) < size.min(buf.len() as u64) {
        return respond_status(Status::InternalError, w).await;
    }
    let header = match encoding {
        Encoding::Base64 => Status::Ok.line(),
        Encoding::Raw => format!("{}Content-Length: {size}\r\n\r\n", Status::Ok.line()),
    };
    if w.write_all(header.as_bytes()).await.is_err() {
        return Next::Abort;
    }
    let mut encoded = Vec::with_capacity(CHUNK / 3 * 4 + 4);
    let mut left = size;
    let mut n = first;
    loop {
        let part = &buf[..n];
        let written = match encoding {
            Encoding::Base64 => {
                encoded.resize(part.len().div_ceil(3) * 4, 0);
                match base64::engine::general_purpose::STANDARD.encode_slice(part, &mut encoded) {
                    Ok(len) => w.write_all(&encoded[..len]).await,
                    Err(_) => return Next::Abort,
                }
            }
            Encoding::Raw => w.write_all(part).await,
        };
        if written.is_err() {
            return Next::Abort;
        }
        left -= n as u64;
        if left == 0 {
            break;
        }
        n = match read_full(&mut file, &mut buf, left).await {
            Ok(got) if got > 0 && (got == buf.len() || got as u64 == left) => got,
            // The file shrank under us, or cannot be read any more.
            _ => {
                log_action!(
                    warn,
                    "hftp_slice",
                    Fail,
                    file = path.display(),
                    error = "file shorter than announced; connection cut"
                );
                return Next::Abort;
            }
        };
    }
    if encoding == Encoding::Base64 && w.write_all(b"\r\n").await.is_err() {
        return Next::Abort;
    }
    Next::Continue
}

/// Reads until `buf` is full or `limit` bytes were read or EOF.
async fn read_full(
    file: &mut tokio::fs::File,
    buf: &mut [u8],
    limit: u64,
) -> std::io::Result<usize> {
    let want = buf.len().min(usize::try_from(limit).unwrap_or(usize::MAX));
    let mut got = 0;
    while got < want {
        let n = file.read(&mut buf[got..want]).await?;
        if n == 0 {
            break;
        }
        got += n;
    }
    Ok(got)
}
