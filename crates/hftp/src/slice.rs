//! Streaming a slice (spec: hftp.md, `get_slice`: "Stream it: a multi-GiB slice
//! must not be held in memory"), with what slices in progress may hold bounded
//! per connection and in total (hostile input: a hundred clients that ask for
//! a 1 GiB slice and never read it must not take the server's memory, nor its
//! threads, nor delay anybody's small requests).
//!
//! A slice is read in chunks whose length is a multiple of 3 (so base64 needs
//! no padding until the end). Each chunk is read, and encoded, on a blocking
//! thread that is given back as soon as the chunk is ready: a connection never
//! holds a thread while it waits for its client. While one chunk is written the
//! next is read, so reading, encoding and sending overlap, and a connection
//! holds at most two chunks, whoever its client is.
//!
//! [`Budget`] bounds the rest, server-wide:
//! - large chunks ([`BIG_CHUNK`], for speed) go to at most `big_slices` slices
//!   at once; the others stream in small chunks ([`SMALL_CHUNK`]), slower but
//!   never waiting for anyone; a slice that fits one small chunk never asks
//!   for a large one;
//! - chunks are read by a pool of `reads` threads of its own (started on first
//!   use), so however many slices are in progress, the server has that many
//!   reading threads and no more (tokio's blocking pool would grow a thread per
//!   waiting read, up to 512).
//!
//! So a stalled client costs at most two chunks of memory and no thread, and
//! the idle timeout ([`netkit::StallGuard`]) cuts it in the end.

use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc::{Receiver, Sender, channel};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::proto::{Encoding, Status};

/// Bytes read at once by a slice holding a large-chunk permit.
pub const BIG_CHUNK: usize = 3 * 256 * 1024;
/// Bytes read at once by any other slice.
pub const SMALL_CHUNK: usize = 3 * 4096;

/// One read to run on the pool.
type Job = Box<dyn FnOnce() + Send>;

/// The reading threads, started on first use.
#[derive(Debug)]
struct ReadPool {
    threads: usize,
    jobs: OnceLock<Sender<Job>>,
}

impl ReadPool {
    fn sender(&self) -> &Sender<Job> {
        self.jobs.get_or_init(|| {
            let (tx, rx) = channel::<Job>(self.threads * 4);
            let rx = Arc::new(Mutex::new(rx));
            for i in 0..self.threads {
                let rx = Arc::clone(&rx);
                // A thread that cannot start leaves the others to do the work.
                let _ = std::thread::Builder::new()
                    .name(format!("hftp-read-{i}"))
                    .spawn(move || read_worker(&rx));
            }
            tx
        })
    }
}

/// Runs jobs until every sender is gone.
fn read_worker(rx: &Mutex<Receiver<Job>>) {
    loop {
        // One worker waits on the queue, the others on the lock: whoever
        // takes a job lets go of the lock before running it.
        let job = rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .blocking_recv();
        match job {
            Some(job) => job(),
            None => return,
        }
    }
}

/// What slices in progress may hold, server-wide.
#[derive(Debug, Clone)]
pub struct Budget {
    big: Arc<Semaphore>,
    pool: Arc<ReadPool>,
}

impl Budget {
    /// At most `big_slices` slices with large chunks; `reads` reading threads.
    pub fn new(big_slices: usize, reads: usize) -> Self {
        Self {
            big: Arc::new(Semaphore::new(big_slices)),
            pool: Arc::new(ReadPool {
                threads: reads.max(1),
                jobs: OnceLock::new(),
            }),
        }
    }

    /// Large-chunk permits free now.
    pub fn big_free(&self) -> usize {
        self.big.available_permits()
    }
}

impl Default for Budget {
    /// 16 large-chunk slices (about 40 MiB of buffers) and 8 reading threads.
    fn default() -> Self {
        Self::new(16, 8)
    }
}

/// How a slice ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Every byte was written.
    Whole,
    /// Nothing was written: answer this status instead.
    Refused(Status),
    /// The client is gone, or the file shrank after the header went out: the
    /// connection must be cut (a short body must never pass for a whole one).
    Cut,
}

/// One slice being read: the file, what is left, and the buffer base64 reads into.
struct Reader {
    file: File,
    left: u64,
    chunk: usize,
    encoding: Encoding,
    plain: Vec<u8>,
}

impl Reader {
    fn open(
        path: &Path,
        offset: u64,
        size: u64,
        chunk: usize,
        encoding: Encoding,
    ) -> Result<Self, Status> {
        let mut file = File::open(path).map_err(|e| match e.kind() {
            ErrorKind::NotFound => Status::FileNotFound,
            _ => Status::InternalError,
        })?;
        if offset > 0 {
            file.seek(SeekFrom::Start(offset))
                .map_err(|_| Status::InternalError)?;
        }
        Ok(Self {
            file,
            left: size,
            chunk,
            encoding,
            plain: Vec::new(),
        })
    }

    /// Reads the next chunk (encoded when asked) into `out`. An unreadable or
    /// shrunk file is `Err`.
    fn next(&mut self, out: &mut Vec<u8>) -> Result<(), ()> {
        let want = usize::try_from(self.left).map_or(self.chunk, |l| l.min(self.chunk));
        let buf = match self.encoding {
            Encoding::Raw => &mut *out,
            Encoding::Base64 => &mut self.plain,
        };
        buf.resize(want, 0);
        let mut got = 0;
        while got < want {
            match self.file.read(&mut buf[got..want]) {
                Ok(0) => return Err(()),
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(()),
            }
        }
        if self.encoding == Encoding::Base64 {
            out.clear();
            // SIMD base64: encoding was the bottleneck of base64 slices.
            base64_simd::STANDARD.encode_append(&self.plain[..want], out);
        }
        self.left -= want as u64;
        Ok(())
    }
}

/// Runs `job` on one of the budget's reading threads (waiting, without a
/// thread, while their queue is full).
async fn blocking<T: Send + 'static>(
    budget: &Budget,
    job: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(job());
    });
    budget.pool.sender().send(job).await.ok()?;
    rx.await.ok()
}

/// Streams `size` bytes of `path` from `offset` to `w`: base64 on one line, or
/// raw after a `Content-Length` header. The first chunk is read before `0 OK`
/// goes out, so an unreadable file is still answered with a status.
pub async fn send<W: AsyncWrite + Unpin>(
    path: &Path,
    offset: u64,
    size: u64,
    encoding: Encoding,
    w: &mut W,
    budget: &Budget,
) -> Sent {
    let big: Option<OwnedSemaphorePermit> = if size as usize > SMALL_CHUNK {
        Arc::clone(&budget.big).try_acquire_owned().ok()
    } else {
        None
    };
    let chunk = if big.is_some() {
        BIG_CHUNK
    } else {
        SMALL_CHUNK
    };
    let path: PathBuf = path.to_path_buf();
    let opened = blocking(budget, move || {
        let mut reader = Reader::open(&path, offset, size, chunk, encoding)?;
        let mut out = Vec::new();
        reader.next(&mut out).map_err(|()| Status::InternalError)?;
        Ok::<_, Status>((reader, out))
    })
    .await;
    let (mut reader, mut current) = match opened {
        Some(Ok(x)) => x,
        Some(Err(status)) => return Sent::Refused(status),
        None => return Sent::Refused(Status::InternalError),
    };
    let header = match encoding {
        Encoding::Base64 => Status::Ok.line().to_owned(),
        Encoding::Raw => format!("{}Content-Length: {size}\r\n\r\n", Status::Ok.line()),
    };
    if w.write_all(header.as_bytes()).await.is_err() {
        return Sent::Cut;
    }
    let mut spare = Vec::new();
    while reader.left > 0 {
        // Read the next chunk while this one is written.
        let ahead = blocking(budget, move || {
            let r = reader.next(&mut spare);
            (reader, spare, r)
        });
        let (read, written) = tokio::join!(ahead, w.write_all(&current));
        if written.is_err() {
            return Sent::Cut;
        }
        let Some((r, next, Ok(()))) = read else {
            netkit::log_action!(
                warn,
                "hftp_slice",
                Fail,
                error = "file shorter than announced or unreadable; connection cut"
            );
            return Sent::Cut;
        };
        reader = r;
        spare = std::mem::replace(&mut current, next);
    }
    if w.write_all(&current).await.is_err() {
        return Sent::Cut;
    }
    if encoding == Encoding::Base64 && w.write_all(b"\r\n").await.is_err() {
        return Sent::Cut;
    }
    drop(big);
    Sent::Whole
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn slice_of(
        bytes: &[u8],
        offset: u64,
        size: u64,
        enc: Encoding,
        budget: &Budget,
    ) -> (Sent, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, bytes).unwrap();
        let mut out = Vec::new();
        let sent = send(&p, offset, size, enc, &mut out, budget).await;
        (sent, out)
    }

    #[tokio::test]
    async fn small_and_large_chunks_give_the_same_bytes() {
        let data: Vec<u8> = (0..(BIG_CHUNK * 2 + 7))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let roomy = Budget::new(1, 2);
        let none = Budget::new(0, 1);
        for enc in [Encoding::Raw, Encoding::Base64] {
            let (a, big) = slice_of(&data, 5, data.len() as u64 - 5, enc, &roomy).await;
            let (b, small) = slice_of(&data, 5, data.len() as u64 - 5, enc, &none).await;
            assert_eq!((a, b), (Sent::Whole, Sent::Whole));
            assert_eq!(big, small);
            let body = match enc {
                Encoding::Raw => {
                    let head = format!("0 OK\r\nContent-Length: {}\r\n\r\n", data.len() - 5);
                    big.strip_prefix(head.as_bytes()).unwrap().to_vec()
                }
                Encoding::Base64 => {
                    let line = big
                        .strip_prefix(b"0 OK\r\n")
                        .unwrap()
                        .strip_suffix(b"\r\n")
                        .unwrap();
                    base64_simd::STANDARD.decode_to_vec(line).unwrap()
                }
            };
            assert_eq!(body, &data[5..]);
        }
        // Every permit came back.
        assert_eq!(roomy.big_free(), 1);
    }

    #[tokio::test]
    async fn a_missing_file_and_an_empty_slice() {
        let budget = Budget::default();
        let mut out = Vec::new();
        let sent = send(
            Path::new("/nonexistent/x"),
            0,
            4,
            Encoding::Raw,
            &mut out,
            &budget,
        )
        .await;
        assert_eq!(sent, Sent::Refused(Status::FileNotFound));
        assert!(out.is_empty());
        let (sent, out) = slice_of(b"abc", 1, 0, Encoding::Base64, &budget).await;
        assert_eq!(sent, Sent::Whole);
        assert_eq!(out, b"0 OK\r\n\r\n");
    }

    #[tokio::test]
    async fn a_file_shorter_than_asked_is_refused_before_any_byte() {
        let (sent, out) = slice_of(b"abc", 0, 10, Encoding::Raw, &Budget::default()).await;
        assert_eq!(sent, Sent::Refused(Status::InternalError));
        assert!(out.is_empty());
    }

    /// A writer that accepts nothing, ever: a client that stopped reading.
    struct Stalled;
    impl AsyncWrite for Stalled {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            _: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            std::task::Poll::Pending
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn stalled_clients_beyond_the_budget_stream_small_and_free_their_permits() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        std::fs::write(&p, vec![7u8; BIG_CHUNK * 4]).unwrap();
        let budget = Budget::new(2, 4);
        let mut stalled = Vec::new();
        for _ in 0..5 {
            let (p, b) = (p.clone(), budget.clone());
            stalled.push(tokio::spawn(async move {
                send(
                    &p,
                    0,
                    (BIG_CHUNK * 4) as u64,
                    Encoding::Raw,
                    &mut Stalled,
                    &b,
                )
                .await
            }));
        }
        // The large-chunk permits are all taken by stalled slices...
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while budget.big_free() > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        })
        .await
        .unwrap();
        // ...yet another slice, big or small, goes through at once.
        let (sent, out) = slice_of(
            &vec![1u8; BIG_CHUNK * 2],
            0,
            (BIG_CHUNK * 2) as u64,
            Encoding::Raw,
            &budget,
        )
        .await;
        assert_eq!(sent, Sent::Whole);
        assert_eq!(
            out.len(),
            BIG_CHUNK * 2 + "0 OK\r\nContent-Length: 1572864\r\n\r\n".len()
        );
        for t in &stalled {
            t.abort();
        }
        for t in stalled {
            let _ = t.await;
        }
        assert_eq!(budget.big_free(), 2, "permits come back with the slices");
    }
}
