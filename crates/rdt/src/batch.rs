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

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::ops::Range;
use std::os::fd::AsRawFd as _;

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
#[derive(Debug)]
pub(crate) struct Gso {
    train: Vec<u8>,
    /// Size of the train's datagrams (all but a shorter last one).
    size: usize,
    count: usize,
    to: Option<SocketAddr>,
    /// The last datagram was shorter than `size`: the train is complete.
    closed: bool,
    /// Cleared when the kernel refuses a train.
    enabled: bool,
}

impl Default for Gso {
    fn default() -> Self {
        Gso {
            train: Vec::with_capacity(MAX_TRAIN + MAX_DATAGRAM_ROOM),
            size: 0,
            count: 0,
            to: None,
            closed: false,
            enabled: true,
        }
    }
}

/// Room kept after a full train for the datagram encoded behind it.
const MAX_DATAGRAM_ROOM: usize = 65_536;

/// What the kernel did with a send.
enum Sent {
    Done,
    /// The socket buffer was full: the datagrams are lost.
    NoRoom,
    /// GSO refused (`EINVAL`/`EIO`).
    Refused,
}

impl Gso {
    /// Adds `datagram` for `to`, sending the train first if it cannot join.
    #[cfg(test)]
    pub fn push(&mut self, udp: &UdpSocket, datagram: &[u8], to: SocketAddr) -> io::Result<()> {
        self.push_with(udp, to, |b| b.extend_from_slice(datagram), |_| true)
            .map(drop)
    }

    /// Encodes a datagram for `to` by `encode` straight behind the train (no
    /// copy of its own), keeps it if `keep` says so (the built-in loss looks
    /// at it there), and sends the train first if the datagram cannot join.
    /// Returns whether it was kept.
    pub fn push_with(
        &mut self,
        udp: &UdpSocket,
        to: SocketAddr,
        encode: impl FnOnce(&mut Vec<u8>),
        keep: impl FnOnce(&[u8]) -> bool,
    ) -> io::Result<bool> {
        let start = self.train.len();
        encode(&mut self.train);
        let len = self.train.len() - start;
        if !keep(&self.train[start..]) {
            self.train.truncate(start);
            return Ok(false);
        }
        let joins = self.count > 0
            && self.to == Some(to)
            && !self.closed
            && len <= self.size
            && self.count < MAX_SEGMENTS
            && self.train.len() <= MAX_TRAIN;
        if self.count > 0 && !joins {
            self.send_front(udp, start)?;
        }
        if self.count == 0 {
            self.size = len;
            self.to = Some(to);
        }
        self.count += 1;
        self.closed = len < self.size;
        if !self.enabled || len > MAX_TRAIN {
            self.flush(udp)?;
        }
        Ok(true)
    }

    /// Sends the train gathered so far.
    pub fn flush(&mut self, udp: &UdpSocket) -> io::Result<()> {
        self.send_front(udp, self.train.len())
    }

    /// Sends the first `end` bytes (the train; what follows is a datagram
    /// that did not join) and keeps the rest as the start of the next.
    fn send_front(&mut self, udp: &UdpSocket, end: usize) -> io::Result<()> {
        let (count, to) = (self.count, self.to);
        self.count = 0;
        self.closed = false;
        let result = match to {
            Some(to) if count > 0 => {
                let train = &self.train[..end];
                let sent = if count == 1 {
                    send_one(udp, train, to)
                } else {
                    send_train(udp, train, self.size, to)
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
                        let mut result = Ok(());
                        for d in train.chunks(self.size) {
                            match send_one(udp, d, to) {
                                Ok(_) => {}
                                Err(e) => {
                                    result = Err(e);
                                    break;
                                }
                            }
                        }
                        result
                    }
                    Err(e) => Err(e),
                }
            }
            _ => Ok(()),
        };
        self.train.drain(..end);
        result
    }
}

/// One `sendmsg` of a train of `size`-byte datagrams (the last may be shorter).
fn send_train(udp: &UdpSocket, train: &[u8], size: usize, to: SocketAddr) -> io::Result<Sent> {
    let size = size as u16;
    let cmsg = [ControlMessage::UdpGsoSegments(&size)];
    let addr = SockaddrStorage::from(to);
    let iov = [IoSlice::new(train)];
    loop {
        match socket::sendmsg(udp.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), Some(&addr)) {
            Ok(_) => return Ok(Sent::Done),
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => return Ok(Sent::NoRoom),
            Err(Errno::EINVAL | Errno::EIO) => return Ok(Sent::Refused),
            Err(e) => return Err(e.into()),
        }
    }
}

/// One datagram without a train (Stop & Wait, the course format's one
/// segment a turn): a full socket buffer loses it, as for a train.
pub(crate) fn send_alone(udp: &UdpSocket, datagram: &[u8], to: SocketAddr) -> io::Result<()> {
    if let Sent::NoRoom = send_one(udp, datagram, to)? {
        tracing::debug!(target: "rdt", "no room in the socket buffer: a datagram lost");
    }
    Ok(())
}

/// One datagram by itself; a full socket buffer loses it, as a full queue on
/// the way would (the transport sends it again).
fn send_one(udp: &UdpSocket, datagram: &[u8], to: SocketAddr) -> io::Result<Sent> {
    match udp.send_to(datagram, to) {
        Ok(_) => Ok(Sent::Done),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Sent::NoRoom),
        Err(e) => Err(e),
    }
}

/// The receive side: one `recvmsg` of a train, handed out datagram by datagram.
#[derive(Debug)]
pub(crate) struct Gro {
    buf: Vec<u8>,
    len: usize,
    /// Segment size of what `buf` holds (its length if it was not a train).
    stride: usize,
    at: usize,
    /// An empty datagram was read and not yet handed out.
    empty: bool,
    from: Option<SocketAddr>,
    cmsg: Vec<u8>,
}

impl Gro {
    /// Asks the kernel for GRO on `udp`. None if it refuses (then a plain
    /// receive per datagram is all there is).
    pub fn enable(udp: &UdpSocket) -> Option<Gro> {
        socket::setsockopt(udp, sockopt::UdpGroSegment, &true).ok()?;
        Some(Gro {
            buf: vec![0; GRO_BUF],
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
        &self.buf[range]
    }

    /// Reads one train (or datagram) without waiting.
    pub fn fill(&mut self, udp: &UdpSocket) -> io::Result<()> {
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
        Ok(())
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
        assert_eq!(gso.count, 10, "one train");
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
        assert_eq!(gso.count, 2);
        gso.push(&a, &[3; 50], to_b).unwrap();
        assert_eq!(gso.count, 1, "a shorter datagram ended the train");
        gso.push(&a, &[4; 50], to_c).unwrap();
        assert_eq!((gso.count, gso.to), (1, Some(to_c)));
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

    #[test]
    fn trains_hold_at_most_the_kernels_segment_count() {
        let (a, b) = pair();
        let mut gro = Gro::enable(&b).unwrap();
        let mut gso = Gso::default();
        let to = b.local_addr().unwrap();
        for i in 0..(MAX_SEGMENTS + 5) {
            gso.push(&a, &(i as u32).to_be_bytes(), to).unwrap();
        }
        assert_eq!(gso.count, 5);
        gso.flush(&a).unwrap();
        let got = take(&mut gro, &b, MAX_SEGMENTS + 5);
        let expect: Vec<Vec<u8>> = (0..(MAX_SEGMENTS + 5) as u32)
            .map(|i| i.to_be_bytes().to_vec())
            .collect();
        assert_eq!(got, expect);
    }
}
