//! One direction of the link: every IP packet read from one TUN device goes
//! through a [`DatagramEngine`] (the same seeded decisions as `impair udp`,
//! packet by packet) and what it emits is written to the other device when due.
//!
//! Each direction is a thread of its own blocked in `poll(2)` on its device and
//! on a stop pipe, with the engine's next deadline as the timeout: no runtime,
//! so the link works the same under a test, an async program or the CLI.
//!
//! A read may be a TCP super-packet the kernel left us to segment: it is cut
//! into the segments the wire would carry before the engine sees it, and the
//! segments that leave in order are joined again for the write
//! ([`super::offload`]). Reads are sized for the largest IP packet, so one
//! larger than the MTU is never cut short: counted, and forwarded as it is.

use std::fs::File;
use std::io::{self, PipeReader, Read as _, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use rustix::event::{PollFd, PollFlags, Timespec};

use super::offload::{self, Coalescer, VNET_HDR_LEN, VnetHdr};
use crate::Direction;
use crate::datagram::DatagramEngine;
use crate::stats::bump;

/// The largest IP packet (and one byte more, to see a bigger one whole),
/// after its virtio-net header.
const MAX_READ: usize = VNET_HDR_LEN + 65_536;
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

/// One direction: its devices, engine and write-side joiner.
pub(crate) struct Lane {
    pub dir: Direction,
    pub from: Arc<File>,
    pub to: Arc<File>,
    pub engine: DatagramEngine<VnetHdr>,
    pub counters: Arc<LinkCounters>,
    pub mtu: usize,
    pub log: bool,
    segments: Vec<(Bytes, VnetHdr)>,
    out: Coalescer,
    /// Corruption must be caught by the receiver's checksum check, so a
    /// direction that corrupts completes every checksum first.
    complete: bool,
}

impl Lane {
    pub(crate) fn new(
        dir: Direction,
        (from, to): (Arc<File>, Arc<File>),
        engine: DatagramEngine<VnetHdr>,
        counters: Arc<LinkCounters>,
        mtu: usize,
        log: bool,
    ) -> Self {
        let complete = engine.rules().corrupt.get() > 0.0;
        Self {
            dir,
            from,
            to,
            engine,
            counters,
            mtu,
            log,
            segments: Vec::new(),
            out: Coalescer::default(),
            complete,
        }
    }
}

/// Both directions on one thread: blocked in `poll(2)` on both devices and
/// the stop pipe, with the earlier of the engines' deadlines as the timeout.
/// One thread, not one per direction: a packet and its answer then cost one
/// wake-up between them instead of two, which is most of a round trip's tail
/// on a small machine. Ends when `stop` is closed at its other end or a
/// device fails.
pub(crate) fn run(mut lanes: [Lane; 2], stop: &PipeReader) {
    let mut buf = vec![0u8; MAX_READ];
    loop {
        let due = lanes.iter().filter_map(|l| l.engine.poll_timeout()).min();
        let timeout = due.map(|due| {
            let d = due.saturating_duration_since(Instant::now());
            Timespec {
                tv_sec: d.as_secs() as _,
                tv_nsec: d.subsec_nanos().into(),
            }
        });
        let mut fds = [
            PollFd::new(&*lanes[0].from, PollFlags::IN),
            PollFd::new(&*lanes[1].from, PollFlags::IN),
            PollFd::new(stop, PollFlags::IN),
        ];
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                tracing::warn!(error = %e, "poll failed; the link stops forwarding");
                return;
            }
        }
        if !fds[2].revents().is_empty() {
            return;
        }
        let ready = [fds[0].revents(), fds[1].revents()];
        for (lane, ready) in lanes.iter_mut().zip(ready) {
            if ready.intersects(PollFlags::ERR | PollFlags::HUP | PollFlags::NVAL) {
                tracing::warn!(
                    dir = super::dir_name(lane.dir),
                    "a device went away; the link stops forwarding"
                );
                return;
            }
            if ready.contains(PollFlags::IN) && lane.read_batch(&mut buf).is_none() {
                return;
            }
        }
        let now = Instant::now();
        for lane in &mut lanes {
            lane.engine.on_timeout(now);
            lane.emit(now);
        }
    }
}

impl Lane {
    /// Reads what is there (up to [`BATCH`] reads) and returns how many
    /// reads it made; `None` if the device failed.
    fn read_batch(&mut self, buf: &mut [u8]) -> Option<usize> {
        for reads in 0..BATCH {
            match (&*self.from).read(buf) {
                Ok(n) => {
                    let mut segments = std::mem::take(&mut self.segments);
                    offload::split(&buf[..n], self.complete, &mut segments);
                    for (packet, hdr) in segments.drain(..) {
                        self.packet(packet, hdr);
                    }
                    self.segments = segments;
                    self.emit(Instant::now());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(reads),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!(dir = super::dir_name(self.dir), error = %e, "reading a device failed; the link stops forwarding");
                    return None;
                }
            }
        }
        Some(BATCH)
    }

    fn packet(&mut self, packet: Bytes, hdr: VnetHdr) {
        let len = packet.len();
        self.counters
            .largest
            .fetch_max(len as u64, Ordering::Relaxed);
        if len > self.mtu {
            bump(&self.counters.over_mtu, 1);
        }
        let decision = self.engine.on_datagram_with(Instant::now(), packet, hdr);
        if self.log {
            tracing::info!(dir = super::dir_name(self.dir), "{decision}");
        }
    }

    /// Writes every packet due, joined where they can be.
    fn emit(&mut self, now: Instant) {
        let out = &mut self.out;
        let (to, counters, dir) = (&*self.to, &self.counters, self.dir);
        // A TUN device takes a whole packet per write or refuses it; it does
        // not block (the stack queues or drops behind it).
        let mut write = |w: &[u8]| {
            if let Err(e) = (&*to).write(w) {
                bump(&counters.write_errors, 1);
                tracing::debug!(dir = super::dir_name(dir), error = %e, len = w.len(), "device refused a packet");
            }
        };
        while let Some((p, hdr)) = self.engine.poll_emit_with(now) {
            out.push(&p, hdr, &mut write);
        }
        out.flush(&mut write);
    }
}
