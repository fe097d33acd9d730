//! One direction of the link: every IP packet read from one TUN device goes
//! through a [`DatagramEngine`] (the same seeded decisions as `impair udp`,
//! packet by packet) and what it emits is written to the other device when due.
//!
//! Each direction is a thread of its own blocked in `poll(2)` on its device and
//! on a stop pipe, with the engine's next deadline as the timeout: no runtime,
//! so the link works the same under a test, an async program or the CLI.
//!
//! Packets are read into a buffer of the largest IP packet, so one larger than
//! the MTU (which a device without offloads should never hand us) is counted,
//! never cut short; it is forwarded as it is.

use std::fs::File;
use std::io::{self, PipeReader, Read as _, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use rustix::event::{PollFd, PollFlags, Timespec};

use crate::Direction;
use crate::datagram::DatagramEngine;
use crate::stats::bump;

/// The largest IP packet (and one byte more, to see a bigger one whole).
const MAX_PACKET: usize = 65_536;
/// Packets read per wake-up before timers get a look in.
const BATCH: usize = 64;

/// Counters the datagram engine does not keep.
#[derive(Debug, Default)]
pub struct LinkCounters {
    /// Largest packet read, in bytes.
    pub largest: AtomicU64,
    /// Packets read that were larger than the MTU.
    pub over_mtu: AtomicU64,
    /// Packets the receiving device refused.
    pub write_errors: AtomicU64,
}

/// One direction's forwarding loop.
pub(crate) struct Forwarder {
    pub dir: Direction,
    pub from: Arc<File>,
    pub to: Arc<File>,
    pub engine: DatagramEngine,
    pub counters: Arc<LinkCounters>,
    pub mtu: usize,
    pub log: bool,
}

impl Forwarder {
    /// Forwards until `stop` is closed at its other end or a device fails.
    pub(crate) fn run(mut self, stop: &PipeReader) {
        let mut buf = vec![0u8; MAX_PACKET];
        loop {
            let timeout = self.engine.poll_timeout().map(|due| {
                let d = due.saturating_duration_since(Instant::now());
                Timespec {
                    tv_sec: d.as_secs() as _,
                    tv_nsec: d.subsec_nanos().into(),
                }
            });
            let mut fds = [
                PollFd::new(&*self.from, PollFlags::IN),
                PollFd::new(stop, PollFlags::IN),
            ];
            match rustix::event::poll(&mut fds, timeout.as_ref()) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    tracing::warn!(dir = %self.dir, error = %e, "poll failed; this direction stops");
                    return;
                }
            }
            if !fds[1].revents().is_empty() {
                return;
            }
            let ready = fds[0].revents();
            if ready.intersects(PollFlags::ERR | PollFlags::HUP | PollFlags::NVAL) {
                tracing::warn!(dir = %self.dir, "the device went away; this direction stops");
                return;
            }
            if ready.contains(PollFlags::IN) && !self.read_batch(&mut buf) {
                return;
            }
            let now = Instant::now();
            self.engine.on_timeout(now);
            self.emit(now);
        }
    }

    /// Reads what is there (up to [`BATCH`] packets); false if the device failed.
    fn read_batch(&mut self, buf: &mut [u8]) -> bool {
        for _ in 0..BATCH {
            match (&*self.from).read(buf) {
                Ok(n) => self.packet(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!(dir = %self.dir, error = %e, "reading the device failed; this direction stops");
                    return false;
                }
            }
        }
        true
    }

    fn packet(&mut self, packet: &[u8]) {
        let len = packet.len();
        self.counters
            .largest
            .fetch_max(len as u64, Ordering::Relaxed);
        if len > self.mtu {
            bump(&self.counters.over_mtu, 1);
        }
        let now = Instant::now();
        let decision = self.engine.on_datagram(now, Bytes::copy_from_slice(packet));
        if self.log {
            tracing::info!(dir = %self.dir, "{decision}");
        }
        self.emit(now);
    }

    fn emit(&mut self, now: Instant) {
        while let Some(p) = self.engine.poll_emit(now) {
            // A TUN device takes a whole packet per write or refuses it; it
            // does not block (the stack queues or drops behind it).
            if let Err(e) = (&*self.to).write(&p) {
                bump(&self.counters.write_errors, 1);
                tracing::debug!(dir = %self.dir, error = %e, len = p.len(), "device refused a packet");
            }
        }
    }
}
