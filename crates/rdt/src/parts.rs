//! The buffers `RdtSocket::send` copies a message into, a part at a time
//! (`socket.rs`, `feed_part`): each part is used again once every segment
//! cut from it has been acknowledged and dropped, instead of a fresh
//! allocation per part. Fresh 256 KiB allocations went to the kernel and
//! back (glibc maps and trims memory that size): a selective-repeat sender
//! on loopback spent about a fifth of its time faulting in and zeroing pages
//! it had just given back (`perf`: `exc_page_fault`, `clear_page_erms`).
//!
//! A pool belongs to one `send` call, so nothing is held once it returns;
//! it holds at most [`MAX_BUFFERS`] buffers, the oldest first (acknowledgments
//! free parts in the order they were sent, so the oldest is the one to try).

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

/// Buffers kept at most: parts in flight beyond this are simply allocated
/// (the oldest handle is let go; its memory goes when its segments do).
const MAX_BUFFERS: usize = 32;

#[derive(Debug, Default)]
pub(crate) struct PartPool {
    /// Handles on the buffers of parts handed out, oldest first; each is
    /// empty, its allocation shared with the part until the part is dropped.
    buffers: VecDeque<BytesMut>,
}

impl PartPool {
    /// `data` copied into a buffer of the pool: the oldest one if nothing
    /// refers to it any more, else a new one.
    pub(crate) fn copy(&mut self, data: &[u8]) -> Bytes {
        let reusable = self
            .buffers
            .front_mut()
            .is_some_and(|b| b.try_reclaim(data.len()));
        let mut buffer = if reusable {
            self.buffers.pop_front().unwrap_or_default()
        } else {
            if self.buffers.len() >= MAX_BUFFERS {
                self.buffers.pop_front();
            }
            BytesMut::with_capacity(data.len())
        };
        buffer.extend_from_slice(data);
        let part = buffer.split().freeze();
        self.buffers.push_back(buffer);
        part
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.buffers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_dropped_lends_its_buffer_to_the_next() {
        let mut pool = PartPool::default();
        let first = pool.copy(&[1; 1000]);
        let at = first.as_ptr();
        drop(first);
        let second = pool.copy(&[2; 1000]);
        assert_eq!(second.as_ptr(), at, "the same memory again");
        assert_eq!(&second[..], &[2; 1000][..]);
        assert_eq!(pool.len(), 1);
    }

    #[test]
    fn a_part_still_referenced_keeps_its_buffer() {
        let mut pool = PartPool::default();
        let first = pool.copy(&[1; 1000]);
        // A segment cut from it is still in flight.
        let segment = first.slice(100..200);
        drop(first);
        let second = pool.copy(&[2; 1000]);
        assert_ne!(second.as_ptr(), segment.as_ptr().wrapping_sub(100));
        assert_eq!(&segment[..], &[1; 100][..], "untouched");
        assert_eq!(pool.len(), 2);
        drop(segment);
        let third = pool.copy(&[3; 1000]);
        assert_eq!(&third[..], &[3; 1000][..]);
        assert_eq!(pool.len(), 2, "the first buffer served the third part");
    }

    #[test]
    fn the_pool_holds_a_bounded_number_of_buffers() {
        let mut pool = PartPool::default();
        let held: Vec<Bytes> = (0..MAX_BUFFERS + 10)
            .map(|i| pool.copy(&[i as u8; 64]))
            .collect();
        assert_eq!(pool.len(), MAX_BUFFERS);
        for (i, part) in held.iter().enumerate() {
            assert_eq!(&part[..], &[i as u8; 64][..]);
        }
    }
}
