//! The HFTP server (spec: hftp.md): a drop-in replacement for the course's.
//!
//! One task per connection on the netkit runtime; requests are read through
//! [`netkit::LineReader`] with a [`RequestSink`] (constant memory per connection
//! whatever the line length), answered in order (pipelining), and a connection
//! flushes its answers when no further complete request is waiting. The data
//! directory is resolved on every request, and nothing outside it is ever
//! listed or served ([`crate::resolve`]). Slices are streamed with bounded
//! memory and threads ([`crate::slice`]). A connection is marked busy while it
//! answers and idle while it waits, so at the connection limit the oldest idle
//! one makes room for a new client ([`netkit::activity`]).
//!
//! Fatal statuses (100, 101, 199) and `quit` close gracefully: the answer, then
//! FIN, then whatever the client still sends is read and dropped for a moment,
//! so the close is not turned into a reset by unread input.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use netkit::server::{Conn, ServeReport, ServerConfig, ServerStats, serve};
use netkit::{LineReader, StallGuard};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio_util::codec::FramedRead;

use crate::proto::{Command, NAME_MAX, Status, check_bounds, help_body, parse, requestable};
use crate::request::RequestSink;
use crate::resolve::{Found, inside_target, lookup};
use crate::slice::{Budget, Sent};
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
    /// What slices in progress may hold, server-wide.
    pub slices: Budget,
    /// At the connection limit, a connection idle this long makes room for a
    /// new client (`None`: new clients wait).
    pub evict_idle_after: Option<Duration>,
}

impl Config {
    /// Serve `datadir`, 60 s idle timeout, 10,000 connections, the default
    /// slice budget.
    pub fn new(datadir: impl Into<PathBuf>) -> Self {
        Self {
            datadir: datadir.into(),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            slices: Budget::default(),
            evict_idle_after: Some(Duration::from_secs(1)),
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
    rt.evict_idle_after = config.evict_idle_after;
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

/// Answers go through a buffer and a guard that cuts a client that stops
/// reading for the idle timeout (it would otherwise hold its connection, and a
/// slot of the server, for as long as it likes).
type Writer = BufWriter<StallGuard<OwnedWriteHalf>>;

async fn handle(stream: TcpStream, conn: Conn, config: Arc<Config>) {
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    let mut lines = FramedRead::new(r, LineReader::with_sink(RequestSink::default()));
    let mut w = BufWriter::with_capacity(64 * 1024, StallGuard::new(w, config.idle_timeout));
    // One shutdown future and one idle timer for the whole connection: the
    // timer is moved only when it fires early (a request came since it was
    // set), not re-registered for every request (that showed in profiles).
    let shutdown = conn.shutdown.cancelled();
    tokio::pin!(shutdown);
    let idle = tokio::time::sleep(config.idle_timeout);
    tokio::pin!(idle);
    let mut last_request = tokio::time::Instant::now();
    // The path of the file a request names, rebuilt in place for each.
    let mut path = PathBuf::new();
    let next = loop {
        // A waiting request first: then nothing else is polled (the shutdown
        // future showed in profiles). Shutdown is not starved by a client that
        // keeps sending: the socket's cooperative budget makes `lines` pending
        // after a bounded number of reads, and the runtime's grace period ends it.
        let item = tokio::select! {
            biased;
            item = lines.next() => item,
            () = &mut shutdown => break Next::Close,
            () = &mut idle => {
                let quiet_until = last_request + config.idle_timeout;
                if tokio::time::Instant::now() >= quiet_until {
                    break Next::Abort;
                }
                idle.as_mut().reset(quiet_until);
                continue;
            }
        };
        conn.activity.busy();
        let next = match item {
            None => break Next::Abort,
            Some(Ok(line)) => {
                let next = match parse(&line) {
                    Ok(cmd) => execute(cmd, &config, &mut path, &mut w).await,
                    Err(status) => respond_status(status, &mut w).await,
                };
                lines.decoder_mut().sink_mut().recycle(line);
                next
            }
            Some(Err(netkit::Error::BareLf { .. })) => respond_status(Status::BadEol, &mut w).await,
            Some(Err(e)) if e.is_disconnect() => break Next::Abort,
            Some(Err(_)) => respond_status(Status::BadRequest, &mut w).await,
        };
        // Idle time counts from the end of the last answer (a long slice is not idleness).
        last_request = tokio::time::Instant::now();
        match next {
            Next::Continue => {
                // Answers to pipelined requests share a write.
                if !lines.read_buffer().contains(&b'\n') {
                    if w.flush().await.is_err() {
                        break Next::Abort;
                    }
                    conn.activity.idle();
                }
            }
            other => break other,
        }
    };
    if let Next::Close = next {
        let _ = w.flush().await;
        let mut w = w.into_inner();
        let _ = w.shutdown().await;
        // A connection closed to make room was idle: nothing of its is unread,
        // and its slot is wanted now, not after the drain.
        if !conn.activity.evicted() {
            drain(lines.into_inner()).await;
        }
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
    if w.write_all(Status::Ok.line().as_bytes()).await.is_err() || w.write_all(body).await.is_err()
    {
        Next::Abort
    } else {
        Next::Continue
    }
}

/// Checks 5 (exists, regular, inside the directory, name not too long): sets
/// `path` to the file `name` means in `dir` and returns its size.
///
/// An `lstat` of a local file takes microseconds, far less than the thread hop
/// of `tokio::fs`; doing it inline is what lets small requests run at hundreds
/// of thousands per second. `path` is reused so a request allocates nothing.
fn regular_file(dir: &Path, name: &str, path: &mut PathBuf) -> Result<u64, Status> {
    if name.len() > NAME_MAX {
        return Err(Status::FileNotFound);
    }
    path.as_mut_os_string().clear();
    path.push(dir);
    path.push(name);
    match lookup(dir, path) {
        Ok(Found::File { size }) => Ok(size),
        Ok(Found::Nothing) => Err(Status::FileNotFound),
        Err(_) => Err(Status::InternalError),
    }
}

/// `size` in decimal and CR LF, after `0 OK`, in one stack buffer.
fn metadata_answer(size: u64) -> ([u8; 32], usize) {
    use std::io::Write as _;
    let mut buf = [0u8; 32];
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    // 6 + 20 + 2 bytes always fit in 32.
    let _ = write!(cursor, "{}{size}\r\n", Status::Ok.line());
    let len = usize::try_from(cursor.position()).unwrap_or(0);
    (buf, len)
}

async fn execute(cmd: Command<'_>, config: &Config, path: &mut PathBuf, w: &mut Writer) -> Next {
    let dir = &config.datadir;
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
        Command::Metadata(name) => match regular_file(dir, name, path) {
            Ok(size) => {
                let (buf, len) = metadata_answer(size);
                match w.write_all(&buf[..len]).await {
                    Ok(()) => Next::Continue,
                    Err(_) => Next::Abort,
                }
            }
            Err(status) => respond_status(status, w).await,
        },
        Command::Slice {
            name,
            offset,
            size,
            encoding,
        } => {
            let file_size = match regular_file(dir, name, path) {
                Ok(x) => x,
                Err(status) => return respond_status(status, w).await,
            };
            let (offset, size) = match check_bounds(offset, size, file_size) {
                Ok(x) => x,
                Err(status) => return respond_status(status, w).await,
            };
            match crate::slice::send(path, offset, size, encoding, w, &config.slices).await {
                Sent::Whole => Next::Continue,
                Sent::Refused(status) => respond_status(status, w).await,
                Sent::Cut => Next::Abort,
            }
        }
    }
}

/// The directory as it is now: regular files a client could request (links
/// only to regular files inside it), sorted. A directory that does not exist
/// (deleted for a moment) lists as empty. One blocking task for the whole scan,
/// not one thread hop per entry.
async fn listing(dir: &Path) -> Result<String, Status> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || list_now(&dir))
        .await
        .unwrap_or(Err(Status::InternalError))
}

fn list_now(dir: &Path) -> Result<String, Status> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok("\r\n".into()),
        Err(_) => return Err(Status::InternalError),
    };
    let mut names = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|_| Status::InternalError)?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !requestable(&name) {
            continue;
        }
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_file() || (kind.is_symlink() && inside_target(dir, &entry.path()).is_some()) {
            names.push(name);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_answer_fits_any_size() {
        for size in [0, 7, 1_000_000, u64::MAX] {
            let (buf, len) = metadata_answer(size);
            assert_eq!(&buf[..len], format!("0 OK\r\n{size}\r\n").as_bytes());
        }
    }
}
