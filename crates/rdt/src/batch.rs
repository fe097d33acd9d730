//! Batched datagram I/O for the windowed modes (issue #15: "batched datagram
//! I/O where the OS allows (UDP GSO/GRO) behind a safe API").
//!
//! [`Gso`] gathers the datagrams one turn of the core sends into *trains*:
//! datagrams of one size to one address (the last may be shorter), sent by
//! one `sendmsg` with `UDP_SEGMENT`, which the kernel (or a device offering
//! UDP segmentation offload, as `impair link` does) cuts into the datagrams
//! the wire carries. [`Gro`] asks the kernel for `UDP_GRO`: datagrams of one
//! train that arrive together are read by one `recvmsg`, with the segment
//! size in a control message, and handed out one at a time.
//!
//! Nothing changes on the wire: a receiver without GRO gets the same
//! datagrams one by one, and a kernel that refuses GSO (`EINVAL`/`EIO`, say
//! a route through a device without checksum offload) turns it off for the
//! socket and the train goes out datagram by datagram. The system calls are
//! `nix`'s safe wrappers; no `unsafe` here.

use std::collections::VecDeque;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::ops::Range;
use std::os::fd::AsRawFd as _;

use bytes::{Bytes, BytesMut};

use nix::errno::Errno;
use nix::sys::socket::{
    self, ControlMessage, ControlMessageOwned, MsgFlags, SockaddrStorage, sockopt,
};

/// Datagrams in one train at most (the kernel's `UDP_MAX_SEGMENTS` was 64
/// before Linux 6.1 and is 128 since).
const MAX_SEGMENTS: usize = 64;
/// Bytes in one train at most: it travels as one IP packet, whose UDP
/// length field is 16 bits (less the IP and UDP headers, IPv6 the larger).
const MAX_TRAIN: usize = 65_535 - 40 - 8;
/// Room for one `recvmsg`: the largest train, or the largest datagram and
/// one byte to see a longer one.
const GRO_BUF: usize = 65_536;

/// The send side: datagrams gathered into one train until [`Gso::flush`].
/// Each datagram is its header (kept here) and its payload (a reference to
/// the sender's data, not a copy): the train goes to the kernel as a list of
/// pieces, two per datagram, which copies them once into its buffers.
#[derive(Debug)]
pub(crate) struct Gso {
    /// The headers of the train's datagrams, one after another.
    heads: Vec<u8>,
    /// Per datagram: its header's place in `heads`, and its payload.
    parts: Vec<(Range<usize>, Bytes)>,
    /// Bytes in the train.
    bytes: usize,
    /// Size of the train's datagrams (all but a shorter last one).
    size: usize,
    to: Option<SocketAddr>,
    /// The last datagram was shorter than `size`: the train is complete.
    closed: bool,
    /// Cleared when the kernel refuses a train.
    enabled: bool,
}

impl Default for Gso {
    fn default() -> Self {
        Gso {
            heads: Vec::with_capacity(MAX_SEGMENTS * 64),
            parts: Vec::with_capacity(MAX_SEGMENTS),
            bytes: 0,
            size: 0,
            to: None,
            closed: false,
            enabled: true,
        }
    }
}

/// What the kernel did with a send.
enum Sent {
    Done,
    /// The socket buffer was full: the datagrams are lost.
    NoRoom,
    /// GSO refused (`EINVAL`/`EIO`).
    Refused,
}

impl Gso {
    /// Adds `datagram` for `to` (its first bytes as the header, the rest as
    /// the payload), sending the train first if it cannot join.
    #[cfg(test)]
    pub fn push(&mut self, udp: &UdpSocket, datagram: &[u8], to: SocketAddr) -> io::Result<()> {
        let cut = datagram.len().min(3);
        self.push_with(
            udp,
            to,
            |h| {
                h.extend_from_slice(&datagram[..cut]);
                Bytes::copy_from_slice(&datagram[cut..])
            },
            |_, _| true,
        )
        .map(drop)
    }

    /// Adds a datagram for `to`: `encode` appends its header to the train's
    /// and returns its payload; it is kept if `keep` says so (the built-in
    /// loss looks at header and payload), and the train is sent first if the
    /// datagram cannot join. Returns whether it was kept.
    pub fn push_with(
        &mut self,
        udp: &UdpSocket,
        to: SocketAddr,
        encode: impl FnOnce(&mut Vec<u8>) -> Bytes,
        keep: impl FnOnce(&[u8], &[u8]) -> bool,
    ) -> io::Result<bool> {
        let start = self.heads.len();
        let payload = encode(&mut self.heads);
        let head_len = self.heads.len() - start;
        let len = head_len + payload.len();
        if !keep(&self.heads[start..], &payload) {
            self.heads.truncate(start);
            return Ok(false);
        }
        let count = self.parts.len();
        let joins = count > 0
            && self.to == Some(to)
            && !self.closed
            && len <= self.size
            && count < MAX_SEGMENTS
            && self.bytes + len <= MAX_TRAIN;
        let mut at = start;
        if count > 0 && !joins {
            let sent = self.send_train(udp);
            // The new datagram's header moves to the front.
            self.heads.drain(..start);
            at = 0;
            sent?;
        }
        if self.parts.is_empty() {
            self.size = len;
            self.to = Some(to);
        }
        self.parts.push((at..at + head_len, payload));
        self.bytes += len;
        self.closed = len < self.size;
        if !self.enabled || len > MAX_TRAIN {
            self.flush(udp)?;
        }
        Ok(true)
    }

    /// Sends the train gathered so far.
    pub fn flush(&mut self, udp: &UdpSocket) -> io::Result<()> {
        let sent = self.send_train(udp);
        self.heads.clear();
        sent
    }

    /// Sends the datagrams in `parts` (their headers stay in `heads` for the
    /// caller to drop) and empties the train.
    fn send_train(&mut self, udp: &UdpSocket) -> io::Result<()> {
        let count = self.parts.len();
        let to = self.to;
        self.bytes = 0;
        self.closed = false;
        let result = match to {
            Some(to) if count > 0 => {
                let iov = pieces(&self.heads, &self.parts);
                let sent = if count == 1 {
                    send_one(udp, &iov, to)
                } else {
                    send_gso(udp, &iov, self.size, to)
                };
                match sent {
                    Ok(Sent::Done) => Ok(()),
                    Ok(Sent::NoRoom) => {
                        tracing::debug!(target: "rdt", "no room in the socket buffer: {count} datagrams lost");
                        Ok(())
                    }
                    Ok(Sent::Refused) => {
                        tracing::debug!(target: "rdt", "the kernel refused a GSO train of {count} datagrams: sending them one by one from now on");
                        self.enabled = false;
                        iov.chunks(2)
                            .try_for_each(|d| send_one(udp, d, to).map(drop))
                    }
                    Err(e) => Err(e),
                }
            }
            _ => Ok(()),
        };
        self.parts.clear();
        result
    }
}

/// The pieces of a train for `sendmsg`: each datagram's header, then its
/// payload (an empty one too, so datagram `i` is pieces `2i` and `2i + 1`).
fn pieces<'a>(heads: &'a [u8], parts: &'a [(Range<usize>, Bytes)]) -> Vec<IoSlice<'a>> {
    let mut iov = Vec::with_capacity(2 * parts.len());
    for (head, payload) in parts {
        iov.push(IoSlice::new(&heads[head.clone()]));
        iov.push(IoSlice::new(payload));
    }
    iov
}

/// One `sendmsg` of a train of `size`-byte datagrams (the last may be shorter).
fn send_gso(udp: &UdpSocket, iov: &[IoSlice<'_>], size: usize, to: SocketAddr) -> io::Result<Sent> {
    let size = size as u16;
    send_msg(udp, iov, &[ControlMessage::UdpGsoSegments(&size)], to)
}

fn send_msg(
    udp: &UdpSocket,
    iov: &[IoSlice<'_>],
    cmsg: &[ControlMessage<'_>],
    to: SocketAddr,
) -> io::Result<Sent> {
    let addr = SockaddrStorage::from(to);
    loop {
        match socket::sendmsg(udp.as_raw_fd(), iov, cmsg, MsgFlags::empty(), Some(&addr)) {
            Ok(_) => return Ok(Sent::Done),
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => return Ok(Sent::NoRoom),
            Err(Errno::EINVAL | Errno::EIO) if !cmsg.is_empty() => return Ok(Sent::Refused),
            Err(e) => return Err(e.into()),
        }
    }
}

/// One datagram without a train (Stop & Wait, the course format's one
/// segment a turn), `head` then `payload`: a full socket buffer loses it,
/// as for a train.
pub(crate) fn send_alone(
    udp: &UdpSocket,
    head: &[u8],
    payload: &[u8],
    to: SocketAddr,
) -> io::Result<()> {
    if let Sent::NoRoom = send_one(udp, &[IoSlice::new(head), IoSlice::new(payload)], to)? {
        tracing::debug!(target: "rdt", "no room in the socket buffer: a datagram lost");
    }
    Ok(())
}

/// One datagram by itself, from its pieces; a full socket buffer loses it,
/// as a full queue on the way would (the transport sends it again).
fn send_one(udp: &UdpSocket, iov: &[IoSlice<'_>], to: SocketAddr) -> io::Result<Sent> {
    send_msg(udp, iov, &[], to)
}

/// The receive side: one `recvmsg` of a train, handed out datagram by datagram.
///
/// A datagram that fills at least half the buffer by itself (a large MSS)
/// keeps the buffer: the payload the core gets is a slice of it, not a copy
/// (on loopback with 65,000-byte segments the receiver, copying each one
/// twice before the application's own copy, was the slower end). The
/// buffer goes back to [`Gro`] once the application has read that payload,
/// so no memory is allocated or cleared per datagram; one the application
/// keeps costs at most twice its size. Smaller datagrams (a train) are
/// copied out as before: a few bytes kept must not pin 64 KiB.
#[derive(Debug)]
pub(crate) struct Gro {
    buf: BytesMut,
    /// The buffer the last datagram was read into, when it keeps it.
    shared: Option<Bytes>,
    /// Buffers lent with a datagram, oldest first, taken back when free.
    lent: VecDeque<Bytes>,
    len: usize,
    /// Segment size of what `buf` holds (its length if it was not a train).
    stride: usize,
    at: usize,
    /// An empty datagram was read and not yet handed out.
    empty: bool,
    from: Option<SocketAddr>,
    cmsg: Vec<u8>,
}

/// A datagram at least this long keeps its buffer (see [`Gro`]).
const SHARE_MIN: usize = GRO_BUF / 2;
/// Buffers lent at most: beyond, the oldest is let go (it is freed when the
/// application has read its datagram).
const MAX_LENT: usize = 64;

impl Gro {
    /// Asks the kernel for GRO on `udp`. None if it refuses (then a plain
    /// receive per datagram is all there is).
    pub fn enable(udp: &UdpSocket) -> Option<Gro> {
        socket::setsockopt(udp, sockopt::UdpGroSegment, &true).ok()?;
        Some(Gro {
            buf: BytesMut::zeroed(GRO_BUF),
            shared: None,
            lent: VecDeque::new(),
            len: 0,
            stride: 0,
            at: 0,
            empty: false,
            from: None,
            cmsg: nix::cmsg_space!(i32),
        })
    }

    /// The next datagram of the last train read, as a range of [`Gro::bytes`].
    pub fn next(&mut self) -> Option<(Range<usize>, SocketAddr)> {
        let from = self.from?;
        if std::mem::take(&mut self.empty) {
            return Some((0..0, from));
        }
        if self.at >= self.len {
            return None;
        }
        let end = (self.at + self.stride).min(self.len);
        let range = self.at..end;
        self.at = end;
        Some((range, from))
    }

    pub fn bytes(&self, range: Range<usize>) -> &[u8] {
        match &self.shared {
            Some(shared) => &shared[range],
            None => &self.buf[range],
        }
    }

    /// The datagram at `range` as a buffer of its own, if it kept the one it
    /// was read into.
    pub fn shared(&self, range: Range<usize>) -> Option<Bytes> {
        self.shared.as_ref().map(|s| s.slice(range))
    }

    /// Reads one train (or datagram) without waiting.
    pub fn fill(&mut self, udp: &UdpSocket) -> io::Result<()> {
        self.shared = None;
        let mut iov = [IoSliceMut::new(&mut self.buf)];
        let msg = loop {
            match socket::recvmsg::<SockaddrStorage>(
                udp.as_raw_fd(),
                &mut iov,
                Some(&mut self.cmsg),
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(msg) => break msg,
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        };
        let len = msg.bytes;
        let mut stride = len;
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::UdpGroSegments(s) = c
                    && s > 0
                {
                    stride = s as usize;
                }
            }
        }
        let from = msg.address.and_then(|a| {
            a.as_sockaddr_in()
                .map(|a| SocketAddr::from(*a))
                .or_else(|| a.as_sockaddr_in6().map(|a| SocketAddr::from(*a)))
        });
        self.len = len;
        self.stride = stride.max(1);
        self.at = 0;
        self.empty = len == 0;
        self.from = from;
        if len >= SHARE_MIN && self.stride >= len {
            self.lend();
        }
        Ok(())
    }

    /// Gives the buffer just filled to its datagram, and takes another:
    /// the oldest one lent if nothing refers to it any more, else a new one.
    fn lend(&mut self) {
        let next = match self.lent.pop_front().map(Bytes::try_into_mut) {
            Some(Ok(free)) if free.len() == GRO_BUF => free,
            Some(Err(busy)) => {
                self.lent.push_front(busy);
                BytesMut::zeroed(GRO_BUF)
            }
            _ => BytesMut::zeroed(GRO_BUF),
        };
        let full = std::mem::replace(&mut self.buf, next).freeze();
        if self.lent.len() >= MAX_LENT {
            self.lent.pop_front();
        }
        self.lent.push_back(full.clone());
        self.shared = Some(full);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (UdpSocket, UdpSocket) {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        b.set_nonblocking(true).unwrap();
        (a, b)
    }

    /// Reads what `b` got, datagram by datagram, waiting up to 2 s for `n`.
    fn take(gro: &mut Gro, b: &UdpSocket, n: usize) -> Vec<Vec<u8>> {
        let start = std::time::Instant::now();
        let mut got = Vec::new();
        while got.len() < n && start.elapsed() < std::time::Duration::from_secs(2) {
            if let Some((r, _)) = gro.next() {
                got.push(gro.bytes(r).to_vec());
                continue;
            }
            match gro.fill(b) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        got
    }

    #[test]
    fn a_train_arrives_as_the_datagrams_it_was_made_of() {
        let (a, b) = pair();
        let mut gro = Gro::enable(&b).expect("GRO on loopback");
        let mut gso = Gso::default();
        let to = b.local_addr().unwrap();
        let sent: Vec<Vec<u8>> = (0..10u8)
            .map(|i| vec![i; if i == 9 { 300 } else { 1000 }])
            .collect();
        for d in &sent {
            gso.push(&a, d, to).unwrap();
        }
        assert_eq!(gso.parts.len(), 10, "one train");
        gso.flush(&a).unwrap();
        assert_eq!(take(&mut gro, &b, 10), sent);
    }

    #[test]
    fn a_longer_datagram_or_another_address_starts_a_new_train() {
        let (a, b) = pair();
        let (_, c) = pair();
        let mut gso = Gso::default();
        let (to_b, to_c) = (b.local_addr().unwrap(), c.local_addr().unwrap());
        gso.push(&a, &[1; 100], to_b).unwrap();
        gso.push(&a, &[2; 50], to_b).unwrap();
        assert_eq!(gso.parts.len(), 2);
        gso.push(&a, &[3; 50], to_b).unwrap();
        assert_eq!(gso.parts.len(), 1, "a shorter datagram ended the train");
        gso.push(&a, &[4; 50], to_c).unwrap();
        assert_eq!((gso.parts.len(), gso.to), (1, Some(to_c)));
        gso.flush(&a).unwrap();
        let mut gro_b = Gro::enable(&b).unwrap();
        let got = take(&mut gro_b, &b, 3);
        assert_eq!(got, vec![vec![1; 100], vec![2; 50], vec![3; 50]]);
        let mut gro_c = Gro::enable(&c).unwrap();
        assert_eq!(take(&mut gro_c, &c, 1), vec![vec![4; 50]]);
    }

    /// An empty datagram (a peer's, or garbage) is handed out once, empty,
    /// and the next one after it.
    #[test]
    fn an_empty_datagram_is_handed_out_once() {
        let (a, b) = pair();
        let mut gro = Gro::enable(&b).unwrap();
        let to = b.local_addr().unwrap();
        a.send_to(&[], to).unwrap();
        a.send_to(&[5; 10], to).unwrap();
        assert_eq!(take(&mut gro, &b, 2), vec![vec![], vec![5; 10]]);
    }

    /// Fills `gro` from `b`, waiting up to 2 s for a datagram.
    fn fill_one(gro: &mut Gro, b: &UdpSocket) -> (Range<usize>, SocketAddr) {
        let start = std::time::Instant::now();
        loop {
            match gro.fill(b) {
                Ok(()) => return gro.next().expect("a datagram"),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(start.elapsed() < std::time::Duration::from_secs(2));
                    std::thread::yield_now();
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    fn big(byte: u8) -> Vec<u8> {
        vec![byte; 40_000]
    }

    /// A large datagram keeps the buffer it was read into (no copy), and the
    /// buffer serves again once nothing refers to that datagram; a small one
    /// is only borrowed (copied out by the caller).
    #[test]
    fn a_large_datagram_keeps_its_buffer_until_it_is_dropped() {
        let (a, b) = pair();
        let mut gro = Gro::enable(&b).unwrap();
        let to = b.local_addr().unwrap();
        a.send_to(&big(7), to).unwrap();
        let (range, _) = fill_one(&mut gro, &b);
        let first = gro.shared(range).expect("a buffer of its own");
        assert_eq!(&first[..], &big(7)[..]);
        let at = first.as_ptr();
        // Held (the application has not read it): the next one gets another buffer.
        a.send_to(&big(8), to).unwrap();
        let (range, _) = fill_one(&mut gro, &b);
        let second = gro.shared(range).unwrap();
        assert_ne!(second.as_ptr(), at);
        assert_eq!(&first[..], &big(7)[..], "untouched by the next read");
        // Read and dropped: its buffer comes back as the one to read into
        // after the next (the next lands in the buffer taken at the second).
        drop(first);
        a.send_to(&big(9), to).unwrap();
        let (range, _) = fill_one(&mut gro, &b);
        let third = gro.shared(range).unwrap();
        assert_ne!(third.as_ptr(), at);
        a.send_to(&big(6), to).unwrap();
        let (range, _) = fill_one(&mut gro, &b);
        let fourth = gro.shared(range).unwrap();
        assert_eq!(fourth.as_ptr(), at, "the first buffer, used again");
        assert_eq!(&fourth[..], &big(6)[..]);
        assert_eq!(&third[..], &big(9)[..]);
        // A small datagram is not given a buffer of its own.
        a.send_to(&[1; 100], to).unwrap();
        let (range, _) = fill_one(&mut gro, &b);
        assert!(gro.shared(range.clone()).is_none());
        assert_eq!(gro.bytes(range), &[1; 100][..]);
        assert_eq!(&second[..], &big(8)[..]);
    }

    #[test]
    fn trains_hold_at_most_the_kernels_segment_count() {
        let (a, b) = pair();
        let mut gro = Gro::enable(&b).unwrap();
        let mut gso = Gso::default();
        let to = b.local_addr().unwrap();
        for i in 0..(MAX_SEGMENTS + 5) {
            gso.push(&a, &(i as u32).to_be_bytes(), to).unwrap();
        }
        assert_eq!(gso.parts.len(), 5);
        gso.flush(&a).unwrap();
        let got = take(&mut gro, &b, MAX_SEGMENTS + 5);
        let expect: Vec<Vec<u8>> = (0..(MAX_SEGMENTS + 5) as u32)
            .map(|i| i.to_be_bytes().to_vec())
            .collect();
        assert_eq!(got, expect);
    }
}
