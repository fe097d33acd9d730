//! Waiting for a datagram until a deadline: a non-blocking UDP socket and an
//! epoll instance (mio). SO_RCVTIMEO, the obvious alternative, ticks at the
//! kernel's timer granularity: a 2 ms timeout took 4–8 ms (`rdt bench`).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd as _;
use std::time::Instant;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

/// How long a receive may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Until {
    /// Not at all: only what has arrived.
    Now,
    /// Until this instant (the clock is read only if nothing has arrived).
    At(Instant),
    Forever,
}

/// The epoll set is made on the first wait that needs one: a socket only ever
/// read without waiting (a half-open handshake in the listener, which may be
/// one of a flood's) costs no epoll instance.
#[derive(Debug)]
pub(crate) struct Waiter {
    poll: Option<(Poll, Events)>,
}

impl Waiter {
    /// Makes `udp` non-blocking; it is watched from the first wait on.
    pub fn new(udp: &UdpSocket) -> io::Result<Waiter> {
        udp.set_nonblocking(true)?;
        Ok(Waiter { poll: None })
    }

    fn poll(&mut self, udp: &UdpSocket) -> io::Result<&mut (Poll, Events)> {
        if self.poll.is_none() {
            let poll = Poll::new()?;
            poll.registry().register(
                &mut SourceFd(&udp.as_raw_fd()),
                Token(0),
                Interest::READABLE,
            )?;
            self.poll = Some((poll, Events::with_capacity(4)));
        }
        match &mut self.poll {
            Some(p) => Ok(p),
            None => Err(io::Error::other("no poller")),
        }
    }

    /// One datagram, or `None` once `until` passes.
    pub fn recv_from(
        &mut self,
        udp: &UdpSocket,
        buf: &mut [u8],
        until: Until,
    ) -> io::Result<Option<(usize, SocketAddr)>> {
        self.recv_with(udp, until, |udp| udp.recv_from(buf))
    }

    /// What `recv` got from `udp` (a non-blocking receive of any kind), or
    /// `None` once `until` passes; `recv` is tried again after each wake-up.
    pub fn recv_with<T>(
        &mut self,
        udp: &UdpSocket,
        until: Until,
        mut recv: impl FnMut(&UdpSocket) -> io::Result<T>,
    ) -> io::Result<Option<T>> {
        loop {
            match recv(udp) {
                Ok(got) => return Ok(Some(got)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let left = match until {
                        Until::Now => return Ok(None),
                        Until::At(d) => Some(d.saturating_duration_since(Instant::now())),
                        Until::Forever => None,
                    };
                    if left.is_some_and(|l| l.is_zero()) {
                        return Ok(None);
                    }
                    let (poll, events) = self.poll(udp)?;
                    match poll.poll(events, left) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}
