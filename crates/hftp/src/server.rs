//! The HFTP server (spec: hftp.md): a drop-in replacement for the course's.
//!
//! One task per connection on the netkit runtime; requests are read through
//! [`netkit::LineReader`] with a [`RequestSink`] (constant memory per connection
//! whatever the line length), answered in order (pipelining), and a connection
//! flushes its answers when no further complete request is waiting. The data
//! directory is resolved on every request. Slices are streamed in chunks whose
//! length is a multiple of 3 (so base64 needs no padding until the end), read and
//! encoded on a blocking thread while the connection's task writes the previous
//! ones, so a 4 GiB slice costs a few chunks of memory, like a 4 KiB one.
//!
//! Fatal statuses (100, 101, 199) and `quit` close gracefully: the answer, then
//! FIN, then whatever the client still sends is read and dropped for a moment,
//! so the close is not turned into a reset by unread input.

use std::io::{ErrorKind, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use netkit::server::{Conn, ServeReport, ServerConfig, ServerStats, serve};
use netkit::{LineReader, StallGuard, log_action};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio_util::codec::FramedRead;

use crate::proto::{
    Command, Encoding, NAME_MAX, Status, check_bounds, help_body, parse, requestable,
};
use crate::request::RequestSink;

/// Bytes read from a file at once: a multiple of 3, so every chunk but the last
/// encodes to base64 without padding.
pub const CHUNK: usize = 3 * 256 * 1024;
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
        let next = match item {
            None => break Next::Abort,
            Some(Ok(line)) => {
                let next = match parse(&line) {
                    Ok(cmd) => execute(cmd, &config.datadir, &mut path, &mut w).await,
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
    if w.write_all(Status::Ok.line().as_bytes()).await.is_err() || w.write_all(body).await.is_err()
    {
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

/// Checks 5 (exists, regular, name not too long): sets `path` to `name` in
/// `dir` and returns the file's size.
///
/// A `stat` of a local file takes microseconds, far less than the thread hop of
/// `tokio::fs`; doing it inline is what lets small requests run at hundreds of
/// thousands per second. `path` is reused so a request allocates nothing.
fn regular_file(dir: &Path, name: &str, path: &mut PathBuf) -> Result<u64, Status> {
    if name.len() > NAME_MAX {
        return Err(Status::FileNotFound);
    }
    path.as_mut_os_string().clear();
    path.push(dir);
    path.push(name);
    match std::fs::metadata(&*path) {
        Ok(m) if m.is_file() => Ok(m.len()),
        Ok(_) => Err(Status::FileNotFound),
        Err(e) => Err(lookup_error(&e)),
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

async fn execute(cmd: Command<'_>, dir: &Path, path: &mut PathBuf, w: &mut Writer) -> Next {
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
            slice(path, offset, size, encoding, w).await
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
/// `Content-Length` header.
///
/// A blocking task reads the file (and encodes) chunk by chunk and hands the
/// chunks over a channel of [`IN_FLIGHT`] while this task writes them: reading,
/// encoding and sending overlap, and memory stays at a few chunks whatever the
/// slice size. The first chunk is read before `0 OK` is sent, so an unreadable
/// file is still a 199; if the file turns out shorter than announced once bytes
/// are on their way, the connection is cut (a client must never take a short
/// body for a whole one).
async fn slice(path: &Path, offset: u64, size: u64, encoding: Encoding, w: &mut Writer) -> Next {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, Status>>(IN_FLIGHT);
    // Written chunks go back to the reading thread to be filled again: fresh
    // megabyte buffers cost a page fault per 4 KiB.
    let (spent, spare) = std::sync::mpsc::sync_channel::<Vec<u8>>(IN_FLIGHT + 2);
    let path_buf = path.to_path_buf();
    let producer = tokio::task::spawn_blocking(move || {
        produce(&path_buf, offset, size, encoding, &tx, &spare)
    });
    let first = match rx.recv().await {
        Some(Ok(chunk)) => chunk,
        Some(Err(status)) => return respond_status(status, w).await,
        None => return respond_status(Status::InternalError, w).await,
    };
    let header = match encoding {
        Encoding::Base64 => Status::Ok.line().to_owned(),
        Encoding::Raw => format!("{}Content-Length: {size}\r\n\r\n", Status::Ok.line()),
    };
    if w.write_all(header.as_bytes()).await.is_err() || w.write_all(&first).await.is_err() {
        producer.abort();
        return Next::Abort;
    }
    while let Some(chunk) = rx.recv().await {
        let Ok(chunk) = chunk else {
            log_action!(
                warn,
                "hftp_slice",
                Fail,
                file = path.display(),
                error = "file shorter than announced; connection cut"
            );
            return Next::Abort;
        };
        if w.write_all(&chunk).await.is_err() {
            return Next::Abort;
        }
        let _ = spent.try_send(chunk);
    }
    match producer.await {
        Ok(true) => {}
        _ => return Next::Abort,
    }
    if encoding == Encoding::Base64 && w.write_all(b"\r\n").await.is_err() {
        return Next::Abort;
    }
    Next::Continue
}

/// Chunks handed from the reading thread to the writing task at once.
const IN_FLIGHT: usize = 4;

/// The reading side of [`slice`], on a blocking thread: sends each chunk (base64
/// encoded when asked), or the status that stops it. Always sends at least one
/// message (an empty chunk for an empty slice). Returns true if all was sent.
fn produce(
    path: &Path,
    offset: u64,
    size: u64,
    encoding: Encoding,
    tx: &tokio::sync::mpsc::Sender<Result<Vec<u8>, Status>>,
    spare: &std::sync::mpsc::Receiver<Vec<u8>>,
) -> bool {
    use std::io::{Read as _, Seek as _};
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => {
            let _ = tx.blocking_send(Err(lookup_error(&e)));
            return false;
        }
    };
    if offset > 0 && file.seek(SeekFrom::Start(offset)).is_err() {
        let _ = tx.blocking_send(Err(Status::InternalError));
        return false;
    }
    // Base64 reads into this one buffer and encodes into a recycled one; raw
    // reads straight into a recycled one.
    let mut plain = Vec::new();
    let mut left = size;
    let mut sent_any = false;
    while left > 0 || !sent_any {
        let want = usize::try_from(left).map_or(CHUNK, |l| l.min(CHUNK));
        let mut chunk = spare.try_recv().unwrap_or_default();
        let buf = if encoding == Encoding::Raw {
            &mut chunk
        } else {
            &mut plain
        };
        if buf.len() < want {
            buf.resize(want, 0);
        }
        let mut got = 0;
        while got < want {
            match file.read(&mut buf[got..want]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if got < want {
            // Unreadable or shrunk: before the first chunk that is a 199.
            let _ = tx.blocking_send(Err(Status::InternalError));
            return false;
        }
        match encoding {
            // SIMD base64: encoding was the bottleneck of base64 slices.
            Encoding::Base64 => {
                chunk.clear();
                base64_simd::STANDARD.encode_append(&plain[..got], &mut chunk);
            }
            Encoding::Raw => chunk.truncate(got),
        }
        if tx.blocking_send(Ok(chunk)).is_err() {
            return false;
        }
        sent_any = true;
        left -= got as u64;
    }
    true
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
