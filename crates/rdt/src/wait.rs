//! Waiting for a datagram until a deadline: a non-blocking UDP socket and an
//! epoll instance (mio). SO_RCVTIMEO, the obvious alternative, ticks at the
//! kernel's timer granularity: a 2 ms timeout took 4–8 ms (`rdt bench`).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd as _;
use std::time::Instant;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

#[derive(Debug)]
pub(crate) struct Waiter {
    poll: Poll,
    events: Events,
}

impl Waiter {
    /// Makes `udp` non-blocking and watches it.
    pub fn new(udp: &UdpSocket) -> io::Result<Waiter> {
        udp.set_nonblocking(true)?;
        let poll = Poll::new()?;
        poll.registry().register(
            &mut SourceFd(&udp.as_raw_fd()),
            Token(0),
            Interest::READABLE,
        )?;
        Ok(Waiter {
            poll,
            events: Events::with_capacity(4),
        })
    }

    /// One datagram, or `None` once `deadline` passes (no deadline: wait forever).
    pub fn recv_from(
        &mut self,
        udp: &UdpSocket,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> io::Result<Option<(usize, SocketAddr)>> {
        loop {
            match udp.recv_from(buf) {
                Ok(got) => return Ok(Some(got)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                    if left.is_some_and(|l| l.is_zero()) {
                        return Ok(None);
                    }
                    match self.poll.poll(&mut self.events, left) {
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
