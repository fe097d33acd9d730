//! Waiting for a datagram until a deadline: a non-blocking UDP socket, an
//! epoll instance (mio) and one timer (timerfd) armed lazily.
//!
//! SO_RCVTIMEO, the obvious alternative, ticks at the kernel's timer
//! granularity: a 2 ms timeout took 4–8 ms (`rdt bench`). An epoll timeout
//! per wait is exact, but it arms a kernel timer on every wait and cancels it
//! on every wake-up; in Stop & Wait the deadline is the nearest timer on the
//! CPU, so each wait reprograms the hardware timer twice (on a virtual
//! machine, two exits), about 1.5 µs of an 18 µs loopback round trip.
//! Instead the timerfd is armed at a deadline and left alone while later
//! deadlines come (each ACK pushes the retransmission deadline a little
//! further): it fires once per timeout at most, and the wait that finds its
//! own deadline not yet due arms it again. A wait that finds the timer armed
//! for no later than its deadline needs neither a system call nor the clock.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd as _, AsRawFd as _};
use std::time::Instant;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

/// How long a receive may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Until {
    /// Not at all: only what has arrived.
    Now,
    /// Until this instant (the clock is read only if nothing has arrived).
    At(Instant),
    Forever,
}

const SOCKET: Token = Token(0);
const TIMER: Token = Token(1);

/// The epoll set is made on the first wait that needs one: a socket only ever
/// read without waiting (a half-open handshake in the listener, which may be
/// one of a flood's) costs no epoll instance and no timer.
#[derive(Debug)]
pub(crate) struct Waiter {
    poller: Option<Box<Poller>>,
}

#[derive(Debug)]
struct Poller {
    poll: Poll,
    events: Events,
    timer: TimerFd,
    /// When the timer fires, if it is armed and has not been seen firing.
    armed: Option<Instant>,
}

impl Poller {
    fn new(udp: &UdpSocket) -> io::Result<Poller> {
        let poll = Poll::new()?;
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        let registry = poll.registry();
        registry.register(&mut SourceFd(&udp.as_raw_fd()), SOCKET, Interest::READABLE)?;
        registry.register(
            &mut SourceFd(&timer.as_fd().as_raw_fd()),
            TIMER,
            Interest::READABLE,
        )?;
        Ok(Poller {
            poll,
            events: Events::with_capacity(4),
            timer,
            armed: None,
        })
    }

    /// Makes sure the timer fires no later than `deadline`; false if the
    /// deadline has passed already (the clock is read only to arm it).
    fn arm(&mut self, deadline: Instant) -> io::Result<bool> {
        if self.armed.is_some_and(|at| at <= deadline) {
            return Ok(true);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        self.timer.set(
            Expiration::OneShot(TimeSpec::from_duration(left)),
            TimerSetTimeFlags::empty(),
        )?;
        self.armed = Some(deadline);
        Ok(true)
    }

    /// Blocks until the socket is readable or the timer fires (which it
    /// then disarms).
    fn wait(&mut self) -> io::Result<()> {
        match self.poll.poll(&mut self.events, None) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        if self.events.iter().any(|e| e.token() == TIMER) {
            self.armed = None;
            // Reads the expiry count so the next expiry is a new edge; a
            // re-arm since (which resets the count) leaves nothing to read.
            match self.timer.wait() {
                Ok(()) | Err(nix::errno::Errno::EAGAIN) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

impl Waiter {
    /// Makes `udp` non-blocking; it is watched from the first wait on.
    pub fn new(udp: &UdpSocket) -> io::Result<Waiter> {
        udp.set_nonblocking(true)?;
        Ok(Waiter { poller: None })
    }

    fn poller(&mut self, udp: &UdpSocket) -> io::Result<&mut Poller> {
        if self.poller.is_none() {
            self.poller = Some(Box::new(Poller::new(udp)?));
        }
        match &mut self.poller {
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
                    let poller = match until {
                        Until::Now => return Ok(None),
                        Until::At(deadline) => {
                            let poller = self.poller(udp)?;
                            if !poller.arm(deadline)? {
                                return Ok(None);
                            }
                            poller
                        }
                        // A timer armed for an earlier wait may still wake
                        // this one: it is read and the wait goes on.
                        Until::Forever => self.poller(udp)?,
                    };
                    poller.wait()?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pair() -> (UdpSocket, UdpSocket, Waiter) {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let waiter = Waiter::new(&a).unwrap();
        (a, b, waiter)
    }

    #[test]
    fn a_deadline_ends_the_wait_neither_early_nor_late() {
        let (a, _b, mut waiter) = pair();
        let mut buf = [0; 16];
        for wait in [5, 20, 1] {
            let start = Instant::now();
            let deadline = start + Duration::from_millis(wait);
            let got = waiter.recv_from(&a, &mut buf, Until::At(deadline)).unwrap();
            assert!(got.is_none());
            assert!(
                Instant::now() >= deadline,
                "woke before the {wait} ms deadline"
            );
            // Not a timing assertion: a bound far above any scheduling delay,
            // to catch a timer left armed for an earlier, longer wait.
            assert!(start.elapsed() < Duration::from_secs(2));
        }
    }

    #[test]
    fn an_earlier_deadline_rearms_a_later_timer() {
        let (a, _b, mut waiter) = pair();
        let mut buf = [0; 16];
        // Arm for a minute away, then wait for 10 ms: the later timer must
        // not hold the earlier wait.
        let far = Instant::now() + Duration::from_secs(60);
        let poller = waiter.poller(&a).unwrap();
        assert!(poller.arm(far).unwrap());
        let start = Instant::now();
        let near = start + Duration::from_millis(10);
        let got = waiter.recv_from(&a, &mut buf, Until::At(near)).unwrap();
        assert!(got.is_none());
        assert!(start.elapsed() < Duration::from_secs(30));
    }

    #[test]
    fn a_later_deadline_outlives_the_timer_armed_for_an_earlier_one() {
        let (a, b, mut waiter) = pair();
        let mut buf = [0; 16];
        let first = Instant::now() + Duration::from_millis(5);
        assert!(
            waiter
                .recv_from(&a, &mut buf, Until::At(first))
                .unwrap()
                .is_none()
        );
        // Armed for 5 ms from now; the next wait's deadline is later: the
        // timer fires first and the wait goes on until its own deadline.
        let poller = waiter.poller(&a).unwrap();
        let soon = Instant::now() + Duration::from_millis(5);
        assert!(poller.arm(soon).unwrap());
        let later = Instant::now() + Duration::from_millis(30);
        assert!(
            waiter
                .recv_from(&a, &mut buf, Until::At(later))
                .unwrap()
                .is_none()
        );
        assert!(Instant::now() >= later);
        // And a datagram still ends a wait at once, timer armed or not.
        b.send_to(b"hi", a.local_addr().unwrap()).unwrap();
        let got = waiter
            .recv_from(
                &a,
                &mut buf,
                Until::At(Instant::now() + Duration::from_secs(30)),
            )
            .unwrap();
        assert_eq!(got.map(|(n, _)| n), Some(2));
        // A passed deadline returns without waiting.
        assert!(
            waiter
                .recv_from(&a, &mut buf, Until::At(Instant::now()))
                .unwrap()
                .is_none()
        );
    }
}
