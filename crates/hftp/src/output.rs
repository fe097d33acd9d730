//! Telling a download's output errors from its socket errors: both are
//! `io::Error`s by the time they leave [`crate::client::Client::slice`], but a
//! broken pipe on standard output (`| head`) is the reader leaving, while a
//! broken pipe on the socket is the server's failure. Writes to the output go
//! through [`Marked`], which tags their errors; [`classify`] turns tagged
//! errors into [`Error::Output`] naming the output.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;

use crate::error::Error;

/// The tag: an output error, kept as the source of the `io::Error` it rides in.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct OutputFailed(io::Error);

fn mark(e: io::Error) -> io::Error {
    io::Error::new(e.kind(), OutputFailed(e))
}

/// An `AsyncWrite` whose errors are tagged as the output's.
#[derive(Debug)]
pub struct Marked<W>(pub W);

impl<W: AsyncWrite + Unpin> AsyncWrite for Marked<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf).map_err(mark)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx).map_err(mark)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx).map_err(mark)
    }
}

/// [`Error::Output`] naming `output` if `e` came from a [`Marked`] writer;
/// any other error as it is.
pub fn classify(e: Error, output: &Path) -> Error {
    let Error::Io(io) = e else { return e };
    match io.downcast::<OutputFailed>() {
        Ok(tagged) => Error::Output {
            path: output.to_path_buf(),
            source: tagged.0,
        },
        Err(io) => Error::Io(io),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A writer whose every write fails with a broken pipe.
    struct Closed;

    impl AsyncWrite for Closed {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn output_errors_are_told_from_others() {
        let e = Marked(Closed).write_all(b"x").await.unwrap_err();
        match classify(Error::Io(e), Path::new("standard output")) {
            Error::Output { path, source } => {
                assert_eq!(path, Path::new("standard output"));
                assert_eq!(source.kind(), io::ErrorKind::BrokenPipe);
            }
            other => panic!("not an output error: {other}"),
        }
        // The same kind from elsewhere (the socket) stays what it was.
        let socket = Error::Io(io::ErrorKind::BrokenPipe.into());
        assert!(matches!(classify(socket, Path::new("x")), Error::Io(_)));
    }
}
