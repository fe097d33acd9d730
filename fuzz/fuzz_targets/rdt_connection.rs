//! rdt's connection core (`rdt::Connection`, sans-IO) driven by arbitrary
//! sequences of events: segments with any flags, numbers near or far from
//! the connection's own, any data, SACK blocks; clocks that jump; writes,
//! reads and closes; in every mode, format and controller, as client or
//! server. Nothing panics, and:
//! - after `handle_timeout(now)` no timer is still due at `now` (no busy loop);
//! - the application never reads more bytes than segments carried;
//! - every segment the core sends encodes and decodes in its own format.
#![no_main]

use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rdt::conn::Read;
use rdt::{CcKind, Config, Connection, Flags, Format, Mode, Output, Sack, Segment, Seq};

/// Reads the fuzzer's bytes in order; zeros once they run out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }
    fn bytes(&mut self, n: usize) -> Bytes {
        let n = n.min(self.0.len());
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Bytes::copy_from_slice(taken)
    }
    fn done(&self) -> bool {
        self.0.is_empty()
    }
}

fn config(input: &mut Input<'_>) -> Config {
    let b = input.byte();
    let format = if b & 1 == 0 { Format::Course } else { Format::Binary };
    let mode = match (b >> 1) % 3 {
        0 => Mode::StopAndWait,
        1 => Mode::GoBackN,
        _ => Mode::SelectiveRepeat,
    };
    let cc = match (b >> 3) % 4 {
        0 => CcKind::None,
        1 => CcKind::Tahoe,
        2 => CcKind::Reno,
        _ => CcKind::Cubic,
    };
    let mut cfg = Config {
        mss: 1 + usize::from(input.byte() % 64),
        window: 1 + usize::from(input.byte() % 16),
        timeout: Duration::from_millis(10),
        mode,
        cc,
        ..Config::new(format)
    };
    if cfg.validate().is_err() {
        // A combination the CLI refuses (selective repeat in the course
        // format): the seed's Stop & Wait instead.
        cfg.mode = Mode::StopAndWait;
    }
    cfg
}

/// A segment whose numbers are the connection's own plus a small signed
/// offset (or anything at all), so both in-window and hostile ones come.
fn segment(input: &mut Input<'_>, conn: &Connection, cfg: &Config) -> Segment {
    let f = input.byte();
    let (una, nxt, rcv) = conn.numbers();
    let near = |base: Seq, input: &mut Input<'_>| {
        let off = i32::from(input.byte() as i8);
        Seq(base.0.wrapping_add(off as u32))
    };
    let seq = if f & 0x10 != 0 { Seq(input.u32()) } else { near(rcv, input) };
    let ack = if f & 0x20 != 0 {
        Seq(input.u32())
    } else if f & 0x40 != 0 {
        near(una, input)
    } else {
        near(nxt, input)
    };
    let len = usize::from(input.byte()) % (cfg.mss + 2);
    let mut sack = Sack::default();
    if f & 0x80 != 0 && cfg.format == Format::Binary {
        for _ in 0..(input.byte() % 5) {
            let start = near(nxt, input);
            let end = Seq(start.0.wrapping_add(u32::from(input.byte())));
            sack.push(start, end);
        }
    }
    Segment {
        flags: Flags {
            syn: f & 1 != 0,
            ack: f & 2 != 0,
            fin: f & 4 != 0,
        },
        seq,
        ack,
        window: input.u16(),
        data: if sack.is_empty() { input.bytes(len) } else { Bytes::new() },
        filler: if f & 8 != 0 { Bytes::from_static(b"-") } else { Bytes::new() },
        wire_len: 0,
        sack,
    }
}

/// Takes every output, checking that what is sent encodes and decodes.
fn drain(conn: &mut Connection, format: Format) {
    while let Some(out) = conn.poll_output() {
        if let Output::Transmit(seg) | Output::TransmitToListener(seg) = out {
            let mut wire = Vec::new();
            format.encode(&seg, &mut wire);
            let back = format.decode(&wire).expect("what the core sends decodes");
            assert_eq!(back.data, seg.data, "data survives its own format");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let cfg = config(&mut input);
    let start = Instant::now();
    let mut now = start;
    let isn = Seq(input.u32());
    let mut conn = if input.byte() & 1 == 0 {
        Connection::connect(cfg.clone(), now, isn)
    } else {
        let syn = Segment::syn(Seq(input.u32()));
        Connection::accept(cfg.clone(), now, &syn, isn)
    };
    let mut carried = 0usize;
    let mut read = 0usize;
    let mut steps = 0;
    while !input.done() && steps < 4096 {
        steps += 1;
        drain(&mut conn, cfg.format);
        match input.byte() % 6 {
            0 | 1 => {
                let seg = segment(&mut input, &conn, &cfg);
                carried += seg.data.len();
                conn.handle_segment(now, seg);
            }
            2 => {
                now += Duration::from_micros(u64::from(input.u16()) * 16);
                conn.handle_timeout(now);
                assert!(
                    conn.poll_timeout().is_none_or(|at| at > now),
                    "a timer still due right after handle_timeout"
                );
            }
            3 => {
                let len = usize::from(input.byte());
                let message = input.bytes(len);
                let _ = conn.write_message(now, &message);
            }
            4 => {
                if let Ok(Read::Data(d)) = conn.read(usize::from(input.byte()) + 1) {
                    read += d.len();
                }
            }
            _ => conn.close(now),
        }
        let _ = conn.take_error();
        assert!(read <= carried, "read {read} bytes, segments carried {carried}");
    }
    drain(&mut conn, cfg.format);
});
