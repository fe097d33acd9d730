//! Length-prefixed binary frames in buffered, sans-IO decoders (DESIGN habits
//! 1, 2 and 7), such as the lottery's (`code | agency | u32 len | payload`):
//!
//! 1. the length the peer announced is checked against a named [`Limit`] as
//!    soon as the header is in, before a byte of the body is waited for or
//!    allocated ([`Limit::check`]);
//! 2. [`check_frame`] tells "incomplete" from "complete" from "too long"
//!    without consuming anything, so a `tokio_util::codec::Decoder` built on it
//!    holds what arrived (one byte per segment is fine) and a peer that
//!    announces a large frame and then stalls costs what it sent, not what it
//!    announced.

use crate::Error;

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

    const LIMIT: Limit = Limit::new("test frame", 1024);

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut v = vec![7u8, 9];
        v.extend_from_slice(&(body.len() as u32).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[allow(clippy::trivially_copy_pass_by_ref)] // the shape check_frame asks for
    fn len_of(h: &[u8; 6]) -> u64 {
        be_u32_at(h, 2)
    }

    #[test]
    fn oversized_length_is_refused_from_the_header_alone() {
        // Announce 4 GiB - 1 and send nothing else: the error comes from the
        // header alone, so no body is waited for (nor allocated).
        let err = check_frame(&[1u8, 1, 0xff, 0xff, 0xff, 0xff], LIMIT, len_of).unwrap_err();
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
        fn check_frame_finds_the_frame_at_any_cut(body in proptest::collection::vec(proptest::num::u8::ANY, 0..64), cut in 0usize..80) {
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
