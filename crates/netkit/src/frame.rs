//! Exact reads of length-prefixed binary frames (DESIGN habits 1, 2 and 7).
//!
//! A binary protocol such as the lottery's (`code | agency | u32 len | payload`)
//! is read in three steps, each of which this module makes hard to get wrong:
//!
//! 1. the fixed-size header is read *fully*, however many segments it arrives in
//!    ([`read_header`]); EOF before its first byte is a clean close (`Ok(None)`),
//!    EOF after it is [`Error::UnexpectedEof`];
//! 2. the length the peer announced is checked against a named [`Limit`] before a
//!    single byte is allocated for the body ([`Limit::check`]);
//! 3. the body is read fully ([`read_body`]), growing the buffer only as bytes
//!    really arrive, so a peer that announces a large frame and then stalls costs
//!    what it sent, not what it announced.
//!
//! [`check_frame`] is the same logic for buffered, sans-IO decoders
//! (`tokio_util::codec::Decoder`): it tells "incomplete" from "complete" from
//! "too long" without consuming anything.

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::Error;

/// Largest chunk the body buffer grows by before the bytes have arrived.
const GROW_STEP: usize = 64 * 1024;

/// A named upper bound on a length that the peer controls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// What is being limited, for error messages (`"lottery batch"`).
    pub name: &'static str,
    /// Largest accepted length in bytes.
    pub max: usize,
}

impl Limit {
    /// A limit named `name` of `max` bytes.
    pub const fn new(name: &'static str, max: usize) -> Self {
        Self { name, max }
    }

    /// Accepts `announced` if it is within the limit.
    pub fn check(&self, announced: u64) -> Result<usize, Error> {
        match usize::try_from(announced) {
            Ok(len) if len <= self.max => Ok(len),
            _ => Err(Error::TooLong {
                name: self.name,
                announced,
                max: self.max,
            }),
        }
    }
}

/// Reads a fixed-size header of `N` bytes, across any number of segments.
///
/// Returns `Ok(None)` if the peer closed the connection before sending any byte of
/// it (a clean end of the conversation), and [`Error::UnexpectedEof`] if it closed
/// after sending part of it.
pub async fn read_header<R, const N: usize>(reader: &mut R) -> Result<Option<[u8; N]>, Error>
where
    R: AsyncRead + Unpin + ?Sized,
{
    let mut header = [0u8; N];
    let mut got = 0;
    while got < N {
        let n = reader.read(&mut header[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(Error::UnexpectedEof {
                part: "header",
                got,
                expected: N,
            });
        }
        got += n;
    }
    Ok(Some(header))
}

/// Reads exactly `len` body bytes (a length already checked with [`Limit::check`]).
///
/// The buffer grows as bytes arrive, at most [`GROW_STEP`] ahead of them.
pub async fn read_body<R>(reader: &mut R, len: usize) -> Result<Vec<u8>, Error>
where
    R: AsyncRead + Unpin + ?Sized,
{
    let mut body = Vec::with_capacity(len.min(GROW_STEP));
    while body.len() < len {
        let want = (len - body.len()).min(GROW_STEP);
        body.reserve(want);
        let n = (&mut *reader).take(want as u64).read_buf(&mut body).await?;
        if n == 0 {
            return Err(Error::UnexpectedEof {
                part: "body",
                got: body.len(),
                expected: len,
            });
        }
    }
    Ok(body)
}

/// Reads one whole frame: an `N`-byte header, then the body whose length
/// `len_of(header)` announces, checked against `limit` first.
///
/// `Ok(None)` means a clean EOF between frames.
pub async fn read_frame<R, const N: usize>(
    reader: &mut R,
    limit: Limit,
    len_of: impl FnOnce(&[u8; N]) -> u64,
) -> Result<Option<([u8; N], Vec<u8>)>, Error>
where
    R: AsyncRead + Unpin + ?Sized,
{
    let Some(header) = read_header::<R, N>(reader).await? else {
        return Ok(None);
    };
    let len = limit.check(len_of(&header))?;
    let body = read_body(reader, len).await?;
    Ok(Some((header, body)))
}

/// Where a complete frame lies in a buffer (see [`check_frame`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSpan<const N: usize> {
    /// The header bytes.
    pub header: [u8; N],
    /// Length of the body that follows the header.
    pub body_len: usize,
}

impl<const N: usize> FrameSpan<N> {
    /// Header plus body: how many bytes of the buffer the frame takes.
    pub fn total_len(&self) -> usize {
        N + self.body_len
    }
}

/// Check, then parse: is a whole frame buffered at the start of `buf`?
///
/// - `Ok(None)`: not yet (more bytes needed); nothing must be consumed;
/// - `Ok(Some(span))`: the first `span.total_len()` bytes are one frame;
/// - `Err(TooLong)`: the header announces more than `limit`, known as soon as the
///   header is in, before the body is waited for.
pub fn check_frame<const N: usize>(
    buf: &[u8],
    limit: Limit,
    len_of: impl FnOnce(&[u8; N]) -> u64,
) -> Result<Option<FrameSpan<N>>, Error> {
    let Some(head) = buf.first_chunk::<N>() else {
        return Ok(None);
    };
    let body_len = limit.check(len_of(head))?;
    if buf.len() - N < body_len {
        return Ok(None);
    }
    Ok(Some(FrameSpan {
        header: *head,
        body_len,
    }))
}

/// Big-endian `u32` at `offset` of a header, for `len_of` closures.
pub fn be_u32_at<const N: usize>(header: &[u8; N], offset: usize) -> u64 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&header[offset..offset + 4]);
    u64::from(u32::from_be_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    const LIMIT: Limit = Limit::new("test frame", 1024);

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut v = vec![7u8, 9];
        v.extend_from_slice(&(body.len() as u32).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    /// A reader that hands out the given bytes one per read call.
    fn one_byte_reader(bytes: Vec<u8>) -> impl AsyncRead + Unpin {
        let mut b = mock::Builder::new();
        for x in bytes {
            b.read(&[x]);
        }
        b.build()
    }

    /// Minimal mock of a reader that returns scripted chunks (one read per chunk).
    mod mock {
        use std::collections::VecDeque;
        use std::pin::Pin;
        use std::task::{Context, Poll};
        use tokio::io::{AsyncRead, ReadBuf};

        pub struct Builder(VecDeque<Vec<u8>>);
        impl Builder {
            pub fn new() -> Self {
                Self(VecDeque::new())
            }
            pub fn read(&mut self, chunk: &[u8]) -> &mut Self {
                self.0.push_back(chunk.to_vec());
                self
            }
            pub fn build(&mut self) -> Scripted {
                Scripted(std::mem::take(&mut self.0))
            }
        }
        pub struct Scripted(VecDeque<Vec<u8>>);
        impl AsyncRead for Scripted {
            fn poll_read(
                mut self: Pin<&mut Self>,
                _cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<std::io::Result<()>> {
                if let Some(mut chunk) = self.0.pop_front() {
                    let n = chunk.len().min(buf.remaining());
                    buf.put_slice(&chunk[..n]);
                    if n < chunk.len() {
                        chunk.drain(..n);
                        self.0.push_front(chunk);
                    }
                }
                Poll::Ready(Ok(()))
            }
        }
    }

    #[allow(clippy::trivially_copy_pass_by_ref)] // the shape read_frame asks for
    fn len_of(h: &[u8; 6]) -> u64 {
        be_u32_at(h, 2)
    }

    #[tokio::test]
    async fn header_and_body_arrive_one_byte_per_segment() {
        let mut r = one_byte_reader(frame(b"hello"));
        let (h, body) = read_frame(&mut r, LIMIT, len_of).await.unwrap().unwrap();
        assert_eq!(h[..2], [7, 9]);
        assert_eq!(body, b"hello");
        assert!(read_frame(&mut r, LIMIT, len_of).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn clean_eof_between_frames_is_none() {
        let mut bytes = frame(b"a");
        bytes.extend(frame(b""));
        let mut r = &bytes[..];
        assert_eq!(
            read_frame(&mut r, LIMIT, len_of).await.unwrap().unwrap().1,
            b"a"
        );
        assert_eq!(
            read_frame(&mut r, LIMIT, len_of).await.unwrap().unwrap().1,
            b""
        );
        assert!(read_frame(&mut r, LIMIT, len_of).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn eof_mid_header_is_an_error() {
        let mut r = &[1u8, 2, 3][..];
        let err = read_frame(&mut r, LIMIT, len_of).await.unwrap_err();
        assert!(matches!(
            err,
            Error::UnexpectedEof {
                part: "header",
                got: 3,
                expected: 6
            }
        ));
        assert!(err.is_disconnect());
    }

    #[tokio::test]
    async fn eof_mid_body_is_an_error() {
        let mut bytes = frame(b"hello");
        bytes.truncate(8);
        let mut r = &bytes[..];
        let err = read_frame(&mut r, LIMIT, len_of).await.unwrap_err();
        assert!(matches!(
            err,
            Error::UnexpectedEof {
                part: "body",
                got: 2,
                expected: 5
            }
        ));
    }

    #[tokio::test]
    async fn oversized_length_is_refused_before_the_body_is_read() {
        // Announce 4 GiB - 1 and send nothing else: the error comes from the header
        // alone, so no body read (and no allocation) is attempted.
        let mut r = &[1u8, 1, 0xff, 0xff, 0xff, 0xff][..];
        let err = read_frame(&mut r, LIMIT, len_of).await.unwrap_err();
        assert!(matches!(
            err,
            Error::TooLong {
                name: "test frame",
                announced: 0xffff_ffff,
                max: 1024
            }
        ));
        assert!(!err.is_disconnect());
        assert_eq!(
            err.to_string(),
            "test frame of 4294967295 bytes exceeds the limit of 1024 bytes"
        );
    }

    #[tokio::test]
    async fn body_buffer_grows_with_arrivals_not_announcements() {
        let (mut a, mut b) = tokio::io::duplex(1 << 20);
        let big = Limit::new("big", 64 << 20);
        let mut header = vec![0u8, 0];
        header.extend_from_slice(&(32u32 << 20).to_be_bytes());
        a.write_all(&header).await.unwrap();
        a.write_all(&[5u8; 10]).await.unwrap();
        drop(a);
        let h = read_header::<_, 6>(&mut b).await.unwrap().unwrap();
        let len = big.check(len_of(&h)).unwrap();
        let err = read_body(&mut b, len).await.unwrap_err();
        assert!(matches!(err, Error::UnexpectedEof { got: 10, .. }));
    }

    #[test]
    fn check_frame_tells_incomplete_complete_and_too_long() {
        let f = frame(b"xyz");
        for cut in 0..f.len() {
            assert_eq!(
                check_frame(&f[..cut], LIMIT, len_of).unwrap(),
                None,
                "cut {cut}"
            );
        }
        let mut two = f.clone();
        two.extend(frame(b"next"));
        let span = check_frame(&two, LIMIT, len_of).unwrap().unwrap();
        assert_eq!(span.body_len, 3);
        assert_eq!(span.total_len(), 9);
        let bad = [0u8, 0, 0, 0, 4, 1];
        assert!(matches!(
            check_frame(&bad, LIMIT, len_of),
            Err(Error::TooLong {
                announced: 1025,
                ..
            })
        ));
    }

    #[test]
    fn limit_accepts_the_boundary_and_refuses_one_more() {
        assert_eq!(LIMIT.check(1024).unwrap(), 1024);
        assert!(LIMIT.check(1025).is_err());
        assert!(LIMIT.check(u64::MAX).is_err());
    }

    proptest::proptest! {
        #[test]
        fn check_frame_agrees_with_read_frame(body in proptest::collection::vec(proptest::num::u8::ANY, 0..64), cut in 0usize..80) {
            let f = frame(&body);
            let cut = cut.min(f.len());
            let res = check_frame(&f[..cut], LIMIT, len_of).unwrap();
            if cut == f.len() {
                proptest::prop_assert_eq!(res.unwrap().body_len, body.len());
            } else {
                proptest::prop_assert!(res.is_none());
            }
        }
    }
}
